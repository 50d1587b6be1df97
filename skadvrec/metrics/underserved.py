"""Under-served users: how a model changes quality for the users a reference model serves worst.

The R-LARM paper (Shivaswamy & Garcia-Garcia 2022, Fig. 2) selects the bottom q % of test users
by the NDCG@100 of EASE and reports the relative NDCG change of other models on those users,
with a paired t-test. Selecting on the same noisy per-user values that are then compared favours
any model that differs from the reference (regression to the mean); ``selection_random_state``
selects the users on an independent fold-in split of the same held-out users to remove that
bias. Both forms are offered; report which one you use.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone

from ._scorers import RankingScorer, _input_fraction, _RoutedScorer, _unwrap

__all__ = ["underserved_uplift", "UnderservedUpliftScorer"]


def _paired_p(a, b, test):
    if len(a) < 2 or np.allclose(a, b):
        return float("nan")
    if test == "ttest":
        return float(stats.ttest_rel(a, b).pvalue)
    return float(stats.wilcoxon(a, b, zero_method="zsplit").pvalue)


def _curve(est_vals, ref_vals, sel_vals, qs, test):
    ok = ~(np.isnan(est_vals) | np.isnan(ref_vals) | np.isnan(sel_vals))
    est_vals, ref_vals, sel_vals = est_vals[ok], ref_vals[ok], sel_vals[ok]
    n = len(sel_vals)
    if n == 0:
        raise ValueError("no held-out user has targets under both splits; nothing to compare.")
    order = np.argsort(sel_vals, kind="stable")
    rows = []
    for q in qs:
        n_sel = max(1, math.ceil(q * n))
        idx = order[:n_sel]
        ref_m, est_m = float(ref_vals[idx].mean()), float(est_vals[idx].mean())
        rows.append({"q": q, "n_users": n_sel, "reference": ref_m, "estimator": est_m,
                     "absolute_change": est_m - ref_m,
                     "relative_change": (est_m - ref_m) / ref_m if ref_m > 0 else float("nan"),
                     "p_value": _paired_p(est_vals[idx], ref_vals[idx], test)})
    return pd.DataFrame(rows)


def _check_qs(q):
    qs = [q] if np.isscalar(q) else list(q)
    for v in qs:
        if not (isinstance(v, (int, float)) and 0 < v <= 1):
            raise ValueError(f"q values must be shares in (0, 1]; got {v!r}.")
    return qs


def underserved_uplift(estimator, reference, X, *, q=(0.05, 0.1, 0.2, 0.5), metric="ndcg@100",
                       input_fraction=0.8, random_state=0, selection_random_state=None,
                       test="ttest", fold_in_fraction="deprecated"):
    """Relative change of a metric on the users a reference model serves worst.

    Parameters
    ----------
    estimator, reference : fitted recommenders (or Pipelines ending in one)
        Compared on the same held-out users and the same fold-in split.
    X : sparse matrix of shape (n_users, n_items)
        Held-out users' full rows.
    q : float or sequence of float, default=(0.05, 0.1, 0.2, 0.5)
        Shares of users, the bottom q by the reference's metric.
    metric : str, default="ndcg@100"
    input_fraction : float, default=0.8
        Share of each held-out row used as the models' input; the rest are the targets.
    random_state : int, default=0
        Fold-in split on which both models are measured.
    selection_random_state : int or None, default=None
        Fold-in split on which the reference's bottom-q users are chosen. None uses
        ``random_state`` (the paper's protocol; biased towards uplift, see the module notes);
        a different seed selects on independent targets.
    test : {"ttest", "wilcoxon"}, default="ttest"
        Two-sided paired test of estimator vs reference on the selected users.
    fold_in_fraction : float, default="deprecated"
        The old name of ``input_fraction``; overrides it with a FutureWarning.

    Returns
    -------
    DataFrame
        One row per q: ``n_users``, ``reference`` and ``estimator`` means,
        ``absolute_change``, ``relative_change`` ((estimator − reference) / reference; ``nan``
        when the reference mean is 0, e.g. bottom users with no hit at all) and ``p_value``.

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE, EASEIPW
    >>> from skadvrec.metrics import underserved_uplift
    >>> X = make_interactions(n_users=400, n_items=60, density=0.1, random_state=0).X
    >>> ref = EASE(l2=20.0, device="cpu").fit(X[:300])
    >>> ipw = EASEIPW(l2=20.0, beta=0.5, device="cpu").fit(X[:300])
    >>> curve = underserved_uplift(ipw, ref, X[300:], q=[0.2, 1.0], metric="ndcg@20")
    >>> list(curve.columns)
    ['q', 'n_users', 'reference', 'estimator', 'absolute_change', 'relative_change', 'p_value']
    """
    qs = _check_qs(q)
    if test not in ("ttest", "wilcoxon"):
        raise ValueError(f"test must be 'ttest' or 'wilcoxon'; got {test!r}.")
    input_fraction = _input_fraction(input_fraction, fold_in_fraction)
    measure = RankingScorer(metric, input_fraction=input_fraction, random_state=random_state)
    est_vals = measure.per_user(estimator, X).to_numpy()
    ref_vals = measure.per_user(reference, X).to_numpy()
    if selection_random_state is None or selection_random_state == random_state:
        sel_vals = ref_vals
    else:
        select = RankingScorer(metric, input_fraction=input_fraction,
                               random_state=selection_random_state)
        sel_vals = select.per_user(reference, X).to_numpy()
    return _curve(est_vals, ref_vals, sel_vals, qs, test)


def _digest(matrix):
    h = hashlib.blake2b(digest_size=16)
    for arr in (matrix.indptr, matrix.indices, matrix.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(str(matrix.shape).encode())
    return h.hexdigest()


class UnderservedUpliftScorer(_RoutedScorer):
    """Relative metric change on the reference model's bottom-q users, as a scorer.

    In a grid search each candidate is fitted on a fold's training users; this scorer fits a
    clone of ``reference`` on the same training interactions (the candidate's
    ``train_matrix_``), cached per fold, and returns the relative (or absolute) change of
    :func:`underserved_uplift` at one ``q`` (higher is better). Matrix form only.

    Parameters
    ----------
    reference : recommender
        Unfitted reference, cloned and fitted per fold; the R-LARM paper's is EASE,
        ``UnderservedUpliftScorer(EASE(l2=500.0))`` with ``from skadvrec.linear import EASE``.
    q : float, default=0.2
    metric : str, default="ndcg@100"
    statistic : {"relative", "absolute"}, default="relative"
        Relative change (the paper's Fig. 2; undefined, ``nan``, when the bottom users'
        reference mean is 0) or absolute change of the metric.
    input_fraction : float, default=0.8
        Share of each held-out row used as the models' input; the rest are the targets.
    random_state : int, default=0
    selection_random_state : int or None, default=None
        See :func:`underserved_uplift`.
    fold_in_fraction : float, default="deprecated"
        The old name of ``input_fraction``; overrides it with a FutureWarning.

    Examples
    --------
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import UnderservedUpliftScorer
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASEIPW
    >>> X = make_interactions(n_users=400, n_items=60, density=0.1, random_state=0).X
    >>> scorer = UnderservedUpliftScorer(EASE(l2=20.0, device="cpu"), q=0.2, metric="ndcg@20")
    >>> model = EASEIPW(l2=20.0, beta=0.5, device="cpu").fit(X[:300])
    >>> round(scorer(model, X[300:]), 3)  # NDCG@20 change on EASE's bottom 20 % of users
    -0.014
    >>> scorer.fitted_reference(model).train_matrix_.shape  # EASE fitted on model's data
    (300, 60)
    """

    def __init__(self, reference, *, q=0.2, metric="ndcg@100", statistic="relative",
                 input_fraction=0.8, random_state=0, selection_random_state=None,
                 fold_in_fraction="deprecated"):
        if reference is None or not hasattr(reference, "fit"):
            raise ValueError("UnderservedUpliftScorer needs an unfitted reference recommender, "
                             "e.g. UnderservedUpliftScorer(EASE(l2=500.0)) with "
                             f"'from skadvrec.linear import EASE'; got {reference!r}.")
        _check_qs(q)
        if statistic not in ("relative", "absolute"):
            raise ValueError(f"statistic must be 'relative' or 'absolute'; got {statistic!r}.")
        self.statistic = statistic
        RankingScorer(metric)
        self.reference = reference
        self.q = q
        self.metric = metric
        self.input_fraction = input_fraction
        self.random_state = random_state
        self.selection_random_state = selection_random_state
        self.fold_in_fraction = fold_in_fraction
        self._cache = {}

    def fitted_reference(self, estimator):
        """The reference fitted on ``estimator``'s training interactions (cached)."""
        train = getattr(estimator, "train_matrix_", None)
        if train is None:
            raise ValueError(f"{type(estimator).__name__} keeps no train_matrix_; the uplift "
                             "scorer needs a fitted skadvrec recommender.")
        if getattr(estimator, "input_form_", "matrix") != "matrix":
            raise ValueError("UnderservedUpliftScorer works with the user x item matrix form "
                             "(held-out users); fit the models on a matrix.")
        key = _digest(train)
        if key not in self._cache:
            ref = clone(self.reference)
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = ref.fit(train)
        return self._cache[key]

    def curve(self, estimator, X, q=(0.05, 0.1, 0.2, 0.5)):
        """The whole bottom-q curve (see :func:`underserved_uplift`)."""
        est, Xt = _unwrap(estimator, X)
        return underserved_uplift(est, self.fitted_reference(est), Xt, q=q, metric=self.metric,
                                  input_fraction=_input_fraction(self.input_fraction,
                                                                 self.fold_in_fraction),
                                  random_state=self.random_state,
                                  selection_random_state=self.selection_random_state)

    def __call__(self, estimator, X, y=None, **metadata):
        return float(self.curve(estimator, X, q=[self.q])[f"{self.statistic}_change"].iloc[0])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state
