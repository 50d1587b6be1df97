"""LightGCN (He et al., SIGIR 2020): embeddings smoothed over the user–item graph.

The ego embeddings E⁽⁰⁾ are propagated over the symmetrically normalised bipartite graph,
E⁽ˡ⁺¹⁾ = D^{-1/2} A D^{-1/2} E⁽ˡ⁾, and the final embedding is the mean of the layers 0..L. With
R the user × item matrix normalised as R_ui / sqrt(d_u d_i), a layer is e_u ← R e_i and
e_i ← Rᵀ e_u; both products are sparse × dense on the device, and the backward pass multiplies
by the stored transpose, so no sparse transpose is formed during training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .._torch import csr_to_torch
from ._base import _ATTRIBUTES_AND_NOTES, _TRAINING_PARAMS, _EmbeddingRecommender

__all__ = ["LightGCN", "normalized_graph", "propagate"]


@dataclass
class _Graph:
    R: torch.Tensor   # (n_users, n_items) normalised, sparse CSR on the device
    Rt: torch.Tensor  # its transpose, also CSR


def normalized_graph(X, device, dtype=torch.float32):
    """The normalised interaction matrix R_ui / sqrt(d_u d_i) and its transpose, on ``device``.

    Parameters
    ----------
    X : sparse matrix of shape (n_users, n_items)
        Binary training interactions.
    device : torch.device
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    graph : object with attributes ``R`` and ``Rt`` (torch sparse CSR tensors)
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    X.data[:] = 1.0
    du = np.asarray(X.sum(axis=1)).ravel()
    di = np.asarray(X.sum(axis=0)).ravel()
    inv_u = np.divide(1.0, np.sqrt(du), out=np.zeros_like(du), where=du > 0)
    inv_i = np.divide(1.0, np.sqrt(di), out=np.zeros_like(di), where=di > 0)
    R = sp.csr_matrix(sp.diags(inv_u) @ X @ sp.diags(inv_i))
    return _Graph(csr_to_torch(R, device, dtype), csr_to_torch(R.T.tocsr(), device, dtype))


class _SpMM(torch.autograd.Function):
    """y = A x for a constant sparse A; the backward pass multiplies by the stored ``At = Aᵀ``."""

    @staticmethod
    def forward(ctx, A, At, x):
        ctx.At = At
        return A @ x

    @staticmethod
    def backward(ctx, grad):
        return None, None, ctx.At @ grad


def propagate(graph, U, V, n_layers):
    """Final LightGCN embeddings: the mean of ``n_layers + 1`` propagated layers.

    Parameters
    ----------
    graph : the output of :func:`normalized_graph`
    U, V : Tensor of shape (n_users, d) and (n_items, d)
        Ego embeddings.
    n_layers : int

    Returns
    -------
    U_final, V_final : Tensor
    """
    su, sv = U, V
    eu, ev = U, V
    for _ in range(n_layers):
        eu, ev = _SpMM.apply(graph.R, graph.Rt, ev), _SpMM.apply(graph.Rt, graph.R, eu)
        su = su + eu
        sv = sv + ev
    scale = 1.0 / (n_layers + 1)
    return su * scale, sv * scale


class LightGCN(_EmbeddingRecommender):
    """LightGCN trained with BPR (He et al., SIGIR 2020).

    Ego embeddings (``n_components``, N(0, ``init_std``²)) are propagated ``n_layers`` times over
    the normalised user–item graph; the final embedding is the mean of the layers and
    s(u, i) = e_uᵀ e_i. Each step propagates the whole graph on the device (sparse × dense
    products, two per layer), takes a batch of uniformly sampled triples (u, i⁺, j⁻) and
    minimises mean softplus(s(u, j) − s(u, i)) + ``reg`` · mean(‖u⁰‖² + ‖i⁰‖² + ‖j⁰‖²) with AdamW
    (one epoch = as many triples as training interactions). For adversarial training on this
    backbone use :class:`~skadvrec.cf.APR` or :class:`~skadvrec.cf.PamaCF` with
    ``backbone="lightgcn"``.

    Parameters
    ----------
    n_components : int, default=64
        Embedding size.
    n_layers : int, default=3
        Propagation layers (0 gives BPR-MF).
{training}

{attributes}

    Examples
    --------
    >>> from skadvrec.cf import LightGCN
    >>> from skadvrec.datasets import make_interactions
    >>> df = make_interactions(n_users=200, n_items=50, random_state=0,
    ...                        return_frame=True).interactions
    >>> model = LightGCN(n_components=16, max_iter=3, device="cpu", random_state=0).fit(df)
    >>> model.transform(df).shape
    (200, 16)
    """

    def __init__(self, *, n_components=64, n_layers=3, learning_rate=1e-3, weight_decay=0.0,
                 reg=1e-4, init_std=0.1, batch_size=2048, max_iter=1000, early_stopping=False,
                 n_iter_no_change=10, validation_fraction=0.1, validation_metric="recall@20",
                 fold_in_l2=1.0, dtype="float32", device="auto", rating_threshold=None,
                 random_state=None, verbose=False):
        self.n_components = n_components
        self.n_layers = n_layers
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

    def _backbone_name(self):
        return "lightgcn"


LightGCN.__doc__ = LightGCN.__doc__.format(
    training=_TRAINING_PARAMS.format(weight_decay=0.0, max_iter=1000,
                                     weight_decay_note="the LightGCN code uses Adam: none"),
    attributes=_ATTRIBUTES_AND_NOTES)
