"""Drawings of DARTS cells (PNG): inputs, intermediate nodes, concatenated output."""
from __future__ import annotations

import os

from jaxnas import runs


def draw_cell(gene, concat, title: str, path: str, num_inputs: int = 2) -> None:
    """A DARTS cell as a graph: inputs c_{k-2}, c_{k-1}, intermediate nodes, output c_{k}."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n_nodes = len(gene) // 2
    pos = {0: (0.0, 2.2), 1: (0.0, 0.2)}
    names = {0: 'c_{k-2}', 1: 'c_{k-1}'}
    for i in range(n_nodes):
        pos[num_inputs + i] = (1.6 + 1.25 * i, 1.2 + (0.9 if i % 2 == 0 else -0.9))
        names[num_inputs + i] = str(i)
    out = num_inputs + n_nodes
    pos[out] = (1.6 + 1.25 * n_nodes + 0.6, 1.2)
    names[out] = 'c_{k}'
    fig, ax = plt.subplots(figsize=(2.2 + 1.5 * n_nodes, 3.6))
    for i in range(n_nodes):
        for op, j in gene[2 * i:2 * i + 2]:
            (x0, y0), (x1, y1) = pos[j], pos[num_inputs + i]
            ax.annotate('', xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle='->', color='tab:blue', shrinkA=14, shrinkB=14, lw=1.2))
            ax.text(0.55 * x0 + 0.45 * x1, 0.55 * y0 + 0.45 * y1, op, fontsize=7, ha='center', va='center',
                    bbox=dict(boxstyle='round,pad=0.15', fc='white', ec='none', alpha=0.85))
    for c in concat:
        (x0, y0), (x1, y1) = pos[c], pos[out]
        ax.annotate('', xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle='->', color='gray', shrinkA=14, shrinkB=14, lw=0.8, ls='--'))
    for k, (x, y) in pos.items():
        color = 'tab:green' if k < num_inputs else ('tab:orange' if k == out else 'lightblue')
        ax.scatter([x], [y], s=900, color=color, zorder=3, edgecolors='k')
        ax.text(x, y, f'${names[k]}$' if '{' in names[k] else names[k], ha='center', va='center', fontsize=9,
                zorder=4)
    ax.set_title(title)
    ax.set_xlim(-0.6, pos[out][0] + 0.6)
    ax.set_ylim(-0.6, 3.0)
    ax.axis('off')
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=120)
    plt.close(fig)


def draw_genotype(genotype, workdir: str) -> list:
    """``cell_normal.png`` and ``cell_reduce.png`` in ``workdir``; returns their paths."""
    paths = []
    for kind in ('normal', 'reduce'):
        path = os.path.join(workdir, f'cell_{kind}.png')
        draw_cell(getattr(genotype, kind), getattr(genotype, f'{kind}_concat'), f'{kind} cell', path)
        paths.append(path)
    return paths
