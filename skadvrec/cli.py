"""Command line: ``python -m skadvrec`` (or ``skadvrec``).

``skadvrec demo`` (the default) fits EASE and EASE-IPW on the embedded synthetic data with the
held-out-user protocol and prints their metrics; no download and no GPU needed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(args):
    from .datasets import make_interactions
    from .linear import EASE, EASEIPW
    from .metrics import metric_by_group
    from .model_selection import split_users

    d = make_interactions(n_users=args.n_users, n_items=args.n_items, density=0.08,
                          group_weights=[0.7, 0.3], random_state=args.seed)
    X, S = d.X, d.sensitive_features
    train, _, test = split_users(X.shape[0], n_validation=1, n_test=0.2, random_state=args.seed)
    print(f"synthetic data: {X.shape[0]} users x {X.shape[1]} items, {X.nnz} interactions; "
          f"{len(train)} training users, {len(test)} held-out users (80/20 fold-in)")
    metrics = ["ndcg@20", "recall@20", "ndcg@100", "auc"]
    print(f"{'model':<22}" + "".join(f"{m:>11}" for m in metrics) + f"{'ndcg@20 gap':>13}"
          + f"{'fit s':>8}")
    for name, model in [("EASE l2=100", EASE(l2=100.0, device=args.device)),
                        ("EASE-IPW l2=100 b=0.5", EASEIPW(l2=100.0, beta=0.5,
                                                          device=args.device))]:
        t0 = time.perf_counter()
        model.fit(X[train])
        fit_s = time.perf_counter() - t0
        vals, _ = model.evaluate(X[test], metrics)
        by_group = metric_by_group(model, X[test], S.iloc[test], "ndcg@20", attribute="group")
        gap = by_group["mean"].max() - by_group["mean"].min()
        print(f"{name:<22}" + "".join(f"{np.nanmean(vals[m]):>11.4f}" for m in metrics)
              + f"{gap:>13.4f}{fit_s:>8.3f}")
    print(f"device: {model.device_}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skadvrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="fit EASE on embedded synthetic data and print metrics")
    for p in (parser, demo):
        p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' (default auto)")
        p.add_argument("--n-users", type=int, default=2000)
        p.add_argument("--n-items", type=int, default=500)
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return _demo(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
