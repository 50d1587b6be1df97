"""FM, AdvFM, AAFM and D-AAFM on MovieLens with side features (the official AAFM protocol).

Protocol (research/seeds.md §1): ``load_movielens_features(variant)`` (user fields gender, age
bucket, occupation, zip region; item fields genres (multi-valued), release decade; user and
item ids are fields too); labels rating >= 4 -> 1, ratings 1-3 -> 0 (explicit negatives);
leave-one-out: the **first** rating of each user's time-ordered history (users with >= 2
ratings) is the test row, every other row trains. Each model stops on the AUC of a random 10 %
of its training rows (the code's validation share). Reported on the test rows: ROC AUC, and the
population std of the AUC across the groups of each field (groups with >= 10 test rows and both
labels) and across the six frequency bins of the rows (``top1`` = most frequent feature values
.. ``top6`` = rarest, mean α of the row's values in the training rows), plus the advantaged /
disadvantaged halves.

    nice python benchmarks/fm_ml100k.py --dataset 100k --seeds 0 1 2 --out results/fm_ml100k.jsonl
    nice python benchmarks/fm_ml100k.py --dataset 100k --ablation --seeds 0 1 2 --out ...
    nice python benchmarks/fm_ml100k.py --report results/fm_ml100k.jsonl

Every run appends one JSON line per (model, seed) to ``--out``; ``--report`` prints the
mean ± std table. torch runs with 1 thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from skadvrec.datasets import load_movielens_features
from skadvrec.fm import AAFM, FM, AdvFM
from skadvrec.metrics import feature_group_auc

FIELDS = ["gender", "age", "occupation", "zip", "genres", "year"]

MODELS = {
    "FM": lambda s: FM(random_state=s),
    "AdvFM": lambda s: AdvFM(random_state=s),
    "AAFM": lambda s: AAFM(random_state=s),
    "D-AAFM": lambda s: AAFM(decay=True, random_state=s),
}
ABLATION = {
    "AAFM variety only": lambda s: AAFM(frequency=False, random_state=s),
    "AAFM frequency only": lambda s: AAFM(variety=False, random_state=s),
    "AAFM neither (learnt ε)": lambda s: AAFM(variety=False, frequency=False, random_state=s),
    "AAFM code normalisation": lambda s: AAFM(grad_norm="vocabulary", random_state=s),
    "AAFM monotone strength": lambda s: AAFM(strength_form="monotone", random_state=s),
    "AAFM code backbone": lambda s: AAFM(field_maps=True, random_state=s),
    "FM code backbone": lambda s: FM(field_maps=True, random_state=s),
    "FM weight_decay 2e-5": lambda s: FM(weight_decay=2e-5, random_state=s),
}


def first_item_split(X):
    """(train, test): each user's earliest rating (ties: file order) is the test row, for users
    with at least two ratings."""
    users = X["user"].to_numpy()
    order = np.lexsort((np.arange(len(X)), X["timestamp"].to_numpy(), users))
    u = users[order]
    first = order[np.r_[True, u[1:] != u[:-1]]]
    counts = pd.Series(users).value_counts()
    first = first[counts.loc[users[first]].to_numpy() >= 2]
    test = np.zeros(len(X), dtype=bool)
    test[first] = True
    return X[~test].reset_index(drop=True), X[test].reset_index(drop=True)


def popularity_auc(train, test):
    """Test AUC of three model-free scores: the item's number of training clicks, the item's
    share of clicks among its training ratings, the user's share of clicks."""
    y = (test["rating"] >= 4).to_numpy()
    clicks = train.assign(c=train["rating"] >= 4)
    item = clicks.groupby("item")["c"]
    user = clicks.groupby("user")["c"]
    return {"item clicks": roc_auc_score(y, test["item"].map(item.sum()).fillna(0)),
            "item click rate": roc_auc_score(y, test["item"].map(item.mean()).fillna(0.5)),
            "user click rate": roc_auc_score(y, test["user"].map(user.mean()).fillna(0.5))}


def group_metrics(model, test, fields=FIELDS, min_rows=10):
    out = {"auc": float(model.score(test))}
    for by in [*fields, "frequency"]:
        g = feature_group_auc(model, test, by, min_rows=min_rows)["auc"].dropna()
        out[f"std_{by}"] = float(g.std(ddof=0))
        if by == "frequency":
            out["auc_by_frequency"] = g.round(4).to_dict()
    halves = feature_group_auc(model, test, "frequency", n_bins=2, min_rows=min_rows)["auc"]
    out["auc_advantaged"], out["auc_disadvantaged"] = float(halves["top1"]), float(halves["top2"])
    out["std_random6"] = random_bin_std(model.decision_function(test),
                                        (test["rating"] >= 4).to_numpy())
    return out


def random_bin_std(scores, labels, n_bins=6, n_draws=200, seed=0):
    """The noise floor of the frequency-bin std: the mean std of the AUC across ``n_bins``
    random equal-size bins of the same rows (no real group difference)."""
    rng = np.random.default_rng(seed)
    stds = []
    for _ in range(n_draws):
        parts = np.array_split(rng.permutation(len(scores)), n_bins)
        stds.append(np.std([roc_auc_score(labels[p], scores[p]) for p in parts]))
    return float(np.mean(stds))


def run(args):
    torch.set_num_threads(1)
    X = load_movielens_features(args.dataset)
    train, test = first_item_split(X)
    print(f"# ML-{args.dataset}: {len(train)} training rows, {len(test)} test rows "
          f"({(test['rating'] >= 4).mean():.3f} positive); torch threads 1; "
          f"{platform.processor() or platform.machine()}")
    print("# popularity baselines, test AUC: " + ", ".join(
        f"{k} {v:.4f}" for k, v in popularity_auc(train, test).items()), flush=True)
    if args.baselines_only:
        return
    models = ABLATION if args.ablation else MODELS
    if args.models:
        models = {k: v for k, v in {**MODELS, **ABLATION}.items() if k in args.models}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name, make in models.items():
            model = make(seed)
            t0 = time.perf_counter()
            model.fit(train)
            seconds = time.perf_counter() - t0
            rec = {"dataset": args.dataset, "model": name, "seed": seed,
                   "params": {k: v for k, v in model.get_params().items()
                              if not isinstance(v, (list, tuple))},
                   "fit_seconds": seconds, "n_iter": model.n_iter_,
                   "best_epoch": model.best_epoch_,
                   "epoch_seconds": float(np.mean([h["seconds"] for h in model.history_
                                                   if h["epoch"] > 0])),
                   **group_metrics(model, test)}
            if hasattr(model, "strengths_"):
                rec["strengths"] = model.strengths_.round(3).to_dict()
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                              for k, v in rec.items() if k not in ("params",
                                                                   "auc_by_frequency")}),
                  flush=True)
            with out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")


def _cell(g, c):
    if c not in g or g[c].isna().all():
        return "-"
    if c in ("n_iter", "epoch_seconds"):
        return f"{g[c].mean():.1f}"
    return f"{g[c].mean():.4f} ± {g[c].std(ddof=0):.4f}"


def report(paths):
    recs = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines()
            if line.strip()]
    frame = pd.DataFrame(recs)
    cols = ["auc", "std_frequency", "std_random6", *[f"std_{f}" for f in FIELDS],
            "auc_advantaged", "auc_disadvantaged", "n_iter", "epoch_seconds"]
    for dataset, part in frame.groupby("dataset", sort=False):
        print(f"\n## ML-{dataset}  (mean ± std over seeds; n = number of seeds)\n")
        print("| model | n | " + " | ".join(cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        ref = part[part["model"] == "FM"]
        for name, g in part.groupby("model", sort=False):
            cells = [_cell(g, c) for c in cols]
            print(f"| {name} | {len(g)} | " + " | ".join(cells) + " |")
        if len(ref):
            print("\nrelative to FM (mean over seeds): AUC change, frequency-group std change, "
                  "mean field-group std change")
            f_auc, f_std = ref["auc"].mean(), ref["std_frequency"].mean()
            f_fields = ref[[f"std_{f}" for f in FIELDS]].mean(axis=1).mean()
            for name, g in part.groupby("model", sort=False):
                fields = g[[f"std_{f}" for f in FIELDS]].mean(axis=1).mean()
                print(f"- {name}: AUC {100 * (g['auc'].mean() / f_auc - 1):+.2f} %, "
                      f"frequency std {100 * (g['std_frequency'].mean() / f_std - 1):+.1f} %, "
                      f"field std {100 * (fields / f_fields - 1):+.1f} %")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="100k", choices=["100k", "1m"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--out", default="results/fm_ml100k.jsonl")
    p.add_argument("--report", nargs="+", default=None)
    p.add_argument("--baselines-only", action="store_true",
                   help="print the popularity baselines and stop")
    a = p.parse_args()
    if a.report:
        report(a.report)
    else:
        run(a)
