"""The SearchSpace contract, checked on every registered space (no networks compiled;
tests/test_contract.py covers the supernets x modes x relaxations)."""
import json
import os

import jax
import numpy as np
import pytest

from jaxnas import config as config_lib, spaces
from jaxnas.spaces.base import ChoiceCodec, EdgeShape, SearchSpace
from jaxnas.spaces.darts.genotype import GenotypeError

NAMES = spaces.names()


def _keys(n):
    return jax.random.split(jax.random.PRNGKey(0), n)


@pytest.mark.parametrize('name', NAMES)
def test_registry_returns_a_contract_object(name):
    space = spaces.get(name)
    assert isinstance(space, SearchSpace) and space.name == name
    assert set(space.arch_shapes) == set(space.cell_types)
    for cell, (edges, ops) in space.arch_shapes.items():
        assert ops == len(space.primitives) and edges >= 1
        if space.op_mask is not None and cell in space.op_mask:
            mask = np.asarray(space.op_mask[cell])
            assert mask.shape == (edges, ops) and mask.any(-1).all()   # every edge can take some op
    assert len(space.edge_targets) == space.arch_shapes[space.cell_types[0]][0]
    assert set(space.parameter_free) <= set(space.primitives)
    logits = space.init_arch(jax.random.PRNGKey(0))
    assert {k: v.shape for k, v in logits.items()} == dict(space.arch_shapes)


@pytest.mark.parametrize('name', NAMES)
def test_genotype_forms_round_trip_and_name_their_space(name):
    space = spaces.get(name)
    for key in _keys(5):
        g = space.sample(key)
        assert space.is_genotype(g)
        assert space.parse(space.to_text(g)) == g
        obj = space.to_json(g)
        assert obj['space'] == name
        assert space.from_json(json.dumps(obj)) == g
        assert spaces.parse_any(obj) == (space, g)
        assert spaces.parse_any(space.to_text(g))[0] is space
        assert spaces.of_genotype(g) is space


@pytest.mark.parametrize('name', NAMES)
def test_one_hot_is_a_mix_the_derivation_reads_back(name):
    space = spaces.get(name)
    for key in _keys(5):
        g = space.sample(key)
        mix = space.one_hot(g)
        assert {k: np.shape(v) for k, v in mix.items()} == dict(space.arch_shapes)
        if space.op_mask is not None:
            for cell, mask in space.op_mask.items():
                assert not np.asarray(mix[cell])[~np.asarray(mask)].any()
        back = space.one_hot(space.derive(mix))   # the same (edge, op) choices
        assert all(np.array_equal(back[c], mix[c]) for c in space.cell_types)


@pytest.mark.parametrize('name', NAMES)
def test_choice_codec_is_total_and_inverts(name):
    space = spaces.get(name)
    codec = space.choices()
    assert isinstance(codec, ChoiceCodec) and len(codec.names) == len(codec.sizes)
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = [int(rng.integers(0, s)) for s in codec.sizes]
        g = codec.decode(v)
        assert space.is_genotype(g)
        assert codec.encode(g) == v


@pytest.mark.parametrize('name', NAMES)
def test_edge_shapes_cover_every_row_of_every_cell(name):
    space = spaces.get(name)
    config = config_lib.base_config()
    shapes = space.edge_shapes(config.model, (8, 8, 1))
    assert set(shapes) == set(space.cell_types)
    for cell, rows in shapes.items():
        assert all(isinstance(e, EdgeShape) and e.cell == cell and e.count >= 1 for e in rows)
        assert {e.row for e in rows} == set(range(space.arch_shapes[cell][0]))
        assert all(e.stride in (1, 2) and min(e.input_hw) >= 1 and e.c_in >= 1 and e.c_out >= 1 for e in rows)


@pytest.mark.parametrize('name', NAMES)
def test_diagnostics_and_drawing(name, tmp_path):
    space = spaces.get(name)
    g = space.sample(jax.random.PRNGKey(3))
    d = space.diagnostics(space.one_hot(g), g, None)
    assert all(isinstance(v, int) and v >= 0 for v in d.values())
    paths = space.draw(g, str(tmp_path))
    assert paths and all(open(p, 'rb').read(8) == b'\x89PNG\r\n\x1a\n' for p in paths)
    assert all(os.path.dirname(p) == str(tmp_path) for p in paths)


def test_parse_any_names_what_no_space_reads():
    with pytest.raises(GenotypeError) as info:
        spaces.parse_any('not a genotype')
    assert all(n in str(info.value) for n in NAMES) and '\n' not in str(info.value)
    with pytest.raises(GenotypeError, match='nb201'):
        spaces.get('darts').from_json({'space': 'nb201', 'arch': '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|'})


def test_no_caller_outside_the_spaces_tests_a_space_name():
    """The contract's point: loops, studies and reports ask the space, never its name."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'jaxnas')
    offenders = []
    for dirpath, _, files in os.walk(root):
        if os.path.join(root, 'spaces') in dirpath:
            continue
        for f in files:
            if not f.endswith('.py'):
                continue
            text = open(os.path.join(dirpath, f)).read()
            for needle in ("space == '", "space != '", 'hasattr(genotype', "startswith('|')",
                           'from jaxnas.spaces import nb201', 'from jaxnas.spaces import darts'):
                if needle in text:
                    offenders.append(f'{os.path.relpath(os.path.join(dirpath, f), root)}: {needle}')
    assert not offenders, offenders
