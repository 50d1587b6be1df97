"""GridSearchCV on a real dask.distributed LocalCluster through joblib's Dask backend.

The cluster has 2 worker *processes* (one thread each), so every task, its estimator and the
fitted estimators that come back cross a process boundary by pickling.
"""

import os
import pickle

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from skadvrec.attacks import RandomAttack  # noqa: E402
from skadvrec.datasets import make_interactions  # noqa: E402
from skadvrec.linear import EASE, EASEIPW  # noqa: E402
from skadvrec.metrics import NDCGScorer, TargetHitRatioScorer  # noqa: E402
from skadvrec.model_selection import UserHoldout  # noqa: E402
from skadvrec.pipeline import RecommenderPipeline  # noqa: E402


def _pid(estimator, X, y=None):
    """A 'scorer' that reports which process scored the candidate."""
    return float(os.getpid())


def _worker_threads():
    import torch
    torch.set_num_threads(1)
    return os.getpid()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit="2GiB",
                                       silence_logs=40)
    c = distributed.Client(cluster)
    try:
        c.run(_worker_threads)
        yield c
    finally:
        c.close()
        cluster.close()
    assert cluster.status.name == "closed"


@pytest.fixture(scope="module")
def data():
    return make_interactions(n_users=400, n_items=80, density=0.08, random_state=0)


def _search(n_jobs):
    pipe = RecommenderPipeline([("attack", RandomAttack(n_fake_users=0.05, random_state=0)),
                                ("model", EASEIPW(device="cpu"))])
    return GridSearchCV(
        pipe, {"model__l2": [1.0, 30.0, 1000.0], "model__beta": [0.0, 0.5]},
        cv=UserHoldout(n_splits=2, test_size=80, random_state=0),
        scoring={"ndcg": NDCGScorer(20), "thr": TargetHitRatioScorer(20), "pid": _pid},
        refit="ndcg", n_jobs=n_jobs)


def test_grid_search_on_a_local_cluster_matches_the_local_run(client, data):
    local = _search(n_jobs=1).fit(data.X)
    with joblib.parallel_backend("dask"):
        remote = _search(n_jobs=-1).fit(data.X)
    assert remote.best_params_ == local.best_params_
    for key in ("mean_test_ndcg", "mean_test_thr"):
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key], rtol=1e-5)
    # the candidates really ran in the worker processes, not here
    workers = set(client.run(os.getpid).values())
    pids = {remote.cv_results_[f"split{i}_test_pid"][j] for i in range(2) for j in range(6)}
    assert pids <= {float(p) for p in workers}
    assert float(os.getpid()) not in pids
    assert set(local.cv_results_["split0_test_pid"]) == {float(os.getpid())}
    # the refitted best pipeline recommends like a local fit with the same parameters
    ref = clone(local.estimator).set_params(**local.best_params_).fit(data.X)
    np.testing.assert_array_equal(remote.best_estimator_.recommend(data.X[:20], k=10),
                                  ref.recommend(data.X[:20], k=10))


def _fit_remote(estimator, X):
    return estimator.fit(X), os.getpid()


def _recommend_remote(estimator, X):
    return estimator.recommend(X, k=5), os.getpid()


def test_estimators_travel_to_and_from_workers_by_pickling(client, data):
    X = data.X
    est = EASE(l2=30.0, device="cpu")
    fitted, pid = client.submit(_fit_remote, est, X[:300], pure=False).result()
    assert pid != os.getpid()
    assert not hasattr(est, "n_items_")  # the worker fitted a copy: this one is untouched
    local = EASE(l2=30.0, device="cpu").fit(X[:300])
    np.testing.assert_allclose(fitted.predict(X[300:]), local.predict(X[300:]), atol=1e-5)
    # a fitted model goes to a worker and recommends there as it does here
    top, pid = client.submit(_recommend_remote, local, X[300:], pure=False).result()
    assert pid != os.getpid()
    np.testing.assert_array_equal(top, local.recommend(X[300:], k=5))
    # the pickle the workers exchange holds no live torch device state of this process
    clone_back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone_back.recommend(X[300:], k=5), top)
