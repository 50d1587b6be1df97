"""R-LARM family on ML-1M: the paper's Table 2, Figure 2 (bottom-q users) and Figure 1 diagnostic.

Protocol: ML-1M, ratings >= 4 positives, users with >= 5 positives, 600 validation and 600 test
users held out (disjoint), 80/20 fold-in. Hyper-parameters are chosen on the validation users
of the first seed (NDCG@100) from small grids, then every model is refitted on each seed's split.

    SKADVREC_DATA=../shared/data python benchmarks/rlarm_ml1m.py [--device cuda] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from _common import header, ml1m_strong_generalisation, print_table
from skadvrec.linear import ARM, EASE, EASEIPW, RLARM
from skadvrec.metrics import underserved_uplift

METRICS = ["ndcg@100", "recall@20", "recall@50"]
QS = [0.05, 0.1, 0.2, 0.5]


def make(name, params, device, seed):
    common = dict(device=device)
    if name == "EASE":
        return EASE(**common, **params)
    if name == "EASE-IPW":
        return EASEIPW(**common, **params)
    adv = dict(common, random_state=seed, max_iter=params.pop("max_iter", 40))
    if name == "ARM":
        return ARM(**adv, **params)
    if name.startswith("R-LARM(NN)"):
        return RLARM(adversary="mlp", **adv, **params)
    return RLARM(**adv, **params)


def fit(model, d, X):
    t0 = time.perf_counter()
    if isinstance(model, (ARM, RLARM)):
        model.fit(X[d["train"]], validation_data=X[d["validation"]])
    else:
        model.fit(X[d["train"]])
    return time.perf_counter() - t0


def val_score(model, d, X, seed):
    vals, _ = model.evaluate(X[d["validation"]], ["ndcg@100"], random_state=seed)
    return float(np.nanmean(vals["ndcg@100"]))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--quick", action="store_true", help="tiny grids (smoke run)")
    p.add_argument("--max-iter", type=int, default=20)
    p.add_argument("--figure1-from", default=None,
                   help="only redo the Figure 1 diagnostic with the parameters chosen in this "
                        "earlier JSON output")
    p.add_argument("--out", default="results/rlarm_ml1m.json")
    args = p.parse_args()
    header("R-LARM family on ML-1M (strong generalisation, 600 val / 600 test users)",
           args.device)
    if args.figure1_from:
        chosen = json.loads(Path(args.figure1_from).read_text())["chosen"]
        d = ml1m_strong_generalisation(random_state=args.seeds[0])
        ease = make("EASE", dict(chosen["EASE"]), args.device, args.seeds[0])
        fit(ease, d, d["X"])
        rows = figure1(ease, chosen, d, d["X"], args.device, args.seeds[0])
        print("\n## Figure 1 diagnostic (seed %d): by user-activity decile of the training "
              "users; adversaries trained 5 epochs without early stopping" % args.seeds[0])
        print_table(rows, list(rows[0].keys()))
        return
    l2 = 500.0
    Bs = [10.0] if args.quick else [1.0, 10.0]
    adv = dict(l2=l2, learning_rate=5e-5, adversary_learning_rate=1e-2, batch_size=256,
               max_iter=args.max_iter, n_iter_no_change=3)
    grids = {
        "EASE": [{"l2": l2}],
        "EASE-IPW": [{"l2": l2, "beta": b} for b in ([0.5] if args.quick else
                                                      [0.25, 0.5, 0.75])],
        "ARM": [dict(adv, adversary_l2=B) for B in Bs],
        "R-LARM": [dict(adv, adversary_l2=B) for B in Bs],
        "R-LARM(NN)": [dict(adv, adversary_l2=B, hidden_size=8) for B in Bs],
        "R-LARM cf": [dict(adv, adversary_l2=B, learner="closed_form") for B in Bs],
        "R-LARM(NN) cf": [dict(adv, adversary_l2=B, hidden_size=8, learner="closed_form")
                          for B in Bs],
    }
    seed0 = args.seeds[0]
    d0 = ml1m_strong_generalisation(random_state=seed0)
    X0 = d0["X"]
    print(f"matrix {X0.shape[0]} users x {X0.shape[1]} items, {X0.nnz} positives")
    chosen, tuning = {}, []
    for name, grid in grids.items():
        best = (-np.inf, None)
        for params in grid:
            m = make(name, dict(params), args.device, seed0)
            t = fit(m, d0, X0)
            v = val_score(m, d0, X0, seed0)
            epochs = getattr(m, "n_iter_", 0)
            tuning.append({"model": name, "params": json.dumps(params), "val ndcg@100":
                           f"{v:.4f}", "epochs": epochs, "best epoch": getattr(m, "best_epoch_",
                                                                               "-"),
                           "fit s": f"{t:.1f}"})
            print(f"  tuned {name} {params} val={v:.4f} epochs={epochs} fit={t:.0f}s",
                  flush=True)
            if v > best[0]:
                best = (v, params)
        chosen[name] = best[1]
    # init="random" (the paper's Glorot start) with the chosen R-LARM parameters, seed 0
    init_rows = []
    for init in ("ease", "random"):
        params = dict(chosen["R-LARM"], init=init,
                      max_iter=2 * args.max_iter if init == "random" else args.max_iter)
        m = make("R-LARM", params, args.device, seed0)
        t = fit(m, d0, X0)
        te, _ = m.evaluate(X0[d0["test"]], ["ndcg@100"], random_state=seed0)
        init_rows.append({"init": init, "epochs": m.n_iter_, "best epoch": m.best_epoch_,
                          "val ndcg@100": f"{m.best_validation_score_:.4f}",
                          "test ndcg@100": f"{np.nanmean(te['ndcg@100']):.4f}",
                          "fit s": f"{t:.1f}"})
    print("\n## Validation grid (seed %d)" % seed0)
    print_table(tuning, ["model", "params", "val ndcg@100", "epochs", "best epoch", "fit s"])

    print("\n## R-LARM initialisation (seed %d, chosen parameters)" % seed0)
    print_table(init_rows, list(init_rows[0].keys()))
    per_seed, per_user, epoch_s, fig1 = {}, {}, [], None
    for seed in args.seeds:
        d = d0 if seed == seed0 else ml1m_strong_generalisation(random_state=seed)
        X = d["X"]
        Xte = X[d["test"]]
        fitted = {}
        for name in grids:
            m = make(name, dict(chosen[name]), args.device, seed)
            t = fit(m, d, X)
            vals, _ = m.evaluate(Xte, METRICS, random_state=seed)
            per_seed.setdefault(name, []).append({k: float(np.nanmean(v)) for k, v in
                                                  vals.items()} | {"fit_s": t,
                                                  "epochs": getattr(m, "n_iter_", 0),
                                                  "best_epoch": getattr(m, "best_epoch_", 0)})
            if hasattr(m, "history_") and name in ("R-LARM", "R-LARM(NN)"):
                epoch_s += [h["seconds"] for h in m.history_ if h["epoch"] > 0]
            fitted[name] = m
            print(f"  seed {seed} {name}: test ndcg@100 {np.nanmean(vals['ndcg@100']):.4f} "
                  f"fit {t:.0f}s", flush=True)
        for name in grids:
            if name == "EASE":
                continue
            for mode, sel in (("same", None), ("independent", seed + 1000)):
                c = underserved_uplift(fitted[name], fitted["EASE"], Xte, q=QS,
                                       random_state=seed, selection_random_state=sel)
                per_user.setdefault((name, mode), []).append(c)
        if seed == seed0:
            fig1 = figure1(fitted["EASE"], chosen, d, X, args.device, seed)

    rows = []
    for name, res in per_seed.items():
        row = {"model": name, "params": json.dumps(chosen[name])}
        for m_ in METRICS:
            v = np.array([r[m_] for r in res])
            row[m_] = f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}"
        row["epochs"] = "/".join(str(r["epochs"]) for r in res) if name not in (
            "EASE", "EASE-IPW") else "-"
        row["fit s"] = f"{np.median([r['fit_s'] for r in res]):.1f}"
        rows.append(row)
    print(f"\n## Test users, mean ± std over seeds {args.seeds}")
    print_table(rows, ["model", *METRICS, "epochs", "fit s", "params"])
    if epoch_s:
        print(f"\nR-LARM / R-LARM(NN) (Adam learner, batch 256): median {np.median(epoch_s):.2f} "
              f"s per epoch ({len(epoch_s)} epochs timed)")

    print("\n## Bottom-q users of EASE (NDCG@100): relative change vs EASE, mean over seeds; "
          "p = paired t-test pooled over seeds")
    curve_rows = []
    for (name, mode), curves in per_user.items():
        for q in QS:
            rel = [c.loc[c.q == q, "relative_change"].iloc[0] for c in curves]
            n_users = sum(int(c.loc[c.q == q, "n_users"].iloc[0]) for c in curves)
            ps = [c.loc[c.q == q, "p_value"].iloc[0] for c in curves]
            # pooled: Fisher's method over the per-seed two-sided p-values
            fisher = stats.combine_pvalues([x for x in ps if np.isfinite(x)])[1] if any(
                np.isfinite(ps)) else float("nan")
            curve_rows.append({"model": name, "selection": mode, "q": f"{int(q * 100)}%",
                               "users": n_users,
                               "rel. change": f"{100 * np.mean(rel):+.2f}% ± "
                                              f"{100 * np.std(rel, ddof=1) if len(rel) > 1 else 0:.2f}",
                               "p per seed": " ".join(f"{x:.3f}" for x in ps),
                               "p (Fisher)": f"{fisher:.3g}"})
    print_table(curve_rows, ["model", "selection", "q", "users", "rel. change", "p per seed",
                             "p (Fisher)"])
    print("\n## Figure 1 diagnostic (seed %d): by user-activity decile of the training users; "
          "adversaries trained 5 epochs without early stopping" % seed0)
    print_table(fig1, list(fig1[0].keys()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"chosen": chosen, "per_seed": per_seed,
                                          "curves": {f"{k[0]}|{k[1]}": [c.to_dict("list")
                                                                       for c in v]
                                                     for k, v in per_user.items()},
                                          "figure1": fig1}, indent=1, default=float))


def figure1(ease, chosen, d, X, device, seed, epochs=5):
    """Per activity decile: EASE in-sample loss and NDCG@100, and the weights of adversaries
    trained for a fixed number of epochs without early stopping (early stopping may keep the
    uniform epoch-0 adversary, which says nothing)."""
    import torch
    from skadvrec._torch import dense_rows
    from skadvrec.metrics.ranking import _metrics_on_batch
    Xtr = X[d["train"]]
    n = np.asarray(Xtr.sum(axis=1)).ravel()
    loss, ndcg = [], []
    with torch.no_grad():
        for s in range(0, Xtr.shape[0], 1024):
            xb = dense_rows(Xtr, slice(s, s + 1024), ease.device_, torch.float32)
            pred = xb @ ease.coef_
            loss.append(((xb - pred) ** 2).sum(1).cpu().numpy())
            ndcg.append(_metrics_on_batch(pred, xb > 0, [("n", "ndcg", 100)])["n"].cpu().numpy())
    loss, ndcg = np.concatenate(loss), np.concatenate(ndcg)
    weights = {}
    for name in ("ARM", "R-LARM", "R-LARM(NN)", "R-LARM(NN) cf"):
        params = dict(chosen[name], max_iter=epochs, early_stopping=False)
        weights[name] = make(name, params, device, seed).fit(Xtr).adversary_weights(Xtr)
    dec = np.minimum((stats.rankdata(n, method="ordinal") - 1) * 10 // len(n), 9)
    rows = []
    for k in range(10):
        s = dec == k
        row = {"decile": k + 1, "#items (median)": int(np.median(n[s])),
               "EASE sq. loss": f"{loss[s].mean():.1f}",
               "EASE in-sample NDCG@100": f"{ndcg[s].mean():.3f}"}
        row |= {f"{name} weight": f"{w[s].mean():.3f}" for name, w in weights.items()}
        rows.append(row)
    row = {"decile": "Spearman vs #items", "#items (median)": "",
           "EASE sq. loss": f"{stats.spearmanr(loss, n)[0]:+.2f}",
           "EASE in-sample NDCG@100": f"{stats.spearmanr(ndcg, n)[0]:+.2f}"}
    row |= {f"{name} weight": f"{stats.spearmanr(w, n)[0]:+.2f}" for name, w in weights.items()}
    rows.append(row)
    return rows


if __name__ == "__main__":
    main()
