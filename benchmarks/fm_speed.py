"""Epoch time of FM and AAFM on ML-100K at one CPU thread.

1. RecBole's setting (the speed issue's peer figure: RecBole 1.2.1's FM, embedding 10, one
   thread, 0.233 s per epoch on ML-100K): token fields user, item, age, gender, occupation,
   release year (no genres: RecBole's token_seq field fails under pandas 3), 80 % of the
   ratings at random as training rows (RecBole's default 8:1:1 split), batch 2048 (its default
   train_batch_size), label rating >= 4. Our FM with ``n_components=10``.
2. The package defaults on the AAFM protocol's training rows: FM vs AAFM epochs (AAFM's
   adversarial epochs only), run alternately in one process so that both see the same load.

    nice python benchmarks/fm_speed.py

The load average of the machine is printed: the figures are only comparable at equal load.
"""

from __future__ import annotations

import os
import platform

import numpy as np
import torch
from fm_ml100k import first_item_split

from skadvrec.datasets import load_movielens_features
from skadvrec.fm import AAFM, FM


def epoch_seconds(model, skip_first=True):
    hist = [h for h in model.history_ if h["epoch"] > (1 if skip_first else 0)]
    if isinstance(model, AAFM):
        hist = [h for h in hist if h.get("adversarial") is not None]
    return [h["seconds"] for h in hist]


def main():
    torch.set_num_threads(1)
    print(f"# FM epoch time, torch {torch.__version__}, 1 thread, "
          f"{platform.processor() or platform.machine()}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    X = load_movielens_features("100k")
    rng = np.random.default_rng(0)
    rows = X.iloc[np.sort(rng.permutation(len(X))[: int(0.8 * len(X))])]
    recbole_like = rows[["user", "item", "rating", "age", "gender", "occupation", "year"]]
    times = []
    for seed in range(3):
        fm = FM(n_components=10, batch_size=2048, max_iter=4, early_stopping=False,
                random_state=seed, device="cpu").fit(recbole_like)
        times += epoch_seconds(fm)
    print(f"RecBole-like FM (80,000 rows, 6 token fields, k=10, batch 2048): "
          f"median epoch {np.median(times):.3f} s (min {np.min(times):.3f}, n={len(times)}); "
          "RecBole 1.2.1 figure 0.233 s")

    train, _ = first_item_split(X)
    fm_t, aafm_t = [], []
    for seed in range(3):
        fm = FM(max_iter=4, early_stopping=False, random_state=seed, device="cpu").fit(train)
        fm_t += epoch_seconds(fm)
        aafm = AAFM(max_iter=4, early_stopping=False, random_state=seed, device="cpu").fit(train)
        aafm_t += epoch_seconds(aafm)
    print(f"defaults on {len(train)} rows (k=32, batch 1024): FM median epoch "
          f"{np.median(fm_t):.3f} s, AAFM adversarial epoch {np.median(aafm_t):.3f} s, "
          f"ratio {np.median(aafm_t) / np.median(fm_t):.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
