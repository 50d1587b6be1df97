import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from skadvrec._torch import dense_rows, make_generator
from skadvrec.datasets import make_interactions
from skadvrec.metrics import LeakageScorer, NDCGScorer, attribute_leakage, ndcg_at_k
from skadvrec.model_selection import BestWithinLoss, UserHoldout, fold_in_split
from skadvrec.vae import AdvXMultVAE, MultVAE

# small and fast: 6 updates per epoch, 30 epochs, fixed β
KW = dict(hidden_dims=(64,), latent_dim=16, batch_size=100, max_iter=30, anneal_steps=0,
          early_stopping=False, device="cpu", random_state=0)
# adversaries that keep up with the encoder within few updates
ADV = dict(n_heads=10, adversary_learning_rate=1e-2)
TINY = dict(hidden_dims=(8,), latent_dim=4, batch_size=50, max_iter=2, early_stopping=False,
            device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    # a planted group preference (and an age that follows the group): 600 training users and
    # 400 held-out users on which the leakage is audited
    d = make_interactions(n_users=1000, n_items=120, density=0.1, attribute_signal=1.0,
                          random_state=0)
    S = d.sensitive_features.reset_index(drop=True)
    return d.X[:600], d.X[600:], S.iloc[:600], S.iloc[600:]


@pytest.fixture(scope="module")
def vae(data):
    tr, _, _, _ = data
    return MultVAE(**KW).fit(tr)


@pytest.fixture(scope="module")
def vae_leak(data, vae):
    _, te, _, S_te = data
    return attribute_leakage(vae, te, S_te)


def _adv(data, **params):
    tr, _, S_tr, _ = data
    return AdvXMultVAE(**{**KW, **ADV, **params}).fit(tr, sensitive_features=S_tr)


def test_multvae_beats_popularity_with_early_stopping():
    d = make_interactions(n_users=800, n_items=120, density=0.1, attribute_signal=3.0,
                          random_state=1)
    tr, va, te = d.X[:500], d.X[500:600], d.X[600:]
    m = MultVAE(**{**KW, "early_stopping": True, "max_iter": 40, "n_iter_no_change": 5,
                   "validation_metric": "ndcg@20"}).fit(tr, validation_data=va)
    x_in, x_out = fold_in_split(te, 0.8, random_state=0)  # the split score() uses
    pop = np.tile(np.asarray(tr.sum(axis=0)).ravel(), (te.shape[0], 1))
    pop_ndcg = ndcg_at_k(x_out, pop, k=100, exclude=x_in)
    assert m.score(te) > pop_ndcg + 0.15
    # history_[0] scores the untrained model (epoch 0), then one record per epoch
    assert [h["epoch"] for h in m.history_] == list(range(m.n_iter_ + 1))
    vals = [h["val_ndcg@20"] for h in m.history_]
    assert m.best_epoch_ == int(np.argmax(vals))
    assert m.best_validation_score_ == max(vals)
    assert m.n_iter_ <= 40
    assert m.n_iter_ == 40 or m.n_iter_ == m.best_epoch_ + 5  # stopped after 5 stale epochs
    assert vals[m.best_epoch_] > vals[0]


def test_early_stopping_restores_the_best_epoch_exactly():
    d = make_interactions(n_users=500, n_items=60, density=0.1, attribute_signal=1.5,
                          random_state=3)
    S = d.sensitive_features.reset_index(drop=True)
    tr, va, S_tr = d.X[:400], d.X[400:], S.iloc[:400]
    # a high learning rate overfits within a few epochs; no stop before max_iter
    params = dict(hidden_dims=(16,), latent_dim=8, batch_size=64, learning_rate=3e-2,
                  anneal_steps=0, grad_scale=20.0, n_heads=3, adversary_input="mean",
                  early_stopping=True, n_iter_no_change=100, validation_metric="ndcg@20",
                  device="cpu", random_state=0)
    m = AdvXMultVAE(**params, max_iter=12).fit(tr, sensitive_features=S_tr, validation_data=va)
    assert m.history_[0] == {"epoch": 0, "seconds": 0.0, "val_ndcg@20": m.history_[0][
        "val_ndcg@20"]}  # the untrained model is a candidate
    assert [h["epoch"] for h in m.history_] == list(range(13)) and m.n_iter_ == 12
    assert 0 < m.best_epoch_ < m.n_iter_  # the last epoch is not the best one here
    # re-score the kept model on the validation split that fit made (seeded: fit draws the
    # torch generator from random_state first, then the fold-in seed)
    rng = np.random.RandomState(0)
    make_generator(rng, "cpu")
    v_in, v_out = fold_in_split(va, 0.8, random_state=rng.randint(2**31 - 1))
    score = float(np.nanmean(m.evaluate(v_in, ["ndcg@20"], targets=v_out)[0]["ndcg@20"]))
    assert score == m.best_validation_score_ == m.history_[m.best_epoch_]["val_ndcg@20"]
    assert score != m.history_[-1]["val_ndcg@20"]  # not the last epoch's model
    # the same training run stopped at best_epoch_ ends with the same autoencoder and
    # adversaries: both were restored from the best epoch's snapshot
    b = AdvXMultVAE(**params, max_iter=m.best_epoch_).fit(tr, sensitive_features=S_tr,
                                                          validation_data=va)
    assert b.best_epoch_ == b.n_iter_ == m.best_epoch_
    np.testing.assert_array_equal(b.predict(va), m.predict(va))
    for p, q in zip(b.adversaries_.parameters(), m.adversaries_.parameters(), strict=True):
        assert torch.equal(p, q)


def test_transform_is_latent_mean_and_predict_its_logits(data, vae):
    _, te, _, _ = data
    Z = vae.transform(te)
    assert Z.shape == (te.shape[0], 16)
    with torch.no_grad():
        xb = dense_rows(te, slice(None), "cpu", torch.float32)
        mu, logvar = vae.vae_.encode(xb)
        logits = vae.vae_.decode(mu)
    np.testing.assert_allclose(Z, mu.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vae.predict(te), logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(vae.transform(te), Z)  # no dropout, no sampling at eval
    # history: one record per epoch, losses read back as floats, β fixed
    assert len(vae.history_) == vae.n_iter_ == 30 and vae.n_steps_ == 30 * 6
    assert vae.history_[-1]["nll"] < vae.history_[0]["nll"]
    assert all(h["beta"] == 0.2 for h in vae.history_)


def test_beta_annealing_is_recorded():
    X = make_interactions(n_users=300, n_items=40, random_state=0).X
    m = MultVAE(**{**TINY, "max_iter": 4, "batch_size": 100, "anneal_steps": 10,
                   "beta_cap": 0.5}).fit(X)
    # 3 updates per epoch; β = min(0.5, step / 10) at the epoch's last update (steps 2, 5, ...)
    assert [h["beta"] for h in m.history_] == pytest.approx([0.2, 0.5, 0.5, 0.5])
    fixed = MultVAE(**{**TINY, "anneal_steps": 0, "beta_cap": 0.3}).fit(X)
    assert [h["beta"] for h in fixed.history_] == [0.3, 0.3]
    assert all(np.isfinite([h["loss"], h["kl"]]).all() for h in m.history_)


def test_batch_densified_path_matches_dense_path(monkeypatch):
    monkeypatch.setattr(MultVAE, "_sparse_input", False)  # the dense reference's two sources
    X = make_interactions(n_users=300, n_items=40, random_state=0).X
    dense = MultVAE(**TINY).fit(X)
    monkeypatch.setattr(MultVAE, "_dense_limit_bytes", 0)  # force per-batch dense_rows
    batched = MultVAE(**TINY).fit(X)
    np.testing.assert_allclose(batched.predict(X), dense.predict(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [MultVAE, AdvXMultVAE])
def test_sparse_batches_match_the_dense_path(monkeypatch, data, cls):
    """Training on CSR batches (embedding_bag first layer, likelihood on the non-zeros) gives
    the model the densified batches give, dropout included (the same uniforms are drawn)."""
    tr, te, S_tr, _ = data
    X = tr.copy()
    X.data = np.random.default_rng(0).integers(1, 4, X.nnz).astype(X.dtype)  # counts, not 0/1
    X = X.tolil()
    X[7] = 0  # an empty user, and the last one (trailing empty rows of the CSR)
    X[X.shape[0] - 1] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    kw = {**TINY, "dropout": 0.5, "max_iter": 3, "dtype": "float64"}
    fit = dict(sensitive_features=S_tr) if cls is AdvXMultVAE else {}
    if cls is AdvXMultVAE:
        kw.update(attributes=["group"])
    sparse = cls(**kw).fit(X, **fit)
    monkeypatch.setattr(cls, "_sparse_input", False)
    dense = cls(**kw).fit(X, **fit)
    for a, b in zip(sparse.history_, dense.history_):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-9)
    np.testing.assert_allclose(sparse.predict(te), dense.predict(te), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sparse.transform(te), dense.transform(te), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_csr_encoder_with_dropout_equals_the_dense_encoder(data, dtype):
    """With the same dropout mask on the non-zeros, the CSR encoder is the dense one."""
    from skadvrec.vae.multvae import _VAE, _CSRRows

    X = data[0][:60].copy()
    X.data = np.random.default_rng(1).random(X.nnz) + 0.5
    gen = torch.Generator().manual_seed(0)
    vae = _VAE(X.shape[1], (16,), 4, 0.5, gen, torch.device("cpu"), dtype)
    idx = torch.tensor([5, 0, 59, 5, 17])
    batch = _CSRRows(X, torch.device("cpu"), dtype)(idx)
    row, col = batch[0], batch[1]
    keep = torch.rand(col.shape, generator=gen) >= 0.5
    mu, logvar = vae.encode_csr(batch, generator=gen, keep=keep)
    # the dense input with the same mask: ones at the zeros (they stay zero either way)
    xb = dense_rows(X, idx.numpy(), "cpu", dtype)
    mask = torch.ones_like(xb)
    mask[row, col] = keep.to(dtype)
    h = torch.nn.functional.normalize(xb, dim=1) * mask * 2.0
    mu_d, logvar_d = vae._encode_from(torch.addmm(vae.enc_b[0], h, vae.enc_w[0]))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(mu, mu_d, atol=tol, rtol=tol)
    torch.testing.assert_close(logvar, logvar_d, atol=tol, rtol=tol)
    # and without dropout (evaluation), against the public dense encoder
    mu0, _ = vae.encode_csr(batch)
    torch.testing.assert_close(mu0, vae.encode(xb)[0], atol=tol, rtol=tol)


def test_zero_lambda_leaves_the_autoencoder_of_multvae(data, vae):
    _, te, _, _ = data
    m = _adv(data, grad_scale=0.0)
    np.testing.assert_allclose(m.predict(te), vae.predict(te), rtol=1e-6, atol=1e-6)
    # the inert adversaries still train
    losses = [h["adversary_loss_group"] for h in m.history_]
    assert losses[-1] < losses[0] - 0.1
    assert m.grad_scales_ == {"group": 0.0, "age": 0.0}


def test_group_adversary_reduces_leakage(data, vae_leak):
    _, te, _, S_te = data
    m = _adv(data, attributes="group", grad_scale=50.0)
    leak = attribute_leakage(m, te, S_te, attributes="group")
    before = vae_leak.loc["group"]
    assert before["balanced_accuracy"] > 0.85  # the planted group is plain in MultVAE's μ
    # the audit's strongest attacker: its whole 95 % interval lies below MultVAE's leakage
    assert leak.loc["group", "balanced_accuracy_high"] < before["balanced_accuracy"] - 0.03
    assert leak.loc["group", "auc_high"] < before["auc_low"]
    assert m.attributes_ == ["group"] and list(m.classes_["group"]) == ["g0", "g1"]


def test_age_adversary_raises_attacker_mae(data, vae_leak):
    _, te, _, S_te = data
    m = _adv(data, attributes="age", grad_scale=50.0)
    leak = attribute_leakage(m, te, S_te, attributes="age")
    assert vae_leak.loc["age", "mae"] < vae_leak.loc["age", "mae_baseline"]  # μ reveals age
    assert leak.loc["age", "mae"] > vae_leak.loc["age", "mae"] + 0.3
    assert m.attribute_types_ == {"age": "continuous"} and m.classes_ == {}
    mean, std = m.target_scaling_["age"]
    assert 20 < mean < 60 and std > 1


def test_two_attributes_at_once(data, vae_leak):
    _, te, _, S_te = data
    m = _adv(data, grad_scale={"group": 50.0, "age": 50.0})
    assert m.attributes_ == ["group", "age"]
    assert m.attribute_types_ == {"group": "categorical", "age": "continuous"}
    assert len(m.adversaries_) == 2
    assert {"adversary_loss_group", "adversary_loss_age"} <= set(m.history_[-1])
    leak = attribute_leakage(m, te, S_te)
    assert leak.loc["group", "balanced_accuracy"] < vae_leak.loc["group", "balanced_accuracy"]
    assert leak.loc["age", "mae"] > vae_leak.loc["age", "mae"]
    # ten parallel heads per attribute: (heads, latent, hidden) weights
    assert m.adversaries_[0].weights[0].shape == (10, 16, 5)
    assert m.adversaries_[0].weights[-1].shape == (10, 5, 2)
    assert m.adversaries_[1].weights[-1].shape == (10, 5, 1)


def test_adversaries_on_the_latent_mean(data, vae, vae_leak):
    _, te, _, S_te = data
    # λ = 0: the adversaries still see nothing of the encoder's gradient
    inert = _adv(data, grad_scale=0.0, adversary_input="mean")
    np.testing.assert_allclose(inert.predict(te), vae.predict(te), rtol=1e-6, atol=1e-6)
    on_mean = _adv(data, attributes="group", grad_scale=50.0, adversary_input="mean")
    on_sample = _adv(data, attributes="group", grad_scale=50.0)
    assert not np.allclose(on_mean.transform(te), on_sample.transform(te))
    leak = attribute_leakage(on_mean, te, S_te, attributes="group")
    assert leak.loc["group", "balanced_accuracy_high"] < vae_leak.loc["group", "balanced_accuracy"]
    assert leak.loc["group", "auc"] < vae_leak.loc["group", "auc_low"]


def _linear_bacc(Z_tr, y_tr, Z_te, y_te):
    """Held-out balanced accuracy of a standardised, class-balanced logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced",
                                                             max_iter=2000))
    return balanced_accuracy_score(y_te, clf.fit(Z_tr, y_tr).predict(Z_te))


@pytest.fixture(scope="module")
def inert_group(data):
    # λ = 0 on the latent mean: the autoencoder is MultVAE's; the group adversary trains alone
    return _adv(data, attributes="group", grad_scale=0.0, adversary_input="mean",
                post_erasure="linear")


def test_post_erasure_removes_the_linear_signal_and_decodes_the_erased_mean(data, vae,
                                                                         inert_group):
    import copy
    from skadvrec.erasure import LinearErasure
    tr, te, S_tr, S_te = data
    m = inert_group
    assert m.post_eraser_.rank_ == 1 and m.post_eraser_.attributes_ == ["group"]
    y_tr, y_te = S_tr["group"].to_numpy(), S_te["group"].to_numpy()
    # MultVAE's μ shows the planted group to a linear attacker; the erased μ does not
    assert _linear_bacc(vae.transform(tr), y_tr, vae.transform(te), y_te) > 0.85
    assert abs(_linear_bacc(m.transform(tr), y_tr, m.transform(te), y_te) - 0.5) < 0.06
    # the eraser is LinearErasure fitted on the raw μ of the fit's users, applied to μ
    raw = copy.copy(m)
    raw.post_eraser_ = None
    np.testing.assert_allclose(raw.transform(te), vae.transform(te), rtol=1e-5, atol=1e-5)
    ref = LinearErasure(attributes=["group"]).fit(raw.transform(tr), S_tr["group"])
    np.testing.assert_allclose(m.transform(te), ref.transform(raw.transform(te)), atol=1e-5)
    # scoring decodes the erased μ (fold-in rows), and accuracy stays close to MultVAE's
    with torch.no_grad():
        dec = m.vae_.decode(torch.as_tensor(m.transform(te))).numpy()
    np.testing.assert_allclose(m.predict(te), dec, rtol=1e-5, atol=1e-5)
    assert not np.allclose(m.predict(te), vae.predict(te), atol=1e-4)
    ndcg, ndcg_vae = m.score(te), vae.score(te)
    assert np.isfinite(ndcg) and ndcg > 0.85 * ndcg_vae
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.transform(te), m.transform(te))
    np.testing.assert_array_equal(m2.predict(te), m.predict(te))


def test_post_erasure_attribute_coding_and_errors():
    d = make_interactions(n_users=200, n_items=40, attribute_signal=1.0, random_state=0)
    S = d.sensitive_features.reset_index(drop=True)
    S["age"] = pd.cut(S["age"], 5, labels=False).astype(float)  # 5 levels: erased one-hot
    m = AdvXMultVAE(post_erasure="linear", **{**TINY, "latent_dim": 8}).fit(
        d.X, sensitive_features=S)
    assert m.post_eraser_.attribute_types_ == {"group": "categorical", "age": "categorical"}
    assert m.post_eraser_.rank_ == 1 + 4
    assert m.attribute_types_["age"] == "continuous"  # the adversary still regresses it
    S["age"] = d.sensitive_features["age"].to_numpy()  # many levels: erased as a value
    m = AdvXMultVAE(post_erasure="linear", **{**TINY, "latent_dim": 8}).fit(
        d.X, sensitive_features=S)
    assert m.post_eraser_.attribute_types_["age"] == "continuous"
    assert m.post_eraser_.rank_ == 2
    assert AdvXMultVAE(**TINY).fit(d.X, sensitive_features=S).post_eraser_ is None
    with pytest.raises(ValueError, match="'post_erasure' parameter of AdvXMultVAE must be a "
                                         "str among {'linear'} or None. Got 'leace' instead"):
        AdvXMultVAE(post_erasure="leace", **TINY).fit(d.X, sensitive_features=S)
    for bad in [dict(adversary_steps=0), dict(lambda_warmup=-1),
                dict(adversary_reinit_every=-2)]:
        with pytest.raises(ValueError, match=f"'{next(iter(bad))}' parameter of AdvXMultVAE"):
            AdvXMultVAE(**TINY, **bad).fit(d.X, sensitive_features=S)


def test_adversary_steps_train_the_adversary_harder(data, vae, inert_group):
    _, te, _, _ = data
    m = _adv(data, attributes="group", grad_scale=0.0, adversary_input="mean",
             adversary_steps=5)
    # λ = 0: the extra steps touch only the adversaries, the autoencoder stays MultVAE's
    np.testing.assert_allclose(m.predict(te), vae.predict(te), rtol=1e-6, atol=1e-6)
    one = [h["adversary_loss_group"] for h in inert_group.history_]
    five = [h["adversary_loss_group"] for h in m.history_]
    # closer to the best response: lower in every epoch, clearly so while they are learning
    assert all(f < o for f, o in zip(five, one))
    assert np.mean(five[:10]) < np.mean(one[:10]) - 0.03


def test_lambda_warmup_ramps_lambda_and_skips_warmup_epochs_in_early_stopping(data):
    tr, te, S_tr, _ = data
    # first warm-up epoch: λ_eff = 0, so the autoencoder is MultVAE's after that epoch
    one = {**KW, "max_iter": 1}
    m = AdvXMultVAE(grad_scale=50.0, lambda_warmup=4, **ADV, **one).fit(
        tr, sensitive_features=S_tr)
    np.testing.assert_allclose(m.predict(te), MultVAE(**one).fit(tr).predict(te), rtol=1e-6,
                               atol=1e-6)
    m_now = AdvXMultVAE(grad_scale=50.0, **ADV, **one).fit(tr, sensitive_features=S_tr)
    assert not np.allclose(m_now.predict(te), m.predict(te), atol=1e-4)
    es = dict(early_stopping=True, validation_metric="ndcg@20", n_iter_no_change=2,
              max_iter=8)
    m = AdvXMultVAE(grad_scale=50.0, lambda_warmup=4, **ADV, **{**KW, **es}).fit(
        tr, sensitive_features=S_tr)
    factors = [h["lambda_factor"] for h in m.history_ if h["epoch"] > 0]
    assert factors[:6] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    # n_iter_no_change=2 would have stopped inside the warm-up if it counted there
    assert m.n_iter_ >= 6 and m.best_epoch_ > 4


def test_adversary_reinit_redraws_the_heads(data, vae, inert_group):
    _, te, _, _ = data
    m = _adv(data, attributes="group", grad_scale=0.0, adversary_input="mean",
             adversary_reinit_every=1)
    np.testing.assert_allclose(m.predict(te), vae.predict(te), rtol=1e-6, atol=1e-6)
    assert [h["adversary_reinit"] for h in m.history_[:3]] == [False, True, True]
    kept = [h["adversary_loss_group"] for h in inert_group.history_]
    fresh = [h["adversary_loss_group"] for h in m.history_]
    assert fresh[0] == pytest.approx(kept[0])  # the same first epoch
    assert fresh[-1] > kept[-1] + 0.02  # fresh heads every epoch never get as good
    w = m.adversaries_[0].weights[0]
    assert not torch.allclose(w, inert_group.adversaries_[0].weights[0])


def test_stronger_adversaries_reduce_leakage_vs_multvae(data, vae_leak):
    _, te, _, S_te = data
    m = _adv(data, attributes="group", grad_scale=50.0, adversary_input="mean",
             adversary_steps=3, lambda_warmup=3, adversary_reinit_every=10)
    leak = attribute_leakage(m, te, S_te, attributes="group")
    before = vae_leak.loc["group"]
    assert leak.loc["group", "balanced_accuracy_high"] < before["balanced_accuracy"] - 0.03
    assert leak.loc["group", "auc_high"] < before["auc_low"]


def test_attribute_type_inference_override_and_missing_values():
    d = make_interactions(n_users=200, n_items=40, random_state=0)
    rng = np.random.default_rng(0)
    S = pd.DataFrame({"gender": rng.choice(["F", "M"], 200),
                      "age": rng.normal(35, 10, 200),
                      "occupation": rng.integers(0, 4, 200),
                      "flag": rng.random(200) > 0.5})
    S.loc[:9, "age"] = np.nan  # users with unknown age do not count in that adversary
    m = AdvXMultVAE(**TINY).fit(d.X, sensitive_features=S)
    assert m.attribute_types_ == {"gender": "categorical", "age": "continuous",
                                  "occupation": "continuous", "flag": "categorical"}
    m = AdvXMultVAE(attribute_types={"occupation": "categorical"}, **TINY).fit(
        d.X, sensitive_features=S)
    assert m.attribute_types_["occupation"] == "categorical"
    assert list(m.classes_["occupation"]) == [0, 1, 2, 3]
    assert list(m.classes_["flag"]) == [False, True]
    assert m.adversaries_[2].weights[-1].shape[-1] == 4
    assert np.isfinite(m.history_[-1]["adversary_loss_age"])
    # class_weight="balanced": inverse class frequency
    counts = S["gender"].value_counts().sort_index().to_numpy()
    np.testing.assert_allclose(m.class_weights_["gender"], 200 / (2 * counts))
    m = AdvXMultVAE(attributes=["gender"], class_weight=None, **TINY).fit(
        d.X, sensitive_features=S)
    np.testing.assert_array_equal(m.class_weights_["gender"], [1.0, 1.0])


def test_clear_errors():
    d = make_interactions(n_users=200, n_items=40, random_state=0)
    X, S = d.X, d.sensitive_features
    with pytest.raises(ValueError, match="set_fit_request\\(sensitive_features=True\\)"):
        AdvXMultVAE(**TINY).fit(X)
    with pytest.raises(ValueError, match=r"\['gender'\] are not columns"):
        AdvXMultVAE(attributes="gender", **TINY).fit(X, sensitive_features=S)
    one = S.assign(group="g0")
    with pytest.raises(ValueError, match="'group' has 1 class.*at least two"):
        AdvXMultVAE(attributes="group", **TINY).fit(X, sensitive_features=one)
    with pytest.raises(ValueError, match="'age' has a single value"):
        AdvXMultVAE(**TINY).fit(X, sensitive_features=S.assign(age=30.0))
    with pytest.raises(ValueError, match="one λ per removed attribute"):
        AdvXMultVAE(grad_scale={"group": 1.0}, **TINY).fit(X, sensitive_features=S)
    with pytest.raises(ValueError, match=r"'grad_scale' parameter of AdvXMultVAE must be a "
                                         r"float in the range \[0.0, inf\) or an instance of"):
        AdvXMultVAE(grad_scale=-1.0, **TINY).fit(X, sensitive_features=S)
    with pytest.raises(ValueError, match="grad_scale for 'group' must be a finite number >= 0"):
        AdvXMultVAE(grad_scale={"group": -1.0, "age": 1.0}, **TINY).fit(X, sensitive_features=S)
    with pytest.raises(ValueError, match="must be 'categorical' or 'continuous'"):
        AdvXMultVAE(attribute_types={"age": "ordinal"}, **TINY).fit(X, sensitive_features=S)
    with pytest.raises(ValueError, match="'group' is set to continuous"):
        AdvXMultVAE(attribute_types={"group": "continuous"}, **TINY).fit(
            X, sensitive_features=S)
    with pytest.raises(ValueError, match="'adversary_input' parameter of AdvXMultVAE must be "
                                         "a str among .*'sample'.*Got 'mu' instead"):
        AdvXMultVAE(adversary_input="mu", **TINY).fit(X, sensitive_features=S)
    with pytest.raises(ValueError, match="'class_weight' parameter of AdvXMultVAE must be a str "
                                         "among {'balanced'} or None. Got 'auto' instead"):
        AdvXMultVAE(class_weight="auto", **TINY).fit(X, sensitive_features=S)
    with pytest.raises(ValueError, match="adversary_hidden must be a tuple of positive ints"):
        AdvXMultVAE(adversary_hidden=(5, 0), **TINY).fit(X, sensitive_features=S)
    with pytest.raises(ValueError, match="has 3 rows but X has 200"):
        AdvXMultVAE(**TINY).fit(X, sensitive_features=S.iloc[:3])
    for bad, msg in [(dict(hidden_dims=600), "'hidden_dims' parameter of MultVAE must be an "
                                             "instance of 'tuple' or an instance of 'list'"),
                     (dict(hidden_dims=(8, 0)), "hidden_dims must be a tuple of positive ints"),
                     (dict(dropout=1.0), r"'dropout' parameter of MultVAE must be a float in "
                                         r"the range \[0.0, 1.0\). Got 1.0"),
                     (dict(latent_dim=0), r"'latent_dim' parameter of MultVAE must be an int "
                                          r"in the range \[1, inf\). Got 0"),
                     (dict(anneal_steps=-1), r"'anneal_steps' parameter of MultVAE must be an "
                                             r"int in the range \[0, inf\). Got -1"),
                     (dict(learning_rate=0.0), r"'learning_rate' parameter of MultVAE must be a "
                                               r"float in the range \(0.0, inf\)"),
                     (dict(early_stopping=True, validation_metric="ndcg@100"),
                      "k is larger than the number of items")]:
        with pytest.raises(ValueError, match=msg):
            MultVAE(**{**TINY, **bad}).fit(X)
    with pytest.raises(ValueError, match="validation_data has 30 items"):
        MultVAE(**{**TINY, "early_stopping": True, "validation_metric": "ndcg@10"}).fit(
            X, validation_data=X[:, :30])


def test_gridsearch_routes_sensitive_features_to_fit_and_scorer(data):
    tr, _, S_tr, _ = data
    S = S_tr.reset_index(drop=True)
    params = {**KW, **ADV, "max_iter": 15, "attributes": "group"}
    leak = LeakageScorer("group")
    cv = UserHoldout(n_splits=2, test_size=200, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        leak.set_score_request(sensitive_features=True)
        model = AdvXMultVAE(**params).set_fit_request(sensitive_features=True)
        search = GridSearchCV(model, {"grad_scale": [0.0, 50.0]}, cv=cv,
                              scoring={"ndcg": NDCGScorer(20), "leak": leak}, refit="ndcg")
        search.fit(tr, sensitive_features=S)
        # a consumer that was not asked to receive sensitive_features: sklearn refuses
        with pytest.raises(ValueError, match="set_fit_request"):
            GridSearchCV(AdvXMultVAE(**params), {"grad_scale": [0.0]}, cv=cv,
                         scoring={"leak": leak}, refit=False).fit(tr, sensitive_features=S)
        # MultVAE ignores sensitive_features (UNUSED): routing it to the scorer needs nothing
        plain = GridSearchCV(MultVAE(**{**KW, "max_iter": 3}), {"latent_dim": [8]}, cv=cv,
                             scoring={"ndcg": NDCGScorer(20), "leak": leak}, refit="ndcg")
        plain.fit(tr, sensitive_features=S)
    res = search.cv_results_
    assert np.all(np.isfinite(res["mean_test_ndcg"])) and np.all(res["mean_test_leak"] < 0)
    assert search.best_index_ == int(np.argmax(res["mean_test_ndcg"]))
    # the refit model is the best candidate: fitted on the first split's training users, a
    # clone of it reproduces the NDCG that the search recorded for that split
    tr_idx, te_idx = next(cv.split(tr))
    best = clone(search.best_estimator_).fit(tr[tr_idx], sensitive_features=S.iloc[tr_idx])
    assert NDCGScorer(20)(best, tr[te_idx]) == res["split0_test_ndcg"][search.best_index_]
    assert search.best_estimator_.grad_scales_ == {"group": search.best_params_["grad_scale"]}
    # λ = 50 leaks less (higher score = lower balanced accuracy) than λ = 0
    assert res["mean_test_leak"][1] > res["mean_test_leak"][0]
    assert np.isfinite(plain.cv_results_["mean_test_leak"]).all()
    # the accuracy-bounded refit rule on this search's results: a generous budget takes the
    # less leaky λ = 50, a zero budget the most accurate candidate
    assert BestWithinLoss("leak", "ndcg", max_relative_loss=1.0)(res) == 1
    assert BestWithinLoss("leak", "ndcg", max_relative_loss=0.0)(res) == search.best_index_


def test_table_form_and_pickle_round_trip():
    d = make_interactions(n_users=200, n_items=40, return_frame=True, random_state=0)
    df = d.interactions
    S_rows = d.sensitive_features.loc[df["user"]].reset_index(drop=True)  # one row per row
    m = AdvXMultVAE(**{**TINY, "rating_threshold": None}).fit(df, sensitive_features=S_rows)
    assert m.input_form_ == "table" and m.transform(df).shape == (200, 4)
    assert list(m.classes_["group"]) == ["g0", "g1"]
    X = make_interactions(n_users=200, n_items=40, random_state=0).X
    m = AdvXMultVAE(**TINY).fit(X, sensitive_features=d.sensitive_features)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.predict(X), m.predict(X))
    np.testing.assert_array_equal(m2.transform(X), m.transform(X))
    assert m2.attributes_ == m.attributes_ and len(m2.adversaries_) == 2
    assert m2.adversaries_[0].weights[0].device.type == "cpu"


@pytest.mark.cuda
def test_fits_on_cuda_and_pickles_to_cpu(data):
    tr, te, S_tr, _ = data
    m = AdvXMultVAE(**{**KW, **ADV, "device": "cuda", "grad_scale": 10.0}).fit(
        tr, sensitive_features=S_tr)
    assert m.device_.type == "cuda" and m.vae_.enc_w[0].device.type == "cuda"
    assert all(np.isfinite(h["loss"]) for h in m.history_)
    cpu = MultVAE(**KW).fit(tr)
    gpu = MultVAE(**{**KW, "device": "cuda"}).fit(tr)
    assert abs(gpu.score(te) - cpu.score(te)) < 0.03  # other random streams, same quality
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.transform(te).shape == (te.shape[0], 16)


_PREDICT_2D = ("predict returns an (n_users, n_items) score matrix, like a multi-output "
               "regressor over items; this check asserts predict(X).shape == (n_samples,)")


@parametrize_with_checks(
    [MultVAE(hidden_dims=(4,), latent_dim=2, batch_size=16, max_iter=2, early_stopping=False,
             device="cpu", random_state=0)],
    expected_failed_checks=lambda est: {"check_estimator_sparse_array": _PREDICT_2D,
                                        "check_estimator_sparse_matrix": _PREDICT_2D})
def test_sklearn_compatible(estimator, check):
    check(estimator)
