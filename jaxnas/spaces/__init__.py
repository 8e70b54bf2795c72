"""Search spaces: pure data and functions (op lists, edges, genotypes), no Flax."""
from jaxnas.spaces import darts

__all__ = ['darts']
