"""Torch plumbing shared by every estimator family.

Device resolution, seeded generators, scipy.sparse → torch conversion, row batching and the
gradient-reversal layer live here once, so that no family re-implements them.
"""

from __future__ import annotations

import numbers
import os
import time
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
    "check_device_memory",
    "adam_options",
    "DenseAdam",
    "ridge_fold_in",
    "zeros_hugepages",
    "idle_cpu_threads",
    "runnable_threads_of_others",
    "TorchThreadCap",
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


def csr_to_torch(X, device, dtype=torch.float32, index_dtype=np.int64) -> torch.Tensor:
    """Convert a scipy sparse matrix to a torch sparse CSR tensor on ``device``
    (``index_dtype=np.int32``: embedding_bag's fastest CPU path, for graphs below 2³¹)."""
    X = sp.csr_matrix(X)
    with warnings.catch_warnings():  # "sparse CSR support is in beta" on every call
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(index_dtype)),
            torch.from_numpy(X.indices.astype(index_dtype)),
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


def _host_available_bytes():
    """Memory the OS can give this process without swapping: psutil's ``available`` when
    psutil is installed, else ``MemAvailable`` of /proc/meminfo, else the free pages."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def device_free_bytes(device: torch.device) -> int | None:
    """Memory that can still be allocated on ``device`` in bytes (CUDA: ``mem_get_info``; CPU:
    the host's available memory), or None where it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return _host_available_bytes()


def check_device_memory(need, device, what, fix, *, free=None):
    """Raise a ``MemoryError`` before allocating ``need`` bytes on ``device`` when less is free.

    ``what`` says what would be allocated, ``fix`` what to do instead; both go into the message.
    ``free`` defaults to :func:`device_free_bytes` (looked up through this module at call time,
    so tests can replace it).

    Examples
    --------
    >>> check_device_memory(1024, "cpu", "a small buffer", "nothing")  # fits: no error
    """
    device = torch.device(device)
    if free is None:
        free = device_free_bytes(device)
    if free is not None and need > free:
        raise MemoryError(
            f"{what} needs about {need / 2**30:.2f} GiB on {device} but only "
            f"{free / 2**30:.2f} GiB is free. {fix}")


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


def runnable_threads_of_others():
    """Threads runnable right now on the machine, other than this process's (Linux), or None.

    The numerator of /proc/loadavg's fourth field is the instantaneous count of runnable
    threads; this process's own runnable threads (``/proc/self/task/*/stat``, state R: e.g.
    BLAS / OpenMP workers still spinning after a previous call) are subtracted. Median of 5
    samples 1 ms apart (a shell command starting at that instant is not a busy core). In a
    container the count is the host's, so a busy host can lower a cap below what the container
    could use.
    """
    import glob

    try:
        counts = []
        for _ in range(5):
            with open("/proc/loadavg") as f:
                total = int(f.read().split()[3].split("/")[0])
            own = 0
            for path in glob.glob("/proc/self/task/*/stat"):
                try:
                    with open(path) as f:
                        own += f.read().rsplit(")", 1)[1].split()[0] == "R"
                except OSError:
                    pass
            counts.append(max(0, total - own))
            time.sleep(0.001)
        return sorted(counts)[2]
    except (OSError, ValueError, IndexError):
        return None


def idle_cpu_threads(requested):
    """``requested`` threads capped to the CPUs (of this process's affinity) that no other
    process's runnable thread holds now (Linux; elsewhere ``requested``); at least 1, never
    more than ``requested``.

    Threads that split each operation and wait for all of them (OpenMP, BLAS) stall whenever
    one is descheduled: beside another busy process, 2 threads on a 2-core machine ran an
    epoch several times slower than 1 (issue 14). The cap keeps them to the idle CPUs.
    """
    requested = int(requested)
    if requested <= 1:
        return max(1, requested)
    others = runnable_threads_of_others()
    if others is None:
        return requested
    try:
        n_cpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n_cpu = os.cpu_count() or 1
    return max(1, min(requested, n_cpu - others))


class TorchThreadCap:
    """Caps torch's intra-op threads to the idle CPUs during CPU training
    (:func:`idle_cpu_threads`), re-read by :meth:`update` (called once an epoch; the reading
    takes ~5 ms, so it is repeated at most every ``interval`` seconds, default ``INTERVAL``), and
    gives the count back on :meth:`restore`. On another device, or with one thread, it does
    nothing."""

    INTERVAL = 1.0

    def __init__(self, device, interval=None):
        self.requested = torch.get_num_threads()
        self.current = self.requested
        self.active = torch.device(device).type == "cpu" and self.requested > 1
        self.interval = float(self.INTERVAL if interval is None else interval)
        self._read_at = None

    def update(self):
        if not self.active:
            return
        now = time.monotonic()
        if self._read_at is not None and now - self._read_at < self.interval:
            return
        self._read_at = now
        n = idle_cpu_threads(self.requested)
        if n != self.current:
            torch.set_num_threads(n)
            self.current = n

    def restore(self):
        # only if nobody changed the count meanwhile (e.g. a thread of the user's own)
        if self.active and self.current != self.requested \
                and torch.get_num_threads() == self.current:
            torch.set_num_threads(self.requested)
        self.current = self.requested


_HUGE = 2 << 20  # bytes of a transparent huge page on x86-64 / arm64 Linux
_MADV_HUGEPAGE = 14


def _madvise_hugepages(addr, nbytes):
    """Ask Linux to back [addr, addr + nbytes) (2 MiB aligned) with transparent huge pages;
    False where that is not possible (another OS, no libc, THP disabled: then nothing changes)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn(addr, nbytes, _MADV_HUGEPAGE) == 0


def zeros_hugepages(shape, dtype, device) -> torch.Tensor:
    """A zero tensor whose memory Linux may back with 2 MiB transparent huge pages (CPU tensors
    of at least 2 MiB; ``torch.zeros`` otherwise, and wherever the advice is refused).

    A step that reads scattered rows of a table of tens of MB (the row-sparse optimiser) misses
    the TLB on nearly every row with 4 KiB pages; with huge pages the whole table is a few TLB
    entries. The tensor is an aligned view into a slightly larger buffer, which it keeps alive.
    """
    device = torch.device(device)
    numel = int(np.prod(shape))
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if device.type != "cpu" or nbytes < _HUGE:
        return torch.zeros(shape, dtype=dtype, device=device)
    buf = torch.empty(nbytes + _HUGE, dtype=torch.uint8)  # untouched: advice before first use
    off = (-buf.data_ptr()) % _HUGE
    # whole huge pages inside the buffer (a last partial one stays in small pages)
    _madvise_hugepages(buf.data_ptr() + off, (buf.numel() - off) // _HUGE * _HUGE)
    out = buf[off:off + nbytes].view(dtype).view(shape)
    return out.zero_()


def _steps_to_tiny(beta):
    """Steps after which beta**k < 1e-20."""
    import math

    return math.inf if beta <= 0 else (-20.0 / math.log10(beta) if beta < 1 else math.inf)


class RowAdamW:
    """AdamW on the rows of an embedding table that a step touches (a lazy, row-sparse AdamW).

    ``p = fetch(rows)`` reads the rows a batch uses (``rows`` unique) and ``step(rows, p,
    grad)`` updates only them (``grad`` their summed gradient): their first and second moments
    are updated and the Adam step applied with the global bias correction (step count t).

    Rows a step leaves out are caught up when they are next fetched (and by :meth:`flush`):
    dense Adam would have moved such a row k times on its decaying momentum, by
    lr · Σ_{s=1..k} b1^s m / (√(b2^s v̂) + eps); this is applied in closed form as
    lr · m̂ / (√v̂ + eps) · r (1 − r^k) / (1 − r) with r = b1 / √b2, and the moments are decayed
    by b1^k and b2^k. The closed form holds the bias corrections at their current values and
    moves eps out of the sum, so it is exact when a row is touched at every step or never, with
    b1 = 0, and up to those two approximations otherwise (``catch_up=False`` gives the lazy
    Adam of ``torch.optim.SparseAdam`` / TensorFlow's LazyAdam, which skips this movement).

    Weight decay is *exact*, not lazy: dense AdamW multiplies every row by (1 − lr·wd) at every
    step, and so does this one, through a common scale: the table is stored as values / s with
    s = (1 − lr·wd)^(steps since the last flush), so decaying every row is one scalar product.
    :meth:`fetch` returns true values; :meth:`flush` multiplies the stored table by s and resets
    it (call it before reading ``table`` as a whole: end of an epoch, snapshot, scoring). A row
    that never gets a gradient therefore ends exactly where dense AdamW puts it, and a row
    touched at every step follows dense AdamW exactly.

    The parameter and its two moments are stored interleaved, one (n_rows, 3, d) tensor, so a
    step gathers and scatters each touched row once; ``table`` is a (strided) view of it.

    Parameters
    ----------
    table : Tensor of shape (n_rows, d)
        The initial values (copied).
    lr, weight_decay, betas, eps : as ``torch.optim.AdamW``
    catch_up : bool, default=True
        Apply the momentum movement of the steps a row missed (see above).

    Attributes
    ----------
    table : Tensor of shape (n_rows, d)
        The parameter (a view; up to date after :meth:`flush`).

    Examples
    --------
    >>> import torch
    >>> opt = RowAdamW(torch.ones(4, 2), lr=0.1, weight_decay=0.5)
    >>> rows = torch.tensor([0, 2])
    >>> opt.step(rows, opt.fetch(rows), torch.ones(2, 2))
    >>> opt.flush()
    >>> opt.table[:, 0]
    tensor([0.8500, 0.9500, 0.8500, 0.9500])
    """

    def __init__(self, table, *, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8,
                 catch_up=True):
        n, d = table.shape
        # scattered rows of a large table: huge pages spare a TLB miss per row
        self.state = zeros_hugepages((n, 3, d), table.dtype, table.device)
        self.state[:, 0] = table
        self.table = self.state[:, 0]
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.t = 0
        self._keep = 1.0 - self.lr * self.weight_decay  # decay factor per step
        self._scale = 1.0  # true values = stored values * scale
        self._block = None
        # the step up to which each row's momentum has been applied
        self._last = (torch.zeros(n, dtype=torch.long, device=table.device)
                      if catch_up and self.beta1 > 0 else None)

    def _catch_up(self, rows, block):
        """Move the rows of ``block`` (true values) on the momentum of the steps they missed."""
        if self._last is None or self.t == 0:
            return
        k = (self.t - self._last[rows]).to(block.dtype).unsqueeze(1)
        b1, b2 = self.beta1, self.beta2
        r = b1 / b2 ** 0.5
        factor = r * (1.0 - torch.pow(r, k)) / (1.0 - r)
        p, m, v = block[:, 0], block[:, 1], block[:, 2]
        bc1, bc2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        # (contiguous first: sqrt of a strided view is several times slower on the CPU)
        denom = v.contiguous().sqrt_().div_(bc2 ** 0.5).add_(self.eps)
        p.addcdiv_(m * factor, denom, value=-self.lr / bc1)
        # decays below 1e-20 are 0: products in the subnormal range slow the CPU down
        m.mul_(torch.pow(b1, k).masked_fill_(k > _steps_to_tiny(b1), 0.0))
        v.mul_(torch.pow(b2, k).masked_fill_(k > _steps_to_tiny(b2), 0.0))

    @torch.no_grad()
    def fetch(self, rows):
        """The true values of ``table[rows]`` (a view of a gathered block; pass it to
        :meth:`step` unchanged)."""
        self._block = self.state.index_select(0, rows)
        p = self._block[:, 0]
        if self._scale != 1.0:
            p.mul_(self._scale)
        self._catch_up(rows, self._block)
        return p

    @torch.no_grad()
    def step(self, rows, p, grad):
        """One AdamW step on ``table[rows]``: ``p`` is what :meth:`fetch` returned for the same
        unique ``rows``, ``grad`` their summed gradient."""
        block, self._block = self._block, None
        self.t += 1
        t, b1, b2 = self.t, self.beta1, self.beta2
        m, v = block[:, 1], block[:, 2]
        m.mul_(b1).add_(grad, alpha=1.0 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        denom = v.contiguous().sqrt_().div_(bc2 ** 0.5).add_(self.eps)
        self._scale *= self._keep  # every row decays by (1 - lr·wd) this step
        if self._keep != 1.0:
            p.mul_(self._keep)
        p.addcdiv_(m, denom, value=-self.lr / bc1)
        if self._scale != 1.0:
            p.div_(self._scale)  # back to stored values
        self.state.index_put_((rows,), block)
        if self._last is not None:
            self._last.index_fill_(0, rows, t)

    @torch.no_grad()
    def flush(self):
        """Apply the common weight-decay scale and every row's pending momentum movement to the
        stored table (then ``table`` holds what dense AdamW would)."""
        if self._scale != 1.0:
            self.table.mul_(self._scale)
            self._scale = 1.0
        if self._last is not None and self.t > 0:
            rows = torch.arange(self.state.shape[0], device=self.state.device)
            self._catch_up(rows, self.state)
            self._last.fill_(self.t)

    def current(self):
        """The table's values with the weight decay applied (pending momentum movement left
        out; a new tensor unless up to date; the table is left as is)."""
        return self.table if self._scale == 1.0 else self.table * self._scale
