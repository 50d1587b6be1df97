"""Dataset loaders and a synthetic interaction generator.

Real datasets (MovieLens 100K / 1M, the LightGCN Gowalla split) are read from a local data
folder in their original published layouts. When files are missing they can be downloaded
from their official sources and are checked against SHA-256 sums fixed in this package. No
data file is shipped with the package.

:func:`load_movielens` returns the MovieLens ratings with separate user and movie tables;
:func:`load_movielens_features` joins them into one interaction table with categorical side
fields (a multi-valued field is a column of tuples), the input of the factorization-machine
family. :func:`make_interactions` builds a small synthetic implicit-feedback matrix with a
planted user group, for tests and examples that must run offline.
"""

from ._fetch import get_data_home
from ._lightgcn import load_lightgcn_split
from ._movielens import load_movielens, load_movielens_features
from ._synthetic import make_interactions

__all__ = [
    "get_data_home",
    "load_lightgcn_split",
    "load_movielens",
    "load_movielens_features",
    "make_interactions",
]
