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

__all__ = ["FMNet", "RowLayout"]


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


# -- the hand-written training pass of the textbook FM ----------------------------------------------
#
# Autograd spends most of a small FM step on bookkeeping (two gathers and two scatters per
# table, a dozen tiny backward nodes, the gradient of the absent row cleared afterwards). The
# textbook FM's gradient is short enough to write out: with ``s = Σ_f v_f`` and
# ``z = b + Σ_f w_f + ½(‖s‖² − Σ_f ‖v_f‖²)``, ``∂z/∂v_f = s − v_f`` and ``∂z/∂w_f = 1``. A batch
# is then one gather and one scatter per table, whatever the number of fields.


class RowLayout:
    """How the code block of a batch is laid out, **field-major**: ``codes`` (T, n) holds
    ``n_single`` rows of single-valued codes, then one block of padded rows per multi-valued
    field (``bag_slices``). Field-major keeps the reductions over fields (``Σ_f v_f``) and the
    broadcasts back (``s − v_f``) on contiguous slabs. ``scale`` (T, n), only with bags: 1 for
    a single-valued row and 1 / (number of values) for a bag's row (0 on its padding), so that
    ``x * scale`` summed over a block is the bag's mean."""

    def __init__(self, n_single, bag_widths):
        self.n_single = int(n_single)
        self.bag_slices, start = [], self.n_single
        for w in bag_widths:
            self.bag_slices.append((start, start + int(w)))
            start += int(w)
        self.width = start

    @staticmethod
    def codes(single, bags, dtype):
        """Field-major ``(codes, scale)`` (T, n) of coded rows (``scale`` None without
        bags)."""
        if not bags:
            return single.T.contiguous(), None
        counts = [(b > 0).sum(1, keepdim=True).clamp(min=1) for b in bags]
        scale = torch.cat([torch.ones(single.shape, dtype=dtype, device=single.device)]
                          + [(b > 0).to(dtype) / c.to(dtype) for b, c in zip(bags, counts)], 1)
        return torch.cat([single, *bags], 1).T.contiguous(), scale.T.contiguous()

    def split(self, codes):
        """Row-major ``(single, bags)`` of a field-major code block (for :class:`FMNet`)."""
        return codes[:self.n_single].T, [codes[a:b].T for a, b in self.bag_slices]

    def blocks(self, x, scale):
        """Field vectors of gathered rows ``x`` (T, n, d) as blocks (m, n, d): the
        single-valued fields' rows (a view, no copy), then each bag's mean (1, n, d)."""
        return [x[:self.n_single]] + [(x[a:b] * scale[a:b, :, None]).sum(0, keepdim=True)
                                      for a, b in self.bag_slices]

    def row_grad(self, dz, blocks, s, scale, fused=False):
        """``(rows, fields)``: the gradient of the rows gathered for ``blocks`` (T·n, d),
        ready for one scatter, and per block the field gradient ``dz · (s − v_f)`` (for the
        strengths of AAFM), for ``dz = ∂L/∂z`` (n,) and ``s = Σ_f v_f``. ``fused``: the
        single-valued fields' block as one multiply-add ``dz·s − dz·v_f`` (one pass instead
        of two; rounds differently from ``(s − v_f)·dz``)."""
        n, d = s.shape
        out = s.new_empty(self.width, n, d)
        dz = dz[:, None]
        if fused:
            single = torch.addcmul(s * dz, blocks[0], dz, value=-1, out=out[:self.n_single])
        else:
            single = torch.sub(s, blocks[0], out=out[:self.n_single]).mul_(dz)
        fields = [single]
        for (a, b), v in zip(self.bag_slices, blocks[1:]):
            g = (s - v[0]).mul_(dz)
            torch.mul(g, scale[a:b, :, None], out=out[a:b])
            fields.append(g[None])
        return out.view(-1, d), fields

    def split_fields(self, t):
        """A (F, ...) per-field tensor cut like the blocks."""
        return [t[:self.n_single]] + [t[self.n_single + j:self.n_single + j + 1]
                                      for j in range(len(self.bag_slices))]


def fm_logits(blocks, lin, bias):
    """``(z, s)``: logits of field vectors given as blocks (m, n, d) with first-order sums
    ``lin`` (n,), and the summed field vectors ``s`` (n, d). The sums over fields run on
    contiguous (n, d) slabs; one reduction over d remains."""
    s = blocks[0].sum(0)
    sq = (blocks[0] * blocks[0]).sum(0)
    for v in blocks[1:]:
        s = s + v[0]
        sq = sq + v[0] * v[0]
    return bias + lin + 0.5 * (s * s - sq).sum(1), s
