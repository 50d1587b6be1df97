"""MultVAE, AdvXMultVAE and linear concept erasure on ML-1M against the worst-case leakage audit.

Protocol (the official AdvXMultVAE code, as in advxmultvae_ml1m.py --config official): ML-1M
ratings >= 4, 5-core users and items; per seed, users split 60/20/20 train/validation/test (the
validation users are unused: the models stop on an internal 10 % share of their training users);
held-out users fold in 20 % of their items and are ranked on the other 80 % (NDCG@10).

Models, per seed: MultVAE (the official linear autoencoder, latent 100, β = 0.8, batch 64);
AdvXMultVAE with gender and age adversaries on μ (10 heads [100 → 64 → out], Adam lr 1e-2) at
λ = (50, 50), the configuration BENCHMARKS.md documented, and at a stronger λ; LEACE linear
erasure (skadvrec.erasure.LinearErasure) fitted on the training users' μ and applied to the test
users' μ, of gender and the age group together (rank 1 + 6 = 7; the age code is a function of
the age group, so this also removes every linear trace of age), on MultVAE and on AdvXMultVAE
(50, 50). AdvXMultVAE's erasure is its own ``post_erasure="linear"`` option (LEACE of gender and
the age code, whose 7 values it erases one-hot: the same span as gender + age group), so the
erased figures are the fitted model's ``transform`` / ``predict``, and the raw ones the same model
with ``post_eraser_`` set to None. MultVAE takes no sensitive features: its erasure is a
LinearErasure fitted here, and its NDCG decodes the erased μ of the fold-in rows with the fitted
decoder.

Leakage: skadvrec.metrics.attribute_leakage, held-out protocol: the default attacker portfolio
(class-balanced logistic regression with C by inner CV, MLP without early stopping, gradient
boosting; ridge and gradient boosting for age) trained on the 3,620 training users' μ and scored
on the 1,207 test users' μ; the strongest attacker's figure with a 95 % bootstrap interval.

    SKADVREC_DATA=../shared/data python benchmarks/leakage_ml1m.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from _common import header, print_table
from advxmultvae_ml1m import CONFIGS, load
from skadvrec.erasure import LinearErasure
from skadvrec.metrics import attribute_leakage, ndcg_at_k
from skadvrec.model_selection import fold_in_split, split_users
from skadvrec.vae import AdvXMultVAE, MultVAE

TYPES = {"gender": "categorical", "age": "continuous", "age_group": "categorical"}
ERASURES = {"gender + age group": ["gender", "age_group"]}


def audit(Z_te, S_te, Z_tr, S_tr, seed):
    t = attribute_leakage("passthrough", Z_te, S_te, X_train=Z_tr, sensitive_features_train=S_tr,
                          attribute_types=TYPES, random_state=seed)
    g, a, ag = t.loc["gender"], t.loc["age"], t.loc["age_group"]
    return {"gender_bacc": g["balanced_accuracy"], "gender_bacc_low": g["balanced_accuracy_low"],
            "gender_bacc_high": g["balanced_accuracy_high"], "gender_auc": g["auc"],
            "gender_auc_low": g["auc_low"], "gender_auc_high": g["auc_high"],
            "gender_attacker": g["attacker"], "age_mae": a["mae"], "age_mae_low": a["mae_low"],
            "age_mae_high": a["mae_high"], "age_mae_baseline": a["mae_baseline"],
            "age_r2": a["r2"], "age_group_bacc": ag["balanced_accuracy"],
            "age_group_bacc_low": ag["balanced_accuracy_low"],
            "age_group_bacc_high": ag["balanced_accuracy_high"]}


def ndcg10(model, x_in, x_out, eraser=None):
    """NDCG@10 of the held-out users from their fold-in rows (μ erased first with ``eraser``)."""
    if eraser is None:  # the model's own scoring (with its post_eraser_, if any)
        return float(ndcg_at_k(x_out, model.predict(x_in), k=10, exclude=x_in))
    mu = eraser.transform(model.transform(x_in))
    vae = model.vae_
    with torch.no_grad():
        weight = next(iter(vae.parameters()))
        scores = vae.decode(torch.as_tensor(mu, dtype=weight.dtype, device=weight.device))
    return float(ndcg_at_k(x_out, scores.cpu().numpy(), k=10, exclude=x_in))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--strong", type=float, nargs=2, default=[200.0, 200.0],
                   metavar=("GENDER", "AGE"), help="λ of the stronger AdvXMultVAE")
    p.add_argument("--strong-seeds", type=int, nargs="*", default=None,
                   help="seeds for the stronger AdvXMultVAE (default: all)")
    p.add_argument("--out", default="results/leakage_ml1m.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    header("Leakage audit on ML-1M: MultVAE / AdvXMultVAE / linear erasure", args.device)
    print(f"torch threads {torch.get_num_threads()}", flush=True)
    X, S = load()
    common = dict(**CONFIGS["official"], max_iter=args.max_iter, device=args.device,
                  random_state=0, validation_metric="ndcg@10", n_iter_no_change=10)
    adv = dict(attributes=["gender", "age"], attribute_types={"gender": "categorical",
                                                              "age": "continuous"},
               n_heads=10, adversary_hidden=(64,), adversary_learning_rate=1e-2,
               adversary_input="mean", **common)
    lam_s = tuple(args.strong)
    strong_seeds = args.seeds if args.strong_seeds is None else args.strong_seeds
    rows = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        tr, _va, te = split_users(X.shape[0], n_validation=0.2, n_test=0.2, random_state=seed)
        S_tr, S_te = S.iloc[tr].reset_index(drop=True), S.iloc[te].reset_index(drop=True)
        x_in, x_out = fold_in_split(X[te], 0.2, random_state=0)
        models = {"MultVAE": lambda: MultVAE(**common).fit(X[tr]),
                  "AdvXMultVAE (50, 50)": lambda: AdvXMultVAE(
                      grad_scale={"gender": 50.0, "age": 50.0}, post_erasure="linear",
                      **adv).fit(
                      X[tr], sensitive_features=S_tr)}
        if seed in strong_seeds:
            models[f"AdvXMultVAE ({lam_s[0]:g}, {lam_s[1]:g})"] = lambda: AdvXMultVAE(
                grad_scale={"gender": lam_s[0], "age": lam_s[1]}, **adv).fit(
                X[tr], sensitive_features=S_tr)
        for name, make in models.items():
            t0 = time.perf_counter()
            model = make()
            fit_s = time.perf_counter() - t0
            variants = [(name, model, None)]
            if getattr(model, "post_eraser_", None) is not None:  # AdvXMultVAE(post_erasure=)
                raw = copy.copy(model)
                raw.post_eraser_ = None
                variants = [(name, raw, None), (f"{name} + erasure of gender + age group (rank "
                                                f"{model.post_eraser_.rank_})", model, None)]
            elif name == "MultVAE":
                Z_tr = model.transform(X[tr])
                for label, attrs in ERASURES.items():
                    eraser = LinearErasure(attributes=attrs, attribute_types=TYPES).fit(Z_tr,
                                                                                        S_tr)
                    variants.append((f"{name} + erasure of {label} (rank {eraser.rank_})",
                                     model, eraser))
            for label, m, eraser in variants:
                t1 = time.perf_counter()
                zt, ze = m.transform(X[tr]), m.transform(X[te])
                if eraser is not None:
                    zt, ze = eraser.transform(zt), eraser.transform(ze)
                row = {"seed": seed, "model": label, "ndcg@10": ndcg10(m, x_in, x_out, eraser),
                       **audit(ze, S_te, zt, S_tr, seed), "fit_s": fit_s,
                       "n_iter": model.n_iter_, "audit_s": time.perf_counter() - t1}
                rows.append(row)
                print(f"seed {seed} {label}: NDCG@10 {row['ndcg@10']:.4f}, gender BAcc "
                      f"{row['gender_bacc']:.3f} [{row['gender_bacc_low']:.3f}, "
                      f"{row['gender_bacc_high']:.3f}] ({row['gender_attacker']}) AUC "
                      f"{row['gender_auc']:.3f}, age MAE {row['age_mae']:.2f} (median "
                      f"{row['age_mae_baseline']:.2f}), age-group BAcc "
                      f"{row['age_group_bacc']:.3f}; fit {fit_s:.0f} s ({model.n_iter_} "
                      f"epochs), audit {row['audit_s']:.0f} s", flush=True)
            out.write_text(json.dumps({"args": vars(args), "torch_threads":
                                       torch.get_num_threads(), "rows": rows}, indent=1,
                                      default=float))
    # mean ± std over seeds
    table = []
    names = list(dict.fromkeys(r["model"] for r in rows))
    ref = {r["seed"]: r["ndcg@10"] for r in rows if r["model"] == "MultVAE"}
    for name in names:
        sub = [r for r in rows if r["model"] == name]

        def ms(key, fmt=".4f", sub=sub):
            v = np.array([r[key] for r in sub], dtype=float)
            return f"{v.mean():{fmt}} ± {v.std():{fmt}}"

        loss = np.mean([1 - r["ndcg@10"] / ref[r["seed"]] for r in sub if r["seed"] in ref])
        table.append({"model": name, "seeds": len(sub), "NDCG@10": ms("ndcg@10"),
                      "ΔNDCG@10": f"{-100 * loss:+.1f} %",
                      "gender BAcc": ms("gender_bacc", ".3f"),
                      "gender BAcc 95 % CI": ms("gender_bacc_low", ".3f").split(" ±")[0] + "–"
                      + ms("gender_bacc_high", ".3f").split(" ±")[0],
                      "gender AUC": ms("gender_auc", ".3f"), "age MAE": ms("age_mae", ".2f"),
                      "age MAE median baseline": ms("age_mae_baseline", ".2f"),
                      "age-group BAcc": ms("age_group_bacc", ".3f")})
    print("\n## Test users, mean ± std over seeds (CI: mean of the per-seed bounds)")
    print_table(table, list(table[0].keys()))


if __name__ == "__main__":
    main()
