"""Ranking metrics with per-user values, computed on batches of users in torch.

Conventions (shared by every function here and by the scorers):

* ``scores`` is a (n_users, n_items) array; a larger score ranks an item higher.
* ``targets`` is a (n_users, n_items) binary array (dense or scipy.sparse) of held-out items.
* ``exclude`` (optional, same shape) marks items that must not be ranked, e.g. the fold-in items
  or the items seen in training. They are pushed below every other item.
* **Ties** are broken by item index: of two items with equal score, the lower index ranks first.
  This makes every metric deterministic and reproducible on CPU and GPU.
* Users with no target item are **excluded**: their per-user value is ``nan`` and the mean ignores
  them.
* ``NDCG@k`` uses binary gains 1/log2(rank + 1) and the ideal DCG of min(k, |targets|) hits.
* ``Recall@k`` is normalised by min(k, |targets|), as in Liang et al. (2018) and Steck (2019); this
  is the form reported for EASE, MultVAE and R-LARM on ML-20M, Netflix and MSD.
* ``recall_all@k`` divides the hits by |targets| (RecBole's and the LightGCN / PamaCF code's
  Recall); it differs from ``recall@k`` only for users with more than k targets.
* ``HitRate@k`` is 1 when at least one target is in the top k.
* ``AUC`` is the per-user area under the ROC curve over all non-excluded items (ties count 1/2).
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp
import torch

from .._torch import dense_rows, iter_row_batches, resolve_device

__all__ = [
    "ndcg_at_k",
    "recall_at_k",
    "hit_rate_at_k",
    "auc_score",
    "ranking_metrics",
    "parse_metric",
    "topk_ranking",
    "batch_metrics",
]

_METRIC_RE = re.compile(r"^(ndcg|recall_all|recall|hr|hitrate|hit_rate|auc)(?:@(\d+))?$")
_CANONICAL = {"ndcg": "ndcg", "recall": "recall", "recall_all": "recall_all", "hr": "hitrate",
              "hitrate": "hitrate",
              "hit_rate": "hitrate", "auc": "auc"}


def parse_metric(name):
    """Parse ``"ndcg@100"``, ``"recall@20"``, ``"hitrate@10"`` or ``"auc"`` into (kind, k)."""
    if not isinstance(name, str):
        raise ValueError(f"metric names are strings such as 'ndcg@100'; got {name!r}.")
    m = _METRIC_RE.match(name.strip().lower())
    if m is None:
        raise ValueError(
            f"unknown metric {name!r}; use 'ndcg@k', 'recall@k', 'recall_all@k', 'hitrate@k' "
            "(or 'hr@k') or 'auc'."
        )
    kind = _CANONICAL[m.group(1)]
    if kind == "auc":
        if m.group(2) is not None:
            raise ValueError(f"'auc' takes no cut-off; got {name!r}.")
        return kind, None
    if m.group(2) is None:
        raise ValueError(f"metric {name!r} needs a cut-off, e.g. '{m.group(1)}@20'.")
    k = int(m.group(2))
    if k < 1:
        raise ValueError(f"the cut-off k must be >= 1; got {name!r}.")
    return kind, k


def _mask_value(dtype):
    return torch.finfo(dtype).min


def _order_kept(idx, vals):
    """Order kept items by (score descending, index ascending)."""
    idx_sorted, perm = torch.sort(idx, dim=1)
    vals = torch.gather(vals, 1, perm)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return torch.gather(idx_sorted, 1, order)


def _topk_with_ties(scores, k):
    """Exact rule for rows whose k-th value is tied with items outside the top k."""
    vals = torch.topk(scores, k, dim=1, sorted=False).values
    kth = vals.min(dim=1, keepdim=True).values
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(dim=1, keepdim=True)
    keep = above | (tied & (torch.cumsum(tied, dim=1) <= need))
    idx = keep.nonzero(as_tuple=False)[:, 1].reshape(scores.shape[0], k)  # ascending index
    return _order_kept(idx, torch.gather(scores, 1, idx))


def topk_ranking(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the top-``k`` items per row, best first, ties broken by lower item index.

    ``torch.topk`` gives no guarantee on which of several equal scores it returns. The top
    ``k + 1`` values tell whether the k-th value is tied with an item outside the top k; where
    it is not (nearly always with real-valued scores), the kept set is exact and only its order
    is fixed. Rows with a tie across the boundary go through an exact pass that fills the last
    places by item index.
    """
    n_rows, n_items = scores.shape
    if k > n_items:
        raise ValueError(f"k={k} is larger than the number of items ({n_items}).")
    if k == n_items:
        idx = torch.arange(n_items, device=scores.device).expand(n_rows, -1)
        return _order_kept(idx.contiguous(), scores)
    vals, idx = torch.topk(scores, k + 1, dim=1, sorted=True)
    out = _order_kept(idx[:, :k].contiguous(), vals[:, :k].contiguous())
    boundary_tie = vals[:, k] == vals[:, k - 1]
    if bool(boundary_tie.any()):
        rows = boundary_tie.nonzero(as_tuple=True)[0]
        out[rows] = _topk_with_ties(scores[rows], k)
    return out


def _auc_rows(scores, targets):
    """Per-row AUC of ``targets`` (bool) against the other non-excluded items.

    Excluded items must already carry the mask value; they are left out of the negatives.
    """
    mask_val = _mask_value(scores.dtype)
    excluded = scores == mask_val
    neg = ~targets & ~excluded
    inf = torch.tensor(float("inf"), dtype=scores.dtype, device=scores.device)
    neg_sorted = torch.sort(torch.where(neg, scores, inf), dim=1).values
    less = torch.searchsorted(neg_sorted, scores.contiguous(), side="left")
    less_eq = torch.searchsorted(neg_sorted, scores.contiguous(), side="right")
    wins = (less.to(scores.dtype) + 0.5 * (less_eq - less).to(scores.dtype)) * targets
    n_pos = targets.sum(dim=1).to(scores.dtype)
    n_neg = neg.sum(dim=1).to(scores.dtype)
    return wins.sum(dim=1) / (n_pos * n_neg)


def batch_metrics(scores, targets, metrics, n_targets=None):
    """Per-user metric values for one batch of users, on the scores' device.

    The building block of :func:`ranking_metrics` and of the estimators' evaluation and
    validation loops: it works on torch tensors already on the device and masked, so a loop
    over batches (e.g. a training loop's validation pass) needs no host round trip.

    Parameters
    ----------
    scores : torch.Tensor of shape (n_users, n_items)
        Scores; excluded items must already carry the mask value (the dtype's lowest finite
        value, as :meth:`~skadvrec.base.BaseRecommender.iter_scores` sets it).
    targets : torch.Tensor of bool, shape (n_users, n_items)
        Held-out target items (none of them excluded).
    metrics : str or sequence
        Metric names such as ``"ndcg@100"`` (see :func:`parse_metric`), or pre-parsed
        ``(key, kind, k)`` triples (``key`` names the output entry) to spare the parsing in a
        hot loop.
    n_targets : torch.Tensor of shape (n_users,), default=None
        Per-row target counts, if known, to spare a pass over ``targets``.

    Returns
    -------
    dict of str to torch.Tensor of shape (n_users,)
        Per-user values, ``nan`` for users with no target; keys are the metric names (or keys).

    Examples
    --------
    >>> import torch
    >>> from skadvrec.metrics import batch_metrics
    >>> scores = torch.tensor([[0.9, 0.8, 0.1, 0.0]])
    >>> targets = torch.tensor([[False, True, False, True]])
    >>> batch_metrics(scores, targets, ["recall@2", "hitrate@1"])["recall@2"]
    tensor([0.5000])
    """
    if isinstance(metrics, str) or not all(isinstance(m, tuple) for m in metrics):
        specs = _as_specs(metrics)
    else:
        specs = metrics
    n_t = targets.sum(dim=1) if n_targets is None else n_targets
    has = n_t > 0
    out = {}
    ks = [k for _, kind, k in specs if kind != "auc"]
    if ks:
        kmax = max(ks)
        ranked = topk_ranking(scores, kmax)
        hits = torch.gather(targets, 1, ranked).to(scores.dtype)
        disc = 1.0 / torch.log2(torch.arange(2, kmax + 2, device=scores.device,
                                             dtype=scores.dtype))
        cum_idcg = torch.cumsum(disc, 0)
    nan = torch.tensor(float("nan"), dtype=scores.dtype, device=scores.device)
    for name, kind, k in specs:
        if kind == "auc":
            val = _auc_rows(scores, targets)
        else:
            h = hits[:, :k]
            denom = torch.clamp(n_t, max=k).to(scores.dtype)
            if kind == "ndcg":
                idcg = cum_idcg[torch.clamp(n_t, min=1, max=k) - 1]
                val = (h * disc[:k]).sum(dim=1) / idcg
            elif kind == "recall":
                val = h.sum(dim=1) / denom
            elif kind == "recall_all":
                val = h.sum(dim=1) / n_t.to(scores.dtype)
            else:  # hitrate
                val = (h.sum(dim=1) > 0).to(scores.dtype)
        out[name] = torch.where(has, val, nan)
    return out


_metrics_on_batch = batch_metrics  # the name used before batch_metrics became public


def _as_specs(metrics):
    if isinstance(metrics, str):
        metrics = [metrics]
    specs = []
    for name in metrics:
        kind, k = parse_metric(name)
        specs.append((name, kind, k))
    if not specs:
        raise ValueError("at least one metric name is needed, e.g. ['ndcg@100'].")
    return specs


def _check_k(specs, n_items):
    for name, _kind, k in specs:
        if k is not None and k > n_items:
            raise ValueError(
                f"{name}: k={k} is larger than the number of items ({n_items}); use k <= {n_items}."
            )


def _to_csr(a, name, shape=None):
    if sp.issparse(a):
        a = sp.csr_matrix(a)
    else:
        a = np.asarray(a)
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_users, n_items); got shape {a.shape}.")
        a = sp.csr_matrix(a)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, but scores have shape {shape}.")
    if a.nnz and a.dtype.kind in "fc" and not np.all(np.isfinite(a.data)):
        raise ValueError(f"{name} contains NaN or infinite values; mark relevant items with 1 "
                         "and the others with 0.")
    if a.nnz and a.dtype.kind != "b" and a.data.min() < 0:
        raise ValueError(f"{name} contains negative values; it is binary (non-zero = relevant): "
                         "mark relevant items with 1 and the others with 0.")
    return a


def ranking_metrics(y_true, y_score, metrics=("ndcg@100",), *, exclude=None, batch_size=1024,
                    device="auto"):
    """Per-user ranking metrics for a score matrix, in batches of users.

    Parameters
    ----------
    y_true : array-like or sparse of shape (n_users, n_items)
        Binary relevance (non-zero = held-out target item).
    y_score : array-like of shape (n_users, n_items)
        Scores; larger ranks higher. Must be finite.
    metrics : str or sequence of str, default=("ndcg@100",)
        Names such as ``"ndcg@100"``, ``"recall@20"``, ``"hitrate@10"``, ``"auc"``.
    exclude : array-like or sparse of shape (n_users, n_items), default=None
        Non-zero entries are removed from the ranking (e.g. fold-in or training items).
    batch_size : int, default=1024
        Users per batch.
    device : str, default="auto"
        Where the ranking runs.

    Returns
    -------
    dict of str to ndarray of shape (n_users,)
        Per-user values, ``nan`` for users without targets.

    Examples
    --------
    >>> import numpy as np
    >>> from skadvrec.metrics import ranking_metrics
    >>> y_true = np.array([[0, 1, 0, 1], [0, 0, 0, 0]])
    >>> y_score = np.array([[0.9, 0.8, 0.1, 0.0], [1, 2, 3, 4]])
    >>> out = ranking_metrics(y_true, y_score, ["recall@2", "hitrate@1"])
    >>> out["recall@2"]
    array([0.5, nan])
    """
    specs = _as_specs(metrics)
    if sp.issparse(y_score):
        raise ValueError("y_score must be a dense array of scores, not a sparse matrix.")
    y_score = np.asarray(y_score)
    if y_score.ndim != 2:
        raise ValueError(f"y_score must be 2-D (n_users, n_items); got shape {y_score.shape}.")
    if not np.issubdtype(y_score.dtype, np.number):
        raise ValueError(f"y_score must be numeric; got dtype {y_score.dtype}.")
    if not np.all(np.isfinite(y_score)):
        raise ValueError("y_score contains NaN or infinite values; scores must be finite.")
    shape = y_score.shape
    _check_k(specs, shape[1])
    y_true = _to_csr(y_true, "y_true", shape)
    exclude = None if exclude is None else _to_csr(exclude, "exclude", shape)
    dev = resolve_device(device)
    dtype = torch.float64 if y_score.dtype == np.float64 else torch.float32
    parts = {name: [] for name, _, _ in specs}
    for sl in iter_row_batches(shape[0], batch_size):
        s = torch.as_tensor(y_score[sl], device=dev).to(dtype)
        t = (dense_rows(y_true, sl, dev, torch.bool) if y_true.nnz
             else torch.zeros_like(s, dtype=torch.bool))
        if exclude is not None:
            ex = dense_rows(exclude, sl, dev, torch.bool)
            s = s.masked_fill(ex, _mask_value(dtype))
            t = t & ~ex
        for name, val in batch_metrics(s, t, specs).items():
            parts[name].append(val.cpu().numpy())
    return {name: np.concatenate(v) if v else np.empty(0) for name, v in parts.items()}


def _single(kind, y_true, y_score, k, exclude, per_user):
    name = kind if k is None else f"{kind}@{k}"
    vals = ranking_metrics(y_true, y_score, [name], exclude=exclude)[name]
    if per_user:
        return vals
    if np.all(np.isnan(vals)):
        raise ValueError("no user has a target item: the metric is undefined.")
    return float(np.nanmean(vals))


def ndcg_at_k(y_true, y_score, k=100, *, exclude=None, per_user=False):
    """NDCG@k with binary gains, averaged over users with at least one target.

    See the module docstring for tie-breaking and exclusion rules. ``per_user=True`` returns the
    per-user values (``nan`` where a user has no target).

    Examples
    --------
    >>> from skadvrec.metrics import ndcg_at_k
    >>> round(ndcg_at_k([[1, 0, 0]], [[0.1, 0.5, 0.2]], k=3), 4)
    0.5
    """
    return _single("ndcg", y_true, y_score, k, exclude, per_user)


def recall_at_k(y_true, y_score, k=20, *, exclude=None, per_user=False):
    """Recall@k normalised by min(k, |targets|) (Liang et al. 2018).

    Examples
    --------
    >>> from skadvrec.metrics import recall_at_k
    >>> recall_at_k([[1, 1, 0, 0]], [[0.9, 0.1, 0.5, 0.0]], k=1)
    1.0
    """
    return _single("recall", y_true, y_score, k, exclude, per_user)


def hit_rate_at_k(y_true, y_score, k=10, *, exclude=None, per_user=False):
    """HitRate@k: share of users with at least one target in their top k.

    Examples
    --------
    >>> from skadvrec.metrics import hit_rate_at_k
    >>> hit_rate_at_k([[0, 1], [1, 0]], [[0.9, 0.1], [0.9, 0.1]], k=1)
    0.5
    """
    return _single("hitrate", y_true, y_score, k, exclude, per_user)


def auc_score(y_true, y_score, *, exclude=None, per_user=False):
    """Per-user ROC AUC over all non-excluded items, averaged over users (ties count 1/2).

    Examples
    --------
    >>> from skadvrec.metrics import auc_score
    >>> auc_score([[1, 0, 0]], [[0.5, 0.9, 0.1]])
    0.5
    """
    return _single("auc", y_true, y_score, None, exclude, per_user)
