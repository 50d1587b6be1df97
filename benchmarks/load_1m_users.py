"""Load test (issue 16): evaluation and ``recommend`` over 1 M synthetic users, batched.

A model is fitted on a small slice of the users; then ``evaluate`` (fold-in 80/20, NDCG@20 and
Recall@20), ``NDCGScorer`` and ``recommend(k=10)`` run over all 1 M users. For each phase the
script prints its wall time and the peak resident memory of the process *during that phase*
(the kernel's high-water mark, reset before each phase through /proc/self/clear_refs), next to
the size of the input matrix and of the dense score matrix that batching avoids.

    /work/bin/heavy python benchmarks/load_1m_users.py [--users 1000000] [--items 500]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.sparse as sp
import torch

from skadvrec.cf import BPRMF
from skadvrec.linear import EASE
from skadvrec.metrics import NDCGScorer
from skadvrec.vae import MultVAE

from _common import header


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # lifetime peak


def synthetic(n_users, n_items, mean, seed=0):
    """A binary CSR with Zipf-like item popularity and ~``mean`` interactions per user, built
    without any per-user Python loop."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.poisson(mean, n_users), 2, n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop /= pop.sum()
    rows = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    cols = rng.choice(n_items, size=rows.size, p=pop).astype(np.int32)
    X = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)),
                      shape=(n_users, n_items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def phase(name, fn, rows):
    _reset_peak()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = _peak_mib()
    rows.append((name, dt, peak))
    print(f"{name:<36} {dt:8.1f} s   peak RSS {peak:8.0f} MiB", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--mean", type=float, default=15.0)
    ap.add_argument("--fit-users", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(1)
    header("load: evaluate / recommend over many users (issue 16)", "cpu")
    rows = []
    X = phase("generate synthetic CSR", lambda: synthetic(args.users, args.items, args.mean),
              rows)
    in_mib = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
    dense_mib = args.users * args.items * 4 / 2**20
    print(f"users {X.shape[0]}  items {X.shape[1]}  interactions {X.nnz}  "
          f"CSR {in_mib:.0f} MiB  (dense float32 scores would be {dense_mib:.0f} MiB)")
    models = {
        "EASE": EASE(l2=200.0, device="cpu", batch_size=args.batch_size),
        "MultVAE": MultVAE(latent_dim=32, hidden_dims=(64,), max_iter=2, device="cpu",
                           early_stopping=False, batch_size=500, random_state=0),
        "BPRMF": BPRMF(n_components=32, max_iter=2, device="cpu", batch_size=args.batch_size,
                       random_state=0),
    }
    for name, model in models.items():
        phase(f"{name}: fit on {args.fit_users} users", lambda: model.fit(X[:args.fit_users]),
              rows)
        vals = phase(f"{name}: evaluate {X.shape[0]} users",
                     lambda: model.evaluate(X, ["ndcg@20", "recall@20"])[0], rows)
        print(f"    mean NDCG@20 {np.nanmean(vals['ndcg@20']):.4f}  "
              f"users with a target {int(np.isfinite(vals['ndcg@20']).sum())}")
        phase(f"{name}: NDCGScorer(k=20)", lambda: NDCGScorer(k=20)(model, X), rows)
        top = phase(f"{name}: recommend k=10", lambda: model.recommend(X, k=10), rows)
        assert top.shape == (X.shape[0], 10)
        del top
    # scaling: time per user of evaluate / recommend as the number of users grows (a step
    # quadratic in users would show as a growing time per user)
    ease = models["EASE"]
    print("scaling (EASE): users, evaluate us/user, recommend us/user, peak RSS MiB")
    for n in (X.shape[0] // 8, X.shape[0] // 4, X.shape[0] // 2, X.shape[0]):
        sub = X[:n]
        _reset_peak()
        t0 = time.perf_counter()
        ease.evaluate(sub, ["ndcg@20"])
        t1 = time.perf_counter()
        ease.recommend(sub, k=10)
        t2 = time.perf_counter()
        print(f"  {n:>8}  {1e6 * (t1 - t0) / n:6.1f}  {1e6 * (t2 - t1) / n:6.1f}  "
              f"{_peak_mib():7.0f}", flush=True)
    print(f"peak RSS over every phase: {max(r[2] for r in rows):.0f} MiB "
          f"(lifetime ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB)")


if __name__ == "__main__":
    main()
