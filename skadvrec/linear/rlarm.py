"""Adversarially reweighted EASE: ARM, R-LARM and R-LARM(NN).

Shivaswamy & Garcia-Garcia, "Adversary or Friend? An adversarial Approach to Improving
Recommender Systems", RecSys 2022. A learner W (items × items, zero diagonal) minimises a
user-weighted squared reconstruction loss while an adversary, a function of the user's
interaction row, chooses the user weights to maximise either the same loss (ARM) or the users'
ranking loss 1 − NDCG@k (R-LARM). Weights are σ(g(x_i)) normalised over each mini-batch.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .._params import (ITERATIVE_CONSTRAINTS, NON_NEGATIVE_INT, NON_NEGATIVE_REAL, POSITIVE_INT,
                       POSITIVE_REAL, StrOptions)
from .._torch import adam_options, check_device_memory, dense_rows, iter_row_batches
from ..base import IterativeRecommender
from ..metrics import batch_metrics
from .ease import ease_closed_form

__all__ = ["ARM", "RLARM"]


class _Adversary(torch.nn.Module):
    """g(x): linear ``x·a`` or one hidden tanh layer ``tanh(x A0) A1`` (R-LARM(NN))."""

    def __init__(self, n_items, kind, hidden_size, generator, device, dtype, uniform_start):
        super().__init__()
        self.kind = kind
        if kind == "linear":
            std = (2.0 / (n_items + 1)) ** 0.5
            self.a = torch.nn.Parameter(
                torch.randn(n_items, 1, generator=generator, device=device, dtype=dtype) * std)
        else:
            std0 = (2.0 / (n_items + hidden_size)) ** 0.5
            std1 = (2.0 / (hidden_size + 1)) ** 0.5
            self.A0 = torch.nn.Parameter(torch.randn(n_items, hidden_size, generator=generator,
                                                     device=device, dtype=dtype) * std0)
            self.A1 = torch.nn.Parameter(torch.randn(hidden_size, 1, generator=generator,
                                                     device=device, dtype=dtype) * std1)
        if uniform_start:  # a zero output layer: every user starts with the same weight
            with torch.no_grad():
                (self.a if kind == "linear" else self.A1).zero_()

    def forward(self, X):
        if self.kind == "linear":
            return (X @ self.a).squeeze(1)
        return (torch.tanh(X @ self.A0) @ self.A1).squeeze(1)

    def sq_norm(self):
        return sum((p * p).sum() for p in self.parameters())


class _AdversarialEASE(IterativeRecommender):
    """Shared training loop of ARM and R-LARM (the adversary's objective is the difference)."""

    _adversary_objective = None  # "squared" (ARM) or "ndcg" (R-LARM)

    def __init__(self, *, l2=500.0, adversary_l2=1000.0, adversary="linear", hidden_size=8,
                 ndcg_k=100, warmup_epochs=1, learning_rate=5e-5, adversary_learning_rate=None,
                 learner="adam", init="ease", batch_size=1024, max_iter=100,
                 early_stopping=True, n_iter_no_change=5, validation_fraction=0.1,
                 validation_metric="ndcg@100", dtype="float32", device="auto",
                 rating_threshold=4.0, random_state=None, verbose=False):
        self.l2 = l2
        self.adversary_l2 = adversary_l2
        self.adversary = adversary
        self.hidden_size = hidden_size
        self.ndcg_k = ndcg_k
        self.warmup_epochs = warmup_epochs
        self.learning_rate = learning_rate
        self.adversary_learning_rate = adversary_learning_rate
        self.learner = learner
        self.init = init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.validation_metric = validation_metric
        self.dtype = dtype
        self.device = device
        self.rating_threshold = rating_threshold
        self.random_state = random_state
        self.verbose = verbose

    # -- validation ------------------------------------------------------------------------
    _parameter_constraints = {
        **ITERATIVE_CONSTRAINTS,
        "l2": POSITIVE_REAL,
        "adversary_l2": NON_NEGATIVE_REAL,
        "adversary": [StrOptions({"linear", "mlp"})],
        "hidden_size": POSITIVE_INT,
        "ndcg_k": POSITIVE_INT,
        "warmup_epochs": NON_NEGATIVE_INT,
        "learning_rate": POSITIVE_REAL,
        "adversary_learning_rate": [*POSITIVE_REAL, None],
        "learner": [StrOptions({"adam", "closed_form"})],
        "init": [StrOptions({"ease", "random"})],
    }

    def _check_params(self, data):
        n_items = data.matrix.shape[1]
        if self.ndcg_k > n_items:
            raise ValueError(f"ndcg_k={self.ndcg_k} is larger than the number of items "
                             f"({n_items}).")
        super()._check_params(data)

    # -- training: the hooks of the IterativeRecommender loop -------------------------------
    def _init_model(self, train, data, sensitive_features, rng, gen):
        n_items = train.shape[1]
        dev, dtype = self.device_, self._torch_dtype()
        closed = self.learner == "closed_form"
        # Adam: W, its gradient and the two moments, four n_items x n_items matrices; the
        # closed form keeps W only (ease_closed_form checks its own three)
        itemsize = torch.tensor([], dtype=dtype).element_size()
        check_device_memory(
            (1 if closed else 4) * n_items ** 2 * itemsize, dev,
            f"{type(self).__name__} on {n_items} items (the {n_items}x{n_items} weights, their "
            "gradient and Adam's two moments)",
            "Filter rare items (e.g. keep items with >= 5 interactions), use "
            "learner='closed_form' (no Adam state), or a device with more memory.")
        if self.init == "ease" or closed:
            W0 = ease_closed_form(train, self.l2, device=dev, dtype=dtype)
        else:
            W0 = torch.randn(n_items, n_items, generator=gen, device=dev, dtype=dtype)
            W0 *= (1.0 / n_items) ** 0.5
            W0.fill_diagonal_(0.0)
        tr = self._tr
        tr.W = torch.nn.Parameter(W0)
        tr.adv = _Adversary(n_items, self.adversary, self.hidden_size, gen, dev, dtype,
                            uniform_start=self.init == "ease" or closed)
        tr.opt_w = torch.optim.Adam([tr.W], lr=self.learning_rate, **adam_options(dev))
        lr_a = (self.learning_rate if self.adversary_learning_rate is None
                else self.adversary_learning_rate)
        tr.opt_a = torch.optim.Adam(tr.adv.parameters(), lr=lr_a, **adam_options(dev))
        tr.reg = self.l2 / train.shape[0]
        tr.spec = [("ndcg", "ndcg", self.ndcg_k)]
        tr.rows = self._batch_source(train, dev, dtype)
        tr.train = train
        tr.adv_on = False
        self.coef_ = tr.W.data
        return train.shape[0]

    def _start_epoch(self, epoch):
        tr = self._tr
        tr.adv_on = epoch >= self.warmup_epochs
        if self.learner == "closed_form" and epoch > 0:
            # best response to the current weights: EASE on rows scaled by sqrt(weight)
            w = self._weights_of(tr.adv, tr.train)
            tr.W.data = ease_closed_form(tr.train, self.l2, row_weights=w, device=self.device_,
                                         dtype=self._torch_dtype())

    def _train_step(self, idx):
        tr, out = self._tr, {}
        xb = tr.rows(idx)
        if self.learner == "closed_form":
            with torch.no_grad():
                pred = xb @ tr.W
                loss_i = ((xb - pred) ** 2).sum(dim=1)
        else:
            pred = xb @ tr.W
            loss_i = ((xb - pred) ** 2).sum(dim=1)
            with torch.no_grad():
                sig = torch.sigmoid(tr.adv(xb))
                p = sig / sig.sum()
            learner = (p * loss_i).sum() + tr.reg * (tr.W * tr.W).sum()
            tr.opt_w.zero_grad(set_to_none=True)
            learner.backward()
            tr.opt_w.step()
            with torch.no_grad():
                tr.W.fill_diagonal_(0.0)
            out["learner_loss"] = learner
        if tr.adv_on:
            with torch.no_grad():
                if self._adversary_objective == "squared":
                    r = loss_i.detach()
                else:
                    ndcg = batch_metrics(pred.detach(), xb > 0, tr.spec)["ndcg"]
                    r = xb.shape[1] * torch.nan_to_num(1.0 - ndcg, nan=0.0)
            sig = torch.sigmoid(tr.adv(xb))
            obj = (sig / sig.sum() * r).sum() - 0.5 * self.adversary_l2 * tr.adv.sq_norm()
            tr.opt_a.zero_grad(set_to_none=True)
            (-obj).backward()
            tr.opt_a.step()
            out["adversary_objective"] = obj
        return out

    def _end_epoch(self, record):
        record.setdefault("learner_loss", float("nan"))
        record.setdefault("adversary_objective", float("nan"))

    def _prepare_validation(self):
        self.coef_ = self._tr.W.data

    def _snapshot(self):
        return self._tr.W.data.clone(), copy.deepcopy(self._tr.adv.state_dict())

    def _restore(self, state):
        self._tr.W.data = state[0]
        self._tr.adv.load_state_dict(state[1])

    def _finish_fit(self):
        self.coef_ = self._tr.W.data
        self.adversary_ = self._tr.adv.requires_grad_(False)

    def _scores_from_rows(self, X_rows):
        return X_rows @ self.coef_

    def _weights_of(self, adv, X):
        """σ(g(x_i)) over the rows of CSR ``X``, divided by its mean (numpy, float64)."""
        dtype = self._torch_dtype()
        out = []
        with torch.no_grad():
            for sl in iter_row_batches(X.shape[0], self._batch()):
                xb = dense_rows(X, sl, self.device_, dtype)
                out.append(torch.sigmoid(adv(xb)).cpu().numpy())
        w = np.concatenate(out).astype(np.float64)
        return w / w.mean()

    def adversary_weights(self, X):
        """The adversary's weight of each user of X, relative to the average user.

        Training normalises σ(g(x_i)) over each mini-batch; this returns σ(g(x_i)) divided by
        its mean over the rows of X, so 2.0 means "counts twice as much as the average user".

        Parameters
        ----------
        X : sparse matrix or DataFrame
            Users, as in :meth:`predict`.

        Returns
        -------
        ndarray of shape (n_users,)
        """
        rows, user_idx, _ = self._input(X)
        src = rows if rows is not None else self.train_matrix_[user_idx]
        return self._weights_of(self.adversary_, src)


_PARAMS_DOC = """
    Parameters
    ----------
    l2 : float, default=500.0
        Learner ridge penalty on Steck's scale (λ of EASE): the learner minimises
        ``Σ_i p_i ‖x_i − x_i W‖² + (l2 / m) ‖W‖²_F`` with p summing to one over each mini-batch
        of the m training users, so with uniform weights its optimum is EASE(l2).
    adversary_l2 : float, default=1000.0
        B, the penalty ``(B/2)‖A‖²`` on the adversary (larger = weights closer to uniform).
    adversary : {"linear", "mlp"}, default="linear"
        ``"linear"``: g(x) = x·a; ``"mlp"``: g(x) = tanh(x A0) A1 with ``hidden_size`` units
        (R-LARM(NN) of the paper).
    hidden_size : int, default=8
        Hidden units of the ``"mlp"`` adversary.
    ndcg_k : int, default=100
        Cut-off of the in-sample NDCG in R-LARM's adversary objective (unused by ARM).
    warmup_epochs : int, default=1
        Epochs K of learner-only training before the adversary moves.
    learning_rate : float, default=5e-5
        Adam learning rate of the learner, and of the adversary unless
        ``adversary_learning_rate`` is set (the paper's grid: 1e-5 … 1e-4, shared).
    adversary_learning_rate : float or None, default=None
        Separate Adam step size of the adversary. Small data sets give few mini-batches per
        epoch (ML-1M: ~5 against ~114 on ML-20M), so the adversary may need a larger one.
    learner : {"adam", "closed_form"}, default="adam"
        ``"adam"``: the paper's mini-batch Adam descent on W. ``"closed_form"``: at the start of
        every epoch W is set to its best response to the current adversary, the weighted EASE
        ``(Xᵀ diag(w) X + l2·I)⁻¹`` form with w = σ(g(x_i)) normalised to mean 1 over the
        training users; only the adversary is trained by gradient ascent (an extension, not in
        the paper: exact, and faster on small data).
    init : {"ease", "random"}, default="ease"
        ``"ease"``: W starts from the EASE closed form with the same ``l2`` and the adversary's
        output layer from zero, so training starts at the uniform-weight optimum and only the
        adversary moves it. ``"random"``: Glorot-normal W and adversary, as in the paper's code.
    batch_size : int, default=1024
        Users per mini-batch (whole rows, dense on the device); also the scoring batch.
    max_iter : int, default=100
        Maximum epochs.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the users (80/20 fold-in), evaluate
        ``validation_metric`` after each epoch, stop after ``n_iter_no_change`` epochs without
        improvement and keep the best epoch's model.
    n_iter_no_change : int, default=5
    validation_fraction : float, default=0.1
    validation_metric : str, default="ndcg@100"
    dtype : {"float32", "float64"}, default="float32"
    device : str, default="auto"
    rating_threshold : float or None, default=4.0
        Table form: rows with a lower ``rating`` are not positives.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split and the mini-batch order.
    verbose : bool, default=False
        Show a tqdm bar over epochs.

    Attributes
    ----------
    coef_ : torch.Tensor of shape (n_items, n_items)
        The learner W (zero diagonal), from the best validation epoch.
    adversary_ : torch.nn.Module
        The trained adversary g (see :meth:`adversary_weights`).
    history_ : list of dict
        Per epoch: learner loss and adversary objective (means over the epoch's users; NaN
        when not trained that epoch), seconds, validation metric (with early
        stopping, a first entry ``epoch=0`` holds the initial model's validation score).
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose model is kept (0 = the initial model, when no epoch improved on it).
    best_validation_score_ : float
        Only with ``early_stopping=True``.
    train_matrix_ : csr_matrix
        The binarised training interactions.

    Notes
    -----
    ``transform`` returns the reconstruction ``x·W`` (n_items values per user): like EASE, the
    model has no latent space, so this vector is what a leakage audit attacks.
"""


class ARM(_AdversarialEASE):
    __doc__ = """Adversarially reweighted EASE whose adversary ascends the squared loss (ARM).

    The adversary maximises ``Σ_i p_i ‖x_i − x_i W‖² − (B/2)‖a‖²`` (eq. 9 of the paper). Its
    weights then track user activity (the loss grows with the number of 1s in a row), which is
    why the paper finds ARM ≈ EASE and proposes R-LARM.
""" + _PARAMS_DOC + """
    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import ARM
    >>> X = make_interactions(n_users=300, n_items=50, random_state=0).X
    >>> model = ARM(l2=20.0, learning_rate=1e-3, max_iter=3, ndcg_k=20,
    ...             validation_metric="ndcg@20", device="cpu", random_state=0).fit(X)
    >>> model.adversary_weights(X).shape
    (300,)
"""
    _adversary_objective = "squared"


class RLARM(_AdversarialEASE):
    __doc__ = """Adversarially reweighted EASE with a ranking-loss adversary (R-LARM, R-LARM(NN)).

    The adversary maximises ``n_items · Σ_i p_i (1 − NDCG_i@k) − (B/2)‖A‖²`` (eq. 10, and 12
    with ``adversary="mlp"``), where NDCG_i@k is computed in-sample on the mini-batch rows (items
    ranked by ``x_i W``, the row itself as relevance), as in the official code; the factor
    ``n_items`` matches the code, so ``adversary_l2`` is on its scale. Only the adversary sees
    the NDCG; the learner minimises the p-weighted squared loss.
""" + _PARAMS_DOC + """
    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import RLARM
    >>> X = make_interactions(n_users=300, n_items=50, random_state=0).X
    >>> model = RLARM(l2=20.0, adversary="mlp", hidden_size=4, learning_rate=1e-3,
    ...               max_iter=3, ndcg_k=20, validation_metric="ndcg@20", device="cpu",
    ...               random_state=0).fit(X)
    >>> model.n_iter_ <= 3
    True
"""
    _adversary_objective = "ndcg"
