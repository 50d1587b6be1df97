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
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags, check_random_state
from tqdm import tqdm
from sklearn.utils.validation import check_is_fitted, validate_data

from ._data import (ITEM, LABEL, RATING, TABLE_HELP, TIMESTAMP, USER, InteractionData,
                    check_interactions, check_matrix_values, check_table)
from ._params import validate_parameter_constraints
from ._sensitive import as_frame, check_aligned
from ._torch import (TorchThreadCap, check_device_memory, csr_row_coords, dense_rows,
                     device_free_bytes, iter_row_batches, make_generator, resolve_device,
                     resolve_dtype)
from ._warnings import warn
from .metrics.ranking import (_as_specs, _check_k, _mask_value, _metrics_on_batch, parse_metric,
                              topk_ranking)
from .model_selection import fold_in_split

__all__ = ["BaseRecommender", "IterativeRecommender", "check_interactions", "InteractionData",
           "USER", "ITEM", "RATING", "TIMESTAMP", "LABEL"]

_check_table = check_table  # the name used before the data contract moved to ._data
_TABLE_HELP = TABLE_HELP


def _per_user_frame(S, data: InteractionData, n_input_rows, X=None):
    """Align ``sensitive_features`` with the rows of ``data.matrix`` (one row per user)."""
    if S is None:
        return None
    check_aligned(S, X)
    S = as_frame(S)
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

    Subclasses define their parameters in ``__init__`` (stored unchanged) and declare them in
    ``_parameter_constraints`` (validated once in ``fit``), and implement
    ``_fit(data, sensitive_features)`` on an :class:`~skadvrec._data.InteractionData` and
    ``_scores_from_rows(X_batch)`` that maps a dense (batch, n_items) tensor of input rows on
    ``self.device_`` to a fresh (batch, n_items) score tensor (the caller masks it in place).

    Common parameters (declared by every subclass): ``device`` ("auto", "cpu", "cuda",
    "cuda:1"), ``dtype``, ``random_state``, ``verbose``, ``batch_size`` (users per scoring batch)
    and ``rating_threshold`` (rows of a table with a lower ``rating`` are not positives).
    """

    _default_score_k = 100
    _parameter_constraints: dict = {}

    # -- hooks -------------------------------------------------------------------------------
    def _fit(self, data, sensitive_features=None):  # pragma: no cover - abstract
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
        users = np.asarray(users)
        idx = np.clip(np.searchsorted(self.user_ids_, users), 0, len(self.user_ids_) - 1)
        return idx, self.user_ids_[idx] == users

    def _torch_dtype(self):
        return resolve_dtype(self.dtype)

    def _batch(self):
        return int(self.batch_size)

    def _validate_fit(self, X, sensitive_features):
        validate_parameter_constraints(self._parameter_constraints, self.get_params(deep=False),
                                       caller_name=type(self).__name__)
        resolve_device(self.device)
        if not isinstance(X, pd.DataFrame):
            check_matrix_values(X)
            validate_data(self, X, accept_sparse="csr", dtype=[np.float32, np.float64],
                          ensure_non_negative=True, reset=True)
        data, item_ids = check_interactions(X, rating_threshold=self.rating_threshold,
                                            allow_empty=False, keep_table=True)
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
        S = _per_user_frame(sensitive_features, data, n_rows, X)
        return data, S

    def fit(self, X, y=None, *, sensitive_features=None):
        """Fit the recommender.

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items), ndarray, or DataFrame
            User × item interactions (rows are users), or an interaction table with columns
            ``user``, ``item`` (optional ``rating``, ``timestamp`` and feature columns).
        y : None
            Ignored; present for API consistency.
        sensitive_features : DataFrame, Series or array-like, default=None
            Protected attributes, one row per row of X. Used only by methods that need them.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        data, S = self._validate_fit(X, sensitive_features)
        self._fit(data, S)
        return self

    def fit_transform(self, X, y=None, *, sensitive_features=None):
        """Fit, then return :meth:`transform` of the same X."""
        return self.fit(X, y, sensitive_features=sensitive_features).transform(X)

    def _ensure_device(self):
        """After unpickling (tensors on the CPU), move fitted tensors to the usable device."""
        if not self.__dict__.pop("_needs_device_check", False):
            return
        dev = self.device_
        if dev.type == "cuda" and not torch.cuda.is_available():
            warn("the model was fitted on CUDA, which is not available here; using the "
                          "CPU.", UserWarning)
            dev = torch.device("cpu")
        for key, val in list(self.__dict__.items()):
            if isinstance(val, (torch.Tensor, torch.nn.Module)) and key.endswith("_"):
                setattr(self, key, val.to(dev))
        self.device_ = dev

    def _users_of(self, X):
        """The user ids named by X in the table form: a DataFrame's ``user`` column (no ``item``
        column needed), or a 1-D sequence of user ids; in order of first appearance."""
        if isinstance(X, pd.DataFrame):
            if USER not in X.columns:
                raise ValueError(f"the table has no 'user' column; got {list(X.columns)}. "
                                 f"{TABLE_HELP}")
            users = np.asarray(X[USER])
        else:
            users = np.asarray(X)
            if users.ndim != 1:
                raise ValueError("this model was fitted on an interaction table; pass a "
                                 "DataFrame with a 'user' column or a 1-D list of fitted user "
                                 f"ids (got an array of shape {users.shape}).")
        if len(users) == 0:
            raise ValueError("no user given: X is empty.")
        if pd.isna(users).any():
            raise ValueError("the user ids contain missing values; drop them first.")
        return pd.unique(users)

    def _input(self, X):
        """Validate prediction input: the CSR input rows and, for tables, fitted user indices."""
        check_is_fitted(self, "n_items_")
        self._ensure_device()
        if self.input_form_ == "table":
            if sp.issparse(X) or (not isinstance(X, pd.DataFrame) and np.ndim(X) == 2):
                raise ValueError("this model was fitted on an interaction table; pass a "
                                 "DataFrame with a 'user' column naming fitted users (or a list "
                                 "of user ids).")
            users = self._users_of(X)
            idx, known = self._fitted_user_index(users)
            if not known.all():
                raise ValueError(
                    f"{int((~known).sum())} user(s) were not seen in fit, e.g. "
                    f"{users[~known][:3].tolist()}; a model fitted on a table scores fitted users "
                    "only. Fit on a user x item matrix to fold in new users from their rows.")
            return None, idx, users
        if isinstance(X, pd.DataFrame):
            raise ValueError("this model was fitted on a user x item matrix; pass a matrix "
                             f"with {self.n_items_} columns, not a DataFrame.")
        check_matrix_values(X)
        validate_data(self, X, accept_sparse="csr", dtype=[np.float32, np.float64],
                      ensure_non_negative=True, reset=False)
        data, _ = check_interactions(X, copy=False)  # read-only: no copy of a clean CSR
        return data.matrix, None, None

    def _iter_scores(self, rows, user_idx, mask_seen, seen=None):
        """Yield (slice, masked score tensor) over batches of users.

        ``seen`` (CSR, one row per user) overrides the items masked: by default the input rows
        (matrix form) or the fitted users' training rows (table form).
        """
        dtype = self._torch_dtype()
        n = rows.shape[0] if rows is not None else len(user_idx)
        if seen is None:
            seen = rows if rows is not None else self.train_matrix_[user_idx]
        with torch.no_grad():
            for sl in iter_row_batches(n, self._batch()):
                if rows is not None:
                    s = self._scores_from_rows(dense_rows(rows, sl, self.device_, dtype))
                else:
                    s = self._scores_from_users(user_idx[sl])
                if mask_seen:  # scatter the few seen entries instead of a dense mask
                    r, c = csr_row_coords(seen, sl, self.device_)
                    s[r, c] = _mask_value(s.dtype)
                yield sl, s

    # -- public API --------------------------------------------------------------------------
    def iter_scores(self, X, *, exclude_seen=True):
        """Score the users of X batch by batch, on the model's device.

        The building block of :meth:`predict`, :meth:`recommend` and the scorers: it never
        holds more than ``batch_size`` users' scores, so it serves any number of users.

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items), DataFrame or sequence of user ids
            As in :meth:`predict`.
        exclude_seen : bool, default=True
            Give the user's input items (matrix form) or training items (table form) a large
            finite negative score, below every real score.

        Yields
        ------
        rows : slice
            Positions of the batch's users among the users of X.
        scores : torch.Tensor of shape (batch, n_items)
            Scores on ``self.device_``; columns in ``item_ids_`` order.
        """
        rows, user_idx, _ = self._input(X)
        yield from self._iter_scores(rows, user_idx, mask_seen=exclude_seen)

    def predict(self, X, *, as_frame=False):
        """Scores of every item for every user of X (higher = more relevant).

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items), DataFrame or sequence of user ids
            Matrix form: each row is a user's interactions, used as the model's input (fold-in).
            Table form: the fitted users named in the ``user`` column (or a list of user ids),
            in order of first appearance.
        as_frame : bool, default=False
            Return a DataFrame whose columns are the item ids and whose index is the users
            (table form: user ids; matrix form: row positions).

        Returns
        -------
        scores : ndarray of shape (n_users, n_items) or DataFrame
            Raw scores, seen items not masked; column ``j`` is item ``item_ids_[j]`` (the
            sorted item ids for the table form, the column index for the matrix form).
            Computed in batches of ``batch_size`` users.
        """
        rows, user_idx, users = self._input(X)
        n = rows.shape[0] if rows is not None else len(user_idx)
        dtype = np.dtype(str(self._torch_dtype())[6:])
        check_device_memory(
            n * self.n_items_ * dtype.itemsize, "cpu",
            f"predict's dense ({n}, {self.n_items_}) {dtype} score matrix",
            "Use recommend(X, k), evaluate or iter_scores, which work in batches of users, or "
            "predict on fewer users at a time.")
        out = np.empty((n, self.n_items_), dtype=dtype)
        for sl, s in self._iter_scores(rows, user_idx, mask_seen=False):
            out[sl] = s.cpu().numpy()
        if not as_frame:
            return out
        index = pd.Index(users, name=USER) if users is not None else pd.RangeIndex(n, name=USER)
        return pd.DataFrame(out, index=index, columns=pd.Index(self.item_ids_, name=ITEM))

    def recommend(self, X, k=10, *, exclude_seen=True):
        """Top-``k`` items per user, best first, as original item ids.

        Parameters
        ----------
        X : sparse matrix, DataFrame or sequence of user ids
            As in :meth:`predict` (a table needs only its ``user`` column).
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

    def evaluate(self, X, metrics=("ndcg@100",), *, targets=None, input_fraction=0.8,
                 random_state=0, fold_in_fraction="deprecated"):
        """Per-user ranking metrics on held-out data.

        Matrix form: each row of X is a held-out user; it is split (seeded) into a fold-in part
        (``input_fraction``, the model's input) and a target part ranked against all items not
        in the fold-in part. Table form: X holds held-out interactions of fitted users; each
        user's training items are masked and the rows of X are the targets. Users unknown to
        the model are skipped with a warning.

        Parameters
        ----------
        X : sparse matrix or DataFrame
            Held-out data.
        metrics : str or sequence of str, default=("ndcg@100",)
            Metric names: ``"ndcg@k"``, ``"recall@k"`` (hits / min(k, |targets|)),
            ``"recall_all@k"`` (hits / |targets|, the LightGCN / RecBole Recall),
            ``"hitrate@k"``, ``"auc"``.
        targets : sparse matrix of shape X.shape, default=None
            Matrix form only: explicit held-out items per row. Then X is used whole as the
            input (and masked) and no fold-in split is made, as in the LightGCN train/test
            protocol: ``model.evaluate(train, ["recall@20"], targets=test)``.
        input_fraction : float, default=0.8
            Matrix form only: share of each row used as the model's *input* (the rest are the
            targets): 0.8 = 80 % input, 20 % targets.
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
        if not (isinstance(fold_in_fraction, str) and fold_in_fraction == "deprecated"):
            warn("fold_in_fraction was renamed input_fraction (the share of each row "
                          "used as the model's input) and will be removed; pass "
                          "input_fraction instead.", FutureWarning)
            input_fraction = fold_in_fraction
        specs = _as_specs(metrics)
        check_is_fitted(self, "n_items_")
        _check_k(specs, self.n_items_)
        if isinstance(X, pd.DataFrame):
            if self.input_form_ != "table":
                raise ValueError("this model was fitted on a user x item matrix; evaluate it "
                                 "on a matrix of held-out users, not a DataFrame.")
            _check_table(X)
            data, _ = check_interactions(X, item_ids=self.item_ids_,
                                         rating_threshold=self.rating_threshold)
            idx, known = self._fitted_user_index(data.user_ids)
            if not known.any():
                raise ValueError("none of the users in X was seen in fit; nothing to evaluate.")
            if not known.all():
                warn(f"{int((~known).sum())} user(s) in X were not seen in fit and are "
                              "skipped.", UserWarning)
            targets = data.matrix[np.flatnonzero(known)]
            rows_out, inputs, user_idx = data.first_row[known], None, idx[known]
            seen = self.train_matrix_[user_idx]
            targets = targets - targets.multiply(seen)  # a re-interaction with a seen item
            targets.eliminate_zeros()
        else:
            rows_all, _, _ = self._input(X)
            if targets is None:
                inputs, targets = fold_in_split(rows_all, input_fraction,
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
        self._ensure_device()
        return self._evaluate_rows(inputs, user_idx, targets, specs), rows_out

    def _evaluate_rows(self, inputs, user_idx, targets, specs, seen=None):
        """Per-user metrics: rank for ``inputs`` rows (or fitted ``user_idx``), inputs (or
        ``seen``) masked."""
        parts = {name: [] for name, _, _ in specs}
        n_targets = torch.from_numpy(np.diff(targets.indptr)).to(self.device_)
        for sl, s in self._iter_scores(inputs, user_idx, mask_seen=True, seen=seen):
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
            if isinstance(X, pd.DataFrame):
                raise ValueError("no user in X has a target item to evaluate: every held-out "
                                 "row names an item the user already has in training (or a "
                                 "rating below rating_threshold). Pass interactions that are "
                                 "not in the training data.")
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



# -- the training-loop template ------------------------------------------------------------------

class _TrainingState:
    """A namespace for what exists only while ``fit`` runs (modules, optimisers, data on the
    device); the loop template removes it at the end, so it is never pickled."""


def _holdout_users(X, validation_data, validation_fraction, rng):
    """Validation protocol "users": (training rows, their indices, (fold-in rows, targets)).

    ``validation_data`` (full rows of separate users) is folded in 80/20, or given as a pair
    ``(inputs, targets)`` of matrices already split; otherwise ``validation_fraction`` of the
    users of X with >= 2 interactions are held out.
    """
    if isinstance(validation_data, tuple):
        if len(validation_data) != 2:
            raise ValueError("validation_data as a tuple must be (inputs, targets): two user x "
                             f"item matrices; got {len(validation_data)} items.")
        v_in, v_out = (check_interactions(v)[0].matrix for v in validation_data)
        if v_in.shape != v_out.shape or v_in.shape[1] != X.shape[1]:
            raise ValueError(f"validation_data (inputs, targets) have shapes {v_in.shape} and "
                             f"{v_out.shape}; both need X's {X.shape[1]} items and one row per "
                             "validation user.")
        v_out = v_out - v_out.multiply(v_in > 0)  # input items are not ranked
        v_out.eliminate_zeros()
        return X, np.arange(X.shape[0]), (v_in, sp.csr_matrix(v_out))
    if validation_data is not None:
        if isinstance(validation_data, pd.DataFrame):
            raise ValueError("validation_data for this model is a user x item matrix of "
                             "held-out users (rows folded in 80/20), not a DataFrame.")
        V = check_interactions(validation_data)[0].matrix
        if V.shape[1] != X.shape[1]:
            raise ValueError(f"validation_data has {V.shape[1]} items but X has {X.shape[1]}.")
        v_in, v_out = fold_in_split(V, 0.8, random_state=rng.randint(2**31 - 1))
        return X, np.arange(X.shape[0]), (v_in, v_out)
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
    return X[train], train, (v_in, v_out)


def _holdout_interactions(est, data, validation_data, validation_fraction, rng):
    """Validation protocol "interactions": (training matrix, all user indices, (targets,
    training matrix)) with held-out interactions of the *same* users as targets.

    ``validation_data`` holds further interactions of the training users (a table naming
    fitted users, or a matrix shaped like X); without it, ``validation_fraction`` of each
    user's interactions (users with >= 2) are held out at random.
    """
    X = data.matrix
    rows = np.arange(X.shape[0])
    if validation_data is None:
        X_tr, X_val = fold_in_split(X, 1.0 - validation_fraction,
                                    random_state=rng.randint(2**31 - 1))
        return sp.csr_matrix(X_tr), rows, (X_val, sp.csr_matrix(X_tr))
    if isinstance(validation_data, pd.DataFrame):
        if data.kind != "table":
            raise ValueError("validation_data is a table but X is a matrix; pass a matrix "
                             f"of shape {X.shape} (further interactions of X's users).")
        vd, _ = check_interactions(validation_data, item_ids=data.item_ids,
                                   rating_threshold=est.rating_threshold)
        idx, known = est._fitted_user_index(vd.user_ids)
        if not known.all():
            raise ValueError(f"validation_data names {int((~known).sum())} user(s) not in X; "
                             "it must hold further interactions of the training users.")
        coo = vd.matrix.tocoo()
        M = sp.csr_matrix((coo.data, (idx[coo.row], coo.col)), shape=X.shape)
    else:
        if data.kind == "table":
            raise ValueError("X is an interaction table; pass validation_data as a table of "
                             "further interactions of the same users.")
        M = check_interactions(validation_data)[0].matrix
        if M.shape != X.shape:
            raise ValueError(f"validation_data has shape {M.shape} but X has {X.shape}: for "
                             "these models it holds further interactions of X's own users.")
    M = M - M.multiply(X > 0)
    M.eliminate_zeros()
    return X, rows, (sp.csr_matrix(M), X)


class IterativeRecommender(BaseRecommender):
    """Base of the recommenders trained by epochs: the one training loop of the package.

    ``_fit`` is a template (the shape of RecPack's ``TorchMLAlgorithm.fit`` and skorch's fit
    loop). It draws one seeded torch generator, splits off validation data, then runs epochs;
    each epoch shuffles the ``n`` training units (users, or sampled triples) with that
    generator and cuts them into batches of ``batch_size`` (**the batching policy**: every unit
    once per epoch, the last batch may be smaller; families whose units are already drawn at
    random set ``_shuffle = False``). Per-step losses are summed on the device and read back
    once per epoch into ``history_``; a non-finite loss stops training with a
    ``FloatingPointError``. With ``early_stopping`` the model before the first epoch is a
    candidate too (``epoch=0``), each epoch is scored on the validation data, training stops
    after ``n_iter_no_change`` epochs without improvement and the best epoch's state is
    restored. A ``KeyboardInterrupt`` ends training early: the best (or current) state is kept
    with a warning.

    A family implements the hooks:

    * ``_init_model(train, data, sensitive_features, rng, gen) -> int``: build the model (and
      optimisers) in ``self._tr`` from the training matrix ``train`` (``data`` is the whole
      :class:`~skadvrec._data.InteractionData`; ``self._train_rows`` the training users' rows);
      return the number of training units per epoch.
    * ``_train_step(idx) -> dict``: one update on the units ``idx`` (a LongTensor on the device);
      returns 0-d tensors (batch means) to record. (``_train_batches(order, batch_size)`` runs
      an epoch's steps; a family may override it to run them another way, same record.)
    * ``_snapshot()`` / ``_restore(state)``: copy and reload the trainable state.
    * ``_finish_fit()``: set the fitted attributes from ``self._tr``.
    * optional: ``_check_params(data)``, ``_start_epoch(epoch)``, ``_end_epoch(record)``,
      ``_prepare_validation()`` (make the current model scorable before validation),
      ``_selectable(epoch)`` (False: early stopping may not keep that epoch, e.g. a warm-up).

    ``_validation_protocol`` is ``"users"`` (hold out whole users, fold them in 80/20: models
    that score a user from their row) or ``"interactions"`` (hold out interactions of the
    training users: models with a learned vector per user).
    """

    _validation_protocol = "users"
    _shuffle = True

    # -- hooks ---------------------------------------------------------------------------------
    def _check_params(self, data):
        """Checks that ``_parameter_constraints`` cannot express (after they passed)."""
        self._check_early_stopping_params(data.matrix.shape[1])

    def _init_model(self, train, data, sensitive_features, rng, gen):  # pragma: no cover
        raise NotImplementedError

    def _train_step(self, idx):  # pragma: no cover - abstract
        raise NotImplementedError

    def _snapshot(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore(self, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish_fit(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _start_epoch(self, epoch):
        """Called before each epoch's batches (0-based epoch)."""

    def _end_epoch(self, record):
        """Called with each epoch's record (before validation); may add entries."""

    def _prepare_validation(self):
        """Make the current model scorable (e.g. copy factors) before a validation score."""

    def _selectable(self, epoch):
        """Whether the state after ``epoch`` (0: before training) may be kept by early
        stopping; an epoch that is not selectable neither becomes the best nor counts towards
        ``n_iter_no_change`` (e.g. a warm-up)."""
        return True

    # -- public fit ------------------------------------------------------------------------------
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
        validation_data : sparse matrix or DataFrame, default=None
            Held-out data for early stopping. Models validated on held-out *users* take full
            rows of separate users (folded in 80/20, seeded; or a pair ``(inputs, targets)``
            already split); models with a vector per user take
            further interactions of the training users (a table naming fitted users, or a matrix
            shaped like X). When None and ``early_stopping`` is on, ``validation_fraction`` of
            the training users (resp. of each user's interactions) are held out.

        Returns
        -------
        self : object
        """
        data, S = self._validate_fit(X, sensitive_features)
        self._fit(data, S, validation_data=validation_data)
        return self

    # -- the template ----------------------------------------------------------------------------
    def _fit(self, data, sensitive_features=None, validation_data=None):
        self._check_params(data)
        rng = check_random_state(self.random_state)
        gen = make_generator(rng, self.device_)
        if self.early_stopping:
            train, rows, val = self._split_validation(data, validation_data, rng)
        else:
            train, rows, val = data.matrix, np.arange(data.matrix.shape[0]), None
        self._tr, self._train_rows = _TrainingState(), rows
        try:
            n_units = int(self._init_model(train, data, sensitive_features, rng, gen))
            stopper = _EarlyStopping(self.n_iter_no_change) if val is not None else None
            self._run_epochs(n_units, gen, val, stopper)
            best = _finish_early_stopping(self, stopper)
            if best is not None:
                self._restore(best)
            self._finish_fit()
        finally:
            self.__dict__.pop("_tr", None)
            self.__dict__.pop("_train_rows", None)
        return self

    def _run_epochs(self, n_units, gen, val, stopper):
        dev = self.device_
        bs = min(self._batch(), n_units)
        self.history_, self.n_steps_ = [], 0
        if stopper is not None:  # the model before training is a candidate too
            score = self._score_validation(val)
            if self._selectable(0):
                stopper.update(score, 0, self._snapshot)
            self.history_.append({"epoch": 0, "seconds": 0.0,
                                  f"val_{self.validation_metric}": score})
        epochs = tqdm(range(self.max_iter), disable=not self.verbose, desc=type(self).__name__)
        # on the CPU, torch's threads are held to the idle CPUs (re-read at most once a second):
        # beside a busy process, threads that wait for each other stall an epoch many times over
        threads = TorchThreadCap(dev)
        try:
            for epoch in epochs:
                t0 = time.perf_counter()
                threads.update()
                self._start_epoch(epoch)
                order = (torch.randperm(n_units, generator=gen, device=dev) if self._shuffle
                         else torch.arange(n_units, device=dev))
                sums, counts = self._train_batches(order, bs)
                keys = list(sums)
                # epoch means divided in the losses' dtype, on the device (one read-back)
                values = (torch.stack([(sums[k] / counts[k]).double() for k in keys]).tolist()
                          if keys else [])
                record = {"epoch": epoch + 1}
                record.update(zip(keys, values))
                bad = [k for k in keys if not np.isfinite(record[k])]
                if bad:
                    raise FloatingPointError(
                        f"{type(self).__name__}: the training loss {bad[0]!r} became "
                        f"{record[bad[0]]} at epoch {epoch + 1}. Lower learning_rate (now "
                        f"{getattr(self, 'learning_rate', 'n/a')}), strengthen the "
                        "regularisation or use dtype='float64'.")
                self._end_epoch(record)
                record["seconds"] = time.perf_counter() - t0
                stop = False
                if stopper is not None:
                    score = self._score_validation(val)
                    record[f"val_{self.validation_metric}"] = score
                    if self._selectable(epoch + 1):
                        stop = stopper.update(score, epoch + 1, self._snapshot)
                self.history_.append(record)
                if self.verbose:
                    epochs.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                                        if k not in ("epoch", "seconds")
                                        and isinstance(v, float)})
                if stop:
                    break
        except KeyboardInterrupt:
            done = sum(1 for h in self.history_ if h["epoch"] > 0)
            if done == 0 and stopper is None:
                raise
            warn(
                f"{type(self).__name__}: training interrupted after {done} complete epoch(s); "
                + ("the best validated state is kept." if stopper is not None else
                   "the model keeps its parameters at the interruption."),
                UserWarning)
        finally:
            threads.restore()
        self.n_iter_ = sum(1 for h in self.history_ if h["epoch"] > 0)

    def _train_batches(self, order, batch_size):
        """The steps of one epoch: ``_train_step`` on the consecutive batches of ``order``.

        Returns ``(sums, counts)``: per loss key, the sum over the steps of the batch mean times
        the batch size (a tensor on the device) and the number of units. A family may run the
        epoch another way (e.g. in one native call) as long as it returns the same record.
        """
        sums, counts = {}, {}
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            losses = self._train_step(idx)
            self.n_steps_ += 1
            with torch.no_grad():
                for key, val_ in losses.items():
                    v = val_.detach() * len(idx)
                    sums[key] = sums[key] + v if key in sums else v
                    counts[key] = counts.get(key, 0) + len(idx)
        return sums, counts

    def _split_validation(self, data, validation_data, rng):
        """(training matrix, training users' row indices, validation data) by
        ``_validation_protocol``; a family with another protocol overrides this and
        :meth:`_score_validation` together."""
        if self._validation_protocol == "users":
            return _holdout_users(data.matrix, validation_data, self.validation_fraction, rng)
        return _holdout_interactions(self, data, validation_data, self.validation_fraction, rng)

    def _score_validation(self, val):
        """Mean ``validation_metric`` of the current model on the validation data (higher is
        better)."""
        self._prepare_validation()
        specs = [(self.validation_metric, *parse_metric(self.validation_metric))]
        with torch.no_grad():
            if self._validation_protocol == "users":
                v_in, v_out = val
                vals = self._evaluate_rows(v_in, None, v_out, specs)
            else:
                targets, seen = val
                users = np.flatnonzero(np.diff(targets.indptr) > 0)
                vals = self._evaluate_rows(None, users, targets[users], specs, seen=seen[users])
        return float(np.nanmean(vals[self.validation_metric]))

    def _check_early_stopping_params(self, n_items):
        """With early stopping on, check that ``validation_metric`` names a metric whose k fits
        the number of items."""
        if self.early_stopping:
            _, k = parse_metric(self.validation_metric)
            if k is not None and k > n_items:
                raise ValueError(f"validation_metric={self.validation_metric!r}: k is larger "
                                 f"than the number of items ({n_items}); use a smaller k or "
                                 "early_stopping=False.")

    _dense_limit_bytes = 1 << 30

    def _batch_source(self, X, device, dtype):
        """A function ``rows(idx)`` giving the dense training rows ``X[idx]`` on ``device`` for
        an index tensor on the device.

        Below ``_dense_limit_bytes`` (and half the device's free memory, estimated before
        allocating) the whole matrix is kept dense on the device, so a batch is one gather with
        no host work; above it, each batch is densified from the CSR.
        """
        itemsize = torch.finfo(dtype).bits // 8
        need = X.shape[0] * X.shape[1] * itemsize
        free = device_free_bytes(device) if need <= self._dense_limit_bytes else None
        if need <= self._dense_limit_bytes and (free is None or need <= free // 2):
            X_dev = dense_rows(X, slice(None), device, dtype)
            return lambda idx: X_dev[idx]
        return lambda idx: dense_rows(X, idx.cpu().numpy(), device, dtype)


def _finish_early_stopping(estimator, stopper):
    """After training: set ``best_epoch_`` (and ``best_validation_score_``, or drop a stale one)
    and return the best snapshot to restore, or None to keep the last model."""
    if stopper is not None and stopper.state is not None:
        estimator.best_epoch_ = stopper.epoch
        estimator.best_validation_score_ = stopper.best
        return stopper.state
    estimator.best_epoch_ = estimator.n_iter_
    estimator.__dict__.pop("best_validation_score_", None)  # from an earlier fit
    return None


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
