"""Does a compiled step fit in memory? Stated and checked before training.

:func:`step_bytes` reads XLA's memory analysis of a compiled executable
(``jax.jit(f).lower(...).compile().memory_analysis()``): temporaries, arguments and
outputs, less the outputs that alias donated arguments (a donated state is counted once).
:func:`available_memory` is what the machine has for it: ``MemAvailable`` of
``/proc/meminfo`` on CPU, the device's ``memory_stats()['bytes_limit']`` on GPU / TPU.
:func:`check_fits` refuses a step that needs more with a one-line :class:`ResourceError`
giving the estimate, the available memory and what to lower.
"""
from __future__ import annotations

from typing import Optional, Tuple

import jax

from jaxnas.errors import JaxnasError


class ResourceError(JaxnasError):
    """A config whose compiled step does not fit in the machine's memory (one line)."""


def step_bytes(compiled) -> Optional[dict]:
    """``{'temp', 'argument', 'output', 'alias', 'total'}`` bytes of a compiled executable
    (``total = temp + argument + output - alias``), or ``None`` where XLA gives no analysis."""
    try:
        m = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError, AttributeError):
        return None
    if m is None:
        return None
    out = {'temp': int(m.temp_size_in_bytes), 'argument': int(m.argument_size_in_bytes),
           'output': int(m.output_size_in_bytes), 'alias': int(m.alias_size_in_bytes)}
    out['total'] = out['temp'] + out['argument'] + out['output'] - out['alias']
    return out


def _meminfo_available(path: str = '/proc/meminfo') -> Optional[int]:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory(device=None) -> Optional[Tuple[int, str]]:
    """``(bytes, source)`` the device has for a program, or ``None`` if unknown."""
    device = device or jax.devices()[0]
    if device.platform == 'cpu':
        value = _meminfo_available()
        return None if value is None else (value, 'MemAvailable in /proc/meminfo')
    try:
        stats = device.memory_stats() or {}
    except (NotImplementedError, RuntimeError):
        stats = {}
    if 'bytes_limit' in stats:
        return int(stats['bytes_limit']), f"{device.device_kind} memory_stats()['bytes_limit']"
    return None


def _gib(n: int) -> str:
    return f'{n / 2 ** 30:.2f} GiB'


def check_fits(compiled, *, what: str, lower: str, disable: str) -> Optional[dict]:
    """:func:`step_bytes` of ``compiled``; :class:`ResourceError` if it exceeds
    :func:`available_memory`. ``what`` names the step, ``lower`` the fields to lower,
    ``disable`` the config field that turns the check off."""
    need = step_bytes(compiled)
    have = available_memory()
    if need is None or have is None or need['total'] <= have[0]:
        return need
    donated = f" - donated {_gib(need['alias'])}" if need['alias'] else ''
    raise ResourceError(
        f"the compiled {what} needs about {_gib(need['total'])} (XLA memory analysis: temporaries "
        f"{_gib(need['temp'])} + arguments {_gib(need['argument'])} + outputs {_gib(need['output'])}{donated}) "
        f'but only {_gib(have[0])} is available ({have[1]}); lower {lower}, or set {disable}=False to run anyway')
