import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skadvrec.datasets import make_interactions
from skadvrec.erasure import LinearErasure
from skadvrec.linear import EASE
from skadvrec.metrics import attribute_leakage


def _data(n=3000, d=16, seed=0):
    """A representation with a 3-class and a binary attribute, both linearly readable."""
    rng = np.random.default_rng(seed)
    occ = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    gender = rng.choice(["F", "M"], n, p=[0.3, 0.7])
    age = rng.normal(35, 10, n)
    mix = np.random.default_rng(42).normal(size=(d, d)) / np.sqrt(d)  # the same for every seed
    Z = rng.normal(size=(n, d)) @ mix
    Z[:, :3] += 1.5 * (occ[:, None] == np.array(["a", "b", "c"]))
    Z[:, 3] += 2.0 * (gender == "F")
    Z[:, 4] += 0.1 * age
    S = pd.DataFrame({"occupation": occ, "gender": gender, "age": age})
    return Z, S


def _linear_bacc(Z_tr, y_tr, Z_te, y_te):
    clf = LogisticRegression(class_weight="balanced", max_iter=1000).fit(Z_tr, y_tr)
    return balanced_accuracy_score(y_te, clf.predict(Z_te))


def test_erasure_leaves_a_linear_attacker_at_chance():
    Z, S = _data()
    Z_te, S_te = _data(seed=1)
    before = _linear_bacc(Z, S["occupation"], Z_te, S_te["occupation"])
    assert before > 0.7  # the three classes are plain before the erasure
    eraser = LinearErasure(attributes=["occupation", "gender"]).fit(Z, S)
    for attr, chance in [("occupation", 1 / 3), ("gender", 0.5)]:
        # a fresh linear attacker trained on erased training users, scored on new users
        bacc = _linear_bacc(eraser.transform(Z), S[attr], eraser.transform(Z_te), S_te[attr])
        assert abs(bacc - chance) < 0.03, (attr, bacc)
    # and the audit's default linear attacker agrees, on the erased held-out users
    _, detail = attribute_leakage(
        "passthrough", eraser.transform(Z_te), S_te, X_train=eraser.transform(Z),
        sensitive_features_train=S, attributes=["occupation", "gender"], n_bootstraps=0,
        return_attackers=True)
    assert abs(detail.loc[("gender", "logistic"), "balanced_accuracy"] - 0.5) < 0.03
    assert abs(detail.loc[("occupation", "logistic"), "balanced_accuracy"] - 1 / 3) < 0.03


def test_covariance_with_every_coded_attribute_vanishes_and_rank_is_bounded():
    Z, S = _data()
    eraser = LinearErasure().fit(Z, S)
    assert eraser.attribute_types_ == {"occupation": "categorical", "gender": "categorical",
                                       "age": "continuous"}
    Ze = eraser.transform(Z)
    codes = np.c_[pd.get_dummies(S["occupation"]).to_numpy(float),
                  pd.get_dummies(S["gender"]).to_numpy(float), S["age"].to_numpy()]
    cov = (Ze - Ze.mean(0)).T @ (codes - codes.mean(0)) / len(Z)
    cov_before = (Z - Z.mean(0)).T @ (codes - codes.mean(0)) / len(Z)
    assert np.abs(cov_before).max() > 0.3
    assert np.abs(cov).max() < 1e-10
    # the change has rank (3 - 1) + (2 - 1) + 1 = 4, and keeps the mean
    assert eraser.rank_ == 4
    assert np.linalg.matrix_rank(Z - Ze, tol=1e-8) == 4
    np.testing.assert_allclose(Ze.mean(0), Z.mean(0), atol=1e-10)
    # one attribute alone: n_classes - 1 directions
    assert LinearErasure(attributes="occupation").fit(Z, S).rank_ == 2
    assert LinearErasure().fit(Z, S["gender"]).rank_ == 1


def test_erasure_is_the_least_change_among_linear_erasers():
    # LEACE changes the data less (in mean squared distance) than the orthogonal projection
    # that removes the class-mean directions, which also zeroes the covariance
    Z, S = _data(d=8)
    Ze = LinearErasure(attributes="gender").fit(Z, S).transform(Z)
    f = (S["gender"] == "F").to_numpy(float)
    u = (Z - Z.mean(0)).T @ (f - f.mean())
    u /= np.linalg.norm(u)
    Zo = Z - np.outer((Z - Z.mean(0)) @ u, u)
    assert np.mean(np.sum((Z - Ze) ** 2, 1)) < np.mean(np.sum((Z - Zo) ** 2, 1))


def test_missing_values_pipeline_and_errors():
    Z, S = _data(n=600)
    S.loc[:99, "gender"] = np.nan
    eraser = LinearErasure(attributes="gender").fit(Z, S)
    known = S["gender"].notna().to_numpy()
    f = (S["gender"][known] == "F").to_numpy(float)
    Ze = eraser.transform(Z)[known]
    assert np.abs((Ze - Ze.mean(0)).T @ (f - f.mean())).max() < 1e-8 * len(f)
    # after a recommender in a Pipeline: the Pipeline's transform is the erased x·B
    d = make_interactions(n_users=300, n_items=40, attribute_signal=2.0, random_state=0)
    pipe = make_pipeline(EASE(l2=20.0, device="cpu"), LinearErasure(attributes="group"))
    pipe.fit(d.X, d.sensitive_features)
    np.testing.assert_allclose(pipe.transform(d.X),
                               pipe[-1].transform(pipe[0].transform(d.X)))
    with pytest.raises(ValueError, match="requires y to be passed"):
        LinearErasure().fit(Z, None)
    with pytest.raises(ValueError, match="y has 5 rows but X has 600"):
        LinearErasure().fit(Z, S.iloc[:5])
    with pytest.raises(ValueError, match="1 class"):
        LinearErasure().fit(Z, np.repeat("F", 600))
    with pytest.raises(ValueError, match=r"\['income'\] are not columns"):
        LinearErasure(attributes="income").fit(Z, S)
    with pytest.raises(ValueError, match="features"):
        eraser.transform(Z[:, :3])


@parametrize_with_checks([LinearErasure()])
def test_sklearn_compatible(estimator, check):
    check(estimator)
