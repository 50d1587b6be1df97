"""Epoch time of FM and AAFM on ML-100K at one CPU thread, by wall clock and by CPU time.

1. RecBole's setting (the speed issue's peer figure: RecBole 1.2.1's FM, embedding 10, one
   thread, 0.233 s per epoch on ML-100K): token fields user, item, age, gender, occupation,
   release year (no genres: RecBole's token_seq field fails under pandas 3), 80 % of the
   ratings at random as training rows (RecBole's default 8:1:1 split), batch 2048 (its default
   train_batch_size), label rating >= 4. Our FM and AAFM with ``n_components=10``.
2. The package defaults on the AAFM protocol's training rows (k = 32, batch 1024, genres).

In each setting FM and AAFM are fitted alternately, ``--rounds`` times each (seeds 0, 1, ...),
in one process, so that both see the same machine load. Each fit runs ``--epochs`` epochs; the
first epoch of a fit (warm-up; AAFM's clean epoch) is not counted, nor AAFM's clean epochs.
Every epoch is timed by wall clock (the fit's ``history_``) and by the process's CPU time
(``time.process_time``, which a busy machine inflates less: the figure to compare on a shared
machine). Reported: medians over the counted epochs, and the AAFM / FM ratio of the medians.

    nice python benchmarks/fm_speed.py --rounds 5

The load average of the machine is printed: absolute times are only comparable at equal load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from _common import timed_epochs
from fm_ml100k import first_item_split

from skadvrec.datasets import load_movielens_features
from skadvrec.fm import AAFM, FM


def timed_fit(model, X):
    """Fit ``model`` on X; returns (wall, cpu) seconds of its counted epochs (see above)."""
    if isinstance(model, AAFM):
        return timed_epochs(model, X, lambda h: h["epoch"] > 1 and h.get("adversarial") is not None)
    return timed_epochs(model, X, lambda h: h["epoch"] > 1)


def compare(X, rounds, epochs, **params):
    """Median (wall, cpu) epoch seconds of FM and AAFM fitted alternately."""
    out = {"FM": ([], []), "AAFM": ([], [])}
    for seed in range(rounds):
        for name, cls in (("FM", FM), ("AAFM", AAFM)):
            wall, cpu = timed_fit(cls(max_iter=epochs, early_stopping=False, random_state=seed,
                                      device="cpu", **params), X)
            out[name][0].extend(wall)
            out[name][1].extend(cpu)
    return {name: (float(np.median(w)), float(np.median(c)), len(w))
            for name, (w, c) in out.items()}


def report(title, res):
    fm, aafm = res["FM"], res["AAFM"]
    print(f"{title}\n  FM epoch    wall {fm[0]:.3f} s  cpu {fm[1]:.3f} s  (n={fm[2]})\n"
          f"  AAFM adv.   wall {aafm[0]:.3f} s  cpu {aafm[1]:.3f} s  (n={aafm[2]})\n"
          f"  AAFM / FM   wall {aafm[0] / fm[0]:.2f}  cpu {aafm[1] / fm[1]:.2f}  (target <= 2.5)\n"
          f"  load average {os.getloadavg()[0]:.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, "
          f"1 thread, {platform.processor() or platform.machine()}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    X = load_movielens_features("100k")
    rng = np.random.default_rng(0)
    rows = X.iloc[np.sort(rng.permutation(len(X))[: int(0.8 * len(X))])]
    recbole_like = rows[["user", "item", "rating", "age", "gender", "occupation", "year"]]
    report(f"RecBole's setting ({len(recbole_like)} rows, 6 token fields, k=10, batch 2048; "
           "RecBole 1.2.1 figure 0.233 s)",
           compare(recbole_like, args.rounds, args.epochs, n_components=10, batch_size=2048))
    train, _ = first_item_split(X)
    report(f"package defaults on the AAFM protocol's {len(train)} training rows (k=32, "
           "batch 1024, genres)", compare(train, args.rounds, args.epochs))


if __name__ == "__main__":
    main()
