"""EASE / EASE-IPW on ML-1M, strong generalisation (the foundation issue's quality target).

Protocol: ratings >= 4 are positives, users with >= 5 positives, 600 validation and 600 test
users held out (disjoint), each held-out user folded in 80/20 (seeded). NDCG@100, Recall@20 and
Recall@50 on the test users, for several user splits; float32 and float64 compared; fit time.

    SKADVREC_DATA=../shared/data python benchmarks/ease_ml1m.py [--device cpu] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import header, ml1m_strong_generalisation, print_table, timed
from skadvrec.linear import EASE, EASEIPW

METRICS = ["ndcg@100", "recall@20", "recall@50"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--l2", type=float, default=500.0)
    p.add_argument("--beta", type=float, nargs="+", default=[0.25, 0.5])
    args = p.parse_args()
    header("EASE on ML-1M (ratings>=4, >=5 positives, 600 test users, 80/20 fold-in)",
           args.device)
    rows, f32_vs_f64 = [], []
    per_model = {}
    for seed in args.seeds:
        d = ml1m_strong_generalisation(random_state=seed)
        Xtr, Xte = d["X"][d["train"]], d["X"][d["test"]]
        if seed == args.seeds[0]:
            print(f"matrix {d['X'].shape[0]} users x {d['X'].shape[1]} items, {d['X'].nnz} "
                  f"positives; train users {len(d['train'])}, test users {len(d['test'])}")
        models = {f"EASE l2={args.l2:g}": EASE(l2=args.l2, device=args.device)}
        for b in args.beta:
            models[f"EASE-IPW l2={args.l2:g} beta={b:g}"] = EASEIPW(l2=args.l2, beta=b,
                                                                   device=args.device)
        for name, model in models.items():
            t_fit, _ = timed(lambda: model.fit(Xtr), repeat=3, sync_device=model.device)
            vals, _ = model.evaluate(Xte, METRICS, random_state=seed)
            per_model.setdefault(name, []).append(
                {m: np.nanmean(v) for m, v in vals.items()} | {"fit_s": t_fit})
        m64 = EASE(l2=args.l2, device=args.device, dtype="float64").fit(Xtr)
        v32, _ = models[f"EASE l2={args.l2:g}"].evaluate(Xte, METRICS, random_state=seed)
        v64, _ = m64.evaluate(Xte, METRICS, random_state=seed)
        f32_vs_f64.append(max(abs(np.nanmean(v32[m]) - np.nanmean(v64[m])) for m in METRICS))
    for name, res in per_model.items():
        row = {"model": name}
        for m in METRICS:
            v = np.array([r[m] for r in res])
            row[m] = f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}"
        row["fit s"] = f"{np.median([r['fit_s'] for r in res]):.3f}"
        rows.append(row)
    print_table(rows, ["model", *METRICS, "fit s"])
    print(f"seeds {args.seeds}; max |float32 - float64| over metrics and seeds: "
          f"{max(f32_vs_f64):.2e}")


if __name__ == "__main__":
    main()
