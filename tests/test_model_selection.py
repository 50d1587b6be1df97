import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skadvrec.model_selection import (BestWithinLoss, InteractionHoldout, UserHoldout,
                                      fold_in_split, split_users)


def _random_matrix(seed=0, n_users=60, n_items=40, density=0.2):
    X = sp.random(n_users, n_items, density=density, format="csr", random_state=seed)
    X.data[:] = 1
    return X


def test_fold_in_split_partitions_rows_and_is_seeded():
    X = _random_matrix()
    X_in, X_out = fold_in_split(X, 0.8, random_state=3)
    assert (X_in + X_out != X).nnz == 0
    assert X_in.multiply(X_out).nnz == 0
    n = np.diff(X.indptr)
    n_out = np.diff(X_out.indptr)
    expected = np.where(n >= 2, np.maximum(1, np.floor(0.2 * n)), 0)
    np.testing.assert_array_equal(n_out, expected)
    again_in, _ = fold_in_split(X, 0.8, random_state=3)
    assert (again_in != X_in).nnz == 0
    other_in, _ = fold_in_split(X, 0.8, random_state=4)
    assert (other_in != X_in).nnz > 0


def test_fold_in_split_is_uniform_within_rows():
    # every item of a 10-item row should be a target ~20 % of the time over many seeds
    X = sp.csr_matrix(np.ones((1, 10)))
    hits = np.zeros(10)
    for seed in range(400):
        hits += fold_in_split(X, 0.8, random_state=seed)[1].toarray()[0]
    assert np.all(np.abs(hits / 400 - 0.2) < 0.08)


def test_fold_in_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="fold_in_fraction"):
        fold_in_split(_random_matrix(), 1.5)


def test_user_holdout_holds_out_eligible_users_only():
    X = _random_matrix().tolil()
    X[0, :] = 0
    X[0, 0] = 1  # a user with a single interaction is never held out
    X = X.tocsr()
    cv = UserHoldout(n_splits=3, test_size=0.25, random_state=0)
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits() == 3
    for train, test in splits:
        assert 0 not in test
        assert len(np.intersect1d(train, test)) == 0
        assert len(train) + len(test) == X.shape[0]
    assert not np.array_equal(splits[0][1], splits[1][1])
    with pytest.raises(ValueError, match="InteractionHoldout"):
        next(cv.split(pd.DataFrame({"user": [1], "item": [2]})))


def test_split_users_disjoint():
    tr, va, te = split_users(100, n_validation=10, n_test=0.2, random_state=1)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    assert len(np.unique(np.concatenate([tr, va, te]))) == 100
    with pytest.raises(ValueError, match="leaves no training user"):
        split_users(10, n_validation=5, n_test=5)


def _table(seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(20), rng.integers(3, 12, 20))
    return pd.DataFrame({"user": users, "item": rng.integers(0, 50, len(users)),
                         "timestamp": rng.permutation(len(users))})


@pytest.mark.parametrize("strategy", ["ratio", "leave_one_out", "chronological"])
def test_interaction_holdout_per_user(strategy):
    df = _table()
    train, test = next(InteractionHoldout(strategy, test_size=0.25, random_state=0).split(df))
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(df)
    counts = df.groupby("user").size()
    n_test = df.iloc[test].groupby("user").size().reindex(counts.index, fill_value=0)
    if strategy == "leave_one_out":
        assert (n_test == 1).all()
    else:
        assert (n_test == np.maximum(1, np.floor(0.25 * counts))).all()
    assert set(df.iloc[train]["user"]) == set(df["user"])  # every user keeps training rows
    if strategy == "chronological":
        tr, te = df.iloc[train], df.iloc[test]
        last_train = tr.groupby("user")["timestamp"].max()
        first_test = te.groupby("user")["timestamp"].min()
        assert (first_test > last_train.loc[first_test.index]).all()


def test_interaction_holdout_errors():
    df = _table()
    with pytest.raises(ValueError, match="strategy"):
        next(InteractionHoldout("weird").split(df))
    with pytest.raises(ValueError, match="needs a 'timestamp' column"):
        next(InteractionHoldout("chronological").split(df.drop(columns="timestamp")))
    with pytest.raises(ValueError, match="UserHoldout"):
        next(InteractionHoldout().split(sp.csr_matrix(np.ones((3, 3)))))


def _results():
    # λ grid over two attributes; leak is a negated balanced accuracy (greater is better)
    return {"params": [{"lam": {"a": 0, "b": 0}}, {"lam": {"a": 1, "b": 0}},
                       {"lam": {"a": 1, "b": 1}}, {"lam": {"a": 9, "b": 9}}],
            "mean_test_ndcg": np.array([0.50, 0.47, 0.455, 0.30]),
            "mean_test_leak": np.array([-0.70, -0.55, -0.55, -0.50])}


def test_best_within_loss_picks_the_least_leaky_affordable_candidate():
    res = _results()
    ref = {"lam": {"a": 0, "b": 0}}
    # both (1, 0) and (1, 1) leak -0.55 within 10 %: the tie goes to the more accurate one
    assert BestWithinLoss("leak", "ndcg", reference=ref)(res) == 1
    assert BestWithinLoss("leak", "ndcg", max_relative_loss=0.05, reference=ref)(res) == 0
    assert BestWithinLoss("leak", "ndcg", max_relative_loss=0.5)(res) == 3
    # the reference defaults to the most accurate candidate
    res2 = {**res, "mean_test_ndcg": np.array([0.40, 0.50, 0.455, 0.30])}
    assert BestWithinLoss("leak", "ndcg")(res2) == 1
    # a NaN objective (a failed fit) is never chosen
    res3 = {**res, "mean_test_leak": np.array([-0.70, np.nan, -0.6, -0.5])}
    assert BestWithinLoss("leak", "ndcg", reference=ref)(res3) == 2


def test_best_within_loss_errors_name_the_fix():
    res = _results()
    with pytest.raises(ValueError, match="no scorer named 'gap'.*\\['leak', 'ndcg'\\]"):
        BestWithinLoss("gap", "ndcg")(res)
    with pytest.raises(ValueError, match="no candidate has the reference parameters"):
        BestWithinLoss("leak", "ndcg", reference={"lam": {"a": 5, "b": 0}})(res)
    with pytest.raises(ValueError, match="max_relative_loss must be a number >= 0"):
        BestWithinLoss("leak", "ndcg", max_relative_loss=-0.1)(res)
    nan_obj = {**res, "mean_test_leak": np.full(4, np.nan)}
    with pytest.raises(ValueError, match="no candidate with a finite 'leak'"):
        BestWithinLoss("leak", "ndcg")(nan_obj)
