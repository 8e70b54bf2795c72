"""The NAS-Bench-201 cell space as a :class:`jaxnas.spaces.base.SearchSpace`."""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from jaxnas.spaces.base import EdgeShape, SearchSpace, TabularBenchmark
from jaxnas.spaces.nb201 import choices as codec
from jaxnas.spaces.nb201 import genotype as G


def one_hot(genotype) -> dict:
    g = G.as_genotype(genotype)
    m = np.zeros(G.ARCH_SHAPES['cell'], np.float32)
    for e, op in enumerate(g):
        m[e, G.PRIMITIVES.index(op)] = 1.0
    return {'cell': m}


def derive(weights, threshold=None):
    return G.derive(weights, threshold=threshold)


def diagnostics(weights, genotype, threshold=None) -> dict:
    del weights, threshold  # below-threshold edges become `none` in the derivation itself
    return {'skip_connect_normal': genotype.count(('skip_connect',)),
            'parameter_free_normal': genotype.count(G.PARAMETER_FREE)}


def search_network(model, num_classes: int, *, mode: str = 'dense', partial_channels: int = 1):
    from jaxnas.spaces.nb201.network import NB201SearchNetwork
    return NB201SearchNetwork(model.channels, model.cells_per_stage, num_classes, mode=mode,
                              partial_channels=partial_channels)


class NoAux(nn.Module):
    """Adapter: a network returning logits, called with the evaluation-network contract."""
    net: nn.Module

    def __call__(self, x, train: bool = False, drop_prob=0.0):
        del drop_prob
        return self.net(x, train=train), None


def eval_network(genotype, retrain, num_classes: int):
    from jaxnas.spaces.nb201.network import NB201Network
    return NoAux(NB201Network(G.as_genotype(genotype), retrain.channels, retrain.cells_per_stage, num_classes))


def draw(genotype, workdir: str) -> list:
    from jaxnas.spaces.nb201 import drawing
    return drawing.draw_genotype(genotype, workdir)


def edge_shapes(model, input_shape) -> dict:
    """Three stages of ``N`` cells at ``C, 2C, 4C`` channels and ``H, H/2, H/4``."""
    H, W, _ = input_shape
    C, out = model.channels, []
    for stage in range(3):
        for row in range(G.NUM_EDGES):
            out.append(EdgeShape('cell', row, (H >> stage, W >> stage), C << stage, C << stage, 1,
                                 model.cells_per_stage))
    return {'cell': out}


def _tabular(fn: str):
    def call(*args, **kwargs):
        from jaxnas.spaces.nb201 import tabular
        return getattr(tabular, fn)(*args, **kwargs)
    return call


TABULAR = TabularBenchmark('NATS-Bench tss (NAS-Bench-201)', open=_tabular('open_benchmark'),
                           query=_tabular('query'), score=_tabular('score_genotype'))


def check_config(config) -> None:
    from jaxnas.config import check_channels_divisible
    check_channels_divisible(config, SPACE)


def from_json(obj):
    return G.from_json(obj)


def edge_op(name: str, edge):
    """One NAS-Bench-201 cell op alone (the evaluation cell's forms): ReLU-Conv-BN, the
    bare 3x3 average pool, the identity, ``none`` (nothing)."""
    from jaxnas.ops import eval_forms as F
    if name == 'none':
        return None
    if name == 'skip_connect':
        return F.Identity()
    if name == 'avg_pool_3x3':
        return F.Pool('avg', edge.stride)
    return _NorConv(edge.c_out, {'nor_conv_1x1': 1, 'nor_conv_3x3': 3}[name], edge.stride)


class _NorConv(nn.Module):
    """``nor_conv_kxk`` alone: ReLU, ``k x k`` conv (padding ``(k - 1) // 2``), affine BN."""
    C: int
    k: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        from jaxnas.ops import eval_forms as F
        y = F.Conv(self.C, self.k, self.stride, (self.k - 1) // 2, name='conv')(jax.nn.relu(x))
        return F.batch_norm(self.C, 'bn')(y, train)


SPACE = SearchSpace(
    name='nb201', label='NAS-Bench-201 cell', primitives=G.PRIMITIVES, cell_types=G.CELL_TYPES,
    arch_shapes=G.ARCH_SHAPES, edge_targets=G.EDGE_TARGETS, parameter_free=G.PARAMETER_FREE,
    genotype_type=G.Genotype, init_arch=G.init_arch, sample=G.sample, derive=derive, parse=G.resolve,
    from_json=from_json, to_json=lambda g: g.to_json(), one_hot=one_hot, choices=codec.make_codec,
    search_network=search_network, eval_network=eval_network, draw=draw, diagnostics=diagnostics,
    edge_shapes=edge_shapes, check_config=check_config, tabular=TABULAR, edge_op=edge_op)
