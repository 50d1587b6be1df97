import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from skadvrec.metrics import (auc_score, hit_rate_at_k, ndcg_at_k, parse_metric,
                              ranking_metrics, recall_at_k, topk_ranking)


def _ref_rank(scores):
    # numpy reference of the documented rule: score descending, then item index ascending
    return np.lexsort((np.arange(len(scores)), -scores))


def _ref_metrics(y_true, y_score, exclude, k):
    out = {"ndcg": [], "recall": [], "hr": [], "auc": []}
    for t, s, e in zip(y_true, y_score, exclude):
        t = t.astype(bool) & ~e.astype(bool)
        if t.sum() == 0:
            for key in out:
                out[key].append(np.nan)
            continue
        cand = ~e.astype(bool)
        s = np.where(cand, s, -np.inf)
        order = _ref_rank(s)[:k]
        hits = t[order]
        dcg = np.sum(hits / np.log2(np.arange(2, k + 2)))
        idcg = np.sum(1 / np.log2(np.arange(2, min(k, t.sum()) + 2)))
        out["ndcg"].append(dcg / idcg)
        out["recall"].append(hits.sum() / min(k, t.sum()))
        out["hr"].append(float(hits.any()))
        neg = cand & ~t
        out["auc"].append(roc_auc_score(t[cand | t], s[cand | t]) if neg.any() else np.nan)
    return {k_: np.array(v) for k_, v in out.items()}


def test_hand_computed_ndcg_recall():
    # targets at items 0 and 3; ranking: 1 (0.9), 0 (0.8), 2 (0.5), 3 (0.1)
    y_true = [[1, 0, 0, 1]]
    y_score = [[0.8, 0.9, 0.5, 0.1]]
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3)
    assert ndcg_at_k(y_true, y_score, 4) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(y_true, y_score, 2) == pytest.approx((1 / np.log2(3)) / idcg)
    assert recall_at_k(y_true, y_score, 1) == 0.0
    assert recall_at_k(y_true, y_score, 2) == 0.5
    assert hit_rate_at_k(y_true, y_score, 1) == 0.0
    assert hit_rate_at_k(y_true, y_score, 2) == 1.0


def test_fewer_targets_than_k_normalises_by_targets():
    # one target ranked first: NDCG and Recall are 1 for any k (Liang's min(k, |T|))
    y_true = [[0, 1, 0, 0, 0]]
    y_score = [[0.1, 0.9, 0.2, 0.3, 0.4]]
    for k in (1, 3, 5):
        assert ndcg_at_k(y_true, y_score, k) == pytest.approx(1.0)
        assert recall_at_k(y_true, y_score, k) == pytest.approx(1.0)


def test_ties_broken_by_item_index():
    # all scores equal: ranking is 0, 1, 2, 3 -> target at 2 is rank 3
    y_true = [[0, 0, 1, 0]]
    y_score = [[1.0, 1.0, 1.0, 1.0]]
    assert hit_rate_at_k(y_true, y_score, 2) == 0.0
    assert ndcg_at_k(y_true, y_score, 3) == pytest.approx(1 / np.log2(4))
    # tie at the boundary of the top-k: the lower index wins the last place
    s = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.1]])
    assert topk_ranking(s, 2).tolist() == [[1, 0]]
    assert topk_ranking(s, 3).tolist() == [[1, 0, 2]]
    # AUC counts a tie as one half
    assert auc_score([[1, 0]], [[0.3, 0.3]]) == pytest.approx(0.5)


def test_empty_targets_excluded():
    y_true = [[1, 0, 0], [0, 0, 0]]
    y_score = [[0.9, 0.1, 0.2], [0.1, 0.2, 0.3]]
    per_user = ndcg_at_k(y_true, y_score, 2, per_user=True)
    assert per_user[0] == pytest.approx(1.0) and np.isnan(per_user[1])
    assert ndcg_at_k(y_true, y_score, 2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no user has a target"):
        ndcg_at_k([[0, 0, 0]], [[1, 2, 3]], 2)


def test_exclusion_removes_items_from_ranking():
    y_true = [[0, 1, 0]]
    y_score = [[0.9, 0.5, 0.1]]
    assert hit_rate_at_k(y_true, y_score, 1) == 0.0
    assert hit_rate_at_k(y_true, y_score, 1, exclude=[[1, 0, 0]]) == 1.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 30), tie_levels=st.sampled_from([3, 1000]))
def test_against_numpy_reference(seed, k, tie_levels):
    rng = np.random.default_rng(seed)
    n_users, n_items = 17, 30
    y_score = rng.integers(0, tie_levels, (n_users, n_items)).astype(np.float64)
    y_true = (rng.random((n_users, n_items)) < 0.15).astype(float)
    exclude = (rng.random((n_users, n_items)) < 0.2) & (y_true == 0)
    ref = _ref_metrics(y_true, y_score, exclude, k)
    got = ranking_metrics(sp.csr_matrix(y_true), y_score,
                          [f"ndcg@{k}", f"recall@{k}", f"hitrate@{k}", "auc"],
                          exclude=sp.csr_matrix(exclude.astype(float)), batch_size=5,
                          device="cpu")
    np.testing.assert_allclose(got[f"ndcg@{k}"], ref["ndcg"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[f"recall@{k}"], ref["recall"], rtol=1e-10)
    np.testing.assert_allclose(got[f"hitrate@{k}"], ref["hr"])
    np.testing.assert_allclose(got["auc"], ref["auc"], rtol=1e-10)


def test_input_errors_are_clear():
    with pytest.raises(ValueError, match="larger than the number of items"):
        ndcg_at_k([[1, 0]], [[0.1, 0.2]], k=3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ndcg_at_k([[1, 0]], [[np.nan, 0.2]], k=1)
    with pytest.raises(ValueError, match="shape"):
        ndcg_at_k([[1, 0, 0]], [[0.1, 0.2]], k=1)
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metric("map@10")
    with pytest.raises(ValueError, match="needs a cut-off"):
        parse_metric("ndcg")
    assert parse_metric("HR@5") == ("hitrate", 5)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    y_score = rng.random((300, 500)).astype(np.float32)
    y_true = sp.random(300, 500, density=0.03, format="csr", random_state=0)
    names = ["ndcg@50", "recall@20", "auc"]
    a = ranking_metrics(y_true, y_score, names, device="cpu")
    b = ranking_metrics(y_true, y_score, names, device="cuda")
    for n in names:
        np.testing.assert_allclose(a[n], b[n], rtol=1e-5)
