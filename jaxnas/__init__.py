"""jaxnas: differentiable and discrete neural architecture search in JAX."""
import os as _os


def _set_xla_cpu_flags():
    """XLA:CPU flags jaxnas relies on, added unless the user set them already.

    ``--xla_cpu_experimental_ynn_fusion_type=`` turns off XLA:CPU's YNNPACK fusions:
    with jaxlib 0.10.2 they crashed (SIGSEGV in a YNN transpose) on the supernet's
    backward pass and gave different forward values from the plain XLA kernels (the
    ``reduce`` type alone: a reduction over two middle axes of a stacked array came out
    wrong, relative error 1.2; see benchmarks/ynn_check.py). See :data:`_CPU_FLAGS`.
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
    for flag, value in _CPU_FLAGS:
        if flag not in flags:
            flags = f'{flags} --{flag}={value}'.strip()
    _os.environ['XLA_FLAGS'] = flags


# (flag, value) pairs, each added unless XLA_FLAGS names the flag already.
_CPU_FLAGS = (
    ('xla_cpu_experimental_ynn_fusion_type', ''),
    # The concurrency-optimised scheduler orders independent kernels to run side by side; on
    # the DARTS paper-config search step it kept 2.7 GB more temporaries live (9.2 -> 6.5 GiB
    # without it, peak RSS 11.5 -> 8.9 GB) and the step was no faster (21.3 -> 20.3 s).
    # (Two single-process runs of the whole test suite died with SIGSEGV in XLA:CPU's compile at
    # the same test with this flag and without it: not the flag. The suite runs in 2 processes.)
    ('xla_cpu_enable_concurrency_optimized_scheduler', 'false'),
)


_set_xla_cpu_flags()

__version__ = '0.1.0'
