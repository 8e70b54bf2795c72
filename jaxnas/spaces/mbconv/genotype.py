"""The MBConv chain space of hardware-aware NAS (ProxylessNAS, Cai et al., ICLR 2019;
FBNet, Wu et al., CVPR 2019; the per-layer kernel/expansion choices of OFA, Cai et al.,
ICLR 2020).

A network is a mobile macro (stem, stages, head; :mod:`jaxnas.spaces.mbconv.macro`)
whose stages are chains of searchable layers. Every layer takes one op:

- ``mbconv_k{3,5,7}_e{3,6}``: a MobileNetV2 inverted residual block with a ``k x k``
  depthwise conv and expansion ratio ``e`` (6 ops);
- ``skip_connect``: the identity, i.e. the layer is dropped (the depth choice).

The first layer of each stage changes the width and/or the resolution (it carries the
stage's stride), so its input and output shapes do not match and the identity is not
allowed there: such layers choose among the 6 MBConv ops only, every other layer among
all 7. The rule depends only on the layer layout (layers per stage), never on the widths,
so a stage whose first layer happens to keep the shape still has no skip there (as the
transition blocks of ProxylessNAS and FBNet). :func:`allowed` is the ``(layers, ops)``
mask; sampling, derivation, the choice codec and validation follow it.

Architecture logits are ``{'layers': (L, 7)}``, one row per searchable layer in network
order, columns in :data:`PRIMITIVES` order.

Text form: ``mbconv:`` then the stages separated by ``|``, each the ``-``-joined short op
names of its layers (``k3e6``, ``k7e3``, ``skip``), e.g.
``mbconv:k3e6-k5e3|k3e3-skip-k7e6|k5e6-skip-skip``. JSON:
``{"space": "mbconv", "stages": [["mbconv_k3_e6", ...], ...]}``.

A genotype carries its own layer layout (the stage lengths), so a genotype of another
layout still retrains (its evaluation network follows it); the search space, its
supernet, one-hot mix and choice codec need the space's layout (:func:`check_layout`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.darts.genotype import GenotypeError as _BaseGenotypeError
from jaxnas.spaces.base import genotype_json, read_genotype_file

KERNELS = (3, 5, 7)
EXPANSIONS = (3, 6)
SKIP = 'skip_connect'
MBCONV_OPS = tuple(f'mbconv_k{k}_e{e}' for k in KERNELS for e in EXPANSIONS)
PRIMITIVES = MBCONV_OPS + (SKIP,)
PARAMETER_FREE = (SKIP,)
CELL_TYPE = 'layers'
CELL_TYPES = (CELL_TYPE,)
# The digits layout: searchable layers per stage (the stages' widths and strides are config).
DEFAULT_LAYERS = (2, 3, 3)
PREFIX = 'mbconv:'


class GenotypeError(_BaseGenotypeError):
    """A genotype (text, JSON or value) that is not a valid MBConv chain."""


def op_spec(name: str):
    """``(kernel, expansion)`` of an MBConv op, ``None`` for the identity."""
    if name == SKIP:
        return None
    if name not in MBCONV_OPS:
        raise GenotypeError(f"unknown MBConv op {name!r}; choose one of {', '.join(PRIMITIVES)}")
    _, k, e = name.split('_')
    return int(k[1:]), int(e[1:])


def short_name(name: str) -> str:
    """``mbconv_k3_e6`` -> ``k3e6``; ``skip_connect`` -> ``skip``."""
    spec = op_spec(name)
    return 'skip' if spec is None else f'k{spec[0]}e{spec[1]}'


_FROM_SHORT = {short_name(p): p for p in PRIMITIVES}


def full_name(token: str) -> str:
    """An op from its short (``k5e3``, ``skip``) or full (``mbconv_k5_e3``) name."""
    if token in PRIMITIVES:
        return token
    if token in _FROM_SHORT:
        return _FROM_SHORT[token]
    raise GenotypeError(f"unknown MBConv op {token!r}; choose one of {', '.join(_FROM_SHORT)} "
                        f"(or {', '.join(PRIMITIVES)})")


# --- layout --------------------------------------------------------------------------------

def check_layers(layers: Sequence[int]) -> tuple:
    layers = tuple(layers)
    if not layers or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                             for n in layers):
        raise GenotypeError(f'an MBConv layout is a non-empty tuple of layers per stage (each >= 1), got {layers!r}')
    return tuple(int(n) for n in layers)


def skippable(layers: Sequence[int]) -> np.ndarray:
    """``(L,)`` bool: may layer ``l`` be the identity (not the first layer of its stage)."""
    return np.array([i > 0 for n in check_layers(layers) for i in range(n)])


def allowed(layers: Sequence[int]) -> np.ndarray:
    """``(L, len(PRIMITIVES))`` bool mask of the ops each layer may take."""
    mask = np.ones((sum(check_layers(layers)), len(PRIMITIVES)), bool)
    mask[:, PRIMITIVES.index(SKIP)] = skippable(layers)
    return mask


def arch_shapes(layers: Sequence[int]) -> dict:
    return {CELL_TYPE: (sum(check_layers(layers)), len(PRIMITIVES))}


def init_arch(key: jax.Array, scale: float = 1e-3, *, layers: Sequence[int] = DEFAULT_LAYERS) -> dict:
    """Architecture logits ``scale * N(0, 1)`` of shape ``(L, 7)``."""
    return {CELL_TYPE: scale * jax.random.normal(key, arch_shapes(layers)[CELL_TYPE], jnp.float32)}


# --- the genotype --------------------------------------------------------------------------

class Genotype(NamedTuple):
    """An MBConv chain: per stage, the op of each of its layers (full op names).

    ``str(g)`` is the text form ``mbconv:k3e6-k5e3|...``; ``g.ops`` the ops of all
    layers in network order; ``g.layers`` the layout (layers per stage).
    """
    stages: tuple

    def __str__(self) -> str:
        return to_text(self)

    @property
    def ops(self) -> tuple:
        return tuple(op for stage in self.stages for op in stage)

    @property
    def layers(self) -> tuple:
        return tuple(len(stage) for stage in self.stages)

    def to_json(self) -> dict:
        return {'space': 'mbconv', 'stages': [list(stage) for stage in self.stages]}

    def count(self, ops: Sequence[str], cell: str = CELL_TYPE) -> int:
        """How many layers use one of ``ops``."""
        del cell  # one chain; the argument only for parity with the cell spaces
        return sum(op in ops for op in self.ops)

    def depth(self) -> int:
        """Layers that are not the identity."""
        return sum(op != SKIP for op in self.ops)


def to_text(g: Genotype) -> str:
    return PREFIX + '|'.join('-'.join(short_name(op) for op in stage) for stage in g.stages)


def make_genotype(stages) -> Genotype:
    """A validated genotype from per-stage op names (short or full)."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise GenotypeError(f'an MBConv genotype is a non-empty list of stages, each a list of op names; '
                            f'got {stages!r}')
    out = []
    for s, stage in enumerate(stages):
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or not stage:
            raise GenotypeError(f'stage {s} of an MBConv genotype must be a non-empty list of op names, '
                                f'got {stage!r}')
        ops = tuple(full_name(op if isinstance(op, str) else repr(op)) for op in stage)
        if ops[0] == SKIP:
            raise GenotypeError(f'stage {s} starts with skip: the first layer of a stage changes the width '
                                'or resolution, so it must be an MBConv op (k3e3 ... k7e6)')
        out.append(ops)
    return Genotype(tuple(out))


def validate(g) -> Genotype:
    if not isinstance(g, Genotype):
        raise GenotypeError(f'not an MBConv genotype: {g!r}')
    return make_genotype(g.stages)


def check_layout(g: Genotype, layers: Sequence[int], purpose: str = 'the search space') -> None:
    """``g`` has the layout ``layers`` (needed wherever a genotype meets the logits)."""
    if g.layers != tuple(layers):
        raise GenotypeError(f'genotype {g} has layers per stage {list(g.layers)}; {purpose} has '
                            f'{list(layers)}. A genotype of another layout retrains but has no place '
                            'in this search space')


_FORMAT = "expected 'mbconv:k3e6-k5e3|k3e3-skip-k7e6|...' (stages split by |, layers by -)"


def from_text(text: str) -> Genotype:
    if not isinstance(text, str):
        raise GenotypeError(f'an MBConv genotype text must be a string, got {text!r}; {_FORMAT}')
    text = text.strip()
    if not text.startswith(PREFIX):
        raise GenotypeError(f'MBConv genotype {text[:60]!r} does not start with {PREFIX!r}; {_FORMAT}')
    body = text[len(PREFIX):]
    if not body:
        raise GenotypeError(f'MBConv genotype {text!r} has no stages; {_FORMAT}')
    stages = []
    for s, stage in enumerate(body.split('|')):
        tokens = [t.strip() for t in stage.split('-')]
        if not stage.strip() or any(not t for t in tokens):
            raise GenotypeError(f'stage {s} of {text!r} has an empty layer; {_FORMAT}')
        stages.append(tokens)
    return make_genotype(stages)


def from_json(obj) -> Genotype:
    """Inverse of :meth:`Genotype.to_json` (a dict or its JSON string)."""
    rest = genotype_json(obj, 'mbconv', GenotypeError)
    if not isinstance(rest, dict):
        raise GenotypeError(f'MBConv genotype JSON must be an object {{"space": "mbconv", "stages": [[...]]}}, '
                            f'got {obj!r}')
    if set(rest) != {'stages'}:
        raise GenotypeError(f'MBConv genotype JSON must have exactly the key "stages" (besides "space"), '
                            f'got {sorted(rest)}')
    return make_genotype(rest['stages'])


# --- sampling, derivation, one-hot ---------------------------------------------------------

def from_ops(ops: Sequence[str], layers: Sequence[int]) -> Genotype:
    """The genotype of the per-layer ops ``ops`` (network order) cut into stages ``layers``."""
    if len(ops) != sum(layers):
        raise GenotypeError(f'{len(ops)} ops for a layout of {sum(layers)} layers {list(layers)}')
    out, i = [], 0
    for n in layers:
        out.append(tuple(ops[i:i + n]))
        i += n
    return make_genotype(out)


def sample(key: jax.Array, *, layers: Sequence[int] = DEFAULT_LAYERS) -> Genotype:
    """A uniformly random genotype: each layer's op uniform over the ops it allows."""
    counts = allowed(layers).sum(-1)
    idx = np.asarray(jax.random.randint(key, counts.shape, 0, jnp.asarray(counts)))
    return from_ops([PRIMITIVES[int(i)] for i in idx], layers)


def derive(weights, threshold: float | None = None, *, layers: Sequence[int] = DEFAULT_LAYERS) -> Genotype:
    """The genotype of relaxed weights ``{'layers': (L, 7)}``: on each layer the allowed op
    of largest weight (ties: lowest index); the identity is never chosen where it is not
    allowed, whatever its weight.

    With ``threshold`` (FairDARTS, Chu et al. 2020: independent sigmoid weights), a layer
    that may be the identity takes its best MBConv op only if that op's weight reaches the
    threshold, and the identity otherwise; a layer that may not keeps its best MBConv op.
    """
    w = np.asarray(weights[CELL_TYPE] if isinstance(weights, dict) else weights, np.float64)
    mask = allowed(layers)
    if w.shape != mask.shape:
        raise GenotypeError(f'MBConv weights have shape {w.shape}, expected {mask.shape}')
    skip = PRIMITIVES.index(SKIP)
    if threshold is None:
        best = np.argmax(np.where(mask, w, -np.inf), axis=1)
        return from_ops([PRIMITIVES[int(b)] for b in best], layers)
    convs = w.copy()
    convs[:, skip] = -np.inf
    best = np.argmax(convs, axis=1)
    ops = [SKIP if mask[l, skip] and convs[l, b] < threshold else PRIMITIVES[int(b)] for l, b in enumerate(best)]
    return from_ops(ops, layers)


def one_hot(g: Genotype, *, layers: Sequence[int] = DEFAULT_LAYERS) -> dict:
    """The genotype as a mix: 1 at each layer's op, 0 elsewhere."""
    validate(g)
    check_layout(g, layers, "the search space's mix")
    m = np.zeros(arch_shapes(layers)[CELL_TYPE], np.float32)
    for l, op in enumerate(g.ops):
        m[l, PRIMITIVES.index(op)] = 1.0
    return {CELL_TYPE: m}


def uniform(op: str, layers: Sequence[int] = DEFAULT_LAYERS) -> Genotype:
    """Every layer ``op``; with ``skip_connect``, the first layer of each stage k3e3."""
    op = full_name(op)
    return Genotype(tuple(tuple(MBCONV_OPS[0] if (op == SKIP and i == 0) else op for i in range(n))
                          for n in check_layers(layers)))


def reference_genotypes(layers: Sequence[int] = DEFAULT_LAYERS) -> dict:
    """Named reference chains of a layout: the smallest and largest MBConv everywhere,
    MobileNetV2's block (k3, e6) everywhere, and the shallowest chain (one k3e3 layer
    per stage, the rest identities)."""
    return {'MBCONV_K3E3': uniform('k3e3', layers), 'MOBILENETV2': uniform('k3e6', layers),
            'MBCONV_K7E6': uniform('k7e6', layers), 'MBCONV_SHALLOW': uniform('skip', layers)}


PUBLISHED = reference_genotypes(DEFAULT_LAYERS)


def resolve(spec, *, published=None) -> Genotype:
    """A genotype from a reference name (``MOBILENETV2``), its text form ``mbconv:...``, a
    JSON object or string, a genotype ``.json`` file, per-stage op lists, or a genotype."""
    published = PUBLISHED if published is None else published
    if isinstance(spec, Genotype):
        return validate(spec)
    if isinstance(spec, dict):
        return from_json(spec)
    if isinstance(spec, (list, tuple)):
        return make_genotype(spec)
    if not isinstance(spec, str):
        raise GenotypeError(f'cannot read MBConv genotype {spec!r}')
    spec = spec.strip()
    if spec in published:
        return published[spec]
    if spec.startswith(PREFIX):
        return from_text(spec)
    if spec.startswith('{'):
        return from_json(spec)
    if spec.endswith('.json'):
        return read_genotype_file(spec, from_json, GenotypeError)
    raise GenotypeError(f"unknown MBConv genotype {spec[:60]!r}; give a name ({', '.join(published)}), "
                        f"a text 'mbconv:k3e6-k5e3|...' or a genotype .json file")
