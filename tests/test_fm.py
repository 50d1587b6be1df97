"""FM, AdvFM, AAFM and the feature-fairness statistics and scorers."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV

from skadvrec._params import InvalidParameterError
from skadvrec.fm import AAFM, FM, AdvFM
from skadvrec.fm.fm import perturbation_direction
from skadvrec.metrics import (
    FeatureGroupAUCScorer,
    RowAUCScorer,
    combination_variety,
    feature_group_auc,
    sample_frequency,
    value_frequency,
)
from skadvrec.metrics.feature_fairness import field_sides
from skadvrec.model_selection import BestWithinLoss, InteractionHoldout

_SMALL = dict(n_components=8, max_iter=8, batch_size=64, early_stopping=False, device="cpu",
              random_state=0)


def _table(n_users=80, n_items=30, per_user=12, seed=0):
    """Clicks driven by gender x genre: F like genre a, M like genre b (85 %)."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["F", "M"], n_users)
    age = rng.choice([18, 25, 35], n_users)
    genre = rng.choice(["a", "b"], n_items)  # every item is liked by half the users
    extra = rng.choice(["x", "y", ""], n_items)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, per_user, replace=False):
            liked = (gender[u], genre[i]) in {("F", "a"), ("M", "b")}
            click = rng.random() < (0.85 if liked else 0.15)
            rows.append((u, i, int(rng.integers(4, 6)) if click else int(rng.integers(1, 4)),
                         gender[u], age[u], (genre[i],) + ((extra[i],) if extra[i] else ())))
    X = pd.DataFrame(rows, columns=["user", "item", "rating", "gender", "age", "genres"])
    X["timestamp"] = np.arange(len(X))
    return X


def _split(X, seed=0):
    rng = np.random.default_rng(seed)
    test = rng.random(len(X)) < 0.2
    return X[~test].reset_index(drop=True), X[test].reset_index(drop=True)


# -- statistics on a hand-made table ---------------------------------------------------------------
HAND = pd.DataFrame({
    "user": [1, 1, 2, 2, 3],
    "item": ["a", "b", "a", "c", "a"],
    "gender": ["F", "F", "M", "M", "M"],
    "genres": [("x", "y"), ("y",), ("x", "y"), (), ("x", "y")],
})


def test_value_frequency_by_hand():
    alpha = value_frequency(HAND)
    assert alpha["user"].to_dict() == {1: 0.4, 2: 0.4, 3: 0.2}
    assert alpha["item"].to_dict() == {"a": 0.6, "b": 0.2, "c": 0.2}
    assert alpha["gender"].to_dict() == {"M": 0.6, "F": 0.4}
    # multi-valued: share of rows containing the value (y in rows 0, 1, 2, 4; x in 0, 2, 4)
    assert alpha["genres"].to_dict() == {"y": 0.8, "x": 0.6}


def test_field_sides_by_hand():
    assert field_sides(HAND) == {"user": "user", "item": "item", "gender": "user",
                                 "genres": "item"}


def test_combination_variety_by_hand():
    beta = combination_variety(HAND)
    # user-side partners: item (3 values a, b, c) and genres (2 values x, y)
    # user 1: items {a, b} -> 2/3, genres {x, y} -> 2/2; mean 5/6
    # user 2: items {a, c} -> 2/3, genres {x, y} -> 1;   user 3: items {a} -> 1/3, genres 1
    assert beta["user"].round(6).to_dict() == {1: round(5 / 6, 6), 2: round(5 / 6, 6),
                                               3: round(2 / 3, 6)}
    # gender F: items {a, b}, genres {x, y} -> (2/3 + 1) / 2; M: items {a, c} -> same
    assert beta["gender"].round(6).to_dict() == {"F": round(5 / 6, 6), "M": round(5 / 6, 6)}
    # item-side partners: user (3 values) and gender (2 values)
    # item a: users {1, 2, 3}, genders {F, M} -> 1; b: {1}, {F} -> (1/3 + 1/2) / 2; c: same
    assert beta["item"].round(6).to_dict() == {"a": 1.0, "b": round(5 / 12, 6),
                                               "c": round(5 / 12, 6)}
    # genre x: rows 0, 2, 4 -> users {1, 2, 3}, genders {F, M} -> 1; y: rows 0, 1, 2, 4 -> 1
    assert beta["genres"].to_dict() == {"x": 1.0, "y": 1.0}


def test_sample_frequency_by_hand():
    alpha = value_frequency(HAND)
    got = sample_frequency(HAND, alpha)
    # row 0: user 1 (.4), item a (.6), F (.4), genres mean(x .6, y .8) = .7 -> 2.1 / 4
    # row 3: user 2 (.4), item c (.2), M (.6), empty genres -> 0     -> 1.2 / 4
    assert got[0] == pytest.approx(2.1 / 4)
    assert got[3] == pytest.approx(1.2 / 4)
    # a value unseen in the frequencies counts 0
    new = HAND.iloc[[0]].assign(user=99)
    assert sample_frequency(new, alpha)[0] == pytest.approx(1.7 / 4)


def test_fitted_statistics_are_the_metrics_ones():
    X = _table()
    model = AAFM(**{**_SMALL, "max_iter": 1}).fit(X)
    alpha = value_frequency(X)
    beta = combination_variety(X)
    for f in model.fields_:
        assert model.feature_frequencies_[f].sort_index().equals(alpha[f].sort_index())
        pd.testing.assert_series_equal(model.combination_variety_[f].sort_index(),
                                       beta[f].sort_index(), check_index_type=False)


# -- the fairness scorers against a hand computation ----------
class _Fixed:
    """A 'model' whose scores are a column of X."""

    rating_threshold = None

    def decision_function(self, X):
        return X["score"].to_numpy()


def _scored(seed=0, n=240):
    rng = np.random.default_rng(seed)
    g = rng.choice(["p", "q", "r"], n)
    label = rng.integers(0, 2, n)
    score = label * rng.random(n) + rng.random(n) * np.where(g == "p", 0.2, 1.0)
    tags = [tuple(rng.choice(["s", "t"], rng.integers(1, 3), replace=False)) for _ in range(n)]
    return pd.DataFrame({"user": np.arange(n), "item": rng.integers(0, 9, n), "g": g,
                         "tags": tags, "score": score, "label": label})


def test_group_auc_matches_sklearn_per_group():
    X = _scored()
    got = feature_group_auc(_Fixed(), X, "g", min_rows=1)
    for value, grp in X.groupby("g"):
        assert got.loc[value, "auc"] == pytest.approx(roc_auc_score(grp["label"], grp["score"]))
        assert got.loc[value, "n_rows"] == len(grp)
    # multi-valued: a row belongs to each of its values' groups
    got = feature_group_auc(_Fixed(), X, "tags", min_rows=1)
    for value in ["s", "t"]:
        grp = X[X["tags"].map(lambda t, v=value: v in t)]
        assert got.loc[value, "auc"] == pytest.approx(roc_auc_score(grp["label"], grp["score"]))


def test_group_auc_statistics():
    X = _scored()
    aucs = np.array([roc_auc_score(grp["label"], grp["score"]) for _, grp in X.groupby("g")])
    assert FeatureGroupAUCScorer("g", statistic="std", min_rows=1)(_Fixed(), X) == \
        pytest.approx(-aucs.std())
    assert FeatureGroupAUCScorer("g", statistic="gap", min_rows=1)(_Fixed(), X) == \
        pytest.approx(-(aucs.max() - aucs.min()))
    assert FeatureGroupAUCScorer("g", statistic="min", min_rows=1)(_Fixed(), X) == \
        pytest.approx(aucs.min())
    assert RowAUCScorer()(_Fixed(), X) == pytest.approx(roc_auc_score(X["label"], X["score"]))


def test_frequency_groups_by_hand():
    X = _scored()
    freqs = value_frequency(X[["user", "item", "g"]])
    score = sample_frequency(X, freqs, ["item", "g"])
    order = np.argsort(-score, kind="stable")
    got = feature_group_auc(_Fixed(), X, "frequency", n_bins=3, min_rows=1,
                            frequencies={k: freqs[k] for k in ("item", "g")})
    for b, part in enumerate(np.array_split(order, 3)):
        sub = X.iloc[part]
        assert got.loc[f"top{b + 1}", "auc"] == pytest.approx(
            roc_auc_score(sub["label"], sub["score"]))
        assert got.loc[f"top{b + 1}", "n_rows"] == len(part)


def test_small_groups_are_left_out():
    X = _scored()
    full = feature_group_auc(_Fixed(), X, "g", min_rows=1)
    some = feature_group_auc(_Fixed(), X, "g", min_rows=int(full["n_rows"].max()))
    assert some["auc"].notna().sum() == 1


# -- the models ----------
def test_fm_beats_popularity():
    train, test = _split(_table())
    model = FM(**_SMALL).fit(train)
    y = (test["rating"] >= 4).astype(int)
    popularity = test["item"].map(train[train["rating"] >= 4].groupby("item").size()).fillna(0)
    auc_pop = roc_auc_score(y, popularity)
    auc_fm = model.score(test)
    assert auc_fm > auc_pop + 0.1
    assert auc_fm > 0.75
    # the ranking API agrees with the row scores (user- and item-side fields only here)
    users = train["user"].unique()[:5]
    scores = model.predict(users)
    items = model.item_ids_
    rows = pd.DataFrame({"user": np.repeat(users, len(items)), "item": np.tile(items,
                                                                               len(users))})
    direct = model.decision_function(rows).reshape(len(users), len(items))
    np.testing.assert_allclose(scores, direct, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cls", [AdvFM, AAFM])
def test_adversarial_models_learn(cls):
    train, test = _split(_table())
    model = cls(**_SMALL).fit(train)
    assert model.score(test) > 0.75
    hist = model.history_
    assert hist[0]["adversarial"] is None and hist[1]["adversarial"] is not None


def test_missing_side_fields_are_looked_up_and_unknowns_add_nothing():
    X = _table()
    model = FM(**_SMALL).fit(X)
    rows = X.iloc[:20]
    np.testing.assert_allclose(model.decision_function(rows[["user", "item"]]),
                               model.decision_function(rows), rtol=1e-5)
    # two unseen genders (the unknown bucket) score alike, and like the field being absent
    a = model.decision_function(rows.assign(gender="?"))
    b = model.decision_function(rows.assign(gender="??"))
    np.testing.assert_array_equal(a, b)
    # the unknown bucket (row 0) stayed at zero through training: it adds nothing
    assert torch.all(model.model_.embedding[0] == 0) and model.model_.weight[0] == 0
    single, _ = model._encoder.encode(rows.assign(user=-1).reset_index(drop=True))
    assert (single[:, model.fields_.index("user")] == 0).all()
    proba = model.predict_proba(rows)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-model.decision_function(rows))),
                               rtol=1e-6)


def test_transform_is_user_side_sum():
    X = _table()
    model = FM(**_SMALL).fit(X)
    Z = model.transform([0, 1, 2])
    assert Z.shape == (3, 8)
    idx = np.searchsorted(model.user_ids_, [0, 1, 2])
    np.testing.assert_allclose(Z, model.user_factors_[idx].numpy())
    # the sum of the user's user-side field embeddings
    E = model.model_.embedding.detach()
    enc = model._encoder
    rows = [enc.rows_of(f, [X.loc[X.user == 0, f].iloc[0]])[0] for f in ("user", "gender", "age")]
    np.testing.assert_allclose(Z[0], E[rows].sum(0).numpy(), rtol=1e-5)


def test_recommend_excludes_seen_items():
    X = _table()
    model = FM(**_SMALL).fit(X)
    rec = model.recommend([0, 1], k=5)
    seen = set(X.loc[(X.user == 0) & (X.rating >= 4), "item"])
    assert not seen & set(rec.loc[rec.user == 0, "item"])


def test_perturbation_direction_raises_the_loss():
    X = _table()
    model = FM(dtype="float64", **_SMALL).fit(X)
    net = model.model_
    single, bags = model._encoder.encode(X)
    single, bags = torch.from_numpy(single), [torch.from_numpy(b) for b in bags]
    y = torch.tensor((X["rating"] >= 4).to_numpy(), dtype=torch.float64)
    E = net.embedding
    E.requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(net(single, bags), y)
    (grad,) = torch.autograd.grad(loss, E)
    E.requires_grad_(False)
    field_of_row = torch.from_numpy(model._encoder.field_of_row)
    n_fields = len(model.fields_)
    for mode in ("value", "vocabulary"):
        d = perturbation_direction(grad, field_of_row, mode)
        eps = torch.full((len(X), n_fields), 1e-3, dtype=torch.float64)
        with torch.no_grad():
            up = F.binary_cross_entropy_with_logits(net(single, bags, eps, d), y)
            down = F.binary_cross_entropy_with_logits(net(single, bags, eps, -d), y)
        assert up > loss > down
    # the two normalisations differ (the vocabulary one scales rows by the field's gradients)
    dv = perturbation_direction(grad, field_of_row, "value")
    dc = perturbation_direction(grad, field_of_row, "vocabulary")
    touched = grad.norm(dim=1) > 0
    ones = torch.ones(int(touched.sum()), dtype=torch.float64)
    assert torch.allclose(dv[touched].norm(dim=1), ones, atol=1e-6)
    assert not torch.allclose(dc[touched].norm(dim=1), ones, atol=1e-2)


def test_adversarial_loss_exceeds_clean_loss():
    X = _table()
    model = AdvFM(eps=0.05, **_SMALL).fit(X)
    for h in model.history_[1:]:
        assert h["adversarial"] > h["bce"]


def test_aafm_weights_rare_rows_more_and_ablations_differ():
    X = _table()
    full = AAFM(**_SMALL).fit(X)
    ablations = [AAFM(variety=False, **_SMALL).fit(X), AAFM(frequency=False, **_SMALL).fit(X),
                 AAFM(decay=True, **_SMALL).fit(X), AAFM(grad_norm="vocabulary", **_SMALL).fit(X),
                 AAFM(strength_form="monotone", **_SMALL).fit(X)]
    z = full.decision_function(X.iloc[:50])
    for m in ablations:
        assert not np.allclose(m.decision_function(X.iloc[:50]), z)


def test_aafm_sample_weights_and_strengths_by_hand():
    X = _table()
    model = AAFM(max_sample_weight=10.0, **{**_SMALL, "max_iter": 1})
    # run the preparation and one initialisation by hand through the template's hooks
    from skadvrec._data import check_interactions
    data, _ = check_interactions(X, rating_threshold=4.0, keep_table=True)
    model.device_ = torch.device("cpu")
    model._check_params(data)
    from skadvrec.base import _TrainingState
    model._tr = _TrainingState()
    model._init_model(data.matrix, data, None, np.random.RandomState(0),
                      torch.Generator().manual_seed(0))
    tr = model._tr
    idx = torch.arange(40)
    single, bags = tr.single[idx], [b[idx] for b in tr.bags]
    stats = model._row_stats(single, bags)  # per row: variety vector h, frequency
    w = model._sample_weights(stats)
    freq = torch.from_numpy(sample_frequency(X.iloc[:40], value_frequency(X))).float()
    assert float(w[freq.argmin()]) == pytest.approx(10.0)
    assert float(w[freq.argmax()]) == pytest.approx(1.0)
    assert torch.all(torch.diff(w[freq.argsort()]) <= 1e-5)  # rarer rows weigh more
    eps = model._strengths(stats, len(idx))
    beta = combination_variety(X)
    inv = np.stack([1 / X.iloc[:40][f].map(beta[f]).to_numpy(dtype=float)
                    for f in ("user", "item", "gender", "age")], 1)
    genres = X.iloc[:40]["genres"].map(lambda t: np.mean([beta["genres"][v] for v in t]))
    inv = np.column_stack([inv, 1 / genres.to_numpy(dtype=float)])
    h = inv / np.linalg.norm(inv, axis=1, keepdims=True)
    # eps · softplus(w_f h) with w_f = strength_init = 0.5
    expected = model.eps * np.log1p(np.exp(0.5 * h))
    order = [model._tr.enc.order.index(f) for f in ("user", "item", "gender", "age", "genres")]
    np.testing.assert_allclose(eps.detach().numpy()[:, order], expected, rtol=1e-5)
    # the released form inverts the rule once w_f < 0; the monotone form keeps it
    rare = int(np.argmax(h[:, 0]))  # the largest normalised 1/β of the user field
    common = int(np.argmin(h[:, 0]))
    with torch.no_grad():
        tr.strength.fill_(-2.0)
        code = model._strengths(stats, len(idx))[:, order[0]]
        model.strength_form = "monotone"
        mono = model._strengths(stats, len(idx))[:, order[0]]
    assert code[rare] < code[common] and mono[rare] > mono[common]


def test_aafm_epoch_sample_weights_equal_the_per_batch_ones():
    """The sample weights computed for a whole epoch at once (``_epoch_stats``) are the
    batch-wise min-max of ``_sample_weights``, batch by batch (last, shorter batch included)."""
    X = _table()
    model = AAFM(batch_size=100, **{k: v for k, v in _SMALL.items() if k != "batch_size"})
    seen = []
    hand = AAFM._manual_step

    def check(self, codes, scale, y, stats):
        alone = self._sample_weights({"freq": stats["freq"]})
        assert torch.equal(stats["weight"], alone)
        seen.append(len(y))
        return hand(self, codes, scale, y, stats)

    AAFM._manual_step = check
    try:
        model.fit(X)
    finally:
        AAFM._manual_step = hand
    assert 100 in seen and min(seen) < 100  # full batches and a shorter last one


def test_implicit_table_samples_negatives_reproducibly():
    X = _table()
    pos = X[X["rating"] >= 4].drop(columns="rating")
    a = FM(**_SMALL).fit(pos)
    b = FM(**_SMALL).fit(pos)
    rows = X.iloc[:30]
    np.testing.assert_array_equal(a.decision_function(rows), b.decision_function(rows))
    assert a.score(X) > 0.7  # the held-in explicit labels are ranked right
    c = FM(**{**_SMALL, "random_state": 1}).fit(pos)
    assert not np.array_equal(a.decision_function(rows), c.decision_function(rows))


def test_field_maps_backbone():
    train, test = _split(_table())
    model = AAFM(field_maps=True, **_SMALL).fit(train)
    assert hasattr(model.model_, "map_weight")
    assert model.score(test) > 0.7


def test_early_stopping_restores_best_state():
    train, valid = _split(_table(), seed=3)
    model = FM(**{**_SMALL, "early_stopping": True, "max_iter": 15,
                  "n_iter_no_change": 2}).fit(train, validation_data=valid)
    assert model.best_validation_score_ == pytest.approx(model.score(valid), abs=1e-6)
    assert model.best_validation_score_ == max(h["val_auc"] for h in model.history_)


def test_matrix_input_folds_in_new_users():
    X = _table()
    from skadvrec.preprocessing import to_user_item_matrix
    M, _, _ = to_user_item_matrix(X[X.rating >= 4])
    model = FM(**_SMALL).fit(M)
    scores = model.predict(M[:5])
    assert scores.shape == (5, M.shape[1])
    assert not np.allclose(scores[0], scores[1])  # the rows differ, so do the fold-ins


def test_pickle_round_trip():
    X = _table()
    model = AAFM(**_SMALL).fit(X)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.decision_function(X), model.decision_function(X))
    np.testing.assert_array_equal(clone.predict([0, 3]), model.predict([0, 3]))


def test_grid_search_with_fairness_scorers():
    X = _table(n_users=60)
    search = GridSearchCV(
        AdvFM(**{**_SMALL, "max_iter": 3}), {"eps": [0.0, 0.5]},
        cv=InteractionHoldout("ratio", test_size=0.3, random_state=0),
        scoring={"auc": RowAUCScorer(), "freq_std": FeatureGroupAUCScorer(n_bins=2)},
        refit=BestWithinLoss("freq_std", "auc", max_relative_loss=0.5))
    search.fit(X)
    res = search.cv_results_
    assert np.all(np.isfinite(res["mean_test_auc"])) and np.all(res["mean_test_freq_std"] <= 0)
    assert res["mean_test_auc"][0] != res["mean_test_auc"][1]  # eps reaches the model


# -- bad input ----------
@pytest.mark.parametrize("column, values, match", [
    ("when", pd.date_range("2020-01-01", periods=5), "unsupported dtype"),
    ("price", [1.5, 2.0, 3.1, 4.2, 5.0], "continuous"),
    ("gender", ["F", None, "M", "F", "M"], "missing value"),
    ("gender", ["F", "F", "F", "F", "F"], "single value"),
    ("genres", [("a",), ("a", np.nan), ("b",), ("a",), ("b",)], "missing values inside"),
    ("genres", [("a",), "b", ("b",), ("a",), ("b",)], "mixes tuples"),
    ("stuff", [{1}, {2}, {1}, {2}, {3}], "set value"),
])
def test_bad_fields_are_rejected(column, values, match):
    X = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2],
                      "rating": [5, 1, 4, 2, 5]})
    X[column] = values
    with pytest.raises(ValueError, match=match):
        FM(**_SMALL).fit(X)


def test_non_binary_labels_are_rejected():
    X = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3], "label": [0, 1, 2, 1]})
    with pytest.raises(ValueError, match="binary"):
        FM(**_SMALL).fit(X)


def test_bad_parameters_are_rejected():
    X = _table(n_users=10)
    with pytest.raises(InvalidParameterError, match="eps"):
        AdvFM(eps=-1.0, **_SMALL).fit(X)
    with pytest.raises(InvalidParameterError, match="grad_norm"):
        AAFM(grad_norm="rows", **_SMALL).fit(X)
    with pytest.raises(ValueError, match="adv_fields"):
        AAFM(adv_fields=["nope"], **_SMALL).fit(X)


def test_prediction_input_errors():
    X = _table(n_users=10)
    model = FM(**_SMALL).fit(X)
    with pytest.raises(ValueError, match="'item'"):
        model.decision_function(pd.DataFrame({"user": [0], "genres": [("a",)]}))
    with pytest.raises(ValueError, match="continuous"):
        model.decision_function(X.assign(age=1.5))
    with pytest.raises(ValueError, match="all of one label"):
        model.score(X[X.rating >= 4])


@pytest.mark.parametrize("make", [
    lambda: FM(dtype="float64", **{**_SMALL, "max_iter": 2}),
    lambda: FM(dtype="float64", **{**_SMALL, "max_iter": 2, "n_components": 16}),
    lambda: AdvFM(dtype="float64", eps=0.1, **{**_SMALL, "max_iter": 2}),
    lambda: AdvFM(dtype="float64", eps=0.1, grad_norm="vocabulary", **{**_SMALL, "max_iter": 2}),
    lambda: AAFM(dtype="float64", **{**_SMALL, "max_iter": 2}),
    lambda: AAFM(dtype="float64", grad_norm="vocabulary", **{**_SMALL, "max_iter": 2}),
    lambda: AAFM(dtype="float64", **{**_SMALL, "max_iter": 2, "n_components": 16}),
    lambda: AAFM(dtype="float64", variety=False, **{**_SMALL, "max_iter": 2}),
    lambda: AAFM(dtype="float64", decay=True, adv_fields=["user", "genres"],
                 **{**_SMALL, "max_iter": 3}),
    lambda: AAFM(dtype="float64", strength_form="monotone", variety=False,
                 **{**_SMALL, "max_iter": 2}),
    lambda: AAFM(dtype="float64", frequency=False, rating_threshold=None,
                 **{**_SMALL, "max_iter": 2}),
])
def test_hand_written_step_matches_autograd(monkeypatch, make):
    """The textbook FM trains by a hand-written gradient; on every step it must equal
    autograd's (the field-map backbone's path) for every parameter, bags and the adversary's
    strengths and penalty included."""
    cls = type(make())
    hand = cls._manual_step
    adversarial_steps = []

    def both(self, codes, scale, y, stats):
        params = self._tr.opt.params
        ref = self._autograd_step(codes, y, stats)
        ref_grads = [None if p.grad is None else p.grad.clone() for p in params]
        for p in params:
            p.grad = None
        out = hand(self, codes, scale, y, stats)
        for p, g in zip(params, ref_grads):  # (the strengths have none in a clean epoch)
            assert (p.grad is None) == (g is None)
            if g is not None:
                torch.testing.assert_close(p.grad, g, rtol=1e-7, atol=1e-10)
        for key, value in ref.items():
            torch.testing.assert_close(out[key].detach(), value.detach(), rtol=1e-9, atol=0)
        adversarial_steps.append(self._tr.adv_on)
        return out

    monkeypatch.setattr(cls, "_manual_step", both)
    make().fit(_table())
    assert adversarial_steps and (any(adversarial_steps) == (cls is not FM))
