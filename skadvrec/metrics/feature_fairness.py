"""Feature fairness: statistics of feature values, and click-prediction AUC across feature groups.

A *field* is a categorical column of an interaction table (``user``, ``item``, ``gender``,
``genres``, ...); a multi-valued field is a column of tuples. Feature fairness (Hu et al.,
SIGIR-AP 2023, "Automatic Feature Fairness in Recommendation via Adversaries") asks that a
click model be as accurate on the rows carrying rare feature values as on the common ones. This
module defines, once for the package:

* the **statistics** of feature values on a table: :func:`value_frequency` (α), the share of
  rows that carry a value; :func:`combination_variety` (β), the share of the other side's
  values a value has been seen with; :func:`sample_frequency`, a row's mean α; and
  :func:`field_sides` (which fields describe users, items or the row itself);
* **group accuracy**: :func:`feature_group_auc`, the ROC AUC of a model's click scores per value
  of a field or per frequency bin of the rows, and the scorers :class:`FeatureGroupAUCScorer`
  (std / gap / min of those AUCs) and :class:`RowAUCScorer` (the AUC of all rows), usable
  together in a multi-metric :class:`~sklearn.model_selection.GridSearchCV`.

The scorers call only the estimator's public ``decision_function`` (or ``predict_proba``) and
read its public fitted ``feature_frequencies_`` when asked for frequency groups: they work with
any model that scores interaction rows. This module imports no estimator family.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from sklearn.metrics import roc_auc_score

from .._data import ITEM, LABEL, RATING, TIMESTAMP, USER
from ._scorers import _RoutedScorer

__all__ = ["field_sides", "value_frequency", "combination_variety", "sample_frequency",
           "feature_fields", "is_multi_valued", "explode_field", "row_labels",
           "feature_group_auc", "FeatureGroupAUCScorer", "RowAUCScorer"]

_NOT_FIELDS = (RATING, TIMESTAMP, LABEL, "user_code", "item_code", "positive")
_STATISTICS = ("std", "gap", "min")


# -- fields and their values ---------------------------------------------------------------------
def feature_fields(X, fields=None):
    """The field columns of table ``X``: ``user``, ``item`` and every column that is not
    ``rating``, ``timestamp`` or ``label`` (in table order), or the given ``fields`` checked.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user": [1], "item": [2], "rating": [5], "gender": ["F"]})
    >>> feature_fields(X)
    ['user', 'item', 'gender']
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be an interaction table (pandas DataFrame); got "
                        f"{type(X).__name__}.")
    if fields is None:
        ids = [c for c in (USER, ITEM) if c in X.columns]
        return ids + [c for c in X.columns if c not in (USER, ITEM) and c not in _NOT_FIELDS]
    fields = [fields] if isinstance(fields, str) else list(fields)
    missing = [f for f in fields if f not in X.columns]
    if missing:
        raise ValueError(f"field(s) {missing} are not columns of X ({list(X.columns)}).")
    return fields


def is_multi_valued(col):
    """True when ``col`` is a multi-valued field: an object column of tuples or lists."""
    if col.dtype != object or len(col) == 0:
        return False
    values = col.to_numpy()
    kinds = np.fromiter((isinstance(v, (tuple, list)) for v in values), bool, len(values))
    if kinds.any() and not kinds.all():
        bad = values[np.flatnonzero(~kinds)[0]]
        raise ValueError(f"field {col.name!r} mixes tuples and single values (e.g. {bad!r}); a "
                         "multi-valued field holds a tuple in every row (() for none).")
    return bool(kinds[0])


def explode_field(col):
    """(row positions, values) of a field: one pair per row, or per value of a multi-valued
    field (a row with an empty tuple has none).

    Examples
    --------
    >>> import pandas as pd
    >>> rows, values = explode_field(pd.Series([("a", "b"), (), ("c",)]))
    >>> rows.tolist(), values.tolist()
    ([0, 0, 2], ['a', 'b', 'c'])
    """
    if is_multi_valued(col):
        tuples = col.to_numpy()
        lengths = np.fromiter(map(len, tuples), np.int64, len(tuples))
        rows = np.repeat(np.arange(len(col)), lengths)
        values = np.empty(int(lengths.sum()), dtype=object)
        values[:] = list(itertools.chain.from_iterable(tuples))
        return rows, values
    return np.arange(len(col)), col.to_numpy()


def field_sides(X, fields=None):
    """Which entity each field describes: ``"user"``, ``"item"`` or ``"row"``.

    A field is on the user side when it is constant within every user of ``X`` (the ``user``
    column), on the item side when constant within every item, and a row-level (context) field
    otherwise. ``user`` and ``item`` themselves are on their own side. A field constant within
    both users and items (only possible when no user shares an item with a user of another
    value) goes to the user side.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user": [1, 1, 2], "item": [7, 8, 7], "gender": ["F", "F", "M"],
    ...                   "year": [1990, 2000, 1990], "hour": [9, 10, 11]})
    >>> field_sides(X)
    {'user': 'user', 'item': 'item', 'gender': 'user', 'year': 'item', 'hour': 'row'}
    """
    fields = feature_fields(X, fields)
    users = pd.factorize(X[USER])[0] if USER in X.columns else None
    items = pd.factorize(X[ITEM])[0] if ITEM in X.columns else None
    out = {}
    for f in fields:
        if f in (USER, ITEM):
            out[f] = f
            continue
        codes = pd.factorize(X[f])[0]
        side = "row"
        for name, key in (("user", users), ("item", items)):
            if key is not None and pd.Series(codes).groupby(key).nunique().max() <= 1:
                side = name
                break
        out[f] = side
    return out


# -- the statistics --------------------------------------------------------------------------------
def value_frequency(X, fields=None):
    """Frequency α of every value of every field: the share of rows of ``X`` carrying it.

    For a value ``v`` of field ``f``, ``α_v = #{rows whose f is (or, multi-valued, contains)
    v} / #rows``. The values of a single-valued field sum to 1; those of a multi-valued field
    sum to its mean number of values per row.

    Parameters
    ----------
    X : DataFrame
        Interaction table (the training rows).
    fields : list of str, default=None
        Fields to describe (default: :func:`feature_fields`).

    Returns
    -------
    dict of str to Series
        Per field, α indexed by value, most frequent first.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user": [1, 1, 2, 3], "item": [5, 6, 5, 5],
    ...                   "genres": [("a", "b"), ("b",), ("a", "b"), ("a", "b")]})
    >>> value_frequency(X)["item"].to_dict()
    {5: 0.75, 6: 0.25}
    >>> value_frequency(X)["genres"].to_dict()
    {'b': 1.0, 'a': 0.75}
    """
    fields = feature_fields(X, fields)
    out = {}
    for f in fields:
        _, codes, uniques = _factorized(X[f])
        share = np.bincount(codes, minlength=len(uniques)) / len(X)
        order = np.argsort(-share, kind="stable")
        out[f] = pd.Series(share[order], index=uniques[order], name=f)
    return out


def _factorized(col):
    """(row positions, value codes, values) of a field, exploded (see :func:`explode_field`)."""
    rows, values = explode_field(col)
    if isinstance(col.dtype, pd.CategoricalDtype):  # keep the values' own dtype
        values = pd.Categorical(values, categories=col.cat.categories)
        codes = np.asarray(values.codes, dtype=np.int64)
        used = np.unique(codes)
        remap = np.full(len(col.cat.categories), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return rows, remap[codes], pd.Index(col.cat.categories[used])
    codes, uniques = pd.factorize(pd.Series(values, dtype=col.dtype if not is_multi_valued(col)
                                            else None), sort=False)
    return rows, codes.astype(np.int64), pd.Index(uniques)


def _partners(fields, sides):
    """The fields a field's combinations are counted over: the other side's fields and the
    row-level ones (a row-level field: every other field)."""
    out = {}
    for f in fields:
        s = sides[f]
        if s == "row":
            out[f] = [g for g in fields if g != f]
        else:
            out[f] = [g for g in fields if g != f and sides[g] != s]
        if not out[f]:  # a table with one side only: every other field
            out[f] = [g for g in fields if g != f]
    return out


def combination_variety(X, fields=None, *, sides=None):
    """Combination variety β of every value of every field (in [0, 1]).

    For a value ``v`` of field ``f`` and a *partner* field ``g``, the coverage of ``g`` is the
    share of ``g``'s values (those present in ``X``) that occur in at least one row together
    with ``v``; ``β_v`` is the mean coverage over the partner fields. The partners of a
    user-side field are the item-side and row-level fields, those of an item-side field the
    user-side and row-level fields (the combinations a click model learns from interactions),
    those of a row-level field every other field (see :func:`field_sides`). ``β_v`` close to 1:
    ``v`` has met almost every value of the other side; close to 0: ``v`` was seen in few
    combinations, so its embedding is fitted to few contexts.

    The released AAFM code reads this statistic from a precomputed column and does not say how
    it was made; this is the package's definition (see the FM family's docs).

    Parameters
    ----------
    X : DataFrame
        Interaction table (the training rows).
    fields : list of str, default=None
        Fields to describe (default: :func:`feature_fields`); partners are drawn from them.
    sides : dict of str to {"user", "item", "row"}, default=None
        Side of each field; inferred with :func:`field_sides` when None.

    Returns
    -------
    dict of str to Series
        Per field, β indexed by value.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user": [1, 1, 2, 3], "item": [5, 6, 5, 5],
    ...                   "gender": ["F", "F", "M", "M"]})
    >>> beta = combination_variety(X)
    >>> beta["item"].round(4).to_dict()  # item 6 met 1 of 3 users and 1 of 2 genders
    {5: 1.0, 6: 0.4167}
    >>> beta["gender"].to_dict()  # gender's only partner is item: F met both, M one
    {'F': 1.0, 'M': 0.5}
    """
    fields = feature_fields(X, fields)
    sides = field_sides(X, fields) if sides is None else dict(sides)
    missing = [f for f in fields if f not in sides]
    if missing:
        raise ValueError(f"sides has no entry for field(s) {missing}.")
    exploded, codes, vocab, single = {}, {}, {}, {}
    for f in fields:
        exploded[f], codes[f], vocab[f] = _factorized(X[f])
        single[f] = len(exploded[f]) == len(X) and np.array_equal(exploded[f],
                                                                 np.arange(len(X)))
    out = {}
    for f, partners in _partners(fields, sides).items():
        nf = len(vocab[f])
        cover = np.zeros(nf)
        for g in partners:
            ng = len(vocab[g])
            if ng == 0:
                continue
            if single[f]:  # pair each value of g with its row's value of f
                a, b = codes[f][exploded[g]], codes[g]
            elif single[g]:
                a, b = codes[f], codes[g][exploded[f]]
            else:  # two multi-valued fields: every pair of values within a row
                pairs = pd.DataFrame({"row": exploded[f], "a": codes[f]}).merge(
                    pd.DataFrame({"row": exploded[g], "b": codes[g]}), on="row")
                a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
            cover += _distinct_partners(a, b, nf, ng) / ng
        out[f] = pd.Series(cover / max(len(partners), 1), index=vocab[f], name=f)
    return out


def _distinct_partners(a, b, na, nb):
    """For each code of ``a`` (0..na-1), the number of distinct codes of ``b`` paired with it."""
    if na * nb <= 50_000_000:  # a bitmap of the pairs
        seen = np.zeros(na * nb, dtype=bool)
        seen[a * nb + b] = True
        return seen.reshape(na, nb).sum(1)
    keys = np.sort(a * nb + b)
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    return np.bincount(keys // nb, minlength=na)


def sample_frequency(X, frequencies, fields=None):
    """Each row's frequency score: the mean over fields of its values' frequency α.

    A multi-valued field contributes the mean α of its values (0 for an empty tuple); a value
    absent from ``frequencies`` (unseen in training) contributes 0. Rows made of common values
    score high ("advantaged"), rows carrying rare values low ("disadvantaged").

    Parameters
    ----------
    X : DataFrame
        The rows to score.
    frequencies : dict of str to Series
        α per field, as returned by :func:`value_frequency` on the training rows (or an
        estimator's ``feature_frequencies_``).
    fields : list of str, default=None
        Fields to average over; default: the fields of ``frequencies`` that are columns of X.

    Returns
    -------
    ndarray of shape (n_rows,)

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user": [1, 1, 2, 3], "item": [5, 6, 5, 5]})
    >>> sample_frequency(X, value_frequency(X)).tolist()
    [0.625, 0.375, 0.5, 0.5]
    """
    if fields is None:
        fields = [f for f in frequencies if f in X.columns]
    if not fields:
        raise ValueError(f"none of the fields of frequencies ({list(frequencies)}) is a column "
                         f"of X ({list(X.columns)}).")
    total = np.zeros(len(X))
    for f in fields:
        rows, values = explode_field(X[f])
        alpha = pd.Series(frequencies[f])
        a = alpha.reindex(pd.Index(values)).fillna(0.0).to_numpy(dtype=float)
        if is_multi_valued(X[f]):
            s = np.bincount(rows, weights=a, minlength=len(X))
            n = np.bincount(rows, minlength=len(X))
            total += np.divide(s, n, out=np.zeros(len(X)), where=n > 0)
        else:
            total += a
    return total / len(fields)


# -- labels and group AUC --------------------------------------------------------------------------
def row_labels(X, rating_threshold=None):
    """The binary click labels of table rows: the ``label`` column (0/1 or bool) or, without
    one, ``rating >= rating_threshold``.

    Examples
    --------
    >>> import pandas as pd
    >>> row_labels(pd.DataFrame({"user": [1, 2], "item": [3, 3], "rating": [5, 2]}), 4).tolist()
    [1, 0]
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError("labelled rows come as an interaction table (pandas DataFrame) with a "
                        f"'label' or 'rating' column; got {type(X).__name__}.")
    if LABEL in X.columns:
        y = X[LABEL]
        if y.isna().any():
            raise ValueError("column 'label' has missing values; labels must be 0 or 1.")
        values = set(pd.unique(y).tolist())
        if not values <= {0, 1}:  # (True == 1, False == 0)
            raise ValueError(f"column 'label' must be binary (0/1 or bool); got values "
                             f"{sorted(values, key=str)[:5]}. Binarise it first, e.g. "
                             "X['label'] = (X['rating'] >= 4).astype(int).")
        return y.to_numpy().astype(np.int64)
    if RATING in X.columns and rating_threshold is not None:
        return (pd.to_numeric(X[RATING]).to_numpy() >= rating_threshold).astype(np.int64)
    raise ValueError("X has no 'label' column (nor a 'rating' column with a rating_threshold): "
                     "AUC needs labelled rows, both clicks (1) and non-clicks (0).")


def _threshold(estimator):
    try:
        return estimator.get_params().get("rating_threshold")
    except AttributeError:
        return getattr(estimator, "rating_threshold", None)


def _click_scores(estimator, X):
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float)
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(X), dtype=float)[:, 1]
    raise TypeError(f"{type(estimator).__name__} has neither decision_function nor "
                    "predict_proba: feature-group AUC scores interaction rows with one of them.")


def _groups(X, by, n_bins, frequencies, estimator):
    """(row positions, group labels) of the rows of X for ``by``."""
    if by == "frequency":
        if frequencies is None:
            frequencies = getattr(estimator, "feature_frequencies_", None)
            if frequencies is None:
                raise ValueError(
                    "by='frequency' needs the training frequencies of the feature values: pass "
                    "frequencies=value_frequency(train_table) or use an estimator with a fitted "
                    "feature_frequencies_ attribute.")
        score = sample_frequency(X, frequencies)
        order = np.argsort(-score, kind="stable")  # most frequent first
        labels = np.empty(len(X), dtype=object)
        for b, part in enumerate(np.array_split(order, n_bins)):
            labels[part] = f"top{b + 1}"
        return np.arange(len(X)), labels
    if by not in X.columns:
        raise ValueError(f"by={by!r} is neither 'frequency' nor a column of X "
                         f"({list(X.columns)}).")
    col = X[by]
    if (not is_multi_valued(col) and pdt.is_numeric_dtype(col) and not pdt.is_bool_dtype(col)
            and not isinstance(col.dtype, pd.CategoricalDtype) and col.nunique() > n_bins):
        bins = pd.qcut(col.rank(method="first"), n_bins, labels=False)
        edges = col.groupby(bins).agg(["min", "max"])
        names = {b: f"{r['min']}-{r['max']}" for b, r in edges.iterrows()}
        return np.arange(len(X)), bins.map(names).to_numpy()
    return explode_field(col)


def feature_group_auc(estimator, X, by, *, n_bins=6, frequencies=None, min_rows=10):
    """ROC AUC of a model's click scores per feature group of the rows of X.

    Parameters
    ----------
    estimator : fitted estimator
        Anything with ``decision_function(X)`` (or ``predict_proba(X)``) on table rows.
    X : DataFrame
        Held-out labelled rows: a ``label`` column, or ``rating`` binarised by the estimator's
        ``rating_threshold``.
    by : str
        ``"frequency"``: the rows sorted by :func:`sample_frequency` (training frequencies)
        and cut into ``n_bins`` groups of equal size, ``top1`` (most frequent values) to
        ``top<n_bins>`` (rarest; ``n_bins=2`` gives the paper's advantaged / disadvantaged
        halves). A field name: one group per value (a row of a multi-valued field is in the
        group of each of its values); a numeric, non-categorical field with more than
        ``n_bins`` distinct values is cut into ``n_bins`` quantile bins.
    n_bins : int, default=6
        Number of frequency bins (the paper's six) or quantile bins of a numeric field.
    frequencies : dict of str to Series, default=None
        Training frequencies for ``by="frequency"`` (:func:`value_frequency`); default: the
        estimator's ``feature_frequencies_``.
    min_rows : int, default=10
        Groups with fewer rows, or without both labels, get ``auc = NaN`` (left out of the
        fairness statistics).

    Returns
    -------
    DataFrame
        Indexed by group, columns ``auc``, ``n_rows``, ``n_positive``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skadvrec.metrics import feature_group_auc
    >>> class Scores:  # any model with decision_function on rows
    ...     rating_threshold = None
    ...     def decision_function(self, X):
    ...         return X["score"].to_numpy()
    >>> X = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 2], "g": ["a", "a", "b", "b"],
    ...                   "score": [0.9, 0.1, 0.2, 0.8], "label": [1, 0, 1, 0]})
    >>> feature_group_auc(Scores(), X, "g", min_rows=1)["auc"].to_dict()
    {'a': 1.0, 'b': 0.0}
    """
    if not isinstance(n_bins, numbers.Integral) or isinstance(n_bins, bool) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2; got {n_bins!r}.")
    y = row_labels(X, _threshold(estimator))
    s = _click_scores(estimator, X)
    if len(s) != len(X):
        raise ValueError(f"the estimator returned {len(s)} scores for {len(X)} rows.")
    rows, groups = _groups(X, by, n_bins, frequencies, estimator)
    frame = pd.DataFrame({"g": groups, "s": s[rows], "y": y[rows]})
    frame["r"] = frame.groupby("g", sort=False)["s"].rank(method="average")
    agg = frame.assign(rp=frame["r"] * frame["y"]).groupby("g", sort=True).agg(
        n_rows=("y", "size"), n_positive=("y", "sum"), rank_sum=("rp", "sum"))
    n_pos = agg["n_positive"].to_numpy(dtype=float)
    n_neg = agg["n_rows"].to_numpy(dtype=float) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (agg["rank_sum"].to_numpy() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0) | (agg["n_rows"].to_numpy() < min_rows)] = np.nan
    out = pd.DataFrame({"auc": auc, "n_rows": agg["n_rows"].to_numpy(),
                        "n_positive": agg["n_positive"].to_numpy()}, index=agg.index)
    out.index.name = by
    return out


class FeatureGroupAUCScorer(_RoutedScorer):
    """Fairness of click prediction across feature groups, as a scorer.

    Computes :func:`feature_group_auc` and reduces the groups' AUCs (groups with NaN left
    out) to ``statistic``: ``"std"`` (population std, the paper's group std), ``"gap"``
    (max − min) or ``"min"`` (the worst group). ``std`` and ``gap`` are returned **negated**
    (greater is better, as scikit-learn expects), ``min`` as it is. The groups come from X's own
    columns, so the scorer needs no metadata routing.

    Parameters
    ----------
    by : str, default="frequency"
        ``"frequency"`` or a field name, see :func:`feature_group_auc`.
    statistic : {"std", "gap", "min"}, default="std"
    n_bins : int, default=6
    frequencies : dict of str to Series, default=None
    min_rows : int, default=10

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skadvrec.metrics import FeatureGroupAUCScorer, RowAUCScorer
    >>> scoring = {"auc": RowAUCScorer(), "freq_std": FeatureGroupAUCScorer("frequency"),
    ...            "gender_gap": FeatureGroupAUCScorer("gender", statistic="gap")}
    """

    def __init__(self, by="frequency", *, statistic="std", n_bins=6, frequencies=None,
                 min_rows=10):
        if statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {_STATISTICS}; got {statistic!r}.")
        self.by = by
        self.statistic = statistic
        self.n_bins = n_bins
        self.frequencies = frequencies
        self.min_rows = min_rows

    def by_group(self, estimator, X, y=None):
        """The per-group table (see :func:`feature_group_auc`)."""
        return feature_group_auc(estimator, X, self.by, n_bins=self.n_bins,
                                 frequencies=self.frequencies, min_rows=self.min_rows)

    def __call__(self, estimator, X, y=None, **metadata):
        auc = self.by_group(estimator, X)["auc"].dropna()
        if len(auc) < 2:
            raise ValueError(f"only {len(auc)} group of by={self.by!r} has >= {self.min_rows} "
                             "rows with both labels in this split; the statistic needs two. "
                             "Lower min_rows or use larger held-out sets.")
        if self.statistic == "std":
            return -float(auc.std(ddof=0))
        if self.statistic == "gap":
            return -float(auc.max() - auc.min())
        return float(auc.min())


class RowAUCScorer(_RoutedScorer):
    """ROC AUC of a model's click scores over all held-out rows (greater is better).

    The labels are X's ``label`` column or ``rating >= rating_threshold`` of the estimator;
    the scores its ``decision_function`` (or ``predict_proba[:, 1]``).

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.metrics import RowAUCScorer
    >>> class Scores:
    ...     rating_threshold = None
    ...     def decision_function(self, X):
    ...         return X["score"].to_numpy()
    >>> X = pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 1], "score": [0.9, 0.1, 0.5],
    ...                   "label": [1, 0, 0]})
    >>> RowAUCScorer()(Scores(), X)
    1.0
    """

    def __init__(self):
        pass

    def __call__(self, estimator, X, y=None, **metadata):
        labels = row_labels(X, _threshold(estimator))
        if labels.min() == labels.max():
            raise ValueError("the held-out rows are all of one label; AUC needs clicks and "
                             "non-clicks.")
        return float(roc_auc_score(labels, _click_scores(estimator, X)))
