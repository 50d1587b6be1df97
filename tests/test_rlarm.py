import pickle

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.model_selection import GridSearchCV

from skadvrec._torch import dense_rows
from skadvrec.datasets import make_interactions
from skadvrec.linear import ARM, EASE, RLARM
from skadvrec.linear.ease import ease_closed_form
from skadvrec.metrics import NDCGScorer, UnderservedUpliftScorer, underserved_uplift
from skadvrec.metrics.ranking import _metrics_on_batch
from skadvrec.model_selection import UserHoldout, fold_in_split

FAST = dict(l2=20.0, ndcg_k=20, validation_metric="ndcg@20", batch_size=128,
            adversary_learning_rate=1e-2, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    d = make_interactions(n_users=900, n_items=120, density=0.08, activity_skew=1.5,
                          random_state=0)
    X = d.X
    return X[:600], X[600:750], X[750:]


def test_arm_weights_track_user_activity(data):
    # the paper's Fig. 1 point: ARM's adversary up-weights heavy users (their loss is larger)
    tr, va, _ = data
    m = ARM(adversary_l2=1.0, max_iter=6, early_stopping=False, **FAST).fit(tr)
    w = m.adversary_weights(tr)
    activity = np.asarray(tr.sum(axis=1)).ravel()
    assert spearmanr(w, activity)[0] > 0.5
    assert w.std() > 0.01  # the adversary moved away from uniform


def test_rlarm_weights_track_ranking_loss(data):
    tr, va, _ = data
    m = RLARM(adversary_l2=1.0, max_iter=6, early_stopping=False, learner="closed_form",
              **FAST).fit(tr)
    w = m.adversary_weights(tr)
    with torch.no_grad():
        xb = dense_rows(tr, slice(None), "cpu", torch.float32)
        ndcg = _metrics_on_batch(xb @ m.coef_, xb > 0, [("n", "ndcg", 20)])["n"].numpy()
    assert spearmanr(w, 1 - ndcg)[0] > 0.3
    # and unlike ARM it does not simply follow activity upwards
    activity = np.asarray(tr.sum(axis=1)).ravel()
    assert spearmanr(w, activity)[0] < 0.3


def test_adversary_penalty_flattens_weights(data):
    tr, _, _ = data
    kw = dict(max_iter=4, early_stopping=False, learner="closed_form", **FAST)
    loose = RLARM(adversary_l2=0.1, **kw).fit(tr).adversary_weights(tr)
    tight = RLARM(adversary_l2=1e6, **kw).fit(tr).adversary_weights(tr)
    assert tight.std() < 0.5 * loose.std()


def test_closed_form_learner_is_weighted_ease(data):
    tr, _, _ = data
    ref = ease_closed_form(tr, 20.0, device="cpu", dtype=torch.float32).numpy()
    # adversary frozen by the warm-up: uniform weights, so W is exactly EASE
    frozen = RLARM(adversary_l2=1.0, max_iter=3, warmup_epochs=3, early_stopping=False,
                   learner="closed_form", **FAST).fit(tr)
    np.testing.assert_allclose(frozen.coef_.numpy(), ref, atol=1e-5)
    assert np.allclose(frozen.adversary_weights(tr), 1.0)
    # adversary moving: W is the weighted EASE of its weights, no longer EASE
    moving = RLARM(adversary_l2=1.0, max_iter=3, warmup_epochs=0, early_stopping=False,
                   learner="closed_form", **FAST).fit(tr)
    assert np.abs(moving.coef_.numpy() - ref).max() > 1e-3
    assert np.all(np.diag(moving.coef_.numpy()) == 0)


def test_early_stopping_keeps_best_epoch(data):
    tr, va, te = data
    v_in, v_out = fold_in_split(va, 0.8, random_state=3)
    m = RLARM(adversary_l2=1.0, max_iter=30, n_iter_no_change=3, learner="closed_form",
              **FAST).fit(tr, validation_data=(v_in, v_out))
    hist = m.history_
    assert hist[0]["epoch"] == 0
    scores = [h["val_ndcg@20"] for h in hist]
    assert m.best_epoch_ == int(np.argmax(scores))
    assert m.best_validation_score_ == max(scores)
    assert m.n_iter_ == len(hist) - 1 and m.n_iter_ <= m.best_epoch_ + 3
    # the kept model is the best epoch's: re-scored on the same split it reproduces the record
    again = np.nanmean(m.evaluate(v_in, ["ndcg@20"], targets=v_out)[0]["ndcg@20"])
    assert again == pytest.approx(m.best_validation_score_, abs=1e-6)
    assert m.best_epoch_ < m.n_iter_ and scores[-1] != pytest.approx(again, abs=1e-6)


def test_adam_learner_starts_from_ease_and_is_not_worse_on_validation(data):
    tr, va, te = data
    e = EASE(l2=20.0, device="cpu").fit(tr)
    m = ARM(adversary_l2=1.0, learning_rate=1e-4, max_iter=4, **FAST).fit(tr, validation_data=va)
    assert m.best_validation_score_ >= m.history_[0]["val_ndcg@20"]
    assert abs(m.score(te) - e.score(te)) < 0.02


def test_random_init_trains(data):
    tr, va, te = data
    m = RLARM(adversary_l2=1.0, init="random", learning_rate=2e-3, max_iter=15,
              **FAST).fit(tr, validation_data=va)
    vals = [h["val_ndcg@20"] for h in m.history_]
    assert vals[-1] > vals[0] + 0.05  # from a random W it learns


def test_parameter_and_input_errors(data):
    tr, va, _ = data
    for bad, msg in [(dict(adversary="deep"), "'adversary' parameter of RLARM"),
                     (dict(init="zeros"), "'init' parameter"),
                     (dict(learner="sgd"), "'learner' parameter"),
                     (dict(ndcg_k=1000), "ndcg_k=1000 is larger"),
                     (dict(learning_rate=0), "'learning_rate' parameter"),
                     (dict(max_iter=0), "'max_iter' parameter"),
                     (dict(adversary_learning_rate=-1.0), "'adversary_learning_rate'")]:
        with pytest.raises(ValueError, match=msg):
            RLARM(**{**FAST, **bad}).fit(tr)
    with pytest.raises(ValueError, match="validation_data has"):
        RLARM(**FAST).fit(tr, validation_data=va[:, :50])


def test_pickle_and_adversary_weights(data):
    tr, va, te = data
    m = RLARM(adversary="mlp", hidden_size=4, adversary_l2=1.0, max_iter=2, **FAST).fit(
        tr, validation_data=va)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.predict(te), m.predict(te))
    w = m2.adversary_weights(te)
    assert w.shape == (te.shape[0],) and w.mean() == pytest.approx(1.0)


def test_underserved_uplift_selection_bias_and_scorer(data):
    tr, va, te = data
    e = EASE(l2=20.0, device="cpu").fit(tr)
    other = EASE(l2=60.0, device="cpu").fit(tr)
    same = underserved_uplift(other, e, te, q=[0.1, 1.0], metric="ndcg@20")
    assert list(same["q"]) == [0.1, 1.0] and same["n_users"].iloc[1] >= same["n_users"].iloc[0]
    # a model compared with itself shows no change at any q
    self_cmp = underserved_uplift(e, e, te, q=[0.1, 0.5], metric="ndcg@20")
    assert np.allclose(self_cmp["absolute_change"], 0) and self_cmp["p_value"].isna().all()
    assert self_cmp["relative_change"].iloc[1] == 0
    if self_cmp["reference"].iloc[0] == 0:  # bottom users without any hit: undefined
        assert np.isnan(self_cmp["relative_change"].iloc[0])
    # bottom users chosen on the same targets look better under any other model: the
    # regression-to-the-mean bias that independent selection removes
    indep = underserved_uplift(other, e, te, q=[0.1], metric="ndcg@20",
                               selection_random_state=99)
    assert same["absolute_change"].iloc[0] > indep["absolute_change"].iloc[0]
    scorer = UnderservedUpliftScorer(EASE(l2=20.0, device="cpu"), q=0.1, metric="ndcg@20",
                                     statistic="absolute")
    assert scorer(other, te) == pytest.approx(same["absolute_change"].iloc[0])
    assert scorer(e, te) == pytest.approx(0.0)


def test_gridsearch_tunes_b_and_c_with_uplift(data):
    tr, _, _ = data
    search = GridSearchCV(
        RLARM(max_iter=3, learner="closed_form", **{k: v for k, v in FAST.items()
                                                      if k != "l2"}),
        {"l2": [10.0, 50.0], "adversary_l2": [0.1, 100.0]},
        cv=UserHoldout(n_splits=2, test_size=100, random_state=0),
        scoring={"ndcg": NDCGScorer(20),
                 "bottom20": UnderservedUpliftScorer(EASE(l2=20.0, device="cpu"), q=0.2,
                                                     metric="ndcg@20", statistic="absolute")},
        refit="ndcg")
    search.fit(tr)
    res = search.cv_results_
    assert np.all(np.isfinite(res["mean_test_ndcg"]))
    assert np.all(np.isfinite(res["mean_test_bottom20"]))
    assert search.best_index_ == int(np.argmax(res["mean_test_ndcg"]))
    assert np.ptp(res["mean_test_ndcg"]) > 1e-3  # the grid matters
    # the refit model is the best candidate refitted on all data: a fresh fit reproduces it
    fresh = RLARM(max_iter=3, learner="closed_form",
                  **{**{k: v for k, v in FAST.items() if k != "l2"}, **search.best_params_}).fit(tr)
    np.testing.assert_allclose(search.best_estimator_.coef_.numpy(), fresh.coef_.numpy())


@pytest.mark.cuda
def test_cuda_matches_cpu(data):
    tr, va, te = data
    kw = {**FAST, "learner": "closed_form", "adversary_l2": 1e9, "max_iter": 1}
    mc = RLARM(**{**kw, "device": "cuda"}).fit(tr, validation_data=va)
    m = RLARM(**kw).fit(tr, validation_data=va)
    assert abs(mc.score(te) - m.score(te)) < 1e-3
