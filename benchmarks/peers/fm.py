"""RecBole 1.2.1's FM epoch and ours, side by side in one process on the same rows.

The issue-12 speed figure: ML-100K, token fields user, item, age, gender, occupation, release
year (no genres: RecBole's ``token_seq`` field fails to load under pandas 3), embedding size 10,
batch 2048 (RecBole's ``train_batch_size`` default), label ``rating >= 4`` (RecBole's
``threshold``), RecBole's random 8:1:1 split. RecBole builds its dataset from atomic files
written here from ``load_movielens_features("100k")``; our FM is then fitted on **exactly the
rows of RecBole's training split** (mapped back to the original ids) with ``n_components=10``,
``batch_size=2048``. Each round times one RecBole epoch (``Trainer._train_epoch``: its data
loader, forward, backward, Adam) and then one fit of our FM and one of our AAFM (every epoch
of ``history_``, which times the same work: the shuffle, the batches, the updates; FM's first
epoch and AAFM's clean epoch are not counted); rounds alternate so that all see the same
machine load. Every epoch is timed by wall clock and by the process's CPU time
(``time.process_time``, less inflated by other jobs on a shared machine). Reported: medians
over the rounds.

Run with the peers' interpreter, from the repository root::

    PYTHONPATH=. SKADVREC_DATA=... /work/bin/heavy /work/venv-peers/bin/python benchmarks/peers/fm.py
    PYTHONPATH=. SKADVREC_DATA=... HEAVY_SLOTS=2 /work/bin/heavy /work/venv-peers/bin/python \
        benchmarks/peers/fm.py --threads 2 --rounds 5

Shims (only here, only for RecBole; each needed on this stack: numpy 2, torch >= 2.6,
pandas 3):

* numpy 2 removed ``np.float_`` / ``np.complex_`` / ``np.unicode_`` and the old aliases
  ``np.float``, ``np.int``, ``np.bool`` ...: RecBole's configurator and evaluator read them;
  aliased to the numpy 2 types before RecBole is imported.
* torch 2.6 made ``torch.load(weights_only=True)`` the default, which refuses RecBole's pickled
  configs in its checkpoints: ``weights_only=False`` is restored as the default (this script
  saves no checkpoint, ``saved=False``, so it is a safety net only).
* pandas 3: RecBole's ``token_seq`` fields fail to load; the genre field is left out (above).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import timed_epochs  # noqa: E402
from _shims import apply  # noqa: E402

import numpy as np
import torch

FIELDS = ["age", "gender", "occupation", "year"]


def _write_atomic(X, folder):
    """RecBole's atomic files of the ML-100K table (ids and field values as tokens)."""
    d = Path(folder) / "ml-100k"
    d.mkdir(parents=True, exist_ok=True)
    inter = X[["user", "item", "rating", "timestamp"]]
    with open(d / "ml-100k.inter", "w") as fh:
        fh.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for u, i, r, t in inter.itertuples(index=False):
            fh.write(f"{u}\t{i}\t{r}\t{t}\n")
    users = X.groupby("user")[["age", "gender", "occupation"]].first()
    with open(d / "ml-100k.user", "w") as fh:
        fh.write("user_id:token\tage:token\tgender:token\toccupation:token\n")
        for u, row in users.iterrows():
            fh.write(f"{u}\t{row['age']}\t{row['gender']}\t{row['occupation']}\n")
    items = X.groupby("item")["year"].first()
    with open(d / "ml-100k.item", "w") as fh:
        fh.write("item_id:token\trelease_year:token\n")
        for i, y in items.items():
            fh.write(f"{i}\t{y}\n")


def _recbole(folder, seed):
    """(trainer, train_data, training rows as (user, item) original ids)."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.context_aware_recommender import FM as RecBoleFM
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    config = Config(model="FM", dataset="ml-100k", config_dict={
        "data_path": str(folder), "checkpoint_dir": str(Path(folder) / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "rating"],
                     "user": ["user_id", "age", "gender", "occupation"],
                     "item": ["item_id", "release_year"]},
        "threshold": {"rating": 4}, "embedding_size": 10, "train_batch_size": 2048,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": None,
                      "mode": "labeled"},
        "train_neg_sample_args": None, "metrics": ["AUC"], "valid_metric": "AUC",
        "epochs": 1, "seed": seed, "reproducibility": True, "device": "cpu",
        "use_gpu": False, "show_progress": False, "state": "ERROR", "saved": False})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = RecBoleFM(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    feat = train_data.dataset.inter_feat
    users = dataset.id2token("user_id", feat["user_id"].numpy())
    items = dataset.id2token("item_id", feat["item_id"].numpy())
    return trainer, train_data, users.astype(np.int64), items.astype(np.int64)


def run(threads: int = 1, rounds: int = 7, seed: int = 0, repeat: int | None = None) -> list[dict]:
    """Median epoch seconds of RecBole's FM and ours (FM and AAFM) at ``threads`` threads.

    ``repeat`` (run.py's plug-in call, ``run(threads=, repeat=)``) sets the number of rounds.

    Returns rows ``{figure, peer, peer_s, ours_s, ratio}`` (wall clock; ``ratio = peer_s /
    ours_s``: how many times faster ours is) and the same by CPU time (``peer_cpu``,
    ``ours_cpu``, ``ratio_cpu``).
    """
    if repeat is not None:
        rounds = int(repeat)
    apply()  # RecBole's shims, documented in _shims.py
    torch.set_num_threads(threads)
    from skadvrec.datasets import load_movielens_features
    from skadvrec.fm import AAFM, FM

    X = load_movielens_features("100k")
    with tempfile.TemporaryDirectory() as folder:
        _write_atomic(X, folder)
        trainer, train_data, users, items = _recbole(folder, seed)
        keys = X["user"].to_numpy(np.int64) * 100000 + X["item"].to_numpy(np.int64)
        at = np.flatnonzero(np.isin(keys, users * 100000 + items))
        rows = X.iloc[at][["user", "item", "rating", *FIELDS]].reset_index(drop=True)
        if len(rows) != len(users):
            raise RuntimeError(f"RecBole's training split has {len(users)} rows; {len(rows)} "
                               "of them were found in the table.")
        peer, ours, aafm = ([], []), ([], []), ([], [])  # (wall, cpu) epoch seconds
        trainer._train_epoch(train_data, 0)  # warm-up (first-touch allocations), not timed
        for r in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            trainer._train_epoch(train_data, r + 1)
            peer[0].append(time.perf_counter() - t0)
            peer[1].append(time.process_time() - c0)
            fm = FM(n_components=10, batch_size=2048, max_iter=3, early_stopping=False,
                    random_state=seed + r, device="cpu")
            _extend(ours, timed_epochs(fm, rows, lambda h: h["epoch"] > 1))  # 1: warm-up
            model = AAFM(n_components=10, batch_size=2048, max_iter=3, early_stopping=False,
                         random_state=seed + r, device="cpu")
            _extend(aafm, timed_epochs(model, rows, lambda h: h.get("adversarial") is not None))
    p, o, a = (np.median(peer, axis=1), np.median(ours, axis=1), np.median(aafm, axis=1))
    n = len(rows)
    return [
        {"figure": f"FM epoch, ML-100K {n} rows, 6 token fields, k=10, batch 2048, "
                   f"{threads} thread(s)", "peer": "RecBole 1.2.1 FM", "peer_s": p[0],
         "ours_s": o[0], "ratio": p[0] / o[0], "peer_cpu": p[1], "ours_cpu": o[1],
         "ratio_cpu": p[1] / o[1]},
        {"figure": f"AAFM adversarial epoch, same rows and sizes, {threads} thread(s)",
         "peer": "RecBole 1.2.1 FM", "peer_s": p[0], "ours_s": a[0], "ratio": p[0] / a[0],
         "peer_cpu": p[1], "ours_cpu": a[1], "ratio_cpu": p[1] / a[1]},
    ]


def _extend(acc, timed):
    acc[0].extend(timed[0])
    acc[1].extend(timed[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    import recbole

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
          f"torch {torch.__version__}, numpy {np.__version__}, recbole {recbole.__version__}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    rows = run(args.threads, args.rounds)
    print("| figure | peer | peer s | ours s | peer / ours | peer cpu s | ours cpu s | "
          "peer / ours (cpu) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['figure']} | {r['peer']} | {r['peer_s']:.3f} | {r['ours_s']:.3f} | "
              f"{r['ratio']:.2f} | {r['peer_cpu']:.3f} | {r['ours_cpu']:.3f} | "
              f"{r['ratio_cpu']:.2f} |")
    print(f"# AAFM adversarial epoch / our FM epoch: wall {rows[0]['ratio'] / rows[1]['ratio']:.2f}, "
          f"cpu {rows[0]['ratio_cpu'] / rows[1]['ratio_cpu']:.2f} (target <= 2.5)")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
