"""The DARTS CNN cell space: genotype (``genotype``), search network (``supernet``),
evaluation network (``evalnet``) and cell drawing; :data:`SPACE` is its contract object."""
from jaxnas.spaces.darts.genotype import *  # noqa: F401,F403
from jaxnas.spaces.darts.space import SPACE  # noqa: E402,F401
