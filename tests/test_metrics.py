"""Scores: classification metrics against scikit-learn; XLA cost analysis (scans unrolled
without patching jax.lax), memory, latency."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from jaxnas import metrics
from jaxnas.costs import xla


@pytest.mark.parametrize('case', ['random', 'missing_class', 'never_predicted', 'perfect'])
def test_classification_metrics_match_sklearn(case):
    rng = np.random.default_rng(0)
    k = 6
    y_true = rng.integers(0, k, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, k, 200))
    if case == 'missing_class':
        y_true[y_true == 5] = 0  # class 5 is predicted but never true
    elif case == 'never_predicted':
        y_pred[y_pred == 2] = 3  # class 2 is true but never predicted
    elif case == 'perfect':
        y_pred = y_true.copy()
    got = metrics.classification_metrics(y_true, y_pred, k)
    labels = list(range(k))
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average='macro',
                                                     zero_division=0)
    assert got['accuracy'] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert got['precision'] == pytest.approx(p)
    assert got['recall'] == pytest.approx(r)
    assert got['f1'] == pytest.approx(f)
    np.testing.assert_array_equal(got['confusion_matrix'], skm.confusion_matrix(y_true, y_pred, labels=labels))
    assert got['num_examples'] == 200


def test_cost_analysis_counts_every_scan_iteration():
    def f(x, w):
        return jax.lax.scan(lambda c, wi: (c @ wi, None), x, w)[0]
    x, w = jnp.ones((16, 32)), jnp.ones((4, 32, 32))
    scan_before = jax.lax.scan
    compiled, _ = xla.compile_forward(f, x, w)
    cost = xla.compile_cost(compiled, batch_size=16)
    assert cost['macs'] == pytest.approx(4 * 16 * 32 * 32, rel=0.01)
    assert cost['macs_per_example'] == pytest.approx(cost['macs'] / 16)
    assert jax.lax.scan is scan_before   # nothing patched
    # kept as a loop, XLA counts the body once
    assert xla.xla_flops(f, x, w) / 2 == pytest.approx(16 * 32 * 32, rel=0.01)


def test_unrolled_scans_nested_reversed_and_in_cond_branches_give_the_same_results():
    def f(x, w):
        def outer(c, wi):
            c = jax.lax.scan(lambda c2, _: (jax.nn.relu(c2 @ wi) - 0.1, None), c, None, length=3, reverse=True)[0]
            c = jax.lax.cond(c.sum() > 0, lambda c: jnp.tanh(c @ wi), lambda c: c, c)
            return c, c.sum()
        return jax.lax.scan(outer, x, w)
    x = jax.random.normal(jax.random.key(0), (16, 32))
    w = 0.2 * jax.random.normal(jax.random.key(1), (4, 32, 32))
    got, want = jax.jit(xla.unroll_scans(f))(x, w), jax.jit(f)(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    jaxpr = str(jax.make_jaxpr(xla.unroll_scans(f))(x, w))
    assert 'unroll=1' not in jaxpr   # every scan is unrolled
    # 4 outer steps x (3 inner matmuls + the dearest cond branch, one more), plus the elementwise work
    macs = 4 * 4 * 16 * 32 * 32
    assert macs < xla.xla_flops(f, x, w, unroll=True) / 2 < 1.1 * macs
    assert xla.conv_linear_macs(f, x, w) == macs


def test_dense_layer_macs_memory_latency():
    w = jnp.ones((64, 32))
    f = lambda w, x: jnp.tanh(x @ w)
    out = metrics.forward_cost(f, w, jnp.ones((8, 64)), batch_size=8, n=5, warmup=1)
    assert out['macs'] >= 8 * 64 * 32 and out['macs'] < 1.2 * 8 * 64 * 32
    assert out['batch_size'] == 8 and out['latency_calls'] == 5
    assert out['latency_ms_median'] > 0
    assert out['memory_argument_size'] == (64 * 32 + 8 * 64) * 4
    assert out['memory_output_size'] == 8 * 32 * 4
    assert out['memory_peak_bytes'] >= out['memory_argument_size']
    assert xla.count_params({'a': w, 'b': [jnp.ones(3)]}) == 64 * 32 + 3
