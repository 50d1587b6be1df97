"""The native BPR / APR / PamaCF step of the MF backbone: one C function per batch, or per epoch.

The row-sparse torch step of :class:`~skadvrec.cf._base._EmbeddingRecommender` is about forty
small tensor operations a batch; on the CPU their fixed costs (dispatch, allocation, one pass
over memory each) dominate a BPR epoch. This module runs the same step as one C function on the
trainer's own buffers, with the semantics of ``RowAdamW.fetch`` + ``RowAdamW.step`` and of the
torch step's gradients (float32 arithmetic on the rows, float64 for the scalars and the loss
sums; results differ from the torch form by float32 rounding only: the L2 gradient is added once
per row as count · 2·reg/B · e, the adversarial gradients' norms are taken in closed form,
divisions by constants are products, sums are taken in another order).

An epoch on Gowalla is bound by memory, not arithmetic: each step reads and writes ~5,700
scattered rows of parameter + two moments (768 bytes each at 64 dimensions) in a 54 MB table. So
the step reads each touched row from memory once: a first pass over the batch's indices gives
each row its slot, count and last occurrence without touching it; the row is fetched (weight-
decay scale and momentum catch-up of :class:`skadvrec._torch.RowAdamW`, in place) where the
triples first meet it, its cache lines requested a few triples ahead, and its AdamW update is
applied right after its last occurrence, while it is still in cache. Triples run in chunks of 8
so that their independent dot products and exponentials overlap. ``skadvrec_bpr_epoch`` runs an
epoch's steps in one call and keeps the training loop's record (the float32 sums of the batch
means) to the bit; the table itself lies on transparent huge pages
(:func:`skadvrec._torch.zeros_hugepages`), which spares a TLB miss per row. The module also
gives the negative sampler its passes over the draws (:class:`NativeTriples`: users, positives
and the first membership test in one loop; :class:`NativeReject`: the later rounds), which draw
the same triples as the torch form.

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
import re
import shutil
import subprocess
import tempfile
import threading

import torch

from .._torch import _steps_to_tiny
from .._warnings import warn

__all__ = ["NativeStep", "NativeReject", "NativeTriples", "load", "enabled"]

_VERSION = 4  # the source's skadvrec_kernel_version(): bumped with its functions' signatures
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
#define PREFETCH_R(p) __builtin_prefetch((p), 0, 3)
#define INLINE static inline __attribute__((always_inline))
#else
#define PREFETCH(p) ((void)0)
#define PREFETCH_R(p) ((void)0)
#define INLINE static inline
#endif

#ifndef PF_ROWS
#define PF_ROWS 8     /* rows ahead whose cache lines are requested */
#endif
#ifndef CH
#define CH 8        /* triples per chunk */
#endif
#ifndef PF_DRAW
#define PF_DRAW 16    /* draws ahead (the sampler's first pass) */
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

INLINE double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }


/* 8 floats as one vector (GCC / clang vector extension: one AVX register in the AVX2 clone,
   two SSE ones in the baseline); loads and stores are unaligned */
typedef float v8 __attribute__((vector_size(32)));
INLINE v8 ld8(const float *p) { v8 x; memcpy(&x, p, sizeof(x)); return x; }
INLINE void st8(float *p, v8 x) { memcpy(p, &x, sizeof(x)); }
/* the lanes summed in dot()'s order */
INLINE float hsum8(v8 a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* sigmoid(x), with softplus(x) added to *sp; one expf: e = exp(-|x|), softplus(x) =
   max(x, 0) + log1p(e) (log1p by its series below 1e-3, else logf(1 + e): within 1e-7 of
   it), sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below */
INLINE float sig_sp(float x, double *sp) {
    const float e = expf(x > 0.0f ? -x : x);
    const float l = e < 1e-3f ? e * (1.0f - e * (0.5f - e * (1.0f / 3.0f))) : logf(1.0f + e);
    *sp += (double)((x > 0.0f ? x : 0.0f) + l);
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* diff = ej - ei; returns eu . diff */
INLINE float diff_dot(const float *restrict eu, const float *restrict ei,
                      const float *restrict ej, float *restrict diff, int64_t d) {
    v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= d; k += 8) {
        const v8 df = ld8(ej + k) - ld8(ei + k);
        st8(diff + k, df);
        acc += ld8(eu + k) * df;
    }
    float s = hsum8(acc);
    for (; k < d; k++) { diff[k] = ej[k] - ei[k]; s += eu[k] * diff[k]; }
    return s;
}

/* as diff_dot, with *dd = diff . diff and *ee = eu . eu */
INLINE float diff_dot3(const float *restrict eu, const float *restrict ei,
                       const float *restrict ej, float *restrict diff, int64_t d,
                       float *dd, float *ee) {
    v8 a = {0, 0, 0, 0, 0, 0, 0, 0}, b = a, c = a;
    int64_t k = 0;
    for (; k + 8 <= d; k += 8) {
        const v8 df = ld8(ej + k) - ld8(ei + k), e = ld8(eu + k);
        st8(diff + k, df);
        a += e * df;
        b += df * df;
        c += e * e;
    }
    float sa = hsum8(a), sb = hsum8(b), sc = hsum8(c);
    for (; k < d; k++) {
        const float df = ej[k] - ei[k], e = eu[k];
        diff[k] = df; sa += e * df; sb += df * df; sc += e * e;
    }
    *dd = sb; *ee = sc;
    return sa;
}

/* the BPR gradients of one triple added to its rows: s diff, -s eu, s eu */
INLINE void bpr_acc(float *restrict Gu, float *restrict Gi, float *restrict Gj,
                    const float *restrict eu, const float *restrict diff, float s, int64_t d) {
    int64_t k = 0;
    for (; k + 8 <= d; k += 8) {
        const v8 se = s * ld8(eu + k);
        st8(Gu + k, ld8(Gu + k) + s * ld8(diff + k));
        st8(Gi + k, ld8(Gi + k) - se);
        st8(Gj + k, ld8(Gj + k) + se);
    }
    for (; k < d; k++) {
        const float se = s * eu[k];
        Gu[k] += s * diff[k]; Gi[k] -= se; Gj[k] += se;
    }
}

/* pu = eu + a diff, pd = diff + e2 eu; returns pu . pd */
INLINE float adv_dot(const float *restrict eu, const float *restrict diff, float *restrict pu,
                     float *restrict pd, float a, float e2, int64_t d) {
    v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= d; k += 8) {
        const v8 e = ld8(eu + k), df = ld8(diff + k);
        const v8 x = e + a * df, y = df + e2 * e;
        st8(pu + k, x);
        st8(pd + k, y);
        acc += x * y;
    }
    float s = hsum8(acc);
    for (; k < d; k++) {
        pu[k] = eu[k] + a * diff[k]; pd[k] = diff[k] + e2 * eu[k]; s += pu[k] * pd[k];
    }
    return s;
}

/* the BPR and adversarial gradients of one triple added to its rows */
INLINE void adv_acc(float *restrict Gu, float *restrict Gi, float *restrict Gj,
                    const float *restrict eu, const float *restrict diff,
                    const float *restrict pu, const float *restrict pd, float s, float sa,
                    int64_t d) {
    int64_t k = 0;
    for (; k + 8 <= d; k += 8) {
        const v8 gi = s * ld8(eu + k) + sa * ld8(pu + k);
        st8(Gu + k, ld8(Gu + k) + (s * ld8(diff + k) + sa * ld8(pd + k)));
        st8(Gi + k, ld8(Gi + k) - gi);
        st8(Gj + k, ld8(Gj + k) + gi);
    }
    for (; k < d; k++) {
        const float gi = s * eu[k] + sa * pu[k];
        Gu[k] += s * diff[k] + sa * pd[k]; Gi[k] -= gi; Gj[k] += gi;
    }
}

API int skadvrec_kernel_version(void) { return 4; }

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

/* AdamW on one row (step t + 1) with its summed gradient g (the L2 term added here: count *
   2 reg / B * e), stored back divided by the new scale; returns |e|^2 of the values the batch
   used */
typedef struct {
    float fb1, g1, fb2, g2, insbc2, feps, step, fkeep, inew, l2c;
    int reg;
} Adam;

INLINE float adam_row(const Adam *a, float *p, float *g, int64_t d, float count) {
    float *m = p + d, *v = p + 2 * d;
    const float e2 = dot(p, p, d);
    if (a->reg) {
        const float cr = count * a->l2c;
        for (int64_t k = 0; k < d; k++) g[k] += cr * p[k];
    }
    const float fb1 = a->fb1, g1 = a->g1, fb2 = a->fb2, g2 = a->g2, insbc2 = a->insbc2;
    const float feps = a->feps, step = a->step, fkeep = a->fkeep, inew = a->inew;
    for (int64_t k = 0; k < d; k++) {
        m[k] = m[k] * fb1 + g1 * g[k];
        v[k] = v[k] * fb2 + g2 * (g[k] * g[k]);
        const float den = sqrtf(v[k]) * insbc2 + feps;
        p[k] = (p[k] * fkeep + step * (m[k] / den)) * inew;
    }
    return e2;
}

/*
 * One step on a batch of B triples (u, i, j); users are rows [0, n_users) of the table, items
 * follow them. state: (n_rows, 3, d) float32, per row the stored parameter (true value / scale)
 * and AdamW's two moments. last: (n_rows,) step up to which each row's momentum was applied
 * (NULL: no catch-up). slot: (n_rows,) int32, all -1 on entry and on return. work: float32
 * scratch of at least 3*B*d + 5*B + 3*CH*d; rows: int64 scratch of 3*B; aux: int32 scratch of
 * 6*B.
 * sc[]: scale, new_scale, lr, keep, b1, b2, eps, reg, coef_a, adv_weight, tiny1, tiny2
 * (tiny: the k above which beta^k is taken as 0). rule: 0 none, 1 uniform (m = a),
 * 2 personalised (m = a * sigmoid(|eu|^2 / mean_batch |eu|^2 - 1)), 3 paper
 * (m = a * sigmoid(|eu| - mean over all users of |e|)).
 * out[]: sum softplus(x), sum softplus(x_adv), sum |e|^2 over the 3B occurrences.
 * pw: (3, pw_n) float64, r^k, b1^k, b2^k for k < pw_n (r = b1 / sqrt(b2)); pow() beyond.
 * Returns the number of unique rows.
 *
 * Memory order: a first pass over the indices gives each row its slot, its count and its last
 * occurrence, touching no row. A row is then fetched (scale, momentum catch-up) where the
 * triples first meet it (its cache lines requested a few triples ahead) and updated right
 * after its last occurrence, while its lines are still in cache: each touched row is read from
 * memory once a step. The triples run in chunks of CH, each phase over the chunk's independent
 * triples (their dot products, exponentials and square roots overlap); gradients are added in
 * triple order.
 */
API CLONES int64_t skadvrec_bpr_step(float *state, int64_t *last, int32_t *slot, int64_t n_users,
                              int64_t d, const int64_t *u, const int64_t *i, const int64_t *j,
                              int64_t B, int64_t t, const double *sc, int rule, float *work,
                              int64_t *rows, int32_t *aux, double *out, const double *pw,
                              int64_t pw_n) {
    const double scale = sc[0], new_scale = sc[1], lr = sc[2], keep = sc[3];
    const double b1 = sc[4], b2 = sc[5], eps = sc[6], reg = sc[7], coef_a = sc[8];
    const double weight = sc[9];
    const int64_t D3 = 3 * d;
    float *G = work;                    /* (n_unique, d) summed gradients */
    float *coef = G + 3 * B * d;        /* (B) perturbation magnitudes */
    float *n2 = coef + B;               /* (B) |eu|^2 */
    float *cnt = n2 + B;                /* (n_unique) occurrences of each row in the batch */
    float *tmp = cnt + 3 * B;           /* 3 CH d */
    int32_t *lastb = aux, *seen = aux + 3 * B;  /* (n_unique) last occurrence; fetched yet */
    double mean_norm = 0.0;
    int64_t n = 0;
    Fetch f;
    fetch_setup(&f, sc, t, pw, pw_n);
#define FETCH(s) do { if (!seen[s]) { seen[s] = 1; const int64_t r_ = rows[s]; \
        memset(G + (int64_t)(s) * d, 0, sizeof(float) * (size_t)d); \
        fetch_row(&f, state + r_ * D3, d, (last != NULL && t > 0) ? t - last[r_] : 0); } \
    } while (0)

    /* slots in order of first occurrence (u, i, j of each triple in turn) */
    for (int64_t b = 0; b < B; b++) {
        const int64_t rr[3] = {u[b], i[b] + n_users, j[b] + n_users};
        for (int part = 0; part < 3; part++) {
            const int64_t r = rr[part];
            if (slot[r] < 0) {
                slot[r] = (int32_t)n; cnt[n] = 0.0f; rows[n] = r; seen[n] = 0; n++;
            }
            cnt[slot[r]] += 1.0f;
            lastb[slot[r]] = (int32_t)b;
        }
    }

    /* the paper rule: mean norm over all users, before this step (stored * scale) */
    if (rule == 3) {
        double s = 0.0;
        for (int64_t r = 0; r < n_users; r++) {
            const float *p = state + r * D3;
            s += sqrt((double)dot(p, p, d));
        }
        mean_norm = s * fabs(scale) / (double)(n_users > 0 ? n_users : 1);
    }

    /* rule 2 needs the batch mean of |eu|^2 first: the batch's users are fetched here */
    if (rule == 2) {
        double s = 0.0;
        for (int64_t b = 0; b < B; b++) {
            if (b + PF_ROWS < B) {
                prefetch_row(state + u[b + PF_ROWS] * D3, D3);
                if (last != NULL) PREFETCH(last + u[b + PF_ROWS]);
            }
            FETCH(slot[u[b]]);
            const float *eu = state + u[b] * D3;
            n2[b] = dot(eu, eu, d);
            s += n2[b];
        }
        float mean = (float)(s / (double)B);
        if (mean < 1.17549435e-38f) mean = 1.17549435e-38f;
        for (int64_t b = 0; b < B; b++)
            coef[b] = (float)(coef_a * sigmoid((double)(n2[b] / mean) - 1.0));
    }

    const int64_t t1 = t + 1;
    Adam ad;
    {
        const double nbc1 = 1.0 - pow(b1, (double)t1), nbc2 = 1.0 - pow(b2, (double)t1);
        ad.insbc2 = (float)(1.0 / sqrt(nbc2));
        ad.step = (float)(-lr / nbc1);
        ad.fb1 = (float)b1; ad.fb2 = (float)b2;
        ad.g1 = (float)(1.0 - b1); ad.g2 = (float)(1.0 - b2);
        ad.feps = (float)eps; ad.fkeep = (float)keep; ad.inew = (float)(1.0 / new_scale);
        ad.l2c = (float)(2.0 * reg / (double)B);
        ad.reg = reg != 0.0;
    }
    double bpr = 0.0, adv = 0.0, l2 = 0.0;
    const float invB = 1.0f / (float)B, fw = (float)(weight / (double)B);
    for (int64_t b0 = 0; b0 < B; b0 += CH) {
        const int64_t nb = B - b0 < CH ? B - b0 : CH;
        int32_t sl[3 * CH];
        float xs[CH], ss[CH], dds[CH], ees[CH], aa[CH], ee2[CH], sas[CH];
        for (int64_t q = 0; q < nb; q++) {
            const int64_t b = b0 + q;
            if (b + PF_TRIPLES < B) {
                const int64_t ru = u[b + PF_TRIPLES], ri = i[b + PF_TRIPLES] + n_users,
                              rj = j[b + PF_TRIPLES] + n_users;
                prefetch_row(state + ru * D3, D3);
                prefetch_row(state + ri * D3, D3);
                prefetch_row(state + rj * D3, D3);
                if (last != NULL) {  /* their catch-up counters too (a 0.5 MB array) */
                    PREFETCH(last + ru);
                    PREFETCH(last + ri);
                    PREFETCH(last + rj);
                }
            }
            sl[3 * q] = slot[u[b]];
            sl[3 * q + 1] = slot[i[b] + n_users];
            sl[3 * q + 2] = slot[j[b] + n_users];
            for (int part = 0; part < 3; part++) FETCH(sl[3 * q + part]);
        }
#define EU(q) (state + rows[sl[3 * (q)]] * D3)
#define EI(q) (state + rows[sl[3 * (q) + 1]] * D3)
#define EJ(q) (state + rows[sl[3 * (q) + 2]] * D3)
#define GR(q, part) (G + (int64_t)sl[3 * (q) + (part)] * d)
        float *pu = tmp + CH * d, *pd = tmp + 2 * CH * d;
        if (rule == 0) {
            for (int64_t q = 0; q < nb; q++)
                xs[q] = diff_dot(EU(q), EI(q), EJ(q), tmp + q * d, d);
            for (int64_t q = 0; q < nb; q++) ss[q] = sig_sp(xs[q], &bpr) * invB;
        } else {
            for (int64_t q = 0; q < nb; q++)
                xs[q] = diff_dot3(EU(q), EI(q), EJ(q), tmp + q * d, d, &dds[q], &ees[q]);
            for (int64_t q = 0; q < nb; q++) {
                const float s = sig_sp(xs[q], &bpr) * invB;
                const float c = rule == 1 ? (float)coef_a
                                : (rule == 2 ? coef[b0 + q]
                                   : (float)(coef_a * sigmoid(sqrt((double)ees[q]) - mean_norm)));
                /* c * g / max(|g|, 1e-12) (F.normalize's floor) for g = s (ej - ei), -s eu,
                   s eu: |g| in closed form, so pu = eu + a diff and pj - pi = diff + 2 e eu */
                const float nu = s * sqrtf(dds[q]), ne = s * sqrtf(ees[q]);
                ss[q] = s;
                aa[q] = c / (nu > 1e-12f ? nu : 1e-12f) * s;
                ee2[q] = 2.0f * (c / (ne > 1e-12f ? ne : 1e-12f) * s);
            }
            for (int64_t q = 0; q < nb; q++)
                xs[q] = adv_dot(EU(q), tmp + q * d, pu + q * d, pd + q * d, aa[q], ee2[q], d);
            for (int64_t q = 0; q < nb; q++) sas[q] = sig_sp(xs[q], &adv) * fw;
        }
        for (int64_t q = 0; q < nb; q++) {
            if (rule == 0)
                bpr_acc(GR(q, 0), GR(q, 1), GR(q, 2), EU(q), tmp + q * d, ss[q], d);
            else
                adv_acc(GR(q, 0), GR(q, 1), GR(q, 2), EU(q), tmp + q * d, pu + q * d,
                        pd + q * d, ss[q], sas[q], d);
            /* rows met for the last time: AdamW now, while their lines are in cache */
            for (int part = 0; part < 3; part++) {
                const int32_t s = sl[3 * q + part];
                if (lastb[s] != (int32_t)(b0 + q)) continue;
                const int64_t r = rows[s];
                l2 += (double)cnt[s] * (double)adam_row(&ad, state + r * D3, G + s * d, d,
                                                        cnt[s]);
                if (last != NULL) last[r] = t1;
                slot[r] = -1;
            }
        }
#undef EU
#undef EI
#undef EJ
#undef GR
    }
#undef FETCH
    out[0] = bpr;
    out[1] = adv;
    out[2] = l2;
    return n;
}

/*
 * The deterministic part of a BPR epoch's draw (skadvrec._sampling.sample_bpr_triples) for n
 * draws pick (index into active), r (float32 uniform) and neg (item): users[t] = active[pick[t]],
 * pos[t] = indices[indptr[u] + min((int64)(r[t] * deg(u)), deg(u) - 1)] (the float32 product
 * torch computes), and the entries t whose negative is a positive of the user, written to bad in
 * order; returns their number.
 */
API int64_t skadvrec_triples(const int64_t *indptr, const int32_t *indices, const int64_t *active,
                             const int64_t *pick, const float *r, const int64_t *neg, int64_t n,
                             int64_t *users, int64_t *pos, int64_t *bad) {
    int64_t n_bad = 0;
    for (int64_t t = 0; t < n; t++) {
        if (t + PF_DRAW < n) {  /* the user's row of a draw ahead: its start, middle and end */
            const int64_t u2 = active[pick[t + PF_DRAW]], a2 = indptr[u2];
            const int64_t e2 = indptr[u2 + 1];
            PREFETCH_R(indices + a2);
            PREFETCH_R(indices + a2 + (e2 - a2) / 2);
            PREFETCH_R(indices + (e2 > a2 ? e2 - 1 : a2));
        }
        const int64_t us = active[pick[t]], a = indptr[us], deg = indptr[us + 1] - a;
        int64_t off = (int64_t)(r[t] * (float)deg);
        if (off > deg - 1) off = deg - 1;
        users[t] = us;
        pos[t] = indices[a + off];
        /* branchless lower bound of neg[t] in the row: it lies in [p, p + len] throughout */
        const int64_t it = neg[t];
        const int32_t *p = indices + a, *end = indices + a + deg;
        int64_t len = deg;
        while (len > 1) {
            const int64_t half = len / 2;
            p = p[half - 1] < it ? p + half : p;
            len -= half;
        }
        const int hit = (p < end && *p == it) || (p + 1 < end && p[1] == it);
        bad[n_bad] = t;
        n_bad += hit;
    }
    return n_bad;
}

/*
 * An epoch: skadvrec_bpr_step on the consecutive batches of bs triples of (u, i, j) (n in all,
 * the last batch may be smaller), from step count t. sc as for the step; sc[0], the scale, is
 * updated (times keep per step) and sc[1] set per step. sums[] (float32, zero on entry): per
 * step the batch means loss = bpr + reg l2 (+ weight adv), bpr and adv (doubles rounded to
 * float32) times the batch size, added up in float32, the record the Python loop keeps.
 * Returns the number of steps.
 */
API CLONES int64_t skadvrec_bpr_epoch(float *state, int64_t *last, int32_t *slot, int64_t n_users,
                               int64_t d, const int64_t *u, const int64_t *i, const int64_t *j,
                               int64_t n, int64_t bs, int64_t t, double *sc, int rule,
                               float *work, int64_t *rows, int32_t *aux, float *sums,
                               const double *pw, int64_t pw_n) {
    double out[3];
    const double reg = sc[7], weight = sc[9];
    int64_t steps = 0;
    for (int64_t start = 0; start < n; start += bs) {
        const int64_t B = n - start < bs ? n - start : bs;
        sc[1] = sc[0] * sc[3];
        skadvrec_bpr_step(state, last, slot, n_users, d, u + start, i + start, j + start, B,
                          t + steps, sc, rule, work, rows, aux, out, pw, pw_n);
        sc[0] = sc[1];
        steps++;
        const double bpr = out[0] / (double)B, adv = out[1] / (double)B, l2 = out[2] / (double)B;
        double loss = bpr + reg * l2;
        if (rule) loss = loss + weight * adv;
        const float fB = (float)B;
        sums[0] += (float)loss * fB;
        sums[1] += (float)bpr * fB;
        if (rule) sums[2] += (float)adv * fB;
    }
    return steps;
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
    fn.argtypes = [P, P, P, i64, i64, P, P, P, i64, i64, P, ctypes.c_int, P, P, P, P, P, i64]
    fn = lib.skadvrec_reject
    fn.restype = i64
    fn.argtypes = [P, P, P, P, P, i64, P]
    fn = lib.skadvrec_flush
    fn.restype = None
    fn.argtypes = [P, P, i64, i64, i64, P, P, i64]
    fn = lib.skadvrec_bpr_epoch
    fn.restype = i64
    fn.argtypes = [P, P, P, i64, i64, P, P, P, i64, i64, i64, P, ctypes.c_int, P, P, P, P, P,
                   i64]
    fn = lib.skadvrec_triples
    fn.restype = i64
    fn.argtypes = [P, P, P, P, P, P, i64, P, P, P]
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
    (adversarial None when off); ``epoch(u, i, j, batch_size, reg, adversarial)`` runs the steps
    of a whole epoch in one call.
    """

    # CH of the source (triples per chunk of the step), read from it: one number, one place
    _CHUNK = int(re.search(r"#define CH (\d+)", _SOURCE).group(1))

    _POWERS = 2048  # r^k, b1^k, b2^k tabulated for the catch-up of k < 2048 missed steps

    def __init__(self, lib, opt, n_users, rule_args):
        self.lib, self.opt, self.n_users = lib, opt, int(n_users)
        self.rule, self.coef_a, self.weight = rule_args
        n, _, d = opt.state.shape
        self.d = d
        self.slot = torch.full((n,), -1, dtype=torch.int32)
        self.work = torch.empty(0, dtype=torch.float32)
        self.rows = torch.empty(0, dtype=torch.int64)
        self.aux = torch.empty(0, dtype=torch.int32)
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
        need = 3 * B * self.d + 5 * B + 3 * self._CHUNK * self.d
        if self.work.numel() < need:
            self.work = torch.empty(need, dtype=torch.float32)
            self.rows = torch.empty(3 * B, dtype=torch.int64)
            self.aux = torch.empty(6 * B, dtype=torch.int32)

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
            self.work.data_ptr(), self.rows.data_ptr(), self.aux.data_ptr(), self.out.data_ptr(),
            self.powers.data_ptr(), self._POWERS)
        opt.t += 1
        opt._scale = new_scale
        bpr, adv, l2 = self.out.tolist()
        return bpr / B, (adv / B if rule else None), l2 / B

    def epoch(self, u, i, j, batch_size, reg, adversarial):
        """The steps of an epoch on the consecutive batches of ``batch_size`` triples, in one
        call. Returns the number of steps and the float32 sums over the steps of each batch mean
        times the batch size (loss, bpr, adversarial when on): the sums the training loop keeps
        for the epoch's record, to the bit."""
        opt = self.opt
        u, i, j = (x.contiguous() for x in (u, i, j))
        n, bs = int(u.numel()), int(batch_size)
        self._scratch(min(bs, n))
        rule = self.rule if adversarial else 0
        ptr = self._scalars(reg)
        last = opt._last.data_ptr() if opt._last is not None else None
        sums = torch.zeros(3, dtype=torch.float32)
        steps = self.lib.skadvrec_bpr_epoch(
            opt.state.data_ptr(), last, self.slot.data_ptr(), self.n_users, self.d,
            u.data_ptr(), i.data_ptr(), j.data_ptr(), n, bs, opt.t, ptr, rule,
            self.work.data_ptr(), self.rows.data_ptr(), self.aux.data_ptr(), sums.data_ptr(),
            self.powers.data_ptr(), self._POWERS)
        opt.t += int(steps)
        opt._scale = float(self.sc[0])
        keys = ("loss", "bpr", "adversarial") if rule else ("loss", "bpr")
        return int(steps), dict(zip(keys, sums.unbind()))


class _SamplerPass:
    """A native pass of the sampler over its training matrix's CSR structure (int64, CPU);
    ``create`` gives None where it does not apply."""

    def __init__(self, lib, indptr, indices):
        self.lib, self.indptr, self.indices = lib, indptr, indices

    @classmethod
    def create(cls, sampler, lib):
        ok = (sampler.indptr.device.type == "cpu" and sampler.indptr.dtype == torch.int64
              and sampler.indices.dtype == torch.int64 and sampler.indptr.is_contiguous()
              and sampler.indices.is_contiguous())
        return cls(lib, sampler.indptr, sampler.indices) if ok else None


class NativeTriples(_SamplerPass):
    """The deterministic part of the sampler's draw (:func:`skadvrec._sampling.
    sample_bpr_triples`'s ``draw``) as one C loop: from the random draws, the users, the
    positives and the negatives that hit a positive (to redraw). Same answers as the torch
    form, so the same triples are drawn. It reads an int32 copy of the column indices (half
    the memory of a scattered read)."""

    def __init__(self, lib, indptr, indices):
        super().__init__(lib, indptr, indices.to(torch.int32))

    @classmethod
    def create(cls, sampler, lib):
        if sampler.n_items > 2**31 - 1:  # item ids beyond int32: the torch form
            return None
        return super().create(sampler, lib)

    def __call__(self, active, pick, r, neg):
        if r.dtype != torch.float32 or active.dtype != torch.int64 or pick.dtype != torch.int64:
            return None  # e.g. float64 uniforms (another default dtype): the torch form
        active, pick, r, neg = (x.contiguous() for x in (active, pick, r, neg))
        n = len(pick)
        users, pos, bad = (torch.empty(n, dtype=torch.int64) for _ in range(3))
        n_bad = self.lib.skadvrec_triples(
            self.indptr.data_ptr(), self.indices.data_ptr(), active.data_ptr(),
            pick.data_ptr(), r.data_ptr(), neg.data_ptr(), n, users.data_ptr(),
            pos.data_ptr(), bad.data_ptr())
        return users, pos, bad[:n_bad]


class NativeReject(_SamplerPass):
    """The membership test of the negative sampler (:func:`skadvrec._sampling.sample_negatives`'s
    ``reject``) as one C loop: a binary search in each user's sorted CSR row instead of
    ``torch.searchsorted`` over all pair keys. Same answers, so the same triples are drawn."""

    def __call__(self, users, neg, todo):
        users, neg, todo = (x.contiguous() for x in (users, neg, todo))
        bad = torch.empty(len(todo), dtype=torch.int64)
        n_bad = self.lib.skadvrec_reject(self.indptr.data_ptr(), self.indices.data_ptr(),
                                         users.data_ptr(), neg.data_ptr(), todo.data_ptr(),
                                         len(todo), bad.data_ptr())
        return bad[:n_bad]
