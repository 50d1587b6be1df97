"""EASE's closed form on ML-1M, stage by stage, at 1 and 2 threads (issue 14).

Times each stage of :func:`skadvrec.linear.ease.ease_closed_form` on the CPU (the Gram matrix,
LAPACK potrf, potri, the final mirror / scale / zero-diagonal pass) and the whole fit, at each
thread count given (torch threads and BLAS threads through threadpoolctl), best of --repeat;
``--legacy`` adds the previous implementation's steps (scipy's whole sparse product densified,
torch's elementwise steps on its OpenMP threads) for comparison. Prints the load average at
start and end: a 2-thread figure only means something when a core is idle.

    SKADVREC_DATA=../shared/data python benchmarks/peers/_ease_stages.py --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from skadvrec.linear import EASE  # noqa: E402
from skadvrec.linear import ease as E  # noqa: E402


def best(fn, repeat):
    t, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


def stages(X, l2, repeat, legacy):
    from scipy.linalg import lapack

    rows = {}
    threads = torch.get_num_threads()
    rows["gram (blocks; syrk for heavy users), upper triangle"], G = best(
        lambda: E._gram_blocks(X, np.float32, upper=True, threads=threads), repeat)
    G = E._finish_in_place(G, ease=False)
    if legacy:
        def old_gram():
            Xd = X.astype(np.float32)
            return (Xd.T @ Xd).toarray()
        rows["gram (legacy: whole sparse product, toarray)"], _ = best(old_gram, repeat)
    A0 = G.copy()
    A0[np.diag_indices_from(A0)] += l2
    ts, ti = [], []
    for _ in range(repeat):
        A = A0.copy()
        t0 = time.perf_counter()
        c, _ = lapack.spotrf(A.T, lower=True, clean=False, overwrite_a=True)
        t1 = time.perf_counter()
        inv, _ = lapack.spotri(c, lower=True, overwrite_c=True)
        t2 = time.perf_counter()
        ts.append(t1 - t0)
        ti.append(t2 - t1)
    rows["potrf (all threads, uncapped)"], rows["potri (all threads, uncapped)"] = min(ts), min(ti)
    P0 = np.ascontiguousarray(inv.T).copy()
    tf = []
    for _ in range(repeat):
        P = P0.copy()
        t0 = time.perf_counter()
        E._finish_in_place(P)
        tf.append(time.perf_counter() - t0)
    rows["mirror + scale + zero diagonal (numpy, fused)"] = min(tf)
    if legacy:
        tl = []
        for _ in range(repeat):
            P = torch.from_numpy(P0.copy())
            t0 = time.perf_counter()
            n, step = P.shape[0], 1024
            for a in range(0, n, step):
                b = min(a + step, n)
                blk = P[a:b, a:b]
                blk.copy_(torch.triu(blk) + torch.triu(blk, diagonal=1).T)
                if a:
                    P[a:b, :a] = P[:a, a:b].T
            d = P.diagonal().clone()
            P.div_(-d[None, :])
            P.fill_diagonal_(0.0)
            tl.append(time.perf_counter() - t0)
        rows["mirror + divide + zero diagonal (legacy: torch OpenMP)"] = min(tl)
    rows["EASE.fit (whole)"], _ = best(lambda: EASE(l2=l2, device="cpu").fit(X), repeat)
    rows["BLAS threads the fit chose for its solve (_blas_threads)"] = float(
        E._blas_threads(X.shape[1]))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--l2", type=float, default=500.0)
    p.add_argument("--legacy", action="store_true")
    p.add_argument("--smoke", action="store_true", help="synthetic 2,000 x 800 matrix")
    args = p.parse_args()
    if args.smoke:
        import scipy.sparse as sp
        X = sp.random(2000, 800, density=0.03, format="csr", random_state=0, dtype=np.float32)
        X.data[:] = 1.0
    else:
        from advxmultvae_ml1m import load
        X = load()[0]
    print(f"X {X.shape}, nnz {X.nnz}; torch {torch.__version__}; "
          f"BLAS {[(i['internal_api'], i.get('version')) for i in threadpool_info()]}")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    table = {}
    for t in args.threads:
        torch.set_num_threads(t)
        with threadpool_limits(limits=t):
            table[t] = stages(X, args.l2, args.repeat, args.legacy)
        print(f"-- {t} thread(s), load {os.getloadavg()[0]:.2f}", flush=True)
        for k, v in table[t].items():
            print(f"   {k:55s} {v:7.3f} s", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    cols = list(args.threads)
    print("\n| stage | " + " | ".join(f"{t} thread(s) s" for t in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for k in table[cols[0]]:
        print(f"| {k} | " + " | ".join(f"{table[t][k]:.3f}" for t in cols) + " |")


if __name__ == "__main__":
    main()
