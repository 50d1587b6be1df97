"""Stronger adversaries for AdvXMultVAE on ML-1M, each with and without post-hoc linear erasure.

Protocol, models and audit as in leakage_ml1m.py (official autoencoder, gender + age adversaries
on μ, 10 heads [100 → 64 → out], Adam lr 1e-2, class-balanced losses; ML-1M 5-core, users split
60/20/20 per seed, 20 % fold-in, NDCG@10 of the test users; the worst-case audit trains its
attackers on the training users' μ and scores the test users' μ). Each variant is one fit with
``post_erasure="linear"`` (LEACE of gender and the age code, rank 1 + 6 = 7): the erased figures
are the model's own ``transform`` / ``predict``; the raw ones are the same fitted model with its
``post_eraser_`` set to None (the erasure is fitted after training, so training is identical).

Variants (``--variants``; λ = (gender, age) = (50, 50) unless the name says otherwise):
    base            AdvXMultVAE (50, 50) as in leakage_ml1m.py
    steps5          adversary_steps=5
    warmup10        lambda_warmup=10
    reinit10        adversary_reinit_every=10
    unbalanced      class_weight=None (the base is class-balanced)
    wide            adversary heads [100 → 256 → 256 → out]
    steps5+warmup10, steps5+reinit10, steps5+warmup10+reinit10, ...   combinations ('+')
    lam<L>          simultaneous removal at λ = (L, L), e.g. lam10, lam200
    gender<L>       gender alone at λ = L (the erasure then erases gender only)

    SKADVREC_DATA=../shared/data python benchmarks/advx_variants_ml1m.py --variants base steps5 \
        --seeds 0 [--out results/advx_variants.jsonl]

Rows are appended to ``--out`` (JSON lines), so runs of several processes can share one file;
``--summary`` prints the table of everything in it (mean ± std over the seeds present).
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
from leakage_ml1m import audit
from skadvrec.metrics import ndcg_at_k
from skadvrec.model_selection import fold_in_split, split_users
from skadvrec.vae import AdvXMultVAE

OPTIONS = {"steps5": dict(adversary_steps=5), "warmup10": dict(lambda_warmup=10),
           "reinit10": dict(adversary_reinit_every=10), "unbalanced": dict(class_weight=None),
           "wide": dict(adversary_hidden=(256, 256)),
           "base": {}}


def variant_params(name):
    params = dict(grad_scale={"gender": 50.0, "age": 50.0})
    for part in name.split("+"):
        if part in OPTIONS:
            params.update(OPTIONS[part])
        elif part.startswith("lam"):
            lam = float(part[3:])
            params["grad_scale"] = {"gender": lam, "age": lam}
        elif part.startswith("gender"):
            params.update(attributes=["gender"], grad_scale={"gender": float(part[6:])})
        else:
            raise SystemExit(f"unknown variant part {part!r}")
    return params


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variants", nargs="+", default=["base"])
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--out", default="results/advx_variants.jsonl")
    p.add_argument("--summary", action="store_true", help="only print the table of --out")
    args = p.parse_args()
    out = Path(args.out)
    if args.summary:
        return summary(out)
    torch.set_num_threads(args.threads)
    header("AdvXMultVAE variants on ML-1M against the worst-case audit", args.device)
    print(f"torch threads {torch.get_num_threads()}", flush=True)
    X, S = load()
    common = dict(**CONFIGS["official"], max_iter=args.max_iter, device=args.device,
                  random_state=0, validation_metric="ndcg@10", n_iter_no_change=10)
    adv = dict(attributes=["gender", "age"], attribute_types={"gender": "categorical",
                                                              "age": "continuous"},
               n_heads=10, adversary_hidden=(64,), adversary_learning_rate=1e-2,
               adversary_input="mean", post_erasure="linear", **common)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        tr, _va, te = split_users(X.shape[0], n_validation=0.2, n_test=0.2, random_state=seed)
        S_tr, S_te = S.iloc[tr].reset_index(drop=True), S.iloc[te].reset_index(drop=True)
        x_in, x_out = fold_in_split(X[te], 0.2, random_state=0)
        for name in args.variants:
            params = {**adv, **variant_params(name)}
            t0 = time.perf_counter()
            model = AdvXMultVAE(**params).fit(X[tr], sensitive_features=S_tr)
            fit_s = time.perf_counter() - t0
            raw = copy.copy(model)
            raw.post_eraser_ = None
            for label, m in ((name, raw), (f"{name} + erasure", model)):
                t1 = time.perf_counter()
                ndcg = float(ndcg_at_k(x_out, m.predict(x_in), k=10, exclude=x_in))
                row = {"seed": seed, "variant": name, "erasure": m is model, "model": label,
                       "ndcg@10": ndcg, **audit(m.transform(X[te]), S_te, m.transform(X[tr]),
                                                S_tr, seed),
                       "fit_s": fit_s, "n_iter": model.n_iter_, "best_epoch": model.best_epoch_,
                       "audit_s": time.perf_counter() - t1,
                       "torch_threads": torch.get_num_threads(),
                       "params": {k: v for k, v in params.items() if k not in common}}
                print(f"seed {seed} {label}: NDCG@10 {ndcg:.4f}, gender BAcc "
                      f"{row['gender_bacc']:.3f} [{row['gender_bacc_low']:.3f}, "
                      f"{row['gender_bacc_high']:.3f}] ({row['gender_attacker']}) AUC "
                      f"{row['gender_auc']:.3f}, age MAE {row['age_mae']:.2f} (median "
                      f"{row['age_mae_baseline']:.2f}), age-group BAcc "
                      f"{row['age_group_bacc']:.3f}; fit {fit_s:.0f} s ({model.n_iter_} "
                      f"epochs, best {model.best_epoch_}), audit {row['audit_s']:.0f} s",
                      flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(row, default=float) + "\n")
    summary(out)


def summary(out):
    rows = [json.loads(line) for line in Path(out).read_text().splitlines() if line.strip()]
    table = []
    for name in dict.fromkeys(r["model"] for r in rows):
        sub = [r for r in rows if r["model"] == name]

        def ms(key, fmt=".4f", sub=sub):
            v = np.array([r[key] for r in sub], dtype=float)
            return f"{v.mean():{fmt}}" + (f" ± {v.std():{fmt}}" if len(v) > 1 else "")

        table.append({"model": name, "seeds": ",".join(str(r["seed"]) for r in sub),
                      "NDCG@10": ms("ndcg@10"), "gender BAcc": ms("gender_bacc", ".3f"),
                      "CI": f"{np.mean([r['gender_bacc_low'] for r in sub]):.3f}–"
                            f"{np.mean([r['gender_bacc_high'] for r in sub]):.3f}",
                      "gender AUC": ms("gender_auc", ".3f"), "age MAE": ms("age_mae", ".2f"),
                      "age-group BAcc": ms("age_group_bacc", ".3f"),
                      "epochs (best)": ",".join(f"{r['n_iter']}({r['best_epoch']})" for r in sub)})
    print_table(table, list(table[0].keys()))


if __name__ == "__main__":
    main()
