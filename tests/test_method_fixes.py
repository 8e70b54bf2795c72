"""Each method against its paper / reference code (issue 12, item 2): one test per deviation.

Tiny shapes, one small network compile per test at most; the properties are the papers'
and reference codes' rules, not numbers copied from a run.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import make_tiny_config

from jaxnas import bilevel, config as config_lib, relax, searchers, spaces, train
from jaxnas.nn import channel_shuffle
from jaxnas.ops.modes import MixedEdges
from jaxnas.spaces import darts, nb201
from jaxnas.spaces.nb201.network import NB201SearchNetwork


# --------------------------------------------------------------------------- PC-DARTS

@pytest.mark.parametrize('space', ['darts', 'nb201'])
def test_partial_channel_edges_follow_the_pcdarts_formula(space):
    """out = shuffle([mixed_op(x[:C/K]), (sum_o w_o) * x[C/K:]], K), the edge weight on both parts."""
    prims = darts.PRIMITIVES if space == 'darts' else nb201.PRIMITIVES
    N, S, C, K = 2, 2, 4, 2
    x = jax.random.normal(jax.random.PRNGKey(0), (1, S, 2, 4, 4, C))
    mix = jax.random.uniform(jax.random.PRNGKey(1), (N, S, len(prims)))   # rows not normalised: beta scales them
    kw = dict(space=None if space == 'darts' else 'nb201')
    pc = MixedEdges(C, N, S, 1, prims, mode='partial_channel', partial_channels=K, **kw)
    variables = pc.init(jax.random.PRNGKey(2), x, mix, False)
    out = pc.apply(variables, x, mix, False)
    dense = MixedEdges(C // K, N, S, 1, prims, mode='dense', **kw)
    y = dense.apply(variables, x[..., :C // K], mix, False)
    bypass = jnp.einsum('ns,sbhwc->nbhwc', mix.sum(-1), x[0, ..., C // K:])
    expected = channel_shuffle(jnp.concatenate([y, bypass], -1), K)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_pcdarts_warmup_holds_the_architecture_then_updates_it():
    r = relax.make_relaxation('pcdarts', space=spaces.get('darts'))
    assert relax.warmup_steps(r, 50, 10) == 150                    # PC-DARTS: 15 of 50 epochs
    assert relax.warmup_steps(r._replace(warmup_epochs=2), 50, 10) == 20
    assert relax.warmup_steps(relax.make_relaxation('darts'), 50, 10) == 0
    # the search's architecture optimiser: zero updates and untouched Adam state during warm-up
    c = make_tiny_config(**{'relaxation.name': 'pcdarts', 'relaxation.kwargs.k': 2, 'search.epochs': 2,
                            'relaxation.kwargs.warmup_epochs': 1})
    from jaxnas.search import Searcher
    s = Searcher(c)
    arch = {'w': jnp.ones((3,))}
    g = {'w': jnp.full((3,), 0.5)}
    opt = s.a_tx.init(arch)
    for _ in range(s.steps_per_epoch):
        upd, opt = s.a_tx.update(g, opt, arch)
        assert float(jnp.abs(upd['w']).sum()) == 0.0
    upd, _ = s.a_tx.update(g, opt, arch)
    ref, _ = bilevel.make_arch_optimizer(lr=c.optim.a_lr, b1=c.optim.a_b1, b2=c.optim.a_b2,
                                         weight_decay=c.optim.a_weight_decay).update(
        g, bilevel.make_arch_optimizer().init(arch), arch)
    np.testing.assert_array_equal(np.asarray(upd['w']), np.asarray(ref['w']))   # Adam's first step


# --------------------------------------------------------------------------- DrNAS

def test_drnas_regularisers_and_arch_weight_decay_follow_drnas_code():
    space = spaces.get('nb201')
    a = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    # l2: decay of the logits toward 0, i.e. concentration elu(0) + 1 = 1
    l2 = relax.make_relaxation('drnas', space=space, reg='l2', reg_scale=1e-3)
    g0 = jax.grad(l2.penalty)({'cell': jnp.zeros((6, 5))})['cell']
    assert float(jnp.abs(g0).max()) == 0.0
    np.testing.assert_allclose(np.asarray(jax.grad(l2.penalty)({'cell': a})['cell']), 1e-3 * np.asarray(a),
                               rtol=1e-6)
    # both modes: the method's arch weight decay (0) replaces optim.a_weight_decay in the search
    for reg in ('kl', 'l2'):
        r = relax.make_relaxation('drnas', space=space, reg=reg)
        assert relax.arch_weight_decay(r, 1e-3) == 0.0
    assert relax.arch_weight_decay(relax.make_relaxation('darts'), 1e-3) == 1e-3
    from jaxnas.search import Searcher
    s = Searcher(make_tiny_config(**{'relaxation.name': 'drnas'}))
    arch = {'w': jnp.ones((3,))}
    upd, _ = s.a_tx.update({'w': jnp.zeros((3,))}, s.a_tx.init(arch), arch)
    assert float(jnp.abs(upd['w']).sum()) == 0.0                 # no decay pulls a zero-gradient logit


# --------------------------------------------------------------------------- GDAS

def test_gdas_on_nb201_gives_an_edge_that_samples_none_an_arch_gradient():
    none, conv, skip = (nb201.PRIMITIVES.index(o) for o in ('none', 'nor_conv_3x3', 'skip_connect'))
    logits = np.zeros((6, 5), np.float32)
    logits[:, conv] = 10.0
    logits[0] = 0.0
    logits[0, none] = 10.0                              # edge 1<-0 samples `none`
    logits[nb201.edge_index(3, 1)] = 0.0
    logits[nb201.edge_index(3, 1), skip] = 10.0         # node 1 reaches the cell output by a skip
    arch = {'cell': jnp.asarray(logits)}
    r = relax.make_relaxation('gdas', space=spaces.get('nb201'), total_steps=10)
    key = jax.random.PRNGKey(0)
    assert int(jnp.argmax(r.weights(arch, key, 0)['cell'][0])) == none
    net = NB201SearchNetwork(C=2, N=1, num_classes=3, mode='single_path')
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 1))
    y = jnp.array([0, 1, 2, 0])
    variables = net.init(jax.random.PRNGKey(2), x, r.normalized(arch), train=True)

    def loss(a):
        logits_, _ = net.apply(variables, x, r.weights(a, key, 0), train=True, mutable=['batch_stats'])
        return train.cross_entropy(logits_, y)
    g = np.asarray(jax.jit(jax.grad(loss))(arch)['cell'])
    assert np.isfinite(g).all() and np.abs(g[0]).sum() > 0


# --------------------------------------------------------------------------- FairDARTS

def test_fairdarts_entropy_is_the_mean_binary_entropy_of_its_sigmoids():
    r = relax.make_relaxation('fairdarts', space=spaces.get('nb201'))
    half = {'cell': np.full((6, 5), 0.5)}
    assert relax.entropy(half, r) == pytest.approx(np.log(2))
    sure = {'cell': np.full((6, 5), 0.999)}              # every op confidently on: little uncertainty
    assert relax.entropy(sure, r) < 0.01 < relax.entropy(sure)    # a renormalised row would say log(5)
    assert relax.entropy(half, relax.make_relaxation('darts')) == pytest.approx(np.log(5))


def test_fairdarts_accepts_its_reference_settings():
    r = relax.make_relaxation('fairdarts', space=spaces.get('darts'), zero_one_weight=10.0, threshold=0.85,
                              zero_one='l1')
    a = {k: jax.random.normal(jax.random.PRNGKey(0), s) for k, s in darts.ARCH_SHAPES.items()}
    sig = np.concatenate([np.asarray(jax.nn.sigmoid(v)).ravel() for v in a.values()])
    assert float(r.penalty(a)) == pytest.approx(-10.0 * np.mean(np.abs(sig - 0.5)), rel=1e-5)
    c = make_tiny_config(**{'relaxation.name': 'fairdarts', 'optim.a_lr': 3e-3, 'optim.a_b1': 0.9,
                            'optim.a_b2': 0.999, 'optim.w_lr': 0.005, 'optim.w_lr_min': 0.001,
                            'data.batch_size': 128, 'relaxation.kwargs.zero_one': 'l2'})
    config_lib.validate(c)
    with pytest.raises(config_lib.ConfigError, match='zero_one'):
        config_lib.validate(make_tiny_config(**{'relaxation.name': 'fairdarts', 'relaxation.kwargs.zero_one': 'l3'}))


def _connected(ops):
    reach = {0}
    for t in (1, 2, 3):
        if any(s in reach and ops[nb201.edge_index(t, s)] != 'none' for s in range(t)):
            reach.add(t)
    return 3 in reach


def test_nb201_derive_never_emits_a_disconnected_cell():
    rng = np.random.default_rng(0)
    none = nb201.PRIMITIVES.index('none')
    cases = [np.zeros((6, 5)), np.eye(5)[np.zeros(6, int)]]            # ties and an all-`none` argmax
    for _ in range(300):
        w = rng.random((6, 5))
        w[rng.random(6) < 0.6, none] = 2.0                               # `none` wins many edges
        cases.append(w)
    for w in cases:
        argmax = [nb201.PRIMITIVES[i] for i in np.argmax(w, 1)]
        for threshold in (None, 0.85):
            g = nb201.derive({'cell': w}, threshold=threshold)
            assert _connected(g.ops), (w, threshold, g)
            if threshold is None and _connected(argmax):
                assert list(g.ops) == argmax                             # a connected argmax is kept
            for e, op in enumerate(g.ops):                               # only `none` edges were switched on
                if threshold is None and op != argmax[e]:
                    assert argmax[e] == 'none'
    # the all-`none` cell takes the path whose best non-`none` weights are largest
    w = np.full((6, 5), 0.1)
    w[:, none] = 1.0
    w[nb201.edge_index(1, 0), 3] = w[nb201.edge_index(3, 1), 2] = 0.9
    assert nb201.derive({'cell': w}).ops == ('nor_conv_3x3', 'none', 'none', 'none', 'nor_conv_1x1', 'none')


# --------------------------------------------------------------------------- SNAS single level

class _Toy(nn.Module):
    @nn.compact
    def __call__(self, x, mix, train=True):
        w = self.param('w', nn.initializers.normal(0.5), (3, x.shape[-1], 4))
        return jnp.einsum('p,pbk->bk', mix['normal'][0], jnp.tanh(jnp.einsum('bd,pdk->pbk', x, w)))


def test_snas_is_single_level_its_arch_gradient_comes_from_the_training_batch():
    r = relax.make_relaxation('snas', total_steps=10)
    assert r.single_level and not relax.make_relaxation('snas', single_level=False).single_level
    net = _Toy()
    ks = jax.random.split(jax.random.PRNGKey(0), 6)
    batch = lambda k: (jax.random.normal(k, (8, 5)), jax.random.randint(k, (8,), 0, 4))
    arch = {'normal': 0.5 * jax.random.normal(ks[0], (1, 3))}
    variables = net.init(ks[1], batch(ks[2])[0], r.normalized(arch))
    schedule = train.make_cosine_schedule(0.1, 0.001, 2, 5)
    w_tx, a_tx = train.make_sgd(schedule), bilevel.make_arch_optimizer()
    state = bilevel.SearchState(jnp.zeros((), jnp.int32), variables['params'], {}, arch,
                                w_tx.init(variables['params']), a_tx.init(arch), ks[3])
    step = jax.jit(bilevel.make_step(net, r, w_tx, a_tx, schedule, single_level=True))
    new = lambda tb, vb: step(state, tb, vb)[0]
    s1, s2, s3 = new(batch(ks[4]), batch(ks[5])), new(batch(ks[4]), batch(ks[2])), new(batch(ks[2]), batch(ks[5]))
    leaves = lambda s: [np.asarray(v) for v in jax.tree.leaves((s.params, s.arch, s.a_opt, s.w_opt))]
    assert all(np.array_equal(a, b) for a, b in zip(leaves(s1), leaves(s2)))    # the val batch changes nothing
    mu = lambda s: np.asarray(jax.tree.leaves(s.a_opt)[1])           # Adam's first moment: the arch gradient
    assert not np.array_equal(mu(s1), mu(s3))                         # the train batch does
    assert not np.array_equal(np.asarray(s1.arch['normal']), np.asarray(arch['normal']))
    with pytest.raises(ValueError, match='single-level'):
        bilevel.make_step(net, r, w_tx, a_tx, schedule, single_level=True, order='second')
    # the whole training set: train_portion=1 is allowed for a single-level search only
    config_lib.validate(make_tiny_config(**{'relaxation.name': 'snas', 'data.train_portion': 1.0}))
    with pytest.raises(config_lib.ConfigError, match='train_portion'):
        config_lib.validate(make_tiny_config(**{'data.train_portion': 1.0}))


# --------------------------------------------------------------------------- Hessian diagnostic

def test_hessian_eigenvalue_is_signed_and_the_largest():
    def hvp_of(h):
        return lambda v: {'a': h @ v['a']}
    v0 = {'a': jnp.asarray([0.3, -0.5, 0.8])}
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    for eigs in ([-3.0, 1.0, 0.5], [-3.0, -1.0, -2.0], [2.0, -1.0, 0.5]):
        h = jnp.asarray(q @ np.diag(eigs) @ q.T, jnp.float32)
        top = float(bilevel.top_eigenvalue(hvp_of(h), v0, 200, 'max'))
        dominant = float(bilevel.top_eigenvalue(hvp_of(h), v0, 200, 'magnitude'))
        assert top == pytest.approx(max(eigs), rel=1e-3)              # Zela et al.: max(eigvals(H))
        assert dominant == pytest.approx(eigs[int(np.argmax(np.abs(eigs)))], rel=1e-3)


def test_hessian_eigenvalue_over_several_batches_is_that_of_the_mean_loss():
    r = relax.softmax()
    net = _Toy()
    key = jax.random.PRNGKey(3)
    x = jax.random.normal(key, (2, 8, 5))
    y = jax.random.randint(key, (2, 8), 0, 4)
    arch = {'normal': jax.random.normal(key, (1, 3))}
    params = net.init(key, x[0], r.normalized(arch))['params']
    eig = jax.jit(bilevel.make_hessian_eigenvalue(net, r, iters=100))
    lam = float(eig(params, {}, arch, x, y, jax.random.PRNGKey(0)))

    def mean_loss(a):
        return jnp.mean(jnp.stack([train.cross_entropy(net.apply({'params': params}, x[i], r.normalized(
            {'normal': a})), y[i]) for i in range(2)]))
    hess = np.asarray(jax.hessian(mean_loss)(arch['normal'])).reshape(3, 3)
    assert lam == pytest.approx(float(np.linalg.eigvalsh((hess + hess.T) / 2).max()), rel=2e-3, abs=1e-6)


# --------------------------------------------------------------------------- discrete searchers

def test_evolution_tournament_samples_with_replacement():
    s = searchers.regularized_evolution([3, 3, 3, 3], batch_size=1, population_size=2, sample_size=2)
    state = s.init(jax.random.PRNGKey(0))
    for genome, fit in (([0, 0, 0, 0], 1.0), ([2, 2, 2, 2], 0.0)):
        state = s.tell(state, jnp.asarray([genome], jnp.int32), jnp.asarray([fit], jnp.float32))
    children = np.stack([np.asarray(s.ask(state, jax.random.PRNGKey(i)))[0] for i in range(64)])
    from_weaker = ((children == 2).sum(1) == 3).mean()
    # without replacement a full-population tournament always picks the fitter parent;
    # with replacement the weaker one is drawn twice with probability 1/4
    assert 0.05 < from_weaker < 0.5
    assert (((children == 0).sum(1) == 3) | ((children == 2).sum(1) == 3)).all()


def test_reinforce_logits_start_at_small_gaussian_noise():
    s = searchers.reinforce([5, 5, 5, 5, 5, 5], batch_size=1)
    a, b = s.init(jax.random.PRNGKey(0)).logits, s.init(jax.random.PRNGKey(1)).logits
    assert 0.3e-3 < float(jnp.std(a)) < 3e-3 and not np.array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(s.init(jax.random.PRNGKey(0)).logits))
    assert optax.tree.norm(a) > 0
