"""The backbones of the embedding recommenders: how final embeddings come from the ego ones.

A backbone is a small object with ``prepare(train_matrix, device, dtype)`` (called once per fit,
before training) and ``propagate(U, V) -> (U_final, V_final)`` (differentiable, called at every
step and to store the fitted factors). :class:`MFBackbone` is the identity (BPR-MF);
:class:`LightGCNBackbone` averages the layers of LightGCN's graph propagation (He et al., SIGIR
2020): E⁽ˡ⁺¹⁾ = D^{-1/2} A D^{-1/2} E⁽ˡ⁾ over the bipartite user–item graph. With R the
user × item matrix normalised as R_ui / sqrt(d_u d_i), a layer is e_u ← R e_i and
e_i ← Rᵀ e_u; both products are sparse × dense on the device, computed as
``torch.nn.functional.embedding_bag`` (mode "sum", the normalised values as per-sample weights)
over the CSR structure, the same product as ``torch.sparse.mm`` but several times faster on the
CPU (FBGEMM's kernel; issue 14). The backward pass is the same kind of product with the stored
transpose, so no sparse transpose is formed during training.

This module imports nothing from the trainer (:mod:`skadvrec.cf._base`), which imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .._torch import csr_to_torch

__all__ = ["MFBackbone", "LightGCNBackbone", "csr_matmul", "normalized_graph", "propagate"]


@dataclass
class _Graph:
    R: torch.Tensor   # (n_users, n_items) normalised, sparse CSR on the device (int32 indices)
    Rt: torch.Tensor  # its transpose, also CSR


def csr_matmul(A, x):
    """``A @ x`` for a torch sparse CSR ``A`` and a dense ``x``, as one ``embedding_bag`` call.

    Row r of the product is the sum of the rows ``x[col]`` weighted by ``A``'s values in row r:
    exactly what embedding_bag computes with the column indices as the bag members, the row
    pointer as the offsets (``include_last_offset``) and the values as per-sample weights.
    Empty rows give zero rows. Not differentiable with respect to ``A`` (see :func:`propagate`
    for the gradient with respect to ``x``).
    """
    if A.crow_indices().numel() <= 1 or x.shape[0] == 0:
        return x.new_zeros((A.shape[0], x.shape[1]))
    return F.embedding_bag(A.col_indices(), x, A.crow_indices(), mode="sum",
                           per_sample_weights=A.values(), include_last_offset=True)


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

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> g = normalized_graph(sp.csr_matrix([[1.0, 1.0], [0.0, 1.0]]), "cpu")
    >>> g.R.to_dense()
    tensor([[0.7071, 0.5000],
            [0.0000, 0.7071]])
    """
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)  # never the caller's buffers
    X.data[:] = 1.0
    du = np.asarray(X.sum(axis=1)).ravel()
    di = np.asarray(X.sum(axis=0)).ravel()
    inv_u = np.divide(1.0, np.sqrt(du), out=np.zeros_like(du), where=du > 0)
    inv_i = np.divide(1.0, np.sqrt(di), out=np.zeros_like(di), where=di > 0)
    R = sp.csr_matrix(sp.diags(inv_u) @ X @ sp.diags(inv_i))
    if max(R.shape) >= 2**31 - 1 or R.nnz >= 2**31 - 1:
        raise ValueError(f"graph too large for int32 indices: {R.shape}, {R.nnz} non-zeros")
    R.sort_indices()
    return _Graph(csr_to_torch(R, device, dtype, np.int32),
                  csr_to_torch(R.T.tocsr(), device, dtype, np.int32))


class _SpMM(torch.autograd.Function):
    """y = A x for a constant sparse A; the backward pass multiplies by the stored ``At = Aᵀ``.

    Both products are :func:`csr_matmul` (embedding_bag); ``torch.sparse.mm`` computes the same
    (the reference in the tests) but was 7× slower on the CPU for Gowalla's graph (issue 14).
    """

    @staticmethod
    def forward(ctx, A, At, x):
        ctx.At = At
        return csr_matmul(A, x.contiguous())

    @staticmethod
    def backward(ctx, grad):
        return None, None, csr_matmul(ctx.At, grad.contiguous())


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


class MFBackbone:
    """Matrix factorisation: the final embeddings are the ego embeddings."""

    is_identity = True  # the trainer may then update the batch's rows only

    def prepare(self, X, device, dtype):
        """Nothing to build; returns self."""
        return self

    def propagate(self, U, V):
        """(U, V) unchanged."""
        return U, V


class LightGCNBackbone:
    """LightGCN: the mean of ``n_layers + 1`` layers propagated over the training graph.

    Parameters
    ----------
    n_layers : int
        Propagation layers (0 is :class:`MFBackbone`).

    Examples
    --------
    >>> import scipy.sparse as sp, torch
    >>> bb = LightGCNBackbone(2).prepare(sp.csr_matrix([[1.0, 0.0], [1.0, 1.0]]), "cpu",
    ...                                  torch.float32)
    >>> [t.shape for t in bb.propagate(torch.ones(2, 3), torch.ones(2, 3))]
    [torch.Size([2, 3]), torch.Size([2, 3])]
    """

    def __init__(self, n_layers):
        self.n_layers = int(n_layers)
        self.graph = None

    @property
    def is_identity(self):
        """True with no layer (then it is :class:`MFBackbone`)."""
        return self.n_layers == 0

    def prepare(self, X, device, dtype):
        """Build the normalised graph of the training matrix ``X`` on ``device``; returns self."""
        self.graph = normalized_graph(X, device, dtype) if self.n_layers > 0 else None
        return self

    def propagate(self, U, V):
        """Final (user, item) embeddings from the ego ones."""
        if self.n_layers == 0:
            return U, V
        return propagate(self.graph, U, V, self.n_layers)
