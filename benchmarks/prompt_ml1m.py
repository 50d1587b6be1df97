"""P5Recommender and CFP (UP5) on ML-1M, the UP5 protocol.

Protocol (the official UP5 code): every ML-1M rating is an interaction (users have >= 20), sorted
by time; per user the last item is the test item and the second to last the validation item
(P5Recommender's default early stopping holds out each user's last fitted item); the prompt is
the sequential template with the last <= 20 items. hit@1/3/5/10 over the gold item plus 100
negatives drawn (seeded) from the item ids (the official code draws them from range(6040), the
user-id range: fixed here). Leakage: the package's worst-case audit
(skadvrec.metrics.attribute_leakage, the engine of LeakageScorer; cross-fitted, 5 folds, default
attacker portfolio) on transform() = the final encoder state at the user token, for gender, age
(7 buckets) and occupation (21 codes); macro one-vs-one AUC (0.5 = chance).

Stages. The backbone is trained once per seed and pickled to results/p5_ml1m_seed{S}.pkl
(PROMPT_BENCH_OUT overrides the folder); every later stage loads it (--backbone-seed B, default
--seed, or --backbone-path FILE), so the CFP seed (--seed) and the backbone seed are independent:

    cd benchmarks; export SKADVREC_DATA=../../shared/data
    /work/bin/heavy python prompt_ml1m.py backbone --seed 0 [--audit full|logistic|none]
    /work/bin/heavy python prompt_ml1m.py audit --seed 0 [--audit full]
    /work/bin/heavy python prompt_ml1m.py cfp --seed 1 --backbone-seed 0 \
        [--attrs gender age occupation] [--w 10 10 10] [--mixture] [--reweighter] [--loss ce]
    /work/bin/heavy python prompt_ml1m.py grid --seed 0 --backbone-seed 0
    python prompt_tables.py ../results       # mean ± std tables over the CFP seeds
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import header
from skadvrec.datasets import load_movielens
from skadvrec.metrics import attribute_leakage
from skadvrec.prompt import P5Recommender

ATTRS = ["gender", "age", "occupation"]
# results/ of the checkout (gitignored); the fitted backbone is saved there as p5_ml1m_seed{S}.pkl
# and every later stage (and notebooks/cfp_ml1m.ipynb) loads it instead of training it again
OUT = Path(os.environ.get("PROMPT_BENCH_OUT",
                          Path(__file__).resolve().parents[1] / "results"))
# UP5 README (seeds.md §3.5): CFP on the P5 backbone, ML-1M, template 2-1 (the README gives no
# bare-P5 row; these are its prompted figures, single runs)
UP5 = {"age": dict(auc=0.5292, h1=0.3123, h3=0.5118, h5=0.5891, h10=0.6770),
       "occupation": dict(auc=0.5188, h1=0.3162, h3=0.5043, h5=0.5826, h10=0.6675)}
BACKBONE = dict(d_model=64, n_layers=2, n_heads=4, d_ff=128, max_history=20,
                direct_fraction=0.2, learning_rate=2e-3, batch_size=256,
                max_targets_per_user=20, max_iter=4, n_iter_no_change=2)


def load():
    ml = load_movielens("1m", download=False)
    df = ml.interactions.sort_values(["user", "timestamp"], kind="stable")
    df = df[df.groupby("user")["user"].transform("size") >= 10]
    last = df.groupby("user").tail(1)
    fit = df.drop(last.index)
    users = np.sort(df["user"].unique())
    S = ml.users.loc[users, ATTRS].reset_index()
    S["age"] = S["age"].astype("category")
    S["occupation"] = S["occupation"].astype("category")
    return fit, last.reset_index(drop=True), S


def leakage(model, S, seed, attacker=None):
    X = pd.DataFrame({"user": S["user"]})
    t = time.perf_counter()
    res = attribute_leakage(model, X, S[ATTRS], n_bootstraps=200, random_state=seed,
                            attacker=attacker)
    return {a: dict(auc=float(res.loc[a, "auc"]), auc_low=float(res.loc[a, "auc_low"]),
                    auc_high=float(res.loc[a, "auc_high"]),
                    bacc=float(res.loc[a, "balanced_accuracy"]),
                    attacker=str(res.loc[a, "attacker"])) for a in ATTRS}, time.perf_counter() - t


def stage_backbone(seed, audit="full"):
    fit, test, S = load()
    print(f"ML-1M: {fit['user'].nunique()} users, {fit['item'].nunique()} items, {len(fit)} "
          f"fitted interactions, {len(test)} test items")
    model = P5Recommender(**BACKBONE, device="cpu", random_state=seed, verbose=False)
    t = time.perf_counter()
    model.fit(fit)
    fit_s = time.perf_counter() - t
    print(f"backbone fit {fit_s:.0f}s, {model.n_iter_} epochs (best {model.best_epoch_}), "
          f"{model.n_parameters_} parameters, history {model.history_}")
    OUT.mkdir(parents=True, exist_ok=True)
    # saved before the audits, so the later stages can start as soon as the fit is done
    with open(OUT / f"p5_ml1m_seed{seed}.pkl", "wb") as f:
        pickle.dump(model, f)
    print(f"saved {OUT / f'p5_ml1m_seed{seed}.pkl'}", flush=True)
    t = time.perf_counter()
    hits = model.hit_ratio(test, random_state=seed)
    rank_s = time.perf_counter() - t
    print(f"hit@k {hits}  (ranking 101 candidates for {len(test)} users: {rank_s:.1f}s)",
          flush=True)
    out = dict(seed=seed, config=BACKBONE, fit_s=fit_s, n_epochs=model.n_iter_,
               best_epoch=model.best_epoch_, n_parameters=model.n_parameters_,
               history=model.history_, hits=hits, rank_s=rank_s)
    if audit != "none":
        leak, leak_s = _audit(model, S, seed, audit)
        out.update(leakage=leak, leakage_s=leak_s, audit=audit)
    (OUT / f"p5_ml1m_seed{seed}.json").write_text(json.dumps(out, indent=1, default=str))
    return out


def _audit(model, S, seed, audit):
    """:func:`leakage` with the full portfolio ("full") or the logistic attacker, printed."""
    leak, leak_s = leakage(model, S, seed,
                           attacker=_fast_attacker() if audit == "logistic" else None)
    print(f"leakage ({audit}) {leak} ({leak_s:.0f}s)", flush=True)
    return leak, leak_s


def stage_audit(seed, audit="full"):
    """The leakage audit of a saved backbone (the full attacker portfolio by default)."""
    _, _, S = load()
    leak, leak_s = _audit(_load_backbone(seed), S, seed, audit)
    (OUT / f"p5_ml1m_seed{seed}_audit_{audit}.json").write_text(
        json.dumps(dict(leakage=leak, seconds=leak_s), indent=1))


def stage_grid(seed):
    """GridSearchCV over the discriminator weight w (gender), scored by hit@5 and the leakage
    AUC, refit by BestWithinLoss (the least leakage within 10 % hit@5 of w = 0). X is the whole
    table and the split the chronological leave-last-out (train = the fitted table, test = the
    test items), so the frozen backbone's histories end before the scored item; the choice is
    therefore made on the test items (a demonstration of the search, not a clean selection)."""
    import sklearn
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import GridSearchCV

    from skadvrec.metrics import LeakageScorer
    from skadvrec.model_selection import BestWithinLoss, InteractionHoldout
    from skadvrec.prompt import CFP

    fit, test, S = load()
    p5 = _load_backbone(seed)
    full = pd.concat([fit, test]).sort_values(["user", "timestamp"], kind="stable")
    # CFP prompts a fitted backbone, whose item vocabulary is fixed: the whole table holds test
    # items the backbone never saw (2 on ML-1M), which CFP refuses at the refit; drop those rows
    # (hit_ratio skips them in every other stage too)
    known = np.isin(full["item"].to_numpy(), p5.item_ids_)
    dropped = full.loc[~known, ["user", "item"]]
    print(f"grid: dropped {int((~known).sum())} row(s) naming items the backbone never saw "
          f"{dropped.to_dict(orient='records')}", flush=True)
    full = full[known].reset_index(drop=True)
    S_rows = _row_sensitive(full, S)

    def hit5(est, X, y=None):
        return est.score(X)

    with sklearn.config_context(enable_metadata_routing=True):
        cfp = CFP(backbone=FrozenEstimator(p5), attributes=["gender"], device="cpu",
                  random_state=seed, **CFP_CONFIG).set_fit_request(sensitive_features=True)
        leak = LeakageScorer("gender", metric="auc", attacker=_fast_attacker(),
                             random_state=seed).set_score_request(sensitive_features=True)
        search = GridSearchCV(cfp, {"discriminator_weight": [0.0, 10.0, 100.0]},
                              cv=InteractionHoldout("chronological", test_size=1),
                              scoring={"hit5": hit5, "leak": leak},
                              refit=BestWithinLoss("leak", "hit5", max_relative_loss=0.1,
                                                   reference={"discriminator_weight": 0.0}))
        t = time.perf_counter()
        search.fit(full, sensitive_features=S_rows)
        grid_s = time.perf_counter() - t
    res = pd.DataFrame(search.cv_results_)[["param_discriminator_weight", "mean_test_hit5",
                                            "mean_test_leak", "mean_fit_time"]]
    print(res.to_string(), flush=True)
    print(f"refit: {search.best_params_} (grid {grid_s:.0f}s)", flush=True)
    bb = seed if BACKBONE_SEED is None else BACKBONE_SEED
    (OUT / f"grid_ml1m_bb{bb}_seed{seed}.json").write_text(json.dumps(dict(
        results=res.astype(float).to_dict(orient="list"), best=search.best_params_,
        seconds=grid_s, dropped_rows=int((~known).sum())), indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["backbone", "audit", "cfp", "grid"])
    ap.add_argument("--audit", default="full", choices=["full", "logistic", "none"],
                    help="backbone stage: leakage audit after the fit (the 'audit' stage runs "
                         "it on the saved backbone)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backbone-seed", type=int, default=None,
                    help="load the backbone fitted with this seed (default: --seed)")
    ap.add_argument("--backbone-path", default=None,
                    help="load the pickled backbone from this file (default: "
                         "results/p5_ml1m_seed{backbone seed}.pkl)")
    ap.add_argument("--attrs", nargs="*", default=ATTRS)
    ap.add_argument("--mixture", action="store_true")
    ap.add_argument("--reweighter", action="store_true", help="also the mixture with it")
    ap.add_argument("--loss", default="ce", choices=["ce", "confusion"])
    ap.add_argument("--w", type=float, nargs="*", default=None,
                    help="discriminator weights, one per --attrs")
    args = ap.parse_args()
    global BACKBONE_SEED, BACKBONE_PATH
    BACKBONE_SEED = args.seed if args.backbone_seed is None else args.backbone_seed
    BACKBONE_PATH = args.backbone_path
    torch.set_num_threads(1)
    header(f"prompt family on ML-1M, stage {args.stage}, seed {args.seed}", "cpu")
    if args.stage == "backbone":
        stage_backbone(args.seed, args.audit)
    elif args.stage == "audit":
        stage_audit(args.seed, args.audit)
    elif args.stage == "grid":
        stage_grid(args.seed)
    else:
        weights = dict(WEIGHTS)
        if args.w:
            weights.update(zip(args.attrs, args.w))
        stage_cfp(args.seed, args.attrs, args.mixture, weights,
                  (False, True) if args.reweighter else (False,), args.loss)


CFP_CONFIG = dict(prefix_length=10, prefix_hidden=128, discriminator_hidden=(128,),
                  learning_rate=1e-3, discriminator_learning_rate=1e-3, prompt_steps=1,
                  rs_step=20, together_steps=10, rec_steps=5, sole_steps=10,
                  max_targets_per_user=3, batch_size=128, max_iter=2)
WEIGHTS = {"gender": 10.0, "age": 10.0, "occupation": 10.0}


def _row_sensitive(fit, S):
    return S.set_index("user").loc[fit["user"], ATTRS].reset_index(drop=True)


BACKBONE_SEED = None
BACKBONE_PATH = None


def _load_backbone(seed):
    """The backbone the 'backbone' stage pickled (trained once per seed, reused by every stage)."""
    seed = seed if BACKBONE_SEED is None else BACKBONE_SEED
    path = Path(BACKBONE_PATH) if BACKBONE_PATH else OUT / f"p5_ml1m_seed{seed}.pkl"
    if not path.is_file():
        raise SystemExit(f"no fitted backbone at {path}: run the 'backbone' stage with --seed "
                         f"{seed} first (or pass --backbone-path)")
    with open(path, "rb") as f:
        model = pickle.load(f)
    print(f"backbone loaded from {path}", flush=True)
    return model


def _fast_attacker():
    # the CFP stage audits with the class-balanced logistic regression only (the full
    # portfolio takes ~10 min per model on the shared CPU; on the backbone the logistic
    # regression was the strongest attacker for gender and age)
    from sklearn.linear_model import LogisticRegression

    return {"logistic": LogisticRegression(class_weight="balanced", max_iter=1000)}


def _evaluate(model, test, S, seed, label, fit_s, out):
    t = time.perf_counter()
    hits = model.hit_ratio(test, random_state=seed)
    rank_s = time.perf_counter() - t
    leak, leak_s = leakage(model, S, seed, attacker=_fast_attacker())
    row = dict(model=label, fit_s=fit_s, rank_s=rank_s, **hits,
               **{f"auc_{a}": leak[a]["auc"] for a in ATTRS})
    print(json.dumps(row), f"(audit {leak_s:.0f}s)", flush=True)
    out.append(row)


def stage_cfp(seed, attrs, mixture, weights, reweighters=(False,), loss="ce"):
    from skadvrec.prompt import CFP

    fit, test, S = load()
    S_rows = _row_sensitive(fit, S)
    p5 = _load_backbone(seed)
    rows = []
    _evaluate(p5, test, S, seed, "P5 backbone", 0.0, rows)
    for a in attrs:
        cfg = dict(CFP_CONFIG, attributes=[a], discriminator_weight=weights[a],
                   adversary_loss=loss)
        model = CFP(backbone=p5, device="cpu", random_state=seed, **cfg)
        t = time.perf_counter()
        model.fit(fit, sensitive_features=S_rows)
        fit_s = time.perf_counter() - t
        print(f"CFP {a} w={weights[a]}: fit {fit_s:.0f}s, history {model.phase_history_[a]}",
              flush=True)
        _evaluate(model, test, S, seed, f"CFP {a} (w={weights[a]:g}, {loss})", fit_s, rows)
    if mixture:
        cfg = dict(CFP_CONFIG, attributes=["gender", "age"], mixture=True, adversary_loss=loss,
                   discriminator_weight={"gender": weights["gender"], "age": weights["age"]})
        for rw in reweighters:
            model = CFP(backbone=p5, device="cpu", random_state=seed, reweighter=rw, **cfg)
            t = time.perf_counter()
            model.fit(fit, sensitive_features=S_rows)
            fit_s = time.perf_counter() - t
            print(f"CFP mixture gender+age reweighter={rw}: fit {fit_s:.0f}s "
                  f"{model.phase_history_['mixture']}", flush=True)
            for p in ("mixture", "gender", "age"):
                model.set_params(prompt=p)
                _evaluate(model, test, S, seed, f"CFP[gender,age] rw={rw} prompt={p}", fit_s,
                          rows)
    tag = "_".join(attrs) + ("_mix" if mixture else "") + f"_{loss}"
    tag += "_rw" if True in reweighters else ""
    if any(weights[a] != WEIGHTS[a] for a in attrs):
        tag += "_w" + "-".join(f"{weights[a]:g}" for a in attrs)
    bb = seed if BACKBONE_SEED is None else BACKBONE_SEED
    (OUT / f"cfp_ml1m_bb{bb}_seed{seed}_{tag}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
