"""The MBConv chain space of hardware-aware NAS (ProxylessNAS / FBNet / OFA style):
genotype (``genotype``), mobile macro (``macro``), ops registered in the shared registry
(``ops``), search network on the shared execution modes (``supernet``), evaluation
network (``evalnet``), choice codec and drawing; :data:`SPACE` is its contract object and
:func:`make_space` builds the space of another layer layout."""
from jaxnas.spaces.mbconv.genotype import *  # noqa: F401,F403
from jaxnas.spaces.mbconv.space import SPACE, make_space  # noqa: E402,F401
from jaxnas.spaces.mbconv import ops as _ops  # noqa: E402,F401  (registers the MBConv ops)
