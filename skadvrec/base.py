"""The shared base of every skadvrec recommender.

:class:`BaseRecommender` holds, once for all families, the data contract (the user × item matrix
form and the interaction-table form), id mapping, input checks, device handling, batched
scoring, seen-item masking, fold-in evaluation, ``predict`` / ``recommend`` / ``score`` /
``transform`` and CPU-safe pickling. A family implements ``_fit`` and ``_scores_from_rows``
(and, for models with a learned vector per user, ``_scores_from_users``).
"""

from __future__ import annotations

import copy
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags, check_scalar
from sklearn.utils.validation import check_is_fitted, validate_data

from ._torch import (csr_row_coords, dense_rows, iter_row_batches, resolve_device,
                     resolve_dtype)
from .metrics.ranking import (_as_specs, _check_k, _mask_value, _metrics_on_batch,
                              parse_metric, topk_ranking)
from .model_selection import fold_in_split

__all__ = ["BaseRecommender", "IterativeRecommender", "check_interactions", "InteractionData",
           "USER", "ITEM", "RATING"]

USER, ITEM, RATING, TIMESTAMP = "user", "item", "rating", "timestamp"

_TABLE_HELP = (
    "A pandas DataFrame is read as an interaction table with columns 'user' and 'item' (optional "
    "'rating', 'timestamp'); rename yours with DataFrame.rename(columns=...). A user x item "
    "matrix goes in as a scipy.sparse matrix or a numpy array."
)


@dataclass
class InteractionData:
    """Validated input: the users × items CSR matrix plus how its rows map to the input.

    ``kind`` is ``"matrix"`` (rows of X are users) or ``"table"`` (rows of X are interactions;
    ``user_codes`` maps each matrix row to a fitted user index, ``first_row`` to the first
    row of X that holds that user).
    """

    kind: str
    matrix: sp.csr_matrix
    user_ids: np.ndarray | None = None
    first_row: np.ndarray | None = None


def _check_table(X):
    missing = [c for c in (USER, ITEM) if c not in X.columns]
    if missing:
        raise ValueError(f"the interaction table has no column(s) {missing}; got "
                         f"{list(X.columns)}. {_TABLE_HELP}")
    if len(X) == 0:
        raise ValueError("the interaction table is empty: it has 0 rows.")
    for col in (USER, ITEM):
        if X[col].isna().any():
            raise ValueError(f"column {col!r} contains missing values; drop those rows first.")
    if RATING in X.columns:
        r = pd.to_numeric(X[RATING], errors="coerce")
        if r.isna().any():
            raise ValueError("column 'rating' contains missing or non-numeric values.")


def check_interactions(X, *, item_ids=None, rating_threshold=None, allow_empty=True):
    """Validate either input form and return an :class:`InteractionData`.

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

    Returns
    -------
    InteractionData
    """
    if isinstance(X, pd.DataFrame):
        _check_table(X)
        df, pos = X, None
        if RATING in df.columns and rating_threshold is not None:
            keep = np.asarray(pd.to_numeric(df[RATING]) >= rating_threshold)
            df, pos = df[keep], np.flatnonzero(keep)  # positions: safe with duplicate labels
            if len(df) == 0:
                raise ValueError(
                    f"no row has rating >= rating_threshold={rating_threshold}; lower the "
                    "threshold or set rating_threshold=None to keep every row."
                )
        users, user_codes = np.unique(np.asarray(df[USER]), return_inverse=True)
        if item_ids is None:
            item_ids, item_codes = np.unique(np.asarray(df[ITEM]), return_inverse=True)
            known = np.ones(len(df), dtype=bool)
        else:
            item_codes = np.searchsorted(item_ids, np.asarray(df[ITEM]))
            item_codes = np.clip(item_codes, 0, len(item_ids) - 1)
            known = item_ids[item_codes] == np.asarray(df[ITEM])
            if not known.all():
                warnings.warn(
                    f"{int((~known).sum())} interaction(s) name items unseen in fit; they cannot "
                    "be ranked and are ignored.", UserWarning, stacklevel=3)
        m = sp.csr_matrix(
            (np.ones(int(known.sum()), dtype=np.float32), (user_codes[known], item_codes[known])),
            shape=(len(users), len(item_ids)))
        m.sum_duplicates()
        m.data[:] = 1.0  # repeated interactions count once
        first = np.unique(user_codes, return_index=True)[1]
        first_row = pos[first] if pos is not None else first
        return InteractionData("table", m, user_ids=users, first_row=first_row), item_ids
    if sp.issparse(X):
        m = sp.csr_matrix(X, dtype=np.float32 if X.dtype != np.float64 else np.float64)
    else:
        arr = np.asarray(X)
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"X has non-numeric entries; {_TABLE_HELP}") from None
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
    return InteractionData("matrix", m), item_ids


def _per_user_frame(S, data: InteractionData, n_input_rows):
    """Align ``sensitive_features`` with the rows of ``data.matrix`` (one row per user)."""
    if S is None:
        return None
    if isinstance(S, pd.Series):
        S = S.to_frame()
    elif not isinstance(S, pd.DataFrame):
        arr = np.asarray(S)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"sensitive_features must be 1-D or 2-D; got shape {arr.shape}.")
        S = pd.DataFrame(arr, columns=[f"attr{j}" for j in range(arr.shape[1])])
    if len(S) != n_input_rows:
        raise ValueError(
            f"sensitive_features has {len(S)} rows but X has {n_input_rows}; pass one row per "
            "row of X (GridSearchCV slices both together).")
    S = S.reset_index(drop=True)
    if data.kind == "table":
        S = S.iloc[data.first_row].reset_index(drop=True)
    return S


class BaseRecommender(BaseEstimator):
    """Base class of the recommenders: the shared data contract and prediction API.

    Subclasses define their parameters in ``__init__`` (stored unchanged), and implement
    ``_fit(X, sensitive_features)`` on a CSR users × items matrix and
    ``_scores_from_rows(X_batch)`` that maps a dense (batch, n_items) tensor of input rows on
    ``self.device_`` to a fresh (batch, n_items) score tensor (the caller masks it in place).

    Common parameters (set by subclasses): ``device`` ("auto", "cpu", "cuda", "cuda:1"),
    ``random_state``, ``verbose``, ``batch_size`` (users per scoring batch) and
    ``rating_threshold`` (rows of a table with a lower ``rating`` are not positives).
    """

    _default_score_k = 100

    # -- hooks -------------------------------------------------------------------------------
    def _fit(self, X, sensitive_features=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _scores_from_rows(self, X_rows):  # pragma: no cover - abstract
        raise NotImplementedError

    def _scores_from_users(self, user_idx):
        """Scores of fitted users (table form); default: score their training rows."""
        rows = dense_rows(self.train_matrix_, user_idx, self.device_, self._torch_dtype())
        return self._scores_from_rows(rows)

    def _transform_rows(self, X_rows):
        """User representation; default: the score vector (models with no latent space)."""
        return self._scores_from_rows(X_rows)

    def _transform_users(self, user_idx):
        """Representation of fitted users (table form); default: from their training rows."""
        rows = dense_rows(self.train_matrix_, user_idx, self.device_, self._torch_dtype())
        return self._transform_rows(rows)

    # -- helpers -----------------------------------------------------------------------------
    def _fitted_user_index(self, users):
        """(index into ``user_ids_``, known mask) of table user ids (index valid where known)."""
        idx = np.clip(np.searchsorted(self.user_ids_, users), 0, len(self.user_ids_) - 1)
        return idx, self.user_ids_[idx] == users

    def _torch_dtype(self):
        return resolve_dtype(getattr(self, "dtype", "float32"))

    def _batch(self):
        return int(check_scalar(getattr(self, "batch_size", 2048), "batch_size",
                                numbers.Integral, min_val=1))

    def _check_common_params(self):
        resolve_device(self.device)
        self._torch_dtype()
        self._batch()
        thr = getattr(self, "rating_threshold", None)
        if thr is not None and not isinstance(thr, numbers.Real):
            raise ValueError(f"rating_threshold must be a number or None; got {thr!r}.")

    def _validate_fit(self, X, sensitive_features):
        self._check_common_params()
        if not isinstance(X, pd.DataFrame):
            validate_data(self, X, accept_sparse="csr", dtype=[np.float32, np.float64],
                          ensure_non_negative=True, reset=True)
        data, item_ids = check_interactions(
            X, rating_threshold=getattr(self, "rating_threshold", None), allow_empty=False)
        self.device_ = resolve_device(self.device)
        self.n_items_ = data.matrix.shape[1]
        self.train_matrix_ = data.matrix
        if data.kind == "table":
            self.item_ids_ = item_ids
            self.user_ids_ = data.user_ids
            self.__dict__.pop("n_features_in_", None)
        else:
            self.item_ids_ = np.arange(self.n_items_)
            self.__dict__.pop("user_ids_", None)
        self.input_form_ = data.kind
        n_rows = len(X) if isinstance(X, pd.DataFrame) else data.matrix.shape[0]
        S = _per_user_frame(sensitive_features, data, n_rows)
        return data.matrix, S

    def fit(self, X, y=None, *, sensitive_features=None):
        """Fit the recommender.

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items), ndarray, or DataFrame
            User × item interactions (rows are users), or an interaction table with columns
            ``user``, ``item`` (optional ``rating``, ``timestamp``).
        y : None
            Ignored; present for API consistency.
        sensitive_features : DataFrame, Series or array-like, default=None
            Protected attributes, one row per row of X. Used only by methods that need them.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        matrix, S = self._validate_fit(X, sensitive_features)
        self._fit(matrix, S)
        return self

    def fit_transform(self, X, y=None, *, sensitive_features=None):
        """Fit, then return :meth:`transform` of the same X."""
        return self.fit(X, y, sensitive_features=sensitive_features).transform(X)

    def _ensure_device(self):
        """After unpickling (tensors on the CPU), move fitted tensors to the usable device."""
        dev = self.device_
        if dev.type == "cuda" and not torch.cuda.is_available():
            warnings.warn("the model was fitted on CUDA, which is not available here; using the "
                          "CPU.", UserWarning, stacklevel=3)
            dev = torch.device("cpu")
        for key, val in list(self.__dict__.items()):
            if isinstance(val, (torch.Tensor, torch.nn.Module)) and key.endswith("_"):
                setattr(self, key, val.to(dev))
        self.device_ = dev

    def _input(self, X):
        """Validate prediction input: the CSR input rows and, for tables, fitted user indices."""
        check_is_fitted(self, "n_items_")
        if getattr(self, "_needs_device_check", False):
            self._ensure_device()
            self._needs_device_check = False
        if isinstance(X, pd.DataFrame):
            if self.input_form_ != "table":
                raise ValueError("this model was fitted on a user x item matrix; pass a matrix "
                                 f"with {self.n_items_} columns, not a DataFrame.")
            _check_table(X)
            users = pd.unique(np.asarray(X[USER]))
            idx, known = self._fitted_user_index(users)
            if not known.all():
                raise ValueError(
                    f"{int((~known).sum())} user(s) were not seen in fit, e.g. "
                    f"{users[~known][:3].tolist()}; a model fitted on a table scores fitted users "
                    "only. Fit on a user x item matrix to fold in new users from their rows.")
            return None, idx, users
        if self.input_form_ == "table":
            raise ValueError("this model was fitted on an interaction table; pass a DataFrame "
                             "with a 'user' column naming fitted users.")
        validate_data(self, X, accept_sparse="csr", dtype=[np.float32, np.float64],
                      ensure_non_negative=True, reset=False)
        data, _ = check_interactions(X)
        return data.matrix, None, None

    def _iter_scores(self, rows, user_idx, mask_seen):
        """Yield (slice, masked score tensor) over batches of users."""
        dtype = self._torch_dtype()
        n = rows.shape[0] if rows is not None else len(user_idx)
        seen_src = rows if rows is not None else self.train_matrix_[user_idx]
        with torch.no_grad():
            for sl in iter_row_batches(n, self._batch()):
                if rows is not None:
                    s = self._scores_from_rows(dense_rows(rows, sl, self.device_, dtype))
                else:
                    s = self._scores_from_users(user_idx[sl])
                if mask_seen:  # scatter the few seen entries instead of a dense mask
                    r, c = csr_row_coords(seen_src, sl, self.device_)
                    s[r, c] = _mask_value(s.dtype)
                yield sl, s

    # -- public API --------------------------------------------------------------------------
    def predict(self, X):
        """Scores of every item for every user of X (higher = more relevant).

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items) or DataFrame
            Matrix form: each row is a user's interactions, used as the model's input (fold-in).
            Table form: the fitted users named in the ``user`` column, in order of first
            appearance.

        Returns
        -------
        scores : ndarray of shape (n_users, n_items)
            Raw scores, seen items not masked. Computed in batches of ``batch_size`` users.
        """
        rows, user_idx, _ = self._input(X)
        n = rows.shape[0] if rows is not None else len(user_idx)
        out = np.empty((n, self.n_items_), dtype=np.dtype(str(self._torch_dtype())[6:]))
        for sl, s in self._iter_scores(rows, user_idx, mask_seen=False):
            out[sl] = s.cpu().numpy()
        return out

    def recommend(self, X, k=10, *, exclude_seen=True):
        """Top-``k`` items per user, best first, as original item ids.

        Parameters
        ----------
        X : sparse matrix or DataFrame
            As in :meth:`predict`.
        k : int, default=10
            List length; at most the number of items.
        exclude_seen : bool, default=True
            Leave out the user's input items (matrix form) or training items (table form).

        Returns
        -------
        ndarray of shape (n_users, k) or DataFrame
            Matrix form: item ids (column indices), padded with -1 where a user has fewer than
            ``k`` unseen items. Table form: a long DataFrame with columns ``user``, ``item``,
            ``rank`` (1 = best) and ``score``, with no row for such missing slots.
        """
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}.")
        rows, user_idx, users = self._input(X)
        if k > self.n_items_:
            raise ValueError(f"k={k} is larger than the number of items ({self.n_items_}).")
        n = rows.shape[0] if rows is not None else len(user_idx)
        top = np.empty((n, k), dtype=np.int64)
        top_scores = np.empty((n, k), dtype=np.float64)
        for sl, s in self._iter_scores(rows, user_idx, mask_seen=exclude_seen):
            idx = topk_ranking(s, k)
            top[sl] = idx.cpu().numpy()
            top_scores[sl] = torch.gather(s, 1, idx).double().cpu().numpy()
        # a user with fewer than k rankable items: the masked (seen) slots are not items to offer
        valid = top_scores > float(_mask_value(self._torch_dtype())) if exclude_seen else None
        if users is None:
            items = self.item_ids_[top]
            if valid is not None and not valid.all():
                items = np.where(valid, items, -1)
            return items
        out = pd.DataFrame({
            USER: np.repeat(users, k), ITEM: self.item_ids_[top].ravel(),
            "rank": np.tile(np.arange(1, k + 1), n), "score": top_scores.ravel()})
        return out if valid is None else out[valid.ravel()].reset_index(drop=True)

    def transform(self, X):
        """The model's representation of each user of X (see the estimator's docstring).

        Parameters
        ----------
        X : sparse matrix or DataFrame
            As in :meth:`predict`.

        Returns
        -------
        ndarray of shape (n_users, n_components)
        """
        rows, user_idx, _ = self._input(X)
        dtype = self._torch_dtype()
        parts = []
        with torch.no_grad():
            n = rows.shape[0] if rows is not None else len(user_idx)
            for sl in iter_row_batches(n, self._batch()):
                if rows is not None:
                    z = self._transform_rows(dense_rows(rows, sl, self.device_, dtype))
                else:
                    z = self._transform_users(user_idx[sl])
                parts.append(z.cpu().numpy())
        return np.concatenate(parts)

    def evaluate(self, X, metrics=("ndcg@100",), *, targets=None, fold_in_fraction=0.8,
                 random_state=0):
        """Per-user ranking metrics on held-out data.

        Matrix form: each row of X is a held-out user; it is split (seeded) into a fold-in part
        (``fold_in_fraction``, the model's input) and a target part ranked against all items not
        in the fold-in part. Table form: X holds held-out interactions of fitted users; each
        user's training items are masked and the rows of X are the targets. Users unknown to
        the model are skipped with a warning.

        Parameters
        ----------
        X : sparse matrix or DataFrame
            Held-out data.
        metrics : str or sequence of str, default=("ndcg@100",)
            Metric names: ``"ndcg@k"``, ``"recall@k"``, ``"hitrate@k"``, ``"auc"``.
        targets : sparse matrix of shape X.shape, default=None
            Matrix form only: explicit held-out items per row. Then X is used whole as the
            input (and masked) and no fold-in split is made, as in the LightGCN train/test
            protocol: ``model.evaluate(train, ["recall@20"], targets=test)``.
        fold_in_fraction : float, default=0.8
            Matrix form only: share of each row used as input.
        random_state : int, default=0
            Seed of the fold-in split.

        Returns
        -------
        values : dict of str to ndarray of shape (n_evaluated_users,)
            Per-user values (``nan`` for users with no target).
        rows : ndarray of int
            For each evaluated user, the row of X it comes from (its first row for tables), to
            align with ``sensitive_features``.
        """
        specs = _as_specs(metrics)
        check_is_fitted(self, "n_items_")
        _check_k(specs, self.n_items_)
        if isinstance(X, pd.DataFrame):
            if self.input_form_ != "table":
                raise ValueError("this model was fitted on a user x item matrix; evaluate it "
                                 "on a matrix of held-out users, not a DataFrame.")
            _check_table(X)
            data, _ = check_interactions(X, item_ids=self.item_ids_,
                                         rating_threshold=getattr(self, "rating_threshold", None))
            idx, known = self._fitted_user_index(data.user_ids)
            if not known.any():
                raise ValueError("none of the users in X was seen in fit; nothing to evaluate.")
            if not known.all():
                warnings.warn(f"{int((~known).sum())} user(s) in X were not seen in fit and are "
                              "skipped.", UserWarning, stacklevel=2)
            targets = data.matrix[np.flatnonzero(known)]
            rows_out, inputs, user_idx = data.first_row[known], None, idx[known]
            seen = self.train_matrix_[user_idx]
            targets = targets - targets.multiply(seen)  # a re-interaction with a seen item
            targets.eliminate_zeros()
        else:
            rows_all, _, _ = self._input(X)
            if targets is None:
                inputs, targets = fold_in_split(rows_all, fold_in_fraction,
                                                random_state=random_state)
            else:
                targets, _ = check_interactions(targets)
                targets = targets.matrix
                if targets.shape != rows_all.shape:
                    raise ValueError(f"targets has shape {targets.shape} but X has shape "
                                     f"{rows_all.shape}; pass one target row per row of X.")
                inputs = rows_all
                targets = targets - targets.multiply(inputs > 0)  # input items are not ranked
                targets.eliminate_zeros()
            rows_out, user_idx = np.arange(rows_all.shape[0]), None
        if getattr(self, "_needs_device_check", False):
            self._ensure_device()
            self._needs_device_check = False
        return self._evaluate_rows(inputs, user_idx, targets, specs), rows_out

    def _evaluate_rows(self, inputs, user_idx, targets, specs):
        """Per-user metrics: rank for ``inputs`` rows (or fitted ``user_idx``), inputs masked."""
        parts = {name: [] for name, _, _ in specs}
        n_targets = torch.from_numpy(np.diff(targets.indptr)).to(self.device_)
        for sl, s in self._iter_scores(inputs, user_idx, mask_seen=True):
            t = dense_rows(targets, sl, self.device_, torch.bool)
            for name, val in _metrics_on_batch(s, t, specs, n_targets[sl]).items():
                parts[name].append(val.cpu().numpy())
        return {n: np.concatenate(v) for n, v in parts.items()}

    def score(self, X, y=None):
        """Mean NDCG@k on held-out data (``k = min(100, n_items)``), see :meth:`evaluate`.

        Parameters
        ----------
        X : sparse matrix or DataFrame
            Held-out users (matrix form, folded in 80/20 with seed 0) or held-out interactions
            of fitted users (table form).
        y : None
            Ignored.

        Returns
        -------
        float
            Mean NDCG over users with at least one target.
        """
        check_is_fitted(self, "n_items_")
        k = min(self._default_score_k, self.n_items_)
        vals, _ = self.evaluate(X, [f"ndcg@{k}"])
        v = vals[f"ndcg@{k}"]
        if np.all(np.isnan(v)):
            raise ValueError("no user in X has a target item to evaluate (rows need >= 2 "
                             "interactions for the fold-in split).")
        return float(np.nanmean(v))

    # -- persistence -------------------------------------------------------------------------
    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        for key, val in state.items():
            if isinstance(val, torch.Tensor):
                state[key] = val.detach().cpu()
            elif isinstance(val, torch.nn.Module):
                state[key] = copy.deepcopy(val).to("cpu")  # the live module stays put
        if "device_" in state:
            state["_needs_device_check"] = True
        return state

    def __sklearn_tags__(self):
        tags = interaction_input_tags(super().__sklearn_tags__())
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags


def interaction_input_tags(tags):
    """Set the sklearn input tags of an estimator that takes interactions: sparse, non-negative,
    no NaN, no ``y``. Returns ``tags``."""
    tags.input_tags.sparse = True
    tags.input_tags.positive_only = True
    tags.input_tags.allow_nan = False
    tags.target_tags.required = False
    return tags


def _finish_early_stopping(estimator, stopper):
    """After training: set ``best_epoch_`` (and ``best_validation_score_``, or drop a stale one)
    and return the best snapshot to restore, or None to keep the last model."""
    if stopper is not None and stopper.state is not None:
        estimator.best_epoch_ = stopper.epoch
        estimator.best_validation_score_ = stopper.best
        return stopper.state
    estimator.best_epoch_ = len(estimator.history_)
    estimator.__dict__.pop("best_validation_score_", None)  # from an earlier fit
    return None


def _split_validation(X, validation_data, validation_fraction, rng):
    """(training row indices, validation fold-in rows, validation targets).

    ``validation_data`` (full rows of separate users) is folded in 80/20; otherwise
    ``validation_fraction`` of the users of X with >= 2 interactions are held out.
    """
    if validation_data is not None:
        V = check_interactions(validation_data)[0].matrix
        if V.shape[1] != X.shape[1]:
            raise ValueError(f"validation_data has {V.shape[1]} items but X has {X.shape[1]}.")
        v_in, v_out = fold_in_split(V, 0.8, random_state=rng.randint(2**31 - 1))
        return np.arange(X.shape[0]), v_in, v_out
    eligible = np.flatnonzero(np.diff(X.indptr) >= 2)
    n_val = int(round(validation_fraction * X.shape[0]))
    if n_val < 1 or n_val >= len(eligible):
        raise ValueError(
            f"validation_fraction={validation_fraction} gives {n_val} validation users out of "
            f"{len(eligible)} with >= 2 interactions; adjust it, pass validation_data, or set "
            "early_stopping=False.")
    val = np.sort(rng.choice(eligible, n_val, replace=False))
    train = np.setdiff1d(np.arange(X.shape[0]), val, assume_unique=True)
    v_in, v_out = fold_in_split(X[val], 0.8, random_state=rng.randint(2**31 - 1))
    return train, v_in, v_out


class IterativeRecommender(BaseRecommender):
    """Base of the recommenders trained by epochs with early stopping on held-out users.

    Adds ``validation_data`` to ``fit`` and :meth:`_validation_split`, which subclasses call in
    ``_fit`` (they define ``early_stopping``, ``validation_fraction``, ``validation_metric``).
    """

    def fit(self, X, y=None, *, sensitive_features=None, validation_data=None):
        """Fit the recommender.

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items), ndarray, or DataFrame
            Training interactions.
        y : None
            Ignored.
        sensitive_features : DataFrame, Series or array-like, default=None
            Protected attributes, one row per row of X (used only by methods that need them).
        validation_data : sparse matrix of shape (n_val_users, n_items), default=None
            Full rows of held-out validation users for early stopping (folded in 80/20,
            seeded). When None and ``early_stopping`` is on, ``validation_fraction`` of the
            training users are held out instead.

        Returns
        -------
        self : object
        """
        self._validation_data = validation_data
        try:
            return super().fit(X, y, sensitive_features=sensitive_features)
        finally:
            del self._validation_data

    def _check_early_stopping_params(self, n_items):
        """Check ``max_iter``, ``n_iter_no_change`` and, with early stopping on,
        ``validation_fraction`` and ``validation_metric``."""
        check_scalar(self.max_iter, "max_iter", numbers.Integral, min_val=1)
        check_scalar(self.n_iter_no_change, "n_iter_no_change", numbers.Integral, min_val=1)
        if self.early_stopping:
            if not (isinstance(self.validation_fraction, numbers.Real)
                    and 0 < self.validation_fraction < 1):
                raise ValueError("validation_fraction must be in (0, 1) when early_stopping is "
                                 f"on; got {self.validation_fraction!r}.")
            _, k = parse_metric(self.validation_metric)
            if k is not None and k > n_items:
                raise ValueError(f"validation_metric={self.validation_metric!r}: k is larger "
                                 f"than the number of items ({n_items}); use a smaller k or "
                                 "early_stopping=False.")

    def _validation_split(self, X, rng):
        """(training row indices, validation fold-in rows, validation targets)."""
        return _split_validation(X, getattr(self, "_validation_data", None),
                                 self.validation_fraction, rng)

    _dense_limit_bytes = 1 << 30

    def _batch_source(self, X, device, dtype):
        """A function ``rows(perm, start, stop)`` giving the dense training rows
        ``X[perm[start:stop]]`` on ``device``, for a permutation tensor on the device.

        Below ``_dense_limit_bytes`` the whole matrix is kept dense on the device, so a batch
        is one gather with no host work; above it, each batch is densified from the CSR.
        """
        itemsize = torch.finfo(dtype).bits // 8
        if X.shape[0] * X.shape[1] * itemsize <= self._dense_limit_bytes:
            X_dev = dense_rows(X, slice(None), device, dtype)
            return lambda perm, start, stop: X_dev[perm[start:stop]]
        cache = {}

        def rows(perm, start, stop):
            if cache.get("perm") is not perm:  # one host copy of each epoch's permutation
                cache["perm"], cache["host"] = perm, perm.cpu().numpy()
            return dense_rows(X, cache["host"][start:stop], device, dtype)
        return rows

    def _validation_score(self, v_in, v_out):
        """Mean ``validation_metric`` of the current model on the validation users."""
        specs = [(self.validation_metric, *parse_metric(self.validation_metric))]
        with torch.no_grad():
            val = self._evaluate_rows(v_in, None, v_out, specs)
        return float(np.nanmean(val[self.validation_metric]))


class _EarlyStopping:
    """Best-so-far bookkeeping: the best validation score, its epoch and a model snapshot."""

    def __init__(self, patience):
        self.patience = patience
        self.best, self.epoch, self.state, self.stale = -np.inf, None, None, 0

    def update(self, score, epoch, snapshot):
        """Record an epoch's score (``snapshot()`` is taken when it is the best); True = stop."""
        if score > self.best:
            self.best, self.epoch, self.state, self.stale = score, epoch, snapshot(), 0
        else:
            self.stale += 1
        return self.stale >= self.patience
