"""AAFM's eps and adversarial weight by one multi-metric GridSearchCV on ML-100K.

The AAFM protocol's training rows (see fm_ml100k.py) are split once more the same way: each
user's earliest remaining rating is the validation row. GridSearchCV scores every candidate on
those rows by AUC (RowAUCScorer) and the std of the AUC across the six frequency bins
(FeatureGroupAUCScorer, negated), and refits with BestWithinLoss: the lowest frequency-group
std among the candidates whose AUC is within 1 % of the best. The refitted model and an FM are
then scored on the test rows. The trade-off (validation AUC against group std) is plotted to
benchmarks/figures/fm_tradeoff.png.

    nice python benchmarks/fm_grid.py --out results/fm_grid.json
    python benchmarks/fm_grid.py --plot-only results/fm_grid.json   # redraw from the saved grid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from fm_ml100k import first_item_split, group_metrics
from sklearn.model_selection import GridSearchCV

from skadvrec.datasets import load_movielens_features
from skadvrec.fm import AAFM, FM
from skadvrec.metrics import FeatureGroupAUCScorer, RowAUCScorer
from skadvrec.model_selection import BestWithinLoss

matplotlib.use("Agg")
import matplotlib.pyplot as plt

GRID = {"eps": [0.02, 0.05, 0.1, 0.2], "adv_weight": [0.3, 1.0, 3.0]}


def inner_split(train):
    """One CV split of the training rows: each user's earliest remaining row validates."""
    tr, va = first_item_split(train.assign(_row=np.arange(len(train))))
    return [(tr["_row"].to_numpy(), va["_row"].to_numpy())]


def main(args):
    torch.set_num_threads(1)
    X = load_movielens_features("100k")
    train, test = first_item_split(X)
    cv = inner_split(train)
    scoring = {"auc": RowAUCScorer(), "freq_std": FeatureGroupAUCScorer("frequency"),
               "occupation_std": FeatureGroupAUCScorer("occupation")}
    rule = BestWithinLoss("freq_std", "auc", max_relative_loss=0.01)
    search = GridSearchCV(AAFM(random_state=0), GRID, cv=cv, scoring=scoring, refit=rule,
                          error_score="raise")
    search.fit(train)
    res = pd.DataFrame(search.cv_results_)
    cols = ["param_eps", "param_adv_weight", "mean_test_auc", "mean_test_freq_std",
            "mean_test_occupation_std", "mean_fit_time"]
    print(res[cols].round(4).to_string())
    print("chosen:", search.best_params_)

    fm = FM(random_state=0)
    fm_val = fm.fit(train.iloc[cv[0][0]])
    val = train.iloc[cv[0][1]]
    fm_point = (scoring["auc"](fm_val, val), scoring["freq_std"](fm_val, val))
    fm.fit(train)
    out = {"grid": res[cols].to_dict("list"), "chosen": search.best_params_,
           "fm_validation": {"auc": fm_point[0], "freq_std": fm_point[1]},
           "test_chosen": group_metrics(search.best_estimator_, test),
           "test_fm": group_metrics(fm, test)}
    print(json.dumps({k: out[k] for k in ("chosen", "fm_validation", "test_chosen",
                                          "test_fm")}, indent=1, default=str))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, default=str))
    plot(res, search.best_index_, fm_point, args.figure)


def plot(res, best, fm_point, path):
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    eps = res["param_eps"].astype(float)
    sc = ax.scatter(-res["mean_test_freq_std"], res["mean_test_auc"],
                    c=np.log10(eps), s=40 * res["param_adv_weight"].astype(float) ** 0.5 + 10,
                    cmap="viridis", edgecolor="k", linewidth=0.4)
    for i, r in res.iterrows():
        ax.annotate(f"{r['param_eps']:g}/{r['param_adv_weight']:g}",
                    (-r["mean_test_freq_std"], r["mean_test_auc"]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.scatter([-res["mean_test_freq_std"][best]], [res["mean_test_auc"][best]], s=180,
               facecolor="none", edgecolor="red", linewidth=1.5, label="refit (BestWithinLoss)")
    ax.scatter([-fm_point[1]], [fm_point[0]], marker="*", s=160, color="black", label="FM")
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("log10 eps (marker size: adversarial weight)")
    ax.set_xlabel("std of AUC across the 6 frequency bins (validation, lower is fairer)")
    ax.set_ylabel("AUC (validation rows)")
    ax.set_title("AAFM on ML-100K: eps / adversarial weight grid")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    print("saved", path)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="results/fm_grid.json")
    p.add_argument("--figure", default="benchmarks/figures/fm_tradeoff.png")
    p.add_argument("--plot-only", default=None, help="a saved --out file to redraw")
    a = p.parse_args()
    if a.plot_only:
        saved = json.loads(Path(a.plot_only).read_text())
        grid = pd.DataFrame(saved["grid"])
        chosen = saved["chosen"]
        best = int(np.flatnonzero((grid["param_eps"] == chosen["eps"])
                                  & (grid["param_adv_weight"] == chosen["adv_weight"]))[0])
        fm = saved["fm_validation"]
        plot(grid, best, (fm["auc"], fm["freq_std"]), a.figure)
    else:
        main(a)
