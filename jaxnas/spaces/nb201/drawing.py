"""Drawing of a NAS-Bench-201 cell (PNG)."""
from __future__ import annotations

import os

from jaxnas import runs
from jaxnas.spaces.nb201 import genotype as nb201


def draw_cell(gene, path: str) -> None:
    """A NAS-Bench-201 cell: node t <- sum of op(node s) over s < t, node 0 the input."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    pos = {k: (1.5 * k, 0.8 * (k % 2)) for k in range(nb201.NUM_NODES)}
    fig, ax = plt.subplots(figsize=(6, 3))
    for (t, s), (op, _) in zip(nb201.EDGES, gene):
        (x0, y0), (x1, y1) = pos[s], pos[t]
        ax.annotate('', xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(
            arrowstyle='->', shrinkA=14, shrinkB=14, connectionstyle=f'arc3,rad={0.15 * (t - s - 1) + 0.05}'))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.15 * (t - s), op, fontsize=7, ha='center')
    for k, (x, y) in pos.items():
        ax.scatter([x], [y], s=700, color='lightblue', edgecolors='k', zorder=3)
        ax.text(x, y, str(k), ha='center', va='center', zorder=4)
    ax.set_title('NAS-Bench-201 cell')
    ax.axis('off')
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=120)
    plt.close(fig)


def draw_genotype(genotype, workdir: str) -> list:
    """``cell_normal.png`` in ``workdir`` (the one cell type); returns its path."""
    gene = [(op, s) for (t, s), op in zip(nb201.EDGES, tuple(genotype))]
    path = os.path.join(workdir, 'cell_normal.png')
    draw_cell(gene, path)
    return [path]
