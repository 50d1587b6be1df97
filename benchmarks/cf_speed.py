"""Epoch and full-ranking evaluation time of BPR-MF, APR, PamaCF and LightGCN on Gowalla.

Targets (issue 5; RecBole 1.2.1 BPR on an H100: 1.94 s per epoch, 0.70 s per evaluation): a
BPR-MF / APR / PamaCF epoch <= 0.2 s, a LightGCN epoch <= 1 s, full-ranking evaluation of all
29,858 test users (Recall@20 + NDCG@20, training items masked) <= 0.3 s. An epoch is 810,128
triples in batches of 2048 (396 steps), sampled on the device; the adversarial models time
epochs with the adversarial term on (n_pretrain_epochs=0). The median epoch of --epochs is
reported; the evaluation is the best of --repeat calls.

    SKADVREC_DATA=../shared/data python benchmarks/cf_speed.py [--device cuda] [--epochs 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.base import clone

from _common import header, print_table, timed
from skadvrec.cf import APR, BPRMF, LightGCN, PamaCF
from skadvrec.datasets import load_lightgcn_split


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--models", nargs="+", default=["bprmf", "apr", "pamacf", "lightgcn"])
    p.add_argument("--dense", action="store_true",
                   help="also time the dense reference path (autograd + dense AdamW) of the MF "
                        "models, alternating with the row-sparse one")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                       else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    header("Gowalla: epoch and full-ranking evaluation time", dev)
    g = load_lightgcn_split("gowalla")
    common = dict(device=str(dev), random_state=0, max_iter=args.epochs)
    models = {"bprmf": BPRMF(**common), "apr": APR(n_pretrain_epochs=0, **common),
              "pamacf": PamaCF(n_pretrain_epochs=0, **common), "lightgcn": LightGCN(**common)}
    rows = []
    runs = [(name, False) for name in args.models]
    if args.dense:
        runs = [r for name in args.models
                for r in ([(name, False), (name, True)] if name != "lightgcn" else [(name, False)])]
    for name, dense in runs:
        model = clone(models[name])
        if dense:
            model._sparse_updates = False  # the reference path
        model.fit(g.train_df)
        secs = [h["seconds"] for h in model.history_]
        t_eval, (vals, _) = timed(lambda: model.evaluate(g.test_df, ["recall_all@20", "ndcg@20"]),
                                  repeat=args.repeat, sync_device=dev)
        rows.append({"model": name + (" (dense ref.)" if dense else ""),
                     "epoch s (median)": f"{np.median(secs):.3f}",
                     "first epoch s": f"{secs[0]:.3f}", "eval s": f"{t_eval:.3f}",
                     "users": len(vals["ndcg@20"]),
                     f"Recall@20 after {args.epochs} ep": f"{np.nanmean(vals['recall_all@20']):.4f}"})
        print(rows[-1], flush=True)
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
