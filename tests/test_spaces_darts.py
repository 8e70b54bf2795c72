import json

import numpy as np
import pytest

from jaxnas.spaces import darts
from jaxnas.spaces.darts import GenotypeError

DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])")


def test_space_shape():
    assert len(darts.PRIMITIVES) == 8 and darts.PRIMITIVES[0] == 'none'
    assert darts.NUM_EDGES == 14
    assert darts.EDGE_OFFSETS == (0, 2, 5, 9)
    assert darts.edge_index(3, 4) == 13


@pytest.mark.parametrize('name', ['DARTS_V1', 'DARTS_V2'])
def test_published_text_round_trip_is_exact(name):
    g = darts.PUBLISHED[name]
    assert darts.from_text(str(g)) == g
    if name == 'DARTS_V2':
        assert str(g) == DARTS_V2_TEXT


@pytest.mark.parametrize('name', list(darts.PUBLISHED))
def test_json_round_trip(name):
    g = darts.PUBLISHED[name]
    assert darts.from_json(json.dumps(g.to_json())) == g
    assert darts.from_text(str(g)) == g


def test_range_concat_parses():
    g = darts.PUBLISHED['PC_DARTS_cifar']
    assert g.normal_concat == (2, 3, 4, 5)
    assert g.normal[0] == ('sep_conv_3x3', 1)


def _weights_with(edges_ops, base=None):
    w = np.full((darts.NUM_EDGES, len(darts.PRIMITIVES)), 0.01) if base is None else base
    for (node, src), (op, value) in edges_ops.items():
        w[darts.edge_index(node, src), darts.PRIMITIVES.index(op)] = value
    return w


def test_derive_picks_top2_edges_and_best_non_none_op():
    w = _weights_with({
        (0, 1): ('sep_conv_3x3', 0.9), (0, 0): ('max_pool_3x3', 0.5),
        (1, 2): ('dil_conv_5x5', 0.8), (1, 0): ('skip_connect', 0.7), (1, 1): ('sep_conv_5x5', 0.1),
        (2, 3): ('avg_pool_3x3', 0.6), (2, 1): ('dil_conv_3x3', 0.55),
        (3, 4): ('sep_conv_5x5', 0.9), (3, 0): ('skip_connect', 0.3),
    })
    # `none` is ignored even when it dominates an edge
    w[darts.edge_index(3, 2), 0] = 5.0
    cell = darts.derive_cell(w)
    assert cell == (('sep_conv_3x3', 1), ('max_pool_3x3', 0),
                    ('dil_conv_5x5', 2), ('skip_connect', 0),
                    ('avg_pool_3x3', 3), ('dil_conv_3x3', 1),
                    ('sep_conv_5x5', 4), ('skip_connect', 0))
    g = darts.derive({'normal': w, 'reduce': w})
    darts.validate(g)


def test_derive_ties_follow_stable_order():
    w = np.ones((darts.NUM_EDGES, len(darts.PRIMITIVES)))
    cell = darts.derive_cell(w)
    # all equal: the two lowest-index inputs, first non-none op
    assert [j for _, j in cell] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert all(op == darts.PRIMITIVES[1] for op, _ in cell)


@pytest.mark.parametrize('text, message', [
    (DARTS_V2_TEXT.replace("'dil_conv_3x3'", "'conv_7x7'"), "unknown op 'conv_7x7'"),
    (DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), 'does not exist yet'),
    (DARTS_V2_TEXT.replace("('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat", "('skip_connect', 0)], normal_concat"),
     'positive even number'),
    (DARTS_V2_TEXT.replace(", reduce_concat=[2, 3, 4, 5]", ''), 'lacks field'),
    (DARTS_V2_TEXT[:-5], 'cannot parse'),
    ("Genotype(normal=__import__('os'), normal_concat=[2], reduce=[], reduce_concat=[2])", 'not a literal'),
    ('Genome(normal=[])', 'must be a Genotype'),
    (DARTS_V2_TEXT.replace('normal_concat=[2, 3, 4, 5]', 'normal_concat=[1, 9]'), 'must name states 0..5'),
    (DARTS_V2_TEXT.replace('reduce_concat=[2, 3, 4, 5]', 'reduce_concat=[1, 2, 3]'), 'inputs are not yet reduced'),
    (DARTS_V2_TEXT.replace('normal_concat=[2, 3, 4, 5]', 'normal_concat=[2, 3, 3]'), 'names a state twice'),
    (DARTS_V2_TEXT.replace('normal_concat=[2, 3, 4, 5]', 'normal_concat=[]'), 'must name states'),
    (DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('none', 2)"), "'none' edges are dropped"),
])
def test_malformed_genotype_text_is_rejected_with_one_line(text, message):
    with pytest.raises(GenotypeError) as info:
        darts.from_text(text)
    assert message in str(info.value)
    assert '\n' not in str(info.value)


def test_resolve():
    assert darts.resolve('DARTS_V2') == darts.PUBLISHED['DARTS_V2']
    assert darts.resolve(DARTS_V2_TEXT) == darts.PUBLISHED['DARTS_V2']
    with pytest.raises(GenotypeError, match='unknown genotype'):
        darts.resolve('DARTS_V9')


def test_sample_is_valid_and_deterministic():
    import jax
    for seed in range(5):
        g = darts.sample(jax.random.PRNGKey(seed))
        darts.validate(g)
        assert g == darts.sample(jax.random.PRNGKey(seed))


# ---- genotypes beyond the search space (the reference genotypes.py: NASNet, AmoebaNet) ----

def test_nasnet_and_amoebanet_are_the_reference_genotypes():
    # quark0/darts cnn/genotypes.py: 5 intermediate nodes, concats that skip nodes, ops outside
    # the search primitives (sep_conv_7x7, conv_7x1_1x7).
    nas, amoeba = darts.PUBLISHED['NASNet'], darts.PUBLISHED['AmoebaNet']
    assert nas.num_nodes('normal') == nas.num_nodes('reduce') == 5
    assert nas.normal_concat == (2, 3, 4, 5, 6) and nas.reduce_concat == (4, 5, 6)
    assert nas.reduce[:2] == (('sep_conv_5x5', 1), ('sep_conv_7x7', 0))
    assert nas.reduce[6] == ('skip_connect', 3)
    assert amoeba.normal_concat == (4, 5, 6) and amoeba.reduce_concat == (3, 4, 6)
    assert amoeba.reduce[-2:] == (('conv_7x1_1x7', 0), ('sep_conv_3x3', 5))
    assert amoeba.count(('sep_conv_7x7',), 'reduce') == 2 and nas.count(('skip_connect',), 'normal') == 2
    assert darts.from_text(str(nas)) == nas
    assert str(nas).startswith("Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ")


def test_published_names_parse_through_the_space_registry():
    from jaxnas import spaces
    space = spaces.get('darts')
    for name in ('NASNet', 'AmoebaNet'):
        assert space.parse(name) == darts.PUBLISHED[name]
        assert space.from_json(space.to_json(darts.PUBLISHED[name])) == darts.PUBLISHED[name]
    assert spaces.parse_any('AmoebaNet')[1] == darts.PUBLISHED['AmoebaNet']


def test_genotypes_of_any_node_count_validate():
    three = [('sep_conv_7x7', 1), ('conv_7x1_1x7', 0), ('skip_connect', 2), ('avg_pool_3x3', 0),
             ('dil_conv_5x5', 3), ('max_pool_3x3', 1)]
    one = [('sep_conv_3x3', 0), ('sep_conv_3x3', 1)]
    # normal and reduce with different node counts; a normal concat may include the inputs
    g = darts.make_genotype(three, [0, 4, 2], one, [2])
    assert g.num_nodes('normal') == 3 and g.num_nodes('reduce') == 1
    assert darts.from_json(json.dumps(g.to_json())) == g
    assert darts.from_text(str(g)) == g
    with pytest.raises(GenotypeError, match='must name states 0..4'):
        darts.make_genotype(three, [5], one, [2])
    with pytest.raises(GenotypeError, match='intermediate nodes 2..2'):
        darts.make_genotype(three, [2], one, [3])
    with pytest.raises(GenotypeError, match='positive even number'):
        darts.make_genotype([], [2], one, [2])
    with pytest.raises(GenotypeError, match='node 4 takes input 4'):
        darts.make_genotype(three[:4] + [('sep_conv_3x3', 4), ('sep_conv_3x3', 0)], [2], one, [2])


@pytest.mark.parametrize('name', ['NASNet', 'AmoebaNet'])
def test_search_space_functions_reject_genotypes_outside_it(name):
    from jaxnas.spaces.base import ChoiceError
    g = darts.PUBLISHED[name]
    assert darts.search_space_problem(g) is not None
    for call, error in [(lambda: darts.SPACE.one_hot(g), GenotypeError),
                        (lambda: darts.SPACE.choices().encode(g), ChoiceError),
                        (lambda: darts.edges_below({c: np.ones((14, 8)) for c in darts.CELL_TYPES}, g, 0.5),
                         GenotypeError),
                        (lambda: darts.check_search_space(g), GenotypeError)]:
        with pytest.raises(error) as info:
            call()
        assert '\n' not in str(info.value)
    with pytest.raises(GenotypeError, match='outside the DARTS search space'):
        darts.edge_index(4, 0)
    for published in ('DARTS_V1', 'DARTS_V2', 'PC_DARTS_cifar', 'GDAS_V1'):
        assert darts.search_space_problem(darts.PUBLISHED[published]) is None
        darts.SPACE.one_hot(darts.PUBLISHED[published])


def test_search_space_stays_four_nodes_and_eight_primitives():
    import jax
    assert darts.ARCH_SHAPES == {'normal': (14, 8), 'reduce': (14, 8)}
    assert set(darts.GENOTYPE_OPS) - set(darts.PRIMITIVES) == {'sep_conv_7x7', 'conv_7x1_1x7'}
    g = darts.sample(jax.random.PRNGKey(0))
    assert darts.search_space_problem(g) is None
    w = {c: np.random.default_rng(1).random((14, 8)) for c in darts.CELL_TYPES}
    assert darts.search_space_problem(darts.derive(w)) is None
    assert darts.edges_below(w, darts.derive(w), 2.0) == 16
