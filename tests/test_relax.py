import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import relax
from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts


@pytest.mark.parametrize('name', list(relax.RELAXATIONS))
def test_weights_shape_normalised_and_differentiable(name):
    r = relax.make_relaxation(name)
    logits = darts.init_arch(jax.random.PRNGKey(0), scale=1.0)
    mix = r.weights(logits, jax.random.PRNGKey(1), 0)
    for k in logits:
        assert mix[k].shape == logits[k].shape
        np.testing.assert_allclose(np.asarray(mix[k]).sum(-1), 1.0, rtol=1e-6)
        assert (np.asarray(mix[k]) >= 0).all()
    g = jax.grad(lambda a: sum(jnp.sum(w[:, 3]) for w in r.weights(a, jax.random.PRNGKey(1), 0).values())
                 + r.penalty(a))(logits)
    assert all(np.isfinite(np.asarray(v)).all() and np.abs(np.asarray(v)).max() > 0 for v in g.values())
    again = r.weights(logits, jax.random.PRNGKey(1), 0)
    assert all(np.array_equal(mix[k], again[k]) for k in mix)


def test_softmax_temperature():
    logits = {'normal': jnp.array([[0.0, 1.0]])}
    cold = relax.softmax(0.1).normalized(logits)['normal']
    assert float(cold[0, 1]) > 0.99


def test_registry_errors():
    with pytest.raises(JaxnasError, match="unknown relaxation 'enas'"):
        relax.make_relaxation('enas')
    with pytest.raises(JaxnasError, match="bad arguments for relaxation 'darts'"):
        relax.make_relaxation('darts', tau=3)
    with pytest.raises(JaxnasError, match='temperature must be > 0'):
        relax.make_relaxation('darts', temperature=0)
