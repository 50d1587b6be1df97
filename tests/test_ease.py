import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from skadvrec.datasets import make_interactions
from skadvrec.linear import EASE, EASEIPW
from skadvrec.linear.ease import ease_closed_form


@pytest.fixture(scope="module")
def data():
    return make_interactions(n_users=400, n_items=80, density=0.15, random_state=0)


def _numpy_ease(X, l2, w=None):
    X = X.toarray().astype(np.float64)
    if w is not None:
        X = np.sqrt(w)[:, None] * X
    P = np.linalg.inv(X.T @ X + l2 * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0)
    return B


def test_closed_form_matches_numpy(data):
    m = EASE(l2=30.0, device="cpu", dtype="float64").fit(data.X)
    np.testing.assert_allclose(m.coef_.numpy(), _numpy_ease(data.X, 30.0), atol=1e-10)
    assert np.all(np.diag(m.coef_.numpy()) == 0)
    m32 = EASE(l2=30.0, device="cpu").fit(data.X)
    assert m32.coef_.dtype == torch.float32
    np.testing.assert_allclose(m32.coef_.numpy(), _numpy_ease(data.X, 30.0), atol=1e-4)


def test_ease_ipw_weights_and_beta_zero(data):
    ipw = EASEIPW(l2=30.0, beta=0.5, device="cpu", dtype="float64").fit(data.X)
    n = np.asarray(data.X.sum(axis=1)).ravel()
    w = n ** -0.5
    w /= w.mean()
    np.testing.assert_allclose(ipw.user_weights_, w, rtol=1e-6)
    np.testing.assert_allclose(ipw.coef_.numpy(), _numpy_ease(data.X, 30.0, w), atol=1e-7)
    b0 = EASEIPW(l2=30.0, beta=0.0, device="cpu", dtype="float64").fit(data.X)
    e = EASE(l2=30.0, device="cpu", dtype="float64").fit(data.X)
    np.testing.assert_allclose(b0.coef_.numpy(), e.coef_.numpy(), atol=1e-12)
    # up-weighting light users changes the model in the direction of their items
    assert not np.allclose(ipw.coef_.numpy(), e.coef_.numpy())


def test_ease_beats_popularity_on_planted_structure():
    # with a strong planted group preference, an item-item model must beat popularity
    X = make_interactions(n_users=500, n_items=100, density=0.1, attribute_signal=3.0,
                          random_state=0).X
    tr, te = X[:400], X[400:]
    m = EASE(l2=20.0, device="cpu").fit(tr)
    pop = np.asarray(tr.sum(axis=0)).ravel()

    class _Pop(EASE):  # same evaluation path, popularity scores
        def _scores_from_rows(self, rows):
            return torch.as_tensor(pop, dtype=rows.dtype).expand(rows.shape[0], -1).clone()

    p = _Pop(device="cpu").fit(tr)
    assert m.score(te) > p.score(te) + 0.1


def test_predict_recommend_transform_contract(data):
    X = data.X
    m = EASE(l2=20.0, device="cpu", batch_size=7).fit(X[:300])
    S = m.predict(X[300:])
    assert S.shape == (100, 80) and S.dtype == np.float32
    np.testing.assert_allclose(S, X[300:].toarray() @ m.coef_.numpy(), rtol=1e-5, atol=1e-6)
    top = m.recommend(X[300:], k=10)
    assert top.shape == (100, 10)
    seen = X[300:].toarray().astype(bool)
    full = seen.sum(axis=1) > 70  # users with fewer than 10 unseen items get -1 padding
    assert full.any() and (top[full] == -1).any() and (top[~full] >= 0).all()
    assert (top[full] >= 0).sum(axis=1).tolist() == (80 - seen[full].sum(axis=1)).tolist()
    ok = top >= 0
    assert not seen[np.arange(100)[:, None], np.where(ok, top, 0)][ok].any()  # seen masked
    top_all = m.recommend(X[300:], k=10, exclude_seen=False)
    ref = np.lexsort((np.tile(np.arange(80), (100, 1)), -S), axis=1)[:, :10]
    np.testing.assert_array_equal(top_all, ref)  # unmasked ranking = raw scores, index ties
    np.testing.assert_allclose(m.transform(X[300:]), S, rtol=1e-6)
    with pytest.raises(ValueError, match="larger than the number of items"):
        m.recommend(X[300:], k=81)
    with pytest.raises(ValueError, match="features"):
        m.predict(X[300:, :50])


def test_input_errors(data):
    X = data.X
    with pytest.raises(ValueError, match="(?i)negative"):
        EASE(device="cpu").fit(-X)
    bad = X.copy().astype(np.float64)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        EASE(device="cpu").fit(bad)
    with pytest.raises(ValueError, match="0 sample"):
        EASE(device="cpu").fit(sp.csr_matrix((0, 5)))
    with pytest.raises(ValueError, match="no interactions"):
        EASE(device="cpu").fit(sp.csr_matrix((4, 5)))
    with pytest.raises(ValueError, match="'l2' parameter of EASE"):
        EASE(l2=-1, device="cpu").fit(X)
    with pytest.raises(ValueError, match="dtype"):
        EASE(dtype="float16", device="cpu").fit(X)
    with pytest.raises(ValueError, match="device"):
        EASE(device="tpu").fit(X)
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        EASE(batch_size=0, device="cpu").fit(X)
    with pytest.raises(ValueError, match="sensitive_features has 3 rows but X has 400"):
        EASE(device="cpu").fit(X, sensitive_features=[0, 1, 0])
    with pytest.raises(ValueError, match="no column"):
        EASE(device="cpu").fit(pd.DataFrame({"uid": [1], "iid": [2]}))
    with pytest.raises(ValueError, match="missing values"):
        EASE(device="cpu").fit(pd.DataFrame({"user": [1, None], "item": [2, 3]}))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            EASE(device="cuda").fit(X)


def test_memory_estimate_raises_before_allocating(monkeypatch, data):
    import skadvrec.linear.ease as ease_mod
    monkeypatch.setattr(ease_mod, "device_free_bytes", lambda device: 1000)
    with pytest.raises(MemoryError, match="needs about .* GiB"):
        EASE(device="cpu").fit(data.X)


def test_not_positive_definite_is_reported():
    X = sp.csr_matrix(np.ones((5, 4)))
    with pytest.raises(ValueError, match="increase l2"):
        ease_closed_form(X, 1e-12, device="cpu", dtype=torch.float32)


def test_table_form_fit_score_recommend():
    d = make_interactions(n_users=200, n_items=60, return_frame=True, random_state=1)
    df = d.interactions.copy()
    df["user"] = "u" + df["user"].astype(str)  # any hashable ids
    df["item"] = "i" + df["item"].astype(str)
    rng = np.random.default_rng(0)
    test_mask = rng.random(len(df)) < 0.2
    train, test = df[~test_mask], df[test_mask]
    m = EASE(l2=20.0, device="cpu", rating_threshold=None).fit(train)
    assert m.input_form_ == "table" and m.item_ids_.dtype == object
    rec = m.recommend(test, k=5)
    assert list(rec.columns) == ["user", "item", "rank", "score"]
    assert set(rec["item"]) <= set(train["item"])
    seen = set(zip(train["user"], train["item"]))
    assert not any((u, i) in seen for u, i in zip(rec["user"], rec["item"]))
    s = m.score(test)
    assert 0.1 < s <= 1
    unknown = pd.DataFrame({"user": ["nobody"], "item": ["i1"], "rating": [5], "timestamp": [0]})
    with pytest.raises(ValueError, match="not seen in fit"):
        m.predict(unknown)
    with pytest.warns(UserWarning, match="not seen in fit and are skipped"):
        m.score(pd.concat([test, unknown]))
    with pytest.raises(ValueError, match="fitted on an interaction table"):
        m.predict(sp.csr_matrix(np.ones((2, 60))))


def test_rating_threshold_drops_low_ratings():
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [10, 11, 10, 12, 11],
                       "rating": [5, 1, 4, 2, 5]}, index=[0, 0, 1, 1, 2])  # duplicate labels
    S = pd.DataFrame({"g": ["a", "a", "b", "b", "c"]})
    m = EASE(l2=1.0, device="cpu").fit(df, sensitive_features=S)
    assert m.train_matrix_.nnz == 3 and list(m.item_ids_) == [10, 11]
    from skadvrec.base import _per_user_frame, check_interactions
    data, _ = check_interactions(df, rating_threshold=4)
    assert _per_user_frame(S, data, len(df))["g"].tolist() == ["a", "b", "c"]
    m_all = EASE(l2=1.0, device="cpu", rating_threshold=None).fit(df)
    assert m_all.train_matrix_.nnz == 5
    with pytest.raises(ValueError, match="no row has rating"):
        EASE(device="cpu", rating_threshold=6).fit(df)


def test_pickle_roundtrip(data):
    m = EASE(l2=20.0, device="cpu").fit(data.X[:300])
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.predict(data.X[300:]), m.predict(data.X[300:]))


@pytest.mark.cuda
def test_cuda_fit_matches_cpu_and_pickles_to_cpu(data):
    mc = EASE(l2=20.0, device="cuda").fit(data.X[:300])
    m = EASE(l2=20.0, device="cpu").fit(data.X[:300])
    assert mc.coef_.device.type == "cuda"
    np.testing.assert_allclose(mc.coef_.cpu().numpy(), m.coef_.numpy(), atol=1e-4)
    assert abs(mc.score(data.X[300:]) - m.score(data.X[300:])) < 1e-4
    state = mc.__getstate__()
    assert state["coef_"].device.type == "cpu"
    assert mc.coef_.device.type == "cuda"  # pickling leaves the live model on the GPU


def test_evaluate_with_explicit_targets(data):
    from skadvrec.metrics import ranking_metrics
    from skadvrec.model_selection import fold_in_split
    X_in, X_out = fold_in_split(data.X, 0.8, random_state=0)
    m = EASE(l2=20.0, device="cpu").fit(X_in)
    got, rows = m.evaluate(X_in, ["ndcg@20", "recall@10"], targets=X_out)
    ref = ranking_metrics(X_out, m.predict(X_in), ["ndcg@20", "recall@10"], exclude=X_in)
    for name in got:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5)
    # and it equals the fold-in path with the same seed
    folded, _ = m.evaluate(data.X, ["ndcg@20"], random_state=0)
    np.testing.assert_allclose(folded["ndcg@20"], got["ndcg@20"], rtol=1e-5)
    with pytest.raises(ValueError, match="targets has shape"):
        m.evaluate(X_in, ["ndcg@20"], targets=X_out[:10])


@pytest.mark.parametrize("weights", [False, True])
def test_device_gram_path_matches_scipy(data, weights):
    # the CUDA path (sparse Xᵀ @ dense column blocks) is device-agnostic: run it on the CPU,
    # against the CPU path's Gram by blocks, on X and on the row-weighted W^½ X
    from skadvrec.linear.ease import _gram, _gram_blocks
    X = data.X
    if weights:
        X = sp.diags(np.sqrt(np.linspace(0.5, 2.0, X.shape[0]))) @ X
    a = _gram_blocks(X, np.float64)
    b = _gram(X, torch.device("cpu"), torch.float64)
    np.testing.assert_allclose(b.numpy(), a, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-3)])
def test_cpu_inverse_through_lapack(dtype, tol):
    """The CPU inverse (LAPACK potrf + potri, mirrored in place by blocks of rows) is the
    symmetric inverse, across a block boundary, in either precision, on 1 or 2 BLAS threads."""
    from skadvrec.linear.ease import _finish_in_place, _potrf_potri

    rng = np.random.default_rng(0)
    A = rng.random((300, 1100))
    G = A.T @ A + 5.0 * np.eye(1100)
    ref = np.linalg.inv(G)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    for threads in (1, 2):
        P = torch.from_numpy(_finish_in_place(
            _potrf_potri(G.astype(np_dtype), 5.0, dtype, threads), ease=False))
        assert P.dtype == dtype and P.is_contiguous()
        assert torch.equal(P, P.T)
        np.testing.assert_allclose(P.double().numpy(), ref, rtol=tol, atol=tol * ref.max())


@pytest.mark.parametrize("np_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dense_degree", [0, 10, 10**9])
def test_gram_by_blocks_sparse_and_dense_users(np_dtype, dense_degree):
    """The Gram by blocks (scipy's sparse product for light users, BLAS syrk on dense chunks
    of heavy ones, bounded temporaries) equals XᵀX, whole or as its upper triangle."""
    from skadvrec.linear.ease import _gram_blocks

    X = make_interactions(n_users=300, n_items=70, density=0.2, random_state=1).X
    X = sp.csr_matrix(X.multiply(np.linspace(0.5, 2.0, 300)[:, None]))  # not just 0/1
    ref = (X.T @ X).toarray().astype(np.float64)
    tol = 1e-5 if np_dtype == np.float32 else 1e-12
    for upper in (False, True):
        for block in (1 << 24, 500):  # one block, or many (7 item rows / 7 users a block)
            G = _gram_blocks(X, np_dtype, upper=upper, threads=2, dense_degree=dense_degree,
                             block_entries=block)
            assert G.dtype == np_dtype and G.flags.c_contiguous
            got, want = (np.triu(G), np.triu(ref)) if upper else (G, ref)
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * ref.max())


def test_finish_in_place_is_ease_b_across_blocks():
    from skadvrec.linear.ease import _finish_in_place

    rng = np.random.default_rng(0)
    A = rng.random((50, 37))
    P = np.linalg.inv(A.T @ A + np.eye(37))
    U = np.triu(P) + np.tril(rng.random((37, 37)), -1)  # the stale lower triangle
    want = -P / np.diag(P)[None, :]
    np.fill_diagonal(want, 0.0)
    for step in (5, 37, 256):
        got = _finish_in_place(U.copy(), ease=True, step=step)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(_finish_in_place(U.copy(), ease=False, step=step),
                                      np.triu(P) + np.triu(P, 1).T)


def test_blas_threads_cap(monkeypatch):
    """The solve's BLAS threads: never more than torch's, 1 for small solves, capped to the
    CPUs not busy with other processes' runnable threads."""
    import skadvrec._torch as torch_mod
    import skadvrec.linear.ease as ease_mod

    monkeypatch.setattr(torch_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    monkeypatch.setattr(torch_mod, "runnable_threads_of_others", lambda: 3)
    assert ease_mod._blas_threads(5000, 4) == 1
    monkeypatch.setattr(torch_mod, "runnable_threads_of_others", lambda: 1)
    assert ease_mod._blas_threads(5000, 4) == 3
    assert ease_mod._blas_threads(5000, 2) == 2
    assert ease_mod._blas_threads(100, 4) == 1  # small solve
    assert ease_mod._blas_threads(5000, 1) == 1
    monkeypatch.setattr(torch_mod, "runnable_threads_of_others", lambda: None)  # not Linux
    assert ease_mod._blas_threads(5000, 3) == 3
    monkeypatch.undo()
    others = torch_mod.runnable_threads_of_others()  # the real reading, where there is one
    assert others is None or others >= 0


@pytest.mark.parametrize("threads", [1, 2])
def test_float32_float64_agree_on_1_and_2_blas_threads(monkeypatch, threads):
    """The whole CPU path (blocks, heavy users through syrk, potrf / potri, the fused finish),
    forced to 1 or 2 BLAS threads, agrees with numpy in both precisions."""
    import skadvrec.linear.ease as ease_mod

    monkeypatch.setattr(ease_mod, "_blas_threads", lambda n, requested=None: threads)
    X = make_interactions(n_users=500, n_items=300, density=0.1, random_state=2).X
    ref = _numpy_ease(X, 20.0)
    b64 = ease_closed_form(X, 20.0, device="cpu", dtype=torch.float64).numpy()
    b32 = ease_closed_form(X, 20.0, device="cpu", dtype=torch.float32).numpy()
    np.testing.assert_allclose(b64, ref, atol=1e-10)
    np.testing.assert_allclose(b32, ref, atol=1e-4)
    assert np.all(np.diag(b32) == 0) and np.all(np.diag(b64) == 0)
