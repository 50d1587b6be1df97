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
import os

import numpy as np
import torch
from sklearn.base import clone

from _common import header, print_table, timed
from skadvrec.cf import APR, BPRMF, LightGCN, PamaCF, _kernel
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
    p.add_argument("--torch-step", action="store_true",
                   help="also time the torch form of the row-sparse step of the MF models "
                        "(the path without the native kernel)")
    p.add_argument("--implicit", type=int, default=0, metavar="N",
                   help="N alternations of our BPR-MF epoch and implicit's BPR iteration")
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
    native = dev.type == "cpu" and _kernel.load() is not None
    print(f"native step: {'yes' if native else 'no'} (SKADVREC_NATIVE="
          f"{os.environ.get('SKADVREC_NATIVE', 'unset')})", flush=True)
    rows = []
    forms = ["default"] + (["torch"] if args.torch_step else []) + (["dense"] if args.dense
                                                                      else [])
    runs = [(name, form) for name in args.models
            for form in (forms if name != "lightgcn" else ["default"])]
    labels = {"default": "native step" if native else "torch step", "torch": "torch step",
              "dense": "dense ref."}
    for name, form in runs:
        model = clone(models[name])
        if form == "dense":
            model._sparse_updates = False  # the reference path
        elif form == "torch":
            model._native_step_allowed = False
        model.fit(g.train_df)
        secs = [h["seconds"] for h in model.history_]
        t_eval, (vals, _) = timed(lambda: model.evaluate(g.test_df, ["recall_all@20", "ndcg@20"]),
                                  repeat=args.repeat, sync_device=dev)
        label = labels[form] if name != "lightgcn" else "dense (graph)"
        rows.append({"model": name, "form": label,
                     "epoch s (median)": f"{np.median(secs):.3f}",
                     "first epoch s": f"{secs[0]:.3f}", "eval s": f"{t_eval:.3f}",
                     "users": len(vals["ndcg@20"]),
                     f"Recall@20 after {args.epochs} ep":
                         f"{np.nanmean(vals['recall_all@20']):.4f}"})
        print(rows[-1], flush=True)
    if args.implicit:
        rows_imp = implicit_side_by_side(g, dev, args.implicit)
        print_table(rows_imp, list(rows_imp[0]))
    print_table(rows, list(rows[0]))


def implicit_side_by_side(g, dev, n):
    """Our BPR-MF epoch (median of 2) and implicit's BPR iteration, alternating n times."""
    import time

    import implicit
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    tr, X = g.train_df, g.train  # the same interactions as a table (ours) and a matrix
    threads = torch.get_num_threads()
    ours, peer = [], []
    for _ in range(n):
        m = BPRMF(device=str(dev), random_state=0, max_iter=2).fit(tr)
        ours.append(float(np.median([h["seconds"] for h in m.history_])))
        t0 = time.perf_counter()
        BayesianPersonalizedRanking(factors=64, iterations=1, num_threads=threads,
                                    random_state=0).fit(X, show_progress=False)
        peer.append(time.perf_counter() - t0)
        print({"ours epoch s": round(ours[-1], 3), "implicit s": round(peer[-1], 3)},
              flush=True)
    return [{"figure": "BPR-MF epoch, Gowalla, dim 64", "implicit": implicit.__version__,
             "threads": threads, "implicit s (best)": f"{min(peer):.3f}",
             "ours s (best)": f"{min(ours):.3f}",
             "ratio implicit/ours": f"{min(peer) / min(ours):.2f}",
             "ours s (median)": f"{np.median(ours):.3f}",
             "implicit s (median)": f"{np.median(peer):.3f}"}]


if __name__ == "__main__":
    main()
