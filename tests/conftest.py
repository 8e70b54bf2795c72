"""Shared fixtures: one tiny search config, XLA set up for fast compiles."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

# Tests compile many small programs and run them on tiny shapes: skip XLA's expensive
# optimisations. The persistent compilation cache is opt-in in this process (JAXNAS_TEST_CACHE_DIR=dir),
# also for the commands the tests call in-process; the commands the tests start as subprocesses
# share one cache directory. Long single-process runs of the suite died inside XLA:CPU (SIGSEGV in
# compile, SIGSEGV/SIGABRT serialising an executable for the cache) after hundreds of compiles;
# the tests passed alone, so the README's command runs the suite in 2 processes (pytest-xdist).
jax.config.update('jax_disable_most_optimizations', True)
from jaxnas import config as config_lib  # noqa: E402
from jaxnas.search import enable_compilation_cache  # noqa: E402

os.environ['JAXNAS_CACHE_DIR'] = os.environ.get('JAXNAS_TEST_CACHE_DIR',   # the CLI subprocesses' cache
                                               os.path.expanduser('~/.cache/jaxnas/xla-tests'))
if os.environ.get('JAXNAS_TEST_CACHE_DIR'):
    enable_compilation_cache()
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
else:
    import jaxnas.search
    jaxnas.search.enable_compilation_cache = lambda path=None: ''


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tiny_config(**changes):
    """experiments/tiny.py: a search on a slice of the digits that compiles and runs in seconds."""
    c = config_lib.load_config(os.path.join(ROOT, 'experiments', 'tiny.py'))
    for key, value in changes.items():
        config_lib.apply_overrides(c, [(key, value)])
    return c


@pytest.fixture
def tiny_config():
    return make_tiny_config()


class ToyMixed(nn.Module):
    """Two mixed 'edges' of 3 dense ops each, with a BatchNorm statistic: a small problem
    with the supernet's calling convention ``apply(variables, x, mix, train)``."""

    @nn.compact
    def __call__(self, x, mix, train=True):
        w0 = self.param('w0', nn.initializers.normal(0.5), (3, x.shape[-1], 6))
        w1 = self.param('w1', nn.initializers.normal(0.5), (3, 6, 4))
        mean = self.variable('batch_stats', 'mean', jnp.zeros, (6,))
        h = jnp.einsum('p,pbh->bh', mix['normal'][0], jnp.tanh(jnp.einsum('bd,pdh->pbh', x, w0)))
        if train and not self.is_initializing():
            mean.value = 0.9 * mean.value + 0.1 * h.mean(0)
        return jnp.einsum('p,pbk->bk', mix['normal'][1], jnp.einsum('bh,phk->pbk', h, w1))
