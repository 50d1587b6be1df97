"""Adversarial collaborative filtering: APR and PamaCF, one mechanism with a magnitude rule.

From epoch ``n_pretrain_epochs + 1`` on, each step adds ``adv_weight`` times the BPR loss of
the batch under a worst-case perturbation of its final embeddings (He et al., SIGIR 2018):

    δ_u = m_b · g_u / ‖g_u‖,  δ_i = m_b · g_i / ‖g_i‖,  δ_j = m_b · g_j / ‖g_j‖,

with g the gradient of the batch's mean BPR loss with respect to each embedding row (a constant),
and m_b the magnitude for triple b, given by the *magnitude rule*:

* ``"uniform"`` (APR): m_b = ε.
* ``"personalised"`` (PamaCF, as in its reference code): m_b = ρ · γ · σ(‖e_u‖² / mean_batch ‖e_u‖²
  − 1), so users with larger embeddings (who, by the paper's analysis, tolerate larger
  perturbations) get larger ones; the user's coefficient also scales the item perturbations.
* ``"paper"`` (PamaCF, the paper's form): m_b = ρ · σ(‖e_u‖ − mean_all ‖e_u‖), the mean over all
  users.

For LightGCN the perturbation is applied to the propagated embeddings, as in the PamaCF code.
"""

from __future__ import annotations

import torch

from .._params import NON_NEGATIVE_INT, NON_NEGATIVE_REAL, StrOptions
from ._backbones import LightGCNBackbone, MFBackbone
from ._base import (_ATTRIBUTES_AND_NOTES, _PAMACF_TRAINING_PARAMS, EMBEDDING_CONSTRAINTS,
                    Adversary, _EmbeddingRecommender)

__all__ = ["APR", "PamaCF", "MAGNITUDE_RULES"]


class _Uniform:
    def __init__(self, eps):
        self.eps = float(eps)

    def native_args(self):  # (rule code, its constant) for the native step (_kernel.py)
        return 1, self.eps

    def coefficients(self, eu, users, U_all):
        return torch.full((eu.shape[0],), self.eps, device=eu.device, dtype=eu.dtype)


class _Personalised:
    def __init__(self, rho, gamma):
        self.rho, self.gamma = float(rho), float(gamma)

    def native_args(self):
        return 2, self.rho * self.gamma

    def coefficients(self, eu, users, U_all):
        n2 = eu.square().sum(1)
        ratio = n2 / n2.mean().clamp_min(torch.finfo(eu.dtype).tiny)
        return self.rho * self.gamma * torch.sigmoid(ratio - 1.0)


class _Paper:
    needs_all_users = True  # the mean norm over all users: the trainer passes the whole table

    def __init__(self, rho):
        self.rho = float(rho)

    def native_args(self):
        return 3, self.rho

    def coefficients(self, eu, users, U_all):
        mean_norm = U_all.norm(dim=1).mean()
        return self.rho * torch.sigmoid(eu.norm(dim=1) - mean_norm)


MAGNITUDE_RULES = ("personalised", "paper", "uniform")

_ADV_PARAMS = """\
    adv_weight : float, default=1.0
        λ, the weight of the adversarial BPR term.
    n_pretrain_epochs : int, default=4
        Epochs of plain BPR before the adversarial term is switched on (the PamaCF code's
        ``begin_adv = 5``).
    backbone : {{"mf", "lightgcn"}}, default="mf"
    n_layers : int, default=3
        LightGCN propagation layers (ignored for ``backbone="mf"``)."""


class _AdversarialCF(_EmbeddingRecommender):
    """What APR and PamaCF share: the backbone choice and the adversary's schedule."""

    _parameter_constraints = {
        **EMBEDDING_CONSTRAINTS,
        "adv_weight": NON_NEGATIVE_REAL,
        "n_pretrain_epochs": NON_NEGATIVE_INT,
        "backbone": [StrOptions({"mf", "lightgcn"})],
        "n_layers": NON_NEGATIVE_INT,
    }

    def _backbone(self):
        return LightGCNBackbone(self.n_layers) if self.backbone == "lightgcn" else MFBackbone()

    def _magnitude_rule(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _adversary(self):
        return Adversary(self._magnitude_rule(), float(self.adv_weight),
                         int(self.n_pretrain_epochs))


class APR(_AdversarialCF):
    """Adversarial personalised ranking (He et al., SIGIR 2018) on MF or LightGCN.

    BPR training (see :class:`~skadvrec.cf.BPRMF`) plus, after ``n_pretrain_epochs``, the BPR
    loss under the worst-case perturbation of norm ``eps`` of the batch's user and item
    embeddings, weighted by ``adv_weight``. It is :class:`PamaCF` with
    ``magnitude="uniform"``; both share one implementation.

    Parameters
    ----------
    eps : float, default=0.5
        ε, the perturbation norm (the APR paper's default).
{adv}
    n_components : int, default=64
        Embedding size.
{training}

{attributes}

    Examples
    --------
    >>> from skadvrec.cf import APR
    >>> from skadvrec.datasets import make_interactions
    >>> df = make_interactions(n_users=200, n_items=50, random_state=0,
    ...                        return_frame=True).interactions
    >>> model = APR(eps=0.5, n_pretrain_epochs=2, max_iter=4, n_components=16, device="cpu",
    ...             random_state=0).fit(df)
    >>> model.history_[-1]["adversarial"] is not None
    True
    """

    _parameter_constraints = {**_AdversarialCF._parameter_constraints,
                              "eps": NON_NEGATIVE_REAL}

    def __init__(self, *, eps=0.5, adv_weight=1.0, n_pretrain_epochs=4, backbone="mf",
                 n_layers=3, n_components=64, learning_rate=1e-3, weight_decay=0.01, reg=1e-4,
                 init_std=0.1, batch_size=2048, max_iter=30, early_stopping=False,
                 n_iter_no_change=10, validation_fraction=0.1, validation_metric="recall@20",
                 fold_in_l2=1.0, dtype="float32", device="auto", rating_threshold=None,
                 random_state=None, verbose=False):
        self.eps = eps
        self.adv_weight = adv_weight
        self.n_pretrain_epochs = n_pretrain_epochs
        self.backbone = backbone
        self.n_layers = n_layers
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.reg = reg
        self.init_std = init_std
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.validation_metric = validation_metric
        self.fold_in_l2 = fold_in_l2
        self.dtype = dtype
        self.device = device
        self.rating_threshold = rating_threshold
        self.random_state = random_state
        self.verbose = verbose

    def _magnitude_rule(self):
        return _Uniform(self.eps)


class PamaCF(_AdversarialCF):
    """Personalised-magnitude adversarial CF (Zhang et al., NeurIPS 2024) on MF or LightGCN.

    Adversarial BPR as in :class:`APR`, but each triple's perturbation norm follows the user:
    with ``magnitude="personalised"`` (the reference code) it is
    ρ · γ · σ(‖e_u‖² / mean_batch ‖e_u‖² − 1), in (0, γρ) and ρ for a user of average squared
    norm; ``"paper"`` uses the paper's ρ · σ(‖e_u‖ − mean ‖e_u‖) over all users; ``"uniform"``
    gives APR with ε = ρ. Defaults are the reference code's MF settings on Gowalla.

    Parameters
    ----------
    rho : float, default=0.9
        ρ, the uniform part of the magnitude (the code's ``eps``; 0.9 for Gowalla, 0.5 for
        Yelp2018).
    magnitude : {{"personalised", "paper", "uniform"}}, default="personalised"
        The magnitude rule (see the module docstring).
    gamma : float, default=2.0
        γ of the ``"personalised"`` rule (the code's ``user_lmb``).
{adv}
    n_components : int, default=64
        Embedding size.
{training}

{attributes}

    Examples
    --------
    >>> from skadvrec.cf import PamaCF
    >>> from skadvrec.datasets import make_interactions
    >>> df = make_interactions(n_users=200, n_items=50, random_state=0,
    ...                        return_frame=True).interactions
    >>> model = PamaCF(rho=0.9, n_pretrain_epochs=2, max_iter=4, n_components=16,
    ...                device="cpu", random_state=0).fit(df)
    >>> model.transform(df).shape
    (200, 16)
    """

    _parameter_constraints = {**_AdversarialCF._parameter_constraints,
                              "rho": NON_NEGATIVE_REAL, "gamma": NON_NEGATIVE_REAL,
                              "magnitude": [StrOptions(set(MAGNITUDE_RULES))]}

    def __init__(self, *, rho=0.9, magnitude="personalised", gamma=2.0, adv_weight=1.0,
                 n_pretrain_epochs=4, backbone="mf", n_layers=3, n_components=64,
                 learning_rate=1e-3, weight_decay=0.01, reg=1e-4, init_std=0.1,
                 batch_size=2048, max_iter=30, early_stopping=False, n_iter_no_change=10,
                 validation_fraction=0.1, validation_metric="recall@20", fold_in_l2=1.0,
                 dtype="float32", device="auto", rating_threshold=None, random_state=None,
                 verbose=False):
        self.rho = rho
        self.magnitude = magnitude
        self.gamma = gamma
        self.adv_weight = adv_weight
        self.n_pretrain_epochs = n_pretrain_epochs
        self.backbone = backbone
        self.n_layers = n_layers
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.reg = reg
        self.init_std = init_std
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.validation_metric = validation_metric
        self.fold_in_l2 = fold_in_l2
        self.dtype = dtype
        self.device = device
        self.rating_threshold = rating_threshold
        self.random_state = random_state
        self.verbose = verbose

    def _magnitude_rule(self):
        if self.magnitude == "personalised":
            return _Personalised(self.rho, self.gamma)
        if self.magnitude == "paper":
            return _Paper(self.rho)
        return _Uniform(self.rho)


for _cls in (APR, PamaCF):
    _cls.__doc__ = _cls.__doc__.format(adv=_ADV_PARAMS.format(), training=_PAMACF_TRAINING_PARAMS,
                                       attributes=_ATTRIBUTES_AND_NOTES)
