"""The MBConv chain space as a :class:`jaxnas.spaces.base.SearchSpace`.

:func:`make_space` builds the space of any layer layout (layers per stage); :data:`SPACE`
is the registered one, :data:`~jaxnas.spaces.mbconv.genotype.DEFAULT_LAYERS`. The
stages' widths and strides, the stem and the head are config (``model.mbconv`` for the
search network, ``retrain.mbconv`` for the evaluation network).
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from jaxnas.spaces.base import EdgeShape, SearchSpace
from jaxnas.spaces.mbconv import choices as codec
from jaxnas.spaces.mbconv import genotype as G
from jaxnas.spaces.mbconv import macro as M


def search_network(model, num_classes: int, *, mode: str = 'dense', partial_channels: int = 1,
                   layers: Sequence[int] = G.DEFAULT_LAYERS):
    from jaxnas.spaces.mbconv.supernet import MBConvSearchNetwork
    return MBConvSearchNetwork(M.from_config(model.mbconv), tuple(layers), num_classes, mode=mode,
                               partial_channels=partial_channels)


def eval_network(genotype, retrain, num_classes: int):
    from jaxnas.spaces.mbconv import evalnet
    return evalnet.make_network(G.validate(genotype), M.from_config(retrain.mbconv), num_classes)


def draw(genotype, workdir: str) -> list:
    from jaxnas.spaces.mbconv import drawing
    return drawing.draw_genotype(genotype, workdir)


def edge_shapes(model, input_shape, *, layers: Sequence[int] = G.DEFAULT_LAYERS) -> dict:
    """One :class:`EdgeShape` per searchable layer (row), in network order: its input
    ``(H, W)`` and channels, output channels and stride (each layer runs once)."""
    H, W = input_shape[0], input_shape[1]
    return {G.CELL_TYPE: [EdgeShape(G.CELL_TYPE, row, s.input_hw, s.c_in, s.c_out, s.stride, 1)
                          for row, s in enumerate(M.plan(M.from_config(model.mbconv), layers, (H, W)))]}


def diagnostics(weights, genotype, threshold=None, *, layers: Sequence[int] = G.DEFAULT_LAYERS) -> dict:
    """Identity (skip) layers and depth of the derived chain; with a threshold, how many
    chosen MBConv ops are below it (first layers of a stage cannot fall back to skip)."""
    skips = genotype.count((G.SKIP,))
    out = {'skip_connect_normal': skips, 'parameter_free_normal': skips, 'depth': genotype.depth()}
    if threshold is not None:
        w = np.asarray(weights[G.CELL_TYPE])
        out['edges_below_threshold'] = int(sum(w[l, G.PRIMITIVES.index(op)] < threshold
                                               for l, op in enumerate(genotype.ops) if op != G.SKIP))
    return out


def edge_op(name: str, edge):
    """One layer's op alone at its shapes: the evaluation network's MBConv block
    ``C_in -> C_out`` (residual where the shapes match), the identity (where allowed)."""
    from jaxnas.ops.eval_forms import Identity
    from jaxnas.spaces.mbconv.evalnet import MBConvBlock
    if name == G.SKIP:
        return Identity()
    k, e = G.op_spec(name)
    return MBConvBlock(edge.c_in, edge.c_out, k, e, edge.stride)


def check_config(config, *, space: SearchSpace, layers: Sequence[int]) -> None:
    """The macro sections build; the partial-channel K divides the scanned layers' widths."""
    from jaxnas.config import ConfigError, partial_channel_k
    for section, stages in (('model', len(layers)), ('retrain', None)):
        if section not in config or 'mbconv' not in config[section]:
            if section == 'model':
                raise ConfigError('the mbconv space needs the config section model.mbconv (see jaxnas/config.py)')
            continue
        for field, msg in M.problems(config[section].mbconv, stages):
            value = config[section].mbconv.get(field)
            raise ConfigError(f'bad config value {section}.mbconv.{field}={value!r}: {msg}')
    k = partial_channel_k(config, space)
    if k > 1:
        macro = M.from_config(config.model.mbconv)
        for s, (n, width) in enumerate(zip(layers, macro.widths)):
            if n > 1 and width % k:
                raise ConfigError(f'bad config value model.mbconv.widths={macro.widths!r}: stage {s} width '
                                  f'{width} must be divisible by the partial-channel k={k}')


def make_space(layers: Sequence[int] = G.DEFAULT_LAYERS, name: str = 'mbconv') -> SearchSpace:
    """The MBConv space with ``layers`` searchable layers per stage, registered as ``name``."""
    layers = G.check_layers(layers)
    kw = dict(layers=layers)
    published = G.reference_genotypes(layers)
    space = SearchSpace(
        name=name, label='MBConv chain', primitives=G.PRIMITIVES, cell_types=G.CELL_TYPES,
        arch_shapes=G.arch_shapes(layers), edge_targets=np.arange(sum(layers)), parameter_free=G.PARAMETER_FREE,
        genotype_type=G.Genotype,
        init_arch=functools.partial(G.init_arch, **kw),
        sample=functools.partial(G.sample, **kw),
        derive=functools.partial(G.derive, **kw),
        parse=functools.partial(G.resolve, published=published),
        from_json=G.from_json, to_json=lambda g: g.to_json(),
        one_hot=functools.partial(G.one_hot, **kw),
        choices=functools.partial(codec.make_codec, layers),
        search_network=functools.partial(search_network, **kw),
        eval_network=eval_network, draw=draw,
        diagnostics=functools.partial(diagnostics, **kw),
        edge_shapes=functools.partial(edge_shapes, **kw),
        published=published, op_mask={G.CELL_TYPE: G.allowed(layers)}, edge_op=edge_op)
    # check_config needs the space itself (PC-DARTS's relaxation is built from it)
    object.__setattr__(space, 'check_config', functools.partial(check_config, space=space, layers=layers))
    return space


SPACE = make_space(G.DEFAULT_LAYERS)
