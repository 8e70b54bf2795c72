"""A search space as a flat list of categorical choices, for the discrete searchers.

Discrete searchers (random search, regularized evolution -- Real et al., AAAI 2019 --,
REINFORCE -- Zoph & Le, ICLR 2017, in the NAS-Bench-201 baseline form) see a candidate
as one integer vector ``c`` with ``0 <= c[k] < sizes[k]``. :class:`ChoiceSpace` maps such
vectors to ``(genotype, hyperparameters)`` and back.

Each space provides its own cell encoding (``SearchSpace.choices()``, a
:class:`~jaxnas.spaces.base.ChoiceCodec`) in which every vector decodes to a valid
genotype, so every mutation of one choice is a valid genotype too.

A fixed candidate list (``cells``: genotypes or their texts) replaces the cell choices
by one choice, ``cell``, indexing the list: a toy space, or the cells a partial tabular
benchmark holds.

Hyperparameter choices (``{'lr': (0.01, 0.025, 0.05), 'channels': (8, 16)}``: a name and
its candidate values) follow the cell choices; :meth:`ChoiceSpace.decode` returns them
as a dict of values.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from jaxnas import spaces
from jaxnas.errors import JaxnasError
from jaxnas.spaces.base import ChoiceError  # noqa: F401  (raised by the spaces' codecs too)


class Candidate(NamedTuple):
    """A decoded candidate: the cell genotype and the hyperparameter values."""
    genotype: Any
    hparams: dict


class ChoiceSpace(NamedTuple):
    """``names[k]`` and ``sizes[k]`` of every choice; cell choices first, then hyperparameters."""
    space: str
    names: tuple
    sizes: tuple
    hparams: tuple  # ((name, (values...)), ...)
    cells: tuple = ()  # a fixed list of genotypes, when the cell is one choice among them

    @property
    def num_choices(self) -> int:
        return len(self.sizes)

    @property
    def num_cell_choices(self) -> int:
        return len(self.sizes) - len(self.hparams)

    @property
    def max_size(self) -> int:
        return max(self.sizes)

    def cardinality(self) -> int:
        return math.prod(self.sizes)

    def check(self, vector) -> np.ndarray:
        v = np.asarray(vector)
        if v.shape != (self.num_choices,) or not np.issubdtype(v.dtype, np.integer):
            raise ChoiceError(f'a candidate of the {self.space} choice space is {self.num_choices} integers, '
                              f'got shape {v.shape} dtype {v.dtype}')
        bad = np.nonzero((v < 0) | (v >= np.asarray(self.sizes)))[0]
        if len(bad):
            k = int(bad[0])
            raise ChoiceError(f'choice {self.names[k]} = {int(v[k])} is out of range 0..{self.sizes[k] - 1}')
        return v.astype(np.int64)

    def decode(self, vector) -> Candidate:
        v = self.check(vector)
        cell, rest = v[:self.num_cell_choices], v[self.num_cell_choices:]
        if self.cells:
            genotype = self.cells[int(cell[0])]
        else:
            genotype = spaces.get(self.space).choices().decode(cell)
        hparams = {name: values[int(i)] for (name, values), i in zip(self.hparams, rest)}
        return Candidate(genotype, hparams)

    def encode(self, genotype, hparams: Optional[Mapping] = None) -> np.ndarray:
        if self.cells:
            if genotype not in self.cells:
                raise ChoiceError(f'genotype {genotype} is not one of the {len(self.cells)} cells of this space')
            cell = [self.cells.index(genotype)]
        else:
            try:
                cell = spaces.get(self.space).choices().encode(genotype)
            except ChoiceError:
                raise
            except (JaxnasError, ValueError) as e:
                raise ChoiceError(f'the {self.space} choice space cannot encode {genotype}: {e}') from None
        hparams = dict(hparams or {})
        extra = set(hparams) - {n for n, _ in self.hparams}
        if extra:
            raise ChoiceError(f"hyperparameter(s) {', '.join(sorted(extra))} are not choices of this space; "
                              f"choices: {', '.join(n for n, _ in self.hparams) or 'none'}")
        rest = []
        for name, values in self.hparams:
            if name not in hparams:
                raise ChoiceError(f'hyperparameter {name} missing; one of {list(values)}')
            if hparams[name] not in values:
                raise ChoiceError(f'hyperparameter {name}={hparams[name]!r} is not one of {list(values)}')
            rest.append(list(values).index(hparams[name]))
        return np.asarray(list(cell) + rest, np.int32)


def parse_genotype(space: str, g):
    """A genotype of ``space`` from a genotype value or its text form."""
    sp = spaces.get(space)
    return g if sp.is_genotype(g) else sp.parse(g)


def make_space(space: str = 'darts', hparams: Optional[Mapping[str, Sequence]] = None,
               cells: Sequence = ()) -> ChoiceSpace:
    """The choice space of a registered cell space plus hyperparameter choices."""
    if space not in spaces.names():
        raise ChoiceError(f"unknown search space {space!r}; choose one of {', '.join(spaces.names())}")
    if cells:
        cells = tuple(parse_genotype(space, g) for g in cells)
        if len(set(cells)) != len(cells):
            raise ChoiceError('the candidate cell list names a genotype twice')
        names, sizes = ['cell'], [len(cells)]
    else:
        codec = spaces.get(space).choices()
        names, sizes = list(codec.names), list(codec.sizes)
    hp = []
    for name, values in (hparams or {}).items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ChoiceError(f'hyperparameter {name} needs a non-empty tuple of values, got {values!r}')
        if len(set(values)) != len(values):
            raise ChoiceError(f'hyperparameter {name} lists a value twice: {list(values)}')
        hp.append((str(name), tuple(values)))
        names.append(f'hparam.{name}')
        sizes.append(len(values))
    return ChoiceSpace(space, tuple(names), tuple(sizes), tuple(hp), tuple(cells))
