"""The DARTS cell space as a :class:`jaxnas.spaces.base.SearchSpace`."""
from __future__ import annotations

import numpy as np

from jaxnas.spaces.base import EdgeShape, SearchSpace
from jaxnas.spaces.darts import genotype as G
from jaxnas.spaces.darts import choices as codec


def one_hot(genotype) -> dict:
    """The supernet mix of a genotype: 1 for each chosen (edge, op), 0 elsewhere."""
    G.validate(genotype)
    mix = {}
    for cell in G.CELL_TYPES:
        m = np.zeros(G.ARCH_SHAPES[cell], np.float32)
        for k, (op, j) in enumerate(getattr(genotype, cell)):
            if op not in G.PRIMITIVES:
                raise G.GenotypeError(f'op {op!r} is not one of the search primitives '
                                      f"({', '.join(G.PRIMITIVES)}); it has no place in the supernet's mix")
            m[G.edge_index(k // 2, j), G.PRIMITIVES.index(op)] += 1.0
        mix[cell] = m
    return mix


def diagnostics(weights, genotype, threshold=None) -> dict:
    out = {'skip_connect_normal': genotype.count(('skip_connect',), 'normal'),
           'parameter_free_normal': genotype.count(G.PARAMETER_FREE, 'normal')}
    if threshold is not None:
        out['edges_below_threshold'] = G.edges_below(weights, genotype, threshold)
    return out


def search_network(model, num_classes: int, *, mode: str = 'dense', partial_channels: int = 1):
    from jaxnas.spaces.darts import supernet
    return supernet.SearchNetwork(model.channels, num_classes, model.layers, model.stem_multiplier,
                                  mode=mode, partial_channels=partial_channels)


def eval_network(genotype, retrain, num_classes: int):
    from jaxnas.spaces.darts import evalnet
    return evalnet.make_network(genotype, network=retrain.network, C=retrain.channels, num_classes=num_classes,
                                layers=retrain.layers, auxiliary=retrain.auxiliary_weight > 0,
                                aux_channels=tuple(retrain.aux_channels))


def draw(genotype, workdir: str) -> list:
    from jaxnas.spaces.darts import drawing
    return drawing.draw_genotype(genotype, workdir)


def edge_shapes(model, input_shape) -> dict:
    """Every edge of the search network at ``input_shape (H, W, C)``: cells of one type run
    at several widths, so a row appears once per distinct (H, W, C, stride)."""
    from jaxnas.spaces.darts.supernet import reduction_layers
    H, W, _ = input_shape
    C = model.channels
    out = {cell: {} for cell in G.CELL_TYPES}
    for i in range(model.layers):
        reduction = i in reduction_layers(model.layers)
        if reduction:
            C *= 2
        cell = 'reduce' if reduction else 'normal'
        for node in range(G.NUM_NODES):
            for j in range(G.NUM_INPUTS + node):
                stride = 2 if reduction and j < G.NUM_INPUTS else 1
                hw = (H, W) if stride == 2 or not reduction else (H // 2, W // 2)
                key = (G.edge_index(node, j), hw, C, stride)
                out[cell][key] = out[cell].get(key, 0) + 1
        if reduction:
            H, W = H // 2, W // 2
    return {cell: [EdgeShape(cell, row, hw, c, c, s, n) for (row, hw, c, s), n in sorted(rows.items())]
            for cell, rows in out.items()}


def check_config(config) -> None:
    """The search network's and the evaluation network's fields this space reads."""
    from jaxnas.config import ConfigError, check_channels_divisible
    check_channels_divisible(config, SPACE)
    from jaxnas.spaces.darts.evalnet import NETWORKS
    for field in ('model.layers', 'retrain.layers'):
        section, name = field.split('.')
        if section in config and config[section][name] < 3:
            raise ConfigError(f'bad config value {field}={config[section][name]}: must be >= 3 '
                              '(two reduction cells and a normal one)')
    if 'retrain' in config and config.retrain.network not in NETWORKS:
        raise ConfigError(f'bad config value retrain.network={config.retrain.network!r}: '
                          f"choose one of {', '.join(NETWORKS)}")


def edge_keep() -> dict:
    """A derived cell keeps 2 of the ``2 + i`` inputs of node ``i``: row weight ``2 / (2 + i)``."""
    keep = np.zeros(G.ARCH_SHAPES['normal'][0], np.float32)
    for node in range(G.NUM_NODES):
        for j in range(G.NUM_INPUTS + node):
            keep[G.edge_index(node, j)] = 2.0 / (G.NUM_INPUTS + node)
    return {cell: keep for cell in G.CELL_TYPES}


SPACE = SearchSpace(
    name='darts', label='DARTS cell', primitives=G.PRIMITIVES, cell_types=G.CELL_TYPES,
    arch_shapes=G.ARCH_SHAPES, edge_targets=G.EDGE_TARGETS, parameter_free=G.PARAMETER_FREE,
    genotype_type=G.Genotype, init_arch=G.init_arch, sample=G.sample, derive=G.derive, parse=G.resolve,
    from_json=G.from_json, to_json=lambda g: g.to_json(), one_hot=one_hot, choices=codec.make_codec,
    search_network=search_network, eval_network=eval_network, draw=draw, diagnostics=diagnostics,
    edge_shapes=edge_shapes, check_config=check_config, published=G.PUBLISHED, edge_keep=edge_keep(),
    derive_excludes=('none',))
