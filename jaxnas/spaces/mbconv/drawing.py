"""Drawing of an MBConv chain (PNG): stem, one box per layer with its op, head."""
from __future__ import annotations

import os

from jaxnas import runs
from jaxnas.spaces.mbconv import genotype as G

_COLOURS = {3: '#9ecae1', 5: '#6baed6', 7: '#3182bd'}


def draw_chain(genotype: G.Genotype, path: str) -> None:
    """Boxes left to right; colour: kernel size, height: expansion ratio; the identity
    layers dashed; stages bracketed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    ops = genotype.ops
    n = len(ops) + 2
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * n), 2.6))

    def box(x, label, height=0.6, colour='lightgrey', dashed=False):
        ax.add_patch(FancyBboxPatch((x - 0.38, -height / 2), 0.76, height, boxstyle='round,pad=0.02',
                                    facecolor='white' if dashed else colour, edgecolor='k',
                                    linestyle='--' if dashed else '-'))
        ax.text(x, 0, label, ha='center', va='center', fontsize=8)

    box(0, 'stem')
    x = 1
    for s, stage in enumerate(genotype.stages):
        start = x
        for op in stage:
            spec = G.op_spec(op)
            if spec is None:
                box(x, 'skip', 0.4, dashed=True)
            else:
                box(x, G.short_name(op), 0.5 + 0.1 * spec[1], _COLOURS.get(spec[0], 'lightblue'))
            x += 1
        ax.plot([start - 0.4, x - 0.6], [0.62, 0.62], color='k', lw=1)
        ax.text((start + x - 1) / 2, 0.72, f'stage {s}', ha='center', fontsize=8)
    box(x, 'head')
    for i in range(x):
        ax.annotate('', xy=(i + 0.62, 0), xytext=(i + 0.38, 0), arrowprops=dict(arrowstyle='->'))
    ax.set_xlim(-0.6, x + 0.6)
    ax.set_ylim(-0.7, 0.9)
    ax.set_title(f'MBConv chain: {genotype}', fontsize=8)
    ax.axis('off')
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=120)
    plt.close(fig)


def draw_genotype(genotype: G.Genotype, workdir: str) -> list:
    """``chain.png`` in ``workdir``; returns its path."""
    path = os.path.join(workdir, 'chain.png')
    draw_chain(G.validate(genotype), path)
    return [path]
