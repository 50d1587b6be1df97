import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skadvrec.attacks import BandwagonAttack, PopularAttack, RandomAttack, select_target_items
from skadvrec.base import BaseRecommender
from skadvrec.datasets import make_interactions
from skadvrec.linear import EASE
from skadvrec.metrics import NDCGScorer, TargetHitRatioScorer, target_hit_ratio
from skadvrec.model_selection import InteractionHoldout, UserHoldout

ATTACKS = [RandomAttack, BandwagonAttack, PopularAttack]
TARGETS = [1, 5, 9]


@pytest.fixture(scope="module")
def X():
    return make_interactions(n_users=300, n_items=80, density=0.1, random_state=0).X


@pytest.fixture(scope="module")
def table():
    d = make_interactions(n_users=300, n_items=80, density=0.1, return_frame=True,
                          random_state=1)
    return d.interactions


def _popularity(X):
    return np.diff(sp.csc_matrix(X).indptr)


def _fillers(attack):
    """Per fake profile: the set of filler columns (profile minus targets)."""
    cols = np.searchsorted(attack.item_ids_, attack.target_items_)
    P = attack.fake_profiles_.tolil()
    return [sorted(set(r) - set(cols.tolist())) for r in P.rows]


# -- (1) the profiles ----------------------------------------------------------------------------
@pytest.mark.parametrize("Attack", ATTACKS)
def test_fake_rows_hold_all_targets_and_distinct_fillers(Attack, X):
    attack = Attack(target_items=TARGETS, n_fake_users=0.1, n_filler_items=6, random_state=0)
    Xp = attack.fit_transform(X)
    assert sp.isspmatrix_csr(Xp) and Xp.shape == (330, 80) and Xp.dtype == X.dtype
    assert (Xp[:300] != X).nnz == 0  # genuine rows untouched, at the top
    np.testing.assert_array_equal(attack.fake_users_, np.arange(300, 330))
    assert attack.n_fake_users_ == 30 and attack.fake_profiles_.shape == (30, 80)
    fake = Xp[300:]
    assert (fake[:, TARGETS].toarray() == 1).all()  # every target in every profile
    # one entry per (profile, item): a repeated item or a target drawn as filler would merge
    # into an entry of 2 and a shorter row
    assert (fake.data == 1).all()
    assert (fake.getnnz(axis=1) == len(TARGETS) + 6).all()
    assert all(len(f) == 6 for f in _fillers(attack))
    assert (attack.fake_profiles_ != fake).nnz == 0
    np.testing.assert_array_equal(attack.target_items_, TARGETS)


def test_filler_sources(X):
    pop = _popularity(X)
    kw = dict(target_items=TARGETS, n_fake_users=200, n_filler_items=10, random_state=0)
    rnd = RandomAttack(**kw).fit(X)
    band = BandwagonAttack(popular_fraction=0.5, popular_pool=8, **kw).fit(X)
    popular = PopularAttack(popular_pool=12, **kw).fit(X)
    # the pool: the most popular non-target items
    non_targets = np.setdiff1d(np.arange(80), TARGETS)
    top8 = non_targets[np.argsort(-pop[non_targets], kind="stable")[:8]]
    np.testing.assert_array_equal(band.popular_items_, np.sort(top8))
    assert pop[band.popular_items_].min() >= np.sort(pop[non_targets])[-8]
    in_pool = lambda att, pool: np.array([np.isin(f, pool).sum() for f in _fillers(att)])  # noqa
    # Bandwagon: exactly 5 of 10 drawn from the pool, the other 5 uniform (some hit the pool)
    assert (in_pool(band, band.popular_items_) >= 5).all()
    assert 5 < in_pool(band, band.popular_items_).mean() < 6.5
    # Popular: every filler from its pool
    assert (in_pool(popular, popular.popular_items_) == 10).all()
    assert popular.popular_items_.size == 12
    # Random: uniform over the 77 non-target items (pool share 8/77 ~ 0.10)
    share = in_pool(rnd, band.popular_items_).sum() / (200 * 10)
    assert 0.06 < share < 0.15
    counts = np.bincount(np.concatenate(_fillers(rnd)), minlength=80)
    assert counts[TARGETS].sum() == 0 and (counts[non_targets] > 0).all()
    # popular_fraction=1 takes every filler from the pool
    band1 = BandwagonAttack(popular_fraction=1.0, popular_pool=20, **kw).fit(X)
    assert (in_pool(band1, band1.popular_items_) == 10).all()


def test_profile_lengths_drawn_from_genuine_users(X):
    lengths = X.getnnz(axis=1)
    attack = RandomAttack(target_items=TARGETS, n_fake_users=400, random_state=0).fit(X)
    n_fill = attack.fake_profiles_.getnnz(axis=1) - len(TARGETS)
    expected = np.maximum(lengths - len(TARGETS), 1)
    assert np.isin(n_fill, expected).all() and n_fill.min() >= 1
    assert abs(n_fill.mean() - expected.mean()) < 0.15 * expected.mean()
    assert len(np.unique(n_fill)) > 3  # lengths vary like the genuine users'
    # a Popular profile is capped at its pool when the length is drawn
    pop = PopularAttack(target_items=TARGETS, n_fake_users=100, popular_pool=4,
                        random_state=0).fit(X)
    assert (pop.fake_profiles_.getnnz(axis=1) <= len(TARGETS) + 4).all()


def test_fraction_counts_and_zero_fillers(X):
    assert RandomAttack(target_items=TARGETS, n_fake_users=0.01).fit(X).n_fake_users_ == 3
    assert RandomAttack(target_items=TARGETS, n_fake_users=0.001).fit(X).n_fake_users_ == 1
    only = RandomAttack(target_items=TARGETS, n_fake_users=2, n_filler_items=0).fit(X)
    np.testing.assert_array_equal(only.fake_profiles_.toarray().nonzero()[1],
                                  np.tile(TARGETS, 2))


@pytest.mark.parametrize("Attack", ATTACKS)
def test_seeded_reproducibility(Attack, X):
    a = Attack(n_fake_users=20, random_state=3).fit(X)
    b = Attack(n_fake_users=20, random_state=3).fit(X)
    c = Attack(n_fake_users=20, random_state=4).fit(X)
    assert (a.fake_profiles_ != b.fake_profiles_).nnz == 0
    np.testing.assert_array_equal(a.target_items_, b.target_items_)
    assert (a.fake_profiles_ != c.fake_profiles_).nnz > 0
    assert clone(a).get_params() == a.get_params()


def test_default_targets_are_unpopular_and_match_select_target_items(X):
    pop = _popularity(X)
    attack = RandomAttack(n_targets=4, random_state=7).fit(X)
    assert len(attack.target_items_) == 4 and len(set(attack.target_items_)) == 4
    q25 = np.percentile(pop[pop >= 1], 25)
    assert (pop[attack.target_items_] <= q25).all() and (pop[attack.target_items_] >= 1).all()
    np.testing.assert_array_equal(attack.target_items_,
                                  select_target_items(X, 4, random_state=7))
    t = select_target_items(X, 3, min_interactions=5, max_interactions=8, random_state=0)
    assert ((pop[t] >= 5) & (pop[t] <= 8)).all()


def test_transform_is_a_pass_through_and_pipeline_poisons_fit_only(X):
    attack = RandomAttack(target_items=TARGETS, n_fake_users=0.1, random_state=0).fit(X)
    X_test = X[:50]
    assert attack.transform(X_test) is X_test
    pipe = Pipeline([("attack", RandomAttack(target_items=TARGETS, n_fake_users=0.1,
                                             random_state=0)),
                     ("model", EASE(l2=20.0, device="cpu"))]).fit(X[50:])
    assert pipe["model"].train_matrix_.shape == (275, 80)  # 250 genuine + 25 fake
    np.testing.assert_allclose(pipe.predict(X_test), pipe["model"].predict(X_test))
    with pytest.raises(NotFittedError):
        RandomAttack().transform(X)


def test_dense_input_and_explicit_values():
    rng = np.random.RandomState(0)
    R = (rng.rand(40, 15) < 0.3) * rng.randint(1, 6, (40, 15))
    attack = RandomAttack(target_items=[0, 3], n_fake_users=4, n_filler_items=2,
                          random_state=0)
    out = attack.fit_transform(R)
    assert isinstance(out, np.ndarray) and out.shape == (44, 15) and out.dtype == R.dtype
    np.testing.assert_array_equal(out[:40], R)
    assert set(np.unique(out[40:])) == {0, R.max()} and (out[40:, [0, 3]] == R.max()).all()
    assert ((out[40:] > 0).sum(axis=1) == 4).all()
    arr = sp.csr_array(R.astype(np.float32))
    assert isinstance(RandomAttack(target_items=[0], n_fake_users=2).fit_transform(arr),
                      sp.csr_array)


def test_table_form_keeps_genuine_rows_and_adds_fresh_users(table):
    df = table.assign(genre=np.arange(len(table)) % 3)
    items = np.sort(df["item"].unique())
    targets = items[[2, 4]]
    attack = BandwagonAttack(target_items=targets, n_fake_users=0.05, n_filler_items=5,
                             random_state=0)
    out = attack.fit_transform(df)
    n = len(df)
    pd.testing.assert_frame_equal(out.iloc[:n].astype(df.dtypes),
                                  df.reset_index(drop=True))
    fake = out.iloc[n:]
    assert len(fake) == 15 * 7 and attack.n_fake_users_ == 15
    np.testing.assert_array_equal(attack.fake_users_, df["user"].max() + np.arange(1, 16))
    assert set(fake["user"]) == set(attack.fake_users_)
    assert not set(fake["user"]) & set(df["user"])
    assert out["user"].dtype == df["user"].dtype
    assert (fake["rating"] == df["rating"].max()).all()
    assert (fake["timestamp"] == df["timestamp"].max()).all()
    assert fake["genre"].isna().all()
    per_user = fake.groupby("user")["item"]
    assert (per_user.size() == 7).all() and (per_user.nunique() == 7).all()
    assert per_user.apply(lambda s: set(targets) <= set(s)).all()
    assert set(fake["item"]) <= set(items)
    assert np.isin(attack.popular_items_, items).all()
    # the fake rows pass a rating threshold: a model sees every fake user
    model = EASE(l2=20.0, device="cpu", rating_threshold=4.0).fit(out)
    assert np.isin(attack.fake_users_, model.user_ids_).all()


def test_table_form_with_string_ids():
    df = pd.DataFrame({"user": ["a", "a", "b", "b", "fake_user_0", "c"],
                       "item": ["x", "y", "x", "z", "y", "w"]})
    attack = RandomAttack(target_items=["w"], n_fake_users=2, n_filler_items=1,
                          random_state=0)
    out = attack.fit_transform(df)
    assert list(attack.fake_users_) == ["_fake_user_0", "_fake_user_1"]
    assert list(out.columns) == ["user", "item"] and len(out) == 6 + 4
    assert (out.iloc[6:].groupby("user")["item"].apply(lambda s: "w" in set(s))).all()
    assert set(out.iloc[6:]["item"]) <= {"w", "x", "y", "z"}
    np.testing.assert_array_equal(attack.target_items_, ["w"])


# -- (2) an attack raises T-HR and the scorer sees it --------------------------------------------
def test_attack_raises_target_hit_ratio_matrix_form():
    X = make_interactions(n_users=500, n_items=100, density=0.08, random_state=2).X
    train, test = X[:400], X[400:]
    clean = Pipeline([("model", EASE(l2=20.0, device="cpu"))]).fit(train)
    for Attack in ATTACKS:
        pipe = Pipeline([("attack", Attack(n_fake_users=0.05, random_state=0)),
                         ("model", EASE(l2=20.0, device="cpu"))]).fit(train)
        targets = pipe["attack"].target_items_
        for metric in ("hitrate", "ndcg"):
            before = target_hit_ratio(clean, test, targets, k=10, metric=metric)
            after = target_hit_ratio(pipe, test, targets, k=10, metric=metric)
            # ~10x on this data (e.g. T-HR@10 0.002 -> 0.022); held-out users are genuine
            gain = 0.01 if metric == "hitrate" else 0.004
            assert after > 5 * before and after > before + gain, (Attack, metric, before, after)
        scorer = TargetHitRatioScorer(10, target_items=targets)
        assert scorer(pipe, test) < scorer(clean, test) <= 0
        assert TargetHitRatioScorer(10)(pipe, test) == scorer(pipe, test)  # pulled from attack
        per = scorer.per_target(pipe, test)
        assert list(per.index) == list(targets) and (per >= 0).all()
        assert per.mean() == pytest.approx(-scorer(pipe, test))


def test_attack_raises_target_hit_ratio_table_form():
    df = make_interactions(n_users=400, n_items=80, density=0.1, return_frame=True,
                           random_state=1).interactions
    df = df[df["rating"] >= 4]  # every held-out user keeps a positive training row
    tr, te = next(InteractionHoldout(test_size=0.2, random_state=0).split(df))
    train, test = df.iloc[tr], df.iloc[te]
    targets = select_target_items(train, 4, random_state=0)
    clean = EASE(l2=20.0, device="cpu").fit(train)
    pipe = Pipeline([("attack", RandomAttack(target_items=targets, n_fake_users=0.05,
                                             random_state=0)),
                     ("model", EASE(l2=20.0, device="cpu"))]).fit(train)
    before = target_hit_ratio(clean, test, targets, k=10)
    after = target_hit_ratio(pipe, test, targets, k=10)
    assert after > 2.5 * before and after > before + 0.015
    assert TargetHitRatioScorer(10)(pipe, test) == pytest.approx(-after)
    # the fake users are known to the model; excluding them from a table that names them
    poisoned = pipe["attack"].fit_transform(train)
    fakes = pipe["attack"].fake_users_
    on_train = target_hit_ratio(pipe, poisoned[~poisoned["user"].isin(fakes)], targets, k=10)
    assert target_hit_ratio(pipe, poisoned, targets, k=10, exclude_users=fakes) == on_train


# -- (3) T-HR against a brute-force reference ----------------------------------------------------
class _Linear(BaseRecommender):
    """Scores = rows @ W (matrix form), or a fixed score table per fitted user (table form)."""

    def __init__(self, W=None, S=None, batch_size=3, device="cpu", dtype="float32",
                 rating_threshold=None):
        self.W = W
        self.S = S
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.rating_threshold = rating_threshold

    def _fit(self, data, sensitive_features=None):
        if self.W is not None:
            self.W_ = torch.as_tensor(self.W, dtype=torch.float32)
        if self.S is not None:
            self.S_ = torch.as_tensor(self.S, dtype=torch.float32)

    def _scores_from_rows(self, X_rows):
        return X_rows @ self.W_

    def _scores_from_users(self, user_idx):
        return self.S_[torch.as_tensor(user_idx)].clone()


def _ref_rank(s, seen, t):
    """1 + #higher + #equal with lower index, over unseen items (brute force, one user)."""
    cand = np.flatnonzero(~seen)
    order = cand[np.lexsort((cand, -s[cand]))]
    return int(np.flatnonzero(order == t)[0]) + 1


def _ref_thr(S, seen, ineligible, targets, k, metric):
    vals = []
    for j, t in enumerate(targets):
        per_user = []
        for u in range(S.shape[0]):
            if ineligible[u, j]:
                continue
            r = _ref_rank(S[u], seen[u], t)
            if metric == "hitrate":
                per_user.append(float(r <= k))
            else:
                per_user.append(1 / np.log2(r + 1) if r <= k else 0.0)
        vals.append(np.mean(per_user) if per_user else np.nan)
    return np.array(vals)


@pytest.mark.parametrize("metric", ["hitrate", "ndcg"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_matches_brute_force_matrix_form(metric, k):
    rng = np.random.RandomState(0)
    n_items = 10
    W = rng.randint(0, 3, (n_items, n_items)).astype(np.float32)  # many tied scores
    dense = (rng.rand(14, n_items) < 0.3).astype(np.float32)
    dense[0, [0, 4, 9]] = 0.0  # at least one user eligible for every target
    X = sp.csr_matrix(dense)
    model = _Linear(W=W).fit(X)
    targets = [0, 4, 9]
    S = X.toarray() @ W
    seen = X.toarray() > 0
    ref = _ref_thr(S, seen, seen[:, targets], targets, k, metric)
    got = target_hit_ratio(model, X, targets, k, metric=metric, per_target=True)
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=1e-6)
    assert target_hit_ratio(model, X, targets, k, metric=metric) == pytest.approx(ref.mean())
    # excluding rows == evaluating the remaining rows
    keep = np.setdiff1d(np.arange(14), [2, 5])
    np.testing.assert_allclose(
        target_hit_ratio(model, X, targets, k, metric=metric, exclude_users=[2, 5]),
        target_hit_ratio(model, X[keep], targets, k, metric=metric))


@pytest.mark.parametrize("metric", ["hitrate", "ndcg"])
def test_matches_brute_force_table_form_with_ties_and_seen_items(metric):
    rng = np.random.RandomState(1)
    n_users, n_items, k = 9, 8, 3
    S = rng.randint(0, 3, (n_users, n_items)).astype(np.float32)  # ties everywhere
    train_m = rng.rand(n_users, n_items) < 0.3
    train_m[:, 0] = True  # item "i0" seen by every user: no eligible user
    train_m[np.arange(n_users), np.arange(n_users) % n_items] = True  # every user, every item
    u, i = np.nonzero(train_m)
    ids = np.array([f"i{j}" for j in range(n_items)])
    train = pd.DataFrame({"user": u + 100, "item": ids[i]})
    model = _Linear(S=S).fit(train)
    test_m = ~train_m & (rng.rand(n_users, n_items) < 0.25)
    test_m[3, 5] = test_m[4, 2] = True
    test_m[3, :] &= ~train_m[3, :]
    test_m[4, :] &= ~train_m[4, :]
    tu, ti = np.nonzero(test_m)
    test = pd.DataFrame({"user": tu + 100, "item": ids[ti]})
    users = np.unique(tu)
    targets = ["i2", "i5", "i0"]
    t_cols = [2, 5, 0]
    inel = train_m[users][:, t_cols] | test_m[users][:, t_cols]
    ref = _ref_thr(S[users], train_m[users], inel, t_cols, k, metric)
    assert np.isnan(ref[2]) and not np.isnan(ref[:2]).any()
    with pytest.warns(UserWarning, match="i0"):
        got = target_hit_ratio(model, test, targets, k, metric=metric, per_target=True)
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=1e-6)
    assert list(got.index) == targets and got.name == ("T-HR@3" if metric == "hitrate"
                                                       else "T-NDCG@3")
    with pytest.warns(UserWarning):
        assert target_hit_ratio(model, test, targets, k, metric=metric) == pytest.approx(
            np.nanmean(ref))
    # unknown users are skipped with a warning
    extra = pd.concat([test, pd.DataFrame({"user": [999], "item": ["i1"]})])
    with pytest.warns(UserWarning, match="not seen in fit"):
        v = target_hit_ratio(model, extra, ["i2", "i5"], k, metric=metric)
    assert v == pytest.approx(np.mean(ref[:2]))


# -- (4) GridSearchCV ----------------------------------------------------------------------------
def test_scorer_in_gridsearch_with_an_attack_pipeline(X):
    pipe = Pipeline([("attack", RandomAttack(n_fake_users=0.05, random_state=0)),
                     ("model", EASE(device="cpu"))])
    search = GridSearchCV(pipe, {"model__l2": [10.0, 200.0]},
                          cv=UserHoldout(n_splits=2, test_size=60, random_state=0),
                          scoring={"ndcg": NDCGScorer(20), "thr": TargetHitRatioScorer(20),
                                   "tndcg": TargetHitRatioScorer(20, metric="ndcg")},
                          refit="ndcg", error_score="raise").fit(X)
    res = search.cv_results_
    assert (res["mean_test_thr"] < 0).all() and (res["mean_test_thr"] >= -1).all()
    assert (res["mean_test_tndcg"] < 0).all()
    assert (res["mean_test_tndcg"] > res["mean_test_thr"]).all()  # NDCG weights <= 1
    assert (res["mean_test_ndcg"] > 0).all()
    best = search.best_estimator_
    assert best["model"].train_matrix_.shape[0] == 300 + 15  # refit on all users, poisoned
    train, test = next(UserHoldout(test_size=60, random_state=0).split(X))
    fold = clone(pipe).set_params(model__l2=10.0).fit(X[train])
    expected = -target_hit_ratio(fold, X[test], fold["attack"].target_items_, 20)
    assert res["split0_test_thr"][0] == pytest.approx(expected)


# -- scikit-learn's estimator checks -------------------------------------------------------------
_NOT_FIT_THEN_TRANSFORM = (
    "by design fit_transform(X) returns X with the fake users appended (the data a Pipeline "
    "fits on) while transform(X) returns X unchanged (held-out data); the check asserts that "
    "fit_transform(X) == fit(X).transform(X)")


@parametrize_with_checks(
    [RandomAttack(target_items=[0], n_fake_users=2, random_state=0),
     BandwagonAttack(n_targets=1, random_state=0), PopularAttack(n_targets=1, random_state=0)],
    expected_failed_checks=lambda est: {
        "check_transformer_general": _NOT_FIT_THEN_TRANSFORM,
        "check_transformer_data_not_an_array": _NOT_FIT_THEN_TRANSFORM})
def test_sklearn_compatible(estimator, check):
    check(estimator)


# -- (5) bad inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("params, match", [
    (dict(target_items=[3, 80]), r"\[80\] are not items of X"),
    (dict(target_items=[3, 3]), "more than once"),
    (dict(target_items=[]), "non-empty"),
    (dict(target_items=[1.5]), "column indices"),
    (dict(n_fake_users=0), "n_fake_users"),
    (dict(n_fake_users=1.5), "n_fake_users"),
    (dict(n_fake_users=True), "n_fake_users"),
    (dict(n_fake_users="1%"), "n_fake_users"),
    (dict(n_filler_items=-1), "n_filler_items"),
    (dict(n_filler_items=2.5), "n_filler_items"),
    (dict(target_items=[1, 2], n_filler_items=79), "cannot be filled"),
    (dict(n_targets=0), "n_targets"),
])
def test_attack_errors(params, match, X):
    with pytest.raises(ValueError, match=match):
        RandomAttack(**params).fit(X)


def test_attack_specific_errors(X, table):
    with pytest.raises(ValueError, match="popular_fraction"):
        BandwagonAttack(popular_fraction=1.5).fit(X)
    with pytest.raises(ValueError, match="popular_fraction"):
        BandwagonAttack(popular_fraction=-0.1).fit(X)
    for bad in (0, 1.5, -2, "top"):
        with pytest.raises(ValueError, match="popular_pool"):
            PopularAttack(popular_pool=bad).fit(X)
    with pytest.raises(ValueError, match="popular pool has 8 items"):
        PopularAttack(n_filler_items=9, popular_pool=0.1).fit(X)
    with pytest.raises(ValueError, match="not items of X"):
        RandomAttack(target_items=[10_000]).fit(table)
    with pytest.raises(ValueError, match="n_targets=50"):
        select_target_items(X, 50)
    with pytest.raises(ValueError, match="max_interactions"):
        select_target_items(X, 2, max_interactions=0)
    with pytest.raises(ValueError, match="no column"):
        RandomAttack().fit(table.rename(columns={"user": "uid"}))


def test_target_hit_ratio_errors(X, table):
    model = EASE(l2=20.0, device="cpu").fit(X)
    with pytest.raises(ValueError, match=r"\[99\] are not items of the fitted model"):
        target_hit_ratio(model, X, [1, 99])
    with pytest.raises(ValueError, match="k must be"):
        target_hit_ratio(model, X, [1], k=0)
    with pytest.raises(ValueError, match="k must be"):
        target_hit_ratio(model, X, [1], k=81)
    with pytest.raises(ValueError, match="metric"):
        target_hit_ratio(model, X, [1], metric="auc")
    with pytest.raises(ValueError, match="metric"):
        TargetHitRatioScorer(metric="recall")
    with pytest.raises(ValueError, match="exclude_users"):
        target_hit_ratio(model, X, [1], exclude_users=[300])
    seen_by_all = sp.csr_matrix(np.ones((3, 80), dtype=np.float32))
    with pytest.raises(ValueError, match="no evaluated user is eligible"):
        target_hit_ratio(model, seen_by_all, [1, 2])
    with pytest.raises(ValueError, match="pass target_items"):
        TargetHitRatioScorer()(model, X)
    with pytest.raises(ValueError, match="fitted on a user x item matrix"):
        target_hit_ratio(model, table, [1])
    tmodel = EASE(l2=20.0, device="cpu").fit(table)
    with pytest.raises(ValueError, match="not items of the fitted model"):
        target_hit_ratio(tmodel, table, [10_000])
    with pytest.raises(ValueError, match="DataFrame"):
        target_hit_ratio(tmodel, X, [1])
    with pytest.raises(ValueError, match="none of the users"):
        target_hit_ratio(tmodel, table.assign(user=table["user"] + 10_000), [1])
    known = table[table["user"].isin(tmodel.user_ids_)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean call warns about nothing
        target_hit_ratio(tmodel, known, tmodel.item_ids_[:2])


def test_table_fitted_attack_passes_user_ids_through_a_pipeline():
    """attack -> model fitted on a table: recommend takes a list of user ids, as the model does."""
    from skadvrec.linear import EASE
    from skadvrec.pipeline import make_recommender_pipeline

    X = make_interactions(n_users=120, n_items=40, random_state=0).X
    rows, cols = X.nonzero()
    df = pd.DataFrame({"user": rows, "item": cols})
    pipe = make_recommender_pipeline(RandomAttack(random_state=0), EASE()).fit(df)
    users = [1, 2, 3]
    for form in (users, np.asarray(users), pd.Series(users)):
        rec = pipe.recommend(form, k=3)
        assert sorted(rec["user"].unique()) == users and (rec.groupby("user").size() == 3).all()
    with pytest.raises(ValueError, match="fitted on an interaction table"):
        pipe[0].transform(X)  # a matrix is still refused
