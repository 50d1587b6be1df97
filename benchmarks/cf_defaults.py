"""BPR-MF defaults by measurement: init_std x learning_rate on Gowalla (and ML-1M, a quick check).

For each setting: Recall@20 / NDCG@20 on the whole test set after 3 epochs, and the best epoch
of up to --epochs (selected by Recall@20 on a fixed 5,000-user subset of the test users, then
scored on the whole test set; the LightGCN / PamaCF papers report the best test epoch too).
ML-1M: ratings >= 4, each user's interactions split 80/20 (InteractionHoldout, seed 0).

    SKADVREC_DATA=../shared/data python benchmarks/cf_defaults.py [--epochs 40] [--data gowalla ml-1m]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from _common import header, print_table
from skadvrec.cf import BPRMF
from skadvrec.datasets import load_lightgcn_split, load_movielens
from skadvrec.model_selection import InteractionHoldout
from skadvrec.preprocessing import filter_interactions

GRID = [(0.1, 1e-3), (0.01, 1e-3), (0.01, 3e-3), (0.001, 3e-3), (0.01, 1e-2)]


def data(name):
    if name == "gowalla":
        g = load_lightgcn_split("gowalla")
        return g.train_df, g.test_df
    df = filter_interactions(load_movielens("1m").interactions, min_rating=4,
                             min_user_interactions=5)[["user", "item"]]
    tr, te = next(InteractionHoldout(test_size=0.2, random_state=0).split(df))
    return df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--data", nargs="+", default=["gowalla", "ml-1m"])
    p.add_argument("--grid", nargs="+", default=None, help="std:lr pairs")
    args = p.parse_args()
    torch.set_num_threads(1)
    header("BPR-MF: init_std x learning_rate", args.device)
    grid = ([tuple(float(x) for x in g.split(":")) for g in args.grid] if args.grid else GRID)
    metrics = ["recall_all@20", "ndcg@20"]
    for name in args.data:
        train, test = data(name)
        rng = np.random.default_rng(0)
        users = test.user.unique()
        sub = test[test.user.isin(rng.choice(users, min(5000, len(users)), replace=False))]
        rows = []
        for std, lr in grid:
            common = dict(init_std=std, learning_rate=lr, device=args.device, random_state=0)
            m3 = BPRMF(max_iter=3, **common).fit(train)
            v3, _ = m3.evaluate(test, metrics)
            mb = BPRMF(max_iter=args.epochs, early_stopping=True, n_iter_no_change=5,
                       **common).fit(train, validation_data=sub)
            vb, _ = mb.evaluate(test, metrics)
            rows.append({"data": name, "init_std": std, "learning_rate": lr,
                         "R@20 3 ep": f"{np.nanmean(v3['recall_all@20']):.4f}",
                         "N@20 3 ep": f"{np.nanmean(v3['ndcg@20']):.4f}",
                         "best epoch": mb.best_epoch_, "epochs run": mb.n_iter_,
                         "R@20 best": f"{np.nanmean(vb['recall_all@20']):.4f}",
                         "N@20 best": f"{np.nanmean(vb['ndcg@20']):.4f}",
                         "s/epoch": f"{np.median([h['seconds'] for h in m3.history_]):.2f}"})
            print(rows[-1], flush=True)
        print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
