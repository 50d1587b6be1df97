"""Torch plumbing shared by every estimator family.

Device resolution, seeded generators, scipy.sparse → torch conversion, row batching and the
gradient-reversal layer live here once, so that no family re-implements them.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "RowAdamW",
    "resolve_device",
    "resolve_dtype",
    "make_generator",
    "seed_from_random_state",
    "csr_to_torch",
    "dense_rows",
    "csr_row_coords",
    "iter_row_batches",
    "grad_reverse",
    "device_free_bytes",
    "adam_options",
    "ridge_fold_in",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device="auto") -> torch.device:
    """Turn the estimators' ``device`` parameter into a :class:`torch.device`.

    ``"auto"`` picks the first CUDA device when one is visible, else the CPU. An explicit
    CUDA device that is not available raises instead of silently running on the CPU.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(
            f"device must be a string such as 'auto', 'cpu', 'cuda' or 'cuda:1'; got {device!r}."
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', 'cuda' or "
            "'cuda:<index>'."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this machine; "
                "use device='auto' or device='cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} does not exist: only {torch.cuda.device_count()} CUDA "
                "device(s) are visible."
            )
    elif dev.type != "cpu":
        raise ValueError(f"device type {dev.type!r} is not supported; use 'cpu' or 'cuda'.")
    return dev


def resolve_dtype(dtype="float32") -> torch.dtype:
    """Map the ``dtype`` parameter (``"float32"`` or ``"float64"``) to a torch dtype."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}.")
    return _DTYPES[key]


def seed_from_random_state(random_state) -> int:
    """Draw a 63-bit seed from anything :func:`sklearn.utils.check_random_state` accepts."""
    from sklearn.utils import check_random_state

    rs = check_random_state(random_state)
    return int(rs.randint(0, 2**31 - 1)) * 2**31 + int(rs.randint(0, 2**31 - 1))


def make_generator(random_state, device) -> torch.Generator:
    """A torch generator on ``device`` seeded from ``random_state`` (never global seeding)."""
    dev = torch.device(device)
    gen = torch.Generator(device=dev.type if dev.type == "cpu" else dev)
    gen.manual_seed(seed_from_random_state(random_state))
    return gen


def csr_to_torch(X, device, dtype=torch.float32) -> torch.Tensor:
    """Convert a scipy sparse matrix to a torch sparse CSR tensor on ``device``."""
    X = sp.csr_matrix(X)
    with warnings.catch_warnings():  # "sparse CSR support is in beta" on every call
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)),
            torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(X.data).to(dtype),
            size=X.shape,
            check_invariants=False,  # scipy already guarantees a valid CSR structure
        ).to(device)


def dense_rows(X, rows, device, dtype=torch.float32) -> torch.Tensor:
    """Rows ``rows`` (slice or index array) of scipy CSR ``X`` as a dense tensor on ``device``.

    The scatter happens on the target device, so only the non-zeros cross the bus.
    """
    sub = X[rows]
    n_rows = sub.shape[0]
    out = torch.zeros((n_rows, X.shape[1]), dtype=dtype, device=device)
    if sub.nnz:
        counts = np.diff(sub.indptr)
        r = torch.from_numpy(np.repeat(np.arange(n_rows), counts)).to(device)
        c = torch.from_numpy(sub.indices.astype(np.int64)).to(device)
        v = torch.from_numpy(sub.data).to(device=device, dtype=dtype)
        out[r, c] = v
    return out


def csr_row_coords(X, rows, device):
    """(row, col) index tensors of the non-zeros of ``X[rows]``, rows numbered from 0."""
    sub = X[rows]
    r = torch.from_numpy(np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))).to(device)
    c = torch.from_numpy(sub.indices.astype(np.int64)).to(device)
    return r, c


def iter_row_batches(n_rows: int, batch_size: int):
    """Yield ``slice`` objects that cover ``range(n_rows)`` in order."""
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    for start in range(0, n_rows, batch_size):
        yield slice(start, min(start + batch_size, n_rows))


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes, or None where it cannot be told (CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import os

        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        return int(pages * size)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def adam_options(device) -> dict:
    """Keyword arguments for ``torch.optim.Adam`` / ``AdamW`` on ``device``: the fused kernel
    where this torch has it (CUDA; the CPU from torch 2.4 on), which is several times faster
    than the per-parameter loop on large embedding tables."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return {"fused": True}
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    return {"fused": True} if (major, minor) >= (2, 4) else {"foreach": True}


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``-scale`` going back."""
    return _GradReverse.apply(x, float(scale))


def ridge_fold_in(V: torch.Tensor, l2: float) -> torch.Tensor:
    """The ridge fold-in projection ``P = V (VᵀV + l2·I)⁻¹`` of item factors ``V``.

    A new user with interaction row ``x`` (length n_items) gets the least-squares user vector
    ``u(x) = (VᵀV + l2·I)⁻¹ Vᵀ x = x @ P`` with the item factors frozen (implicit's
    ``recalculate_user``), so a batch of rows is folded in by one product ``X @ P``.

    Parameters
    ----------
    V : Tensor of shape (n_items, d)
        Item factors.
    l2 : float
        Ridge penalty (> 0 keeps the system well posed).

    Returns
    -------
    P : Tensor of shape (n_items, d), contiguous, on V's device and dtype

    Examples
    --------
    >>> import torch
    >>> V = torch.eye(3, 2, dtype=torch.float64)
    >>> ridge_fold_in(V, 1.0)
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000],
            [0.0000, 0.0000]], dtype=torch.float64)
    """
    d = V.shape[1]
    gram = V.T @ V + float(l2) * torch.eye(d, device=V.device, dtype=V.dtype)
    return torch.linalg.solve(gram, V.T).T.contiguous()


class RowAdamW:
    """AdamW on the rows of an embedding table that a step touches (a lazy, row-sparse AdamW).

    ``p = fetch(rows)`` reads the rows a batch uses (``rows`` unique), and ``step(rows, p,
    grad)`` updates only them (``grad`` their summed gradient): the rows' first and second moments are updated and the Adam step applied with the
    global bias correction (step count t), as in ``torch.optim.SparseAdam`` / TensorFlow's
    LazyAdam. Rows not in the batch keep their moments unchanged (dense Adam would decay them and
    keep moving a row on its momentum); that is the only difference from ``torch.optim.AdamW``.

    Weight decay is *exact*, not lazy: dense AdamW multiplies every row by (1 − lr·wd) at every
    step. Here each row remembers the step at which it was last decayed; when it is fetched again
    it is first multiplied by (1 − lr·wd)^(steps missed), and :meth:`flush` brings every row up to
    date (called before the table is read as a whole: end of an epoch, snapshot, scoring). A row
    that never gets a gradient therefore ends exactly where dense AdamW puts it, and a row
    touched at every step follows dense AdamW exactly.

    Parameters
    ----------
    table : Tensor of shape (n_rows, d)
        Updated in place (not a leaf that requires grad).
    lr, weight_decay, betas, eps : as ``torch.optim.AdamW``

    Examples
    --------
    >>> import torch
    >>> W = torch.ones(4, 2)
    >>> opt = RowAdamW(W, lr=0.1, weight_decay=0.5)
    >>> rows = torch.tensor([0, 2])
    >>> opt.step(rows, opt.fetch(rows), torch.ones(2, 2))
    >>> opt.flush()
    >>> W[:, 0]
    tensor([0.8500, 0.9500, 0.8500, 0.9500])
    """

    def __init__(self, table, *, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
        self.table = table
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.exp_avg = torch.zeros_like(table)
        self.exp_avg_sq = torch.zeros_like(table)
        self.t = 0
        # decay per step and the step up to which each row has been decayed
        self._keep = 1.0 - self.lr * self.weight_decay
        self._decayed_to = (torch.zeros(table.shape[0], dtype=torch.long, device=table.device)
                            if self.weight_decay > 0 else None)

    def _decay_factors(self, rows, upto):
        missed = (upto - self._decayed_to[rows]).to(self.table.dtype)
        return torch.pow(torch.as_tensor(self._keep, dtype=self.table.dtype,
                                         device=self.table.device), missed)

    @torch.no_grad()
    def fetch(self, rows):
        """``table[rows]`` (a new tensor) with the weight decay of the steps so far applied:
        the values dense AdamW would hold now. Pass it back to :meth:`step` unchanged."""
        p = self.table.index_select(0, rows)
        if self._decayed_to is not None and self.t > 0:
            p.mul_(self._decay_factors(rows, self.t).unsqueeze(1))
            self._decayed_to.index_fill_(0, rows, self.t)
        return p

    @torch.no_grad()
    def step(self, rows, p, grad):
        """One AdamW step on ``table[rows]``: ``p`` is what :meth:`fetch` returned for the same
        unique ``rows`` (updated in place and written back), ``grad`` their summed gradient."""
        self.t += 1
        t, b1, b2 = self.t, self.beta1, self.beta2
        if self._decayed_to is not None:
            p.mul_(self._keep)
            self._decayed_to.index_fill_(0, rows, t)
        m = self.exp_avg.index_select(0, rows).mul_(b1).add_(grad, alpha=1.0 - b1)
        v = self.exp_avg_sq.index_select(0, rows).mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        self.exp_avg.index_copy_(0, rows, m)
        self.exp_avg_sq.index_copy_(0, rows, v)
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        denom = v.sqrt_().div_(bc2 ** 0.5).add_(self.eps)
        p.addcdiv_(m, denom, value=-self.lr / bc1)
        self.table.index_copy_(0, rows, p)

    @torch.no_grad()
    def flush(self):
        """Apply the weight decay every row is owed up to the current step."""
        if self._decayed_to is not None and self.t > 0:
            all_rows = torch.arange(self.table.shape[0], device=self.table.device)
            self.table.mul_(self._decay_factors(all_rows, self.t).unsqueeze(1))
            self._decayed_to.fill_(self.t)

    def current(self):
        """The table as dense AdamW's weight decay would have it now (a new tensor; the table
        itself is left lazy)."""
        if self._decayed_to is None or self.t == 0:
            return self.table
        all_rows = torch.arange(self.table.shape[0], device=self.table.device)
        return self.table * self._decay_factors(all_rows, self.t).unsqueeze(1)
