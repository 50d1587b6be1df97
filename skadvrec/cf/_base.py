"""The shared trainer of the embedding recommenders: BPR on sampled triples, on the device.

Every model of this family scores s(u, i) = e_uᵀ e_i with a final user embedding e_u and item
embedding e_i; the backbone says how they are built from the learned (ego) embeddings (MF: they
are the ego embeddings; LightGCN: the mean of the graph-propagated layers). Training minimises
the BPR loss on triples (u, i⁺, j⁻) drawn uniformly on the device each epoch, plus an L2 term on
the batch's ego embeddings, with AdamW; an optional adversarial term (APR, PamaCF) perturbs the
batch's final embeddings along the normalised gradient of the BPR loss with a per-triple
magnitude given by a *magnitude rule* (:mod:`skadvrec.cf.adversarial`).

Users are known by their training rows: the table form scores fitted users with their learned
vectors (the LightGCN / PamaCF protocol); the matrix form treats each row as a user to fold in,
by ridge regression of the row onto the final item embeddings, with the items frozen.
"""

from __future__ import annotations

import numbers
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, check_scalar, metadata_routing
from tqdm.auto import tqdm

from .._torch import adam_options, make_generator
from ..base import (IterativeRecommender, _EarlyStopping, _finish_early_stopping,
                    check_interactions)
from ..metrics.ranking import parse_metric
from ..model_selection import fold_in_split

__all__ = ["sample_bpr_triples"]


def _pair_keys(indptr, indices, n_items):
    """Sorted keys ``u * n_items + i`` of the CSR matrix's pairs (rows sorted by column)."""
    deg = indptr[1:] - indptr[:-1]
    rows = torch.repeat_interleave(torch.arange(len(deg), device=indptr.device), deg)
    return rows * n_items + indices


def sample_bpr_triples(indptr, indices, n_items, n_samples, generator, active_users=None,
                       keys=None):
    """Draw ``n_samples`` BPR triples (u, i⁺, j⁻) on the device of ``indptr``.

    The user is uniform over ``active_users`` (users with at least one training item and at
    least one item they have not interacted with), the positive is uniform over the user's
    training items and the negative uniform over the items the user has not interacted with
    (rejection sampling, vectorised; each round redraws only the rejected negatives).

    Parameters
    ----------
    indptr, indices : LongTensor
        The CSR structure of the training matrix (column indices sorted within each row).
    n_items : int
    n_samples : int
    generator : torch.Generator
        On the same device as ``indptr``.
    active_users : LongTensor, default=None
        Users to draw from; by default every user with a training item and a non-item.
    keys : LongTensor, default=None
        The sorted pair keys ``u * n_items + i`` used for the negatives' membership test;
        computed from the CSR structure when None (a trainer computes them once).

    Returns
    -------
    users, pos, neg : LongTensor of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> indptr, indices = torch.tensor([0, 2, 3]), torch.tensor([0, 2, 1])
    >>> g = torch.Generator().manual_seed(0)
    >>> u, i, j = sample_bpr_triples(indptr, indices, 4, 1000, g)
    >>> keys = set(zip([0, 0, 1], [0, 2, 1]))
    >>> all((a, b) in keys for a, b in zip(u.tolist(), i.tolist()))
    True
    >>> any((a, b) in keys for a, b in zip(u.tolist(), j.tolist()))
    False
    """
    dev = indptr.device
    deg = indptr[1:] - indptr[:-1]
    if active_users is None:
        active_users = torch.nonzero((deg > 0) & (deg < n_items)).squeeze(1)
    if len(active_users) == 0:
        raise ValueError("no user has both a training item and an item to use as a negative; "
                         "BPR needs users with 1 <= interactions < n_items.")
    pick = torch.randint(len(active_users), (n_samples,), generator=generator, device=dev)
    users = active_users[pick]
    off = (torch.rand(n_samples, generator=generator, device=dev) * deg[users]).long()
    off = torch.minimum(off, deg[users] - 1)
    pos = indices[indptr[users] + off]
    if keys is None:  # sorted pair keys, for membership tests by binary search
        keys = _pair_keys(indptr, indices, n_items)
    neg = torch.randint(n_items, (n_samples,), generator=generator, device=dev)
    todo = torch.arange(n_samples, device=dev)
    while True:
        k = users[todo] * n_items + neg[todo]
        at = torch.searchsorted(keys, k).clamp_(max=len(keys) - 1)
        bad = keys[at] == k
        if not bool(bad.any()):
            break
        todo = todo[bad]
        neg[todo] = torch.randint(n_items, (len(todo),), generator=generator, device=dev)
    return users, pos, neg


def _check_real(value, name, *, min_val=None, max_val=None, include_boundaries="both"):
    return check_scalar(value, name, numbers.Real, min_val=min_val, max_val=max_val,
                        include_boundaries=include_boundaries)


class _EmbeddingRecommender(IterativeRecommender):
    """Base of BPRMF, LightGCN, APR and PamaCF (parameters are defined by the subclasses).

    The backbone is ``self.backbone`` ("mf" when the estimator has no such parameter; LightGCN
    overrides ``_backbone_name``); the adversarial ones define ``_magnitude_rule()``; everything else (sampling, the training loop,
    validation, scoring, fold-in, transform) lives here once.
    """

    # sensitive_features play no part in these models: keep them out of metadata routing
    __metadata_request__fit = {"sensitive_features": metadata_routing.UNUSED}
    _default_score_k = 20

    # -- hooks -----------------------------------------------------------------------------------
    def _backbone_name(self):
        return getattr(self, "backbone", "mf")

    def _magnitude_rule(self):
        """None (no adversarial term) or an object from :mod:`skadvrec.cf.adversarial`."""
        return None

    def _check_adversarial_params(self):
        pass

    # -- parameters ------------------------------------------------------------------------------
    def _check_params(self, n_items):
        check_scalar(self.n_components, "n_components", numbers.Integral, min_val=1)
        _check_real(self.learning_rate, "learning_rate", min_val=0, include_boundaries="neither")
        _check_real(self.weight_decay, "weight_decay", min_val=0)
        _check_real(self.reg, "reg", min_val=0)
        _check_real(self.init_std, "init_std", min_val=0, include_boundaries="neither")
        _check_real(self.fold_in_l2, "fold_in_l2", min_val=0, include_boundaries="neither")
        if self._backbone_name() not in ("mf", "lightgcn"):
            raise ValueError(f"backbone must be 'mf' or 'lightgcn'; got {self._backbone_name()!r}.")
        if self._backbone_name() == "lightgcn":
            check_scalar(self.n_layers, "n_layers", numbers.Integral, min_val=0)
        self._check_early_stopping_params(n_items)
        self._check_adversarial_params()

    # -- validation data ---------------------------------------------------------------------
    def _cf_validation(self, X, rng):
        """(training matrix, validation targets) for early stopping.

        ``validation_data`` holds further interactions of the *training users* (a table naming
        fitted users, or a matrix shaped like X); without it, ``validation_fraction`` of each
        user's interactions (users with >= 2) are held out at random.
        """
        V = getattr(self, "_validation_data", None)
        if V is None:
            X_tr, X_val = fold_in_split(X, 1.0 - self.validation_fraction,
                                        random_state=rng.randint(2**31 - 1))
            return X_tr, X_val
        if isinstance(V, pd.DataFrame):
            if self.input_form_ != "table":
                raise ValueError("validation_data is a table but X is a matrix; pass a matrix "
                                 f"of shape {X.shape} (further interactions of X's users).")
            data, _ = check_interactions(V, item_ids=self.item_ids_,
                                         rating_threshold=getattr(self, "rating_threshold", None))
            idx, known = self._fitted_user_index(data.user_ids)
            if not known.all():
                raise ValueError(f"validation_data names {int((~known).sum())} user(s) not in X; "
                                 "it must hold further interactions of the training users.")
            coo = data.matrix.tocoo()
            M = sp.csr_matrix((coo.data, (idx[coo.row], coo.col)), shape=X.shape)
        else:
            if self.input_form_ == "table":
                raise ValueError("X is an interaction table; pass validation_data as a table of "
                                 "further interactions of the same users.")
            M = check_interactions(V)[0].matrix
            if M.shape != X.shape:
                raise ValueError(f"validation_data has shape {M.shape} but X has {X.shape}: for "
                                 "these models it holds further interactions of X's own users.")
        M = M - M.multiply(X > 0)
        M.eliminate_zeros()
        return X, sp.csr_matrix(M)

    # -- the model ---------------------------------------------------------------------------
    def _init_embeddings(self, n_users, n_items, gen, dev, dtype):
        d = int(self.n_components)
        std = float(self.init_std)
        U = torch.randn(n_users, d, generator=gen, device=dev, dtype=dtype) * std
        V = torch.randn(n_items, d, generator=gen, device=dev, dtype=dtype) * std
        return torch.nn.Parameter(U), torch.nn.Parameter(V)

    def _propagate(self, U, V):
        """Final (user, item) embeddings from the ego ones; identity for MF."""
        if self._backbone_name() == "mf" or self.n_layers == 0:
            return U, V
        from .lightgcn import propagate  # the LightGCN backbone

        return propagate(self._graph, U, V, int(self.n_layers))

    def _fit(self, X, sensitive_features=None):
        n_users, n_items = X.shape
        self._check_params(n_items)
        rng = check_random_state(self.random_state)
        dev, dtype = self.device_, self._torch_dtype()
        gen = make_generator(rng, dev)
        if self.early_stopping:
            X_tr, X_val = self._cf_validation(X, rng)
        else:
            X_tr, X_val = X, None
        X_tr = sp.csr_matrix(X_tr)
        X_tr.sort_indices()
        indptr = torch.from_numpy(X_tr.indptr.astype(np.int64)).to(dev)
        indices = torch.from_numpy(X_tr.indices.astype(np.int64)).to(dev)
        if self._backbone_name() == "lightgcn":
            from .lightgcn import normalized_graph

            self._graph = normalized_graph(X_tr, dev, dtype)
        U, V = self._init_embeddings(n_users, n_items, gen, dev, dtype)
        opt_kw = adam_options(dev)
        opt = torch.optim.AdamW([U, V], lr=self.learning_rate, weight_decay=self.weight_decay,
                                **opt_kw)
        rule = self._magnitude_rule()
        n_pre = int(getattr(self, "n_pretrain_epochs", 0))
        adv_weight = float(getattr(self, "adv_weight", 0.0))
        n_samples = int(X_tr.nnz)
        bs = min(self._batch(), n_samples)
        reg = float(self.reg)
        stopper = _EarlyStopping(self.n_iter_no_change) if self.early_stopping else None
        self.history_ = []
        self.n_steps_ = 0
        deg = indptr[1:] - indptr[:-1]
        active = torch.nonzero((deg > 0) & (deg < n_items)).squeeze(1)
        keys = _pair_keys(indptr, indices, n_items)

        def snapshot():
            return U.detach().clone(), V.detach().clone()

        epochs = tqdm(range(self.max_iter), disable=not self.verbose, desc=type(self).__name__)
        for epoch in epochs:
            t0 = time.perf_counter()
            users, pos, neg = sample_bpr_triples(indptr, indices, n_items, n_samples, gen, active,
                                                 keys)
            adversarial = rule is not None and epoch >= n_pre and adv_weight > 0
            acc = torch.zeros(3, device=dev, dtype=dtype)
            for start in range(0, n_samples, bs):
                u, i, j = users[start:start + bs], pos[start:start + bs], neg[start:start + bs]
                Uf, Vf = self._propagate(U, V)
                eu, ei, ej = Uf[u], Vf[i], Vf[j]
                bpr = F.softplus((eu * ej).sum(1) - (eu * ei).sum(1)).mean()
                l2 = (U[u].square().sum(1) + V[i].square().sum(1) + V[j].square().sum(1)).mean()
                loss = bpr + reg * l2
                adv = torch.zeros((), device=dev, dtype=dtype)
                if adversarial:
                    gu, gi, gj = torch.autograd.grad(bpr, (eu, ei, ej), retain_graph=True)
                    c = rule.coefficients(eu.detach(), u, Uf.detach()).unsqueeze(1)
                    du, di, dj = (c * F.normalize(g, dim=1) for g in (gu, gi, gj))
                    pu = eu + du
                    adv = F.softplus((pu * (ej + dj)).sum(1) - (pu * (ei + di)).sum(1)).mean()
                    loss = loss + adv_weight * adv
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    acc += torch.stack([loss.detach(), bpr.detach(), adv.detach()]) * len(u)
                self.n_steps_ += 1
            vals = (acc / n_samples).tolist()  # the epoch's one read-back
            record = {"epoch": epoch + 1, "loss": vals[0], "bpr": vals[1],
                      "adversarial": vals[2] if adversarial else None,
                      "seconds": time.perf_counter() - t0}
            stop = False
            if stopper is not None:
                self._set_factors(U, V, X_tr)
                score = self._known_user_score(X_val, X_tr)
                record[f"val_{self.validation_metric}"] = score
                stop = stopper.update(score, epoch + 1, snapshot)
            self.history_.append(record)
            if stop:
                break
        best = _finish_early_stopping(self, stopper)
        if best is not None:
            with torch.no_grad():
                U.copy_(best[0])
                V.copy_(best[1])
        self.n_iter_ = len(self.history_)
        last = self.history_[-1]
        if last["adversarial"] is not None and last["bpr"] > 0.99 * np.log(2.0):
            warnings.warn(
                f"the adversarial term collapsed the embeddings (BPR loss {last['bpr']:.4f} ~ "
                "log 2: every score is ~0). The perturbation is too large for the embedding "
                "norms reached after pre-training; lower rho / eps or adv_weight, or raise "
                "n_pretrain_epochs.", ConvergenceWarning, stacklevel=3)
        self._set_factors(U, V, X_tr)
        self.__dict__.pop("_graph", None)

    def _set_factors(self, U, V, X_tr):
        """Store the final embeddings and the fold-in projection from the current ego ones."""
        with torch.no_grad():
            Uf, Vf = self._propagate(U.detach(), V.detach())
            self.user_embeddings_ = Uf.clone()
            self.item_embeddings_ = Vf.clone()
            d = Vf.shape[1]
            gram = Vf.T @ Vf + float(self.fold_in_l2) * torch.eye(d, device=Vf.device,
                                                                  dtype=Vf.dtype)
            # fold-in: u(x) = (VᵀV + αI)⁻¹ Vᵀ x, i.e. x @ P with P = V (VᵀV + αI)⁻¹
            self.fold_in_projection_ = torch.linalg.solve(gram, Vf.T).T.contiguous()

    def _known_user_score(self, targets, X_tr):
        """Mean validation metric of the fitted users with targets (``X_tr`` items masked)."""
        users = np.flatnonzero(np.diff(targets.indptr) > 0)
        specs = [(self.validation_metric, *parse_metric(self.validation_metric))]
        saved = self.train_matrix_
        try:  # mask the items actually trained on, not the validation ones
            self.train_matrix_ = X_tr
            with torch.no_grad():
                vals = self._evaluate_rows(None, users, targets[users], specs)
        finally:
            self.train_matrix_ = saved
        return float(np.nanmean(vals[self.validation_metric]))

    # -- scoring -----------------------------------------------------------------------------
    def _scores_from_users(self, user_idx):
        idx = torch.as_tensor(np.asarray(user_idx), device=self.device_)
        return self.user_embeddings_[idx] @ self.item_embeddings_.T

    def _transform_users(self, user_idx):
        idx = torch.as_tensor(np.asarray(user_idx), device=self.device_)
        return self.user_embeddings_[idx]

    def _transform_rows(self, X_rows):
        return X_rows @ self.fold_in_projection_

    def _scores_from_rows(self, X_rows):
        return self._transform_rows(X_rows) @ self.item_embeddings_.T

    def fit(self, X, y=None, *, sensitive_features=None, validation_data=None):
        """Fit the model by BPR (plus the adversarial term, for APR and PamaCF).

        Parameters
        ----------
        X : DataFrame, sparse matrix of shape (n_users, n_items), or ndarray
            An interaction table (columns ``user``, ``item``, optional ``rating``) or a
            user × item matrix (rows are users).
        y : None
            Ignored.
        sensitive_features : ignored
            Present for API consistency; unused and not requested by metadata routing.
        validation_data : DataFrame or sparse matrix, default=None
            With ``early_stopping=True``: further interactions of the *training* users (a table
            naming fitted users, or a matrix shaped like X), ranked with the training items
            masked. When None, ``validation_fraction`` of each user's interactions are held out.

        Returns
        -------
        self : object
        """
        return super().fit(X, y, sensitive_features=sensitive_features,
                           validation_data=validation_data)


# numpydoc entries shared by the estimators of this family (filled into their docstrings)
_TRAINING_PARAMS = """\
    learning_rate : float, default=1e-3
        AdamW step size.
    weight_decay : float, default={weight_decay}
        AdamW's decoupled weight decay ({weight_decay_note}).
    reg : float, default=1e-4
        Weight of the L2 term mean(‖u⁰‖² + ‖i⁰‖² + ‖j⁰‖²) on the batch's ego embeddings.
    init_std : float, default=0.1
        Ego embeddings start as N(0, init_std²).
    batch_size : int, default=2048
        Triples per step (one epoch = as many triples as training interactions); also users
        per scoring batch.
    max_iter : int, default={max_iter}
        Epochs.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of each user's interactions (or use ``validation_data``
        of ``fit``), evaluate ``validation_metric`` after each epoch with the training items
        masked, stop after ``n_iter_no_change`` epochs without improvement and keep the best
        embeddings. Off by default: the reference code trains a fixed number of epochs.
    n_iter_no_change : int, default=10
    validation_fraction : float, default=0.1
    validation_metric : str, default="recall@20"
    fold_in_l2 : float, default=1.0
        Ridge penalty α of the fold-in of new users (matrix form), see Notes.
    dtype : {{"float32", "float64"}}, default="float32"
    device : str, default="auto"
        "auto" (CUDA if available), "cpu", "cuda" or "cuda:<i>".
    rating_threshold : float or None, default=None
        Table form: rows with a lower ``rating`` are not positives (None keeps every row).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the triple sampling and the validation split (torch
        generators on the device; global RNGs are left alone).
    verbose : bool, default=False
        Show a tqdm bar over epochs."""

# the PamaCF code's MF training settings: the defaults of BPRMF, APR and PamaCF
_PAMACF_TRAINING_PARAMS = _TRAINING_PARAMS.format(
    weight_decay=0.01, max_iter=30,
    weight_decay_note="PyTorch's AdamW default, as in the PamaCF code")

_ATTRIBUTES_AND_NOTES = """\
    Attributes
    ----------
    user_embeddings_ : Tensor of shape (n_users, n_components)
        Final user embeddings of the fitted users (propagated, for LightGCN).
    item_embeddings_ : Tensor of shape (n_items, n_components)
    fold_in_projection_ : Tensor of shape (n_items, n_components)
        P = V (VᵀV + αI)⁻¹: a new user's vector is x P.
    history_ : list of dict
        Per epoch: ``loss`` (total), ``bpr``, ``adversarial`` (None before it is switched on or
        for models without it), ``seconds`` and, with early stopping, ``val_<metric>``.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose embeddings are kept.
    n_steps_ : int
        Parameter updates made.

    Notes
    -----
    With an interaction table (the LightGCN / PamaCF protocol: ``fit(train_df)``,
    ``evaluate(test_df, ["recall_all@20", "ndcg@20"])``) every fitted user is scored by their
    learned embedding. A user × item matrix given to ``predict`` / ``evaluate`` / ``transform`` is
    read as *new* users: each row x is folded in as u(x) = (VᵀV + αI)⁻¹ Vᵀ x with the final item
    embeddings V frozen (the least-squares user vector of implicit's ``recalculate_user``).
    ``transform`` returns the final user embeddings, the representation a leakage audit
    attacks."""
