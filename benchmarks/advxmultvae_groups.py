"""Recommendation quality per protected group: MultVAE vs AdvXMultVAE on ML-1M.

The same protocol as advxmultvae_ml1m.py (ML-1M ratings >= 4, 5-core, 60/20/20 user split per
seed, held-out users fold in 20 % of their items and are ranked on the other 80 %); the test
users' NDCG@10 and Recall@10 are averaged per gender and per age group, and the gap
(max - min of the group means) is reported, mean ± std over the seeds.

    SKADVREC_DATA=../shared/data python benchmarks/advxmultvae_groups.py --config official \
        --adversary-input mean --adversary-hidden 64 --gender 50 --age 50 [--device cuda]
"""

from __future__ import annotations

import argparse

import pandas as pd

from _common import header, print_table
from advxmultvae_ml1m import CONFIGS, load
from skadvrec.metrics import metric_by_group
from skadvrec.model_selection import split_users
from skadvrec.vae import AdvXMultVAE, MultVAE


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--config", choices=sorted(CONFIGS), default="official")
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--gender", type=float, default=50.0, help="λ_gender")
    p.add_argument("--age", type=float, default=50.0, help="λ_age")
    p.add_argument("--adversary-input", choices=["sample", "mean"], default="mean")
    p.add_argument("--adversary-hidden", type=int, nargs="*", default=[64])
    p.add_argument("--adversary-lr", type=float, default=1e-2)
    args = p.parse_args()
    header("Per-group NDCG@10 / Recall@10 on ML-1M test users (20/80 fold-in)", args.device)
    X, S = load()
    common = dict(**CONFIGS[args.config], max_iter=args.max_iter, device=args.device,
                  random_state=0, validation_metric="ndcg@10", n_iter_no_change=10)
    models = {
        "MultVAE": lambda: MultVAE(**common),
        f"AdvXMultVAE ({args.gender:g}, {args.age:g})": lambda: AdvXMultVAE(
            attributes=["gender", "age"], grad_scale={"gender": args.gender, "age": args.age},
            attribute_types={"gender": "categorical", "age": "continuous"}, n_heads=10,
            adversary_hidden=tuple(args.adversary_hidden),
            adversary_learning_rate=args.adversary_lr, adversary_input=args.adversary_input,
            **common),
    }
    cells = {}  # (model, attribute, metric) -> per-seed tables
    for seed in args.seeds:
        tr, _va, te = split_users(X.shape[0], n_validation=0.2, n_test=0.2, random_state=seed)
        S_tr, S_te = S.iloc[tr].reset_index(drop=True), S.iloc[te].reset_index(drop=True)
        for name, make in models.items():
            model = make()
            if isinstance(model, AdvXMultVAE):
                model.fit(X[tr], sensitive_features=S_tr)
            else:
                model.fit(X[tr])
            for attr in ("gender", "age_group"):
                for metric in ("ndcg@10", "recall@10"):
                    table = metric_by_group(model, X[te], S_te, metric, attribute=attr,
                                            input_fraction=0.2)
                    cells.setdefault((name, attr, metric), []).append(table["mean"])
            print(f"seed {seed}: {name} done", flush=True)
    rows = []
    for (name, attr, metric), tables in cells.items():
        means = pd.concat(tables, axis=1).T  # seeds x groups
        gaps = means.max(axis=1) - means.min(axis=1)
        row = {"model": name, "attribute": attr, "metric": metric}
        for group in means.columns:
            row[str(group)] = f"{means[group].mean():.4f}"
        row["gap (max - min)"] = f"{gaps.mean():.4f} ± {gaps.std(ddof=0):.4f}"
        rows.append(row)
    for attr in ("gender", "age_group"):
        sub = [r for r in rows if r["attribute"] == attr]
        print(f"\n## {attr}: mean of the group means over seeds {args.seeds}")
        print_table(sub, list(sub[0].keys()))


if __name__ == "__main__":
    main()
