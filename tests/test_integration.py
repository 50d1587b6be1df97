"""GridSearchCV, Pipeline and metadata routing with skadvrec estimators and scorers."""

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline

from conftest import data_path
from skadvrec.datasets import load_movielens, make_interactions
from skadvrec.linear import EASE
from skadvrec.metrics import (GroupMetricScorer, NDCGScorer, RankingScorer, RecallScorer,
                              metric_by_group)
from skadvrec.model_selection import InteractionHoldout, UserHoldout
from skadvrec.preprocessing import InteractionFilter, filter_interactions, to_user_item_matrix


@pytest.fixture(scope="module")
def synth():
    return make_interactions(n_users=400, n_items=80, density=0.12, random_state=0)


def test_gridsearch_multimetric_matrix_form(synth):
    search = GridSearchCV(
        EASE(device="cpu"), {"l2": [1.0, 30.0, 3000.0]},
        cv=UserHoldout(n_splits=2, test_size=80, random_state=0),
        scoring={"ndcg@50": NDCGScorer(50), "recall@20": RecallScorer(20)}, refit="ndcg@50")
    search.fit(synth.X)
    res = search.cv_results_
    assert np.all(np.isfinite(res["mean_test_ndcg@50"]))
    assert np.all(np.isfinite(res["mean_test_recall@20"]))
    # refit picks the best mean NDCG, and the scores differ across l2 (the scorer is live)
    assert search.best_index_ == int(np.argmax(res["mean_test_ndcg@50"]))
    assert np.ptp(res["mean_test_ndcg@50"]) > 1e-3
    # the refitted model is EASE with the chosen l2 fitted on every user
    ref = EASE(device="cpu", **search.best_params_).fit(synth.X)
    np.testing.assert_allclose(search.best_estimator_.coef_, ref.coef_)


def test_default_score_works_without_scoring(synth):
    cv = KFold(3, shuffle=True, random_state=0)
    out = cross_validate(EASE(l2=30.0, device="cpu"), synth.X, cv=cv)
    assert np.all((out["test_score"] > 0) & (out["test_score"] <= 1))


def test_scorer_split_is_fixed_across_candidates(synth):
    m = EASE(l2=30.0, device="cpu").fit(synth.X[:300])
    s = RankingScorer("ndcg@20", random_state=5)
    assert s(m, synth.X[300:]) == s(m, synth.X[300:])
    assert s(m, synth.X[300:]) != RankingScorer("ndcg@20", random_state=6)(m, synth.X[300:])


def test_pipeline_from_interaction_table():
    d = make_interactions(n_users=300, n_items=60, density=0.15, return_frame=True,
                          random_state=2)
    df = d.interactions
    pipe = make_pipeline(InteractionFilter(min_rating=3), EASE(device="cpu",
                                                               rating_threshold=None))
    search = GridSearchCV(pipe, {"ease__l2": [5.0, 500.0]},
                          cv=InteractionHoldout("ratio", test_size=0.2, n_splits=2,
                                                random_state=0),
                          scoring={"ndcg@10": NDCGScorer(10), "recall@10": RecallScorer(10)},
                          refit="ndcg@10")
    search.fit(df)
    assert np.all(np.isfinite(search.cv_results_["mean_test_ndcg@10"]))
    rec = search.best_estimator_[-1].recommend(df.head(50), k=3)
    # three unseen items for each of those users: nothing they rated >= 3 (what EASE saw)
    assert (rec.groupby("user").size() == 3).all()
    assert set(rec["user"]) == set(df.head(50)["user"])
    seen = df[df["rating"] >= 3]
    assert len(rec.merge(seen, on=["user", "item"])) == 0
    # Pipeline.score goes through the filter to EASE.score on held-out rows of known users
    train, test = next(InteractionHoldout(test_size=0.2, random_state=1).split(df))
    fitted = sklearn.clone(search.best_estimator_).fit(df.iloc[train])
    assert 0 < fitted.score(df.iloc[test]) <= 1
    with pytest.raises(ValueError, match="no user in X has a target"):
        fitted.score(df.iloc[train])  # every row was seen in fit: nothing left to rank


def test_group_gap_scorer_with_metadata_routing():
    # the planted group preference makes the groups differ in accuracy; routing must slice S
    d = make_interactions(n_users=400, n_items=80, density=0.12, group_weights=[0.8, 0.2],
                          attribute_signal=2.0, random_state=3)
    S = d.sensitive_features[["group"]]
    gap = GroupMetricScorer("ndcg@20", attribute="group", statistic="gap")
    with sklearn.config_context(enable_metadata_routing=True):
        gap.set_score_request(sensitive_features=True)
        search = GridSearchCV(EASE(device="cpu"), {"l2": [10.0, 100.0]},
                              cv=UserHoldout(n_splits=2, test_size=100, random_state=0),
                              scoring={"ndcg": NDCGScorer(20), "gap": gap}, refit="ndcg")
        search.fit(d.X, sensitive_features=S)
    gaps = search.cv_results_["mean_test_gap"]
    assert np.all(np.isfinite(gaps)) and np.all(gaps <= 0)
    # the scorer's value equals the gap computed by hand from per-group means
    model = EASE(l2=10.0, device="cpu").fit(d.X[:300])
    table = metric_by_group(model, d.X[300:], S.iloc[300:], "ndcg@20", attribute="group")
    assert gap(model, d.X[300:], sensitive_features=S.iloc[300:]) == pytest.approx(
        -(table["mean"].max() - table["mean"].min()))
    std = GroupMetricScorer("ndcg@20", attribute="group", statistic="std")
    assert std(model, d.X[300:], sensitive_features=S.iloc[300:]) == pytest.approx(
        -table["mean"].std(ddof=0))
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        gap(model, d.X[300:])
    with pytest.raises(ValueError, match="has 3 rows but X has 100"):
        gap(model, d.X[300:], sensitive_features=S.iloc[:3])


def test_ml100k_table_form_end_to_end():
    data_path("ml-100k", "u.data")
    ml = load_movielens("100k")
    df = ml.interactions
    cv = InteractionHoldout("chronological", test_size=0.2)
    train, test = next(cv.split(df))
    model = EASE(l2=200.0, device="cpu").fit(df.iloc[train])  # rating >= 4 are positives
    assert model.train_matrix_.nnz == int((df.iloc[train]["rating"] >= 4).sum())
    with pytest.warns(UserWarning, match="items unseen in fit"):  # new items in the last 20 %
        ndcg = NDCGScorer(10)(model, df.iloc[test])
    assert 0.05 < ndcg < 1


def test_ml1m_gridsearch_user_heldout_protocol():
    data_path("ml-1m", "ratings.dat")
    df = filter_interactions(load_movielens("1m").interactions, min_rating=4,
                             min_user_interactions=5)
    X, _, _ = to_user_item_matrix(df)
    search = GridSearchCV(EASE(device="cpu"), {"l2": [50.0, 500.0]},
                          cv=UserHoldout(n_splits=1, test_size=600, random_state=0),
                          scoring={"ndcg@100": NDCGScorer(100), "recall@20": RecallScorer(20)},
                          refit="ndcg@100")
    search.fit(X)
    best = search.cv_results_["mean_test_ndcg@100"].max()
    assert 0.38 < best < 0.47  # EASE on ML-1M lands near 0.42
    assert search.best_params_ == {"l2": 500.0}
