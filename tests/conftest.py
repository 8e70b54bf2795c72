"""Shared fixtures: one tiny search config, XLA set up for fast compiles."""
import os

import jax
import pytest

# Tests compile many small programs and run them on tiny shapes: skip XLA's expensive
# optimisations and keep compiled programs in a persistent cache between runs.
jax.config.update('jax_disable_most_optimizations', True)
from jaxnas import config as config_lib  # noqa: E402
from jaxnas.search import enable_compilation_cache  # noqa: E402

os.environ['JAXNAS_CACHE_DIR'] = os.environ.get('JAXNAS_TEST_CACHE_DIR',
                                               os.path.expanduser('~/.cache/jaxnas/xla-tests'))
enable_compilation_cache()
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


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
