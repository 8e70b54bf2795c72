"""Discrete searchers: the ask/tell contract, toy-objective progress, determinism,
checkpointing, valid mutations, the choice-space encoding, and argument errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import searchers
from jaxnas.runs import Checkpointer
from jaxnas.spaces import choices, darts, nb201

HPARAMS = {'lr': (0.025, 0.05, 0.1), 'weight_decay': (0.0, 3e-4)}
SPACE = choices.make_space('darts', HPARAMS)
TARGET = np.asarray([s - 1 for s in SPACE.sizes])   # the known optimum of the toy objective
KWARGS = {'random': {}, 'evolution': {'population_size': 16, 'sample_size': 4},
          'reinforce': {'learning_rate': 0.1}}


def toy(candidates):
    """Fraction of choices equal to TARGET: optimum 1 at TARGET only."""
    return (np.asarray(candidates) == TARGET).mean(-1)


def run(name, seed, evaluations=160, batch_size=4):
    s = searchers.make_searcher(name, SPACE, batch_size=batch_size, **KWARGS[name])
    key = jax.random.PRNGKey(seed)
    state = s.init(key)
    bests, asked = [], []
    for r in range(evaluations // batch_size):
        c = s.ask(state, jax.random.fold_in(key, r))
        f = toy(c)
        asked.append(np.asarray(c))
        bests.append(f.max())
        state = s.tell(state, c, jnp.asarray(f, jnp.float32))
    return np.maximum.accumulate(bests), np.concatenate(asked), state


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize('name', ['evolution', 'reinforce'])
def test_searcher_beats_random_on_toy_objective(name):
    seeds = range(5)
    random_best = np.median([run('random', s)[0][-1] for s in seeds])
    best = [run(name, s)[0] for s in seeds]
    assert np.median([b[-1] for b in best]) > random_best + 0.1
    # and it improves over its own start (the first round of candidates)
    assert all(b[-1] > b[0] for b in best)


@pytest.mark.parametrize('name', list(searchers.SEARCHERS))
def test_contract_shapes_ranges_and_determinism(name):
    best1, asked1, state1 = run(name, 3, evaluations=40)
    best2, asked2, state2 = run(name, 3, evaluations=40)
    _, asked3, _ = run(name, 4, evaluations=40)
    assert asked1.shape == (40, SPACE.num_choices) and asked1.dtype == np.int32
    assert (asked1 >= 0).all() and (asked1 < np.asarray(SPACE.sizes)).all()
    np.testing.assert_array_equal(asked1, asked2)
    assert _bits(state1) == _bits(state2)
    assert not np.array_equal(asked1, asked3)
    assert int(state1.count) == 40
    for v in asked1[:5]:
        darts.validate(SPACE.decode(v).genotype)


@pytest.mark.parametrize('name', list(searchers.SEARCHERS))
def test_checkpointed_state_resumes_exactly(name, tmp_path):
    s = searchers.make_searcher(name, SPACE, batch_size=2, **KWARGS[name])
    key = jax.random.PRNGKey(0)

    def rounds(state, start, stop):
        out = []
        for r in range(start, stop):
            c = s.ask(state, jax.random.fold_in(key, r))
            out.append(np.asarray(c))
            state = s.tell(state, c, jnp.asarray(toy(c), jnp.float32))
        return state, out

    full, asked_full = rounds(s.init(key), 0, 12)
    half, asked_a = rounds(s.init(key), 0, 6)
    ckpt = Checkpointer(str(tmp_path / 'ckpt'))
    ckpt.save(6, half)
    _, restored = ckpt.restore(s.init(key))
    ckpt.close()
    assert type(restored) is type(half) and _bits(restored) == _bits(half)
    resumed, asked_b = rounds(restored, 6, 12)
    np.testing.assert_array_equal(np.concatenate(asked_a + asked_b), np.concatenate(asked_full))
    assert _bits(resumed) == _bits(full)


def test_mutation_changes_exactly_one_choice_and_stays_valid():
    sizes = jnp.asarray(SPACE.sizes)
    mutate = jax.jit(searchers.mutate)
    key = jax.random.PRNGKey(0)
    parents = np.asarray(jax.random.randint(key, (200, SPACE.num_choices), 0, sizes))
    changed = set()
    for i, p in enumerate(parents):
        child = np.asarray(mutate(jax.random.fold_in(key, i), jnp.asarray(p), sizes))
        diff = np.nonzero(child != p)[0]
        assert len(diff) == 1
        k = int(diff[0])
        assert SPACE.sizes[k] > 1 and 0 <= child[k] < SPACE.sizes[k]
        changed.add(SPACE.names[k].split('.')[-1])
        darts.validate(SPACE.decode(child).genotype)   # raises on an invalid genotype
    assert {'inputs', 'op_a', 'op_b', 'lr'} <= changed


def test_evolution_is_aging_and_tournament_picks_the_fittest():
    s = searchers.regularized_evolution([3, 3, 3], batch_size=1, population_size=4, sample_size=4)
    state = s.init(jax.random.PRNGKey(0))
    members = np.asarray([[0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 1, 2]], np.int32)
    for i, m in enumerate(members):   # warm-up: asks are random; tell fills the ring buffer
        state = s.tell(state, jnp.asarray(m[None]), jnp.asarray([[0.1, 0.9, np.nan, 0.2][i]], jnp.float32))
    assert float(state.fitness[2]) == -np.inf       # NaN fitness counts as the worst
    # tournaments of 4 drawn with replacement (Real et al.): the fittest [1, 1, 1] is the parent
    # unless it is never drawn (probability (3/4)^4); every child is one mutation from a member
    children = [np.asarray(s.ask(state, jax.random.PRNGKey(r)))[0] for r in range(20)]
    assert all(min((c != m).sum() for m in members) == 1 for c in children)
    assert sum((c != [1, 1, 1]).sum() == 1 for c in children) > 10
    state = s.tell(state, jnp.asarray([[2, 1, 1]], jnp.int32), jnp.asarray([0.0], jnp.float32))
    np.testing.assert_array_equal(np.asarray(state.population[0]), [2, 1, 1])   # the oldest died
    assert int(state.count) == 5


def test_reinforce_policy_moves_toward_rewarded_choice():
    s = searchers.reinforce([4], batch_size=8, learning_rate=0.1)
    state = s.init(jax.random.PRNGKey(0))
    for r in range(30):
        c = s.ask(state, jax.random.PRNGKey(r))
        state = s.tell(state, c, jnp.asarray(np.asarray(c)[:, 0] == 2, jnp.float32))
    probs = jax.nn.softmax(state.logits[0])
    assert int(jnp.argmax(probs)) == 2 and float(probs[2]) > 0.6


def test_choice_space_encode_decode():
    for seed in range(20):
        v = np.asarray(jax.random.randint(jax.random.PRNGKey(seed), (SPACE.num_choices,), 0,
                                          jnp.asarray(SPACE.sizes)), np.int32)
        c = SPACE.decode(v)
        np.testing.assert_array_equal(SPACE.encode(c.genotype, c.hparams), v)
    g = darts.PUBLISHED['DARTS_V2']
    back = SPACE.decode(SPACE.encode(g, {'lr': 0.05, 'weight_decay': 0.0})).genotype
    for cell in darts.CELL_TYPES:   # same edges per node; canonical order is by input
        for i in range(darts.NUM_NODES):
            assert sorted(getattr(back, cell)[2 * i:2 * i + 2], key=lambda e: e[1]) == \
                sorted(getattr(g, cell)[2 * i:2 * i + 2], key=lambda e: e[1])
    assert SPACE.sizes[0] == 1 and SPACE.cardinality() > 10 ** 18
    nb = choices.make_space('nb201')
    assert nb.sizes == (5,) * 6 and nb.cardinality() == nb201.NUM_ARCHS
    g = nb201.from_index(284)
    assert nb.decode(nb.encode(g)).genotype == g
    cells = choices.make_space('nb201', cells=[str(nb201.from_index(i)) for i in (0, 11, 284)])
    assert cells.sizes == (3,) and cells.decode(np.asarray([1])).genotype == nb201.from_index(11)


@pytest.mark.parametrize('call, message', [
    (lambda: searchers.make_searcher('annealing', SPACE), "unknown searcher 'annealing'"),
    (lambda: searchers.make_searcher('evolution', SPACE, tournament=3), "takes no argument 'tournament'"),
    (lambda: searchers.make_searcher('evolution', SPACE, population_size=4, sample_size=5), 'sample_size (5)'),
    (lambda: searchers.make_searcher('evolution', SPACE, batch_size=8, population_size=4, sample_size=2),
     'population_size (4) must be >= the batch size'),
    (lambda: searchers.make_searcher('evolution', [1, 1]), 'at least one choice with two or more values'),
    (lambda: searchers.make_searcher('reinforce', SPACE, learning_rate=0.0), 'learning_rate must be'),
    (lambda: searchers.make_searcher('reinforce', SPACE, baseline_decay=1.0), 'baseline_decay must be'),
    (lambda: searchers.make_searcher('random', SPACE, batch_size=0), 'batch_size must be an integer >= 1'),
    (lambda: searchers.make_searcher('random', []), 'non-empty list of choice sizes'),
    (lambda: choices.make_space('hex'), "unknown search space 'hex'"),
    (lambda: choices.make_space('darts', {'lr': ()}), 'non-empty tuple of values'),
    (lambda: SPACE.decode(np.zeros(3, np.int32)), f'is {SPACE.num_choices} integers'),
    (lambda: SPACE.encode(darts.PUBLISHED['DARTS_V2'], {'lr': 0.3, 'weight_decay': 0.0}), 'lr=0.3 is not one of'),
])
def test_bad_arguments_give_one_line_errors(call, message):
    with pytest.raises(searchers.SearcherError.__mro__[1]) as info:   # JaxnasError
        call()
    assert message in str(info.value) and '\n' not in str(info.value)
