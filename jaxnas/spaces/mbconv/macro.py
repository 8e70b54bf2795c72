"""The mobile macro of the MBConv space: stem, stages of searchable layers, head.

As in ProxylessNAS / FBNet (scaled down for 8x8 digits by default):

- stem: 3x3 conv with ``stem_channels`` outputs and stride ``stem_stride``, BatchNorm,
  ReLU6;
- stages ``s = 0, 1, ...``: ``layers[s]`` searchable layers of width ``widths[s]``; the
  first layer of a stage has stride ``strides[s]`` and maps the previous width to
  ``widths[s]`` (never the identity), the others keep the shape (stride 1);
- head: 1x1 conv to ``head_channels``, BatchNorm, ReLU6, global average pool, linear
  classifier (ProxylessNAS's feature-mix layer and classifier).

The widths, strides, stem and head are config (``model.mbconv`` for the search network,
``retrain.mbconv`` for the evaluation network); the layers per stage are the search
space's (they fix the logits' shape) or, for an evaluation network, the genotype's.
Spatial sizes follow 'same' padding: a stride-``s`` layer maps ``H`` to ``ceil(H / s)``.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence


class Macro(NamedTuple):
    stem_channels: int
    stem_stride: int
    widths: tuple
    strides: tuple
    head_channels: int


class LayerShape(NamedTuple):
    """One searchable layer: stage, index in the stage, input ``(H, W)``, channels in and
    out, stride."""
    stage: int
    index: int
    input_hw: tuple
    c_in: int
    c_out: int
    stride: int


FIELDS = Macro._fields


def from_config(section) -> Macro:
    """A :class:`Macro` from a ``model.mbconv`` / ``retrain.mbconv`` config section."""
    return Macro(int(section.stem_channels), int(section.stem_stride), tuple(int(w) for w in section.widths),
                 tuple(int(s) for s in section.strides), int(section.head_channels))


def problems(section, num_stages: int | None = None) -> list:
    """``(field, message)`` for every value of a macro section the networks cannot build."""
    out = []
    for f in FIELDS:
        if f not in section:
            out.append((f, 'missing'))
    if out:
        return out
    if section.stem_channels < 1:
        out.append(('stem_channels', 'must be >= 1'))
    if section.stem_stride not in (1, 2):
        out.append(('stem_stride', 'must be 1 or 2'))
    if section.head_channels < 1:
        out.append(('head_channels', 'must be >= 1'))
    widths, strides = tuple(section.widths), tuple(section.strides)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        out.append(('widths', 'must be a non-empty tuple of channel counts >= 1, one per stage'))
    if any(s not in (1, 2) for s in strides):
        out.append(('strides', 'each stage stride must be 1 or 2'))
    if len(strides) != len(widths):
        out.append(('strides', f'needs one stride per stage ({len(widths)} widths)'))
    elif num_stages is not None and len(widths) != num_stages:
        out.append(('widths', f'the layout has {num_stages} stages; give {num_stages} widths and strides'))
    return out


def out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def plan(macro: Macro, layers: Sequence[int], input_hw) -> list:
    """The :class:`LayerShape` of every searchable layer, in network order."""
    if not len(layers) == len(macro.widths) == len(macro.strides):
        from jaxnas.errors import JaxnasError
        raise JaxnasError(f'the MBConv macro has {len(macro.widths)} widths and {len(macro.strides)} strides '
                          f'for a layout of {len(layers)} stages {list(layers)}: give one of each per stage')
    H, W = (out_size(n, macro.stem_stride) for n in input_hw)
    c, out = macro.stem_channels, []
    for s, (n, width, stride) in enumerate(zip(layers, macro.widths, macro.strides)):
        for i in range(n):
            st = stride if i == 0 else 1
            out.append(LayerShape(s, i, (H, W), c, width, st))
            H, W, c = out_size(H, st), out_size(W, st), width
    return out


def stage_plan(macro: Macro, layers: Sequence[int], input_hw) -> list:
    """Per stage: ``(first layer's LayerShape, the shape of the others or None, their
    count)`` -- the layers after the first share one shape (the supernet scans them)."""
    shapes = plan(macro, layers, input_hw)
    out, i = [], 0
    for n in layers:
        out.append((shapes[i], shapes[i + 1] if n > 1 else None, n - 1))
        i += n
    return out
