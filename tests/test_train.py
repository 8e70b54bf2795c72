"""Training primitives: losses, the DARTS SGD chain and schedule, padded evaluation."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas import train


def _toy(n=23, d=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, k, n).astype(np.int32)
    w = jnp.asarray(rng.normal(size=(d, k)).astype(np.float32))
    return x, y, w


def test_cross_entropy_and_accuracy():
    x, y, w = _toy()
    logits = x @ w
    logp = jax.nn.log_softmax(logits)
    plain = -np.mean(np.asarray(logp)[np.arange(len(y)), y])
    assert float(train.cross_entropy(logits, y)) == pytest.approx(plain, rel=1e-6)
    s = 0.1
    targets = (1 - s) * np.eye(4)[y] + s / 4
    assert float(train.cross_entropy(logits, y, label_smoothing=s)) == pytest.approx(
        -np.mean(np.sum(targets * np.asarray(logp), -1)), rel=1e-6)
    # bfloat16 logits are scored in float32
    assert train.cross_entropy(logits.astype(jnp.bfloat16), y).dtype == jnp.float32
    assert float(train.accuracy(logits, y)) == pytest.approx(np.mean(np.argmax(logits, -1) == y))


def test_cosine_schedule_endpoints_and_per_epoch_steps():
    s = train.make_cosine_schedule(0.025, 0.001, 4, 10)
    assert float(s(0)) == pytest.approx(0.025) and float(s(9)) == pytest.approx(0.025)
    assert float(s(10)) == pytest.approx(0.001 + 0.024 * (1 + np.cos(np.pi / 4)) / 2, rel=1e-5)
    assert float(s(39)) > 0.001 and float(s(40)) == pytest.approx(0.001, rel=1e-5)
    assert float(s(1000)) == pytest.approx(0.001, rel=1e-5)
    values = [float(s(t)) for t in range(40)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    # per step, to zero, with a traced learning rate (a searched hyperparameter)
    per_step = jax.jit(lambda lr, t: train.make_cosine_schedule(lr, 0.0, 8)(t))
    assert float(per_step(0.1, 0)) == pytest.approx(0.1) and float(per_step(0.1, 8)) == pytest.approx(0.0, abs=1e-9)
    assert float(per_step(0.1, 4)) == pytest.approx(0.05, rel=1e-6)


def test_sgd_is_pytorch_sgd_with_clip_coupled_decay_and_momentum():
    lr, mom, wd, clip = 0.1, 0.9, 0.01, 1.0
    tx = train.make_sgd(lambda t: lr, momentum=mom, weight_decay=wd, grad_clip=clip)
    p = {'a': jnp.array([1.0, -2.0]), 'b': jnp.array([[0.5]])}
    grads = [{'a': jnp.array([3.0, 4.0]), 'b': jnp.array([[0.0]])}, {'a': jnp.array([0.1, 0.0]), 'b': jnp.array([[0.2]])}]
    state = tx.init(p)
    ref, buf = jax.tree.map(np.asarray, p), None
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        # torch: clip_grad_norm_, then SGD(weight_decay, momentum): d = g + wd w; buf = mom buf + d; w -= lr buf
        norm = np.sqrt(sum(np.sum(np.asarray(v) ** 2) for v in jax.tree.leaves(g)))
        g = jax.tree.map(lambda v: np.asarray(v) * min(1.0, clip / norm), g)
        d = jax.tree.map(lambda gv, w: gv + wd * w, g, ref)
        buf = d if buf is None else jax.tree.map(lambda b, dv: mom * b + dv, buf, d)
        ref = jax.tree.map(lambda w, b: w - lr * b, ref, buf)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def _sums(w):
    @chex.assert_max_traces(n=1)   # every batch has the same shape: one compiled program
    def sums(x, y, mask):
        return train.masked_sums(x @ w, y, mask)
    return sums


@pytest.mark.parametrize('batch', [1, 5, 8, 23, 40])
def test_padded_evaluation_equals_the_unpadded_mean(batch):
    chex.clear_trace_counter()
    x, y, w = _toy()
    logits = x @ w
    want = {'loss': float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()),
            'correct': float(np.mean(np.argmax(logits, -1) == y))}
    fn = jax.jit(_sums(w))
    got = train.evaluate(fn, x, y, batch)
    assert got == pytest.approx(want, rel=1e-5)
    # stacked and scanned inside a program
    b = train.pad_batches(x, y, batch)
    assert b.x.shape == (-(-23 // batch), batch, 5) and b.mask.sum() == 23 and np.all(b.x.reshape(-1, 5)[23:] == 0)
    means, preds = jax.jit(lambda xs, ys, ms: train.scan_evaluate(lambda x_: x_ @ w, xs, ys, ms))(*b)
    assert {k: float(v) for k, v in means.items()} == pytest.approx(want, rel=1e-5)
    np.testing.assert_array_equal(np.asarray(preds).ravel()[:23], np.argmax(logits, -1))
    # the first `limit` examples only
    head = train.evaluate(fn, x[:7], y[:7], batch)
    b7 = train.pad_batches(x, y, batch, limit=7)
    assert b7.mask.sum() == 7
    assert train.evaluate(fn, *(a.reshape((-1,) + a.shape[2:])[:7] for a in b7[:2]), batch) == pytest.approx(head)


def test_predict_drops_the_padding_along_the_example_axis():
    x, _, w = _toy()
    seeds = jnp.stack([w, 2 * w, -w])
    fn = jax.jit(lambda xb: jnp.argmax(jnp.einsum('bd,sdk->sbk', xb, seeds), -1))   # (seeds, batch)
    got = train.predict(fn, x, 8, axis=1)
    assert got.shape == (3, 23)
    np.testing.assert_array_equal(got, np.argmax(np.einsum('bd,sdk->sbk', x, seeds), -1))
