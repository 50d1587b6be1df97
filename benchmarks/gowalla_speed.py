"""Speed on Gowalla's LightGCN split (29,858 users x 40,981 items, 810,128 train interactions).

1. EASE fit on the whole train matrix (target: <= 2 s on the GPU). It needs three 40,981^2
   float32 matrices (~20 GiB), so on a CPU box it is skipped unless --ease-on-cpu is given.
2. All-item full-ranking evaluation, NDCG@20 and Recall@20 for all 29,858 test users with train
   items masked (target: <= 2 s on the GPU). The scores come from PureSVD (64 factors, item
   factors from a truncated SVD of the train matrix, user scores x V Vᵀ), a real recommender
   that is cheap enough to score on a CPU too; with EASE on the GPU the EASE scores are timed too.

    SKADVREC_DATA=../shared/data python benchmarks/gowalla_speed.py [--device cuda]
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse.linalg as spla
import torch

from _common import header, print_table, timed
from skadvrec.base import BaseRecommender
from skadvrec.datasets import load_lightgcn_split
from skadvrec.linear import EASE
from skadvrec.linear.ease import ease_memory_bytes


class PureSVD(BaseRecommender):
    """Cremonesi et al. 2010: scores = x V Vᵀ with V the top item singular vectors."""

    def __init__(self, *, n_components=64, device="auto", batch_size=4096, random_state=0):
        self.n_components = n_components
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    def _fit(self, X, sensitive_features=None):
        v0 = np.random.default_rng(self.random_state).random(min(X.shape))
        _, _, vt = spla.svds(X.astype(np.float64), k=self.n_components, v0=v0)
        self.components_ = torch.as_tensor(vt.T.copy(), dtype=torch.float32).to(self.device_)

    def _scores_from_rows(self, X_rows):
        return (X_rows @ self.components_) @ self.components_.T


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--l2", type=float, default=200.0)
    p.add_argument("--ease-on-cpu", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                       else ("cpu" if args.device == "auto" else args.device))
    header("Gowalla (LightGCN split): EASE fit and full-ranking evaluation speed", dev)
    t_load, g = timed(lambda: load_lightgcn_split("gowalla"))
    train, test = g.train, g.test
    print(f"train {train.shape} nnz {train.nnz}, test nnz {test.nnz}, load {t_load:.2f} s; "
          f"EASE needs ~{ease_memory_bytes(train.shape[1]) / 2**30:.1f} GiB")
    metrics = ["ndcg@20", "recall@20"]
    rows = []
    svd = PureSVD(device=str(dev))
    t_svd, _ = timed(lambda: svd.fit(train))
    t_eval, (vals, _) = timed(lambda: svd.evaluate(train, metrics, targets=test),
                              repeat=args.repeat, sync_device=dev)
    rows.append({"step": "PureSVD-64 fit (scipy svds, CPU)", "seconds": f"{t_svd:.2f}",
                 "ndcg@20": f"{np.nanmean(vals['ndcg@20']):.4f}",
                 "recall@20": f"{np.nanmean(vals['recall@20']):.4f}"})
    rows.append({"step": f"full-ranking eval, {train.shape[0]} users (PureSVD scores)",
                 "seconds": f"{t_eval:.3f}", "ndcg@20": "", "recall@20": ""})
    if dev.type == "cuda" or args.ease_on_cpu:
        ease = EASE(l2=args.l2, device=str(dev))
        t_fit, _ = timed(lambda: ease.fit(train), repeat=args.repeat, sync_device=dev)
        t_ev, (ev, _) = timed(lambda: ease.evaluate(train, metrics, targets=test),
                              repeat=args.repeat, sync_device=dev)
        rows.append({"step": f"EASE fit l2={args.l2:g}", "seconds": f"{t_fit:.3f}",
                     "ndcg@20": f"{np.nanmean(ev['ndcg@20']):.4f}",
                     "recall@20": f"{np.nanmean(ev['recall@20']):.4f}"})
        rows.append({"step": f"full-ranking eval, {train.shape[0]} users (EASE scores)",
                     "seconds": f"{t_ev:.3f}", "ndcg@20": "", "recall@20": ""})
    else:
        rows.append({"step": "EASE fit", "seconds": "skipped (no CUDA; --ease-on-cpu)",
                     "ndcg@20": "", "recall@20": ""})
    print_table(rows, ["step", "seconds", "ndcg@20", "recall@20"])


if __name__ == "__main__":
    main()
