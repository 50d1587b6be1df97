"""Shared helpers for the benchmark scripts: protocol data, timing, table printing."""

from __future__ import annotations

import platform
import time
from datetime import date

import numpy as np
import torch

from skadvrec.datasets import load_movielens
from skadvrec.model_selection import split_users
from skadvrec.preprocessing import filter_interactions, to_user_item_matrix


def device_name(device):
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def header(title, device):
    print(f"# {title}")
    print(f"date {date.today()}  device {device_name(device)}  torch {torch.__version__}")


def ml1m_strong_generalisation(n_validation=600, n_test=600, random_state=0, data_home=None):
    """ML-1M, ratings >= 4, users with >= 5 positives; disjoint train / validation / test users.

    Returns the users × items matrix split by rows, plus the per-user attributes aligned with it.
    """
    ml = load_movielens("1m", data_home=data_home)
    df = filter_interactions(ml.interactions, min_rating=4, min_user_interactions=5)
    X, users, items = to_user_item_matrix(df)
    tr, va, te = split_users(X.shape[0], n_validation=n_validation, n_test=n_test,
                             random_state=random_state)
    attrs = ml.users.loc[users].reset_index()
    return dict(X=X, train=tr, validation=va, test=te, users=users, items=items, attrs=attrs)


def timed(fn, *, repeat=1, sync_device=None):
    """Best wall time of ``repeat`` calls (synchronising CUDA when given)."""
    best, out = np.inf, None
    for _ in range(repeat):
        if sync_device is not None and torch.device(sync_device).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if sync_device is not None and torch.device(sync_device).type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def print_table(rows, columns):
    widths = [max(len(str(c)), *(len(f"{r[c]}") for r in rows)) for c in columns]
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(f"{r[c]}".ljust(w) for c, w in zip(columns, widths)) + " |")


def timed_epochs(model, X, counted=lambda record: record["epoch"] > 0):
    """Fit ``model`` (an ``IterativeRecommender``) on X; (wall, cpu) seconds of the epochs of
    ``history_`` that ``counted`` keeps. CPU time is ``time.process_time`` from the start to
    the end of each epoch, read through the training loop's epoch hooks."""
    cpu = {}
    start, end = model._start_epoch, model._end_epoch

    def _start(epoch):
        cpu[epoch + 1] = time.process_time()
        return start(epoch)

    def _end(record):
        end(record)
        record["cpu_seconds"] = time.process_time() - cpu[record["epoch"]]

    model._start_epoch, model._end_epoch = _start, _end
    model.fit(X)
    hist = [h for h in model.history_ if h["epoch"] > 0 and counted(h)]
    return [h["seconds"] for h in hist], [h["cpu_seconds"] for h in hist]
