"""The native BPR / APR / PamaCF step of the MF backbone: one C function per batch.

The row-sparse torch step of :class:`~skadvrec.cf._base._EmbeddingRecommender` is about forty
small tensor operations a batch; on the CPU their fixed costs (dispatch, allocation, one pass
over memory each) dominate a BPR epoch. This module runs the same step as one C function on the
trainer's own buffers: it reads each touched row once (weight-decay scale and momentum catch-up
of :class:`skadvrec._torch.RowAdamW`, applied in place), computes the BPR, L2 and adversarial
gradients per triple in closed form, sums them per row and applies the row-sparse AdamW update,
with the semantics of ``RowAdamW.fetch`` + ``RowAdamW.step`` and of the torch step's gradients
(float32 arithmetic on the rows, float64 for the scalars and the losses; results differ from
the torch form by float32 rounding only: the L2 gradient is added once per row as
count · 2·reg/B · e, divisions by constants are products, sums are taken in another order). It also gives the
negative sampler a faster membership test (:class:`NativeReject`) that draws the same triples.

The source below is compiled at first use with the system C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``; ``-O3 -fno-math-errno``; on x86-64 an AVX2 + FMA copy of the step is
chosen at load time where the CPU has it, no ``-march=native``, so a cached library runs on any
CPU of its architecture), cached under ``$XDG_CACHE_HOME/skadvrec/kernels`` (default
``~/.cache``; ``SKADVREC_KERNEL_CACHE`` overrides) by a hash of the source, the compiler's
version and the flags, and loaded with :mod:`ctypes`. The library file is written under a
temporary name and renamed into place, so concurrent fits (GridSearchCV workers) that compile
at the same time never load a half-written file. Where no compiler is found or the build fails
the trainer keeps the torch step (one warning per process); ``SKADVREC_NATIVE=0`` switches the
kernel off. It serves float32 tables on the CPU only; nothing of it is stored on a fitted model.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading

import torch

from .._torch import _steps_to_tiny
from .._warnings import warn

__all__ = ["NativeStep", "NativeReject", "load", "enabled"]

_VERSION = 3  # the source's skadvrec_kernel_version(): bumped with its functions' signatures
_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

#define API __attribute__((visibility("default")))

/* with SKADVREC_CLONES (x86-64, ifunc): an AVX2 + FMA (x86-64-v3; 2: AVX2) copy chosen at load
   time where the CPU has them, the baseline one elsewhere; the build retries without it where
   the compiler or the platform refuses */
#if defined(SKADVREC_CLONES) && SKADVREC_CLONES == 1 && defined(__x86_64__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#elif defined(SKADVREC_CLONES) && SKADVREC_CLONES == 2 && defined(__x86_64__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch((p), 1, 3)
#define INLINE static inline __attribute__((always_inline))
#else
#define PREFETCH(p) ((void)0)
#define INLINE static inline
#endif

#ifndef PF_ROWS
#define PF_ROWS 8     /* rows ahead whose cache lines are requested */
#endif
#ifndef PF_TRIPLES
#define PF_TRIPLES 4  /* triples ahead */
#endif

/* ask for a row's cache lines ahead of use (the rows are scattered over a table of MBs) */
INLINE void prefetch_row(const float *p, int64_t n_floats) {
    for (int64_t k = 0; k < n_floats; k += 16) PREFETCH(p + k);
}

/* dot product with 8 independent accumulators (vectorisable without -ffast-math) */
INLINE float dot(const float *a, const float *b, int64_t d) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= d; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[k + l] * b[k + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; k < d; k++) s += a[k] * b[k];
    return s;
}

INLINE double softplus(double x) { return x > 20.0 ? x : log1p(exp(x)); }
INLINE double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

API int skadvrec_kernel_version(void) { return 3; }

/* RowAdamW's fetch of one row: the true value (stored value times the weight-decay scale) and,
   for a row that missed k steps, the momentum movement dense AdamW gave it in the meantime,
   lr * m_hat / (sqrt(v_hat) + eps) * r (1 - r^k) / (1 - r) with r = b1 / sqrt(b2), the moments
   decayed by b1^k and b2^k (0 below 1e-20). */
typedef struct {
    float fscale, feps, isbc2, alpha;
    double rr, b1, b2, tiny1, tiny2;
    const double *pw;  /* (3, pw_n): r^k, b1^k, b2^k for k < pw_n */
    int64_t pw_n;
} Fetch;

INLINE void fetch_setup(Fetch *f, const double *sc, int64_t t, const double *pw, int64_t pw_n) {
    const double lr = sc[2], b1 = sc[4], b2 = sc[5];
    const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    f->fscale = (float)sc[0];
    f->feps = (float)sc[6];
    f->isbc2 = (float)(1.0 / sqrt(bc2));
    f->alpha = (float)(-lr / bc1);
    f->rr = b1 / sqrt(b2);
    f->b1 = b1;
    f->b2 = b2;
    f->tiny1 = sc[10];
    f->tiny2 = sc[11];
    f->pw = pw;
    f->pw_n = pw_n;
}

INLINE void fetch_row(const Fetch *f, float *p, int64_t d, int64_t miss) {
    float *m = p + d, *v = p + 2 * d;
    const float fscale = f->fscale;
    if (miss > 0) {
        const float kf = (float)miss;
        const int in = miss < f->pw_n;
        const double rk = in ? f->pw[miss] : pow(f->rr, kf);
        const float factor = (float)(f->rr * (1.0 - rk) / (1.0 - f->rr));
        const float af = f->alpha * factor, isbc2 = f->isbc2, feps = f->feps;
        const float d1 = kf > f->tiny1 ? 0.0f : (float)(in ? f->pw[f->pw_n + miss]
                                                            : pow(f->b1, kf));
        const float d2 = kf > f->tiny2 ? 0.0f : (float)(in ? f->pw[2 * f->pw_n + miss]
                                                            : pow(f->b2, kf));
        for (int64_t k = 0; k < d; k++) {
            const float den = sqrtf(v[k]) * isbc2 + feps;
            p[k] = p[k] * fscale + af * (m[k] / den);
            m[k] *= d1;
            v[k] *= d2;
        }
    } else {
        for (int64_t k = 0; k < d; k++) p[k] *= fscale;
    }
}

/* RowAdamW.flush: every row fetched (scale and catch-up applied), last[] = t. sc as below. */
API CLONES void skadvrec_flush(float *state, int64_t *last, int64_t n_rows, int64_t d, int64_t t,
                               const double *sc, const double *pw, int64_t pw_n) {
    Fetch f;
    fetch_setup(&f, sc, t, pw, pw_n);
    for (int64_t r = 0; r < n_rows; r++) {
        const int64_t miss = (last != NULL && t > 0) ? t - last[r] : 0;
        fetch_row(&f, state + r * 3 * d, d, miss);
        if (last != NULL) last[r] = t;
    }
}

/*
 * The entries t of todo (n_todo of them) whose pair (users[t], neg[t]) is a positive of the CSR
 * structure (indptr, indices; columns sorted within rows), written to bad in order; returns
 * their number. A binary search within the user's row.
 */
API int64_t skadvrec_reject(const int64_t *indptr, const int64_t *indices, const int64_t *users,
                            const int64_t *neg, const int64_t *todo, int64_t n_todo,
                            int64_t *bad) {
    int64_t n_bad = 0;
    for (int64_t q = 0; q < n_todo; q++) {
        const int64_t t = todo[q], it = neg[t];
        const int64_t u = users[t];
        int64_t lo = indptr[u], hi = indptr[u + 1];
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (indices[mid] < it) lo = mid + 1; else hi = mid;
        }
        if (lo < indptr[u + 1] && indices[lo] == it) bad[n_bad++] = t;
    }
    return n_bad;
}

/*
 * One step on a batch of B triples (u, i, j); users are rows [0, n_users) of the table, items
 * follow them. state: (n_rows, 3, d) float32, per row the stored parameter (true value / scale)
 * and AdamW's two moments. last: (n_rows,) step up to which each row's momentum was applied
 * (NULL: no catch-up). slot: (n_rows,) int32, all -1 on entry and on return. work: float32
 * scratch of at least 3*B*d + 5*B + 6*d; rows: int64 scratch of 3*B.
 * sc[]: scale, new_scale, lr, keep, b1, b2, eps, reg, coef_a, adv_weight, tiny1, tiny2
 * (tiny: the k above which beta^k is taken as 0). rule: 0 none, 1 uniform (m = a),
 * 2 personalised (m = a * sigmoid(|eu|^2 / mean_batch |eu|^2 - 1)), 3 paper
 * (m = a * sigmoid(|eu| - mean over all users of |e|)).
 * out[]: sum softplus(x), sum softplus(x_adv), sum |e|^2 over the 3B occurrences.
 * pw: (3, pw_n) float64, r^k, b1^k, b2^k for k < pw_n (r = b1 / sqrt(b2)); pow() beyond.
 * Returns the number of unique rows.
 */
API CLONES int64_t skadvrec_bpr_step(float *state, int64_t *last, int32_t *slot, int64_t n_users,
                              int64_t d, const int64_t *u, const int64_t *i, const int64_t *j,
                              int64_t B, int64_t t, const double *sc, int rule, float *work,
                              int64_t *rows, double *out, const double *pw, int64_t pw_n) {
    const double scale = sc[0], new_scale = sc[1], lr = sc[2], keep = sc[3];
    const double b1 = sc[4], b2 = sc[5], eps = sc[6], reg = sc[7], coef_a = sc[8];
    const double weight = sc[9];
    const float feps = (float)eps;
    const int64_t D3 = 3 * d;
    float *G = work;                    /* (n_unique, d) summed gradients */
    float *coef = G + 3 * B * d;        /* (B) perturbation magnitudes */
    float *n2 = coef + B;               /* (B) |eu|^2 */
    float *cnt = n2 + B;                /* (n_unique) occurrences of each row in the batch */
    float *tmp = cnt + 3 * B;           /* 6 d */
    float *gu = tmp, *gi = tmp + d, *gj = tmp + 2 * d;
    float *pu = tmp + 3 * d, *pi = tmp + 4 * d, *pj = tmp + 5 * d;
    double mean_norm = 0.0;
    int64_t n = 0;

    /* the paper rule: mean norm over all users, before this step (stored * scale) */
    if (rule == 3) {
        double s = 0.0;
        for (int64_t r = 0; r < n_users; r++) {
            const float *p = state + r * D3;
            s += sqrt((double)dot(p, p, d));
        }
        mean_norm = s * fabs(scale) / (double)(n_users > 0 ? n_users : 1);
    }

    /* unique rows in order of first occurrence (u, then i, then j) */
    for (int part = 0; part < 3; part++) {
        const int64_t *idx = part == 0 ? u : (part == 1 ? i : j);
        const int64_t off = part == 0 ? 0 : n_users;
        for (int64_t b = 0; b < B; b++) {
            int64_t r = idx[b] + off;
            if (slot[r] < 0) { slot[r] = (int32_t)n; cnt[n] = 0.0f; rows[n++] = r; }
            cnt[slot[r]] += 1.0f;
        }
    }
    memset(G, 0, sizeof(float) * (size_t)(n * d));

    /* fetch: true values (times the scale) and the missed momentum movement, in place */
    Fetch f;
    fetch_setup(&f, sc, t, pw, pw_n);
    for (int64_t q = 0; q < n; q++) {
        if (q + PF_ROWS < n) {
            prefetch_row(state + rows[q + PF_ROWS] * D3, D3);
            if (last != NULL) PREFETCH(last + rows[q + PF_ROWS]);
        }
        fetch_row(&f, state + rows[q] * D3, d, (last != NULL && t > 0) ? t - last[rows[q]] : 0);
    }

    /* magnitudes */
    if (rule == 2) {
        double s = 0.0;
        for (int64_t b = 0; b < B; b++) {
            const float *eu = state + u[b] * D3;
            n2[b] = dot(eu, eu, d);
            s += n2[b];
        }
        float mean = (float)(s / (double)B);
        if (mean < 1.17549435e-38f) mean = 1.17549435e-38f;
        for (int64_t b = 0; b < B; b++)
            coef[b] = (float)(coef_a * sigmoid((double)(n2[b] / mean) - 1.0));
    } else if (rule == 3) {
        for (int64_t b = 0; b < B; b++) {
            const float *eu = state + u[b] * D3;
            coef[b] = (float)(coef_a * sigmoid(sqrt((double)dot(eu, eu, d)) - mean_norm));
        }
    } else if (rule == 1) {
        for (int64_t b = 0; b < B; b++) coef[b] = (float)coef_a;
    }

    /* BPR (and adversarial) gradients per triple, summed per row; the L2 term, the same for
       every occurrence of a row, is added per row below (count * 2 reg / B * e) */
    double bpr = 0.0, adv = 0.0, l2 = 0.0;
    const float l2c = (float)(2.0 * reg / (double)B);
    for (int64_t b = 0; b < B; b++) {
        const int32_t su = slot[u[b]], si = slot[i[b] + n_users], sj = slot[j[b] + n_users];
        if (b + PF_TRIPLES < B) {
            prefetch_row(state + u[b + PF_TRIPLES] * D3, d);
            prefetch_row(state + (i[b + PF_TRIPLES] + n_users) * D3, d);
            prefetch_row(state + (j[b + PF_TRIPLES] + n_users) * D3, d);
        }
        const float *eu = state + rows[su] * D3, *ei = state + rows[si] * D3,
                    *ej = state + rows[sj] * D3;
        float *Gu = G + su * d, *Gi = G + si * d, *Gj = G + sj * d;
        for (int64_t k = 0; k < d; k++) gu[k] = ej[k] - ei[k];  /* diff */
        const float x = dot(eu, gu, d);
        bpr += softplus((double)x);
        const float s = (float)sigmoid((double)x) / (float)B;
        if (rule == 0) {
            for (int64_t k = 0; k < d; k++) {
                Gu[k] += s * gu[k];
                Gi[k] += -s * eu[k];
                Gj[k] += s * eu[k];
            }
            continue;
        }
        for (int64_t k = 0; k < d; k++) {
            gu[k] = s * gu[k];
            gi[k] = -s * eu[k];
            gj[k] = s * eu[k];
        }
        const float c = coef[b];
        float nu = sqrtf(dot(gu, gu, d)), ni = sqrtf(dot(gi, gi, d)), nj = sqrtf(dot(gj, gj, d));
        /* c * g / max(|g|, 1e-12), F.normalize's floor */
        const float cu = c / (nu > 1e-12f ? nu : 1e-12f), ci = c / (ni > 1e-12f ? ni : 1e-12f),
                    cj = c / (nj > 1e-12f ? nj : 1e-12f);
        for (int64_t k = 0; k < d; k++) {
            pu[k] = eu[k] + cu * gu[k];
            pi[k] = ei[k] + ci * gi[k];
            pj[k] = ej[k] + cj * gj[k];
            pj[k] = pj[k] - pi[k];  /* pdiff */
        }
        const float xa = dot(pu, pj, d);
        adv += softplus((double)xa);
        const float sa = (float)sigmoid((double)xa) * (float)(weight / (double)B);
        for (int64_t k = 0; k < d; k++) {
            Gu[k] += gu[k] + sa * pj[k];
            Gi[k] += gi[k] - sa * pu[k];
            Gj[k] += gj[k] + sa * pu[k];
        }
    }

    /* AdamW on the touched rows (step t + 1), stored back divided by the new scale */
    const int64_t t1 = t + 1;
    const double nbc1 = 1.0 - pow(b1, (double)t1), nbc2 = 1.0 - pow(b2, (double)t1);
    const float insbc2 = (float)(1.0 / sqrt(nbc2)), step = (float)(-lr / nbc1);
    const float fb1 = (float)b1, fb2 = (float)b2, g1 = (float)(1.0 - b1), g2 = (float)(1.0 - b2);
    const float fkeep = (float)keep, inew = (float)(1.0 / new_scale);
    for (int64_t q = 0; q < n; q++) {
        float *p = state + rows[q] * D3, *m = p + d, *v = p + 2 * d;
        float *g = G + q * d;
        if (q + PF_ROWS < n) prefetch_row(state + rows[q + PF_ROWS] * D3, D3);
        l2 += (double)cnt[q] * (double)dot(p, p, d);  /* the values the batch used */
        if (reg != 0.0) {
            const float cr = cnt[q] * l2c;
            for (int64_t k = 0; k < d; k++) g[k] += cr * p[k];
        }
        for (int64_t k = 0; k < d; k++) {
            m[k] = m[k] * fb1 + g1 * g[k];
            v[k] = v[k] * fb2 + g2 * (g[k] * g[k]);
            const float den = sqrtf(v[k]) * insbc2 + feps;
            p[k] = (p[k] * fkeep + step * (m[k] / den)) * inew;
        }
        if (last != NULL) last[rows[q]] = t1;
        slot[rows[q]] = -1;
    }
    out[0] = bpr;
    out[1] = adv;
    out[2] = l2;
    return n;
}
"""

# tried in order until one compiles: an AVX2 clone where the compiler and platform can make
# one, then the baseline; -fno-math-errno lets sqrtf vectorise (no errno on sqrt(<0): NaN)
_BASE_FLAGS = ("-O3", "-std=c99", "-fPIC", "-shared", "-fvisibility=hidden", "-fno-math-errno")
_FLAG_SETS = (_BASE_FLAGS + ("-DSKADVREC_CLONES=1",), _BASE_FLAGS + ("-DSKADVREC_CLONES=2",),
              _BASE_FLAGS)

_lock = threading.Lock()
_lib = None       # the loaded library, once built
_failed = None    # why it could not be built (then the torch step is used)


def enabled():
    """False when the environment switches the kernel off (``SKADVREC_NATIVE=0``)."""
    return os.environ.get("SKADVREC_NATIVE", "1").strip().lower() not in ("0", "false", "no",
                                                                         "off")


def _compiler():
    """The C compiler to use: ``$CC`` or the first of cc, gcc, clang on the PATH (or None)."""
    cands = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in cands:
        path = shutil.which(name.split()[0]) if name.strip() else None
        if path:
            return path
    return None


def _cache_dirs():
    """Where the library is cached: the user's cache folder, else a per-user temp folder."""
    if os.environ.get("SKADVREC_KERNEL_CACHE"):
        first = os.environ["SKADVREC_KERNEL_CACHE"]
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        first = os.path.join(base, "skadvrec", "kernels")
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return [first, os.path.join(tempfile.gettempdir(), f"skadvrec-kernels-{user}")]


def _compile(cc, flag_sets, folder, path):
    """Compile into ``path`` with the first flag set that works; the file appears atomically
    (written under a temporary name, then renamed)."""
    os.makedirs(folder, exist_ok=True)
    fd, src = tempfile.mkstemp(prefix="bpr_step-", suffix=".c", dir=folder)
    tmp = src[:-2] + ".so.tmp"
    errors = []
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_SOURCE)
        for flags in flag_sets:
            res = subprocess.run([cc, *flags, "-o", tmp, src, "-lm"], capture_output=True,
                                 text=True, timeout=300)
            if res.returncode == 0:
                os.replace(tmp, path)  # atomic: a concurrent reader sees all of it or nothing
                return
            errors.append(f"{' '.join(flags)}: {res.stderr.strip()[-800:]}")
    finally:
        for f in (src, tmp):
            try:
                os.unlink(f)
            except OSError:
                pass
    raise RuntimeError(f"{cc} failed: " + " | ".join(errors))


def _build(cc, flag_sets=None):
    """The path of the compiled library: from the cache, or compiled now."""
    flag_sets = _FLAG_SETS if flag_sets is None else flag_sets
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"{cc} --version failed: {exc}") from exc
    recipe = [_SOURCE, cc, version, platform.machine(), platform.system()]
    recipe += [" ".join(f) for f in flag_sets]
    key = hashlib.sha256("\0".join(recipe).encode()).hexdigest()[:24]
    errors = []
    for folder in _cache_dirs():
        path = os.path.join(folder, f"bpr_step-{key}.so")
        if os.path.exists(path):
            return path
        try:
            _compile(cc, flag_sets, folder, path)
            return path
        except (OSError, subprocess.SubprocessError) as exc:  # an unwritable folder: next one
            errors.append(f"{folder}: {exc}")
    raise RuntimeError("; ".join(errors))


def _load_library(path):
    lib = ctypes.CDLL(path)
    P, i64 = ctypes.c_void_p, ctypes.c_int64
    fn = lib.skadvrec_bpr_step
    fn.restype = i64
    fn.argtypes = [P, P, P, i64, i64, P, P, P, i64, i64, P, ctypes.c_int, P, P, P, P, i64]
    fn = lib.skadvrec_reject
    fn.restype = i64
    fn.argtypes = [P, P, P, P, P, i64, P]
    fn = lib.skadvrec_flush
    fn.restype = None
    fn.argtypes = [P, P, i64, i64, i64, P, P, i64]
    if lib.skadvrec_kernel_version() != _VERSION:  # pragma: no cover - a stale cache entry
        raise RuntimeError("unexpected kernel version")
    return lib


def load():
    """The compiled library, or None (switched off, or no compiler / a failed build: the
    reason is warned about once and remembered for the process)."""
    global _lib, _failed
    if not enabled():
        return None
    if _lib is not None or _failed is not None:
        return _lib
    with _lock:
        if _lib is not None or _failed is not None:
            return _lib
        cc = _compiler()
        try:
            if cc is None:
                raise RuntimeError("no C compiler (cc, gcc or clang) on the PATH")
            _lib = _load_library(_build(cc))
        except Exception as exc:  # noqa: BLE001 - any failure means: use the torch step
            _failed = str(exc)
            warn("skadvrec: the native BPR step could not be built, so the embedding models "
                 f"train with the (slower) torch step on the CPU ({_failed[:500]}). Install a C "
                 "compiler (gcc or clang) to speed them up, or set SKADVREC_NATIVE=0 to "
                 "silence this.", RuntimeWarning)
    return _lib


class NativeStep:
    """The step of one fit: the library plus the scratch buffers of the trainer.

    ``NativeStep.create(opt, n_users, rule_args)`` returns None where the kernel does not apply
    (switched off, unavailable, not a float32 CPU table, ``rule_args`` None: a magnitude rule it
    does not know); ``rule_args`` is (rule code, its constant, adversarial weight), (0, 0, 0)
    for plain BPR. ``step(u, i, j, reg, adversarial)`` updates the :class:`RowAdamW` ``opt`` in
    place (its state, step count and scale) and returns (bpr, adversarial, l2) as batch means
    (adversarial None when off).
    """

    _POWERS = 2048  # r^k, b1^k, b2^k tabulated for the catch-up of k < 2048 missed steps

    def __init__(self, lib, opt, n_users, rule_args):
        self.lib, self.opt, self.n_users = lib, opt, int(n_users)
        self.rule, self.coef_a, self.weight = rule_args
        n, _, d = opt.state.shape
        self.d = d
        self.slot = torch.full((n,), -1, dtype=torch.int32)
        self.work = torch.empty(0, dtype=torch.float32)
        self.rows = torch.empty(0, dtype=torch.int64)
        self.out = torch.zeros(3, dtype=torch.float64)
        self.sc = torch.zeros(12, dtype=torch.float64)
        b1, b2 = opt.beta1, opt.beta2
        k = torch.arange(self._POWERS, dtype=torch.float64)
        bases = torch.tensor([b1 / b2 ** 0.5 if b2 > 0 else 0.0, b1, b2], dtype=torch.float64)
        self.powers = torch.pow(bases.unsqueeze(1), k).contiguous()  # (3, _POWERS)

    @classmethod
    def create(cls, opt, n_users, rule_args=(0, 0.0, 0.0)):
        st = opt.state
        if st.device.type != "cpu" or st.dtype != torch.float32 or not st.is_contiguous():
            return None
        if rule_args is None:
            return None
        lib = load()
        if lib is None:
            return None
        return cls(lib, opt, n_users, rule_args)

    def _scratch(self, B):
        need = 3 * B * self.d + 5 * B + 6 * self.d
        if self.work.numel() < need:
            self.work = torch.empty(need, dtype=torch.float32)
            self.rows = torch.empty(3 * B, dtype=torch.int64)

    def _scalars(self, reg=0.0):
        opt = self.opt
        vals = [opt._scale, opt._scale * opt._keep, opt.lr, opt._keep, opt.beta1, opt.beta2,
                opt.eps, float(reg), self.coef_a, self.weight, _steps_to_tiny(opt.beta1),
                _steps_to_tiny(opt.beta2)]
        ctypes.memmove(self.sc.data_ptr(), (ctypes.c_double * 12)(*vals), 96)
        return self.sc.data_ptr()

    def flush(self):
        """``opt.flush()`` in one pass over the table."""
        opt = self.opt
        if opt._scale == 1.0 and (opt._last is None or opt.t == 0):
            return
        last = opt._last.data_ptr() if opt._last is not None else None
        self.lib.skadvrec_flush(opt.state.data_ptr(), last, opt.state.shape[0], self.d, opt.t,
                                self._scalars(), self.powers.data_ptr(), self._POWERS)
        opt._scale = 1.0

    def step(self, u, i, j, reg, adversarial):
        opt = self.opt
        u, i, j = (x.contiguous() for x in (u, i, j))
        B = int(u.numel())
        self._scratch(B)
        new_scale = opt._scale * opt._keep
        rule = self.rule if adversarial else 0
        ptr = self._scalars(reg)
        last = opt._last.data_ptr() if opt._last is not None else None
        self.lib.skadvrec_bpr_step(
            opt.state.data_ptr(), last, self.slot.data_ptr(), self.n_users, self.d,
            u.data_ptr(), i.data_ptr(), j.data_ptr(), B, opt.t, ptr, rule,
            self.work.data_ptr(), self.rows.data_ptr(), self.out.data_ptr(),
            self.powers.data_ptr(), self._POWERS)
        opt.t += 1
        opt._scale = new_scale
        bpr, adv, l2 = self.out.tolist()
        return bpr / B, (adv / B if rule else None), l2 / B


class NativeReject:
    """The membership test of the negative sampler (:func:`skadvrec._sampling.sample_negatives`'s
    ``reject``) as one C loop: a binary search in each user's sorted CSR row instead of
    ``torch.searchsorted`` over all pair keys. Same answers, so the same triples are drawn."""

    def __init__(self, lib, indptr, indices):
        self.lib, self.indptr, self.indices = lib, indptr, indices

    @classmethod
    def create(cls, sampler, lib):
        ok = (sampler.indptr.device.type == "cpu" and sampler.indptr.dtype == torch.int64
              and sampler.indices.dtype == torch.int64 and sampler.indptr.is_contiguous()
              and sampler.indices.is_contiguous())
        return cls(lib, sampler.indptr, sampler.indices) if ok else None

    def __call__(self, users, neg, todo):
        users, neg, todo = (x.contiguous() for x in (users, neg, todo))
        bad = torch.empty(len(todo), dtype=torch.int64)
        n_bad = self.lib.skadvrec_reject(self.indptr.data_ptr(), self.indices.data_ptr(),
                                         users.data_ptr(), neg.data_ptr(), todo.data_ptr(),
                                         len(todo), bad.data_ptr())
        return bad[:n_bad]
