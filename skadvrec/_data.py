"""The data contract: validated interactions, one object for every family.

Two input forms reach an estimator (see the README's data contract):

* a **user × item matrix** (scipy sparse or numpy), rows are users;
* an **interaction table** (pandas DataFrame), rows are interactions with columns ``user``,
  ``item`` and optional ``rating``, ``timestamp`` and feature columns.

:func:`check_interactions` validates either and returns an :class:`InteractionData`: the binary
users × items CSR matrix every family trains on, the id maps, and — for a table at fit time —
the validated table itself, the user-side and item-side feature frames and each user's
time-ordered item sequence. Families read what they need from it; nothing the table carried is
dropped. This module sits at the bottom of the package: it imports no estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._warnings import warn

__all__ = ["InteractionData", "check_interactions", "check_table", "check_matrix_values",
           "USER", "ITEM", "RATING", "TIMESTAMP", "LABEL"]

USER, ITEM, RATING, TIMESTAMP, LABEL = "user", "item", "rating", "timestamp", "label"
_RESERVED = (USER, ITEM, RATING, TIMESTAMP, LABEL)

TABLE_HELP = (
    "A pandas DataFrame is read as an interaction table with columns 'user' and 'item' (optional "
    "'rating', 'timestamp'); rename yours with DataFrame.rename(columns=...). A user x item "
    "matrix goes in as a scipy.sparse matrix or a numpy array."
)


@dataclass
class InteractionData:
    """Validated input, as every family's ``_fit`` receives it.

    Attributes
    ----------
    kind : {"matrix", "table"}
        Rows of X are users (``"matrix"``) or interactions (``"table"``).
    matrix : csr_matrix of shape (n_users, n_items)
        Binary positives (a table's rows with ``rating >= rating_threshold``; repeated
        interactions count once). Row ``u`` is user ``user_ids[u]`` (table form) or row ``u`` of
        X (matrix form); column ``i`` is item ``item_ids[i]``.
    user_ids, item_ids : ndarray or None
        Sorted original ids of the matrix rows and columns (table form; ``item_ids`` is
        ``arange(n_items)`` for a matrix).
    first_row : ndarray or None
        Table form: for each matrix row, the position in X of the first row naming that user
        (to align per-row ``sensitive_features`` with users).
    table : DataFrame or None
        Table form, at fit: the validated table (every row, whatever its rating), positional
        index, with integer codes ``user_code`` / ``item_code`` (-1 for a user or item that has no
        positive row, hence no matrix row / column) and ``positive`` (bool) added.
    user_features, item_features : DataFrame or None
        Table form, at fit: the feature columns that are constant within each user (resp.
        item), one row per matrix row (resp. column), indexed by position. A multi-valued
        categorical field is a column of tuples. Columns constant within both go to the user
        side. Columns that vary within users and items stay in ``table`` only.
    sequences : tuple of (indptr, items) or None
        Table form with a ``timestamp`` column, at fit: each user's positive items ordered by
        time (ties by input order), CSR-style: the items of matrix row ``u`` are
        ``items[indptr[u]:indptr[u + 1]]`` (item codes).
    """

    kind: str
    matrix: sp.csr_matrix
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    first_row: np.ndarray | None = None
    table: pd.DataFrame | None = None
    user_features: pd.DataFrame | None = None
    item_features: pd.DataFrame | None = None
    sequences: tuple | None = None

    @property
    def shape(self):
        return self.matrix.shape

    @property
    def feature_columns(self):
        """Names of the table's feature columns (user side first, then item side)."""
        cols = []
        for f in (self.user_features, self.item_features):
            if f is not None:
                cols += list(f.columns)
        return cols


def check_table(X):
    """Check the columns and values of an interaction table; raise a ValueError naming the fix."""
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"expected an interaction table (a pandas DataFrame with columns 'user' "
                         f"and 'item'); got {type(X).__name__}. Build one with pd.DataFrame("
                         "{'user': ..., 'item': ...}), or pass a user x item matrix to the "
                         "estimators directly.")
    missing = [c for c in (USER, ITEM) if c not in X.columns]
    if missing:
        raise ValueError(f"the interaction table has no column(s) {missing}; got "
                         f"{list(X.columns)}. {TABLE_HELP}")
    if len(X) == 0:
        raise ValueError("the interaction table is empty: it has 0 rows.")
    for col in (USER, ITEM):
        if X[col].isna().any():
            raise ValueError(f"column {col!r} contains missing values; drop those rows first.")
    if RATING in X.columns:
        r = pd.to_numeric(X[RATING], errors="coerce")
        if r.isna().any():
            raise ValueError("column 'rating' contains missing or non-numeric values.")


def check_matrix_values(X, name="X"):
    """Check a user x item matrix (sparse or array-like) before scikit-learn's validation.

    Raises a ``ValueError`` that names the problem and the fix for what an interaction matrix
    cannot hold: non-numeric entries, a shape that is not 2-D, no rows or columns, NaN,
    infinite or negative values. DataFrames (interaction tables) are left to
    :func:`check_table`. Returns nothing.

    Examples
    --------
    >>> import numpy as np
    >>> check_matrix_values(np.array([[1.0, np.nan]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: X contains 1 NaN value(s), e.g. at row 0, column 1; interactions must be ...
    """
    if isinstance(X, pd.DataFrame) or X is None:
        return
    if sp.issparse(X):
        shape = X.shape
        values = (X if X.format in ("csr", "csc", "coo") else X.tocsr()).data
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError):  # ragged nested lists
            raise ValueError(f"{name} is not a rectangular user x item matrix; pass a "
                             f"scipy.sparse matrix or a 2-D numpy array. {TABLE_HELP}") from None
        if arr.dtype == object or arr.dtype.kind in "USV":
            try:
                arr = arr.astype(np.float64)
            except ValueError:  # a TypeError (e.g. a dict entry) keeps numpy's message
                raise ValueError(f"{name} has non-numeric entries (dtype {arr.dtype}): a user x "
                                 "item matrix holds interaction strengths. To pass user and item "
                                 f"ids, use an interaction table. {TABLE_HELP}") from None
        shape, values = arr.shape, arr
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D user x item matrix; got an array of shape "
                         f"{shape}. Reshape your data with x.reshape(1, -1) for a single user. "
                         f"{TABLE_HELP}")
    # an empty matrix is left to scikit-learn's "0 sample(s) / 0 feature(s)" message
    if values.dtype.kind in "biu":  # booleans and integers: finite by construction
        values = np.asarray(values, dtype=np.int64 if values.dtype.kind == "i" else None)
        if values.size and values.dtype.kind == "i" and values.min() < 0:
            raise ValueError(f"Negative values in data passed to {name}: interaction strengths "
                             "must be >= 0 (use 1 for an interaction, 0 for none).")
        return
    bad = ~np.isfinite(values)
    if bad.any():
        kind = "NaN" if np.isnan(values).any() else "infinite"
        n_bad = int(bad.sum())
        where = ""
        if not sp.issparse(X):
            r, c = (int(v[0]) for v in np.nonzero(bad))
            where = f", e.g. at row {r}, column {c}"
        raise ValueError(f"{name} contains {n_bad} {kind} value(s){where}; interactions must be "
                         f"finite. Drop or fill them (e.g. X = np.nan_to_num(X, nan=0.0)) before "
                         "fitting.")
    if values.size and values.min() < 0:
        raise ValueError(f"Negative values in data passed to {name} (min "
                         f"{float(values.min()):g}): interaction strengths must be >= 0 (use 1 "
                         "for an interaction, 0 for none; drop dislikes or encode them in an "
                         "interaction table's 'rating' column with rating_threshold).")


def _unique_ids(values, col):
    """``np.unique(values, return_inverse=True)``, with a clear error for ids that cannot be
    ordered (mixed types such as ints and strings)."""
    try:
        return np.unique(values, return_inverse=True)
    except TypeError:
        types = sorted({type(v).__name__ for v in values})
        raise ValueError(f"column {col!r} mixes id types {types}; ids must be of one type. "
                         f"Convert them, e.g. df[{col!r}] = df[{col!r}].astype(str).") from None


def _hashable(col):
    """A multi-valued field given as lists becomes a column of tuples (hashable)."""
    if col.dtype == object and len(col) and col.map(lambda v: isinstance(v, list)).any():
        return col.map(lambda v: tuple(v) if isinstance(v, list) else v)
    return col


def _side_frame(table, cols, key, n):
    """One row per code ``0..n-1`` of ``table[key]`` with the columns constant within a code."""
    if not cols or n == 0:
        return None
    rows = table[table[key] >= 0]
    first = rows.drop_duplicates(key)
    frame = first.set_index(key)[cols].reindex(np.arange(n))
    frame.index = pd.RangeIndex(n)
    return frame


def _split_features(table, n_users, n_items):
    """(user_features, item_features) of the non-reserved columns of ``table``."""
    cols = [c for c in table.columns if c not in _RESERVED
            and c not in ("user_code", "item_code", "positive")]
    user_side, item_side = [], []
    # code -1 gathers every user (item) without a positive row: not one user, so left out
    users, items = table[table["user_code"] >= 0], table[table["item_code"] >= 0]
    for c in cols:
        if (users.groupby("user_code", sort=False)[c].nunique(dropna=False) <= 1).all():
            user_side.append(c)
        elif (items.groupby("item_code", sort=False)[c].nunique(dropna=False) <= 1).all():
            item_side.append(c)
    return (_side_frame(table, user_side, "user_code", n_users),
            _side_frame(table, item_side, "item_code", n_items))


def _sequences(table, matrix):
    """Each user's positive item codes ordered by timestamp (stable), CSR-style."""
    pos = table[table["positive"] & (table["item_code"] >= 0)]
    order = np.lexsort((np.arange(len(pos)), np.asarray(pos[TIMESTAMP]),
                        np.asarray(pos["user_code"])))
    users = np.asarray(pos["user_code"])[order]
    items = np.asarray(pos["item_code"])[order].astype(np.int64)
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=matrix.shape[0]), out=indptr[1:])
    return indptr, items


def check_interactions(X, *, item_ids=None, rating_threshold=None, allow_empty=True,
                       keep_table=False, copy=True):
    """Validate either input form and return ``(InteractionData, item_ids)``.

    Parameters
    ----------
    X : sparse matrix, ndarray or DataFrame
        The user × item matrix (non-negative, finite) or the interaction table.
    item_ids : ndarray, default=None
        Fitted item ids for the table form: items outside them are dropped with a warning.
        ``None`` at fit time, when the ids are derived from X.
    rating_threshold : float or None, default=None
        For tables with a ``rating`` column: rows with a lower rating are not positives.
    allow_empty : bool, default=True
        Accept a matrix with no non-zero entry (held-out data may be empty; training may not).
    keep_table : bool, default=False
        Table form: also return the validated table, the feature frames and the sequences
        (what ``fit`` hands to a family; prediction needs only the matrix).
    copy : bool, default=True
        Matrix form: the returned CSR never shares memory with X (a fitted model keeps it).
        With False (read-only uses such as prediction), X's buffers are reused when it is
        already a canonical CSR without stored zeros, and copied otherwise; X itself is never
        modified either way.

    Returns
    -------
    data : InteractionData
    item_ids : ndarray or None

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": ["a", "a", "b"], "item": [10, 20, 10],
    ...                    "timestamp": [2, 1, 5], "gender": ["F", "F", "M"]})
    >>> data, items = check_interactions(df, keep_table=True)
    >>> data.matrix.toarray()
    array([[1., 1.],
           [1., 0.]], dtype=float32)
    >>> data.user_features["gender"].tolist()
    ['F', 'M']
    >>> indptr, seq = data.sequences
    >>> items[seq[indptr[0]:indptr[1]]].tolist()  # user "a", by time
    [20, 10]
    """
    if isinstance(X, pd.DataFrame):
        return _check_table_input(X, item_ids, rating_threshold, keep_table)
    if sp.issparse(X):
        m = sp.csr_matrix(X, dtype=np.float32 if X.dtype != np.float64 else np.float64,
                          copy=copy)
        shared = (isinstance(getattr(X, "data", None), np.ndarray)
                  and np.shares_memory(m.data, X.data))
        if shared and (not m.has_canonical_format or not np.all(m.data)):
            m = m.copy()  # sum_duplicates / eliminate_zeros below must not touch X
    else:
        arr = np.asarray(X)
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"X has non-numeric entries; {TABLE_HELP}") from None
        m = sp.csr_matrix(arr.astype(np.float64 if arr.dtype == np.float64 else np.float32))
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D user x item matrix; got shape {m.shape}.")
    if m.nnz and not np.all(np.isfinite(m.data)):
        raise ValueError("X contains NaN or infinite values; interactions must be finite.")
    if m.nnz and m.data.min() < 0:
        raise ValueError("X contains negative values; interaction strengths must be >= 0.")
    m.sum_duplicates()
    m.eliminate_zeros()
    if m.nnz == 0 and not allow_empty:
        raise ValueError("X has no interactions (all entries are zero).")
    return InteractionData("matrix", m, item_ids=np.arange(m.shape[1])), item_ids


def _check_table_input(X, item_ids, rating_threshold, keep_table):
    check_table(X)
    positive = np.ones(len(X), dtype=bool)
    if RATING in X.columns and rating_threshold is not None:
        positive = np.asarray(pd.to_numeric(X[RATING]) >= rating_threshold)
        if not positive.any():
            raise ValueError(
                f"no row has rating >= rating_threshold={rating_threshold}; lower the "
                "threshold or set rating_threshold=None to keep every row.")
    pos = np.flatnonzero(positive)  # positions: safe with duplicate index labels
    users_all, items_all = np.asarray(X[USER]), np.asarray(X[ITEM])
    users, user_codes = _unique_ids(users_all[pos], USER)
    if item_ids is None:
        item_ids, item_codes = _unique_ids(items_all[pos], ITEM)
        known = np.ones(len(pos), dtype=bool)
    else:
        item_codes = np.clip(np.searchsorted(item_ids, items_all[pos]), 0, len(item_ids) - 1)
        known = item_ids[item_codes] == items_all[pos]
        if not known.all():
            warn(
                f"{int((~known).sum())} interaction(s) name items unseen in fit; they cannot "
                "be ranked and are ignored.", UserWarning)
    m = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (user_codes[known], item_codes[known])),
        shape=(len(users), len(item_ids)))
    m.sum_duplicates()
    m.data[:] = 1.0  # repeated interactions count once
    first_row = pos[np.unique(user_codes, return_index=True)[1]]
    data = InteractionData("table", m, user_ids=users, item_ids=item_ids, first_row=first_row)
    if keep_table:
        table = X.reset_index(drop=True).copy()
        for c in table.columns:
            if c not in _RESERVED:
                table[c] = _hashable(table[c])
        table["user_code"] = _codes(users, users_all)
        table["item_code"] = _codes(item_ids, items_all)
        table["positive"] = positive
        data.table = table
        data.user_features, data.item_features = _split_features(table, *m.shape)
        if TIMESTAMP in table.columns:
            data.sequences = _sequences(table, m)
    return data, item_ids


def _codes(sorted_ids, values):
    """Position of each value in ``sorted_ids``, -1 where absent."""
    at = np.clip(np.searchsorted(sorted_ids, values), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == values, at, -1).astype(np.int64)


def item_columns(items, n_items, item_ids, name, where="X"):
    """Map item ids to column indices of the users × items matrix, checking them.

    Parameters
    ----------
    items : array-like
        Distinct item ids: column indices (``item_ids=None``, the matrix form) or values of
        ``item_ids`` (the table form).
    n_items : int
        Number of columns.
    item_ids : ndarray or None
        Sorted item ids of the columns (table form), or None (matrix form).
    name : str
        The parameter's name, for error messages (e.g. ``"target_items"``).
    where : str, default="X"
        The item space, for error messages (``"X"``, ``"the fitted model"``, ...).

    Returns
    -------
    ndarray of int64
        Column indices, in the order of ``items``.

    Examples
    --------
    >>> import numpy as np
    >>> item_columns(["b", "c"], 3, np.array(["a", "b", "c"]), "target_items").tolist()
    [1, 2]
    """
    arr = np.asarray(items)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of item ids; got {items!r}.")
    if pd.Index(arr).has_duplicates:
        dup = pd.Index(arr)[pd.Index(arr).duplicated()].unique().tolist()
        raise ValueError(f"{name} lists item(s) {dup} more than once; pass distinct items.")
    if item_ids is None:
        if not np.issubdtype(arr.dtype, np.integer):
            bad = arr[:3].tolist()
            raise ValueError(f"for a user x item matrix, {name} are column indices (integers); "
                             f"got {bad}.")
        bad = arr[(arr < 0) | (arr >= n_items)]
        if len(bad):
            raise ValueError(f"{name} {bad.tolist()} are not items of {where}: column indices "
                             f"must be in [0, {n_items - 1}].")
        return arr.astype(np.int64)
    try:
        pos = np.clip(np.searchsorted(item_ids, arr), 0, len(item_ids) - 1)
        known = item_ids[pos] == arr
    except TypeError:  # ids of a type that cannot be compared with the table's ids
        pos, known = np.zeros(len(arr), dtype=np.int64), np.zeros(len(arr), dtype=bool)
    if not known.all():
        raise ValueError(f"{name} {arr[~known].tolist()} are not items of {where} (no "
                         "interaction names them); pass values of the table's 'item' column.")
    return pos.astype(np.int64)
