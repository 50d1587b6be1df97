import ast
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import skadvrec.metrics
from skadvrec.datasets import make_interactions
from skadvrec.linear import EASE
from skadvrec.metrics import (AUCScorer, GroupMetricScorer, NDCGScorer, RankingScorer,
                              UnderservedUpliftScorer, auc_score, batch_metrics, hit_rate_at_k,
                              metric_by_group, ndcg_at_k, parse_metric, ranking_metrics,
                              recall_at_k, topk_ranking, underserved_uplift)


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


def test_batch_metrics_is_the_per_batch_step_of_ranking_metrics():
    rng = np.random.default_rng(0)
    scores = rng.random((6, 12))
    targets = rng.random((6, 12)) < 0.3
    names = ["ndcg@5", "recall@3", "recall_all@3", "hitrate@2", "auc"]
    got = batch_metrics(torch.as_tensor(scores), torch.as_tensor(targets), names)
    ref = ranking_metrics(targets.astype(float), scores, names, device="cpu")
    for n in names:
        np.testing.assert_allclose(got[n].numpy(), ref[n], rtol=1e-12)
    # pre-parsed (key, kind, k) triples give the same values under their own keys
    fast = batch_metrics(torch.as_tensor(scores), torch.as_tensor(targets),
                         [("n", "ndcg", 5)])
    np.testing.assert_array_equal(fast["n"].numpy(), got["ndcg@5"].numpy())
    from skadvrec.metrics.ranking import _metrics_on_batch
    assert _metrics_on_batch is batch_metrics  # the old private name still works


# -- the scorers -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    d = make_interactions(n_users=300, n_items=60, density=0.12, random_state=0)
    return EASE(l2=30.0, device="cpu").fit(d.X[:220]), d.X[220:], d.sensitive_features[220:]


def test_input_fraction_is_the_share_used_as_input(fitted):
    model, X_te, _ = fitted
    # with 20 % input the model sees less of each user and ranks the 80 % targets worse
    little = NDCGScorer(20, input_fraction=0.2).per_user(model, X_te)
    much = NDCGScorer(20, input_fraction=0.8).per_user(model, X_te)
    vals, _ = model.evaluate(X_te, ["ndcg@20"], input_fraction=0.2)
    np.testing.assert_array_equal(little.to_numpy(), vals["ndcg@20"])
    assert little.mean() != much.mean()


@pytest.mark.parametrize("make", [
    lambda **kw: NDCGScorer(20, **kw),
    lambda **kw: RankingScorer("recall@10", **kw),
    lambda **kw: AUCScorer(**kw),
    lambda **kw: GroupMetricScorer("ndcg@20", attribute="group", **kw),
])
def test_fold_in_fraction_is_a_deprecated_alias(make, fitted):
    model, X_te, S = fitted
    kw = {"sensitive_features": S} if "Group" in type(make()).__name__ else {}
    new = make(input_fraction=0.3)
    old = make(fold_in_fraction=0.3)
    with pytest.warns(FutureWarning, match="renamed input_fraction"):
        old_value = old(model, X_te, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name and the defaults warn about nothing
        assert old_value == new(model, X_te, **kw)
        assert make()(model, X_te, **kw) != old_value  # 0.8 by default: a different split
        # clone keeps the deprecated parameter as given, and does not warn
        assert clone(old).get_params() == old.get_params()
        assert clone(make()).get_params()["fold_in_fraction"] == "deprecated"
    assert "fold_in_fraction" not in repr(new)


def test_deprecated_alias_in_functions(fitted):
    model, X_te, S = fitted
    ref = metric_by_group(model, X_te, S, "ndcg@20", attribute="group", input_fraction=0.5)
    with pytest.warns(FutureWarning, match="renamed input_fraction"):
        old = metric_by_group(model, X_te, S, "ndcg@20", attribute="group",
                              fold_in_fraction=0.5)
    pd.testing.assert_frame_equal(ref, old)
    ref = underserved_uplift(model, model, X_te, q=[0.5], metric="ndcg@20", input_fraction=0.5)
    with pytest.warns(FutureWarning, match="renamed input_fraction"):
        old = underserved_uplift(model, model, X_te, q=[0.5], metric="ndcg@20",
                                 fold_in_fraction=0.5)
    pd.testing.assert_frame_equal(ref, old)


def test_scorer_set_params_and_clone():
    s = NDCGScorer(10).set_params(k=5, input_fraction=0.5)
    assert s.metric == "ndcg@5" and s.input_fraction == 0.5
    c = clone(s)
    assert c is not s and c.metric == "ndcg@5"
    with pytest.raises(ValueError, match="invalid parameter 'kk'"):
        s.set_params(kk=1)
    u = UnderservedUpliftScorer(EASE(l2=20.0, device="cpu"), q=0.1)
    u2 = clone(u).set_params(reference__l2=50.0)
    assert u2.reference is not u.reference and u2.reference.l2 == 50.0 and u.reference.l2 == 20.0


def test_underserved_scorer_needs_a_reference():
    with pytest.raises(TypeError, match="reference"):
        UnderservedUpliftScorer()
    with pytest.raises(ValueError, match=r"EASE\(l2=500.0\)"):
        UnderservedUpliftScorer(None)


def test_group_column_accepts_series_and_arrays(fitted):
    model, X_te, S = fitted
    ref = metric_by_group(model, X_te, S, "ndcg@20", attribute="group")
    by_series = metric_by_group(model, X_te, S["group"], "ndcg@20")
    by_array = metric_by_group(model, X_te, S["group"].to_numpy(), "ndcg@20")
    np.testing.assert_array_equal(ref["mean"].to_numpy(), by_series["mean"].to_numpy())
    np.testing.assert_array_equal(ref["mean"].to_numpy(), by_array["mean"].to_numpy())
    two = np.column_stack([S["group"].to_numpy(), S["group"].to_numpy()])
    with pytest.raises(ValueError, match=r"columns \['attr0', 'attr1'\]; name the one"):
        metric_by_group(model, X_te, two, "ndcg@20")


def test_metrics_import_no_estimator_family():
    # layering: skadvrec.metrics sits below the base and the families (lazy imports included)
    above = {"base", "linear", "vae", "cf", "fm", "prompt", "attacks", "cli", "preprocessing"}
    bad = []
    for path in Path(skadvrec.metrics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level >= 2 or (node.module or "").startswith("skadvrec."):
                    mod = (node.module or "").removeprefix("skadvrec.")
                    names = [mod.split(".")[0]] if mod else [a.name for a in node.names]
                    bad += [f"{path.name}: {n}" for n in names if n in above]
            elif isinstance(node, ast.Import):
                bad += [f"{path.name}: {a.name}" for a in node.names
                        if a.name.split(".")[1:2] and a.name.split(".")[1] in above
                        and a.name.startswith("skadvrec.")]
    assert bad == []
