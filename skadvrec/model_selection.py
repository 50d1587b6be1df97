"""Splitters for the two data forms.

Matrix form (rows = users): cross-validation over rows holds out whole users (the "strong
generalisation" protocol of Liang et al. 2018 and Steck 2019). :class:`UserHoldout` yields
train/test row indices like :class:`~sklearn.model_selection.ShuffleSplit`, and the scorers split
each held-out row into a fold-in part and a target part with :func:`fold_in_split`.

Table form (rows = interactions): :class:`InteractionHoldout` holds out interactions of known users
("weak generalisation") per user: a random ratio, leave-one-out, or the last interactions by time.
Both are usable as ``cv=`` in :class:`~sklearn.model_selection.GridSearchCV`.

:class:`BestWithinLoss` is a ``refit`` rule for a multi-metric search over a fairness or
robustness strength (λ, ρ): the candidate with the best fairness score among those that lose at
most a given share of accuracy against a reference candidate.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state

__all__ = ["fold_in_split", "UserHoldout", "InteractionHoldout", "split_users",
           "BestWithinLoss"]


def _check_fraction(value, name, *, allow_one=False):
    ok = isinstance(value, numbers.Real) and 0 < value < 1 or (allow_one and value == 1)
    if not ok:
        raise ValueError(f"{name} must be a float in (0, 1); got {value!r}.")


def fold_in_split(X, fold_in_fraction=0.8, *, random_state=0):
    """Split every row of a user × item matrix into a fold-in part and a target part.

    For a row with ``n`` interactions, ``max(1, floor((1 - fold_in_fraction) * n))`` of them,
    drawn at random, become targets when ``n >= 2``; a row with fewer than 2 interactions keeps
    everything as fold-in and has no target (the metrics then exclude it). With
    ``fold_in_fraction=0.8`` and users of at least 5 interactions this is exactly the 80/20
    protocol of Liang et al. (2018). The split is vectorised and depends only on ``X`` and
    ``random_state``, so every candidate of a grid search sees the same targets.

    Parameters
    ----------
    X : sparse matrix of shape (n_users, n_items)
        Held-out users' full rows.
    fold_in_fraction : float, default=0.8
        Share of each row used as input.
    random_state : int, RandomState instance or None, default=0
        Seed of the split.

    Returns
    -------
    X_in, X_out : csr_matrix of shape (n_users, n_items)
        Disjoint fold-in and target parts; ``X_in + X_out == X``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from skadvrec.model_selection import fold_in_split
    >>> X = sp.csr_matrix([[1, 1, 1, 1, 1, 0], [0, 1, 0, 0, 0, 0]])
    >>> X_in, X_out = fold_in_split(X, 0.8, random_state=0)
    >>> X_in.sum(axis=1).A1, X_out.sum(axis=1).A1
    (array([4, 1]), array([1, 0]))
    """
    _check_fraction(fold_in_fraction, "fold_in_fraction")
    X = sp.csr_matrix(X)
    X.sum_duplicates()
    X.eliminate_zeros()
    rng = check_random_state(random_state)
    counts = np.diff(X.indptr)
    rows = np.repeat(np.arange(X.shape[0]), counts)
    keys = rng.random_sample(X.nnz)
    order = np.lexsort((keys, rows))  # grouped by row, random within the row
    del keys, rows  # the split of 1 M users holds O(nnz) arrays: free them as soon as done
    pos = np.empty(X.nnz, dtype=np.int64)
    pos[order] = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)
    del order
    # the 1e-9 keeps (1 - 0.8) * 10 = 1.99999... from flooring to 1 (Liang's int(0.2 * n) is 2)
    n_out = np.where(counts >= 2,
                     np.maximum(1, np.floor((1 - fold_in_fraction) * counts + 1e-9)), 0)
    is_out = pos < np.repeat(n_out, counts)
    data_in = np.where(is_out, 0, X.data)
    data_out = np.where(is_out, X.data, 0)
    X_in = sp.csr_matrix((data_in, X.indices.copy(), X.indptr.copy()), shape=X.shape)
    X_out = sp.csr_matrix((data_out, X.indices.copy(), X.indptr.copy()), shape=X.shape)
    X_in.eliminate_zeros()
    X_out.eliminate_zeros()
    return X_in, X_out


def _resolve_size(size, n, name):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if not 1 <= size < n:
            raise ValueError(f"{name}={size} must be between 1 and n_users - 1 = {n - 1}.")
        return int(size)
    if isinstance(size, numbers.Real) and 0 < size < 1:
        out = int(round(size * n))
        if not 1 <= out < n:
            raise ValueError(f"{name}={size} gives {out} users out of {n}; use a larger share.")
        return out
    raise ValueError(f"{name} must be an int >= 1 or a float in (0, 1); got {size!r}.")


def split_users(n_users, *, n_validation, n_test, random_state=None):
    """Draw disjoint train / validation / test user indices (Liang et al. 2018 protocol).

    Parameters
    ----------
    n_users : int
        Number of users (rows).
    n_validation, n_test : int or float
        Held-out users, as a count or a share of ``n_users``.
    random_state : int, RandomState instance or None, default=None
        Seed of the permutation.

    Returns
    -------
    train, validation, test : ndarray of int
        Sorted row indices.

    Examples
    --------
    >>> from skadvrec.model_selection import split_users
    >>> tr, va, te = split_users(10, n_validation=2, n_test=3, random_state=0)
    >>> len(tr), len(va), len(te)
    (5, 2, 3)
    """
    n_val = _resolve_size(n_validation, n_users, "n_validation")
    n_te = _resolve_size(n_test, n_users, "n_test")
    if n_val + n_te >= n_users:
        raise ValueError(
            f"n_validation + n_test = {n_val + n_te} leaves no training user out of {n_users}."
        )
    perm = check_random_state(random_state).permutation(n_users)
    return (np.sort(perm[n_val + n_te:]), np.sort(perm[:n_val]),
            np.sort(perm[n_val:n_val + n_te]))


class UserHoldout(BaseCrossValidator):
    """Hold out whole users (rows) of a user × item matrix, for ``cv=`` in a grid search.

    Each split draws ``test_size`` users at random (without the users that have fewer than
    ``min_interactions`` interactions, who always stay in training: they cannot be split into
    fold-in and target parts). The scorers then fold in 80 % of each held-out row and rank
    against the rest.

    Parameters
    ----------
    n_splits : int, default=1
        Number of independent draws (like ``ShuffleSplit``, test sets may overlap across splits).
    test_size : int or float, default=0.2
        Held-out users per split, a count or a share of the eligible users.
    min_interactions : int, default=2
        Users with fewer interactions are never held out.
    random_state : int, RandomState instance or None, default=None
        Seed of the draws.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from skadvrec.model_selection import UserHoldout
    >>> X = sp.random(50, 20, density=0.3, format="csr", random_state=0)
    >>> train, test = next(UserHoldout(test_size=10, random_state=0).split(X))
    >>> len(test)
    10
    """

    def __init__(self, n_splits=1, *, test_size=0.2, min_interactions=2, random_state=None):
        self.n_splits = n_splits
        self.test_size = test_size
        self.min_interactions = min_interactions
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_splits

    def split(self, X, y=None, groups=None):
        if not isinstance(self.n_splits, numbers.Integral) or self.n_splits < 1:
            raise ValueError(f"n_splits must be a positive integer; got {self.n_splits!r}.")
        if isinstance(X, pd.DataFrame):
            raise ValueError(
                "UserHoldout splits the rows (users) of a user x item matrix; for an interaction "
                "table use InteractionHoldout."
            )
        X = sp.csr_matrix(X)
        counts = np.diff(X.indptr)
        eligible = np.flatnonzero(counts >= self.min_interactions)
        if len(eligible) < 2:
            raise ValueError(
                f"only {len(eligible)} users have >= {self.min_interactions} interactions; "
                "nothing can be held out."
            )
        n_test = _resolve_size(self.test_size, len(eligible), "test_size")
        rng = check_random_state(self.random_state)
        all_rows = np.arange(X.shape[0])
        for _ in range(self.n_splits):
            test = np.sort(rng.choice(eligible, n_test, replace=False))
            yield np.setdiff1d(all_rows, test, assume_unique=True), test

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover - unused
        for _, test in self.split(X, y, groups):
            yield test


class InteractionHoldout(BaseCrossValidator):
    """Hold out interactions of known users from an interaction table, for ``cv=``.

    Parameters
    ----------
    strategy : {"ratio", "leave_one_out", "chronological"}, default="ratio"
        ``"ratio"``: a random ``test_size`` share of each user's rows; ``"leave_one_out"``: one
        random row per user; ``"chronological"``: the last ``test_size`` share of each user's rows
        by ``timestamp`` (the last one for leave-one-out style with ``test_size`` an int 1).
    test_size : float or int, default=0.2
        Share of each user's rows (float) or number of rows per user (int) held out. Ignored for
        ``"leave_one_out"``.
    n_splits : int, default=1
        Independent random draws (``"chronological"`` allows only 1).
    min_train : int, default=1
        Rows kept in training per user at least; users with too few rows are all-train.
    user_col, time_col : str, default="user", "timestamp"
        Column names.
    random_state : int, RandomState instance or None, default=None
        Seed of the draws.

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.model_selection import InteractionHoldout
    >>> df = pd.DataFrame({"user": [0, 0, 0, 1, 1], "item": [1, 2, 3, 1, 4],
    ...                    "timestamp": [1, 2, 3, 1, 2]})
    >>> train, test = next(InteractionHoldout("chronological", test_size=1).split(df))
    >>> sorted(test.tolist())
    [2, 4]
    """

    _STRATEGIES = ("ratio", "leave_one_out", "chronological")

    def __init__(self, strategy="ratio", *, test_size=0.2, n_splits=1, min_train=1,
                 user_col="user", time_col="timestamp", random_state=None):
        self.strategy = strategy
        self.test_size = test_size
        self.n_splits = n_splits
        self.min_train = min_train
        self.user_col = user_col
        self.time_col = time_col
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_splits

    def _n_test(self, counts):
        if self.strategy == "leave_one_out":
            n = np.ones_like(counts)
        elif isinstance(self.test_size, numbers.Integral) and not isinstance(self.test_size, bool):
            if self.test_size < 1:
                raise ValueError(f"test_size must be >= 1 as a count; got {self.test_size}.")
            n = np.full_like(counts, int(self.test_size))
        else:
            _check_fraction(self.test_size, "test_size")
            n = np.maximum(1, np.floor(self.test_size * counts + 1e-9)).astype(counts.dtype)
        return np.where(counts - n >= self.min_train, n, 0)

    def split(self, X, y=None, groups=None):
        if self.strategy not in self._STRATEGIES:
            raise ValueError(f"strategy must be one of {self._STRATEGIES}; got {self.strategy!r}.")
        if not isinstance(X, pd.DataFrame):
            raise ValueError(
                "InteractionHoldout splits an interaction table (pandas DataFrame with a "
                f"{self.user_col!r} column); for a user x item matrix use UserHoldout."
            )
        if self.user_col not in X.columns:
            raise ValueError(f"X has no column {self.user_col!r}; columns are {list(X.columns)}.")
        if self.strategy == "chronological":
            if self.time_col not in X.columns:
                raise ValueError(
                    f"strategy='chronological' needs a {self.time_col!r} column; columns are "
                    f"{list(X.columns)}."
                )
            if self.n_splits != 1:
                raise ValueError("strategy='chronological' is deterministic: use n_splits=1.")
        if not isinstance(self.n_splits, numbers.Integral) or self.n_splits < 1:
            raise ValueError(f"n_splits must be a positive integer; got {self.n_splits!r}.")
        codes, _ = pd.factorize(X[self.user_col], sort=False)
        n = len(codes)
        rng = check_random_state(self.random_state)
        for _ in range(self.n_splits):
            if self.strategy == "chronological":
                t = np.asarray(X[self.time_col])
                key = np.argsort(np.argsort(t, kind="stable"), kind="stable").astype(float)
                order = np.lexsort((-key, codes))  # per user, newest first
            else:
                order = np.lexsort((rng.random_sample(n), codes))
            counts = np.bincount(codes)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            pos = np.arange(n) - np.repeat(starts, counts)
            n_test = np.repeat(self._n_test(counts), counts)
            test_mask = np.zeros(n, dtype=bool)
            test_mask[order[pos < n_test]] = True
            yield np.flatnonzero(~test_mask), np.flatnonzero(test_mask)

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover - unused
        for _, test in self.split(X, y, groups):
            yield test


class BestWithinLoss:
    """Refit rule: the best ``objective`` among candidates within an accuracy budget.

    For a multi-metric :class:`~sklearn.model_selection.GridSearchCV` (``refit=BestWithinLoss(
    ...)``): among the candidates whose mean ``accuracy`` score is at most
    ``max_relative_loss`` below the reference's, return the index of the one with the best mean
    ``objective`` score (ties: the higher accuracy, then the first). Scores follow scikit-learn's
    greater-is-better convention, so a leakage or target-hit scorer that returns a negated value
    is maximised as it is.

    Parameters
    ----------
    objective : str
        Key of the scorer to optimise (``mean_test_<objective>`` in ``cv_results_``).
    accuracy : str
        Key of the scorer whose loss is bounded.
    max_relative_loss : float, default=0.1
        Largest allowed ``(reference - score) / |reference|`` of the mean ``accuracy``.
    reference : dict or None, default=None
        Parameters of the reference candidate (e.g. the strength 0, the unconstrained model);
        None takes the candidate with the best mean ``accuracy``.

    Examples
    --------
    >>> from skadvrec.model_selection import BestWithinLoss
    >>> results = {"params": [{"lam": 0}, {"lam": 1}, {"lam": 10}],
    ...            "mean_test_ndcg": [0.50, 0.46, 0.30],
    ...            "mean_test_leak": [-0.70, -0.60, -0.50]}
    >>> rule = BestWithinLoss("leak", "ndcg", max_relative_loss=0.1, reference={"lam": 0})
    >>> rule(results)
    1
    """

    def __init__(self, objective, accuracy, *, max_relative_loss=0.1, reference=None):
        self.objective = objective
        self.accuracy = accuracy
        self.max_relative_loss = max_relative_loss
        self.reference = reference

    def _column(self, cv_results, name):
        key = f"mean_test_{name}"
        if key not in cv_results:
            have = sorted(k[len("mean_test_"):] for k in cv_results if k.startswith("mean_test_"))
            raise ValueError(f"BestWithinLoss: no scorer named {name!r} in the search; its "
                             f"scoring dict has {have}.")
        return np.asarray(cv_results[key], dtype=float)

    def __call__(self, cv_results):
        if not (isinstance(self.max_relative_loss, numbers.Real) and self.max_relative_loss >= 0):
            raise ValueError(f"max_relative_loss must be a number >= 0; got "
                             f"{self.max_relative_loss!r}.")
        acc = self._column(cv_results, self.accuracy)
        obj = self._column(cv_results, self.objective)
        if self.reference is None:
            if np.isnan(acc).all():
                raise ValueError(f"BestWithinLoss: every candidate's {self.accuracy!r} is NaN.")
            ref = np.nanmax(acc)
        else:
            hits = [i for i, p in enumerate(cv_results["params"])
                    if all(k in p and p[k] == v for k, v in self.reference.items())]
            if not hits:
                raise ValueError(f"BestWithinLoss: no candidate has the reference parameters "
                                 f"{self.reference!r}; add them to the grid.")
            ref = acc[hits[0]]
        ok = acc >= ref - self.max_relative_loss * abs(ref) - 1e-12 * max(1.0, abs(ref))
        ok &= ~np.isnan(obj)
        if not ok.any():
            raise ValueError(f"BestWithinLoss: no candidate with a finite {self.objective!r} is "
                             f"within {self.max_relative_loss:.0%} of the reference "
                             f"{self.accuracy!r} ({ref:.4g}).")
        idx = np.flatnonzero(ok)
        order = np.lexsort((-acc[idx], -obj[idx]))  # best objective, then higher accuracy
        return int(idx[order[0]])
