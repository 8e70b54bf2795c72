"""The cost-model contract (jaxnas.costs.table), the expected cost's gradient, the loss forms
(jaxnas.costs.objective) and a search whose cost constraint binds."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_tiny_config
from jaxnas import config as config_lib, costs, relax, search, spaces
from jaxnas.costs import models, objective, table as T

SPACES = ('darts', 'nb201', 'mbconv')


def _table(space_name, model='params'):
    c = config_lib.get_config()
    c.space = space_name
    return costs.table_for_config(c, model)


@pytest.mark.parametrize('space_name', SPACES)
def test_table_contract(space_name):
    space = spaces.get(space_name)
    t = _table(space_name)
    assert t.unit == models.get('params').unit and t.space == space_name
    for cell, shape in space.arch_shapes.items():
        c = np.asarray(t.costs[cell])
        assert c.shape == tuple(shape) and np.all(c >= 0) and np.all(np.isfinite(c))
        if 'none' in space.primitives:
            assert np.all(c[:, space.primitives.index('none')] == 0)
        if space.op_mask is not None and cell in space.op_mask:
            assert np.all(c[~np.asarray(space.op_mask[cell])] == 0)
        assert c.max() > 0
    for i in range(3):
        g = space.sample(jax.random.key(i))
        rows = t.breakdown(g, space)
        assert rows and t.genotype_cost(g, space) == pytest.approx(sum(r['cost'] for r in rows))
        assert t.genotype_cost(str(g), space) == t.genotype_cost(g, space)   # text form parses
    json.loads(t.dumps())


def test_table_costs_scale_with_the_op():
    """XLA multiply-adds: a 5x5 separable conv costs more than a 3x3 one on every DARTS edge,
    a pool less than either; a row's cost sums its occurrences (reduce rows at two widths)."""
    space = spaces.get('darts')
    t = _table('darts', 'xla')
    P = space.primitives
    for cell in space.cell_types:
        c = np.asarray(t.costs[cell])
        assert np.all(c[:, P.index('sep_conv_5x5')] > c[:, P.index('sep_conv_3x3')])
        assert np.all(c[:, P.index('sep_conv_3x3')] > c[:, P.index('max_pool_3x3')])
    counts = {}
    for cell, row, edge, op, each in t.rows:
        if op == 'sep_conv_3x3':
            counts.setdefault((cell, row), []).append(edge.count * each)
    for (cell, row), parts in counts.items():
        assert np.asarray(t.costs[cell])[row, P.index('sep_conv_3x3')] == pytest.approx(sum(parts))


def test_darts_keep_matches_random_genotypes():
    """The expected cost under a uniform mix over the derivable ops equals the mean cost of
    uniformly sampled genotypes: edge_keep (2 of 2 + i inputs per node) is what a derived
    cell keeps."""
    space = spaces.get('darts')
    t = _table('darts')
    w = {cell: np.ones(s, np.float32) for cell, s in space.arch_shapes.items()}
    for cell in w:
        w[cell][:, space.primitives.index('none')] = 0
        w[cell] /= w[cell].sum(-1, keepdims=True)
    expected = float(t.expected(w))
    sampled = np.mean([t.genotype_cost(space.sample(jax.random.key(i)), space) for i in range(400)])
    assert sampled == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize('space_name', ('darts', 'mbconv'))
@pytest.mark.parametrize('name', ('darts', 'snas', 'pcdarts', 'fairdarts'))
def test_expected_cost_gradient_closed_form(space_name, name):
    """dE/da_eo = keep_e p_eo (c_eo - sum_o' p_eo' c_eo') for the softmax expectation over the
    ops a derived genotype can hold (the op mask, DARTS's none left out: p = 0, no gradient)."""
    space = spaces.get(space_name)
    t = _table(space_name)
    r = relax.make_relaxation(name, space=space, total_steps=10)
    logits = r.init(jax.random.key(1), space.arch_shapes)
    logits = jax.tree.map(lambda a: a + jax.random.normal(jax.random.key(2), a.shape), logits)
    key = jax.random.key(3)
    g = jax.grad(lambda a: t.expected(r.cost_weights(a, key, 0)))(logits)
    for cell in space.cell_types:
        a = np.asarray(logits[cell], np.float64)
        if space.op_mask is not None and cell in space.op_mask:
            a = np.where(np.asarray(space.op_mask[cell]), a, -np.inf)
        for op in space.derive_excludes:
            a[:, space.primitives.index(op)] = -np.inf
        p = np.exp(a - a.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        c = np.asarray(t.costs[cell], np.float64)
        closed = t.keep[cell][:, None] * p * (c - (p * c).sum(-1, keepdims=True))
        for op in space.derive_excludes:
            assert np.all(np.asarray(g[cell])[:, space.primitives.index(op)] == 0)
        np.testing.assert_allclose(np.asarray(g[cell]), closed, rtol=2e-4, atol=1e-3 * np.abs(closed).max())


def test_drnas_cost_is_the_dirichlet_mean_over_derivable_ops():
    space = spaces.get('darts')
    r = relax.make_relaxation('drnas', space=space)
    logits = jax.tree.map(lambda a: a + jax.random.normal(jax.random.key(4), a.shape),
                          r.init(jax.random.key(0), space.arch_shapes))
    w = r.cost_weights(logits, None, 0)
    none = space.primitives.index('none')
    for cell in space.cell_types:
        conc = np.asarray(jax.nn.elu(logits[cell]) + 1.0, np.float64)
        conc[:, none] = 0
        np.testing.assert_allclose(np.asarray(w[cell]), conc / conc.sum(-1, keepdims=True), rtol=1e-5)


def test_gdas_cost_is_the_sampled_ops_cost():
    """GDAS: the forward value is the cost of the sampled one-hot path; the gradient reaches
    the logits through the straight-through softmax."""
    space = spaces.get('nb201')
    t = _table('nb201')
    r = relax.make_relaxation('gdas', space=space, total_steps=10)
    logits = r.init(jax.random.key(0), space.arch_shapes)
    key = jax.random.key(5)
    mix = r.weights(logits, key, 3)
    hard = {k: np.asarray(jax.nn.one_hot(np.argmax(np.asarray(v), -1), v.shape[-1])) for k, v in mix.items()}
    value = float(t.expected(r.cost_weights(logits, key, 3)))
    assert value == pytest.approx(float(np.sum(hard['cell'] * t.costs['cell'])), rel=1e-5)
    g = jax.grad(lambda a: t.expected(r.cost_weights(a, key, 3)))(logits)
    assert float(jnp.abs(g['cell']).sum()) > 0


def test_random_path_has_no_cost_term():
    space = spaces.get('nb201')
    r = relax.make_relaxation('random_path', space=space)
    with pytest.raises(costs.CostError, match='random_path'):
        objective.make_cost_term(_table('nb201'), r, form='hinge', target=1.0, weight=1.0)


def test_loss_forms():
    ce = jnp.float32(2.0)
    T = 100.0
    for form in objective.FORMS:
        f = lambda e: objective.cost_loss(ce, e, form=form, target=T, weight=0.5)
        # more cost never lowers the loss; the gradient in E is >= 0
        assert float(f(150.0)) >= float(f(100.0)) >= float(f(50.0)) - 1e-6
        assert float(jax.grad(f)(120.0)) > 0
    add = lambda e: objective.cost_loss(ce, e, form='additive', target=T, weight=0.5)
    hinge = lambda e: objective.cost_loss(ce, e, form='hinge', target=T, weight=0.5)
    mul = lambda e: objective.cost_loss(ce, e, form='multiplicative', target=T, weight=0.5, exponent=0.6)
    assert float(add(T)) == pytest.approx(2.0) and float(hinge(T)) == pytest.approx(2.0)
    assert float(mul(T)) == pytest.approx(2.0 * 0.5)
    assert float(jax.grad(hinge)(80.0)) == 0.0 and float(jax.grad(add)(80.0)) > 0
    with pytest.raises(costs.CostError, match='target > 1'):
        objective.check_form('multiplicative', 0.5, 1.0, 0.6)
    with pytest.raises(costs.CostError, match='choose one of'):
        objective.check_form('quadratic', 10.0, 1.0, 0.6)


@pytest.mark.parametrize('form', objective.FORMS)
def test_combine_equals_autodiff(form):
    """The architecture gradient assembled from the cross-entropy's gradient and the cost's
    vjp equals autodiff of the whole form."""
    space = spaces.get('nb201')
    t = _table('nb201')
    r = relax.make_relaxation('darts', space=space)
    target = float(t.expected(r.cost_weights(r.init(jax.random.key(0), space.arch_shapes), None, 0))) * 0.8
    term = objective.make_cost_term(t, r, form=form, target=target, weight=0.7)
    logits = jax.tree.map(lambda a: a + jax.random.normal(jax.random.key(1), a.shape),
                          r.init(jax.random.key(0), space.arch_shapes))
    ce_fn = lambda a: jnp.sum(jnp.sin(a['cell'])) ** 2 + 1.0
    ce, g_ce = jax.value_and_grad(ce_fn)(logits)
    total, g, e = objective.combine(term, logits, None, 0, ce, g_ce)
    direct = lambda a: term.loss(ce_fn(a), term.expected(a, None, 0))
    np.testing.assert_allclose(float(total), float(direct(logits)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g['cell']), np.asarray(jax.grad(direct)(logits)['cell']), rtol=1e-4,
                               atol=1e-6)


def test_gpu_roofline_pads_channels():
    """The GPU model costs an op at channels padded to the tensor-core multiple: 7 and 8
    channels cost the same in bf16; the time is the larger of the two roofline terms."""
    space = spaces.get('nb201')
    build = lambda e: T.edge_module(space, e.op, e)
    e7 = T.OpEntry('nb201', 'nor_conv_3x3', (8, 8), 7, 7, 1, 64, 'bfloat16')
    e8 = e7.replace_channels(8, 8)
    cm = models.get('gpu-h100')
    a, b = cm.costs([e7, e8], build)
    assert a == pytest.approx(b) and a > 0
    flops, nbytes = models.xla_counts(e8, build)
    spec = models.GPU_SPECS['h100']
    assert a == pytest.approx(1e6 * max(flops / spec['peak']['bfloat16'], nbytes / spec['bandwidth']))


@pytest.mark.slow
def test_search_cost_constraint_binds(tmp_path):
    """A tiny DARTS search with a hinge constraint below the unconstrained genotype's cost
    ends with a derived genotype that meets it; the log and summary carry the costs."""
    base = {'cost.model': 'params', 'cost.form': 'hinge'}
    free = search.run_search(make_tiny_config(**base), str(tmp_path / 'free'), progress=False)
    target = 0.5 * free['cost']['genotype_cost']
    assert target > 0
    bound = search.run_search(make_tiny_config(**base, **{'cost.weight': 5.0, 'cost.target': target}),
                              str(tmp_path / 'bound'), progress=False)
    assert bound['cost']['meets_target'] and bound['cost']['genotype_cost'] <= target
    log = [json.loads(line) for line in open(tmp_path / 'bound' / 'log.jsonl')]
    assert all('expected_cost' in r and 'genotype_cost' in r for r in log)
    assert log[-1]['expected_cost'] < log[0]['expected_cost'] or log[0]['expected_cost'] <= target
    assert os.path.exists(tmp_path / 'bound' / 'cost_table.json')
