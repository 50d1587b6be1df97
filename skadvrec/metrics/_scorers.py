"""Scorer objects for ``scoring=`` in GridSearchCV / cross_validate.

They are small classes rather than :func:`sklearn.metrics.make_scorer` products: GridSearchCV
calls a scorer as ``scorer(estimator, X_test, **metadata)`` with no ``y`` for unsupervised
estimators, and a recommender's targets come from X itself (the fold-in split of held-out users,
or the held-out interactions of a table). Each scorer also exposes per-user values.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import MetadataRequest

from .._warnings import warn
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


def _input_fraction(input_fraction, fold_in_fraction):
    """The share of each held-out row used as input, honouring the deprecated old name."""
    if isinstance(fold_in_fraction, str) and fold_in_fraction == "deprecated":
        return input_fraction
    warn("fold_in_fraction was renamed input_fraction (the share of each held-out row "
                  "used as the model's input; the rest are the targets) and will be removed; "
                  "pass input_fraction instead.", FutureWarning)
    return fold_in_fraction


class _RoutedScorer:
    """Minimal metadata-routing support (``set_score_request`` / ``get_metadata_routing``) and
    scikit-learn's parameter protocol (``get_params`` / ``set_params``, hence ``clone``)."""

    _metadata = ()

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self"
                      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep=True):
        """The constructor's parameters, as scikit-learn's ``BaseEstimator.get_params``."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set constructor parameters (``name__param`` reaches a nested estimator)."""
        valid = self.get_params(deep=True)
        nested = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid "
                                 f"parameters are {self._get_param_names()}.")
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub in nested.items():
            getattr(self, name).set_params(**sub)
        return self

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
        params = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                           if not k.startswith("_") and not (isinstance(v, str)
                                                             and v == "deprecated"))
        return f"{type(self).__name__}({params})"


class RankingScorer(_RoutedScorer):
    """Mean of a ranking metric over held-out users; higher is better.

    Parameters
    ----------
    metric : str, default="ndcg@100"
        ``"ndcg@k"``, ``"recall@k"``, ``"hitrate@k"`` or ``"auc"``.
    input_fraction : float, default=0.8
        Matrix form: share of each held-out row used as the model's *input*; the rest are the
        targets (0.8 = 80 % input, 20 % targets).
    random_state : int, default=0
        Seed of the fold-in split; fixed so every grid candidate sees the same targets.
    fold_in_fraction : float, default="deprecated"
        The old name of ``input_fraction`` (same meaning); it overrides ``input_fraction``
        with a FutureWarning and will be removed.

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

    def __init__(self, metric="ndcg@100", *, input_fraction=0.8, random_state=0,
                 fold_in_fraction="deprecated"):
        parse_metric(metric)
        self.metric = metric
        self.input_fraction = input_fraction
        self.random_state = random_state
        self.fold_in_fraction = fold_in_fraction

    def per_user(self, estimator, X, y=None, **metadata):
        """Per-user values as a Series indexed by the row of X each user comes from."""
        est, Xt = _unwrap(estimator, X)
        frac = _input_fraction(self.input_fraction, self.fold_in_fraction)
        vals, rows = est.evaluate(Xt, [self.metric], input_fraction=frac,
                                  random_state=self.random_state)
        return pd.Series(vals[self.metric], index=rows, name=self.metric)

    def __call__(self, estimator, X, y=None, **metadata):
        v = self.per_user(estimator, X).to_numpy()
        if np.all(np.isnan(v)):
            raise ValueError(f"{self.metric}: no held-out user has a target item; held-out rows "
                             "need at least 2 interactions.")
        return float(np.nanmean(v))


class _CutoffScorer(RankingScorer):
    """A RankingScorer of one metric kind whose cut-off is the parameter ``k``; ``metric`` is
    derived from ``k`` when used, so ``set_params(k=...)`` and ``clone`` stay consistent."""

    _kind = None

    def _store(self, k, input_fraction, random_state, fold_in_fraction):
        parse_metric(f"{self._kind}@{k}")
        self.k = k
        self.input_fraction = input_fraction
        self.random_state = random_state
        self.fold_in_fraction = fold_in_fraction

    @property
    def metric(self):
        return f"{self._kind}@{self.k}"


class NDCGScorer(_CutoffScorer):
    """NDCG@k scorer; see :class:`RankingScorer`."""

    _kind = "ndcg"

    def __init__(self, k=100, *, input_fraction=0.8, random_state=0,
                 fold_in_fraction="deprecated"):
        self._store(k, input_fraction, random_state, fold_in_fraction)


class RecallScorer(_CutoffScorer):
    """Recall@k scorer (normalised by min(k, |targets|)); see :class:`RankingScorer`."""

    _kind = "recall"

    def __init__(self, k=20, *, input_fraction=0.8, random_state=0,
                 fold_in_fraction="deprecated"):
        self._store(k, input_fraction, random_state, fold_in_fraction)


class HitRateScorer(_CutoffScorer):
    """HitRate@k scorer; see :class:`RankingScorer`."""

    _kind = "hitrate"

    def __init__(self, k=10, *, input_fraction=0.8, random_state=0,
                 fold_in_fraction="deprecated"):
        self._store(k, input_fraction, random_state, fold_in_fraction)


class AUCScorer(RankingScorer):
    """Per-user full AUC scorer; see :class:`RankingScorer`."""

    def __init__(self, *, input_fraction=0.8, random_state=0, fold_in_fraction="deprecated"):
        self.input_fraction = input_fraction
        self.random_state = random_state
        self.fold_in_fraction = fold_in_fraction

    @property
    def metric(self):
        return "auc"


def get_scorer(name, **kwargs):
    """Scorer for a metric name such as ``"ndcg@100"``.

    Examples
    --------
    >>> from skadvrec.metrics import get_scorer
    >>> get_scorer("recall@20")
    RankingScorer(metric='recall@20', input_fraction=0.8, random_state=0)
    """
    return RankingScorer(name, **kwargs)
