"""The factorization machine as a small torch module, with optional embedding perturbations.

For a row with field vectors ``v_1 .. v_F`` the logit is

    z = b + Σ_f w_f + ½ Σ_d [(Σ_f v_fd)² − Σ_f v_fd²]

computed in O(k·F) (Rendle's identity). ``field_maps=False`` is the textbook FM: ``v_f`` is the
embedding ``e_f`` of the field's value (mean of its values' embeddings for a multi-valued
field; pairs *within* a multi-valued field are not counted) and ``w_f`` a learned weight per
value. ``field_maps=True`` is the released AAFM code's backbone: each field has its own linear
maps, ``w_f = u_fᵀ e_f + β_f`` and ``v_f = A_f e_f + c_f`` (and no global bias).

Absent fields (an unseen value: the unknown bucket; an empty tuple) contribute nothing: their
embedding row 0 is kept at zero (its gradient is cleared before each update) and, with field
maps, their ``v_f`` and ``w_f`` are masked.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FMNet"]


class FMNet(nn.Module):
    """Parameters and forward pass of a (field-map) factorization machine.

    Parameters
    ----------
    n_rows : int
        Rows of the shared embedding table (row 0 is the absent row).
    n_single, n_bags : int
        Number of single-valued and multi-valued fields (single ones come first).
    n_components : int
    field_maps : bool
    init_std : float
        Embeddings start as N(0, init_std²) (row 0 at zero).
    generator : torch.Generator
    device, dtype
    """

    def __init__(self, n_rows, n_single, n_bags, n_components, field_maps, init_std, generator,
                 device, dtype):
        super().__init__()
        d, n_fields = n_components, n_single + n_bags
        kw = dict(device=device, dtype=dtype)
        emb = torch.randn(n_rows, d, generator=generator, **kw) * init_std
        emb[0] = 0
        self.embedding = nn.Parameter(emb)
        self.n_single, self.n_bags, self.field_maps = n_single, n_bags, bool(field_maps)
        if self.field_maps:  # nn.Linear's initialisation, U(-1/√d, 1/√d)
            bound = 1.0 / math.sqrt(d)

            def uniform(*shape):
                return (torch.rand(*shape, generator=generator, **kw) * 2 - 1) * bound

            self.map_weight = nn.Parameter(uniform(n_fields, d, d))
            self.map_bias = nn.Parameter(uniform(n_fields, d))
            self.linear_weight = nn.Parameter(uniform(n_fields, d))
            self.linear_bias = nn.Parameter(uniform(n_fields))
        else:
            self.weight = nn.Parameter(torch.zeros(n_rows, **kw))
            self.bias = nn.Parameter(torch.zeros((), **kw))

    # -- field vectors ---------------------------------------------------------------------------
    def fields(self, single, bags, eps=None, direction=None):
        """Field vectors ``v`` (n, F, d) and first-order terms (n, F) of coded rows.

        ``eps`` (n, F) scales the perturbation ``direction`` (a (n_rows, d) table) of each
        field's value rows; None for the clean model. A multi-valued field is the mean of its
        values (padding excluded); as its values share one strength, the mean of the
        perturbed embeddings is the mean embedding plus the strength times the mean direction.
        """
        counts = [(b > 0).sum(1, keepdim=True).clamp(min=1).to(self.embedding.dtype)
                  for b in bags]
        e = _pooled(self.embedding, single, bags, counts)
        if eps is not None:
            e = e + eps[..., None] * _pooled(direction, single, bags, counts)
        if self.field_maps:
            known = torch.cat([single > 0] + [(b > 0).any(1, keepdim=True) for b in bags], 1)
            k = known.to(e.dtype)
            lin = ((e * self.linear_weight).sum(-1) + self.linear_bias) * k
            v = (torch.einsum("nfd,fde->nfe", e, self.map_weight) + self.map_bias) * k[..., None]
            return v, lin
        return e, _pooled(self.weight[:, None], single, bags, counts).squeeze(-1)

    def clear_absent_grad(self):
        """Keep the absent row at zero: drop the gradient it collected from padding codes."""
        for p in (self.embedding, getattr(self, "weight", None)):
            if p is not None and p.grad is not None:
                p.grad[0] = 0

    def intercept(self):
        return self.bias if not self.field_maps else self.embedding.new_zeros(())

    # -- scores ----------------------------------------------------------------------------------
    def forward(self, single, bags, eps=None, direction=None):
        """Logits ``(n,)`` of the rows coded ``single`` / ``bags``."""
        v, lin = self.fields(single, bags, eps, direction)
        s = v.sum(1)
        pair = 0.5 * ((s * s).sum(-1) - (v * v).sum((1, 2)))
        return self.intercept() + lin.sum(1) + pair

    def side(self, single, bags):
        """``(S, a)`` of partial rows (the other fields absent): the summed field vectors
        ``S`` (n, d) and ``a`` (n,), the first-order plus within-side pairwise part, so that a
        user row and an item row combine as ``b + a_u + a_i + S_u · S_i``."""
        v, lin = self.fields(single, bags)
        s = v.sum(1)
        return s, lin.sum(1) + 0.5 * ((s * s).sum(-1) - (v * v).sum((1, 2)))


def _pooled(table, single, bags, counts):
    """Rows of ``table`` (n_rows, d) for the codes: (n, F, d), a bag's rows averaged (row 0,
    the padding, is zero and not counted). One gather per block: the backward is a plain
    ``index_add`` (no sort, unlike ``embedding`` / ``embedding_bag``)."""
    n, d = single.shape[0], table.shape[1]
    out = [table.index_select(0, single.reshape(-1)).view(n, -1, d)]
    for bag, cnt in zip(bags, counts):
        rows = table.index_select(0, bag.reshape(-1)).view(n, -1, d)
        out.append((rows.sum(1) / cnt)[:, None])
    return torch.cat(out, 1) if bags else out[0]
