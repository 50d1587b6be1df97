"""The leakage audit as a measuring instrument: calibration on representations with a known
amount of attribute signal, stability, the attacker portfolio, and the scorer."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from skadvrec.datasets import make_interactions
from skadvrec.linear import EASE
from skadvrec.metrics import (LeakageScorer, NDCGScorer, attribute_leakage,
                              resolve_attribute_types)
from skadvrec.metrics import leakage as leakage_module
from skadvrec.metrics.leakage import _representation
from skadvrec.model_selection import UserHoldout
from skadvrec.preprocessing import InteractionFilter
from skadvrec.vae import MultVAE

# a quick portfolio for the tests that exercise plumbing rather than the default attackers
FAST = [LogisticRegression(class_weight="balanced"), Ridge()]

# -- synthetic representations with a known Bayes rate -----------------------------------------
DELTA = 1.5   # linear: class means 1.5 apart along one axis, unit variance
S2 = 4.0      # radial: the minority class has 4 times the variance in two axes


def _linear(n, seed, d=10, pi=0.3):
    rng = np.random.default_rng(seed)
    f = rng.random(n) < pi
    Z = rng.normal(size=(n, d))
    Z[:, 0] += DELTA * f
    return Z, pd.DataFrame({"gender": np.where(f, "F", "M")})


def _radial(n, seed, d=10, pi=0.3):
    rng = np.random.default_rng(seed)
    f = rng.random(n) < pi
    Z = rng.normal(size=(n, d))
    Z[:, :2] *= np.where(f, np.sqrt(S2), 1.0)[:, None]
    return Z, pd.DataFrame({"gender": np.where(f, "F", "M")})


# Bayes balanced accuracy (the equal-prior rule) and AUC of the two designs
BAYES_LINEAR = norm.cdf(DELTA / 2)                        # 0.773
AUC_LINEAR = norm.cdf(DELTA / np.sqrt(2))                 # 0.856
_T = 2 * np.log(S2) * S2 / (S2 - 1)                       # equal-density radius²
BAYES_RADIAL = 0.5 * ((1 - np.exp(-_T / 2)) + np.exp(-_T / (2 * S2)))   # 0.736
AUC_RADIAL = S2 / (1 + S2)                                # P(r²_F > r²_M) = 0.8


def _audit(gen, n_train=2000, n_test=2000, **kw):
    Z_tr, S_tr = gen(n_train, seed=1)
    Z_te, S_te = gen(n_test, seed=0)
    return attribute_leakage("passthrough", Z_te, S_te, X_train=Z_tr,
                             sensitive_features_train=S_tr, return_attackers=True, **kw)


def test_planted_linear_signal_is_recovered_at_the_bayes_rate():
    table, detail = _audit(_linear)
    row = table.loc["gender"]
    assert abs(row["balanced_accuracy"] - BAYES_LINEAR) < 0.03
    assert abs(row["auc"] - AUC_LINEAR) < 0.03
    # the linear attacker alone already reaches it; the interval brackets the Bayes rate
    assert abs(detail.loc[("gender", "logistic"), "balanced_accuracy"] - BAYES_LINEAR) < 0.03
    assert row["balanced_accuracy_low"] < BAYES_LINEAR < row["balanced_accuracy_high"] + 0.01
    assert row["balanced_accuracy_low"] < row["balanced_accuracy"] < row[
        "balanced_accuracy_high"]
    assert row["protocol"] == "held-out" and (row["n_train"], row["n_test"]) == (2000, 2000)


def test_planted_nonlinear_signal_is_recovered_and_a_linear_attacker_misses_it():
    table, detail = _audit(_radial)
    row = table.loc["gender"]
    assert abs(row["balanced_accuracy"] - BAYES_RADIAL) < 0.03
    assert abs(row["auc"] - AUC_RADIAL) < 0.03
    assert row["attacker"] in ("mlp", "gradient_boosting")
    # a variance difference is invisible to a linear attacker: this is why the audit is a
    # portfolio
    assert detail.loc[("gender", "logistic"), "balanced_accuracy"] < 0.56


@pytest.mark.parametrize("n_classes", [2, 3])
def test_independent_representation_reads_chance_by_cross_fitting(n_classes):
    rng = np.random.default_rng(n_classes)
    Z = rng.normal(size=(1200, 20))
    p = [0.3, 0.7] if n_classes == 2 else [0.2, 0.3, 0.5]
    S = pd.DataFrame({"g": rng.choice(list("abc")[:n_classes], 1200, p=p)})
    table, detail = attribute_leakage("passthrough", Z, S, return_attackers=True)
    row = table.loc["g"]
    chance = 1 / n_classes
    assert row["chance_balanced_accuracy"] == pytest.approx(chance)
    assert abs(row["balanced_accuracy"] - chance) < 0.03
    assert abs(row["auc"] - 0.5) < 0.03
    assert row["balanced_accuracy_low"] < chance + 0.005
    assert (detail["balanced_accuracy"] < chance + 0.03).all()
    assert row["protocol"] == "cross-fit (5 folds)"
    assert (row["n_train"], row["n_test"]) == (1200, 1200)


def test_cross_fitting_every_user_is_scored_by_attackers_that_did_not_see_it():
    # a memorising attacker (1-nearest neighbour) scores chance when users are scored out of
    # sample; scored in sample it would be perfect
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(600, 5))
    S = pd.DataFrame({"g": rng.choice(["a", "b"], 600)})
    knn = KNeighborsClassifier(n_neighbors=1)
    table = attribute_leakage("passthrough", Z, S, attacker=knn, n_bootstraps=0)
    assert abs(table.loc["g", "balanced_accuracy"] - 0.5) < 0.06
    assert table.loc["g", "attacker"] == "KNeighborsClassifier"


def test_same_audit_twice_is_identical_and_a_tiny_perturbation_moves_it_little():
    # two fits that differ only in floating-point reduction order (another thread count) give
    # representations that differ by ~1e-6: the audit must not amplify that
    Z, S = _linear(1000, seed=3, d=20)
    S["age"] = 30 + 5 * Z[:, 1] + np.random.default_rng(0).normal(0, 5, 1000)
    a = attribute_leakage("passthrough", Z, S)
    b = attribute_leakage("passthrough", Z, S)
    pd.testing.assert_frame_equal(a, b)
    noise = np.random.default_rng(1).normal(size=Z.shape) * 1e-6 * np.abs(Z).max()
    c = attribute_leakage("passthrough", Z + noise, S)
    for attr, metric in [("gender", "balanced_accuracy"), ("gender", "auc"), ("age", "r2")]:
        assert abs(a.loc[attr, metric] - c.loc[attr, metric]) <= 0.01
    assert abs(a.loc["age", "mae"] - c.loc["age", "mae"]) <= 0.01 * a.loc["age", "mae"]
    # another seed: another split and other attackers, the same reading within noise
    d = attribute_leakage("passthrough", Z, S, random_state=7)
    assert abs(a.loc["gender", "balanced_accuracy"] - d.loc["gender", "balanced_accuracy"]) < 0.03


def test_user_attacker_matches_a_hand_built_attack():
    Z_tr, S_tr = _linear(800, seed=1)
    Z_te, S_te = _linear(400, seed=2)
    S_tr["gender"] = S_tr["gender"].where(np.arange(800) % 3 > 0, "X")  # three classes
    S_te["gender"] = S_te["gender"].where(np.arange(400) % 3 > 0, "X")
    table = attribute_leakage("passthrough", Z_te, S_te, X_train=Z_tr,
                              sensitive_features_train=S_tr, attacker=LogisticRegression(C=0.5),
                              n_bootstraps=0)
    # by hand: standardise on the training users, fit, decide by posterior / training prior
    sc = StandardScaler().fit(Z_tr)
    y_tr, y_te = S_tr["gender"].to_numpy(), S_te["gender"].to_numpy()
    clf = LogisticRegression(C=0.5).fit(sc.transform(Z_tr), y_tr)
    proba = clf.predict_proba(sc.transform(Z_te))
    prior = pd.Series(y_tr).value_counts(normalize=True)[clf.classes_].to_numpy()
    pred = clf.classes_[np.argmax(proba / prior, axis=1)]
    row = table.loc["gender"]
    assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_te, pred))
    assert row["auc"] == pytest.approx(roc_auc_score(y_te, proba, multi_class="ovr"))
    assert row["chance_balanced_accuracy"] == pytest.approx(1 / 3)
    # the prior rule matters: plain argmax of the same posterior is worse in balanced accuracy
    assert row["balanced_accuracy"] > balanced_accuracy_score(y_te, clf.predict(
        sc.transform(Z_te))) + 0.01
    # a list with the default portfolio, a classifier without predict_proba, named attackers
    _, detail = attribute_leakage(
        "passthrough", Z_te, S_te, X_train=Z_tr, sensitive_features_train=S_tr,
        attacker=["default", RidgeClassifier(), ("knn", KNeighborsClassifier(15))],
        n_bootstraps=0, return_attackers=True)
    assert list(detail.loc["gender"].index) == ["logistic", "mlp", "gradient_boosting",
                                                "RidgeClassifier", "knn"]
    assert detail.loc[("gender", "RidgeClassifier"), "balanced_accuracy"] > 0.4  # chance 1/3
    assert detail.loc[("gender", "RidgeClassifier"), "auc"] > 0.6


def test_continuous_attribute_against_the_median_baseline():
    rng = np.random.default_rng(0)
    n, sigma = 3000, 1.0
    Z = rng.normal(size=(n, 10))
    # age = 2·z0 + noise: R² = 4 / 5, the best MAE is E|noise| = σ·sqrt(2/π)
    age = 40 + 2.0 * Z[:, 0] + rng.normal(0, sigma, n)
    S = pd.DataFrame({"age": age, "noise": 40 + 3 * rng.normal(size=n)})
    table, detail = attribute_leakage("passthrough", Z[:1500], S[:1500], X_train=Z[1500:],
                                      sensitive_features_train=S[1500:],
                                      return_attackers=True)
    row = table.loc["age"]
    best_mae = sigma * np.sqrt(2 / np.pi)
    assert row["type"] == "continuous" and np.isnan(row["balanced_accuracy"])
    assert best_mae <= row["mae"] < 1.05 * best_mae
    assert abs(row["r2"] - 0.8) < 0.03
    assert row["attacker"] == "ridge"
    # predicting the median for everyone: E|age - median| = sqrt(5)·sqrt(2/π)
    assert row["mae_baseline"] == pytest.approx(np.sqrt(5) * np.sqrt(2 / np.pi), rel=0.05)
    assert row["mae_low"] < row["mae"] < row["mae_high"]
    assert set(detail.loc["age"].index) == {"ridge", "gradient_boosting"}
    # an attribute the representation does not carry: no attacker beats the baseline
    none = table.loc["noise"]
    assert none["mae"] > 0.98 * none["mae_baseline"]
    assert none["r2"] < 0.01


def test_multvae_latent_leaks_planted_group_and_not_without_signal():
    vae = dict(hidden_dims=(64,), latent_dim=16, batch_size=100, max_iter=20, anneal_steps=0,
               early_stopping=False, device="cpu", random_state=0)
    for signal in (2.0, 0.0):
        d = make_interactions(n_users=800, n_items=100, density=0.1, attribute_signal=signal,
                              random_state=0)
        S = d.sensitive_features.reset_index(drop=True)
        model = MultVAE(**vae).fit(d.X[:400])
        table = attribute_leakage(model, d.X[400:], S.iloc[400:], X_train=d.X[:400],
                                  sensitive_features_train=S.iloc[:400], n_bootstraps=200)
        group, age = table.loc["group"], table.loc["age"]
        if signal:
            assert group["balanced_accuracy_low"] > 0.8
            assert age["mae"] < 0.85 * age["mae_baseline"]
        else:
            assert group["balanced_accuracy_low"] < 0.5 < group["balanced_accuracy_high"]
            assert abs(group["balanced_accuracy"] - 0.5) < 0.06
            assert age["mae"] > 0.93 * age["mae_baseline"]


def test_missing_values_types_and_table_form_alignment():
    d = make_interactions(n_users=300, n_items=50, density=0.15, attribute_signal=2.0,
                          return_frame=True, random_state=1)
    df = d.interactions.sample(frac=1.0, random_state=0)  # users in shuffled order
    S_user = d.sensitive_features.reset_index(drop=True)
    S_rows = S_user.loc[df["user"].to_numpy()].reset_index(drop=True)
    pipe = sklearn.pipeline.make_pipeline(InteractionFilter(min_rating=1),
                                          EASE(l2=20.0, device="cpu", rating_threshold=None))
    pipe.fit(df)
    Z, S_al = _representation(pipe, df, S_rows)
    first_users = pd.unique(df["user"].to_numpy())
    assert Z.shape[0] == len(first_users) == 300
    pd.testing.assert_frame_equal(S_al, S_user.loc[first_users].reset_index(drop=True))
    S_rows.loc[df["user"].to_numpy() < 30, "age"] = np.nan  # 30 users with unknown age
    table = attribute_leakage(pipe, df, S_rows, attacker=FAST, n_bootstraps=0)
    assert table.loc["age", "n_test"] == 270 and table.loc["group", "n_test"] == 300
    # integer codes are continuous unless told otherwise
    S2 = S_user.assign(occupation=np.arange(300) % 4)
    assert resolve_attribute_types(S2)[1]["occupation"] == "continuous"
    t = attribute_leakage(EASE(l2=20.0, device="cpu").fit(d.X), d.X, S2,
                          attributes=["occupation"], n_bootstraps=0, attacker=FAST,
                          attribute_types={"occupation": "categorical"})
    assert t.loc["occupation", "type"] == "categorical"
    assert t.loc["occupation", "chance_balanced_accuracy"] == pytest.approx(0.25)


def _ease_split(signal=2.0):
    d = make_interactions(n_users=600, n_items=60, density=0.1, attribute_signal=signal,
                          random_state=0)
    S = d.sensitive_features.reset_index(drop=True)
    return EASE(l2=30.0, device="cpu").fit(d.X[:300]), d.X[300:], S.iloc[300:]


def test_scorer_signs_shared_audit_and_errors(monkeypatch):
    model, te, S = _ease_split()
    table = attribute_leakage(model, te, S, n_bootstraps=0, attacker=FAST)
    calls = []
    audit_one = leakage_module._audit_one
    monkeypatch.setattr(leakage_module, "_audit_one",
                        lambda *a, **k: calls.append(a[1]) or audit_one(*a, **k))
    leakage_module._CACHE.clear()

    def score(*args, est=model, S=S):
        return LeakageScorer(*args, attacker=FAST)(est, te, sensitive_features=S)

    assert score("group") == pytest.approx(-table.loc["group", "balanced_accuracy"])
    assert score("group", "auc") == pytest.approx(-table.loc["group", "auc"])
    assert calls == ["group"]  # BAcc and AUC of one attribute: one audit
    assert score("age", "mae") == pytest.approx(table.loc["age", "mae"])
    assert score("age", "r2") == pytest.approx(-table.loc["age", "r2"])
    assert score(S=S[["group"]]) == pytest.approx(-table.loc["group", "balanced_accuracy"])
    # another representation of the same users is a new audit
    score("group", est=EASE(l2=300.0, device="cpu").fit(te))
    assert calls == ["group", "age", "group"]
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        LeakageScorer("group", attacker=FAST)(model, te)
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


def test_bad_input_errors():
    model, te, S = _ease_split()
    Z = np.random.default_rng(0).normal(size=(300, 4))
    with pytest.raises(ValueError, match=r"\['gender'\] are not columns"):
        attribute_leakage(model, te, S, attributes="gender")
    with pytest.raises(ValueError, match="has 3 rows but X has 300"):
        attribute_leakage(model, te, S.iloc[:3])
    with pytest.raises(ValueError, match="has 1 class"):
        attribute_leakage(model, te, S.assign(group="g0"), attributes="group")
    with pytest.raises(TypeError, match="has no transform"):
        attribute_leakage(object(), te, S)
    with pytest.raises(ValueError, match="give X_train and sensitive_features_train together"):
        attribute_leakage(model, te, S, X_train=te)
    with pytest.raises(ValueError, match="cv must be an int >= 2"):
        attribute_leakage(model, te, S, cv=1)
    with pytest.raises(ValueError, match="n_bootstraps must be an int >= 0"):
        attribute_leakage(model, te, S, n_bootstraps=-1)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        attribute_leakage(model, te, S, confidence=95)
    rare = S.assign(group=np.where(np.arange(300) < 3, "rare", S["group"]))
    with pytest.raises(ValueError, match="class 'rare' has 3 audited user"):
        attribute_leakage(model, te, rare, attributes="group")
    with pytest.raises(ValueError, match=r"class\(es\) \['rare'\] of the audited users never"):
        attribute_leakage(model, te, rare, X_train=te, sensitive_features_train=S,
                          attributes="group")
    with pytest.raises(ValueError, match="attacker has no regressor for a continuous"):
        attribute_leakage(model, te, S, attacker=LogisticRegression())
    with pytest.raises(TypeError, match="attacker must be a scikit-learn estimator"):
        attribute_leakage(model, te, S, attacker=[42])
    with pytest.raises(TypeError, match="neither a classifier nor a regressor"):
        attribute_leakage(model, te, S, attacker=StandardScaler())
    with pytest.raises(ValueError, match="must be 2-D"):
        attribute_leakage("passthrough", Z[:, 0], S)
    with pytest.raises(ValueError, match="lacks the audited attribute"):
        attribute_leakage("passthrough", Z, S, X_train=Z, sensitive_features_train=S[["age"]])


def test_scorer_in_gridsearch_with_routing_refits_on_ndcg():
    d = make_interactions(n_users=500, n_items=60, density=0.12, attribute_signal=0.5,
                          random_state=2)
    leak = LeakageScorer("group", "auc", attacker=FAST, cv=3)
    with sklearn.config_context(enable_metadata_routing=True):
        leak.set_score_request(sensitive_features=True)
        search = GridSearchCV(EASE(device="cpu"), {"l2": [5.0, 5000.0]},
                              cv=UserHoldout(n_splits=2, test_size=150, random_state=0),
                              scoring={"ndcg": NDCGScorer(20), "leak": leak}, refit="ndcg")
        search.fit(d.X, sensitive_features=d.sensitive_features)
    res = search.cv_results_
    assert np.all((res["mean_test_leak"] < -0.55) & (res["mean_test_leak"] > -1))
    assert search.best_index_ == int(np.argmax(res["mean_test_ndcg"]))
    # the scorer is live: each split's value is the audit of that split's model
    assert np.ptp(res["mean_test_leak"]) > 0
