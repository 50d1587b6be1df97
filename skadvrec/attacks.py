"""Data-poisoning (shilling) attacks: fake users appended to the training data.

An attack is a transformer whose :meth:`~RandomAttack.fit_transform` returns X with fake users
appended and whose :meth:`~RandomAttack.transform` returns X unchanged. Placed first in a
:class:`~sklearn.pipeline.Pipeline` it therefore poisons the data the model is fitted on
(``Pipeline.fit`` calls ``fit_transform``) and leaves held-out data alone (``predict``,
``score`` and the scorers call ``transform``)::

    Pipeline([("attack", RandomAttack(n_fake_users=0.01)), ("model", EASE())])

Every fake profile holds all the target items plus distinct filler items (never a target,
never twice). The attacks differ only in how the fillers are drawn, as in the heuristic attacks
of the PamaCF evaluation (Zhang et al., NeurIPS 2024) and the shilling literature:

* :class:`RandomAttack`: uniformly over all non-target items;
* :class:`BandwagonAttack`: a share from the most popular items, the rest uniformly;
* :class:`PopularAttack`: all from the most popular items.

:func:`select_target_items` picks unpopular target items at random, as the PamaCF evaluation
does (its Gowalla targets have 6 to 10 training interactions).

Both input forms of the package are accepted: a user × item matrix (rows are users, item ids
are column indices) and an interaction table (a DataFrame with ``user`` and ``item`` columns,
item ids are the ``item`` values). Training popularity and profile lengths count each distinct
(user, item) pair once, whatever its value or rating. A model that binarises ratings
(``rating_threshold``) knows only items with a positive row, so with explicit ratings filter
the table to positives first (:class:`~skadvrec.preprocessing.InteractionFilter`) if the
targets must also be known to a model fitted on the clean data.

Notes
-----
* The fake users change the number of rows, so row-aligned metadata such as
  ``sensitive_features`` no longer lines up with the poisoned data: an attack cannot sit in
  front of a model that receives such metadata in ``fit``.
* ``fit_transform(X)`` is not ``fit(X).transform(X)``; that is the point of an attack, and the
  only scikit-learn estimator checks the attacks do not pass.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pandas.api import types as pdt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._data import (ITEM, LABEL, RATING, TIMESTAMP, USER, check_interactions, check_matrix_values,
                    item_columns)
from ._params import (Integral, Interval, Real, validate_parameter_constraints)
from .base import interaction_input_tags

__all__ = ["RandomAttack", "BandwagonAttack", "PopularAttack", "select_target_items"]

_KEY_BLOCK = 1 << 22  # random keys drawn per chunk of fake users (32 MiB of float64)


# -- helpers -----------------------------------------------------------------------------------
def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _interactions(X):
    """(binary CSR users × items, item ids or None, is_table) for either input form."""
    data, item_ids = check_interactions(X, rating_threshold=None, allow_empty=False)
    m = data.matrix
    if data.kind == "matrix":
        m = m.copy()
        m.data[:] = 1.0
        return m, None, False
    return m, np.asarray(item_ids), True


def _choose_targets(popularity, n_targets, max_interactions, min_interactions, rng):
    """Column indices of ``n_targets`` random items with popularity in the allowed band."""
    if not _is_int(n_targets) or n_targets < 1:
        raise ValueError(f"n_targets must be an integer >= 1; got {n_targets!r}.")
    if not _is_int(min_interactions) or min_interactions < 0:
        raise ValueError(f"min_interactions must be an integer >= 0; got {min_interactions!r}.")
    base = popularity[popularity >= min_interactions]
    if max_interactions is None:
        if len(base) == 0:
            raise ValueError(f"no item has >= min_interactions={min_interactions} "
                             "interactions; lower min_interactions.")
        max_interactions = float(np.percentile(base, 25))
    elif (not isinstance(max_interactions, numbers.Real) or isinstance(max_interactions, bool)
          or max_interactions < min_interactions):
        raise ValueError(f"max_interactions must be None or a number >= min_interactions="
                         f"{min_interactions}; got {max_interactions!r}.")
    pool = np.flatnonzero((popularity >= min_interactions) & (popularity <= max_interactions))
    if len(pool) < n_targets:
        raise ValueError(
            f"only {len(pool)} item(s) have between {min_interactions} and {max_interactions:g} "
            f"training interactions, fewer than n_targets={n_targets}; raise max_interactions, "
            "lower min_interactions, or ask for fewer targets.")
    return np.sort(rng.choice(pool, n_targets, replace=False))


def select_target_items(X, n_targets=5, *, max_interactions=None, min_interactions=1,
                        random_state=None):
    """Pick target items for an attack uniformly at random among unpopular items.

    Following the PamaCF evaluation (Zhang et al., NeurIPS 2024), whose Gowalla targets have
    only 6 to 10 training interactions, the candidates are the items with between
    ``min_interactions`` and ``max_interactions`` interactions (distinct users).

    Parameters
    ----------
    X : sparse matrix or ndarray of shape (n_users, n_items), or DataFrame
        Training interactions: a user × item matrix or an interaction table with ``user`` and
        ``item`` columns.
    n_targets : int, default=5
        Number of distinct items to pick.
    max_interactions : float or None, default=None
        Most interactions a candidate may have. None: the 25th percentile of item popularity
        among the items with at least ``min_interactions`` interactions.
    min_interactions : int, default=1
        Fewest interactions a candidate must have (1 leaves out items nobody interacted with).
    random_state : int, RandomState instance or None, default=None
        Seed of the draw.

    Returns
    -------
    ndarray of shape (n_targets,)
        Item ids, sorted: column indices for a matrix, values of the ``item`` column for a
        table.

    Raises
    ------
    ValueError
        When fewer than ``n_targets`` items qualify.

    Examples
    --------
    >>> import numpy as np
    >>> from skadvrec.attacks import select_target_items
    >>> from skadvrec.datasets import make_interactions
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> targets = select_target_items(X, 3, random_state=0)
    >>> popularity = np.diff(X.tocsc().indptr)
    >>> bool(popularity[targets].max() <= np.percentile(popularity[popularity > 0], 25))
    True
    """
    m, item_ids, _ = _interactions(X)
    popularity = np.diff(m.tocsc().indptr)
    cols = _choose_targets(popularity, n_targets, max_interactions, min_interactions,
                           check_random_state(random_state))
    return cols if item_ids is None else item_ids[cols]


def _sample_distinct(rng, counts, candidates, taken=None):
    """For each row i, ``counts[i]`` distinct items drawn uniformly from ``candidates``.

    ``taken`` = (rows, cols) lists items that rows already hold: they are not drawn again.
    The draw is vectorised with random keys: the ``counts[i]`` candidates with the smallest
    keys form a uniform random subset. Returns the (rows, cols) coordinates of the draws.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_rows, n_cand = len(counts), len(candidates)
    empty = np.zeros(0, np.int64)
    if counts.max(initial=0) == 0:
        return empty, empty
    avail = np.full(n_rows, n_cand, dtype=np.int64)
    pos = None
    if taken is not None and len(taken[0]):
        t_rows, t_cols = (np.asarray(a, dtype=np.int64) for a in taken)
        pos = np.full(max(int(candidates.max()), int(t_cols.max())) + 1, -1, dtype=np.int64)
        pos[candidates] = np.arange(n_cand)
        t_pos = pos[t_cols]
        t_rows, t_pos = t_rows[t_pos >= 0], t_pos[t_pos >= 0]
        avail -= np.bincount(t_rows, minlength=n_rows)
    if (counts > avail).any():  # the callers size the draws; this guards against duplicates
        raise ValueError(f"cannot draw {int(counts.max())} distinct filler items: only "
                         f"{int(avail.min())} candidates are left.")
    kmax = int(counts.max())
    step = max(1, _KEY_BLOCK // n_cand)
    out_rows, out_cols = [], []
    for start in range(0, n_rows, step):  # chunks bound the memory of the key matrix
        stop = min(start + step, n_rows)
        keys = rng.random_sample((stop - start, n_cand))
        if pos is not None:
            sel = (t_rows >= start) & (t_rows < stop)
            keys[t_rows[sel] - start, t_pos[sel]] = np.inf
        if kmax < n_cand:
            part = np.argpartition(keys, kmax - 1, axis=1)[:, :kmax]
        else:
            part = np.broadcast_to(np.arange(n_cand), keys.shape)
        order = np.argsort(np.take_along_axis(keys, part, axis=1), axis=1, kind="stable")
        ranked = np.take_along_axis(part, order, axis=1)  # candidates by increasing key
        keep = np.arange(kmax)[None, :] < counts[start:stop, None]
        out_rows.append(np.broadcast_to(np.arange(start, stop)[:, None], keep.shape)[keep])
        out_cols.append(candidates[ranked[keep]])
    return np.concatenate(out_rows), np.concatenate(out_cols)


def _to_csr(rows, cols, shape):
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    return m


def _check_pool(popular_pool):
    ok = (_is_int(popular_pool) and popular_pool >= 1) or (
        isinstance(popular_pool, numbers.Real) and not isinstance(popular_pool, bool)
        and not _is_int(popular_pool) and 0 < popular_pool <= 1)
    if not ok:
        raise ValueError(f"popular_pool must be a float in (0, 1] (a share of the items) or an "
                         f"integer >= 1 (a number of items); got {popular_pool!r}.")


def _popular_items(popularity, non_targets, popular_pool):
    """The ``popular_pool`` most popular non-target items (ties: lower column first)."""
    n_items = len(popularity)
    size = (int(popular_pool) if _is_int(popular_pool)
            else max(1, int(round(popular_pool * n_items))))
    order = np.argsort(-popularity[non_targets], kind="stable")
    return np.sort(non_targets[order[:min(size, len(non_targets))]])


# -- the attacks -------------------------------------------------------------------------------
class _BaseAttack(TransformerMixin, BaseEstimator):
    """Shared machinery of the shilling attacks; subclasses define :meth:`_draw_fillers`.

    Subclasses store their parameters in ``__init__`` (all keyword-only) and implement
    ``_draw_fillers(rng, n_fillers, non_targets, pool)``: the (row, column) coordinates of
    the filler items of each fake profile, ``n_fillers[i]`` distinct non-target columns for
    profile i. ``pool`` holds the columns of the popular pool when the attack has a
    ``popular_pool`` parameter (``_uses_pool = True``), else None.
    """

    _uses_pool = False
    _all_from_pool = False
    # types here; the ranges (with messages that explain the two forms of n_fake_users and
    # popular_pool) are checked by _check_params
    _parameter_constraints = {
        "target_items": ["array-like", None],
        "n_targets": [Integral],
        "n_fake_users": [Real],
        "n_filler_items": [Integral, None],
        "popular_fraction": [Interval(Real, 0, 1, closed="both")],
        "popular_pool": [Real],
        "random_state": ["random_state"],
    }

    def _draw_fillers(self, rng, n_fillers, non_targets, pool):
        raise NotImplementedError  # pragma: no cover - abstract

    def _check_params(self):
        if isinstance(self.n_fake_users, bool) or not (
                (_is_int(self.n_fake_users) and self.n_fake_users >= 1)
                or (isinstance(self.n_fake_users, numbers.Real) and not _is_int(self.n_fake_users)
                    and 0 < self.n_fake_users < 1)):
            raise ValueError(
                "n_fake_users must be a float in (0, 1) (a share of the genuine users) or an "
                f"integer >= 1 (a number of fake users); got {self.n_fake_users!r}.")
        if self.n_filler_items is not None and (
                not _is_int(self.n_filler_items) or self.n_filler_items < 0):
            raise ValueError("n_filler_items must be None (lengths drawn from the genuine "
                             f"users) or an integer >= 0; got {self.n_filler_items!r}.")
        if self.target_items is None and (not _is_int(self.n_targets) or self.n_targets < 1):
            raise ValueError(f"n_targets must be an integer >= 1; got {self.n_targets!r}.")

    def fit(self, X, y=None):
        """Resolve the targets and draw the fake profiles.

        Parameters
        ----------
        X : sparse matrix or ndarray of shape (n_users, n_items), or DataFrame
            The genuine training data: a user × item matrix or an interaction table.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted attack.
        """
        self._check_params()
        validate_parameter_constraints(self._parameter_constraints, self.get_params(deep=False),
                                       caller_name=type(self).__name__)
        self.__dict__.pop("fake_users_", None)  # set again by fit_transform
        m, item_ids, is_table = _interactions(self._validate_matrix(X, reset=True))
        n_users, n_items = m.shape
        rng = check_random_state(self.random_state)
        popularity = np.diff(m.tocsc().indptr)
        if self.target_items is None:
            targets = _choose_targets(popularity, self.n_targets, None, 1, rng)
        else:
            targets = item_columns(self.target_items, n_items, item_ids, "target_items")
        non_targets = np.setdiff1d(np.arange(n_items), targets)
        n_fake = (int(self.n_fake_users) if _is_int(self.n_fake_users)
                  else max(1, int(round(self.n_fake_users * n_users))))
        explicit = self.n_filler_items is not None
        if explicit:
            n_fillers = np.full(n_fake, int(self.n_filler_items), dtype=np.int64)
        else:  # a genuine user's length, less the targets, at least 1
            lengths = np.diff(m.indptr)
            lengths = lengths[lengths > 0]
            n_fillers = np.maximum(rng.choice(lengths, n_fake) - len(targets), 1)
            n_fillers = np.minimum(n_fillers, len(non_targets))
        if n_fillers.max(initial=0) > len(non_targets):
            raise ValueError(
                f"a fake profile cannot be filled: n_filler_items={self.n_filler_items} but X "
                f"has only {len(non_targets)} non-target items; lower n_filler_items.")
        pool = None
        if self._uses_pool:
            pool = _popular_items(popularity, non_targets, self.popular_pool)
            if explicit and self._all_from_pool and n_fillers.max(initial=0) > len(pool):
                raise ValueError(
                    f"a fake profile cannot be filled: n_filler_items={self.n_filler_items} "
                    f"but the popular pool has {len(pool)} items; lower n_filler_items or "
                    "enlarge popular_pool.")
        rows, cols = self._draw_fillers(rng, n_fillers, non_targets, pool)
        fillers = _to_csr(rows, cols, (n_fake, n_items))
        target_part = _to_csr(np.repeat(np.arange(n_fake), len(targets)),
                              np.tile(targets, n_fake), (n_fake, n_items))
        self.fake_profiles_ = (fillers + target_part).tocsr()
        self.fake_profiles_.sort_indices()
        self.target_items_ = targets if item_ids is None else item_ids[targets]
        self.item_ids_ = np.arange(n_items) if item_ids is None else item_ids
        self.n_fake_users_ = n_fake
        self.input_form_ = "table" if is_table else "matrix"
        if pool is not None:
            self.popular_items_ = self.item_ids_[pool]
        if is_table:
            self.__dict__.pop("n_features_in_", None)
        else:
            self.n_features_in_ = n_items
        return self

    def _validate_matrix(self, X, reset):
        """sklearn's checks for the matrix form (tables pass through); returns the checked X."""
        if isinstance(X, pd.DataFrame):
            if not reset and self.input_form_ != "table":
                raise ValueError("this attack was fitted on a user x item matrix; pass a matrix "
                                 f"with {self.n_features_in_} columns, not a DataFrame.")
            return X
        if not reset and self.input_form_ == "table":
            if (isinstance(X, (list, tuple, pd.Series, pd.Index))
                    or (isinstance(X, np.ndarray) and X.ndim == 1)):
                return X  # user ids, as the table form's recommend / predict take them
            raise ValueError("this attack was fitted on an interaction table; pass a DataFrame "
                             "with 'user' and 'item' columns (or a list of user ids).")
        check_matrix_values(X)
        return validate_data(self, X, accept_sparse=("csr", "csc", "coo"), dtype="numeric",
                             ensure_non_negative=True, reset=reset)

    def transform(self, X):
        """Return X unchanged: held-out data is not poisoned.

        Parameters
        ----------
        X : sparse matrix, ndarray or DataFrame, or list of user ids
            Data in the form the attack was fitted on (checked, for a matrix, to have as many
            columns as in fit). After a fit on a table, a 1-d list / array of user ids (what a
            table-form recommender's ``recommend`` takes) passes through too.

        Returns
        -------
        X : the same object, unchanged
        """
        check_is_fitted(self, "fake_profiles_")
        self._validate_matrix(X, reset=False)
        return X

    def fit_transform(self, X, y=None):
        """Fit, then return X with the fake users appended.

        Unlike most transformers, ``fit_transform(X)`` differs from ``fit(X).transform(X)``:
        the fake users are added to the data the attack is fitted on only.

        Parameters
        ----------
        X : sparse matrix or ndarray of shape (n_users, n_items), or DataFrame
            The genuine training data.
        y : None
            Ignored.

        Returns
        -------
        X_poisoned : sparse matrix, ndarray or DataFrame
            Matrix form: the same type as X (scipy sparse inputs come back as CSR) with the
            ``n_fake_users_`` fake rows appended at the bottom; their entries take X's largest
            value (1.0 for binary data). Table form: a new DataFrame (fresh ``RangeIndex``)
            with the rows of X first, then one row per fake interaction. Fake user ids are
            ``max(user) + 1, + 2, ...`` when the ``user`` column is numeric, else the strings
            ``"fake_user_0"``, ... (prefixed with underscores if X already uses such ids).
            ``rating``, ``label`` and ``timestamp`` take the column's largest value in X, so
            a rating threshold never drops a fake interaction; any other column is NaN in the
            fake rows (so an integer feature column becomes float).
        """
        self.fit(X, y)
        if self.input_form_ == "table":
            return self._poison_table(X)
        return self._poison_matrix(X)

    def _poison_matrix(self, X):
        sparse_array = isinstance(X, sp.sparray)
        X = self._validate_matrix(X, reset=False)
        n_users = X.shape[0]
        fake = self.fake_profiles_
        if sp.issparse(X):
            Xc = sp.csr_matrix(X)
            value = Xc.max() if Xc.nnz else 1.0
            out = sp.vstack([Xc, (fake * value).astype(Xc.dtype)], format="csr")
            if sparse_array:
                out = sp.csr_array(out)
        else:
            value = X.max() if X.size and X.max() > 0 else 1.0
            out = np.vstack([X, (fake.toarray() * value).astype(X.dtype)])
        self.fake_users_ = np.arange(n_users, n_users + self.n_fake_users_)
        return out

    def _fake_user_ids(self, users):
        n = self.n_fake_users_
        if pdt.is_numeric_dtype(users.dtype) and not pdt.is_bool_dtype(users.dtype):
            return pd.array(users.max() + np.arange(1, n + 1), dtype=users.dtype)
        existing = set(users.astype(str))
        prefix = "fake_user_"
        while any(f"{prefix}{i}" in existing for i in range(n)):
            prefix = "_" + prefix
        return np.array([f"{prefix}{i}" for i in range(n)], dtype=object)

    def _poison_table(self, X):
        fake = self.fake_profiles_.tocoo()
        order = np.lexsort((fake.col, fake.row))
        rows, cols = fake.row[order], fake.col[order]
        ids = self._fake_user_ids(X[USER])
        cols_out = {USER: ids[rows], ITEM: self.item_ids_[cols]}
        for name in (RATING, LABEL, TIMESTAMP):
            if name in X.columns:
                col = pd.to_numeric(X[name]) if name == RATING else X[name]
                cols_out[name] = pd.Series(col.max(), index=range(len(rows)), dtype=col.dtype)
        out = pd.concat([X, pd.DataFrame(cols_out)], ignore_index=True)
        self.fake_users_ = np.asarray(ids)
        return out

    def __sklearn_tags__(self):
        return interaction_input_tags(super().__sklearn_tags__())


_COMMON_PARAMS = """target_items : array-like or None, default=None
        Items to promote, in X's id space: column indices for a matrix, values of the
        ``item`` column for a table. None: ``n_targets`` items drawn at fit time by
        :func:`select_target_items` (unpopular items) with this attack's random state.
    n_targets : int, default=5
        Number of targets drawn when ``target_items`` is None; ignored otherwise.
    n_fake_users : float or int, default=0.01
        A float in (0, 1) is a share of the genuine users (rounded, at least 1); an integer
        >= 1 is a number of fake users.
    n_filler_items : int or None, default=None
        Filler items per fake profile. None: each profile's count is drawn from the genuine
        users' profile lengths (a random genuine user's number of items, less the number of
        targets, at least 1)."""

_COMMON_ATTRS = """Attributes
    ----------
    fake_profiles_ : csr_matrix of shape (n_fake_users_, n_items)
        The binary fake profiles, in X's column space (for a table, column j is item
        ``item_ids_[j]``).
    target_items_ : ndarray
        The target item ids (as given, or as drawn).
    n_fake_users_ : int
        Number of fake users.
    fake_users_ : ndarray
        Set by :meth:`fit_transform`: the rows of the fake users in its output (matrix form)
        or their user ids (table form).
    item_ids_ : ndarray
        Item ids of X's columns (``arange(n_items)`` for a matrix).
    input_form_ : {"matrix", "table"}
        The form of X seen in fit.
    n_features_in_ : int
        Matrix form only: the number of items (columns) of X."""


class RandomAttack(_BaseAttack):
    """Random attack: fake users rate the targets plus fillers drawn uniformly at random.

    Each fake profile holds every target item and ``n_filler_items`` distinct filler items
    drawn uniformly from the non-target items. ``fit_transform`` returns X with the fake users
    appended; ``transform`` returns X unchanged, so in a Pipeline only the training data is
    poisoned.

    Parameters
    ----------
    {common}
    random_state : int, RandomState instance or None, default=None
        Seed of the targets, the profile lengths and the fillers.

    {attrs}

    See Also
    --------
    BandwagonAttack, PopularAttack, select_target_items,
    skadvrec.metrics.target_hit_ratio : the effect on the targets' exposure (T-HR@k).

    Examples
    --------
    >>> from skadvrec.attacks import RandomAttack
    >>> from skadvrec.datasets import make_interactions
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> attack = RandomAttack(target_items=[3, 7], n_fake_users=0.05, n_filler_items=10,
    ...                       random_state=0)
    >>> X_poisoned = attack.fit_transform(X)
    >>> X_poisoned.shape
    (210, 50)
    >>> attack.fake_users_[:3]
    array([200, 201, 202])
    >>> X_poisoned[200:].getnnz(axis=1).tolist() == [12] * 10
    True
    >>> attack.transform(X) is X
    True
    """

    def __init__(self, *, target_items=None, n_targets=5, n_fake_users=0.01,
                 n_filler_items=None, random_state=None):
        self.target_items = target_items
        self.n_targets = n_targets
        self.n_fake_users = n_fake_users
        self.n_filler_items = n_filler_items
        self.random_state = random_state

    def _draw_fillers(self, rng, n_fillers, non_targets, pool):
        return _sample_distinct(rng, n_fillers, non_targets)


class BandwagonAttack(_BaseAttack):
    """Bandwagon attack: fillers partly from the most popular items, the rest at random.

    Each fake profile holds every target item and its fillers: ``round(popular_fraction *
    n_fillers)`` of them drawn uniformly from the popular pool (the ``popular_pool`` most
    popular non-target items by training popularity), the others uniformly from the remaining
    non-target items (popular ones included). Riding on popular items makes the fake users look
    like many genuine users, which ties the targets to them. When the pool is smaller than the
    popular share, the whole pool is used and the rest is drawn uniformly.

    Parameters
    ----------
    {common}
    popular_fraction : float, default=0.1
        Share of each profile's fillers drawn from the popular pool, in [0, 1].
    popular_pool : float or int, default=0.1
        The popular pool: a float in (0, 1] is a share of all items (the top 10 % by
        default, at least 1 item), an integer >= 1 a number of items. Targets never enter it.
    random_state : int, RandomState instance or None, default=None
        Seed of the targets, the profile lengths and the fillers.

    {attrs}
    popular_items_ : ndarray
        Ids of the items in the popular pool.

    Examples
    --------
    >>> import numpy as np
    >>> from skadvrec.attacks import BandwagonAttack
    >>> from skadvrec.datasets import make_interactions
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> attack = BandwagonAttack(target_items=[3], n_fake_users=4, n_filler_items=10,
    ...                          popular_fraction=0.5, random_state=0).fit(X)
    >>> from_pool = attack.fake_profiles_[:, attack.popular_items_].getnnz(axis=1)
    >>> bool((from_pool >= 5).all())
    True
    """

    _uses_pool = True

    def __init__(self, *, target_items=None, n_targets=5, n_fake_users=0.01,
                 n_filler_items=None, popular_fraction=0.1, popular_pool=0.1,
                 random_state=None):
        self.target_items = target_items
        self.n_targets = n_targets
        self.n_fake_users = n_fake_users
        self.n_filler_items = n_filler_items
        self.popular_fraction = popular_fraction
        self.popular_pool = popular_pool
        self.random_state = random_state

    def _check_params(self):
        super()._check_params()
        f = self.popular_fraction
        if not isinstance(f, numbers.Real) or isinstance(f, bool) or not 0 <= f <= 1:
            raise ValueError(f"popular_fraction must be a number in [0, 1]; got {f!r}.")
        _check_pool(self.popular_pool)

    def _draw_fillers(self, rng, n_fillers, non_targets, pool):
        n_pop = np.minimum(np.round(self.popular_fraction * n_fillers).astype(np.int64),
                           len(pool))
        r1, c1 = _sample_distinct(rng, n_pop, pool)
        r2, c2 = _sample_distinct(rng, n_fillers - n_pop, non_targets, taken=(r1, c1))
        return np.concatenate([r1, r2]), np.concatenate([c1, c2])


class PopularAttack(_BaseAttack):
    """Popular attack: every filler drawn from the most popular items.

    Each fake profile holds every target item and fillers drawn uniformly from the popular
    pool (the ``popular_pool`` most popular non-target items by training popularity). When the
    filler count is drawn from the genuine users (``n_filler_items=None``), counts above the
    pool size are capped at the pool size; an explicit ``n_filler_items`` larger than the pool
    raises.

    Parameters
    ----------
    {common}
    popular_pool : float or int, default=0.1
        The popular pool: a float in (0, 1] is a share of all items (the top 10 % by
        default, at least 1 item), an integer >= 1 a number of items. Targets never enter it.
    random_state : int, RandomState instance or None, default=None
        Seed of the targets, the profile lengths and the fillers.

    {attrs}
    popular_items_ : ndarray
        Ids of the items in the popular pool.

    Examples
    --------
    >>> import numpy as np
    >>> from skadvrec.attacks import PopularAttack
    >>> from skadvrec.datasets import make_interactions
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> attack = PopularAttack(target_items=[3], n_fake_users=4, n_filler_items=4,
    ...                        popular_pool=5, random_state=0).fit(X)
    >>> attack.popular_items_.size
    5
    >>> fillers = attack.fake_profiles_.copy()
    >>> fillers[:, [3]] = 0
    >>> bool(np.isin(fillers.nonzero()[1], attack.popular_items_).all())
    True
    """

    _uses_pool = True
    _all_from_pool = True

    def __init__(self, *, target_items=None, n_targets=5, n_fake_users=0.01,
                 n_filler_items=None, popular_pool=0.1, random_state=None):
        self.target_items = target_items
        self.n_targets = n_targets
        self.n_fake_users = n_fake_users
        self.n_filler_items = n_filler_items
        self.popular_pool = popular_pool
        self.random_state = random_state

    def _check_params(self):
        super()._check_params()
        _check_pool(self.popular_pool)

    def _draw_fillers(self, rng, n_fillers, non_targets, pool):
        return _sample_distinct(rng, np.minimum(n_fillers, len(pool)), pool)


for _cls in (RandomAttack, BandwagonAttack, PopularAttack):
    _cls.__doc__ = _cls.__doc__.replace("{common}", _COMMON_PARAMS).replace(
        "{attrs}", _COMMON_ATTRS)
del _cls
