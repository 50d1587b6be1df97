"""BPR-MF, APR, PamaCF and LightGCN on Gowalla's LightGCN split, clean and under poisoning.

Protocol (LightGCN / PamaCF): fit on train.txt as an interaction table, full ranking of all
40,981 items for every test user with the training items masked; Recall@20 is hits / |test items|
(``recall_all@20``) and NDCG@20 has the ideal DCG of min(|test|, 20) hits, averaged over the
genuine users. Attacks append 1 % fake users (298) who interact with 5 target items drawn among
items with 6-10 training interactions (as the PamaCF Gowalla targets) plus filler items;
T-HR@50 / T-NDCG@50 are over the genuine test users who never interacted with a target.

Each run appends one JSON record per (seed, attack, model) to --out, so a long job can be split
over several calls and summarised with --summary.

    SKADVREC_DATA=../shared/data python benchmarks/cf_gowalla.py --models bprmf pamacf \
        --attacks none random bandwagon --seeds 0 1 2 [--device cuda] [--epochs 30]
    python benchmarks/cf_gowalla.py --summary results/cf_gowalla.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import header, print_table
from skadvrec.attacks import BandwagonAttack, RandomAttack, select_target_items
from skadvrec.cf import APR, BPRMF, LightGCN, PamaCF
from skadvrec.datasets import load_lightgcn_split
from skadvrec.metrics import target_hit_ratio

ATTACKS = {"random": RandomAttack, "bandwagon": BandwagonAttack}


def make_model(name, args, seed):
    # the PamaCF code's MF training setting by default (init N(0, 0.1²), AdamW lr 1e-3), not
    # BPRMF's own defaults: the table reproduces the paper's protocol
    common = dict(device=args.device, random_state=seed, max_iter=args.epochs,
                  init_std=args.init_std, learning_rate=args.lr)
    if name == "bprmf":
        return BPRMF(**common)
    if name == "apr":
        return APR(eps=args.apr_eps, **common)
    if name == "pamacf":
        return PamaCF(rho=args.rho, **common)
    if name == "pamacf-paper":
        return PamaCF(rho=args.rho, magnitude="paper", **common)
    if name == "lightgcn":
        return LightGCN(**{**common, "max_iter": args.lightgcn_epochs})
    raise ValueError(f"unknown model {name!r}")


def run(args):
    header("Gowalla (LightGCN split): BPR-MF / APR / PamaCF / LightGCN, clean and poisoned",
           torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                        else ("cpu" if args.device == "auto" else args.device)))
    g = load_lightgcn_split("gowalla")
    train, test = g.train_df, g.test_df
    print(f"training setting: init_std {args.init_std}, learning_rate {args.lr} "
          f"({'the PamaCF code' if (args.init_std, args.lr) == (0.1, 1e-3) else 'custom'}); "
          f"row-sparse AdamW for the MF backbone", flush=True)
    print(f"train {len(train)} interactions, test {len(test)}, users "
          f"{train.user.nunique()}, items {g.train.shape[1]}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        targets = select_target_items(train, args.n_targets, min_interactions=6,
                                      max_interactions=10, random_state=seed)
        for attack in args.attacks:
            if attack == "none":
                fit_data, n_fake = train, 0
            else:
                atk = ATTACKS[attack](target_items=targets, n_fake_users=args.fake_fraction,
                                      random_state=seed)
                fit_data = atk.fit_transform(train)
                n_fake = atk.n_fake_users_
            for name in args.models:
                model = make_model(name, args, seed)
                t0 = time.perf_counter()
                model.fit(fit_data)
                t_fit = time.perf_counter() - t0
                t0 = time.perf_counter()
                vals, _ = model.evaluate(test, ["recall_all@20", "ndcg@20", "recall@20"])
                if model.device_.type == "cuda":
                    torch.cuda.synchronize()
                t_eval = time.perf_counter() - t0
                thr = target_hit_ratio(model, test, targets, k=50)
                tndcg = target_hit_ratio(model, test, targets, k=50, metric="ndcg")
                secs = [h["seconds"] for h in model.history_]
                rec = {"seed": seed, "attack": attack, "model": name, "n_fake": int(n_fake),
                       "targets": [int(t) for t in targets], "epochs": model.n_iter_,
                       "rho": args.rho if name.startswith("pamacf") else None,
                       "eps": args.apr_eps if name == "apr" else None,
                       "init_std": args.init_std, "lr": args.lr,
                       "recall@20": float(np.nanmean(vals["recall_all@20"])),
                       "ndcg@20": float(np.nanmean(vals["ndcg@20"])),
                       "recall_min@20": float(np.nanmean(vals["recall@20"])),
                       "T-HR@50": float(thr), "T-NDCG@50": float(tndcg),
                       "epoch_s": float(np.median(secs)), "fit_s": t_fit, "eval_s": t_eval,
                       "device": str(model.device_), "threads": torch.get_num_threads()}
                print(json.dumps(rec), flush=True)
                with open(out, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")


def summary(path):
    df = pd.DataFrame([json.loads(line) for line in open(path) if line.strip()])
    agg = df.groupby(["attack", "model"]).agg(
        n=("seed", "nunique"), recall=("recall@20", "mean"), recall_sd=("recall@20", "std"),
        ndcg=("ndcg@20", "mean"), ndcg_sd=("ndcg@20", "std"), thr=("T-HR@50", "mean"),
        thr_sd=("T-HR@50", "std"), tndcg=("T-NDCG@50", "mean"), epoch_s=("epoch_s", "median"),
        eval_s=("eval_s", "median"), epochs=("epochs", "max")).reset_index()
    rows = []
    for _, r in agg.iterrows():
        sd = (lambda v: "" if pd.isna(v) else f" ± {v:.4f}")
        rows.append({"attack": r.attack, "model": r.model, "seeds": r.n, "epochs": r.epochs,
                     "Recall@20": f"{r.recall:.4f}{sd(r.recall_sd)}",
                     "NDCG@20": f"{r.ndcg:.4f}{sd(r.ndcg_sd)}",
                     "T-HR@50": f"{r.thr:.4f}{sd(r.thr_sd)}", "T-NDCG@50": f"{r.tndcg:.4f}",
                     "epoch s": f"{r.epoch_s:.2f}", "eval s": f"{r.eval_s:.2f}"})
    print_table(rows, list(rows[0]))
    base = df[df.model == "bprmf"][["attack", "seed", "T-HR@50", "recall@20"]]
    for (attack, model), grp in df[(df.model != "bprmf") & (df.attack != "none")].groupby(
            ["attack", "model"]):
        pair = grp.merge(base, on=["attack", "seed"], suffixes=("", "_mf"))
        if len(pair):  # per-seed ratios to BPR-MF under the same attack and targets
            thr = 100 * (pair["T-HR@50"] / pair["T-HR@50_mf"] - 1)
            rec = 100 * (pair["recall@20"] / pair["recall@20_mf"] - 1)
            print(f"{attack:>9} {model:>12}: T-HR@50 {thr.mean():+.1f}% (seeds "
                  f"{', '.join(f'{v:+.0f}' for v in thr)}), Recall@20 {rec.mean():+.1f}% vs "
                  f"BPR-MF over {len(pair)} seed(s)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["bprmf", "apr", "pamacf"])
    p.add_argument("--attacks", nargs="+", default=["none", "random", "bandwagon"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lightgcn-epochs", type=int, default=1000)
    p.add_argument("--init-std", type=float, default=0.1,
                   help="embedding init std (0.1: the PamaCF code, the reproduction setting)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (PamaCF code)")
    p.add_argument("--rho", type=float, default=0.9)
    p.add_argument("--apr-eps", type=float, default=0.5)
    p.add_argument("--n-targets", type=int, default=5)
    p.add_argument("--fake-fraction", type=float, default=0.01)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=os.path.join("results", "cf_gowalla.jsonl"))
    p.add_argument("--summary", default=None, help="print the table of a JSONL file and exit")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.summary:
        summary(args.summary)
    else:
        run(args)


if __name__ == "__main__":
    main()
