"""Robustness to data poisoning: how far an attack pushes its target items up the rankings.

The PamaCF evaluation (Zhang et al., NeurIPS 2024) measures a promotion attack by the target
hit ratio T-HR@k: for each target item t, U_t is the set of genuine users who have not
interacted with t, and

    T-HR@k = (1 / |T|) Σ_t (1 / |U_t|) Σ_{u ∈ U_t} 1[rank_u(t) <= k],

where rank_u(t) is t's position in u's ranking of all items, the items u has seen excluded.
T-NDCG@k weighs a hit by 1 / log2(rank + 1) instead. Lower values mean a more robust model.

Ties follow :mod:`skadvrec.metrics.ranking`: of two items with the same score the lower item
index ranks first, so rank_u(t) = 1 + #{items scored strictly higher} + #{items scored equally
with a lower index}; seen (masked) items never outrank t.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._warnings import warn
from .._data import ITEM, USER, check_interactions, check_table, item_columns
from ._scorers import _RoutedScorer, _unwrap
from .ranking import _mask_value

__all__ = ["target_hit_ratio", "TargetHitRatioScorer"]

_METRICS = {"hitrate": "T-HR", "hr": "T-HR", "hit_rate": "T-HR", "ndcg": "T-NDCG"}


def _check_metric(metric):
    key = metric.strip().lower() if isinstance(metric, str) else metric
    if key not in _METRICS:
        raise ValueError(f"metric must be 'hitrate' (T-HR@k) or 'ndcg' (T-NDCG@k); got "
                         f"{metric!r}.")
    return "ndcg" if key == "ndcg" else "hitrate"


def _table_users(est, X, cols, target_ids, exclude_users):
    """Fitted users of table X (ids, first-appearance order) and their (n_users, n_targets)
    ineligibility."""
    check_table(X)
    users_all = np.asarray(X[USER])
    items_all = np.asarray(X[ITEM])
    if exclude_users is not None:
        drop = pd.Index(np.atleast_1d(np.asarray(exclude_users, dtype=object)))
        keep = ~pd.Index(users_all).isin(drop)
        users_all, items_all = users_all[keep], items_all[keep]
        if len(users_all) == 0:
            raise ValueError("exclude_users removes every user of X; nothing to evaluate.")
    users = pd.unique(users_all)
    idx = pd.Index(est.user_ids_).get_indexer(users)
    known = idx >= 0
    if not known.any():
        raise ValueError("none of the users in X was seen in fit; T-HR is computed for fitted "
                         "users (held-out interactions of training users).")
    if not known.all():
        warn(f"{int((~known).sum())} user(s) in X were not seen in fit and are "
                      "skipped.", UserWarning)
    users, user_idx = users[known], idx[known]
    # a target among the user's held-out rows (any rating) makes the user ineligible for it
    u_pos = pd.Index(users).get_indexer(users_all)
    t_pos = pd.Index(target_ids).get_indexer(items_all)
    sel = (u_pos >= 0) & (t_pos >= 0)
    ineligible = np.zeros((len(users), len(cols)), dtype=bool)
    ineligible[u_pos[sel], t_pos[sel]] = True
    # ... and so does a target among the training items (which the model masks)
    ineligible |= est.train_matrix_[user_idx][:, cols].toarray() != 0
    return users, ineligible


def _matrix_rows(est, X, cols, exclude_users):
    """Input rows of X (less ``exclude_users``) and their (n_rows, n_targets) ineligibility."""
    if isinstance(X, pd.DataFrame):
        raise ValueError("this model was fitted on a user x item matrix; pass a matrix "
                         f"with {est.n_items_} columns, not a DataFrame.")
    rows = check_interactions(X)[0].matrix
    if rows.shape[1] != est.n_items_:
        raise ValueError(f"X has {rows.shape[1]} columns but the model was fitted on "
                         f"{est.n_items_} items; pass rows over the same items.")
    if exclude_users is not None:
        drop = np.atleast_1d(np.asarray(exclude_users))
        if drop.size and (not np.issubdtype(drop.dtype, np.integer) or drop.min() < 0
                          or drop.max() >= rows.shape[0]):
            raise ValueError("for a model fitted on a matrix, exclude_users are row indices of "
                             f"X in [0, {rows.shape[0] - 1}]; got {drop[:5].tolist()}...")
        keep = np.setdiff1d(np.arange(rows.shape[0]), drop)
        if len(keep) == 0:
            raise ValueError("exclude_users removes every row of X; nothing to evaluate.")
        rows = rows[keep]
    return rows, rows[:, cols].toarray() != 0


def target_hit_ratio(estimator, X, target_items, k=50, *, metric="hitrate", per_target=False,
                     exclude_users=None):
    """Target hit ratio T-HR@k (or T-NDCG@k) of promoted items, as in PamaCF.

    For each target t, the evaluated users are those who have not interacted with t (neither
    in the model's input / training items nor in their rows of X). Each user ranks all items
    with its seen items excluded; a hit is rank(t) <= k (``metric="hitrate"``), and T-NDCG
    weighs it by 1 / log2(rank + 1) (``metric="ndcg"``). The per-target means over users are
    averaged over targets. Lower is more robust.

    * Matrix form (model fitted on a user × item matrix): each row of X is a user, used whole
      as the model's input (no fold-in split); its items are masked, and a target in the row
      makes the user ineligible for it. ``target_items`` are column indices.
    * Table form (model fitted on an interaction table): X holds held-out interactions of
      fitted users; each user's training items are masked, and a target among the user's
      training items or rows of X (whatever their rating) makes the user ineligible for it.
      Users of X unknown to the model are skipped with a warning. ``target_items`` are item
      ids, values of the ``item`` column.

    Held-out data holds genuine users only. To evaluate on data that contains fake users (the
    poisoned training data itself), name them in ``exclude_users``.

    Parameters
    ----------
    estimator : fitted skadvrec recommender, or a Pipeline ending in one
        Earlier Pipeline steps transform X first; an attack's ``transform`` is a pass-through.
    X : sparse matrix of shape (n_users, n_items) or DataFrame
        Evaluated users, in the estimator's input form.
    target_items : array-like
        The promoted items (e.g. an attack's ``target_items_``).
    k : int, default=50
        Cut-off; PamaCF reports T-HR@50.
    metric : {"hitrate", "ndcg"}, default="hitrate"
        T-HR@k or T-NDCG@k.
    per_target : bool, default=False
        Return one value per target instead of their mean.
    exclude_users : array-like or None, default=None
        Users left out: row indices of X (matrix form) or user ids (table form), e.g. an
        attack's ``fake_users_``.

    Returns
    -------
    float or Series
        The mean over targets in [0, 1], or (``per_target=True``) a Series indexed by target
        id, NaN for a target no evaluated user is eligible for. Such targets are left out of
        the mean with a warning.

    Raises
    ------
    ValueError
        For an unknown target item, invalid ``k`` or ``metric``, or when no evaluated user is
        eligible for any target.

    See Also
    --------
    TargetHitRatioScorer : the same figure (negated) as a GridSearchCV scorer.
    skadvrec.attacks.RandomAttack : a poisoning attack that promotes target items.

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> from skadvrec.attacks import RandomAttack
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import target_hit_ratio
    >>> X = make_interactions(n_users=300, n_items=60, random_state=0).X
    >>> train, test = X[:240], X[240:]
    >>> clean = EASE(l2=20.0, device="cpu").fit(train)
    >>> attacked = Pipeline([("attack", RandomAttack(n_fake_users=0.1, random_state=0)),
    ...                      ("model", EASE(l2=20.0, device="cpu"))]).fit(train)
    >>> targets = attacked["attack"].target_items_
    >>> before = target_hit_ratio(clean, test, targets, k=10)
    >>> after = target_hit_ratio(attacked, test, targets, k=10)
    >>> bool(after > before)
    True
    """
    kind = _check_metric(metric)
    est, Xt = _unwrap(estimator, X)
    check_is_fitted(est, "n_items_")
    if not hasattr(est, "iter_scores"):
        raise TypeError(f"{type(est).__name__} is not a skadvrec recommender; target_hit_ratio "
                        "needs one (or a Pipeline ending in one).")
    n_items = est.n_items_
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an integer in [1, n_items={n_items}]; got {k!r}.")
    table = est.input_form_ == "table"
    cols = item_columns(target_items, n_items, est.item_ids_ if table else None,
                        "target_items", where="the fitted model")
    target_ids = est.item_ids_[cols]
    if table:
        if not isinstance(Xt, pd.DataFrame):
            raise ValueError("this model was fitted on an interaction table; pass held-out "
                             "interactions as a DataFrame with 'user' and 'item' columns.")
        users, ineligible = _table_users(est, Xt, cols, target_ids, exclude_users)
        batches = est.iter_scores(pd.DataFrame({USER: users}), exclude_seen=True)
    else:
        rows, ineligible = _matrix_rows(est, Xt, cols, exclude_users)
        batches = est.iter_scores(rows, exclude_seen=True)
    sums = None
    for sl, s in batches:
        if sums is None:  # the model's device, known once iter_scores has checked it
            dev = s.device
            eligible = torch.from_numpy(~ineligible).to(dev)
            sums = torch.zeros(len(cols), dtype=torch.float64, device=dev)
            counts = torch.zeros(len(cols), dtype=torch.int64, device=dev)
            cols_dev = torch.as_tensor(cols, device=dev)
        if bool(torch.isnan(s[:, cols_dev]).any()):
            raise ValueError("the model scored a target item NaN; its ranks are undefined.")
        masked = _mask_value(s.dtype)
        elig = eligible[sl]
        for j, c in enumerate(cols.tolist()):
            t = s[:, c:c + 1]
            rank = 1 + (s > t).sum(dim=1)
            if c:  # equal scores: lower indices first; masked items never outrank
                head = s[:, :c]
                rank += ((head == t) & (head != masked)).sum(dim=1)
            if kind == "hitrate":
                val = (rank <= k).to(torch.float64)
            else:
                val = torch.where(rank <= k, 1.0 / torch.log2(rank.to(torch.float64) + 1.0),
                                  torch.zeros((), dtype=torch.float64, device=dev))
            sums[j] += (val * elig[:, j]).sum()
            counts[j] += elig[:, j].sum()
    sums, counts = sums.cpu().numpy(), counts.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    empty = counts == 0
    if empty.all():
        raise ValueError("no evaluated user is eligible for any target item (each user has "
                         "already interacted with every target); T-HR is undefined.")
    if empty.any():
        warn(f"target item(s) {target_ids[empty].tolist()}: no evaluated user is "
                      "eligible (all have interacted with them); they are left out of the mean.",
                      UserWarning)
    if per_target:
        name = f"{_METRICS[kind]}@{k}"
        return pd.Series(values, index=pd.Index(target_ids, name="item"), name=name)
    return float(np.nanmean(values))


class TargetHitRatioScorer(_RoutedScorer):
    """T-HR@k (or T-NDCG@k) of an attack's targets as a scorer, **negated**.

    .. important::
       ``scorer(estimator, X)`` returns ``-target_hit_ratio(...)``: a lower hit ratio (the
       attack promotes its targets less, the model is more robust) gives a **higher** score,
       so GridSearchCV's "higher is better" holds, as for :class:`LeakageScorer`. The values
       in ``cv_results_`` are therefore in [-1, 0]; negate them to report T-HR.
       :meth:`per_target` returns the positive per-target values.

    Parameters
    ----------
    k : int, default=50
        Cut-off.
    target_items : array-like or None, default=None
        The promoted items. None takes ``target_items_`` from the first Pipeline step that
        has it (an attack such as :class:`~skadvrec.attacks.RandomAttack`), so the targets
        follow each CV fold's attack. Give the attack a fixed ``random_state`` (or fixed
        ``target_items``) so every grid candidate is attacked with the same targets.
    metric : {"hitrate", "ndcg"}, default="hitrate"
        T-HR@k or T-NDCG@k.

    See Also
    --------
    target_hit_ratio : the plain function, with the evaluation protocol.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import Pipeline
    >>> from skadvrec.attacks import RandomAttack
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import NDCGScorer, TargetHitRatioScorer
    >>> from skadvrec.model_selection import UserHoldout
    >>> X = make_interactions(n_users=300, n_items=60, random_state=0).X
    >>> pipe = Pipeline([("attack", RandomAttack(n_fake_users=0.05, random_state=0)),
    ...                  ("model", EASE(device="cpu"))])
    >>> search = GridSearchCV(pipe, {"model__l2": [10.0, 100.0]},
    ...                       cv=UserHoldout(test_size=60, random_state=0),
    ...                       scoring={"ndcg": NDCGScorer(20), "thr": TargetHitRatioScorer(10)},
    ...                       refit="ndcg").fit(X)
    >>> bool((search.cv_results_["mean_test_thr"] <= 0).all())
    True
    """

    def __init__(self, k=50, *, target_items=None, metric="hitrate"):
        _check_metric(metric)
        self.k = k
        self.target_items = target_items
        self.metric = metric

    def _targets(self, estimator):
        if self.target_items is not None:
            return self.target_items
        if isinstance(estimator, Pipeline):
            for _, step in estimator.steps[:-1]:
                if hasattr(step, "target_items_"):
                    return step.target_items_
        raise ValueError("TargetHitRatioScorer(target_items=None) takes the targets from an "
                         "attack step of a Pipeline, but the estimator has none; pass "
                         "target_items=<the promoted items>.")

    def per_target(self, estimator, X, y=None, **metadata):
        """Per-target values (positive: the hit ratio itself) as a Series indexed by item."""
        return target_hit_ratio(estimator, X, self._targets(estimator), self.k,
                                metric=self.metric, per_target=True)

    def __call__(self, estimator, X, y=None, **metadata):
        return -target_hit_ratio(estimator, X, self._targets(estimator), self.k,
                                 metric=self.metric)
