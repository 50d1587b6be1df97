"""Group fairness of recommendation quality: a metric's gap and spread across user groups."""

from __future__ import annotations

import pandas as pd

from .._sensitive import as_frame, check_aligned
from ._scorers import RankingScorer, _input_fraction, _RoutedScorer

__all__ = ["metric_by_group", "GroupMetricScorer"]

_ROUTING_HELP = (
    "pass sensitive_features: call the scorer as scorer(est, X, sensitive_features=S), or in "
    "GridSearchCV enable routing with sklearn.set_config(enable_metadata_routing=True), call "
    "scorer.set_score_request(sensitive_features=True) and pass sensitive_features=S to fit.")


def _group_column(sensitive_features, attribute, n_rows, X=None):
    if sensitive_features is None:
        raise ValueError(f"this fairness metric needs the users' groups; {_ROUTING_HELP}")
    check_aligned(sensitive_features, X)
    S = as_frame(sensitive_features)
    if attribute is not None and (attribute in S.columns
                                  or isinstance(sensitive_features, pd.DataFrame)):
        if attribute not in S.columns:
            raise ValueError(f"attribute={attribute!r} is not a column of sensitive_features "
                             f"({list(S.columns)}).")
        col = S[attribute]
    elif S.shape[1] == 1:  # a lone Series or 1-D array is the grouping, whatever its name
        col = S.iloc[:, 0]
    else:
        raise ValueError(f"sensitive_features has columns {list(S.columns)}; name the one to "
                         "group by with attribute=<column>.")
    if len(col) != n_rows:
        raise ValueError(f"sensitive_features has {len(col)} rows but X has {n_rows}; pass one "
                         "row per row of X.")
    if col.isna().all():
        raise ValueError(f"the group column {col.name!r} of sensitive_features has only missing "
                         "values; users with a missing group are left out of the groups, so "
                         "none is left. Fill it or pass another attribute.")
    return col.reset_index(drop=True)


def metric_by_group(estimator, X, sensitive_features, metric="ndcg@100", *, attribute=None,
                    input_fraction=0.8, random_state=0, fold_in_fraction="deprecated"):
    """Mean of a ranking metric per group of a sensitive attribute.

    Parameters
    ----------
    estimator : fitted recommender or Pipeline ending in one
    X : sparse matrix or DataFrame
        Held-out data, as for the scorers.
    sensitive_features : DataFrame, Series or array-like
        One row per row of X.
    metric : str, default="ndcg@100"
    attribute : str, default=None
        Column of ``sensitive_features`` to group by (needed when it has several).
    input_fraction, random_state, fold_in_fraction
        As in :class:`~skadvrec.metrics.RankingScorer` (``input_fraction`` is the share of each
        held-out row used as the model's input; ``fold_in_fraction`` its deprecated old name).

    Returns
    -------
    DataFrame
        Indexed by group, with columns ``mean``, ``std`` and ``n_users`` (users with targets).

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import metric_by_group
    >>> d = make_interactions(n_users=300, n_items=60, random_state=0)
    >>> model = EASE(l2=50.0, device="cpu").fit(d.X[:200])
    >>> table = metric_by_group(model, d.X[200:], d.sensitive_features[200:], "ndcg@20",
    ...                         attribute="group")
    >>> list(table.columns)
    ['mean', 'std', 'n_users']
    """
    input_fraction = _input_fraction(input_fraction, fold_in_fraction)
    scorer = RankingScorer(metric, input_fraction=input_fraction, random_state=random_state)
    values = scorer.per_user(estimator, X)
    n_rows = len(X) if isinstance(X, pd.DataFrame) else X.shape[0]
    groups = _group_column(sensitive_features, attribute, n_rows, X).iloc[values.index]
    frame = pd.DataFrame({"value": values.to_numpy(), "group": groups.to_numpy()}).dropna()
    out = frame.groupby("group", observed=True)["value"].agg(["mean", "std", "count"])
    return out.rename(columns={"count": "n_users"})


class GroupMetricScorer(_RoutedScorer):
    """Fairness of a ranking metric across the groups of a sensitive attribute, as a scorer.

    ``statistic="gap"`` is max − min of the group means, ``"std"`` their standard deviation
    (population, ddof=0), ``"ratio"`` min / max, ``"min"`` the worst group's mean. ``gap`` and
    ``std`` are returned negated (higher is better, as sklearn expects); ``ratio`` and ``min``
    are returned as they are. The groups arrive as ``sensitive_features`` metadata.

    Parameters
    ----------
    metric : str, default="ndcg@100"
    attribute : str, default=None
        Column of ``sensitive_features`` to group by.
    statistic : {"gap", "std", "ratio", "min"}, default="gap"
    input_fraction : float, default=0.8
        Share of each held-out row used as the model's input; the rest are the targets.
    random_state : int, default=0
    fold_in_fraction : float, default="deprecated"
        The old name of ``input_fraction``; overrides it with a FutureWarning.

    Examples
    --------
    >>> import sklearn
    >>> from skadvrec.metrics import GroupMetricScorer
    >>> scorer = GroupMetricScorer("ndcg@20", attribute="group").set_score_request(
    ...     sensitive_features=True)
    """

    _metadata = ("sensitive_features",)
    _STATS = ("gap", "std", "ratio", "min")

    def __init__(self, metric="ndcg@100", *, attribute=None, statistic="gap",
                 input_fraction=0.8, random_state=0, fold_in_fraction="deprecated"):
        if statistic not in self._STATS:
            raise ValueError(f"statistic must be one of {self._STATS}; got {statistic!r}.")
        RankingScorer(metric)  # validates the name
        self.metric = metric
        self.attribute = attribute
        self.statistic = statistic
        self.input_fraction = input_fraction
        self.random_state = random_state
        self.fold_in_fraction = fold_in_fraction

    def by_group(self, estimator, X, y=None, sensitive_features=None):
        """The per-group table (see :func:`metric_by_group`)."""
        return metric_by_group(estimator, X, sensitive_features, self.metric,
                               attribute=self.attribute,
                               input_fraction=_input_fraction(self.input_fraction,
                                                              self.fold_in_fraction),
                               random_state=self.random_state)

    def __call__(self, estimator, X, y=None, sensitive_features=None, **metadata):
        means = self.by_group(estimator, X, sensitive_features=sensitive_features)["mean"]
        if len(means) < 2:
            raise ValueError(f"only {len(means)} group has users with targets in this split; a "
                             "gap needs at least two groups.")
        if self.statistic == "gap":
            return -float(means.max() - means.min())
        if self.statistic == "std":
            return -float(means.std(ddof=0))
        if self.statistic == "ratio":
            return float(means.min() / means.max()) if means.max() > 0 else 1.0
        return float(means.min())
