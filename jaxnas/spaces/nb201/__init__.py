"""The NAS-Bench-201 cell space: genotype (``genotype``), search and evaluation networks
(``network``), tabular benchmark (``tabular``); :data:`SPACE` is its contract object."""
from jaxnas.spaces.nb201.genotype import *  # noqa: F401,F403
from jaxnas.spaces.nb201.space import SPACE  # noqa: E402,F401
