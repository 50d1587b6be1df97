"""Tune PamaCF's ρ on Gowalla with one multi-metric GridSearchCV: Recall@20 and T-HR@50.

The search runs on the *training* table only (a random 10 % of each user's training rows is the
validation part, ``InteractionHoldout``), with a Random attack (1 % fake users, 5 unpopular
targets, seed 0) at the head of the Pipeline, so every candidate is fitted on poisoned data and
scored on genuine users' held-out rows; the test split is not touched.

    SKADVREC_DATA=../shared/data python benchmarks/cf_gowalla_rho.py --rho 0.1 0.3 0.6
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from _common import header, print_table
from skadvrec.attacks import RandomAttack, select_target_items
from skadvrec.cf import PamaCF
from skadvrec.datasets import load_lightgcn_split
from skadvrec.metrics import RankingScorer, TargetHitRatioScorer
from skadvrec.model_selection import InteractionHoldout


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rho", nargs="+", type=float, default=[0.1, 0.3, 0.6])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                       else ("cpu" if args.device == "auto" else args.device))
    header("Gowalla: PamaCF rho by GridSearchCV (Recall@20 + T-HR@50, Random attack)", dev)
    train = load_lightgcn_split("gowalla").train_df
    targets = select_target_items(train, 5, min_interactions=6, max_interactions=10,
                                  random_state=0)
    pipe = Pipeline([
        ("attack", RandomAttack(target_items=targets, n_fake_users=0.01, random_state=0)),
        ("model", PamaCF(max_iter=args.epochs, device=str(dev), random_state=0))])
    search = GridSearchCV(
        pipe, {"model__rho": args.rho},
        cv=InteractionHoldout(test_size=0.1, random_state=0),
        scoring={"recall@20": RankingScorer("recall_all@20"),
                 "t-hr@50": TargetHitRatioScorer(k=50)},
        refit=False, error_score="raise")
    t0 = time.perf_counter()
    search.fit(train)
    res = pd.DataFrame(search.cv_results_)
    rows = [{"rho": r["param_model__rho"], "val Recall@20": f"{r['mean_test_recall@20']:.4f}",
             "val T-HR@50": f"{abs(r['mean_test_t-hr@50']):.4f}",
             "fit s": f"{r['mean_fit_time']:.0f}"} for _, r in res.iterrows()]
    print_table(rows, list(rows[0]))
    best = res.loc[np.argmax(res["mean_test_recall@20"]), "param_model__rho"]
    print(f"best rho by validation Recall@20: {best}  (search {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
