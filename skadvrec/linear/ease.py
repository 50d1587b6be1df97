"""EASE (Steck 2019) and EASE-IPW (user-reweighted EASE, Shivaswamy & Garcia-Garcia 2022)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import metadata_routing

from .._torch import (check_device_memory, csr_to_torch, dense_rows, device_free_bytes,
                      idle_cpu_threads)
from .._params import COMMON_CONSTRAINTS, NON_NEGATIVE_REAL, POSITIVE_REAL
from ..base import BaseRecommender

__all__ = ["EASE", "EASEIPW", "ease_closed_form", "ease_memory_bytes"]


def ease_memory_bytes(n_items, dtype=torch.float32):
    """Peak bytes the closed form needs on its device: the Gram matrix, its Cholesky factor
    and the inverse, each n_items × n_items (the Gram is freed once factored, the factor once
    inverted, but allocator slack makes three the safe figure)."""
    itemsize = torch.tensor([], dtype=dtype).element_size()
    return 3 * int(n_items) ** 2 * itemsize


def _gram_blocks(X, np_dtype, *, upper=False, threads=1, dense_degree=None,
                 block_entries=1 << 24):
    """Xᵀ X as a dense C-ordered numpy array; no dense copy of X, bounded temporaries.

    Users with more than ``dense_degree`` interactions (default ``max(64, n_items // 16)``) go
    through BLAS ``syrk`` on dense chunks of their rows (their sparse product costs deg² each,
    the dense one n_items² at BLAS speed; the cut is where the two met on ML-1M); the others
    through scipy's sparse product, by blocks of item rows ``Xᵀ[a:b] @ X``. Every temporary (a
    sparse block, its dense copy, a dense chunk of heavy users) stays below ``block_entries``
    entries. With ``upper`` only the upper triangle (and the diagonal) is guaranteed (what
    LAPACK's potrf reads); otherwise the result is mirrored to be symmetric. ``threads``: BLAS
    threads for the syrk part (the sparse part is single-threaded).
    """
    from scipy.linalg import blas
    from threadpoolctl import threadpool_limits

    X = sp.csr_matrix(X, dtype=np_dtype)
    n = X.shape[1]
    deg = np.diff(X.indptr)
    cut = max(64, n // 16) if dense_degree is None else dense_degree
    heavy = deg > cut
    G = np.zeros((n, n), dtype=np_dtype)
    step = max(1, block_entries // max(1, n))  # rows of a block: below block_entries entries
    light = X[~heavy] if heavy.any() else X
    if light.nnz:
        Xt = light.T.tocsr()  # items x users
        for a in range(0, n, step):
            b = min(a + step, n)
            G[a:b] = (Xt[a:b] @ light).toarray()
    if heavy.any():
        syrk = blas.dsyrk if np_dtype == np.float64 else blas.ssyrk
        H = X[heavy]
        with threadpool_limits(limits=threads, user_api="blas"):
            for a in range(0, H.shape[0], step):
                D = H[a:a + step].toarray()
                # G.T is G's memory in Fortran order; lower=1 there = the upper triangle of G.
                # D.T (n x m, Fortran) times its transpose: Σ over the chunk's users of x xᵀ
                out = syrk(1.0, D.T, beta=1.0, c=G.T, trans=0, lower=1, overwrite_c=1)
                if not np.shares_memory(out, G):  # (f2py copies only on a layout mismatch)
                    G[...] = out.T
    if not upper:
        _finish_in_place(G, ease=False)
    return G


def _gram(X, device, dtype):
    """Xᵀ X as a dense (n_items, n_items) tensor on ``device`` (the CUDA path): the sparse Xᵀ
    times dense column blocks of X, formed on the device. The CPU path is :func:`_gram_blocks`.
    """
    n_items = X.shape[1]
    Xt_t = csr_to_torch(X.T.tocsr(), device, dtype)
    G = torch.empty((n_items, n_items), dtype=dtype, device=device)
    Xc = X.tocsc()
    step = max(1, (1 << 28) // max(1, X.shape[0]))
    for start in range(0, n_items, step):
        stop = min(start + step, n_items)
        block = dense_rows(Xc[:, start:stop].T.tocsr(), slice(None), device, dtype).T
        G[:, start:stop] = torch.sparse.mm(Xt_t, block.contiguous())
    return G


def _not_pd(l2, dtype, column):
    return ValueError(
        f"XᵀX + l2·I is not positive definite in {str(dtype)[6:]} (Cholesky failed at column "
        f"{int(column)}); increase l2 (now {l2}) or use dtype='float64'.")


# below this many items the CPU solve (potrf + potri, ~n³ flops) takes well under 0.1 s on one
# core and a second BLAS thread does not pay for its synchronisation
_SMALL_SOLVE = 1500


def _blas_threads(n_items, requested=None):
    """BLAS threads for the CPU solve: ``torch.get_num_threads()``, capped to the idle CPUs.

    OpenBLAS's potrf / potri split each block operation across its threads and wait for all of
    them; when another job holds a core, a descheduled thread stalls the others, and the solve
    on 2 threads took several times its 1-thread time on a loaded 2-core machine (issue 14).
    So: one thread below ``_SMALL_SOLVE`` items; otherwise at most as many threads as CPUs
    (of this process's affinity) not busy with another process's runnable threads at the start
    of the solve (Linux; elsewhere the requested count). The cap never raises the count.
    """
    requested = torch.get_num_threads() if requested is None else int(requested)
    if requested <= 1 or n_items < _SMALL_SOLVE:
        return 1
    return idle_cpu_threads(requested)


def _potrf_potri(A, l2, dtype, threads):
    """In place on the C-ordered symmetric numpy array ``A`` (only its upper triangle is read):
    the upper triangle of A⁻¹, as a C-ordered array (the lower triangle is left stale)."""
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_limits

    potrf, potri = ((lapack.dpotrf, lapack.dpotri) if A.dtype == np.float64
                    else (lapack.spotrf, lapack.spotri))
    with threadpool_limits(limits=threads, user_api="blas"):
        # A row-major is the Fortran-order transpose; lower=True on A.T = upper on A, in place
        c, info = potrf(A.T, lower=True, clean=False, overwrite_a=True)
        if info != 0:
            raise _not_pd(l2, dtype, info)
        inv, info = potri(c, lower=True, overwrite_c=True)
        if info != 0:
            raise _not_pd(l2, dtype, info)
    # potri fills one triangle: the lower one of the Fortran array = the upper one of inv.T
    return np.ascontiguousarray(inv.T)


def _finish_in_place(P, *, ease=True, step=256):
    """Mirror the upper triangle of the C-ordered ``P`` into the lower one and, with ``ease``,
    divide column j by −P_jj and zero the diagonal (EASE's B), in one pass, in place.

    Blocks of rows are processed from the bottom up: block a:b reads the upper triangle of
    the rows above it (not yet modified) for its lower part, then scales its own rows. numpy,
    single-threaded: nothing here starts a thread pool (torch's OpenMP threads spinning beside
    BLAS's were a suspect of the 2-thread slowdown, issue 14).
    """
    n = P.shape[0]
    neg_d = -P.diagonal().copy() if ease else None
    starts = list(range(0, n, step))
    for a in reversed(starts):
        b = min(a + step, n)
        blk = P[a:b, a:b]
        lo = np.tril_indices(b - a, -1)
        blk[lo] = blk.T[lo]
        if a:
            P[a:b, :a] = P[:a, a:b].T
        if ease:
            np.divide(P[a:b], neg_d[None, :], out=P[a:b])
            np.fill_diagonal(blk, 0.0)
    return P


def _spd_inverse(G, l2, dtype):
    """(G)⁻¹ of a symmetric positive definite matrix on the device (the CUDA path), through
    ``torch.linalg.cholesky_ex`` + ``torch.cholesky_inverse``; G is consumed. The CPU path is
    :func:`_potrf_potri`: ``torch.cholesky_inverse`` on the CPU *slowed down* from 1 to 2
    threads on a loaded 2-core machine (0.23 s -> 4.4 s on ML-1M's 3,706 items, issue 14).
    """
    L, info = torch.linalg.cholesky_ex(G)
    del G
    if int(info) != 0:
        raise _not_pd(l2, dtype, info)
    return torch.cholesky_inverse(L)


def _ease_cpu(X, l2, dtype):
    """The EASE matrix on the CPU, with one n × n array throughout (see ease_closed_form)."""
    A = _gram_blocks(X, np.float64 if dtype == torch.float64 else np.float32, upper=True)
    A[np.diag_indices_from(A)] += float(l2)
    P = _potrf_potri(A, l2, dtype, _blas_threads(A.shape[0]))
    return torch.from_numpy(_finish_in_place(P, ease=True))


def ease_closed_form(X, l2, *, row_weights=None, device="cpu", dtype=torch.float32):
    """The EASE weight matrix B = I − P·diag(1/diag P), P = (Xᵀ W X + l2·I)⁻¹, diag(B) = 0.

    Parameters
    ----------
    X : csr_matrix of shape (n_users, n_items)
    l2 : float
        Ridge penalty λ (absolute, as in Steck 2019: it is not divided by the number of users).
    row_weights : ndarray of shape (n_users,), default=None
        Per-user weights W (EASE-IPW); None means all ones.
    device : torch.device
    dtype : torch.dtype

    Returns
    -------
    torch.Tensor of shape (n_items, n_items) on ``device``.
    """
    device = torch.device(device)
    n_items = X.shape[1]
    check_device_memory(
        ease_memory_bytes(n_items, dtype), device,
        f"EASE on {n_items} items (three {n_items}x{n_items} {str(dtype)[6:]} matrices)",
        "Filter rare items (e.g. keep items with >= 5 interactions), use dtype='float32', or a "
        "device with more memory.", free=device_free_bytes(device))
    if row_weights is not None:
        X = sp.diags(np.sqrt(row_weights)) @ X  # Xᵀ W X = (W^½ X)ᵀ (W^½ X)
    if device.type == "cpu":
        # Gram by blocks of rows (upper triangle), LAPACK potrf + potri on _blas_threads()
        # threads, then mirror / scale / zero diagonal fused in one numpy pass: one n × n array,
        # and no torch (OpenMP) thread pool next to the BLAS one
        return _ease_cpu(X, l2, dtype)
    G = _gram(X, device, dtype)
    G.diagonal().add_(float(l2))
    P = _spd_inverse(G, l2, dtype)
    diag = P.diagonal().clone()
    P.div_(-diag[None, :])
    P.fill_diagonal_(0.0)
    return P


class EASE(BaseRecommender):
    """Embarrassingly Shallow Autoencoder (Steck, WWW 2019).

    An item-item linear model ``scores = X @ B`` with ``diag(B) = 0`` and the closed form
    ``B = I − P·diag(1/diag P)``, ``P = (XᵀX + l2·I)⁻¹``. On CUDA it is computed in torch
    (dense Gram, Cholesky, Cholesky inverse). On the CPU: the Gram by blocks (scipy's sparse
    product; BLAS ``syrk`` for the heaviest users), LAPACK ``potrf`` + ``potri`` in place, and
    the mirror / scale / zero-diagonal steps fused in one numpy pass, so one n_items × n_items
    array is held; the solve uses ``torch.get_num_threads()`` BLAS threads capped to the CPUs
    that other processes leave idle at that moment (one thread below 1,500 items), because
    OpenBLAS's factorisation slows down many-fold when one of its threads shares a core (see
    BENCHMARKS.md, "Speed (issue 14)"). Memory is budgeted as three n_items × n_items matrices;
    the estimate is checked against the device's free memory before allocating.

    Parameters
    ----------
    l2 : float, default=500.0
        Ridge penalty λ (Steck's scale: not divided by the number of users).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the closed form and the scores.
    device : str, default="auto"
        "auto" (CUDA if available), "cpu", "cuda" or "cuda:<i>".
    batch_size : int, default=2048
        Users per scoring batch in predict / recommend / score.
    rating_threshold : float or None, default=4.0
        Table form only: rows whose ``rating`` is below it are not positives.
    random_state : int or None, default=None
        Unused (the closed form is deterministic); kept for a uniform interface.
    verbose : bool, default=False
        Unused.

    Attributes
    ----------
    coef_ : torch.Tensor of shape (n_items, n_items)
        The item-item weight matrix B (on ``device_``).
    n_items_ : int
    item_ids_ : ndarray of shape (n_items,)
        Item ids (column indices for the matrix form).
    train_matrix_ : csr_matrix of shape (n_fitted_users, n_items)
        The binarised training interactions (kept to mask seen items of fitted users and to
        refit reference models per CV fold).
    user_ids_ : ndarray
        Fitted user ids (table form only).
    device_ : torch.device
    input_form_ : {"matrix", "table"}

    Notes
    -----
    ``transform`` returns the reconstructed score vector ``x·B`` (n_items values per user):
    EASE has no latent space, and this vector is everything the model derives from a user, so
    it is what a leakage audit attacks.

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> model = EASE(l2=50.0, device="cpu").fit(X[:150])
    >>> model.recommend(X[150:], k=5).shape
    (50, 5)
    >>> 0 <= model.score(X[150:]) <= 1
    True
    """

    # EASE ignores sensitive_features: keep it out of metadata routing, so that routing it to a
    # scorer in GridSearchCV needs no set_fit_request call on the model.
    __metadata_request__fit = {"sensitive_features": metadata_routing.UNUSED}
    _parameter_constraints = {**COMMON_CONSTRAINTS, "l2": POSITIVE_REAL}

    def __init__(self, *, l2=500.0, dtype="float32", device="auto", batch_size=2048,
                 rating_threshold=4.0, random_state=None, verbose=False):
        self.l2 = l2
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.rating_threshold = rating_threshold
        self.random_state = random_state
        self.verbose = verbose

    def _row_weights(self, X):
        return None

    def _fit(self, data, sensitive_features=None):
        X = data.matrix
        self.coef_ = ease_closed_form(X, self.l2, row_weights=self._row_weights(X),
                                      device=self.device_, dtype=self._torch_dtype())
        return self

    def _scores_from_rows(self, X_rows):
        return X_rows @ self.coef_


class EASEIPW(EASE):
    """EASE with inverse-propensity user weights (the EASE-IPW baseline of R-LARM).

    Each user i gets weight ``θ_i = n_i^(−beta)`` (``n_i`` = the user's number of interactions),
    renormalised to mean 1 over users with interactions; the EASE closed form is applied to the
    rows scaled by ``sqrt(θ_i)``, i.e. ``P = (Xᵀ diag(θ) X + l2·I)⁻¹``. ``beta=0`` is EASE.

    Parameters
    ----------
    l2 : float, default=500.0
    beta : float, default=0.5
        Exponent of the user weights (≥ 0); larger values up-weight light users more.
    dtype, device, batch_size, rating_threshold, random_state, verbose
        As in :class:`EASE`.

    Attributes
    ----------
    coef_ : torch.Tensor of shape (n_items, n_items)
    user_weights_ : ndarray of shape (n_users,)
        The training users' weights θ.

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASEIPW
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> model = EASEIPW(l2=50.0, beta=0.5, device="cpu").fit(X)
    >>> round(float(model.user_weights_.mean()), 6)
    1.0
    """

    _parameter_constraints = {**EASE._parameter_constraints, "beta": NON_NEGATIVE_REAL}

    def __init__(self, *, l2=500.0, beta=0.5, dtype="float32", device="auto", batch_size=2048,
                 rating_threshold=4.0, random_state=None, verbose=False):
        super().__init__(l2=l2, dtype=dtype, device=device, batch_size=batch_size,
                         rating_threshold=rating_threshold, random_state=random_state,
                         verbose=verbose)
        self.beta = beta

    def _row_weights(self, X):
        n = np.asarray((X != 0).sum(axis=1)).ravel().astype(np.float64)
        w = np.zeros_like(n)
        active = n > 0
        w[active] = n[active] ** (-float(self.beta))
        w[active] /= w[active].mean()
        self.user_weights_ = w
        return w
