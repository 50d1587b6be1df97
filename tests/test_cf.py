"""BPR-MF, LightGCN, APR and PamaCF: sampling, propagation, the adversarial mechanism, the API."""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from skadvrec._sampling import sample_bpr_triples
from skadvrec.cf import APR, BPRMF, LightGCN, PamaCF
from skadvrec.cf._backbones import normalized_graph, propagate
from skadvrec.cf.adversarial import _Paper, _Personalised, _Uniform
from skadvrec.datasets import make_interactions
from skadvrec.model_selection import InteractionHoldout


@pytest.fixture(scope="module")
def table():
    """A synthetic interaction table with a train / test split of each user's rows."""
    df = make_interactions(n_users=300, n_items=80, density=0.15, random_state=0,
                           return_frame=True).interactions[["user", "item"]]
    tr, te = next(InteractionHoldout(test_size=0.2, random_state=0).split(df))
    return df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)


SMALL = dict(n_components=16, batch_size=256, device="cpu", random_state=0)


def _embeddings(model):
    return model.user_embeddings_.numpy(), model.item_embeddings_.numpy()


# -- sampling ---------------------------------------------------------------------------------
def _chi2_pvalue(users, cols, allowed):
    """p-value of "within each user, ``cols`` is uniform over the user's ``allowed`` items":
    the per-user chi-square statistics pooled (summed, with their degrees of freedom)."""
    n_users, n_items = allowed.shape
    n_u = np.bincount(users, minlength=n_users)
    obs = np.zeros((n_users, n_items))
    np.add.at(obs, (users, cols), 1)
    expected = n_u[:, None] * allowed / np.maximum(allowed.sum(1, keepdims=True), 1)
    cells = allowed & (n_u[:, None] > 0)
    stat = ((obs - expected)[cells] ** 2 / expected[cells]).sum()
    dof = (allowed.sum(1) - 1)[n_u > 0].sum()
    return stats.chi2.sf(stat, dof)


def test_sampler_is_uniform():
    """Users uniform over those with an item and a non-item; within a user, the positive uniform
    over their items and the negative uniform over the rest (chi-square, seeded draw)."""
    rng = np.random.default_rng(0)
    n_users, n_items, n = 40, 30, 200_000
    dense = rng.random((n_users, n_items)) < rng.uniform(0.05, 0.6, (n_users, 1))
    dense[0] = False             # no item: never drawn
    dense[1] = True              # every item, so no negative: never drawn
    dense[2] = np.arange(n_items) == 3  # a single positive
    X = sp.csr_matrix(dense.astype(np.float64))
    indptr = torch.from_numpy(X.indptr.astype(np.int64))
    indices = torch.from_numpy(X.indices.astype(np.int64))
    u, i, j = (t.numpy() for t in sample_bpr_triples(indptr, indices, n_items, n,
                                                      torch.Generator().manual_seed(0)))
    assert dense[u, i].all() and not dense[u, j].any()
    deg = dense.sum(1)
    active = (deg > 0) & (deg < n_items)
    n_u = np.bincount(u, minlength=n_users)
    assert n_u[~active].sum() == 0 and (n_u[active] > 0).all()
    assert stats.chisquare(n_u[active]).pvalue > 1e-3
    assert _chi2_pvalue(u, i, dense) > 1e-3
    assert _chi2_pvalue(u, j, ~dense) > 1e-3
    # the statistic has power: 5 % of the negatives moved to each user's first non-item
    biased = j.copy()
    biased[: n // 20] = np.argmin(dense, axis=1)[u[: n // 20]]
    assert _chi2_pvalue(u, biased, ~dense) < 1e-6
    # seeded: the same generator state gives the same triples, another seed others
    again = sample_bpr_triples(indptr, indices, n_items, n, torch.Generator().manual_seed(0))
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(again, (u, i, j)))
    other = sample_bpr_triples(indptr, indices, n_items, n, torch.Generator().manual_seed(1))
    assert not np.array_equal(other[2].numpy(), j)


def test_sampler_needs_a_negative():
    indptr, indices = torch.tensor([0, 2]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="negative"):
        sample_bpr_triples(indptr, indices, 2, 10, torch.Generator().manual_seed(0))


# -- LightGCN propagation ----------------------------------------------------------------------
def test_propagation_matches_dense_formula():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((6, 5)) < 0.4).astype(np.float64))
    X[0, 0] = 1.0
    graph = normalized_graph(X, "cpu", torch.float64)
    U = torch.randn(6, 3, dtype=torch.float64)
    V = torch.randn(5, 3, dtype=torch.float64)
    Uf, Vf = propagate(graph, U, V, 2)
    A = np.zeros((11, 11))
    A[:6, 6:] = X.toarray()
    A[6:, :6] = X.toarray().T
    d = A.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    A_hat = inv[:, None] * A * inv[None, :]
    E0 = np.vstack([U.numpy(), V.numpy()])
    E = (E0 + A_hat @ E0 + A_hat @ A_hat @ E0) / 3
    np.testing.assert_allclose(np.vstack([Uf.numpy(), Vf.numpy()]), E, atol=1e-12)


def test_propagation_gradient():
    X = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=float))
    graph = normalized_graph(X, "cpu", torch.float64)
    U = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    V = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: propagate(graph, a, b, 3), (U, V))


def test_propagation_embedding_bag_equals_torch_sparse_mm():
    """The embedding_bag products (forward and backward) equal torch.sparse.mm's (issue 14)."""
    rng = np.random.default_rng(1)
    X = sp.random(40, 25, density=0.15, format="csr", random_state=rng)
    X.data[:] = 1.0
    X = X.tolil()
    X[5, :] = 0  # an empty user and an empty item
    X[:, 7] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        graph = normalized_graph(X, "cpu", dtype)
        R = graph.R.to_sparse_coo()
        Rt = graph.Rt.to_sparse_coo()
        U0 = torch.randn(40, 8, dtype=dtype)
        V0 = torch.randn(25, 8, dtype=dtype)
        U, V = U0.clone().requires_grad_(), V0.clone().requires_grad_()
        Uf, Vf = propagate(graph, U, V, 3)
        (Uf.square().sum() + (Vf * torch.arange(8, dtype=dtype)).sum()).backward()
        # the reference: torch.sparse.mm with autograd through the sparse products
        Ur, Vr = U0.clone().requires_grad_(), V0.clone().requires_grad_()
        su, sv, eu, ev = Ur, Vr, Ur, Vr
        for _ in range(3):
            eu, ev = torch.sparse.mm(R, ev), torch.sparse.mm(Rt, eu)
            su, sv = su + eu, sv + ev
        Ufr, Vfr = su / 4, sv / 4
        (Ufr.square().sum() + (Vfr * torch.arange(8, dtype=dtype)).sum()).backward()
        for a, b in ((Uf, Ufr), (Vf, Vfr), (U.grad, Ur.grad), (V.grad, Vr.grad)):
            torch.testing.assert_close(a, b, atol=tol, rtol=tol)
        assert float(Uf[5].sub(U0[5] / 4).abs().max()) == 0.0  # the empty user keeps its ego/4


# -- equivalences that pin the shared mechanism -------------------------------------------------
def test_lightgcn_with_no_layer_is_bprmf(table):
    tr, _ = table
    a = BPRMF(max_iter=3, weight_decay=0.0, init_std=0.1, **SMALL).fit(tr)
    b = LightGCN(n_layers=0, max_iter=3, **SMALL).fit(tr)
    for x, y in zip(_embeddings(a), _embeddings(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_pamacf_special_cases(table):
    tr, _ = table
    base = BPRMF(max_iter=3, init_std=0.1, **SMALL).fit(tr)  # the PamaCF code's init
    off = PamaCF(adv_weight=0.0, n_pretrain_epochs=0, max_iter=3, **SMALL).fit(tr)
    for x, y in zip(_embeddings(base), _embeddings(off)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    apr = APR(eps=0.3, n_pretrain_epochs=1, max_iter=3, **SMALL).fit(tr)
    uni = PamaCF(rho=0.3, magnitude="uniform", n_pretrain_epochs=1, max_iter=3, **SMALL).fit(tr)
    for x, y in zip(_embeddings(apr), _embeddings(uni)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    pama = PamaCF(rho=0.3, n_pretrain_epochs=1, max_iter=3, **SMALL).fit(tr)
    assert not np.allclose(_embeddings(pama)[0], _embeddings(apr)[0])


def test_magnitude_rules():
    eu = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    c = _Personalised(0.9, 2.0).coefficients(eu, None, None)
    n2 = torch.tensor([1.0, 4.0, 0.25])
    np.testing.assert_allclose(c, 0.9 * 2 * torch.sigmoid(n2 / n2.mean() - 1), rtol=1e-6)
    assert c[1] > c[0] > c[2]  # a larger embedding tolerates a larger perturbation
    same = _Personalised(0.9, 2.0).coefficients(torch.ones(4, 3), None, None)
    np.testing.assert_allclose(same, 0.9, rtol=1e-6)  # average users get exactly rho
    U_all = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(_Paper(0.5).coefficients(eu, None, U_all),
                               0.5 * torch.sigmoid(torch.tensor([1.0, 2.0, 0.5]) - 2.0),
                               rtol=1e-6)
    np.testing.assert_allclose(_Uniform(0.4).coefficients(eu, None, None), 0.4)


def test_adversarial_term_is_a_worst_case(table):
    """Once switched on, the perturbed BPR loss exceeds the clean one (δ ascends the loss)."""
    tr, _ = table
    m = PamaCF(rho=0.2, n_pretrain_epochs=2, max_iter=4, **SMALL).fit(tr)
    assert [h["adversarial"] is None for h in m.history_] == [True, True, False, False]
    for h in m.history_[2:]:
        assert h["adversarial"] > h["bpr"]
        assert h["loss"] == pytest.approx(h["bpr"] + h["adversarial"], rel=0.05)


# -- learning ---------------------------------------------------------------------------------
_LEARN = dict(max_iter=40, learning_rate=5e-3, **SMALL)


@pytest.mark.parametrize("model", [
    BPRMF(**_LEARN), LightGCN(n_layers=2, **_LEARN), APR(eps=0.1, **_LEARN),
    PamaCF(rho=0.1, **_LEARN), PamaCF(rho=0.1, backbone="lightgcn", n_layers=2, **_LEARN),
], ids=["bprmf", "lightgcn", "apr", "pamacf", "pamacf-lightgcn"])
def test_models_learn_to_rank(table, model):
    tr, te = table
    model.fit(tr)
    vals, _ = model.evaluate(te, ["recall_all@20", "ndcg@20"])
    recall = np.nanmean(vals["recall_all@20"])
    # random ranking of the ~70 unseen items gives recall@20 ~ 20/70 = 0.29
    assert recall > 0.5, recall
    assert model.history_[-1]["bpr"] < model.history_[0]["bpr"]
    assert model.n_iter_ == 40 and model.best_epoch_ == 40


def test_early_stopping_with_validation_table(table):
    tr, te = table
    m = BPRMF(max_iter=200, early_stopping=True, n_iter_no_change=3, **SMALL)
    m.fit(tr, validation_data=te)
    assert m.n_iter_ < 200
    assert m.best_epoch_ == m.n_iter_ - 3
    assert m.best_validation_score_ == max(h["val_recall@20"] for h in m.history_)
    m2 = BPRMF(max_iter=5, early_stopping=True, validation_fraction=0.2, **SMALL).fit(tr)
    assert all("val_recall@20" in h for h in m2.history_)
    with pytest.raises(ValueError, match="not in X"):
        BPRMF(max_iter=2, early_stopping=True, **SMALL).fit(
            tr, validation_data=pd.DataFrame({"user": [10**6], "item": [0]}))


def test_early_stopping_restores_the_best_epoch(table):
    """The kept embeddings are the best epoch's: the fitted model, re-scored on the validation
    data it was given, reproduces ``best_validation_score_`` exactly; epoch 0 is the untrained
    model."""
    tr, te = table
    te = te.sort_values("user", kind="stable")  # users in the validation order: same batches
    m = BPRMF(max_iter=100, learning_rate=5e-3, early_stopping=True, n_iter_no_change=4,
              **SMALL).fit(tr, validation_data=te)
    h = m.history_
    assert [r["epoch"] for r in h] == list(range(m.n_iter_ + 1))
    assert "loss" not in h[0] and all("loss" in r for r in h[1:])
    scores = [r["val_recall@20"] for r in h]
    assert m.best_validation_score_ == max(scores) == scores[m.best_epoch_]
    assert 0 < m.best_epoch_ < m.n_iter_ and scores[-1] < m.best_validation_score_
    vals, _ = m.evaluate(te, ["recall@20"])
    assert not np.isnan(vals["recall@20"]).any()
    assert np.mean(vals["recall@20"]) == m.best_validation_score_


def test_diverging_training_raises(table):
    with pytest.raises(FloatingPointError, match="epoch 1"):
        BPRMF(init_std=1e20, max_iter=3, **SMALL).fit(table[0])


# -- the data contract ----------------------------------------------------------------------------
def test_table_form_scores_fitted_users(table):
    tr, te = table
    m = BPRMF(max_iter=5, **SMALL).fit(tr)
    users = np.sort(tr.user.unique())[:4]
    rec = m.recommend(tr[tr.user.isin(users)], k=3)
    assert len(rec) == 12 and set(rec.user) == set(users)
    seen = set(zip(tr.user, tr.item))
    assert not any((u, i) in seen for u, i in zip(rec.user, rec.item))
    scores = m.predict(tr[tr.user == users[0]])
    u = np.searchsorted(m.user_ids_, users[0])
    expect = (m.user_embeddings_[u] @ m.item_embeddings_.T).numpy()
    np.testing.assert_allclose(scores[0], expect, rtol=1e-5)
    np.testing.assert_allclose(m.transform(tr[tr.user == users[0]])[0],
                               m.user_embeddings_[u].numpy())
    with pytest.raises(ValueError, match="not seen in fit"):
        m.predict(pd.DataFrame({"user": [10**6], "item": [0]}))


def test_matrix_form_folds_in_new_users():
    X = make_interactions(n_users=400, n_items=80, density=0.15, random_state=1).X
    m = BPRMF(**_LEARN).fit(X[:300])
    Z = m.transform(X[300:])
    P = m.fold_in_projection_.numpy()
    np.testing.assert_allclose(Z, X[300:].toarray() @ P, rtol=1e-4, atol=1e-6)
    score = m.score(X[300:])  # NDCG@20 of the folded-in held-out users
    rng = np.random.default_rng(0)
    from skadvrec.metrics import ndcg_at_k
    from skadvrec.model_selection import fold_in_split
    X_in, X_out = fold_in_split(X[300:], 0.8, random_state=0)
    chance = ndcg_at_k(X_out, rng.random(X_out.shape), k=20, exclude=X_in)
    assert score > chance + 0.1


def test_pickle_roundtrip(table):
    tr, te = table
    m = PamaCF(max_iter=3, n_pretrain_epochs=1, **SMALL).fit(tr)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m.predict(te), m2.predict(te))


@pytest.mark.parametrize("params, match", [
    (dict(backbone="gcn"), "backbone"), (dict(magnitude="huge"), "magnitude"),
    (dict(rho=-1.0), "rho"), (dict(n_components=0), "n_components"),
    (dict(learning_rate=0.0), "learning_rate"), (dict(n_pretrain_epochs=-1), "n_pretrain"),
    (dict(early_stopping=True, validation_fraction=1.5), "validation_fraction"),
    (dict(n_layers=-1), "n_layers"), (dict(gamma=-0.5), "gamma"), (dict(reg=-1.0), "reg"),
    (dict(adv_weight="high"), "adv_weight"), (dict(fold_in_l2=0.0), "fold_in_l2"),
])
def test_bad_parameters(table, params, match):
    with pytest.raises(ValueError, match=match):
        PamaCF(max_iter=1, **{**SMALL, **params}).fit(table[0])


@pytest.mark.cuda
def test_cuda_fit_matches_cpu_quality(table):
    tr, te = table
    cpu = PamaCF(rho=0.1, max_iter=20, **SMALL).fit(tr)
    gpu = PamaCF(rho=0.1, max_iter=20, **{**SMALL, "device": "cuda"}).fit(tr)
    r_cpu = np.nanmean(cpu.evaluate(te, ["recall_all@20"])[0]["recall_all@20"])
    r_gpu = np.nanmean(gpu.evaluate(te, ["recall_all@20"])[0]["recall_all@20"])
    assert abs(r_cpu - r_gpu) < 0.05
    lg = LightGCN(max_iter=5, **{**SMALL, "device": "cuda"}).fit(tr)
    assert lg.user_embeddings_.device.type == "cuda"
    assert pickle.loads(pickle.dumps(lg)).user_embeddings_.device.type == "cpu"


# -- attacks, robustness and model selection ---------------------------------------------------
def test_attack_raises_target_hit_ratio_of_bprmf(table):
    """BPR-MF trained on poisoned data ranks the attack's targets higher for genuine users."""
    from skadvrec.attacks import RandomAttack, select_target_items
    from skadvrec.metrics import target_hit_ratio

    tr, te = table
    targets = select_target_items(tr, 3, random_state=0)
    # the PamaCF code's init (the robustness protocol's), not BPRMF's default since issue 14
    clean = BPRMF(init_std=0.1, **_LEARN).fit(tr)
    attack = RandomAttack(target_items=targets, n_fake_users=0.2, random_state=0)
    poisoned = BPRMF(init_std=0.1, **_LEARN).fit(attack.fit_transform(tr))
    before = target_hit_ratio(clean, te, targets, k=10)
    after = target_hit_ratio(poisoned, te, targets, k=10)
    assert after > 2 * before and after > before + 0.04, (before, after)


def test_rho_grid_search_with_recall_and_target_hit_ratio(table):
    """One multi-metric search over PamaCF's rho: Recall@20 (refit) and T-HR@10. Its scores are
    the ones a user gets by fitting the chosen pipeline on a split themselves."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from skadvrec.attacks import RandomAttack
    from skadvrec.metrics import RankingScorer, TargetHitRatioScorer

    tr, _ = table
    pipe = Pipeline([("attack", RandomAttack(n_targets=3, n_fake_users=0.1, random_state=0)),
                     ("model", PamaCF(n_pretrain_epochs=5, **{**_LEARN, "max_iter": 15}))])
    cv = InteractionHoldout(n_splits=2, test_size=0.2, random_state=0)
    scoring = {"recall": RankingScorer("recall_all@20"), "thr": TargetHitRatioScorer(k=10)}
    search = GridSearchCV(pipe, {"model__rho": [0.05, 0.3]}, cv=cv, scoring=scoring,
                          refit="recall").fit(tr)
    res = search.cv_results_
    assert np.all(res["mean_test_recall"] > 0.4)
    assert np.all(res["mean_test_thr"] <= 0) and np.all(res["mean_test_thr"] >= -1)
    assert res["mean_test_recall"][0] != res["mean_test_recall"][1]  # rho has an effect
    # refit on the whole table with the chosen rho
    assert search.best_estimator_.named_steps["model"].n_iter_ == 15
    assert search.best_estimator_.named_steps["model"].rho == search.best_params_["model__rho"]
    # the chosen candidate, fitted by hand on the first split, scores what the search recorded
    fit_idx, test_idx = next(cv.split(tr))
    best = clone(pipe).set_params(**search.best_params_).fit(tr.iloc[fit_idx])
    for name, scorer in scoring.items():
        assert scorer(best, tr.iloc[test_idx]) == res[f"split0_test_{name}"][search.best_index_]


def test_collapse_is_reported(table):
    """A perturbation far above the embedding norms drives every score to 0: say so."""
    from sklearn.exceptions import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="collapsed"):
        m = APR(eps=5.0, n_pretrain_epochs=1, max_iter=6, **SMALL).fit(table[0])
    assert m.history_[-1]["bpr"] > 0.99 * np.log(2)


# -- row-sparse training ---------------------------------------------------------------------------
def test_row_adamw_matches_adamw_on_the_rows_it_touches():
    """With betas (0, 0) dense AdamW moves a row without gradient by the weight decay alone, so
    the row-sparse AdamW (lazy moments, exact decay through a common scale) must equal it for any pattern of
    touched rows; with the default betas, rows touched at every step and rows never touched
    match dense AdamW too."""
    from skadvrec._torch import RowAdamW

    gen = torch.Generator().manual_seed(0)
    for betas, always in [((0.0, 0.0), False), ((0.9, 0.999), True)]:
        W0 = torch.randn(12, 3, generator=gen, dtype=torch.float64)
        P = torch.nn.Parameter(W0.clone())
        dense = torch.optim.AdamW([P], lr=0.05, weight_decay=0.3, betas=betas)
        lazy = RowAdamW(W0, lr=0.05, weight_decay=0.3, betas=betas)
        for step in range(15):
            if always:
                rows = torch.arange(6)  # rows 6..11 never touched
            else:
                rows = torch.unique(torch.randint(12, (4,), generator=gen))
            target = torch.randn(len(rows), 3, generator=gen, dtype=torch.float64)
            p = lazy.fetch(rows)  # the rows as dense AdamW holds them now
            np.testing.assert_allclose(p, P.detach()[rows], rtol=1e-12, atol=1e-12)
            P.grad = torch.zeros_like(P)
            P.grad[rows] = P.detach()[rows] - target
            dense.step()
            lazy.step(rows, p, p - target)
        np.testing.assert_allclose(lazy.current(), P.detach(), rtol=1e-12, atol=1e-12)
        lazy.flush()
        W = lazy.table
        np.testing.assert_allclose(W, P.detach(), rtol=1e-12, atol=1e-12)
        # untouched rows were decayed, not left alone
        assert not np.allclose(W[6:] if always else W, W0[6:] if always else W0)


def _dense(model):
    model._sparse_updates = False
    return model


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # one step only
@pytest.mark.parametrize("model", [
    BPRMF(weight_decay=0.05, reg=0.01), APR(eps=0.3, n_pretrain_epochs=0, reg=0.01),
    PamaCF(rho=0.3, n_pretrain_epochs=0), PamaCF(rho=0.3, magnitude="paper",
                                                 n_pretrain_epochs=0),
], ids=["bprmf", "apr", "pamacf", "pamacf-paper"])
def test_sparse_step_equals_dense_step(table, model):
    """One step over the whole epoch (batch = every triple): the closed-form gradients of the
    row-sparse path (BPR, L2, the adversarial term) and its AdamW equal autograd + AdamW."""
    tr, _ = table
    params = dict(SMALL, batch_size=10**6, max_iter=1, dtype="float64")
    a = model.set_params(**params)
    a = type(a)(**a.get_params()).fit(tr)
    b = _dense(type(a)(**a.get_params())).fit(tr)
    for x, y in zip(_embeddings(a), _embeddings(b)):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    for k in ("loss", "bpr", "adversarial"):
        if a.history_[0][k] is not None:
            assert a.history_[0][k] == pytest.approx(b.history_[0][k], rel=1e-9)


@pytest.mark.parametrize("cls, params", [
    (BPRMF, {}), (APR, dict(eps=0.1, n_pretrain_epochs=5)),
    (PamaCF, dict(rho=0.1, n_pretrain_epochs=5)),
], ids=["bprmf", "apr", "pamacf"])
def test_sparse_training_matches_dense_training(table, cls, params):
    """Many steps: the lazy optimiser differs from dense AdamW only in the moments of rows a
    batch leaves out; the trained models rank equally well and reach the same losses."""
    tr, te = table
    kw = dict(_LEARN, max_iter=25, init_std=0.01, **params)
    sparse = cls(**kw).fit(tr)
    dense = _dense(cls(**kw)).fit(tr)
    assert sparse._sparse_updates and not dense._sparse_updates
    vs, _ = sparse.evaluate(te, ["recall_all@20", "ndcg@20"])
    vd, _ = dense.evaluate(te, ["recall_all@20", "ndcg@20"])
    for k in ("recall_all@20", "ndcg@20"):
        assert abs(np.nanmean(vs[k]) - np.nanmean(vd[k])) < 0.03, k
    assert sparse.history_[-1]["bpr"] == pytest.approx(dense.history_[-1]["bpr"], rel=0.1)
    # and they are different runs (the test can tell the paths apart)
    assert not np.allclose(_embeddings(sparse)[0], _embeddings(dense)[0])


def test_row_adamw_catch_up_follows_dense_adamw():
    """With the default betas and rows touched at random, the closed-form catch-up of the
    missed momentum keeps the row-sparse AdamW close to dense AdamW; without it (plain lazy
    Adam) the rows lag far behind."""
    from skadvrec._torch import RowAdamW

    gen = torch.Generator().manual_seed(1)
    W0 = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    target = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    P = torch.nn.Parameter(W0.clone())
    dense = torch.optim.AdamW([P], lr=0.01, weight_decay=0.01)
    opts = [RowAdamW(W0, lr=0.01, weight_decay=0.01),
            RowAdamW(W0, lr=0.01, weight_decay=0.01, catch_up=False)]
    for step in range(400):
        rows = torch.unique(torch.randint(50, (8,), generator=gen))
        P.grad = torch.zeros_like(P)
        P.grad[rows] = P.detach()[rows] - target[rows]
        dense.step()
        for opt in opts:
            p = opt.fetch(rows)
            opt.step(rows, p, p - target[rows])
    moved = (P.detach() - W0).norm()
    errors = []
    for opt in opts:
        opt.flush()
        errors.append(float((opt.table - P.detach()).norm() / moved))
    assert errors[0] < 0.05 and errors[1] > 4 * errors[0], errors


def test_zeros_hugepages_is_a_zero_tensor_on_advised_aligned_memory():
    """RowAdamW's table: zeros of the asked shape and dtype, writable, 2 MiB aligned where it is
    large enough (so Linux can back it with huge pages), a plain tensor where it is small; the
    view keeps its buffer alive. Where the kernel takes the advice, the pages are huge."""
    import gc
    import re
    import sys

    from skadvrec._torch import _HUGE, RowAdamW, zeros_hugepages

    small = zeros_hugepages((10, 3, 4), torch.float32, "cpu")
    assert small.shape == (10, 3, 4) and not small.any()
    big = zeros_hugepages((3000, 3, 64), torch.float64, "cpu")  # 4.6 MB
    assert big.shape == (3000, 3, 64) and big.dtype == torch.float64 and big.is_contiguous()
    assert big.data_ptr() % _HUGE == 0 and not big.any()
    big += 1.5
    gc.collect()
    assert float(big.sum()) == 1.5 * big.numel()
    opt = RowAdamW(torch.ones(20000, 64), lr=0.1)
    assert opt.state.data_ptr() % _HUGE == 0 and torch.equal(opt.table, torch.ones(20000, 64))
    if sys.platform.startswith("linux"):
        try:
            mode = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
        except OSError:
            mode = ""
        if "[never]" not in mode and mode:
            opt.state.add_(0.0)  # touch every page
            start = opt.state.data_ptr()
            found = 0
            cur = None
            for line in open("/proc/self/smaps"):
                m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
                if m:
                    lo, hi = int(m.group(1), 16), int(m.group(2), 16)
                    cur = lo <= start < hi
                elif cur and line.startswith("AnonHugePages:"):
                    found = int(line.split()[1])
            if found == 0:
                pytest.skip("the kernel gave no huge page (memory too fragmented)")
            assert found >= 2048


def test_training_holds_torch_threads_to_idle_cpus(monkeypatch):
    """The shared training loop: on the CPU with several torch threads, each epoch runs on as
    many as there are idle CPUs (re-read every epoch), and the count is given back after fit,
    also when it fails; one thread or another device: untouched."""
    import skadvrec._torch as torch_mod
    from skadvrec._torch import TorchThreadCap

    df = make_interactions(n_users=60, n_items=30, density=0.2, random_state=0,
                           return_frame=True).interactions[["user", "item"]]
    monkeypatch.setattr(torch_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    monkeypatch.setattr(TorchThreadCap, "INTERVAL", 0.0)  # re-read at every epoch here
    busy = iter([3, 2, 0])  # other processes' runnable threads at each epoch's start
    monkeypatch.setattr(torch_mod, "runnable_threads_of_others", lambda: next(busy))
    seen = []
    real_start = BPRMF._start_epoch
    monkeypatch.setattr(BPRMF, "_start_epoch",
                        lambda self, e: (seen.append(torch.get_num_threads()),
                                         real_start(self, e)))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        BPRMF(n_components=4, max_iter=3, device="cpu", random_state=0).fit(df)
        assert seen == [1, 2, 4] and torch.get_num_threads() == 4
        seen.clear()
        busy = iter([3] * 3)
        monkeypatch.setattr(torch_mod, "runnable_threads_of_others", lambda: next(busy))
        monkeypatch.setattr(BPRMF, "_train_batches",
                            lambda self, order, bs: (_ for _ in ()).throw(RuntimeError("x")))
        with pytest.raises(RuntimeError):
            BPRMF(n_components=4, max_iter=3, device="cpu", random_state=0).fit(df)
        assert seen == [1] and torch.get_num_threads() == 4
        torch.set_num_threads(1)
        cap = TorchThreadCap("cpu")
        cap.update()
        assert not cap.active and torch.get_num_threads() == 1
        torch.set_num_threads(4)
        cap = TorchThreadCap("cuda")  # another device: no cap (nothing is read)
        cap.update()
        assert not cap.active and torch.get_num_threads() == 4
        reads = []  # the reading (~5 ms) is repeated at most every `interval` seconds
        monkeypatch.setattr(torch_mod, "runnable_threads_of_others",
                            lambda: reads.append(1) or 2)
        cap = TorchThreadCap("cpu", interval=3600)
        for _ in range(5):
            cap.update()
        assert len(reads) == 1 and torch.get_num_threads() == 2
        cap.restore()
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
