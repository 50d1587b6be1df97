"""Variational autoencoders for collaborative filtering: MultVAE and AdvXMultVAE.

MultVAE is Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018: a user's
interaction row is L2-normalised, dropped out, encoded by a tanh MLP into the mean μ and
log-variance of a Gaussian latent code z, and decoded by a mirrored MLP into logits over all items
with a multinomial likelihood; the KL term is weighted by β, annealed linearly to ``beta_cap``.

AdvXMultVAE is Escobedo et al., "Simultaneous Unlearning of Multiple Protected User Attributes
From Variational Autoencoder Recommenders Using Adversarial Training", BIAS@SIGIR 2024 (and, with
one attribute, Adv-MultVAE of Ganhör et al., SIGIR 2022): adversaries predict each protected
attribute from the latent code behind a gradient-reversal layer, so that the encoder learns to
hide the attributes while the adversaries learn to recover them.

Both train in the package's one loop (:class:`~skadvrec.base.IterativeRecommender`): this module
supplies the hooks that build the autoencoder (and the adversaries), make one update on a batch of
training users and snapshot / restore the weights for early stopping.

Training never densifies a batch (issue 14): the batch's rows are gathered from the training CSR
on the device, the first encoder layer is ``embedding_bag`` over them (mode "sum", the
L2-normalised and dropped-out values as per-sample weights: x̂·W₀ without the zeros), and the
multinomial log-likelihood reads the log-softmax at the non-zeros only. Dropout draws the same
uniforms as the dense path and reads them at the non-zeros (the zeros it would mask are zero
either way), so a seed trains the same model both ways. The dense path stays as the private
reference (``model._sparse_input = False``); the tests check that both give the same model.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.utils import metadata_routing
from sklearn.utils.class_weight import compute_class_weight

from .._params import (ITERATIVE_CONSTRAINTS, NON_NEGATIVE_INT, NON_NEGATIVE_REAL, POSITIVE_INT,
                       POSITIVE_REAL, Integral, Interval, Real, StrOptions)
from .._torch import adam_options, dense_rows, grad_reverse, iter_row_batches, make_generator
from ..base import IterativeRecommender
from .._sensitive import resolve_attribute_types
from ..erasure import LinearErasure

__all__ = ["MultVAE", "AdvXMultVAE"]


# -- modules ------------------------------------------------------------------------------------
def _layers(dims, generator, device, dtype, n_heads=None):
    """Glorot-uniform weights (in, out) and small biases, drawn from ``generator``.

    With ``n_heads`` the layers get a leading head dimension (parallel independent MLPs).
    """
    weights, biases = torch.nn.ParameterList(), torch.nn.ParameterList()
    lead = () if n_heads is None else (n_heads,)
    for a, b in zip(dims[:-1], dims[1:]):
        bound = math.sqrt(6.0 / (a + b))
        w = torch.rand(*lead, a, b, generator=generator, device=device, dtype=dtype)
        weights.append(torch.nn.Parameter(w.mul_(2.0).sub_(1.0).mul_(bound)))
        bshape = (*lead, 1, b) if n_heads is not None else (b,)
        bias = torch.randn(*bshape, generator=generator, device=device, dtype=dtype) * 1e-3
        biases.append(torch.nn.Parameter(bias))
    return weights, biases


def _dropout(h, p, generator):
    keep = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype) >= p
    return h * keep * (1.0 / (1.0 - p))


class _CSRRows:
    """The training matrix's CSR on the device, and batches of its rows without densifying.

    ``weights`` are the values L2-normalised per row (the encoder's input), ``values`` the raw
    ones (the multinomial likelihood's counts).
    """

    def __init__(self, X, device, dtype):
        X = X.tocsr()
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        data = np.asarray(X.data, dtype=np.float64)
        counts = np.diff(X.indptr)
        row_of = np.repeat(np.arange(X.shape[0]), counts)
        norms = np.sqrt(np.bincount(row_of, weights=data * data, minlength=X.shape[0]))
        per_nz = np.maximum(norms, 1e-12)[row_of]  # F.normalize's eps
        self.indptr = torch.from_numpy(X.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(X.indices.astype(np.int64)).to(device)
        self.values = torch.from_numpy(data).to(device=device, dtype=dtype)
        self.weights = torch.from_numpy(data / per_nz).to(device=device, dtype=dtype)
        self.device = device

    def __call__(self, idx):
        """(row, col, value, weight, offsets) of the rows ``idx`` (a tensor on the device):
        ``row`` is the position in the batch, ``offsets`` the batch's row pointer."""
        idx = idx.to(self.device)
        start = self.indptr[idx]
        count = self.indptr[idx + 1] - start
        offsets = torch.zeros(len(idx) + 1, dtype=torch.int64, device=self.device)
        torch.cumsum(count, 0, out=offsets[1:])
        total = int(offsets[-1])
        row = torch.repeat_interleave(torch.arange(len(idx), device=self.device), count,
                                      output_size=total)
        pos = torch.arange(total, device=self.device) + (start - offsets[:-1])[row]
        return row, self.indices[pos], self.values[pos], self.weights[pos], offsets


class _VAE(torch.nn.Module):
    """Encoder [n_items → hidden … → 2·latent] and decoder [latent → … hidden → n_items]."""

    def __init__(self, n_items, hidden_dims, latent_dim, dropout, generator, device, dtype):
        super().__init__()
        self.latent_dim = latent_dim
        self.dropout = float(dropout)
        self.enc_w, self.enc_b = _layers([n_items, *hidden_dims, 2 * latent_dim], generator,
                                         device, dtype)
        self.dec_w, self.dec_b = _layers([latent_dim, *reversed(hidden_dims), n_items],
                                         generator, device, dtype)

    def encode(self, x, generator=None):
        """(μ, log σ²); input dropout only when a generator is given (training)."""
        h = F.normalize(x, dim=1)
        if generator is not None and self.dropout > 0:
            h = _dropout(h, self.dropout, generator)
        return self._encode_from(torch.addmm(self.enc_b[0], h, self.enc_w[0]))

    def encode_csr(self, batch, generator=None, keep=None):
        """:meth:`encode` of a batch given as CSR rows (``_CSRRows``'s output), never dense.

        The first layer is ``embedding_bag`` over the non-zeros. Dropout draws the dense path's
        (batch, n_items) uniforms from the same generator and reads them at the non-zeros, so a
        seed gives the same masks (and the same random stream afterwards) as :meth:`encode`;
        the draw costs ~1 % of a step, the dense first layer it replaces far more. ``keep``, a
        boolean mask over the non-zeros, overrides the draw (tests).
        """
        row, col, _, w, offsets = batch
        if generator is not None and self.dropout > 0:
            if keep is None:
                u = torch.rand((len(offsets) - 1, self.enc_w[0].shape[0]), generator=generator,
                               device=w.device, dtype=w.dtype)
                keep = u[row, col] >= self.dropout
            w = w * keep * (1.0 / (1.0 - self.dropout))
        W0 = self.enc_w[0]
        if col.numel():
            h = F.embedding_bag(col, W0, offsets, mode="sum", per_sample_weights=w,
                                include_last_offset=True)
        else:  # embedding_bag needs at least one member
            h = W0.new_zeros((len(offsets) - 1, W0.shape[1])) + 0.0 * W0.sum()
        return self._encode_from(h + self.enc_b[0])

    def _encode_from(self, h):
        """The encoder after its first affine layer."""
        last = len(self.enc_w) - 1
        for i, (w, b) in enumerate(zip(self.enc_w, self.enc_b)):
            if i:
                h = torch.addmm(b, h, w)
            if i < last:
                h = torch.tanh(h)
        return h[:, :self.latent_dim], h[:, self.latent_dim:]

    def decode(self, z):
        h = z
        last = len(self.dec_w) - 1
        for i, (w, b) in enumerate(zip(self.dec_w, self.dec_b)):
            h = torch.addmm(b, h, w)
            if i < last:
                h = torch.tanh(h)
        return h


class _ParallelMLP(torch.nn.Module):
    """``n_heads`` independent MLPs [latent → hidden … → out] evaluated as one batched product.

    Input dropout (a separate mask per head) during training; ReLU between layers.
    """

    def __init__(self, in_dim, hidden, out_dim, n_heads, dropout, generator, device, dtype):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = float(dropout)
        self.dims = [in_dim, *hidden, out_dim]
        self.weights, self.biases = _layers(self.dims, generator, device, dtype, n_heads=n_heads)

    def reset_parameters(self, generator):
        """Draw fresh weights in place (the same initialisation as at construction)."""
        w0 = self.weights[0]
        weights, biases = _layers(self.dims, generator, w0.device, w0.dtype,
                                  n_heads=self.n_heads)
        with torch.no_grad():
            for old, new in zip([*self.weights, *self.biases], [*weights, *biases]):
                old.copy_(new)

    def forward(self, z, generator=None):
        """(n_heads, batch, out) outputs for a (batch, in_dim) input."""
        if generator is not None and self.dropout > 0:
            h = _dropout(z.unsqueeze(0).expand(self.n_heads, *z.shape), self.dropout, generator)
        else:
            h = z.unsqueeze(0)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.matmul(h, w) + b
            if i < last:
                h = torch.relu(h)
        return h


class _AdversaryBank(torch.nn.Module):
    """One group of parallel heads per attribute, with the training users' targets on the device.

    ``losses(z, idx)`` returns the adversaries' losses (one per attribute) on the batch rows
    ``idx``; z reaches each group through ``grad_reverse(z, factor · λ_k)`` (detached when that
    is 0, or with ``reverse=False``). ``factor`` is the λ warm-up's current multiplier.
    ``on_mean`` tells the training loop to pass the latent mean μ instead of the sampled z.
    """

    def __init__(self, heads, kinds, scales, targets, sample_weights, generator, on_mean=False):
        super().__init__()
        self.on_mean = on_mean
        self.heads = torch.nn.ModuleList(heads)
        self.kinds = kinds
        self.scales = scales
        self.targets = targets
        self.sample_weights = sample_weights
        self.generator = generator
        self.factor = 1.0

    def reset_parameters(self):
        for head in self.heads:
            head.reset_parameters(self.generator)

    def losses(self, z, idx, reverse=True):
        out = []
        for head, kind, lam, y_all, w_all in zip(self.heads, self.kinds, self.scales,
                                                 self.targets, self.sample_weights):
            lam = lam * self.factor
            z_in = z.detach() if lam == 0 or not reverse else grad_reverse(z, lam)
            pred = head(z_in, self.generator)  # (H, B, C)
            y, w = y_all[idx], w_all[idx]
            if kind == "categorical":
                logp = torch.log_softmax(pred, dim=-1)
                per = -torch.gather(logp, 2, y.view(1, -1, 1).expand(pred.shape[0], -1, 1))
                per = per.squeeze(-1)
            else:
                per = (pred.squeeze(-1) - y) ** 2
            denom = w.sum().clamp_min(torch.finfo(w.dtype).tiny) * pred.shape[0]
            out.append((per * w).sum() / denom)
        return torch.stack(out)


# -- shared helpers -----------------------------------------------------------------------------
def _check_dims(value, name, allow_empty=True):
    ok = isinstance(value, (tuple, list)) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in value)
    if not ok or (not allow_empty and len(value) == 0):
        raise ValueError(f"{name} must be a tuple of positive ints such as (600,) or (); got "
                         f"{value!r}.")
    return tuple(int(d) for d in value)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class MultVAE(IterativeRecommender):
    """Variational autoencoder with a multinomial likelihood (Mult-VAE, Liang et al. 2018).

    Each user's row x is L2-normalised, dropped out (training only), and encoded by a tanh MLP
    into μ(x) and log σ²(x); z = μ + σ·ε in training and z = μ at prediction. A mirrored tanh
    MLP decodes z into logits f(z) over all items. The loss per mini-batch is

        −mean_u Σ_j x_uj · log_softmax(f(z_u))_j + β · mean_u KL(N(μ_u, σ_u²) ‖ N(0, I)),

    with β growing linearly by ``1 / anneal_steps`` per update up to ``beta_cap`` (or fixed at
    ``beta_cap`` when ``anneal_steps=0``). Scores are the logits of μ(x): a new user is scored
    from their row alone (fold-in), no refit needed.

    Parameters
    ----------
    hidden_dims : tuple of int, default=(600,)
        Hidden layer sizes of the encoder; the decoder mirrors them. The paper's architecture
        is n_items → 600 → 200 → 600 → n_items; ``()`` gives a linear encoder and decoder (the
        AdvXMultVAE configuration).
    latent_dim : int, default=200
        Size of the latent code z.
    dropout : float, default=0.5
        Dropout rate on the normalised input during training (the paper keeps 0.5).
    beta_cap : float, default=0.2
        Final (or, with ``anneal_steps=0``, fixed) weight β of the KL term.
    anneal_steps : int, default=200000
        Updates over which β rises linearly from 0 (β = min(beta_cap, step / anneal_steps));
        0 means β = beta_cap throughout.
    learning_rate : float, default=1e-3
        Adam step size.
    weight_decay : float, default=0.0
        Adam's L2 penalty on the weights (the paper's VAE uses none).
    batch_size : int, default=500
        Users per mini-batch; also the scoring batch.
    max_iter : int, default=200
        Maximum epochs.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the users (or use ``validation_data`` of ``fit``),
        evaluate ``validation_metric`` on their 80/20 fold-in split after each epoch, stop after
        ``n_iter_no_change`` epochs without improvement and keep the best epoch's weights (the
        paper's model selection); the untrained model is a candidate too (epoch 0).
    n_iter_no_change : int, default=10
    validation_fraction : float, default=0.1
    validation_metric : str, default="ndcg@100"
    dtype : {"float32", "float64"}, default="float32"
    device : str, default="auto"
        "auto" (CUDA if available), "cpu", "cuda" or "cuda:<i>".
    rating_threshold : float or None, default=4.0
        Table form: rows with a lower ``rating`` are not positives.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the validation split, the mini-batch order, dropout and ε
        (through torch generators; global RNGs are left alone).
    verbose : bool, default=False
        Show a tqdm bar over epochs.

    Attributes
    ----------
    vae_ : torch.nn.Module
        The encoder and decoder, from the best validation epoch.
    history_ : list of dict
        Per epoch: ``loss`` (mean of nll + β·KL over the epoch's batches), ``nll``, ``kl``,
        ``beta`` (at the epoch's last update), ``seconds`` (training time, validation
        excluded) and, with early stopping, ``val_<validation_metric>``. With early stopping
        the first record, ``{"epoch": 0, "seconds": 0.0, "val_<validation_metric>": ...}``,
        scores the model before training.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose weights are kept (the last one without early stopping).
    best_validation_score_ : float
        Only with ``early_stopping=True``.
    n_steps_ : int
        Parameter updates made.
    train_matrix_ : csr_matrix
        The binarised training interactions.

    Notes
    -----
    ``transform(X)`` returns the latent mean μ(x), shape (n_users, latent_dim): the user
    representation that a leakage audit (:func:`~skadvrec.metrics.attribute_leakage`) attacks.
    ``sensitive_features`` is ignored and marked unused for metadata routing.

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.vae import MultVAE
    >>> X = make_interactions(n_users=300, n_items=60, random_state=0).X
    >>> model = MultVAE(hidden_dims=(32,), latent_dim=8, batch_size=100, max_iter=5,
    ...                 validation_metric="ndcg@20", device="cpu", random_state=0).fit(X[:250])
    >>> model.transform(X[250:]).shape
    (50, 8)
    >>> model.recommend(X[250:], k=5).shape
    (50, 5)
    """

    # MultVAE ignores sensitive_features: keep it out of metadata routing.
    __metadata_request__fit = {"sensitive_features": metadata_routing.UNUSED}

    _parameter_constraints: dict = {
        **ITERATIVE_CONSTRAINTS,
        "hidden_dims": [tuple, list],  # of positive ints: checked in _check_params
        "latent_dim": POSITIVE_INT,
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "beta_cap": NON_NEGATIVE_REAL,
        "anneal_steps": NON_NEGATIVE_INT,
        "learning_rate": POSITIVE_REAL,
        "weight_decay": NON_NEGATIVE_REAL,
    }

    def __init__(self, *, hidden_dims=(600,), latent_dim=200, dropout=0.5, beta_cap=0.2,
                 anneal_steps=200000, learning_rate=1e-3, weight_decay=0.0, batch_size=500,
                 max_iter=200, early_stopping=True, n_iter_no_change=10,
                 validation_fraction=0.1, validation_metric="ndcg@100", dtype="float32",
                 device="auto", rating_threshold=4.0, random_state=None, verbose=False):
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.beta_cap = beta_cap
        self.anneal_steps = anneal_steps
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
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
    def _check_params(self, data):
        super()._check_params(data)
        _check_dims(self.hidden_dims, "hidden_dims")

    # -- hooks for the adversarial subclass ----------------------------------------------------
    def _prepare_sensitive(self, sensitive_features):
        """Validate and encode the protected attributes (none for MultVAE)."""
        return None

    def _make_adversaries(self, prepared, train_rows, rng, device, dtype):
        """The adversary bank and its optimiser, or (None, None)."""
        return None, None

    def _beta(self, step):
        if self.anneal_steps == 0:
            return float(self.beta_cap)
        return min(float(self.beta_cap), step / self.anneal_steps)

    # -- hooks of the training loop (IterativeRecommender._fit) --------------------------------
    def _init_model(self, train, data, sensitive_features, rng, gen):
        prepared = self._prepare_sensitive(sensitive_features)
        dev, dtype, tr = self.device_, self._torch_dtype(), self._tr
        tr.gen = gen  # initialisation, dropout masks and ε (the base draws batch orders from it)
        tr.vae = _VAE(data.matrix.shape[1], tuple(self.hidden_dims), self.latent_dim,
                      self.dropout, gen, dev, dtype)
        tr.adv, tr.opt_adv = self._make_adversaries(prepared, self._train_rows, rng, dev, dtype)
        tr.extra_adv_steps = 0 if tr.adv is None else int(self.adversary_steps) - 1
        tr.all_rows, tr.S = data.matrix, sensitive_features
        tr.adv_keys = ([] if tr.adv is None else
                       [f"adversary_loss_{a}" for a in self.attributes_])
        tr.opt = torch.optim.Adam(tr.vae.parameters(), lr=self.learning_rate,
                                  weight_decay=self.weight_decay, **adam_options(dev))
        if self._sparse_input:
            tr.csr_rows = _CSRRows(train, dev, dtype)
        else:
            tr.rows = self._batch_source(train, dev, dtype)
        return train.shape[0]

    # False: densify each batch (the reference the tests compare the sparse path with)
    _sparse_input = True

    def _train_step(self, idx):
        tr = self._tr
        if self._sparse_input:
            batch = tr.csr_rows(idx)
            mu, logvar = tr.vae.encode_csr(batch, tr.gen)
        else:
            xb = tr.rows(idx)
            mu, logvar = tr.vae.encode(xb, tr.gen)
        eps = torch.randn(mu.shape, generator=tr.gen, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        log_p = torch.log_softmax(tr.vae.decode(z), dim=1)
        if self._sparse_input:  # the likelihood only reads the non-zeros
            row, col, val = batch[:3]
            nll = -(log_p[row, col] * val).sum() / len(idx)
        else:
            nll = -(log_p * xb).sum(dim=1).mean()
        kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(dim=1).mean()
        loss = nll + self._beta(self.n_steps_) * kl
        out, total = {"loss": loss, "nll": nll, "kl": kl}, loss
        tr.opt.zero_grad(set_to_none=True)
        if tr.adv is not None:
            z_adv = mu if tr.adv.on_mean else z
            for _ in range(tr.extra_adv_steps):  # adversary-only updates on this batch's code
                tr.opt_adv.zero_grad(set_to_none=True)
                tr.adv.losses(z_adv.detach(), idx, reverse=False).sum().backward()
                tr.opt_adv.step()
            adv_losses = tr.adv.losses(z_adv, idx)
            total = total + adv_losses.sum()
            out.update(zip(tr.adv_keys, adv_losses.unbind()))
            tr.opt_adv.zero_grad(set_to_none=True)
        total.backward()
        tr.opt.step()
        if tr.adv is not None:
            tr.opt_adv.step()
        return out

    def _end_epoch(self, record):
        record["beta"] = self._beta(self.n_steps_ - 1)  # at the epoch's last update

    def _prepare_validation(self):
        self.vae_ = self._tr.vae

    def _snapshot(self):
        tr = self._tr
        return _state(tr.vae), None if tr.adv is None else _state(tr.adv)

    def _restore(self, state):
        self._tr.vae.load_state_dict(state[0])
        if self._tr.adv is not None:
            self._tr.adv.load_state_dict(state[1])

    def _finish_fit(self):
        self.vae_ = self._tr.vae.requires_grad_(False)
        if self._tr.adv is not None:
            self.adversaries_ = self._tr.adv.heads.requires_grad_(False)

    def _latent_mean(self, X_rows):
        """μ of the rows, erased by ``post_eraser_`` when the model has one."""
        mu = self.vae_.encode(X_rows)[0]
        eraser = getattr(self, "post_eraser_", None)
        if eraser is None:
            return mu
        # the fitted LEACE map, in float64 as LinearErasure.transform computes it
        f64 = dict(device=mu.device, dtype=torch.float64)
        m = torch.as_tensor(eraser.mean_, **f64)
        right = torch.as_tensor(eraser.proj_right_, **f64)
        left = torch.as_tensor(eraser.proj_left_, **f64)
        x = mu.double()
        return (x - ((x - m) @ right.T) @ left.T).to(mu.dtype)

    def _scores_from_rows(self, X_rows):
        return self.vae_.decode(self._latent_mean(X_rows))

    def _transform_rows(self, X_rows):
        return self._latent_mean(X_rows).contiguous()

    def transform(self, X):
        """The latent mean μ(x) of each user of X.

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items) or DataFrame
            Matrix form: each row is a user's interactions (the encoder's input). Table form:
            fitted users named in the ``user`` column, in order of first appearance.

        Returns
        -------
        ndarray of shape (n_users, latent_dim)
        """
        return super().transform(X)


class AdvXMultVAE(MultVAE):
    """MultVAE with adversaries that remove one or several protected attributes (AdvXMultVAE).

    For each protected attribute k, a group of ``n_heads`` independent MLP adversaries
    [latent_dim → adversary_hidden → n_classes or 1] predicts the attribute from the
    **sampled** latent code z (as in the official code; ``adversary_input="mean"`` uses the
    latent mean μ instead) passed through a gradient-reversal layer with scale λ_k.
    Categorical attributes use a cross-entropy loss (class-weighted with
    ``class_weight="balanced"``), continuous ones the mean squared error of the attribute
    standardised over the training users; a group's loss is the mean over its heads. One
    backward pass on ``L_VAE + Σ_k L_adv^k`` updates the autoencoder (its own Adam) and the
    adversaries (another Adam): the adversaries minimise ``L_adv^k`` while the reversed
    gradient makes the encoder minimise ``L_VAE − Σ_k λ_k L_adv^k``. λ_k = 0 leaves that
    adversary inert for the encoder (it still trains), so with every λ at 0 the autoencoder is
    exactly the :class:`MultVAE` of the same ``random_state``.

    With a single attribute this is Adv-MultVAE (Ganhör et al., SIGIR 2022); there is no
    separate class for it. The official configuration (Escobedo et al. 2024) is
    ``hidden_dims=(), latent_dim=100, dropout=0.1, beta_cap=0.8, anneal_steps=0,
    adversary_hidden=(5,), adversary_dropout=0.3, n_heads=10, weight_decay=1e-4``, batch 64,
    with λ per attribute from {0, 1, 200, 400, 600, 800}. On ML-1M that autoencoder with
    ``adversary_input="mean", adversary_hidden=(64,), adversary_learning_rate=1e-2`` and
    λ = 50 for gender and for (standardised) age lowered the strongest attacker's gender
    balanced accuracy only from 0.78 to 0.73 (AUC 0.87 → 0.80) and raised its age MAE from 7.2
    to 8.4 (median guess 9.9) at −3 % NDCG@10: the adversaries reduce the attributes but do not
    remove them; adding :class:`~skadvrec.erasure.LinearErasure` on μ
    (``post_erasure="linear"``) reaches 0.60 at −7 % (worst-case audit, BENCHMARKS.md).
    Stronger adversaries (``adversary_steps=5``, ``lambda_warmup=10``,
    ``adversary_reinit_every``) kept gender at 0.69–0.71 (one split) while the warm-up raised
    the age MAE to 9.5 at −2.6 % NDCG@10; after the erasure they read 0.62–0.64, no better than
    the plain adversaries.

    The attributes arrive as ``sensitive_features`` (a DataFrame with one column per attribute,
    one row per row of X). With metadata routing enabled (GridSearchCV, Pipeline) request them
    with ``model.set_fit_request(sensitive_features=True)``. Users with a missing value (NaN)
    do not count in that attribute's adversary loss.

    Parameters
    ----------
    attributes : str, sequence of str or None, default=None
        Columns of ``sensitive_features`` to remove; None removes every column.
    grad_scale : float or dict, default=1.0
        λ, the gradient-reversal scale: one value for every attribute, or a dict
        ``{attribute: λ}`` naming each removed attribute. λ >= 0.
    attribute_types : dict or None, default=None
        ``{attribute: "categorical" | "continuous"}`` overriding the dtype inference (category,
        object, string and bool columns are categorical, numeric ones continuous).
    adversary_hidden : tuple of int, default=(5,)
        Hidden layer sizes of each adversary head (ReLU between layers).
    adversary_dropout : float, default=0.3
        Dropout on the adversaries' input during training.
    n_heads : int, default=1
        Parallel adversary heads per attribute (the official code uses 10).
    class_weight : {"balanced"} or None, default="balanced"
        "balanced" weights each class of a categorical attribute by its inverse frequency
        among the training users (``n / (n_classes · count)``); None weights users equally.
    adversary_learning_rate : float or None, default=None
        Adam step size of the adversaries; None uses ``learning_rate``. ``weight_decay``
        applies to the adversaries too.
    adversary_input : {"sample", "mean"}, default="sample"
        What the adversaries see: the sampled code z = μ + σ·ε (the official code) or the
        latent mean μ. ``transform`` returns μ and a leakage audit attacks μ; with "sample"
        the encoder can fool the adversaries with sampling noise that μ does not carry, so a
        fresh attacker on μ may still recover the attribute. "mean" trains the adversaries on
        the representation that is audited.
    adversary_steps : int, default=1
        Adversary updates per autoencoder update: before each joint step, ``adversary_steps
        - 1`` extra Adam steps of the adversaries alone on the batch's (detached) code, so the
        encoder faces adversaries closer to their best response.
    lambda_warmup : int, default=0
        Epochs of a linear λ warm-up: during the 0-based epoch e every λ_k is multiplied by
        ``min(1, e / lambda_warmup)`` (0 in the first epoch: the adversaries learn before the
        encoder is pushed), recorded as ``lambda_factor`` in ``history_``. Early stopping
        keeps only epochs after the warm-up (neither the untrained model nor a warm-up epoch
        can be selected, nor do they count towards ``n_iter_no_change``).
    adversary_reinit_every : int, default=0
        Every that many epochs, the adversary heads are drawn afresh and their Adam state is
        reset (so the encoder cannot settle against one set of adversaries); 0 never. The
        ensemble size per attribute is ``n_heads``.
    post_erasure : {"linear"} or None, default=None
        "linear": after training, fit :class:`~skadvrec.erasure.LinearErasure` (LEACE) on
        the latent means μ of the users of X given to ``fit`` for the removed attributes
        (categorical ones one-hot; a continuous one with at most 32 distinct values, such as
        the ML-1M age code, one-hot of its values, which also erases the value itself; other
        continuous ones as their value) and apply it to μ everywhere after fit: ``transform``
        returns the erased μ and ``predict`` / ``recommend`` / ``score`` / ``evaluate`` decode
        it, for new users (fold-in rows) as for fitted ones. No linear predictor then reads
        the attributes from the training users' μ; non-linear attackers may still (audit with
        :func:`~skadvrec.metrics.attribute_leakage`). Early stopping scores the raw μ.
    hidden_dims, latent_dim, dropout, beta_cap, anneal_steps, learning_rate, weight_decay, \
batch_size, max_iter, early_stopping, n_iter_no_change, validation_fraction, validation_metric, \
dtype, device, rating_threshold, random_state, verbose
        As in :class:`MultVAE`. Early stopping selects on recommendation accuracy only.

    Attributes
    ----------
    attributes_ : list
        The removed attributes, in order.
    attribute_types_ : dict
        ``{attribute: "categorical" | "continuous"}``.
    classes_ : dict
        ``{attribute: ndarray of class labels}`` for the categorical attributes.
    class_weights_ : dict
        ``{attribute: ndarray of class weights}`` for the categorical attributes.
    target_scaling_ : dict
        ``{attribute: (mean, std)}`` used to standardise each continuous attribute.
    grad_scales_ : dict
        ``{attribute: λ}``.
    adversaries_ : torch.nn.ModuleList
        One module of ``n_heads`` parallel heads per attribute (order of ``attributes_``),
        from the kept epoch.
    post_eraser_ : LinearErasure or None
        The fitted eraser applied to μ with ``post_erasure="linear"``, else None.
    vae_, history_, n_iter_, best_epoch_, best_validation_score_, n_steps_, train_matrix_
        As in :class:`MultVAE`; ``history_`` also holds ``adversary_loss_<attribute>`` per
        epoch (the adversaries' mean loss at the joint steps, after any extra adversary steps:
        cross-entropy, or MSE in standard deviations), ``lambda_factor`` (the warm-up's λ
        multiplier) and, with ``adversary_reinit_every``, ``adversary_reinit`` (whether the
        heads were re-drawn at the epoch's start).

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.vae import AdvXMultVAE
    >>> d = make_interactions(n_users=300, n_items=60, attribute_signal=2.0, random_state=0)
    >>> model = AdvXMultVAE(grad_scale={"group": 50.0, "age": 10.0}, hidden_dims=(32,),
    ...                     latent_dim=8, batch_size=100, max_iter=3, early_stopping=False,
    ...                     device="cpu", random_state=0)
    >>> model = model.fit(d.X, sensitive_features=d.sensitive_features)
    >>> model.attribute_types_
    {'group': 'categorical', 'age': 'continuous'}
    >>> model.transform(d.X[:5]).shape
    (5, 8)
    """

    # AdvXMultVAE consumes sensitive_features: under metadata routing the user must request it
    # with set_fit_request(sensitive_features=True) (sklearn's default for consumers).
    __metadata_request__fit = {"sensitive_features": None}

    _parameter_constraints: dict = {
        **MultVAE._parameter_constraints,
        "attributes": [str, Integral, "array-like", None],
        "grad_scale": [Interval(Real, 0, None, closed="left"), dict],  # dict: _grad_scales
        "attribute_types": [dict, None],
        "adversary_hidden": [tuple, list],
        "adversary_dropout": [Interval(Real, 0, 1, closed="left")],
        "n_heads": POSITIVE_INT,
        "class_weight": [StrOptions({"balanced"}), None],
        "adversary_learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "adversary_input": [StrOptions({"sample", "mean"})],
        "adversary_steps": POSITIVE_INT,
        "lambda_warmup": NON_NEGATIVE_INT,
        "adversary_reinit_every": NON_NEGATIVE_INT,
        "post_erasure": [StrOptions({"linear"}), None],
    }

    def __init__(self, *, attributes=None, grad_scale=1.0, attribute_types=None,
                 adversary_hidden=(5,), adversary_dropout=0.3, n_heads=1,
                 class_weight="balanced", adversary_learning_rate=None,
                 adversary_input="sample", adversary_steps=1, lambda_warmup=0,
                 adversary_reinit_every=0, post_erasure=None, hidden_dims=(600,),
                 latent_dim=200, dropout=0.5, beta_cap=0.2, anneal_steps=200000,
                 learning_rate=1e-3, weight_decay=0.0, batch_size=500, max_iter=200,
                 early_stopping=True, n_iter_no_change=10, validation_fraction=0.1,
                 validation_metric="ndcg@100", dtype="float32", device="auto",
                 rating_threshold=4.0, random_state=None, verbose=False):
        super().__init__(hidden_dims=hidden_dims, latent_dim=latent_dim, dropout=dropout,
                         beta_cap=beta_cap, anneal_steps=anneal_steps,
                         learning_rate=learning_rate, weight_decay=weight_decay,
                         batch_size=batch_size, max_iter=max_iter,
                         early_stopping=early_stopping, n_iter_no_change=n_iter_no_change,
                         validation_fraction=validation_fraction,
                         validation_metric=validation_metric, dtype=dtype, device=device,
                         rating_threshold=rating_threshold, random_state=random_state,
                         verbose=verbose)
        self.attributes = attributes
        self.grad_scale = grad_scale
        self.attribute_types = attribute_types
        self.adversary_hidden = adversary_hidden
        self.adversary_dropout = adversary_dropout
        self.n_heads = n_heads
        self.class_weight = class_weight
        self.adversary_learning_rate = adversary_learning_rate
        self.adversary_input = adversary_input
        self.adversary_steps = adversary_steps
        self.lambda_warmup = lambda_warmup
        self.adversary_reinit_every = adversary_reinit_every
        self.post_erasure = post_erasure

    def fit(self, X, y=None, *, sensitive_features=None, validation_data=None):
        """Fit the autoencoder and the adversaries.

        Parameters
        ----------
        X : sparse matrix of shape (n_users, n_items) or DataFrame
            Training interactions.
        y : None
            Ignored.
        sensitive_features : DataFrame of shape (n_rows, n_attributes)
            The protected attributes, one row per row of X (for a table, the first row of each
            user counts). Required.
        validation_data : sparse matrix of shape (n_val_users, n_items), default=None
            As in :meth:`MultVAE.fit`.

        Returns
        -------
        self : object
        """
        return super().fit(X, y, sensitive_features=sensitive_features,
                           validation_data=validation_data)

    def _check_params(self, data):
        super()._check_params(data)
        _check_dims(self.adversary_hidden, "adversary_hidden")

    def _grad_scales(self, attrs):
        if isinstance(self.grad_scale, dict):
            unknown = [a for a in self.grad_scale if a not in attrs]
            missing = [a for a in attrs if a not in self.grad_scale]
            if unknown or missing:
                raise ValueError(
                    f"grad_scale names {list(self.grad_scale)} but the removed attributes are "
                    f"{attrs}; give one λ per removed attribute (or a single float for all).")
            scales = dict(self.grad_scale)
        else:
            scales = {a: self.grad_scale for a in attrs}
        for a, lam in scales.items():
            if (not isinstance(lam, numbers.Real) or isinstance(lam, bool) or not lam >= 0
                    or not math.isfinite(lam)):
                raise ValueError(f"grad_scale for {a!r} must be a finite number >= 0; got "
                                 f"{lam!r}.")
        return {a: float(v) for a, v in scales.items()}

    def _prepare_sensitive(self, sensitive_features):
        if sensitive_features is None:
            raise ValueError(
                f"{type(self).__name__} needs the protected attributes: call fit(X, "
                "sensitive_features=S) with S a DataFrame holding one column per attribute and "
                "one row per row of X. In GridSearchCV or a Pipeline with "
                "sklearn.set_config(enable_metadata_routing=True), also call "
                "model.set_fit_request(sensitive_features=True).")
        S = sensitive_features
        attrs, types = resolve_attribute_types(S, self.attributes, self.attribute_types)
        scales = self._grad_scales(attrs)
        encoded, classes = [], {}
        for a in attrs:
            col = S[a].reset_index(drop=True)
            if types[a] == "categorical":
                cat = pd.Categorical(col).remove_unused_categories()
                if len(cat.categories) < 2:
                    raise ValueError(
                        f"attribute {a!r} has {len(cat.categories)} class among the users of X; "
                        "an adversary needs at least two. Drop it from attributes (or from "
                        "sensitive_features).")
                classes[a] = np.asarray(cat.categories)
                encoded.append(np.asarray(cat.codes, dtype=np.int64))
            else:
                vals = col.to_numpy(dtype=np.float64)
                if np.isinf(vals).any():
                    raise ValueError(f"attribute {a!r} contains infinite values.")
                known = vals[~np.isnan(vals)]
                if len(known) < 2 or np.ptp(known) == 0:
                    raise ValueError(f"attribute {a!r} has a single value among the users "
                                     "of X; there is nothing to remove. Drop it from "
                                     "attributes.")
                encoded.append(vals)
        self.attributes_ = attrs
        self.attribute_types_ = types
        self.classes_ = classes
        self.grad_scales_ = scales
        self.post_eraser_ = None  # fitted after training (validation scores the raw μ)
        return encoded

    # -- stronger adversaries: λ warm-up, re-initialisation, post-hoc erasure ------------------
    def _lambda_factor(self, epoch):
        """λ multiplier during the 0-based ``epoch``: a linear ramp 0 → 1 over the warm-up."""
        if self.lambda_warmup == 0:
            return 1.0
        return min(1.0, epoch / self.lambda_warmup)

    def _start_epoch(self, epoch):
        tr = self._tr
        tr.adv.factor = self._lambda_factor(epoch)
        k = self.adversary_reinit_every
        tr.reinit = bool(k and epoch > 0 and epoch % k == 0)
        if tr.reinit:
            tr.adv.reset_parameters()
            tr.opt_adv.state.clear()  # fresh Adam moments for the fresh heads

    def _end_epoch(self, record):
        super()._end_epoch(record)
        record["lambda_factor"] = self._tr.adv.factor
        if self.adversary_reinit_every:
            record["adversary_reinit"] = self._tr.reinit

    def _selectable(self, epoch):
        # early stopping keeps only states trained at the full λ (after the warm-up)
        return self.lambda_warmup == 0 or epoch > self.lambda_warmup

    def _erasure_types(self):
        """Attribute types for the post-hoc erasure: a continuous attribute with at most
        ``_ERASURE_MAX_LEVELS`` distinct values is erased as categorical (one-hot)."""
        types = {}
        S = self._tr.S
        for a in self.attributes_:
            t = self.attribute_types_[a]
            if t == "continuous":
                n_levels = S[a].dropna().nunique()
                t = "categorical" if n_levels <= self._ERASURE_MAX_LEVELS else "continuous"
            types[a] = t
        return types

    _ERASURE_MAX_LEVELS = 32

    def _finish_fit(self):
        super()._finish_fit()
        if self.post_erasure is None:
            return
        tr = self._tr
        X, dtype = tr.all_rows, self._torch_dtype()
        with torch.no_grad():
            mu = np.concatenate([
                self.vae_.encode(dense_rows(X, sl, self.device_, dtype))[0].cpu().numpy()
                for sl in iter_row_batches(X.shape[0], self._batch())])
        S = tr.S[self.attributes_].reset_index(drop=True)
        self.post_eraser_ = LinearErasure(attributes=list(self.attributes_),
                                          attribute_types=self._erasure_types()).fit(mu, S)

    def _make_adversaries(self, encoded, train_rows, rng, device, dtype):
        gen = make_generator(rng, device)
        hidden = _check_dims(self.adversary_hidden, "adversary_hidden")
        heads, kinds, targets, weights = [], [], [], []
        self.class_weights_, self.target_scaling_ = {}, {}
        for a, values in zip(self.attributes_, encoded):
            v = values[train_rows]
            if self.attribute_types_[a] == "categorical":
                n_cls = len(self.classes_[a])
                known = v >= 0
                if len(np.unique(v[known])) < 2:
                    raise ValueError(f"attribute {a!r} has fewer than two classes among the "
                                     "training users (after the validation split); an "
                                     "adversary needs at least two.")
                if self.class_weight == "balanced":
                    present = np.unique(v[known])
                    cw = np.ones(n_cls)
                    cw[present] = compute_class_weight("balanced", classes=present, y=v[known])
                else:
                    cw = np.ones(n_cls)
                self.class_weights_[a] = cw
                w = np.where(known, cw[np.clip(v, 0, None)], 0.0)
                y = torch.as_tensor(np.clip(v, 0, None), device=device)
                out_dim = n_cls
            else:
                known = ~np.isnan(v)
                mean, std = float(v[known].mean()), float(v[known].std())
                if std == 0:
                    raise ValueError(f"attribute {a!r} is constant over the training users; "
                                     "there is nothing to remove.")
                self.target_scaling_[a] = (mean, std)
                w = known.astype(np.float64)
                y = torch.as_tensor(np.where(known, (v - mean) / std, 0.0), device=device,
                                    dtype=dtype)
                out_dim = 1
            heads.append(_ParallelMLP(int(self.latent_dim), hidden, out_dim, int(self.n_heads),
                                      self.adversary_dropout, gen, device, dtype))
            kinds.append(self.attribute_types_[a])
            targets.append(y)
            weights.append(torch.as_tensor(w, device=device, dtype=dtype))
        scales = [self.grad_scales_[a] for a in self.attributes_]
        bank = _AdversaryBank(heads, kinds, scales, targets, weights, gen,
                              on_mean=self.adversary_input == "mean")
        lr = (self.learning_rate if self.adversary_learning_rate is None
              else self.adversary_learning_rate)
        opt_kw = adam_options(device)
        opt = torch.optim.Adam(bank.parameters(), lr=lr, weight_decay=self.weight_decay,
                               **opt_kw)
        return bank, opt
