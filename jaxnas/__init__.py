"""jaxnas: differentiable and discrete neural architecture search in JAX."""
import os as _os


def _set_xla_cpu_flags():
    """XLA:CPU flags jaxnas relies on, added unless the user set them already.

    ``--xla_cpu_experimental_ynn_fusion_type=`` turns off XLA:CPU's YNNPACK fusions:
    with jaxlib 0.10.2 they crashed (SIGSEGV in a YNN transpose) on the supernet's
    backward pass and gave different forward values from the plain XLA kernels.
    Must run before the CPU backend starts, so it lives here at import time.
    """
    from importlib import metadata
    try:
        jaxlib_version = metadata.version('jaxlib')
    except metadata.PackageNotFoundError:
        return
    if not jaxlib_version.startswith('0.10.'):  # the flag is unknown elsewhere, and XLA aborts on those
        return
    flags = _os.environ.get('XLA_FLAGS', '')
    if 'xla_cpu_experimental_ynn_fusion_type' not in flags:
        _os.environ['XLA_FLAGS'] = (flags + ' --xla_cpu_experimental_ynn_fusion_type=').strip()


_set_xla_cpu_flags()

__version__ = '0.1.0'
