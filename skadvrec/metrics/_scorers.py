"""Scorer objects for ``scoring=`` in GridSearchCV / cross_validate.

They are small classes rather than :func:`sklearn.metrics.make_scorer` products: GridSearchCV
calls a scorer as ``scorer(estimator, X_test, **metadata)`` with no ``y`` for unsupervised
estimators, and a recommender's targets come from X itself (the fold-in split of held-out users,
or the held-out interactions of a table). Each scorer also exposes per-user values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import MetadataRequest

from .ranking import parse_metric

__all__ = ["RankingScorer", "NDCGScorer", "RecallScorer", "HitRateScorer", "AUCScorer",
           "get_scorer"]


_NEEDS = {
    "evaluate": "skadvrec scorers need a skadvrec recommender (or a Pipeline ending in one)",
    "transform": "a leakage audit attacks the user representation that transform(X) returns",
}


def _unwrap(estimator, X, require="evaluate"):
    """Apply a Pipeline's transformers and return its final step with the new X.

    ``require`` names the method the final step must have ("evaluate" or "transform").
    """
    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps[:-1]:
            if step is not None and step != "passthrough":
                X = step.transform(X)
        estimator = estimator.steps[-1][1]
    if not hasattr(estimator, require):
        raise TypeError(f"{type(estimator).__name__} has no {require}(); {_NEEDS[require]}.")
    return estimator, X


class _RoutedScorer:
    """Minimal metadata-routing support: ``set_score_request`` / ``get_metadata_routing``."""

    _metadata = ()

    def set_score_request(self, **kwargs):
        """Request metadata (e.g. ``sensitive_features=True``) to be routed to this scorer."""
        unknown = set(kwargs) - set(self._metadata)
        if unknown:
            raise TypeError(f"{type(self).__name__} accepts no metadata {sorted(unknown)}; "
                            f"it can consume {list(self._metadata)}.")
        req = dict(getattr(self, "_score_request", {}))
        req.update(kwargs)
        self._score_request = req
        return self

    def get_metadata_routing(self):
        req = MetadataRequest(owner=type(self).__name__)
        for param in self._metadata:
            alias = getattr(self, "_score_request", {}).get(param, None)
            req.score.add_request(param=param, alias=alias)
        return req

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class RankingScorer(_RoutedScorer):
    """Mean of a ranking metric over held-out users; higher is better.

    Parameters
    ----------
    metric : str, default="ndcg@100"
        ``"ndcg@k"``, ``"recall@k"``, ``"hitrate@k"`` or ``"auc"``.
    fold_in_fraction : float, default=0.8
        Matrix form: share of each held-out row used as input (the rest are targets).
    random_state : int, default=0
        Seed of the fold-in split; fixed so every grid candidate sees the same targets.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import NDCGScorer, RecallScorer
    >>> from skadvrec.model_selection import UserHoldout
    >>> X = make_interactions(n_users=300, n_items=60, random_state=0).X
    >>> search = GridSearchCV(EASE(device="cpu"), {"l2": [10.0, 100.0]},
    ...                       cv=UserHoldout(n_splits=2, test_size=60, random_state=0),
    ...                       scoring={"ndcg": NDCGScorer(20), "recall": RecallScorer(10)},
    ...                       refit="ndcg").fit(X)
    >>> sorted(search.best_params_)
    ['l2']
    """

    def __init__(self, metric="ndcg@100", *, fold_in_fraction=0.8, random_state=0):
        parse_metric(metric)
        self.metric = metric
        self.fold_in_fraction = fold_in_fraction
        self.random_state = random_state

    def per_user(self, estimator, X, y=None, **metadata):
        """Per-user values as a Series indexed by the row of X each user comes from."""
        est, Xt = _unwrap(estimator, X)
        vals, rows = est.evaluate(Xt, [self.metric], fold_in_fraction=self.fold_in_fraction,
                                  random_state=self.random_state)
        return pd.Series(vals[self.metric], index=rows, name=self.metric)

    def __call__(self, estimator, X, y=None, **metadata):
        v = self.per_user(estimator, X).to_numpy()
        if np.all(np.isnan(v)):
            raise ValueError(f"{self.metric}: no held-out user has a target item; held-out rows "
                             "need at least 2 interactions.")
        return float(np.nanmean(v))


class NDCGScorer(RankingScorer):
    """NDCG@k scorer; see :class:`RankingScorer`."""

    def __init__(self, k=100, *, fold_in_fraction=0.8, random_state=0):
        super().__init__(f"ndcg@{k}", fold_in_fraction=fold_in_fraction,
                         random_state=random_state)
        self.k = k


class RecallScorer(RankingScorer):
    """Recall@k scorer (normalised by min(k, |targets|)); see :class:`RankingScorer`."""

    def __init__(self, k=20, *, fold_in_fraction=0.8, random_state=0):
        super().__init__(f"recall@{k}", fold_in_fraction=fold_in_fraction,
                         random_state=random_state)
        self.k = k


class HitRateScorer(RankingScorer):
    """HitRate@k scorer; see :class:`RankingScorer`."""

    def __init__(self, k=10, *, fold_in_fraction=0.8, random_state=0):
        super().__init__(f"hitrate@{k}", fold_in_fraction=fold_in_fraction,
                         random_state=random_state)
        self.k = k


class AUCScorer(RankingScorer):
    """Per-user full AUC scorer; see :class:`RankingScorer`."""

    def __init__(self, *, fold_in_fraction=0.8, random_state=0):
        super().__init__("auc", fold_in_fraction=fold_in_fraction, random_state=random_state)


def get_scorer(name, **kwargs):
    """Scorer for a metric name such as ``"ndcg@100"``.

    Examples
    --------
    >>> from skadvrec.metrics import get_scorer
    >>> get_scorer("recall@20")
    RankingScorer(metric='recall@20', fold_in_fraction=0.8, random_state=0)
    """
    return RankingScorer(name, **kwargs)
