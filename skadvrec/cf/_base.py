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

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import metadata_routing

from .._params import ITERATIVE_CONSTRAINTS, NON_NEGATIVE_REAL, POSITIVE_INT, POSITIVE_REAL
from .._sampling import TripleSampler
from .._torch import RowAdamW, adam_options, ridge_fold_in
from .._warnings import warn
from ..base import IterativeRecommender
from . import _kernel
from ._backbones import MFBackbone

# the parameters every estimator of the family declares (each adds its own)
EMBEDDING_CONSTRAINTS = {
    **ITERATIVE_CONSTRAINTS,
    "n_components": POSITIVE_INT,
    "learning_rate": POSITIVE_REAL,
    "weight_decay": NON_NEGATIVE_REAL,
    "reg": NON_NEGATIVE_REAL,
    "init_std": POSITIVE_REAL,
    "fold_in_l2": POSITIVE_REAL,
}


class Adversary(NamedTuple):
    """The adversarial term of APR / PamaCF: who sets the perturbation size, its weight, and
    the epochs of plain BPR before it is switched on."""

    rule: object  # .coefficients(eu, users, U_all) -> per-triple magnitude
    weight: float
    n_pretrain_epochs: int


class _EmbeddingRecommender(IterativeRecommender):
    """Base of BPRMF, LightGCN, APR and PamaCF: the hooks of the training-loop template.

    A subclass says which backbone it trains (``_backbone()``, MF by default) and, for the
    adversarial ones, its adversary (``_adversary()``); everything else (sampling, the step,
    validation, scoring, fold-in, transform) lives here once. The epoch loop, batching, early
    stopping and history are :class:`~skadvrec.base.IterativeRecommender`'s.
    """

    # sensitive_features play no part in these models: keep them out of metadata routing
    __metadata_request__fit = {"sensitive_features": metadata_routing.UNUSED}
    _default_score_k = 20
    _parameter_constraints = EMBEDDING_CONSTRAINTS
    # a vector per user: validate on held-out interactions of the training users
    _validation_protocol = "interactions"
    # each epoch's triples are i.i.d. draws already: take them in order (no extra permutation)
    _shuffle = False
    # row-sparse training for the MF backbone (False: dense AdamW with autograd, the reference
    # the sparse path is tested against; a private switch, not a parameter)
    _sparse_updates = True
    # the native (C) form of the row-sparse step where it applies (False: the torch form, the
    # reference the kernel is tested against; SKADVREC_NATIVE=0 switches it off globally)
    _native_step_allowed = True

    # -- what the subclasses choose ----------------------------------------------------------
    def _backbone(self):
        """A fresh backbone object (see :mod:`skadvrec.cf._backbones`)."""
        return MFBackbone()

    def _adversary(self):
        """None (plain BPR) or an :class:`Adversary`."""
        return None

    # -- the template's hooks ----------------------------------------------------------------
    def _init_model(self, train, data, sensitive_features, rng, gen):
        tr, dev, dtype = self._tr, self.device_, self._torch_dtype()
        if not train.has_sorted_indices:
            train = train.sorted_indices()
        tr.backbone = self._backbone().prepare(train, dev, dtype)
        d, std = int(self.n_components), float(self.init_std)
        U = torch.randn(train.shape[0], d, generator=gen, device=dev, dtype=dtype) * std
        V = torch.randn(train.shape[1], d, generator=gen, device=dev, dtype=dtype) * std
        # row-sparse updates where the final embeddings are the ego ones (MF): a step reads and
        # updates only the rows of its batch. Graph propagation (LightGCN) spreads every
        # gradient over the whole tables: there the dense fused AdamW is the right tool.
        tr.sparse = bool(self._sparse_updates and tr.backbone.is_identity)
        if tr.sparse:  # users and items in one table: one gather and one scatter a step
            tr.row_opt = RowAdamW(torch.cat([U, V]), lr=self.learning_rate,
                                  weight_decay=self.weight_decay)
            tr.n_users = U.shape[0]
            tr.U, tr.V = tr.row_opt.table[:tr.n_users], tr.row_opt.table[tr.n_users:]
        else:
            tr.U, tr.V = torch.nn.Parameter(U), torch.nn.Parameter(V)
            tr.opt = torch.optim.AdamW([tr.U, tr.V], lr=self.learning_rate,
                                       weight_decay=self.weight_decay, **adam_options(dev))
        tr.sampler, tr.gen, tr.n = TripleSampler(train, dev), gen, int(train.nnz)
        tr.adversary, tr.adversarial = self._adversary(), False
        # the whole row-sparse step as one C function (float32 on the CPU; None: torch step)
        tr.native = None
        if tr.sparse and self._native_step_allowed:
            adv = tr.adversary
            rule = (0, 0.0, 0.0) if adv is None else (
                (*adv.rule.native_args(), adv.weight) if hasattr(adv.rule, "native_args")
                else None)
            tr.native = _kernel.NativeStep.create(tr.row_opt, tr.n_users, rule)
        if tr.native is not None:  # and the sampler's passes over the draws (the same draws)
            tr.sampler.reject = _kernel.NativeReject.create(tr.sampler, tr.native.lib)
            tr.sampler.draw = _kernel.NativeTriples.create(tr.sampler, tr.native.lib)
        return tr.n  # one epoch = as many triples as training interactions

    def _start_epoch(self, epoch):
        tr = self._tr
        tr.triples = tr.sampler.sample(tr.n, tr.gen)
        adv = tr.adversary
        tr.adversarial = adv is not None and epoch >= adv.n_pretrain_epochs and adv.weight > 0

    def _train_batches(self, order, batch_size):
        """With the native step, the whole epoch in one call (the triples are already in
        random order, so the batches are consecutive slices of them); the same updates and the
        same record as the step-by-step loop."""
        tr = self._tr
        if tr.native is None or self._shuffle:
            return super()._train_batches(order, batch_size)
        steps, sums = tr.native.epoch(*tr.triples, batch_size, float(self.reg), tr.adversarial)
        self.n_steps_ += steps
        n = int(tr.triples[0].numel())
        return sums, dict.fromkeys(sums, n)

    def _train_step(self, idx):
        if self._tr.native is not None:
            return self._native_step(idx)
        if self._tr.sparse:
            return self._sparse_step(idx)
        return self._dense_step(idx)

    def _native_step(self, idx):
        """:meth:`_sparse_step` as one call of the native kernel (:mod:`._kernel`)."""
        tr = self._tr
        u, i, j = (t[idx] for t in tr.triples)
        reg = float(self.reg)
        bpr, adv, l2 = tr.native.step(u, i, j, reg, tr.adversarial)
        loss = bpr + reg * l2
        if adv is None:
            vals = torch.tensor([loss, bpr], dtype=tr.row_opt.state.dtype)
            return {"loss": vals[0], "bpr": vals[1]}
        loss = loss + tr.adversary.weight * adv
        vals = torch.tensor([loss, bpr, adv], dtype=tr.row_opt.state.dtype)
        return {"loss": vals[0], "bpr": vals[1], "adversarial": vals[2]}

    def _sparse_step(self, idx):
        """One step on the rows of the batch only, with the gradients in closed form.

        With s(u, i) = e_uᵀe_i, x = s(u, j) − s(u, i) and σ the logistic function, the batch
        mean of softplus(x) has the per-triple gradients σ(x)(e_j − e_i)/B, −σ(x)e_u/B and
        σ(x)e_u/B; the L2 term adds 2·reg·e/B for each occurrence. Each table is read once (the
        unique rows of the batch), the occurrences' gradients are summed per unique row and the
        row-sparse AdamW updates those rows alone. The adversarial term treats the perturbation
        as a constant, as the autograd path does (``torch.autograd.grad`` without a graph).
        """
        tr = self._tr
        u, i, j = (t[idx] for t in tr.triples)
        B, reg = len(u), float(self.reg)
        # users then items in the one table of the optimiser
        rows, inv = torch.unique(torch.cat([u, i + tr.n_users, j + tr.n_users]),
                                 return_inverse=True)
        E = tr.row_opt.fetch(rows)
        e = E[inv]
        eu, eij = e[:B], e[B:]
        ei, ej = eij[:B], eij[B:]
        diff = ej - ei
        x = (eu * diff).sum(1)
        bpr = F.softplus(x).mean()
        l2 = e.square().sum() / B
        sig = torch.sigmoid(x).unsqueeze(1) / B
        g = torch.cat([sig * diff, -sig * eu, sig * eu])
        out = {"bpr": bpr}
        loss = bpr + reg * l2
        if tr.adversarial:
            rule, weight = tr.adversary.rule, tr.adversary.weight
            U_all = (tr.row_opt.current()[:tr.n_users]
                     if getattr(rule, "needs_all_users", False) else None)
            c = rule.coefficients(eu, u, U_all).unsqueeze(1)
            pe = e + c.repeat(3, 1) * F.normalize(g, dim=1)
            pu, pi, pj = pe[:B], pe[B:2 * B], pe[2 * B:]
            pdiff = pj - pi
            xa = (pu * pdiff).sum(1)
            adv = F.softplus(xa).mean()
            sa = torch.sigmoid(xa).unsqueeze(1) * (weight / B)
            g = g + torch.cat([sa * pdiff, -sa * pu, sa * pu])
            loss = loss + weight * adv
            out["adversarial"] = adv
        if reg:
            g = g.add_(e, alpha=2.0 * reg / B)
        grad = torch.zeros_like(E).index_add_(0, inv, g)
        tr.row_opt.step(rows, E, grad)
        return {"loss": loss, **out}

    def _dense_step(self, idx):
        """One step with autograd and dense AdamW (LightGCN; the reference for the sparse path).

        One lookup per final table (the items of i and j together); the L2 term's gradient is
        added to the dense gradients after the backward pass (no second lookup through autograd).
        """
        tr = self._tr
        u, i, j = (t[idx] for t in tr.triples)
        B, reg = len(u), float(self.reg)
        Uf, Vf = tr.backbone.propagate(tr.U, tr.V)
        eu, eij = Uf[u], Vf[torch.cat([i, j])]
        ei, ej = eij[:B], eij[B:]
        bpr = F.softplus((eu * ej).sum(1) - (eu * ei).sum(1)).mean()
        with torch.no_grad():
            Ub, Vb = tr.U[u], tr.V[torch.cat([i, j])]
            l2 = Ub.square().sum(1).mean() + Vb.square().sum(1).sum() / B
        loss = bpr
        out = {"bpr": bpr}
        if tr.adversarial:  # BPR under the worst-case perturbation of the final embeddings
            rule, weight = tr.adversary.rule, tr.adversary.weight
            gu, gi, gj = torch.autograd.grad(bpr, (eu, ei, ej), retain_graph=True)
            c = rule.coefficients(eu.detach(), u, Uf.detach()).unsqueeze(1)
            du, di, dj = (c * F.normalize(g, dim=1) for g in (gu, gi, gj))
            pu = eu + du
            adv = F.softplus((pu * (ej + dj)).sum(1) - (pu * (ei + di)).sum(1)).mean()
            loss = loss + weight * adv
            out["adversarial"] = adv
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        if reg:
            with torch.no_grad():
                tr.U.grad.index_add_(0, u, Ub, alpha=2.0 * reg / B)
                tr.V.grad.index_add_(0, torch.cat([i, j]), Vb, alpha=2.0 * reg / B)
        tr.opt.step()
        return {"loss": loss.detach() + reg * l2, **out}

    def _end_epoch(self, record):
        record.setdefault("adversarial", None)  # before it is switched on, or never
        self._flush()

    def _flush(self):
        """Bring the lazy weight decay of the row-sparse optimiser up to date (sparse path)."""
        tr = self._tr
        if tr.native is not None:
            tr.native.flush()
        elif tr.sparse:
            tr.row_opt.flush()

    def _snapshot(self):
        self._flush()
        return self._tr.U.detach().clone(), self._tr.V.detach().clone()

    def _restore(self, state):
        self._flush()
        with torch.no_grad():
            self._tr.U.copy_(state[0])
            self._tr.V.copy_(state[1])

    def _prepare_validation(self):
        self._set_factors(fold_in=False)

    def _finish_fit(self):
        self._set_factors()
        last = self.history_[-1] if self.history_ else {}
        if last.get("adversarial") is not None and last["bpr"] > 0.99 * np.log(2.0):
            warn(
                f"the adversarial term collapsed the embeddings (BPR loss {last['bpr']:.4f} ~ "
                "log 2: every score is ~0). The perturbation is too large for the embedding "
                "norms reached after pre-training; lower rho / eps or adv_weight, or raise "
                "n_pretrain_epochs.", ConvergenceWarning)

    def _set_factors(self, fold_in=True):
        """Store the final embeddings (and the fold-in projection) from the current ego ones."""
        tr = self._tr
        self._flush()
        with torch.no_grad():
            Uf, Vf = tr.backbone.propagate(tr.U.detach(), tr.V.detach())
            self.user_embeddings_ = Uf.clone(memory_format=torch.contiguous_format)
            self.item_embeddings_ = Vf.clone(memory_format=torch.contiguous_format)
            if fold_in:  # u(x) = (VᵀV + αI)⁻¹ Vᵀ x = x @ P
                self.fold_in_projection_ = ridge_fold_in(Vf, self.fold_in_l2)

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
    learning_rate : float, default={learning_rate}
        AdamW step size{lr_note}. With the MF backbone (and LightGCN with ``n_layers=0``) a
        step reads and updates only the embedding rows of its batch (a row-sparse AdamW,
        :class:`skadvrec._torch.RowAdamW`); what dense AdamW would have done to a row during
        the steps it missed (weight decay exactly, the momentum movement in closed form) is
        caught up when it is next read and at the end of each epoch. Graph propagation
        touches every row, so LightGCN trains with dense (fused) AdamW. On the CPU in float32
        the row-sparse step runs as one C function, compiled at first use with the system C
        compiler and cached (the torch form where there is none; ``SKADVREC_NATIVE=0`` keeps
        the torch form).
    weight_decay : float, default={weight_decay}
        AdamW's decoupled weight decay ({weight_decay_note}).
    reg : float, default=1e-4
        Weight of the L2 term mean(‖u⁰‖² + ‖i⁰‖² + ‖j⁰‖²) on the batch's ego embeddings.
    init_std : float, default={init_std}
        Ego embeddings start as N(0, init_std²){init_note}.
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

# the PamaCF code's MF training settings: the defaults of APR and PamaCF
_PAMACF_TRAINING_PARAMS = _TRAINING_PARAMS.format(
    weight_decay=0.01, max_iter=30, learning_rate="1e-3", lr_note=" (the PamaCF code)",
    init_std=0.1, init_note=", the PamaCF code's initialisation",
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
        Per epoch: ``epoch``, ``loss`` (total, mean per triple), ``bpr``, ``adversarial`` (None
        before it is switched on or for models without it), ``seconds`` and, with early
        stopping, ``val_<metric>``; with early stopping the first entry (``epoch=0``) scores
        the model before training.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose embeddings are kept (0: the initial ones).
    best_validation_score_ : float
        With early stopping: the validation score of ``best_epoch_``.
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
