"""Discrete searchers behind one ``init`` / ``ask`` / ``tell`` contract (see
:mod:`jaxnas.searchers.base`): random search (Li & Talwalkar 2019), regularized evolution
(Real et al., AAAI 2019) and REINFORCE (Williams 1992; Zoph & Le, ICLR 2017, as the
NAS-Bench-201 baseline).

:data:`SEARCHERS` maps a name to a factory ``factory(space, *, batch_size, **kwargs)``;
:func:`make_searcher` builds one with one-line errors for unknown names or arguments.
"""
from __future__ import annotations

import inspect

from jaxnas.searchers.base import DiscreteSearcher, SearcherError, choice_sizes
from jaxnas.searchers.evolution import EvolutionState, mutate, regularized_evolution
from jaxnas.searchers.random import RandomState, random_search
from jaxnas.searchers.reinforce import ReinforceState, reinforce

SEARCHERS = {
    'random': random_search,
    'evolution': regularized_evolution,
    'reinforce': reinforce,
}


def searcher_arguments(name: str) -> tuple:
    """The keyword arguments a searcher takes besides ``batch_size``."""
    params = inspect.signature(SEARCHERS[name]).parameters
    return tuple(p for p in params if p not in ('space', 'batch_size'))


def make_searcher(name: str, space, *, batch_size: int = 1, **kwargs) -> DiscreteSearcher:
    """Build a registered searcher; unknown names or arguments give a one-line error."""
    if name not in SEARCHERS:
        raise SearcherError(f"unknown searcher {name!r}; choose one of {', '.join(SEARCHERS)}")
    unknown = sorted(set(kwargs) - set(searcher_arguments(name)))
    if unknown:
        raise SearcherError(f"searcher {name!r} takes no argument {unknown[0]!r}; its arguments: "
                            f"{', '.join(searcher_arguments(name)) or 'none'}")
    return SEARCHERS[name](space, batch_size=batch_size, **kwargs)


__all__ = ['SEARCHERS', 'DiscreteSearcher', 'SearcherError', 'make_searcher', 'searcher_arguments',
           'choice_sizes', 'random_search', 'regularized_evolution', 'reinforce', 'mutate',
           'RandomState', 'EvolutionState', 'ReinforceState']
