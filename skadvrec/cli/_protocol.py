"""The benchmark job behind ``skadvrec benchmark``: every estimator side by side on one dataset.

Protocol (the held-out-user protocol of the package, the same for every model):

1. The dataset becomes a binary user × item matrix X with one protected attribute per user (the
   planted ``group`` of the synthetic data, ``gender`` for MovieLens; Gowalla has none, so its
   group columns use light vs heavy users by activity and its leakage column is empty).
2. Per seed, ``test_size`` of the users are held out (:class:`~skadvrec.model_selection.
   UserHoldout`); each held-out row is folded in 80/20 (the model sees 80 %, ranks for 20 %).
3. Each model is fitted on the training users and measured on the held-out users:

   - accuracy: NDCG@k and Recall@k;
   - fairness: the NDCG@k gap between the attribute's groups (best − worst group mean), the
     attribute's leakage (balanced accuracy of a logistic-regression attacker trained on the
     training users' ``transform`` and scored on the held-out users', see
     :func:`~skadvrec.metrics.attribute_leakage`; 0.5 is chance for two groups), and the
     relative NDCG@100 change (R-LARM's measure) on the bottom ``q`` of held-out users of an
     EASE reference, chosen on an independent fold-in split
     (:func:`~skadvrec.metrics.underserved_uplift` with ``selection_random_state``);
   - robustness: the same model fitted again on the training users plus an attack's fake users
     (one attack per seed, shared by the models), and T-HR@50 of the attack's target items
     among the held-out users (:func:`~skadvrec.metrics.target_hit_ratio`; lower is more
     robust).

The models come from :data:`MODELS`, a registry of :class:`ModelSpec` (one line per
estimator); every recommender the package exports is in it (a test checks this).
"""

from __future__ import annotations

import importlib
import math
import platform
import time
import warnings
from dataclasses import dataclass, field
from dataclasses import fields as dc_fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ModelSpec", "MODELS", "register", "BenchmarkConfig", "load_dataset",
           "run_benchmark", "summarize", "format_table", "write_outputs", "DATASETS", "ATTACKS"]

DATASETS = ("synthetic", "ml-100k", "ml-1m", "gowalla")
ATTACKS = ("random", "bandwagon", "popular")


# -- the registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """How the benchmark builds one estimator.

    Parameters
    ----------
    name : str
        The name on the command line (``--models NAME``) and in the config file.
    label : str
        The row label of the table.
    estimator : str
        ``"module:Class"``, imported when the model runs (so a broken family fails its own
        rows only).
    params : dict
        Parameters on the synthetic data (small: the whole job runs in minutes on a CPU).
    sized : dict of str to dict
        Overrides per dataset (``"ml-1m"``: ``{"l2": 500.0}``, say).
    sensitive : bool
        The model is fitted with the protected attribute (``sensitive_features``), as
        AdvXMultVAE; it is skipped on a dataset without one.
    """

    name: str
    label: str
    estimator: str
    params: dict = field(default_factory=dict)
    sized: dict = field(default_factory=dict)
    sensitive: bool = False

    @property
    def family(self):
        return self.estimator.split(":")[0].rsplit(".", 1)[-1]

    def estimator_class(self):
        module, name = self.estimator.split(":")
        return getattr(importlib.import_module(module), name)

    def build(self, dataset="synthetic", *, device="auto", random_state=0, verbose=False,
              overrides=None, attribute=None):
        params = dict(self.params)
        params.update(self.sized.get(dataset, {}))
        params.update(overrides or {})
        cls = self.estimator_class()
        accepted = cls().get_params()
        if self.sensitive and attribute is not None and "attributes" in accepted:
            params.setdefault("attributes", [attribute])
        common = {"device": device, "random_state": random_state, "verbose": verbose}
        params = {**{k: v for k, v in common.items() if k in accepted}, **params}
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"{self.label}: unknown parameter(s) {unknown}; "
                             f"{cls.__name__} takes {sorted(accepted)}.")
        return cls(**params)


MODELS: dict = {}


def register(spec):
    """Add a :class:`ModelSpec` to :data:`MODELS` (its ``name`` must be new)."""
    if spec.name in MODELS:
        raise ValueError(f"a model named {spec.name!r} is already registered.")
    MODELS[spec.name] = spec
    return spec


_VAE = dict(hidden_dims=(), latent_dim=64, dropout=0.1, beta_cap=0.2, anneal_steps=0,
            batch_size=128, max_iter=30, n_iter_no_change=5, validation_metric="ndcg@20")
_VAE_ML = dict(latent_dim=100, beta_cap=0.8, batch_size=64, weight_decay=1e-4, max_iter=50,
               n_iter_no_change=10, validation_metric="ndcg@10")
_ADV = dict(adversary_input="mean", n_heads=3, adversary_hidden=(32,),
            adversary_learning_rate=1e-2, grad_scale=20.0)
_MF = dict(n_components=32, learning_rate=5e-3, batch_size=1024, max_iter=30)
_MF_GOWALLA = dict(n_components=64, learning_rate=1e-3, batch_size=2048, max_iter=30)
_RLARM = dict(learner="closed_form", max_iter=8, n_iter_no_change=3, adversary_l2=10.0,
              adversary_learning_rate=1e-2, validation_metric="ndcg@20")
_FMS = dict(n_components=32, max_iter=10, batch_size=1024, rating_threshold=None)
_EASE_L2 = {"ml-100k": {"l2": 100.0}, "ml-1m": {"l2": 500.0}, "gowalla": {"l2": 500.0}}
_RLARM_ML = {"ml-100k": {"l2": 100.0}, "ml-1m": {"l2": 500.0, "validation_metric": "ndcg@100"},
             "gowalla": {"l2": 500.0}}

# One line per estimator. Keep the order: closed forms, VAEs, BPR models, FMs, prompts.
register(ModelSpec("ease", "EASE", "skadvrec.linear:EASE", {"l2": 100.0}, _EASE_L2))
register(ModelSpec("ease-ipw", "EASE-IPW", "skadvrec.linear:EASEIPW", {"l2": 100.0, "beta": 0.5},
                   _EASE_L2))
register(ModelSpec("arm", "ARM", "skadvrec.linear:ARM", {"l2": 100.0, **_RLARM}, _RLARM_ML))
register(ModelSpec("rlarm", "R-LARM(NN)", "skadvrec.linear:RLARM",
                   {"l2": 100.0, "adversary": "mlp", "hidden_size": 8, **_RLARM}, _RLARM_ML))
register(ModelSpec("multvae", "MultVAE", "skadvrec.vae:MultVAE", _VAE,
                   {"ml-1m": _VAE_ML, "ml-100k": _VAE_ML}))
register(ModelSpec("advxmultvae", "AdvXMultVAE", "skadvrec.vae:AdvXMultVAE", {**_VAE, **_ADV},
                   {"ml-1m": {**_VAE_ML, "grad_scale": 50.0, "n_heads": 10,
                              "adversary_hidden": (64,)},
                    "ml-100k": {**_VAE_ML, "grad_scale": 50.0}}, sensitive=True))
register(ModelSpec("bprmf", "BPR-MF", "skadvrec.cf:BPRMF", _MF, {"gowalla": _MF_GOWALLA}))
register(ModelSpec("lightgcn", "LightGCN", "skadvrec.cf:LightGCN", {**_MF, "n_layers": 2},
                   {"gowalla": {**_MF_GOWALLA, "n_layers": 3}}))
register(ModelSpec("apr", "APR", "skadvrec.cf:APR", {**_MF, "eps": 0.3},
                   {"gowalla": {**_MF_GOWALLA, "eps": 0.3}}))
register(ModelSpec("pamacf", "PamaCF", "skadvrec.cf:PamaCF", {**_MF, "rho": 0.3},
                   {"gowalla": {**_MF_GOWALLA, "rho": 0.3}}))
register(ModelSpec("fm", "FM", "skadvrec.fm:FM", _FMS))
register(ModelSpec("advfm", "AdvFM", "skadvrec.fm:AdvFM", _FMS))
register(ModelSpec("aafm", "AAFM", "skadvrec.fm:AAFM", _FMS))
# the prompt family (needs the 'prompt' extra): a tiny T5 so the whole job stays fast on a CPU
_P5 = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_iter=3, max_targets_per_user=3,
           early_stopping=False, learning_rate=5e-3)
register(ModelSpec("p5", "P5", "skadvrec.prompt:P5Recommender", _P5))
register(ModelSpec("cfp", "CFP", "skadvrec.prompt:CFP",
                   dict(backbone=_P5, prefix_length=4, prefix_hidden=32, max_iter=1,
                        max_targets_per_user=3, discriminator_weight=10.0), sensitive=True))


# -- configuration ------------------------------------------------------------------------------

@dataclass
class BenchmarkConfig:
    """Everything that decides a benchmark run (the CLI's options; a TOML file's keys)."""

    dataset: str = "synthetic"
    data_home: str | None = None
    download: bool = False
    models: tuple = ()            # () = every registered model
    device: str = "auto"
    seeds: tuple = (0,)
    k: int = 20
    q: float = 0.2
    attacks: tuple = ("random",)
    n_fake_users: float = 0.02
    n_targets: int = 5
    test_size: float = 0.2
    n_users: int = 2000
    n_items: int = 500
    attribute_signal: float = 0.6
    threads: int = 0              # 0: 1 thread on the synthetic data, torch's default otherwise
    verbose: bool = False
    params: dict = field(default_factory=dict)

    def model_names(self):
        return list(self.models) if self.models else list(MODELS)

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in dc_fields(self)}


# -- data --------------------------------------------------------------------------------------

def load_dataset(name="synthetic", *, data_home=None, download=False, n_users=2000, n_items=500,
                 attribute_signal=0.6, random_state=0):
    """The benchmark's user × item matrix, protected attribute and description.

    Returns
    -------
    dict with ``X`` (CSR, binary), ``S`` (DataFrame with one column, aligned with X's rows),
    ``attribute`` (its name), ``protected`` (False when the groups are not a protected
    attribute, so leakage is not measured) and ``description``.
    """
    if name == "synthetic":
        from ..datasets import make_interactions

        d = make_interactions(n_users=n_users, n_items=n_items, density=0.04,
                              group_weights=[0.7, 0.3], attribute_signal=attribute_signal,
                              random_state=random_state)
        S = d.sensitive_features[["group"]].reset_index(drop=True)
        desc = (f"synthetic (make_interactions: groups g0/g1 70/30, attribute_signal="
                f"{attribute_signal:g}, random_state={random_state})")
        return dict(X=d.X, S=S, attribute="group", protected=True, description=desc)
    if name in ("ml-100k", "ml-1m"):
        from ..datasets import load_movielens
        from ..preprocessing import filter_interactions, to_user_item_matrix

        ml = load_movielens(name[3:], data_home=data_home, download=download)
        liked = filter_interactions(ml.interactions, min_rating=4, min_user_interactions=5)
        X, user_ids, _ = to_user_item_matrix(liked)
        S = ml.users.loc[user_ids, ["gender"]].reset_index(drop=True)
        S["gender"] = S["gender"].astype("category")
        desc = f"MovieLens {name[3:].upper()} (ratings >= 4, users with >= 5 positives)"
        return dict(X=X, S=S, attribute="gender", protected=True, description=desc)
    if name == "gowalla":
        from ..datasets import load_lightgcn_split

        g = load_lightgcn_split("gowalla", data_home=data_home, download=download)
        X = (g.train + g.test).tocsr()
        X.data[:] = 1.0
        X = X[np.diff(X.indptr) >= 2]
        counts = np.diff(X.indptr)
        S = pd.DataFrame({"activity": pd.Categorical(
            np.where(counts > np.median(counts), "heavy", "light"))})
        desc = ("Gowalla (LightGCN split, train + test as one matrix; groups: light / heavy "
                "users by activity, no protected attribute)")
        return dict(X=X, S=S, attribute="activity", protected=False, description=desc)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}.")


def _make_attack(kind, cfg, seed):
    from ..attacks import BandwagonAttack, PopularAttack, RandomAttack

    cls = {"random": RandomAttack, "bandwagon": BandwagonAttack, "popular": PopularAttack}[kind]
    return cls(n_targets=cfg.n_targets, n_fake_users=cfg.n_fake_users, random_state=seed)


# -- one run -----------------------------------------------------------------------------------

def _fit(est, X, S, spec):
    if spec.sensitive:
        return est.fit(X, sensitive_features=S)
    return est.fit(X)


def _leakage(est, X_te, S_te, X_tr, S_tr, attribute, seed):
    from sklearn.linear_model import LogisticRegression

    from ..metrics import attribute_leakage

    rng = np.random.RandomState(seed)
    sub = np.sort(rng.permutation(X_tr.shape[0])[:2000])
    attacker = LogisticRegression(class_weight="balanced", C=1.0, max_iter=500)
    table = attribute_leakage(est, X_te, S_te[[attribute]], X_train=X_tr[sub],
                              sensitive_features_train=S_tr[[attribute]].iloc[sub],
                              attributes=[attribute], attacker=attacker, n_bootstraps=0,
                              random_state=seed)
    return float(table["balanced_accuracy"].iloc[0])


def _quiet(notes, what, fn, *args, **kwargs):
    """Run ``fn`` with warnings caught; a ConvergenceWarning (a collapsed or diverging fit)
    becomes a note of the run, the other warnings are dropped."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    for w in caught:
        text = f"{what}: {w.category.__name__}: {str(w.message)[:120]}"
        if issubclass(w.category, ConvergenceWarning) and text not in notes:
            notes.append(text)
    return result


def _short(exc):
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


def _seed_runs(cfg, data, seed, names, bar):
    """All models of one seed; returns one dict per model."""
    from ..linear import EASE
    from ..metrics import target_hit_ratio, underserved_uplift
    from ..model_selection import UserHoldout

    X, S, attr = data["X"], data["S"], data["attribute"]
    tr, te = next(UserHoldout(test_size=cfg.test_size, random_state=seed).split(X))
    X_tr, X_te = X[tr], X[te]
    S_tr, S_te = S.iloc[tr].reset_index(drop=True), S.iloc[te].reset_index(drop=True)
    ndcg, recall = f"ndcg@{cfg.k}", f"recall@{cfg.k}"
    uplift_metric = f"ndcg@{min(100, X.shape[1])}"
    ref_params = dict(MODELS["ease"].params)
    ref_params.update(MODELS["ease"].sized.get(cfg.dataset, {}))
    ref_params.update(cfg.params.get("ease", {}))
    try:
        reference = EASE(device=cfg.device, **ref_params).fit(X_tr)
        ref_error = None
    except Exception as exc:  # e.g. EASE does not fit in memory (Gowalla on a CPU)
        reference, ref_error = None, f"uplift: EASE reference failed ({_short(exc)})"
    poisoned = {}
    for kind in cfg.attacks:
        attack = _make_attack(kind, cfg, seed)
        Xp = attack.fit_transform(X_tr)
        fake = pd.DataFrame({attr: pd.Categorical([None] * attack.n_fake_users_,
                                                  categories=S[attr].cat.categories)})
        Sp = pd.concat([S_tr, fake], ignore_index=True)
        poisoned[kind] = (attack, Xp, Sp)
    out = []
    for name in names:
        spec = MODELS[name]
        base = {"model": spec.label, "name": name, "family": spec.family, "seed": seed,
                "dataset": cfg.dataset}
        notes = [] if ref_error is None else [ref_error]
        bar.set_postfix_str(f"seed {seed} {spec.label}")
        if spec.sensitive and not data["protected"]:
            out.append({**base, "error": "skipped: needs a protected attribute, and "
                                         f"{cfg.dataset} has none"})
            bar.update(1)
            continue
        kw = dict(device=cfg.device, random_state=seed, verbose=cfg.verbose,
                  overrides=cfg.params.get(name), attribute=attr)
        row = dict(base)
        try:
            est = spec.build(cfg.dataset, **kw)
            t0 = time.perf_counter()
            _quiet(notes, "fit", _fit, est, X_tr, S_tr, spec)
            row["fit_s"] = time.perf_counter() - t0
            vals, rows = _quiet(notes, "evaluate", est.evaluate, X_te, [ndcg, recall])
        except Exception as exc:
            out.append({**base, "error": _short(exc)})
            bar.update(1)
            continue
        row[ndcg] = float(np.nanmean(vals[ndcg]))
        row[recall] = float(np.nanmean(vals[recall]))
        groups = S_te[attr].iloc[rows].to_numpy()
        means = pd.Series(vals[ndcg]).groupby(groups, observed=True).mean().dropna()
        row["gap"] = float(means.max() - means.min()) if len(means) >= 2 else math.nan
        for g, v in means.items():
            row[f"{ndcg} {g}"] = float(v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if reference is not None:
                try:
                    curve = underserved_uplift(est, reference, X_te, q=[cfg.q],
                                               metric=uplift_metric,
                                               selection_random_state=10_000 + seed)
                    row["uplift"] = float(curve["relative_change"].iloc[0])
                except Exception as exc:
                    notes.append(f"uplift: {_short(exc)}")
            if data["protected"]:
                try:
                    row["leakage"] = _leakage(est, X_te, S_te, X_tr, S_tr, attr, seed)
                except Exception as exc:
                    notes.append(f"leakage: {_short(exc)}")
            for kind, (attack, Xp, Sp) in poisoned.items():
                try:
                    est_p = spec.build(cfg.dataset, **kw)
                    _quiet(notes, f"fit under {kind} attack", _fit, est_p, Xp, Sp, spec)
                    row[f"t-hr@50 {kind}"] = float(target_hit_ratio(
                        est_p, X_te, attack.target_items_, k=min(50, X.shape[1])))
                except Exception as exc:
                    notes.append(f"{kind} attack: {_short(exc)}")
        if notes:
            row["error"] = "; ".join(notes)
        out.append(row)
        bar.update(1)
    return out


def run_benchmark(cfg, *, progress=True):
    """Run every (seed, model) of ``cfg``; one row per run.

    Parameters
    ----------
    cfg : BenchmarkConfig
    progress : bool, default=True
        A tqdm bar over the runs (on stderr).

    Returns
    -------
    runs : DataFrame
        One row per model and seed: ``model``, ``name``, ``family``, ``seed``, ``fit_s``,
        ``ndcg@k``, ``recall@k``, ``gap`` and the per-group NDCG@k, ``leakage``, ``uplift``,
        ``t-hr@50 <attack>`` and ``error`` (what failed or was skipped, if anything).
    info : dict
        The data's description and shape, the device, versions and the wall time.
    """
    import torch
    from tqdm.auto import tqdm

    from .._torch import resolve_device

    names = cfg.model_names()
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose among {list(MODELS)}.")
    t0 = time.perf_counter()
    data = load_dataset(cfg.dataset, data_home=cfg.data_home, download=cfg.download,
                        n_users=cfg.n_users, n_items=cfg.n_items,
                        attribute_signal=cfg.attribute_signal)
    X = data["X"]
    rows = []
    threads = cfg.threads or (1 if cfg.dataset == "synthetic" else torch.get_num_threads())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tqdm(total=len(cfg.seeds) * len(names), desc="benchmark", unit="run",
                  disable=not progress, leave=False) as bar:
            for seed in cfg.seeds:
                rows.extend(_seed_runs(cfg, data, int(seed), names, bar))
    finally:
        torch.set_num_threads(before)
    import sklearn

    info = {
        "description": data["description"], "attribute": data["attribute"],
        "protected": data["protected"], "n_users": X.shape[0], "n_items": X.shape[1],
        "n_interactions": int(X.nnz), "n_test": round(cfg.test_size * X.shape[0])
        if cfg.test_size < 1 else int(cfg.test_size),
        "device": str(resolve_device(cfg.device)), "torch": torch.__version__,
        "sklearn": sklearn.__version__, "python": platform.python_version(),
        "cpu": platform.machine(), "threads": threads,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_s": time.perf_counter() - t0,
    }
    runs = pd.DataFrame(rows)
    if "error" not in runs.columns:
        runs["error"] = None
    return runs, info


# -- the table ---------------------------------------------------------------------------------

def _value_columns(cfg):
    cols = [(f"ndcg@{cfg.k}", f"NDCG@{cfg.k} ↑"), (f"recall@{cfg.k}", f"Recall@{cfg.k} ↑"),
            ("gap", "group gap ↓"), ("leakage", "leakage BAcc ↓"),
            ("uplift", f"bottom-{cfg.q:.0%} uplift ↑")]
    cols += [(f"t-hr@50 {a}", f"T-HR@50 {a} ↓") for a in cfg.attacks]
    cols.append(("fit_s", "fit s"))
    return cols


def summarize(runs, cfg):
    """Mean and standard deviation over seeds, one row per model (registry order)."""
    cols = [c for c, _ in _value_columns(cfg)]
    extra = sorted(c for c in runs.columns if c.startswith(f"ndcg@{cfg.k} "))
    keep = [c for c in cols + extra if c in runs.columns]
    order = {n: i for i, n in enumerate(cfg.model_names())}
    g = runs.groupby("name", sort=False)
    mean = g[keep].mean() if keep else pd.DataFrame(index=g.size().index)
    std = g[keep].std(ddof=0) if keep else pd.DataFrame(index=g.size().index)
    summary = mean.join(std.add_suffix(" std"))
    summary.insert(0, "family", g["family"].first())
    summary.insert(0, "model", g["model"].first())
    summary["seeds"] = g["seed"].nunique()
    errors = g["error"].agg(lambda s: "; ".join(sorted({str(e) for e in s if isinstance(e, str)
                                                         and e})))
    summary["notes"] = errors
    summary = summary.loc[sorted(summary.index, key=order.get)]
    return summary


def _cell(mean, std, digits):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and (math.isnan(std) or std == 0)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_table(summary, cfg, *, markdown=True):
    """The summary as a Markdown (or plain, aligned) table; notes follow as footnotes."""
    cols = _value_columns(cfg)
    header = ["model", "family"] + [label for _, label in cols]
    body, notes = [], []
    for _, r in summary.iterrows():
        multi = r.get("seeds", 1) > 1
        cells = [str(r["model"]), str(r["family"])]
        for c, _ in cols:
            digits = 1 if c == "fit_s" else (3 if c in ("leakage", "uplift") else 4)
            m = r.get(c, math.nan)
            s = r.get(f"{c} std", math.nan) if multi else math.nan
            if c == "uplift" and isinstance(m, float) and not math.isnan(m):
                cells.append(_cell(100 * m, 100 * s if not math.isnan(s) else s, 1) + " %")
            else:
                cells.append(_cell(m, s, digits))
        if r.get("notes"):
            notes.append(f"{r['model']}: {r['notes']}")
            cells[0] += f" [{len(notes)}]"
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        widths = [max(len(h), *(len(row[j]) for row in body)) if body else len(h)
                  for j, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    lines += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def legend(cfg, info):
    """What the columns mean, for the printed table and results.md."""
    attr = info["attribute"]
    nf = cfg.n_fake_users
    fake = (f"fake users ({nf:.0%} of the training users)" if nf < 1
            else f"{int(nf)} fake users")
    leak = (f"leakage BAcc = balanced accuracy of a logistic-regression attacker predicting "
            f"{attr!r} from transform(X) of held-out users (trained on training users; 0.5 = "
            "chance for two groups)") if info["protected"] else (
        "leakage: not measured (the dataset has no protected attribute)")
    return "\n".join([
        f"data: {info['description']}: {info['n_users']:,} users x {info['n_items']:,} items, "
        f"{info['n_interactions']:,} interactions; {info['n_test']:,} held-out users per seed "
        f"(80/20 fold-in); seeds {', '.join(map(str, cfg.seeds))}; device {info['device']}",
        f"group gap = best - worst group mean of NDCG@{cfg.k} over {attr!r}; " + leak,
        f"bottom-{cfg.q:.0%} uplift = relative NDCG@{min(100, info['n_items'])} change "
        f"against an EASE reference on the held-out users in EASE's bottom {cfg.q:.0%}, "
        "selected on an independent fold-in split (no regression-to-the-mean bias)",
        f"T-HR@50 <attack> = share of held-out users with a target item in their top 50 after "
        f"{fake} promoted {cfg.n_targets} unpopular items "
        "(fitted again on the poisoned training users)",
        "↑ higher is better, ↓ lower is better; mean ± std over seeds",
    ])


# -- files -------------------------------------------------------------------------------------

def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v) if isinstance(v, int) or math.isfinite(v) else f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_toml(cfg):
    """``cfg`` as a TOML file that ``skadvrec benchmark --config`` reads back."""
    lines = ["# skadvrec benchmark configuration (skadvrec benchmark --config this_file)"]
    d = cfg.as_dict()
    params = d.pop("params")
    d["models"] = cfg.model_names()
    for key, v in d.items():
        if v is None:
            continue
        lines.append(f"{key} = {_toml_value(v)}")
    for name, p in params.items():
        lines.append(f"\n[params.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in p.items()]
    return "\n".join(lines) + "\n"


def write_outputs(out, runs, summary, cfg, info):
    """Write ``runs.csv``, ``summary.csv``, ``results.md``, ``config.toml`` and PNG plots.

    The plots need matplotlib (the ``plot`` extra); without it the tables are still written and
    the returned list says the plots were skipped.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv")
    md = [f"# skadvrec benchmark: {cfg.dataset}", "", format_table(summary, cfg), "",
          *[f"- {line}" for line in legend(cfg, info).splitlines()],
          f"- {info['date']}; torch {info['torch']}, scikit-learn {info['sklearn']}, "
          f"Python {info['python']}, {info['cpu']} with {info['threads']} threads; wall time "
          f"{info['wall_s']:.0f} s", ""]
    (out / "results.md").write_text("\n".join(md), encoding="utf-8")
    (out / "config.toml").write_text(config_toml(cfg), encoding="utf-8")
    written += [out / n for n in ("runs.csv", "summary.csv", "results.md", "config.toml")]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    from ..plot import plot_attack_heatmap, plot_tradeoff

    acc = f"ndcg@{cfg.k}"
    table = summary.set_index("model")
    for col, fname in (("gap", "tradeoff_gap.png"), ("leakage", "tradeoff_leakage.png")):
        if col in table.columns and table[[acc, col]].notna().all(axis=1).sum() >= 1:
            sub = table[[acc, col]].dropna()
            ax = plot_tradeoff(sub, acc, col, maximize=(True, False))
            ax.set_title(f"{cfg.dataset}: accuracy vs {col} (Pareto front in red)",
                         fontsize=10)
            ax.figure.tight_layout()
            ax.figure.savefig(out / fname, dpi=120)
            plt.close(ax.figure)
            written.append(out / fname)
    thr = [f"t-hr@50 {a}" for a in cfg.attacks if f"t-hr@50 {a}" in table.columns]
    if thr:
        wide = table[thr].dropna(how="all").rename(columns=lambda c: c.split(" ", 1)[1])
        if len(wide):
            wide.index.name, wide.columns.name = "model", "attack"
            ax = plot_attack_heatmap(wide, value="T-HR@50")
            ax.set_title(f"{cfg.dataset}: T-HR@50 of the targets\n(lower is more robust)",
                         fontsize=10)
            ax.figure.tight_layout()
            ax.figure.savefig(out / "robustness.png", dpi=120)
            plt.close(ax.figure)
            written.append(out / "robustness.png")
    return written

