"""Preparing interaction tables: rating thresholds, k-core filters, table → matrix."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from ._data import ITEM, RATING, USER, check_table

__all__ = ["filter_interactions", "InteractionFilter", "to_user_item_matrix"]


def _check_min(value, name):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}.")


def filter_interactions(df, *, min_rating=None, min_user_interactions=0,
                        min_item_interactions=0, iterate=False):
    """Keep positive interactions and drop rare users / items.

    Parameters
    ----------
    df : DataFrame
        Interaction table with ``user`` and ``item`` columns (``rating`` when ``min_rating``).
    min_rating : float, default=None
        Keep rows with ``rating >= min_rating`` (e.g. 4 for "liked" on MovieLens).
    min_user_interactions, min_item_interactions : int, default=0
        Drop users / items with fewer remaining rows (items first, then users).
    iterate : bool, default=False
        Repeat both filters until nothing changes (a true k-core).

    Returns
    -------
    DataFrame
        The kept rows, original index preserved.

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.preprocessing import filter_interactions
    >>> df = pd.DataFrame({"user": [1, 1, 2], "item": [5, 6, 5], "rating": [5, 2, 4]})
    >>> filter_interactions(df, min_rating=4).shape[0]
    2
    """
    check_table(df)
    _check_min(min_user_interactions, "min_user_interactions")
    _check_min(min_item_interactions, "min_item_interactions")
    if min_rating is not None:
        if RATING not in df.columns:
            raise ValueError(f"min_rating needs a 'rating' column; got {list(df.columns)}.")
        df = df[pd.to_numeric(df[RATING]) >= min_rating]
    while True:
        n = len(df)
        if min_item_interactions:
            df = df[df.groupby(ITEM)[ITEM].transform("size") >= min_item_interactions]
        if min_user_interactions:
            df = df[df.groupby(USER)[USER].transform("size") >= min_user_interactions]
        if not iterate or len(df) == n:
            break
    if len(df) == 0:
        raise ValueError("no interaction is left after filtering; loosen the thresholds.")
    return df


class InteractionFilter(TransformerMixin, BaseEstimator):
    """:func:`filter_interactions` as a transformer for the front of a Pipeline.

    It is stateless: the same rule applies to training and held-out tables.

    Parameters
    ----------
    min_rating : float, default=None
    min_user_interactions, min_item_interactions : int, default=0
    iterate : bool, default=False

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.preprocessing import InteractionFilter
    >>> df = pd.DataFrame({"user": [1, 1, 2], "item": [5, 6, 5], "rating": [5, 2, 4]})
    >>> len(InteractionFilter(min_rating=4).fit_transform(df))
    2
    """

    def __init__(self, *, min_rating=None, min_user_interactions=0, min_item_interactions=0,
                 iterate=False):
        self.min_rating = min_rating
        self.min_user_interactions = min_user_interactions
        self.min_item_interactions = min_item_interactions
        self.iterate = iterate

    def fit(self, X, y=None):
        check_table(X)
        return self

    def transform(self, X):
        return filter_interactions(X, min_rating=self.min_rating,
                                   min_user_interactions=self.min_user_interactions,
                                   min_item_interactions=self.min_item_interactions,
                                   iterate=self.iterate)


def to_user_item_matrix(df, *, dtype=np.float32):
    """Interaction table → binary CSR matrix (users × items) and the id arrays.

    Returns
    -------
    X : csr_matrix of shape (n_users, n_items)
    user_ids, item_ids : ndarray
        Sorted ids: row i is ``user_ids[i]``, column j is ``item_ids[j]``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.preprocessing import to_user_item_matrix
    >>> X, users, items = to_user_item_matrix(pd.DataFrame({"user": [7, 7, 9], "item": [1, 3, 1]}))
    >>> X.toarray()
    array([[1., 1.],
           [1., 0.]], dtype=float32)
    """
    check_table(df)
    users, u = np.unique(np.asarray(df[USER]), return_inverse=True)
    items, i = np.unique(np.asarray(df[ITEM]), return_inverse=True)
    X = sp.csr_matrix((np.ones(len(u), dtype=dtype), (u, i)), shape=(len(users), len(items)))
    X.sum_duplicates()
    X.data[:] = 1
    return X, users, items
