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
    "DenseAdam",
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


class DenseAdam:
    """Adam over a fixed list of tensors with the per-step cost of one kernel call.

    The update is ``torch.optim.Adam``'s (coupled L2 ``weight_decay``, bias-corrected moments,
    dense: every row of every tensor moves each step, as the optimizer used before): on a
    torch with the fused Adam kernel for the tensors' device (CUDA; the CPU from torch 2.4)
    it calls that very kernel, so the result is the same to the bit as
    ``torch.optim.Adam(..., fused=True)``; otherwise it runs the single-tensor update in a
    few tensor operations. What it leaves out is ``torch.optim.Optimizer``'s machinery
    (hooks, parameter groups, state dicts, the differentiable / capturable branches), which
    costs ~0.15 ms per step on the CPU: half the step of a small model (the FM family's).
    Tensors whose ``grad`` is None are skipped in that step (their moments and step count
    stay), as ``torch.optim.Adam`` does. Gradients are set by the caller; ``step`` neither
    reads nor clears anything else. Not a row-sparse ("lazy") Adam: it is only cheaper
    per call, not per row.

    Parameters
    ----------
    params : iterable of Tensor
        Leaf tensors of one dtype and device.
    lr : float
    weight_decay : float, default=0.0
    betas : tuple of float, default=(0.9, 0.999)
    eps : float, default=1e-8
    """

    def __init__(self, params, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self._state = {}
        kinds = {(p.device, p.dtype) for p in self.params}
        dev = self.params[0].device if self.params else torch.device("cpu")
        self._fused = (len(kinds) == 1 and hasattr(torch, "_fused_adam_")
                       and adam_options(dev).get("fused", False))

    def _state_of(self, p):
        st = self._state.get(id(p))
        if st is None:
            step_dtype = torch.float32 if self._fused else p.dtype
            st = (torch.zeros_like(p, memory_format=torch.preserve_format),
                  torch.zeros_like(p, memory_format=torch.preserve_format),
                  torch.zeros((), dtype=step_dtype, device=p.device))
            self._state[id(p)] = st
        return st

    @torch.no_grad()
    def step(self):
        live = [p for p in self.params if p.grad is not None]
        if not live:
            return
        states = [self._state_of(p) for p in live]
        m, v, steps = ([s[i] for s in states] for i in range(3))
        grads = [p.grad for p in live]
        torch._foreach_add_(steps, 1)
        if self._fused:
            torch._fused_adam_(live, grads, m, v, [], steps, lr=self.lr, beta1=self.beta1,
                               beta2=self.beta2, weight_decay=self.weight_decay,
                               eps=self.eps, amsgrad=False, maximize=False)
            return
        for p, g, m_, v_, t in zip(live, grads, m, v, steps):
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            m_.lerp_(g, 1 - self.beta1)
            v_.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            n = float(t)
            step_size = self.lr / (1 - self.beta1 ** n)
            denom = (v_.sqrt() / (1 - self.beta2 ** n) ** 0.5).add_(self.eps)
            p.addcdiv_(m_, denom, value=-step_size)


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
