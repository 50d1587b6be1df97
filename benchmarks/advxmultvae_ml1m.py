"""MultVAE and AdvXMultVAE on ML-1M: accuracy and gender / age leakage over a λ grid.

Protocol (the official AdvXMultVAE code, research/seeds.md §4): ML-1M ratings >= 4, 5-core users
and items (6,034 x 3,125, 574,376 interactions); users split 60/20/20 train/validation/test per
seed; held-out users use 20 % of their items as input and 80 % as targets (and our 80/20 default
is reported too). Leakage: a fresh MLP attacker (sklearn, early stopping) on the latent mean μ of
the test users, stratified 70/30: gender balanced accuracy and AUC, age MAE (the raw ML-1M age
code as a continuous target) and balanced accuracy over the 7 age groups.

The λ_gender x λ_age grid runs through GridSearchCV with multi-metric scoring (NDCG@10 and the
leakage scorers, sensitive features routed as metadata); the CV splits are the seeds.

    SKADVREC_DATA=../shared/data python benchmarks/advxmultvae_ml1m.py [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import sklearn
from sklearn.model_selection import GridSearchCV

from _common import header, print_table
from skadvrec.datasets import load_movielens
from skadvrec.metrics import LeakageScorer, NDCGScorer, RecallScorer
from skadvrec.model_selection import BestWithinLoss, split_users
from skadvrec.preprocessing import filter_interactions, to_user_item_matrix
from skadvrec.vae import AdvXMultVAE, MultVAE


class SeedSplits:
    """CV over users: per seed, train = 60 %, test = 20 % (the other 20 % validation is unused
    here: the models stop on an internal validation share of their training users)."""

    def __init__(self, seeds):
        self.seeds = seeds

    def get_n_splits(self, X=None, y=None, groups=None):
        return len(self.seeds)

    def split(self, X, y=None, groups=None):
        for s in self.seeds:
            tr, _va, te = split_users(X.shape[0], n_validation=0.2, n_test=0.2, random_state=s)
            yield tr, te


def load():
    ml = load_movielens("1m")
    df = filter_interactions(ml.interactions, min_rating=4, min_user_interactions=5,
                             min_item_interactions=5, iterate=True)
    X, users, _ = to_user_item_matrix(df)
    u = ml.users.loc[users]
    S = pd.DataFrame({"gender": u["gender"].astype("category").to_numpy(),
                      "age": u["age"].astype(float).to_numpy(),
                      "age_group": u["age_group"].astype(str).astype("category").to_numpy()})
    return X, S


# the autoencoder: Liang et al.'s MultVAE, or the AdvXMultVAE code's configuration (seeds.md §4.2-4.3)
CONFIGS = {
    "liang": dict(hidden_dims=(600,), latent_dim=200, dropout=0.5, beta_cap=0.2,
                  anneal_steps=200000, weight_decay=0.0, batch_size=500),
    "official": dict(hidden_dims=(), latent_dim=100, dropout=0.1, beta_cap=0.8, anneal_steps=0,
                     weight_decay=1e-4, batch_size=64),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 200.0, 800.0],
                   help="λ values for both attributes (the grid is their product)")
    p.add_argument("--lambdas-gender", type=float, nargs="+", default=None)
    p.add_argument("--lambdas-age", type=float, nargs="+", default=None)
    p.add_argument("--max-iter", type=int, default=40)
    p.add_argument("--config", choices=sorted(CONFIGS), default="liang",
                   help="autoencoder: Liang et al. [n→600→200], batch 500, β annealed to 0.2; or "
                        "the AdvXMultVAE code's linear [n→100], batch 64, β = 0.8, wd 1e-4")
    p.add_argument("--adversary-input", choices=["sample", "mean"], default="sample")
    p.add_argument("--adversary-hidden", type=int, nargs="*", default=[5])
    p.add_argument("--adversary-lr", type=float, default=1e-2)
    p.add_argument("--out", default="results/advxmultvae_ml1m.json")
    args = p.parse_args()
    header("MultVAE / AdvXMultVAE on ML-1M (5-core, 60/20/20 users, 20/80 fold-in)", args.device)
    X, S = load()
    print(f"matrix {X.shape[0]} users x {X.shape[1]} items, {X.nnz} interactions; "
          f"gender {S['gender'].value_counts().to_dict()}")
    common = dict(**CONFIGS[args.config], max_iter=args.max_iter, device=args.device,
                  random_state=0, validation_metric="ndcg@10", n_iter_no_change=10)
    print(f"config {args.config}: {common}; adversaries: input {args.adversary_input}, hidden "
          f"{args.adversary_hidden}, lr {args.adversary_lr}, 10 heads")
    types = {"gender": "categorical", "age": "continuous", "age_group": "categorical"}
    scoring = {
        "ndcg@10": NDCGScorer(10, input_fraction=0.2),
        "recall@10": RecallScorer(10, input_fraction=0.2),
        "ndcg@100": NDCGScorer(100, input_fraction=0.2),
        "ndcg@10 (80/20)": NDCGScorer(10, input_fraction=0.8),
        "gender bacc": LeakageScorer("gender", "balanced_accuracy"),
        "gender auc": LeakageScorer("gender", "auc"),
        "age mae": LeakageScorer("age", "mae", attribute_type="continuous"),
        "age-group bacc": LeakageScorer("age_group", "balanced_accuracy"),
    }
    lam_g = args.lambdas_gender or args.lambdas
    lam_a = args.lambdas_age or args.lambdas
    # multi-metric refit: the least gender leakage within 10 % NDCG@10 of the λ = (0, 0) model
    reference = {"grad_scale": {"gender": 0.0, "age": 0.0}}
    refit = BestWithinLoss("gender bacc", "ndcg@10", max_relative_loss=0.1,
                           reference=reference if 0.0 in lam_g and 0.0 in lam_a else None)
    grid = [{"grad_scale": [{"gender": g, "age": a}]} for g in lam_g for a in lam_a]
    rows, raw = [], {}
    with sklearn.config_context(enable_metadata_routing=True):
        for sc in scoring.values():
            if hasattr(sc, "_metadata") and sc._metadata:
                sc.set_score_request(sensitive_features=True)
        t0 = time.perf_counter()
        base = GridSearchCV(MultVAE(**common), {"max_iter": [args.max_iter]},
                            cv=SeedSplits(args.seeds),
                            scoring=scoring, refit=False, error_score="raise")
        base.fit(X, sensitive_features=S)
        print(f"MultVAE: {time.perf_counter() - t0:.0f} s", flush=True)
        raw["MultVAE"] = base.cv_results_
        adv = AdvXMultVAE(attributes=["gender", "age"], attribute_types=types, n_heads=10,
                          adversary_learning_rate=args.adversary_lr,
                          adversary_hidden=tuple(args.adversary_hidden),
                          adversary_input=args.adversary_input, **common
                          ).set_fit_request(sensitive_features=True)
        t0 = time.perf_counter()
        search = GridSearchCV(adv, grid, cv=SeedSplits(args.seeds), scoring=scoring,
                              refit=refit, error_score="raise")
        search.fit(X, sensitive_features=S)
        print(f"AdvXMultVAE grid (and the refit on all users): {time.perf_counter() - t0:.0f} s; "
              f"refit chose {search.best_params_}", flush=True)
        raw["AdvXMultVAE"] = search.cv_results_

    def fmt(res, i, key, sign=1):
        m, s = sign * res[f"mean_test_{key}"][i], res[f"std_test_{key}"][i]
        return f"{m:.4f} ± {s:.4f}"

    for name, res in raw.items():
        for i, params in enumerate(res["params"]):
            lam = params.get("grad_scale", {"gender": "-", "age": "-"})
            rows.append({"model": name, "λ_gender": lam["gender"], "λ_age": lam["age"],
                         "NDCG@10": fmt(res, i, "ndcg@10"), "Recall@10": fmt(res, i, "recall@10"),
                         "NDCG@100": fmt(res, i, "ndcg@100"),
                         "NDCG@10 80/20": fmt(res, i, "ndcg@10 (80/20)"),
                         "gender BAcc": fmt(res, i, "gender bacc", -1),
                         "gender AUC": fmt(res, i, "gender auc", -1),
                         "age MAE": fmt(res, i, "age mae"),
                         "age-group BAcc": fmt(res, i, "age-group bacc", -1)})
    print(f"\n## Test users, mean ± std over seeds {args.seeds} (leakage: lower BAcc/AUC and "
          "higher MAE = less leakage)")
    print_table(rows, list(rows[0].keys()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(
        {"args": vars(args), "best_params": search.best_params_, **{name: {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in res.items()
                if k.startswith(("mean_test", "std_test", "params"))}
         for name, res in raw.items()}}, indent=1, default=str))


if __name__ == "__main__":
    main()
