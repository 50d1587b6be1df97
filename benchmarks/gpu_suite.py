"""The GPU targets of issues 1-14 in one run, written as a Markdown table.

| target | figure measured |
|---|---|
| EASE fit, Gowalla (40,981 items), ≤ 2 s | best of --repeat fits, λ 200 |
| MultVAE step, ML-1M, batch 500, ≤ 1.3 ms | median epoch (after a warm-up epoch) / steps |
| BPR-MF epoch, Gowalla, ≤ 0.2 s | median of --bpr-epochs epochs (sampling included) |
| full-ranking evaluation, 29,858 users, ≤ 0.3 s | best of --repeat ``evaluate`` calls (Recall@20 + NDCG@20) |
| LightGCN reaches its published Recall@20 0.1830 | best test Recall@20 within --lightgcn-epochs epochs (3 layers, dim 64, lr 1e-3, reg 1e-4, batch 2048, the LightGCN protocol) and the epoch it was reached |

``--device cpu --quick`` is a smoke check (minutes on a CPU): EASE on the 2,000 most popular
Gowalla items, the first 3,000 Gowalla users for BPR / evaluation / LightGCN, one or two epochs
each; its numbers say nothing about the targets.

    SKADVREC_DATA=../shared/data bash benchmarks/gpu_suite.sh [--device cuda] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime, timezone

import numpy as np
import torch

from _common import device_name, timed
from skadvrec.cf import BPRMF, LightGCN
from skadvrec.datasets import load_lightgcn_split
from skadvrec.linear import EASE
from skadvrec.vae import MultVAE


def _subset(g, n_users):
    tr = g.train_df[g.train_df.user < n_users]
    te = g.test_df[g.test_df.user < n_users]
    te = te[te.item.isin(tr.item.unique())]
    return tr, te


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bpr-epochs", type=int, default=5)
    p.add_argument("--lightgcn-epochs", type=int, default=600)
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["ease", "multvae", "bpr", "eval", "lightgcn"])
    p.add_argument("--out", default="gpu_suite.md")
    args = p.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    quick = args.quick
    rows = []

    def add(target, goal, value, unit, met, note=""):
        rows.append((target, goal, f"{value:.4g} {unit}", "yes" if met else "no", note))
        print(rows[-1], flush=True)

    g = load_lightgcn_split("gowalla")
    sync = dev if dev.type == "cuda" else None
    if "ease" not in args.skip:
        X = g.train
        note = f"{X.shape[1]} items"
        if quick:
            top = np.argsort(-np.asarray(X.sum(0)).ravel())[:2000]
            X = X[:, np.sort(top)].tocsr()
            note = "quick: 2,000 items"
        t, _ = timed(lambda: EASE(l2=200.0, device=str(dev)).fit(X), repeat=args.repeat,
                     sync_device=sync)
        add("EASE fit, Gowalla", "≤ 2 s", t, "s", t <= 2.0 and not quick, note)
    if "multvae" not in args.skip:
        from advxmultvae_ml1m import load

        X1m = load()[0]
        epochs = 2 if quick else 5
        m = MultVAE(batch_size=500, max_iter=epochs, device=str(dev), random_state=0).fit(X1m)
        steps = math.ceil(X1m.shape[0] / 500)
        ms = 1000 * np.median([h["seconds"] for h in m.history_[1:]]) / steps
        add("MultVAE step, ML-1M, batch 500", "≤ 1.3 ms", ms, "ms", ms <= 1.3,
            f"{steps} steps/epoch")
    train_df, test_df = (_subset(g, 3000) if quick else (g.train_df, g.test_df))
    if "bpr" not in args.skip or "eval" not in args.skip:
        epochs = 1 if quick else args.bpr_epochs
        m = BPRMF(max_iter=epochs, device=str(dev), random_state=0).fit(train_df)
        sec = float(np.median([h["seconds"] for h in m.history_]))
        if "bpr" not in args.skip:
            add("BPR-MF epoch, Gowalla", "≤ 0.2 s", sec, "s", sec <= 0.2 and not quick,
                f"{len(train_df)} triples")
        if "eval" not in args.skip:
            t, (vals, _) = timed(lambda: m.evaluate(test_df, ["recall_all@20", "ndcg@20"]),
                                 repeat=args.repeat, sync_device=sync)
            add("full-ranking evaluation, Gowalla", "≤ 0.3 s", t, "s", t <= 0.3 and not quick,
                f"{len(vals['ndcg@20'])} users")
    if "lightgcn" not in args.skip:
        epochs = 1 if quick else args.lightgcn_epochs
        t0 = time.perf_counter()
        # the LightGCN protocol: the test set, scored after every epoch, is the validation
        # data (the paper reports the best test epoch); stop after 100 epochs without a
        # better one
        m = LightGCN(n_layers=3, max_iter=epochs, early_stopping=True,
                     n_iter_no_change=100,
                     validation_metric="recall_all@20", device=str(dev), random_state=0)
        m.fit(train_df, validation_data=test_df)
        best, best_ep, done = m.best_validation_score_, m.best_epoch_, m.n_iter_
        mins = (time.perf_counter() - t0) / 60
        add("LightGCN Recall@20, Gowalla", "≥ 0.1830", best, "", best >= 0.1830 and not quick,
            f"best at epoch {best_ep} of {done}, {mins:.1f} min")
    head = (f"GPU suite — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC — "
            f"{device_name(dev)} — torch {torch.__version__}" + (" — QUICK (smoke)" if quick
                                                                else ""))
    lines = [f"**{head}**", "", "| target | goal | measured | met | note |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
