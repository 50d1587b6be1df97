import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skadvrec.datasets import make_interactions
from skadvrec.linear import EASE
from skadvrec.metrics import (LeakageScorer, NDCGScorer, attribute_leakage,
                              resolve_attribute_types)
from skadvrec.metrics.leakage import _representation
from skadvrec.model_selection import UserHoldout
from skadvrec.preprocessing import InteractionFilter
from skadvrec.vae import MultVAE

VAE = dict(hidden_dims=(64,), latent_dim=16, batch_size=100, max_iter=20, anneal_steps=0,
           early_stopping=False, device="cpu", random_state=0)


def _split(signal, **kw):
    d = make_interactions(n_users=800, n_items=100, density=0.1, attribute_signal=signal,
                          random_state=0, **kw)
    S = d.sensitive_features.reset_index(drop=True)
    return d.X[:400], d.X[400:], S.iloc[400:]


def test_multvae_latent_leaks_planted_group_and_not_without_signal():
    tr, te, S = _split(2.0)
    planted = attribute_leakage(MultVAE(**VAE).fit(tr), te, S)
    assert planted.loc["group", "balanced_accuracy"] > 0.85
    assert planted.loc["group", "auc"] > 0.9
    assert planted.loc["age", "mae"] < 0.85 * planted.loc["age", "mae_baseline"]
    tr, te, S = _split(0.0)
    none = attribute_leakage(MultVAE(**VAE).fit(tr), te, S)
    assert abs(none.loc["group", "balanced_accuracy"] - 0.5) < 0.1
    assert abs(none.loc["group", "auc"] - 0.5) < 0.12
    assert none.loc["age", "mae"] > 0.9 * none.loc["age", "mae_baseline"]
    assert list(none.columns) == ["type", "balanced_accuracy", "auc",
                                  "chance_balanced_accuracy", "mae", "mae_baseline", "n_train",
                                  "n_test"]
    assert none.loc["group", "n_train"] == 280 and none.loc["group", "n_test"] == 120
    assert np.isnan(none.loc["group", "mae"]) and np.isnan(none.loc["age", "auc"])


def test_audit_matches_a_hand_built_attacker_on_ease_scores():
    # three groups: macro one-vs-rest AUC and chance 1/3; EASE's representation is x·B
    tr, te, S = _split(1.5, n_groups=3)
    model = EASE(l2=30.0, device="cpu").fit(tr)
    Z = model.transform(te)
    np.testing.assert_allclose(Z, model.predict(te), rtol=1e-6)
    table = attribute_leakage(model, te, S, attributes="group", test_size=0.25,
                              hidden_layer_sizes=(20,), random_state=3)
    y = np.asarray(S["group"].astype(str))
    Z_tr, Z_te, y_tr, y_te = train_test_split(Z.astype(np.float64), y, test_size=0.25,
                                              random_state=3, stratify=y)
    clf = make_pipeline(StandardScaler(), MLPClassifier((20,), max_iter=200,
                                                        early_stopping=True, random_state=3))
    proba = clf.fit(Z_tr, y_tr).predict_proba(Z_te)
    row = table.loc["group"]
    assert row["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y_te, clf.classes_[proba.argmax(1)]))
    assert row["auc"] == pytest.approx(roc_auc_score(y_te, proba, multi_class="ovr"))
    assert row["chance_balanced_accuracy"] == pytest.approx(1 / 3)
    assert row["balanced_accuracy"] > 0.6  # EASE's scores reveal the planted groups
    assert (row["n_train"], row["n_test"]) == (300, 100)


def test_missing_values_types_and_table_form_alignment():
    d = make_interactions(n_users=300, n_items=50, density=0.15, attribute_signal=2.0,
                          return_frame=True, random_state=1)
    df = d.interactions.sample(frac=1.0, random_state=0)  # users in shuffled order
    S_user = d.sensitive_features.reset_index(drop=True)
    S_rows = S_user.loc[df["user"].to_numpy()].reset_index(drop=True)
    pipe = make_pipeline(InteractionFilter(min_rating=1),
                         EASE(l2=20.0, device="cpu", rating_threshold=None))
    pipe.fit(df)
    Z, S_al = _representation(pipe, df, S_rows)
    first_users = pd.unique(df["user"].to_numpy())
    assert Z.shape[0] == len(first_users) == 300
    pd.testing.assert_frame_equal(S_al, S_user.loc[first_users].reset_index(drop=True))
    S_rows.loc[df["user"].to_numpy() < 30, "age"] = np.nan  # 30 users with unknown age
    table = attribute_leakage(pipe, df, S_rows)
    assert table.loc["age", "n_train"] + table.loc["age", "n_test"] == 270
    assert table.loc["group", "n_train"] + table.loc["group", "n_test"] == 300
    # integer codes are continuous unless told otherwise
    S2 = S_user.assign(occupation=np.arange(300) % 4)
    assert resolve_attribute_types(S2)[1]["occupation"] == "continuous"
    t = attribute_leakage(EASE(l2=20.0, device="cpu").fit(d.X), d.X, S2,
                          attributes=["occupation"],
                          attribute_types={"occupation": "categorical"})
    assert t.loc["occupation", "type"] == "categorical"
    assert t.loc["occupation", "chance_balanced_accuracy"] == pytest.approx(0.25)


def test_scorer_signs_and_errors():
    tr, te, S = _split(2.0)
    model = EASE(l2=30.0, device="cpu").fit(tr)
    table = attribute_leakage(model, te, S)
    assert LeakageScorer("group")(model, te, sensitive_features=S) == pytest.approx(
        -table.loc["group", "balanced_accuracy"])
    assert LeakageScorer("group", "auc")(model, te, sensitive_features=S) == pytest.approx(
        -table.loc["group", "auc"])
    assert LeakageScorer("age", "mae")(model, te, sensitive_features=S) == pytest.approx(
        table.loc["age", "mae"])
    assert LeakageScorer()(model, te, sensitive_features=S[["group"]]) == pytest.approx(
        -table.loc["group", "balanced_accuracy"])
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        LeakageScorer("group")(model, te)
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        attribute_leakage(model, te, None)
    with pytest.raises(ValueError, match="needs a continuous attribute"):
        LeakageScorer("group", "mae")(model, te, sensitive_features=S)
    with pytest.raises(ValueError, match="needs a categorical attribute"):
        LeakageScorer("age")(model, te, sensitive_features=S)
    with pytest.raises(ValueError, match="name the one to audit"):
        LeakageScorer()(model, te, sensitive_features=S)
    with pytest.raises(ValueError, match="metric must be one of"):
        LeakageScorer("group", "accuracy")
    with pytest.raises(TypeError, match="accepts no metadata"):
        LeakageScorer("group").set_score_request(sample_weight=True)
    with pytest.raises(ValueError, match=r"\['gender'\] are not columns"):
        attribute_leakage(model, te, S, attributes="gender")
    with pytest.raises(ValueError, match="has 3 rows but X has 400"):
        attribute_leakage(model, te, S.iloc[:3])
    with pytest.raises(ValueError, match="has 1 class"):
        attribute_leakage(model, te, S.assign(group="g0"), attributes="group")
    with pytest.raises(TypeError, match="has no transform"):
        attribute_leakage(object(), te, S)


def test_scorer_in_gridsearch_with_routing_refits_on_ndcg():
    d = make_interactions(n_users=500, n_items=60, density=0.12, attribute_signal=2.0,
                          random_state=2)
    leak = LeakageScorer("group", "auc", hidden_layer_sizes=(20,))
    with sklearn.config_context(enable_metadata_routing=True):
        leak.set_score_request(sensitive_features=True)
        search = GridSearchCV(EASE(device="cpu"), {"l2": [5.0, 5000.0]},
                              cv=UserHoldout(n_splits=2, test_size=150, random_state=0),
                              scoring={"ndcg": NDCGScorer(20), "leak": leak}, refit="ndcg")
        search.fit(d.X, sensitive_features=d.sensitive_features)
    res = search.cv_results_
    assert np.all((res["mean_test_leak"] < -0.5) & (res["mean_test_leak"] >= -1))
    assert search.best_index_ == int(np.argmax(res["mean_test_ndcg"]))
    # the scorer is live: each split's value is the audit of that split's model
    assert np.ptp(res["mean_test_leak"]) > 0
