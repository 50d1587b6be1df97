"""Our estimators side by side with RecBole 1.2.1 and implicit, same matrices, same process.

For each thread count (default 1 and 2: ``torch.set_num_threads`` plus threadpoolctl for
BLAS, and implicit's ``num_threads``) the figures below are timed with ours and the peer
alternating (ours, peer, ours, peer, ...; best of --repeat), and the table prints
ratio = peer time / our time (above 1: we are faster):

* EASE fit, ML-1M (ratings >= 4, 5-core), λ = 500: ``EASE.fit`` vs RecBole's ``EASE(config,
  dataset)`` (its fit is its constructor: a float32 ``np.linalg.inv``).
* MultVAE epoch, ML-1M, batches of 500 users: ``MultVAE(max_iter=2).fit`` (the second epoch) vs
  RecBole's ``MultiVAE.calculate_loss`` + Adam on the same user batches.
* BPR-MF epoch, Gowalla (LightGCN split), dim 64, batch 2048: ``BPRMF`` (sampling included) vs
  RecBole's ``BPR.calculate_loss`` + Adam on our sampled triples (its sampler not counted) and
  implicit's ``BayesianPersonalizedRanking`` (one iteration, its own sampling, C++/OpenMP).
* Full-ranking evaluation of the 29,858 Gowalla test users (Recall@20 + NDCG@20, training items
  masked): ``BPRMF.evaluate`` vs a bare torch loop (score, mask, top-k, hits; no checks) and
  RecBole's path (``full_sort_predict`` per batch of users, our masking and top-k, then RecBole's
  own ``Recall`` / ``NDCG`` metric code on the hit matrix).
* LightGCN step, Gowalla, 3 layers: --lightgcn-steps steps of ``LightGCN`` (its training loop
  cut short) vs RecBole's ``LightGCN.calculate_loss`` + Adam on the same triples; epoch =
  396 steps.
* Any module ``benchmarks/peers/<name>.py`` defining ``run(threads, repeat)`` adds its rows
  (dicts with keys figure, peer, peer_s, ours_s), e.g. the FM comparison.

    SKADVREC_DATA=../shared/data python benchmarks/peers/run.py [--threads 1 2] [--repeat 2]
        [--only ease multvae bpr eval lightgcn fm]
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import _recbole as rb  # noqa: E402  (applies the shims)
from _common import header, print_table  # noqa: E402
from skadvrec.cf import BPRMF, LightGCN  # noqa: E402
from skadvrec.datasets import load_lightgcn_split  # noqa: E402
from skadvrec.linear import EASE  # noqa: E402
from skadvrec.vae import MultVAE  # noqa: E402

CORE = {"run", "_recbole", "_shims", "__init__"}


def best(fn, repeat):
    t = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def alternate(ours, peer, repeat):
    """Best times of ``ours`` and ``peer``, called in turn ``repeat`` times each."""
    to, tp = np.inf, np.inf
    for _ in range(repeat):
        to = min(to, best(ours, 1))
        tp = min(tp, best(peer, 1))
    return to, tp


def adam_steps(model, batches, loss_of, lr=1e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for b in batches:
        opt.zero_grad(set_to_none=True)
        loss_of(model, b).backward()
        opt.step()


class _ShortLightGCN(LightGCN):
    """LightGCN whose epoch is cut to ``n_steps`` batches (timing only)."""

    n_steps = 20

    def _init_model(self, *args):
        n = super()._init_model(*args)
        self._tr.n = min(n, self.n_steps * int(self.batch_size))
        return self._tr.n


def ml1m_matrix():
    from advxmultvae_ml1m import load

    return load()[0]


def bare_eval(U, V, train, test, k=20, bs=2048):
    """Recall@20 / NDCG@20 with a plain torch loop (the evaluation floor)."""
    rec, nd = [], []
    disc = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))
    users = np.flatnonzero(np.diff(test.indptr))
    for a in range(0, len(users), bs):
        u = torch.from_numpy(users[a:a + bs])
        s = U[u] @ V.T
        c = train[users[a:a + bs]].tocoo()
        s[torch.from_numpy(c.row).long(), torch.from_numpy(c.col).long()] = -torch.inf
        top = s.topk(k, dim=1).indices
        T = torch.from_numpy(test[users[a:a + bs]].toarray()).bool()
        hit = T.gather(1, top).float()
        n_pos = T.sum(1).float()
        rec.append(hit.sum(1) / n_pos)
        idcg = torch.cumsum(disc, 0)[(n_pos.clamp(max=k) - 1).long()]
        nd.append((hit * disc).sum(1) / idcg)
    return float(torch.cat(rec).mean()), float(torch.cat(nd).mean())


def recbole_eval(model, train, test, k=20, bs=2048):
    """RecBole's scoring (full_sort_predict) and metric code (Recall, NDCG) on our masks."""
    from recbole.evaluator.metrics import NDCG, Recall

    cfg = {"topk": [k], "metric_decimal_place": 4}
    recall, ndcg = Recall(cfg), NDCG(cfg)
    users = np.flatnonzero(np.diff(test.indptr))
    out_r, out_n = [], []
    model.eval()
    with torch.no_grad():
        for a in range(0, len(users), bs):
            ub = users[a:a + bs]
            s = model.full_sort_predict(rb.interaction(user_id=torch.from_numpy(ub)))
            s = s.view(len(ub), -1)[:, 1:]
            c = train[ub].tocoo()
            s[torch.from_numpy(c.row).long(), torch.from_numpy(c.col).long()] = -torch.inf
            top = s.topk(k, dim=1).indices.numpy()
            T = test[ub]
            pos = np.take_along_axis(T.toarray() > 0, top, axis=1)
            pos_len = np.diff(T.indptr)
            out_r.append(recall.metric_info(pos, pos_len)[:, -1])
            out_n.append(ndcg.metric_info(pos, pos_len)[:, -1])
    return float(np.concatenate(out_r).mean()), float(np.concatenate(out_n).mean())


FIGURES = ("ease", "multvae", "bpr", "eval", "lightgcn")


def figures(threads, repeat, g, X1m, n_lgcn, only=FIGURES):
    """The rows of the figures named in ``only`` (a subset of FIGURES)."""
    rows = []
    if "ease" in only:
        rows += _ease_rows(repeat, X1m)
    if "multvae" in only:
        rows += _multvae_rows(repeat, X1m)
    if "bpr" in only or "eval" in only or "lightgcn" in only:
        # BPR-MF's triples feed RecBole's BPR and LightGCN; its fitted model, the evaluation
        rows += _bpr_eval_lightgcn_rows(threads, repeat, g, n_lgcn, only)
    return rows


def _ease_rows(repeat, X1m):
    rows = []
    # EASE, ML-1M
    to, tp = alternate(lambda: EASE(l2=500.0, device="cpu").fit(X1m),
                       lambda: rb.model("EASE", X1m, reg_weight=500.0), repeat)
    rows.append(dict(figure="EASE fit, ML-1M, λ 500", peer="RecBole", peer_s=tp, ours_s=to))
    return rows


def _multvae_rows(repeat, X1m):
    rows = []
    # MultVAE epoch, ML-1M, 500 users a batch
    def ours_vae():
        m = MultVAE(max_iter=2, batch_size=500, device="cpu", random_state=0).fit(X1m)
        ours_vae.t = m.history_[-1]["seconds"]
    rv = rb.model("MultiVAE", X1m)
    perm = np.random.default_rng(0).permutation(X1m.shape[0])
    vb = [rb.interaction(user_id=torch.from_numpy(perm[a:a + 500]))
          for a in range(0, len(perm), 500)]
    t_ours, t_peer = np.inf, np.inf
    for _ in range(repeat):
        ours_vae()
        t_ours = min(t_ours, ours_vae.t)
        t_peer = min(t_peer, best(lambda: adam_steps(rv, vb, lambda m, b: m.calculate_loss(b)),
                                  1))
    rows.append(dict(figure=f"MultVAE epoch, ML-1M, {len(vb)} × 500 users", peer="RecBole",
                     peer_s=t_peer, ours_s=t_ours))
    return rows


def _bpr_eval_lightgcn_rows(threads, repeat, g, n_lgcn, only):
    rows = []
    # BPR-MF epoch, Gowalla
    train = g.train
    bpr_models = {}

    def ours_bpr():
        m = BPRMF(max_iter=2, device="cpu", random_state=0).fit(g.train_df)
        bpr_models["ours"] = m
        ours_bpr.t = m.history_[-1]["seconds"]
    from skadvrec._sampling import TripleSampler
    u, i, j = TripleSampler(train, "cpu").sample(train.nnz, torch.Generator().manual_seed(0))
    rbpr = rb.model("BPR", train)
    batches = [rb.interaction(user_id=u[a:a + 2048], item_id=i[a:a + 2048],
                              neg_item_id=j[a:a + 2048]) for a in range(0, len(u), 2048)]
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    def implicit_bpr():
        BayesianPersonalizedRanking(factors=64, iterations=1, num_threads=threads,
                                    random_state=0).fit(train, show_progress=False)
    if "bpr" in only:
        t_ours, t_rb, t_imp = np.inf, np.inf, np.inf
        for _ in range(repeat):
            ours_bpr()
            t_ours = min(t_ours, ours_bpr.t)
            t_rb = min(t_rb, best(lambda: adam_steps(rbpr, batches,
                                                     lambda m, b: m.calculate_loss(b)), 1))
            t_imp = min(t_imp, best(implicit_bpr, 1))
        rows.append(dict(figure="BPR-MF epoch, Gowalla, dim 64, batch 2048", peer="RecBole",
                         peer_s=t_rb, ours_s=t_ours))
        rows.append(dict(figure="BPR-MF epoch, Gowalla, dim 64, batch 2048", peer="implicit",
                         peer_s=t_imp, ours_s=t_ours))
    elif "eval" in only:
        ours_bpr()  # the fitted model the evaluation scores
    if "eval" in only:
        rows += _eval_rows(repeat, g, bpr_models["ours"], rbpr)
    if "lightgcn" in only:
        rows += _lightgcn_rows(repeat, g, n_lgcn, batches)
    return rows


def _eval_rows(repeat, g, m, rbpr):
    rows = []
    train = g.train
    # full-ranking evaluation, Gowalla
    metrics = ["recall_all@20", "ndcg@20"]
    U = m.user_embeddings_
    V = m.item_embeddings_
    # the fitted users in the split's order (the table form codes users by sorted id)
    test = g.test
    with torch.no_grad():
        rbpr.user_embedding.weight[1:] = U
        rbpr.item_embedding.weight[1:] = V
    to, tb = alternate(lambda: m.evaluate(g.test_df, metrics),
                       lambda: bare_eval(U, V, train, test), repeat)
    _, tr_ = alternate(lambda: None, lambda: recbole_eval(rbpr, train, test), repeat)
    ours_vals = m.evaluate(g.test_df, metrics)[0]
    r_bare, r_rb = bare_eval(U, V, train, test), recbole_eval(rbpr, train, test)
    print(f"  eval agreement: ours R@20 {np.nanmean(ours_vals['recall_all@20']):.4f}, bare "
          f"{r_bare[0]:.4f}, RecBole {r_rb[0]:.4f}", flush=True)
    n_test = int((np.diff(test.indptr) > 0).sum())
    rows.append(dict(figure=f"full-ranking eval, {n_test} users", peer="bare torch loop",
                     peer_s=tb, ours_s=to))
    rows.append(dict(figure=f"full-ranking eval, {n_test} users", peer="RecBole",
                     peer_s=tr_, ours_s=to))
    return rows


def _lightgcn_rows(repeat, g, n_lgcn, batches):
    rows = []
    train = g.train
    # LightGCN steps, Gowalla
    _ShortLightGCN.n_steps = n_lgcn

    def ours_lgcn():
        mm = _ShortLightGCN(max_iter=1, device="cpu", random_state=0).fit(g.train_df)
        ours_lgcn.t = mm.history_[-1]["seconds"] / n_lgcn
    rl = rb.model("LightGCN", train, n_layers=3)
    t_ours, t_peer = np.inf, np.inf
    for _ in range(repeat):
        ours_lgcn()
        t_ours = min(t_ours, ours_lgcn.t)
        t_peer = min(t_peer, best(lambda: adam_steps(
            rl, batches[:n_lgcn], lambda mm, b: mm.calculate_loss(b)), 1) / n_lgcn)
    rows.append(dict(figure="LightGCN step, Gowalla, 3 layers", peer="RecBole",
                     peer_s=t_peer, ours_s=t_ours))
    rows.append(dict(figure=f"LightGCN epoch ({len(batches)} steps, from the step)",
                     peer="RecBole", peer_s=t_peer * len(batches),
                     ours_s=t_ours * len(batches)))
    return rows


def plugin_rows(threads, repeat, only):
    rows = []
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        if name in CORE or name.startswith("_") or (only and name not in only):
            continue
        mod = importlib.import_module(name)
        if callable(getattr(mod, "run", None)):
            print(f"  plug-in {name} ...", flush=True)
            rows += mod.run(threads=threads, repeat=repeat)
    return rows


def _smoke_data():
    from types import SimpleNamespace

    from skadvrec.datasets import make_interactions
    from skadvrec.model_selection import InteractionHoldout
    from skadvrec.preprocessing import to_user_item_matrix

    df = make_interactions(n_users=600, n_items=150, density=0.08, random_state=0,
                           return_frame=True).interactions[["user", "item"]]
    tr, te = next(InteractionHoldout(test_size=0.2, random_state=0).split(df))
    train_df, test_df = df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)
    n_u, n_i = df.user.max() + 1, df.item.max() + 1
    import scipy.sparse as sp

    def csr(d):
        return sp.csr_matrix((np.ones(len(d), np.float32), (d.user, d.item)), shape=(n_u, n_i))
    X1m = to_user_item_matrix(df)[0]
    return SimpleNamespace(train=csr(train_df), test=csr(test_df), train_df=train_df,
                           test_df=test_df), X1m


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--lightgcn-steps", type=int, default=10)
    p.add_argument("--smoke", action="store_true",
                   help="synthetic data instead of Gowalla / ML-1M (seconds; checks the script)")
    p.add_argument("--plugins", nargs="*", default=None,
                   help="plug-in modules to run (default: every one found; none: --plugins)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help=f"run only these figures ({', '.join(FIGURES)}) and plug-ins (e.g. fm); "
                        "default: all")
    args = p.parse_args()
    plugins = sorted(q.stem for q in HERE.glob("*.py")
                     if q.stem not in CORE and not q.stem.startswith("_"))
    if args.only is not None:
        unknown = set(args.only) - set(FIGURES) - set(plugins)
        if unknown:
            p.error(f"--only: unknown {sorted(unknown)}; choose from {list(FIGURES) + plugins}")
        only = tuple(n for n in FIGURES if n in args.only)
        chosen = [n for n in plugins if n in args.only]
        if args.plugins is not None:
            chosen = [n for n in chosen if n in args.plugins]
        args.plugins = chosen
    else:
        only = FIGURES
    import implicit
    import recbole

    header("peers: RecBole and implicit beside skadvrec (ratio = peer time / ours)", "cpu")
    print(f"recbole {recbole.__version__}  implicit {implicit.__version__}  "
          f"numpy {np.__version__}")
    if args.smoke:
        g, X1m = _smoke_data()
    else:
        g = (load_lightgcn_split("gowalla") if {"bpr", "eval", "lightgcn"} & set(only)
             else None)
        X1m = ml1m_matrix() if {"ease", "multvae"} & set(only) else None
    table = []
    for t in args.threads:
        torch.set_num_threads(t)
        with threadpool_limits(limits=t):
            print(f"-- {t} thread(s)", flush=True)
            print(f"   load average {os.getloadavg()}", flush=True)
            rows = figures(t, args.repeat, g, X1m, args.lightgcn_steps, only)
            if args.plugins is None or args.plugins:
                rows += plugin_rows(t, args.repeat, args.plugins)
        print(f"   load average {os.getloadavg()}", flush=True)
        for r in rows:
            table.append({"figure": r["figure"], "threads": t, "peer": r["peer"],
                          "peer s": f"{r['peer_s']:.3f}", "ours s": f"{r['ours_s']:.3f}",
                          "ratio": f"{r['peer_s'] / r['ours_s']:.2f}"})
            print(table[-1], flush=True)
    print_table(table, ["figure", "threads", "peer", "peer s", "ours s", "ratio"])


if __name__ == "__main__":
    main()
