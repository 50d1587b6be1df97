"""Bad input across the public API: one table, one row per case (issue 16).

Every row names the call, the error type and a fragment of the message that names the problem
(or the fix); rows marked ``warns`` / ``behaves`` check a documented behaviour instead of an
error. A family that lands later adds its rows here. The numerical guards (divergence, memory
estimate, interruption) are at the end of the file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

import skadvrec
from skadvrec import (EASE, RLARM, AdvXMultVAE, BPRMF, GroupMetricScorer, LinearErasure,
                      MultVAE, RandomAttack)
from skadvrec import cli
from skadvrec.datasets import (get_data_home, load_lightgcn_split, load_movielens,
                               load_movielens_features, make_interactions)
from skadvrec.datasets import _fetch, _movielens
from skadvrec.metrics import (attribute_leakage, metric_by_group, ndcg_at_k, ranking_metrics,
                              recall_at_k, target_hit_ratio)
from skadvrec import select_target_items
from skadvrec.model_selection import (BestWithinLoss, InteractionHoldout, UserHoldout,
                                      fold_in_split, split_users)
from skadvrec.preprocessing import InteractionFilter, filter_interactions, to_user_item_matrix
from skadvrec.pipeline import make_recommender_pipeline

import _zoo


# -- shared, lazily built inputs -------------------------------------------------------------
def X():
    return _zoo.data()[0]


def S():
    return _zoo.data()[1]


def T():
    return _zoo.data()[2]


@functools.lru_cache(maxsize=None)
def ease():
    return EASE(l2=10.0, device="cpu").fit(X())


@functools.lru_cache(maxsize=None)
def ease_table():
    return EASE(l2=10.0, device="cpu", rating_threshold=None).fit(T())


def adv(**kw):
    return AdvXMultVAE(**{"device": "cpu", "max_iter": 1, "early_stopping": False, **kw})


def dense_with(value, at=(0, 0)):
    a = X().toarray().astype(np.float64)
    a[at] = value
    return a


def sparse_with(value):
    m = X().astype(np.float64).copy()
    m.data[0] = value
    return m


def table_with(**cols):
    return T().assign(**cols)


def mixed_ids():
    t = T().copy()
    t["user"] = t["user"].astype(object)
    t.loc[0, "user"] = "alice"
    return t


def shuffled_S_for_table():
    t = T()
    s = pd.DataFrame({"group": np.where(np.arange(len(t)) % 2, "a", "b")}, index=t.index)
    return s.sample(frac=1.0, random_state=0)


def cli_exit(*argv):
    """Run the CLI; turn its argparse exit into a SystemExit carrying stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    if code not in (0, None):
        raise SystemExit(f"exit {code}: {err.getvalue()}")
    return code


def ml100k_copy(tmp_path, mutate):
    src = get_data_home() / "ml-100k"
    if not (src / "u.data").is_file():
        pytest.skip("ml-100k is not available")
    dst = tmp_path / "ml-100k"
    shutil.copytree(src, dst)
    raw = (dst / "u.data").read_bytes()
    (dst / "u.data").write_bytes(mutate(raw))
    return tmp_path


def download_with_bad_checksum(tmp_path, monkeypatch):
    archive = tmp_path / "fake.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("u.data", "u.user", "u.item", "u.genre"):
            z.writestr(f"ml-100k/{name}", "1|2|3\n")
    monkeypatch.setattr(_fetch, "_urlretrieve",
                        lambda url, filename: shutil.copyfile(archive, filename))
    return load_movielens("100k", data_home=tmp_path / "home", download=True)


# -- the table ---------------------------------------------------------------------------------
# (id, call(tmp_path, monkeypatch), expected exception or "warns:<Warning>" / "behaves", match)
E, W, B = "raises", "warns", "behaves"
CASES = [
    # -- the user x item matrix at fit
    ("fit-empty-rows", lambda t, m: EASE(device="cpu").fit(sp.csr_matrix((0, 5))),
     ValueError, r"0 sample"),
    ("fit-empty-cols", lambda t, m: EASE(device="cpu").fit(sp.csr_matrix((5, 0))),
     ValueError, r"0 feature"),
    ("fit-all-zero", lambda t, m: EASE(device="cpu").fit(sp.csr_matrix((5, 5))),
     ValueError, r"no interactions \(all entries are zero\)"),
    ("fit-nan-dense", lambda t, m: EASE(device="cpu").fit(dense_with(np.nan, (3, 4))),
     ValueError, r"1 NaN value\(s\), e\.g\. at row 3, column 4.*nan_to_num"),
    ("fit-nan-sparse", lambda t, m: BPRMF(device="cpu").fit(sparse_with(np.nan)),
     ValueError, r"NaN value.*must be finite"),
    ("fit-inf", lambda t, m: MultVAE(device="cpu").fit(sparse_with(np.inf)),
     ValueError, r"infinite value.*must be finite"),
    ("fit-negative", lambda t, m: EASE(device="cpu").fit(sparse_with(-1.0)),
     ValueError, r"Negative values.*must be >= 0.*rating_threshold"),
    ("fit-negative-int", lambda t, m: EASE(device="cpu").fit(np.array([[1, -2], [0, 1]])),
     ValueError, r"Negative values.*>= 0"),
    ("fit-string-matrix", lambda t, m: EASE(device="cpu").fit(np.array([["a", "b"], ["c", "d"]])),
     ValueError, r"non-numeric entries.*interaction table"),
    ("fit-1d", lambda t, m: EASE(device="cpu").fit(np.array([1.0, 0.0, 1.0])),
     ValueError, r"2-D user x item matrix.*Reshape"),
    ("fit-3d", lambda t, m: EASE(device="cpu").fit(np.ones((2, 2, 2))),
     ValueError, r"2-D user x item matrix; got an array of shape \(2, 2, 2\)"),
    ("fit-ragged", lambda t, m: EASE(device="cpu").fit([[1.0, 0.0], [1.0]]),
     ValueError, r"not a rectangular user x item matrix"),
    # -- prediction input
    ("predict-wrong-n-items", lambda t, m: ease().predict(X()[:, :10]),
     ValueError, r"10 features, but EASE is expecting 25"),
    ("predict-nan", lambda t, m: ease().predict(dense_with(np.nan)),
     ValueError, r"NaN value"),
    ("predict-frame-on-matrix-model", lambda t, m: ease().predict(T()),
     ValueError, r"fitted on a user x item matrix.*25 columns"),
    ("predict-matrix-on-table-model", lambda t, m: ease_table().predict(X()),
     ValueError, r"fitted on an interaction table.*'user' column"),
    ("predict-unseen-user", lambda t, m: ease_table().predict(["nobody"]),
     ValueError, r"1 user\(s\) were not seen in fit, e\.g\. \['nobody'\].*user x item matrix"),
    ("predict-before-fit", lambda t, m: EASE().predict(X()), NotFittedError, r"not fitted yet"),
    ("recommend-k-above-n-items", lambda t, m: ease().recommend(X()[:3], k=26),
     ValueError, r"k=26 is larger than the number of items \(25\)"),
    ("recommend-k-zero", lambda t, m: ease().recommend(X()[:3], k=0),
     ValueError, r"k must be a positive integer"),
    ("evaluate-k-above-n-items", lambda t, m: ease().evaluate(X()[:5], ["ndcg@50"]),
     ValueError, r"ndcg@50: k=50 is larger than the number of items \(25\)"),
    ("evaluate-unknown-metric", lambda t, m: ease().evaluate(X()[:5], ["precision@5"]),
     ValueError, r"unknown metric 'precision@5'; use 'ndcg@k'"),
    ("evaluate-unseen-items", lambda t, m: ease_table().evaluate(
        pd.DataFrame({"user": [T()["user"].iloc[0]] * 2, "item": [-5, -6]}), ["ndcg@5"]),
     W + ":UserWarning", r"2 interaction\(s\) name items unseen in fit"),
    # -- the interaction table
    ("table-wrong-column-names", lambda t, m: EASE(device="cpu").fit(
        T().rename(columns={"user": "user_id"})),
     ValueError, r"no column\(s\) \['user'\].*DataFrame\.rename"),
    ("table-empty", lambda t, m: EASE(device="cpu").fit(T().iloc[:0]),
     ValueError, r"interaction table is empty"),
    ("table-missing-user", lambda t, m: EASE(device="cpu").fit(
        table_with(user=T()["user"].where(T().index > 0))),
     ValueError, r"column 'user' contains missing values; drop those rows"),
    ("table-rating-wrong-dtype", lambda t, m: EASE(device="cpu").fit(table_with(rating="5 stars")),
     ValueError, r"column 'rating' contains missing or non-numeric values"),
    ("table-mixed-id-types", lambda t, m: EASE(device="cpu", rating_threshold=None).fit(
        mixed_ids()),
     ValueError, r"column 'user' mixes id types \['int', 'str'\].*astype\(str\)"),
    ("table-threshold-drops-all", lambda t, m: EASE(device="cpu", rating_threshold=9).fit(T()),
     ValueError, r"no row has rating >= rating_threshold=9"),
    # -- sensitive_features
    ("sensitive-wrong-length", lambda t, m: adv().fit(
        X(), sensitive_features=S()[:10]),
     ValueError, r"sensitive_features has 10 rows but X has 60"),
    ("sensitive-wrong-index", lambda t, m: adv().fit(
        T(), sensitive_features=shuffled_S_for_table()),
     ValueError, r"index of sensitive_features does not match the index of X.*\.loc\[X\.index\]"),
    ("sensitive-one-class", lambda t, m: adv().fit(
        X(), sensitive_features=S().assign(group="g0")),
     ValueError, r"attribute 'group' has 1 class among the users of X.*Drop it from attributes"),
    ("sensitive-absent", lambda t, m: adv().fit(X()),
     ValueError, r"needs the protected attributes.*sensitive_features=S"),
    ("sensitive-unknown-attribute", lambda t, m: adv(attributes=["income"]).fit(
        X(), sensitive_features=S()),
     ValueError, r"attribute\(s\) \['income'\] are not columns of sensitive_features"),
    ("group-metric-all-missing", lambda t, m: GroupMetricScorer("ndcg@5", attribute="group")(
        ease(), X(), sensitive_features=S().assign(group=np.nan)),
     ValueError, r"group column 'group' of sensitive_features has only missing values"),
    ("group-metric-wrong-length", lambda t, m: metric_by_group(
        ease(), X(), S()[:7], "ndcg@5", attribute="group"),
     ValueError, r"sensitive_features has 7 rows but X has 60"),
    ("leakage-one-class", lambda t, m: attribute_leakage(
        ease(), X(), S().assign(group="g0"), attributes=["group"], n_bootstraps=0),
     ValueError, r"attribute 'group' has 1 class.*at least two"),
    ("erasure-one-class", lambda t, m: LinearErasure().fit(
        X().toarray(), S().assign(group="g0")[["group"]]),
     ValueError, r"1 class among the users; there is nothing to erase"),
    ("erasure-wrong-length", lambda t, m: LinearErasure().fit(X().toarray(), S()[:9]),
     ValueError, r"y has 9 rows but X has 60"),
    # -- metrics
    ("metric-negative-relevance", lambda t, m: ndcg_at_k(-np.eye(4), np.eye(4), k=2),
     ValueError, r"y_true contains negative values.*binary"),
    ("metric-nan-relevance", lambda t, m: recall_at_k(np.full((2, 3), np.nan), np.eye(2, 3), k=2),
     ValueError, r"y_true contains NaN or infinite values"),
    ("metric-nan-scores", lambda t, m: ndcg_at_k(np.eye(3), np.full((3, 3), np.nan), k=2),
     ValueError, r"y_score contains NaN or infinite values"),
    ("metric-shape-mismatch", lambda t, m: ndcg_at_k(np.eye(3), np.ones((3, 4)), k=2),
     ValueError, r"y_true has shape \(3, 3\), but scores have shape \(3, 4\)"),
    ("metric-k-above-n-items", lambda t, m: ndcg_at_k(np.eye(3), np.eye(3), k=5),
     ValueError, r"k=5 is larger than the number of items \(3\)"),
    ("metric-sparse-scores", lambda t, m: ranking_metrics(np.eye(3), sp.eye(3), ["ndcg@2"]),
     ValueError, r"y_score must be a dense array"),
    ("metric-no-target", lambda t, m: ndcg_at_k(np.zeros((3, 3)), np.eye(3), k=2),
     ValueError, r"no user has a target item"),
    ("target-hit-ratio-unknown-item", lambda t, m: target_hit_ratio(ease(), X()[:10], [99], k=5),
     ValueError, r"target_items \[99\] are not items of the fitted model"),
    ("target-hit-ratio-k-above-n-items", lambda t, m: target_hit_ratio(ease(), X(), [1], k=50),
     ValueError, r"k must be an integer in \[1, n_items=25\]"),
    # -- attacks and pipelines
    ("pipeline-attack-cannot-poison", lambda t, m: make_recommender_pipeline(
        RandomAttack(n_targets=30, random_state=0), EASE(device="cpu")).fit(X()),
     ValueError, r"fewer than n_targets=30.*ask for fewer targets"),
    ("attack-target-not-an-item", lambda t, m: RandomAttack(target_items=[40]).fit_transform(X()),
     ValueError, r"target_items \[40\] are not items of X: column indices must be in \[0, 24\]"),
    ("attack-all-zero", lambda t, m: RandomAttack(n_targets=1).fit_transform(sp.csr_matrix((4, 4))),
     ValueError, r"no interactions"),
    ("attack-negative", lambda t, m: RandomAttack(n_targets=1).fit_transform(-X()),
     ValueError, r"Negative values in data passed to X"),
    # -- splitters
    ("fold-in-fraction-above-one", lambda t, m: fold_in_split(X(), 1.5),
     ValueError, r"fold_in_fraction must be a float in \(0, 1\); got 1\.5"),
    ("user-holdout-too-large", lambda t, m: list(UserHoldout(test_size=500).split(X())),
     ValueError, r"test_size=500 must be between 1 and n_users - 1 = 59"),
    ("split-users-too-many", lambda t, m: split_users(10, n_validation=6, n_test=6),
     ValueError, r"leaves no training user out of 10"),
    ("interaction-holdout-on-matrix", lambda t, m: list(InteractionHoldout().split(X())),
     ValueError, r"InteractionHoldout splits an interaction table.*use UserHoldout"),
    ("interaction-holdout-bad-strategy", lambda t, m: list(
        InteractionHoldout(strategy="random").split(T())),
     ValueError, r"strategy must be one of \('ratio', 'leave_one_out', 'chronological'\)"),
    ("best-within-loss-unknown-scorer", lambda t, m: BestWithinLoss("leak", "ndcg")(
        {"params": [{}], "mean_test_ndcg": [0.1]}),
     ValueError, r"no scorer named 'leak' in the search; its scoring dict has \['ndcg'\]"),
    ("best-within-loss-negative-budget", lambda t, m: BestWithinLoss(
        "ndcg", "ndcg", max_relative_loss=-1)({"params": [{}], "mean_test_ndcg": [0.1]}),
     ValueError, r"max_relative_loss"),
    # -- preprocessing
    ("filter-negative-threshold", lambda t, m: filter_interactions(T(), min_user_interactions=-1),
     ValueError, r"min_user_interactions must be an integer >= 0; got -1"),
    ("filter-removes-everything", lambda t, m: filter_interactions(
        T(), min_user_interactions=10_000),
     ValueError, r"no interaction is left after filtering; loosen the thresholds"),
    ("interaction-filter-on-matrix", lambda t, m: InteractionFilter().fit_transform(X()),
     ValueError, r"expected an interaction table .*got csr_matrix"),
    ("to-matrix-missing-item-column", lambda t, m: to_user_item_matrix(T().drop(columns="item")),
     ValueError, r"no column\(s\) \['item'\]"),
    ("select-targets-too-many", lambda t, m: select_target_items(X(), n_targets=100),
     ValueError, r"fewer than n_targets=100"),
    # -- datasets
    ("dataset-dir-missing", lambda t, m: load_movielens(
        "100k", data_home=t / "nowhere", download=False),
     FileNotFoundError, r"MovieLens 100k files not found.*download=True"),
    ("dataset-corrupt-file", lambda t, m: load_movielens(
        "100k", data_home=ml100k_copy(t, lambda b: b"\x00\xff garbage\n" * 4), download=False),
     ValueError, r"could not read the MovieLens 100k files.*truncated or corrupt.*download=True"),
    ("dataset-truncated-file", lambda t, m: load_movielens(
        "100k", data_home=ml100k_copy(t, lambda b: b[:b.index(b"\n", len(b) // 2) + 1]),
        download=False),
     W + ":UserWarning", r"u\.data \(\d+ bytes\) differ from the official release.*truncated"),
    ("dataset-checksum-mismatch", download_with_bad_checksum,
     OSError, r"Checksum mismatch for downloaded file 'ml-100k/u\.\w+'"),
    ("dataset-unknown-variant", lambda t, m: load_movielens("20m"),
     ValueError, r"Unknown MovieLens variant '20m'"),
    ("features-unknown-variant", lambda t, m: load_movielens_features("5m", download=False),
     ValueError, r"Unknown MovieLens variant '5m'.*load_movielens_features\('100k'\)"),
    ("dataset-data-home-type", lambda t, m: get_data_home(42),
     ValueError, r"data_home must be a string or path-like"),
    ("lightgcn-malformed", lambda t, m: (
        (t / "gowalla").mkdir(), (t / "gowalla" / "train.txt").write_text("0 1\n1 x\n"),
        (t / "gowalla" / "test.txt").write_text("0 2\n"),
        load_lightgcn_split(data_home=t, download=False)),
     ValueError, r"not a valid 'user item item \.\.\.' file"),
    ("synthetic-no-users", lambda t, m: make_interactions(n_users=0),
     ValueError, r"n_users must be >= 1"),
    # -- the command line
    ("cli-unknown-model", lambda t, m: cli_exit("benchmark", "--models", "svd"),
     SystemExit, r"(?s)exit 2:.*unknown model 'svd'; choose among"),
    ("cli-bad-device", lambda t, m: cli_exit("benchmark", "--device", "tpu"),
     SystemExit, r"(?s)exit 2:.*'tpu' is not a device; use auto, cpu"),
    ("cli-k-zero", lambda t, m: cli_exit("benchmark", "--k", "0"),
     SystemExit, r"(?s)exit 2:.*'0' must be >= 1"),
    ("cli-q-above-one", lambda t, m: cli_exit("benchmark", "--q", "2"),
     SystemExit, r"(?s)exit 2:.*'2' must be in \(0, 1\]"),
    ("cli-missing-config", lambda t, m: cli_exit("benchmark", "--config", str(t / "no.toml")),
     SystemExit, r"(?s)exit 2:.*--config: no such file"),
    ("cli-unknown-dataset", lambda t, m: cli_exit("benchmark", "--dataset", "netflix"),
     SystemExit, r"(?s)exit 2:.*invalid choice: 'netflix'"),
    # -- parameters
    ("param-negative-l2", lambda t, m: EASE(l2=-1.0).fit(X()),
     InvalidParameterError, r"'l2' parameter of EASE must be a float in the range \(0\.0, inf\)"),
    ("param-bad-device", lambda t, m: EASE(device="tpu").fit(X()),
     ValueError, r"device='tpu' is not a valid torch device"),
    ("param-ndcg-k-above-n-items", lambda t, m: RLARM(ndcg_k=30, device="cpu").fit(X()),
     ValueError, r"ndcg_k=30 is larger than the number of items \(25\)"),
    # -- documented behaviours (no error: the test checks the effect)
    ("behaves-duplicate-table-rows-count-once", lambda t, m: np.testing.assert_array_equal(
        EASE(l2=10.0, device="cpu", rating_threshold=None).fit(pd.concat([T(), T()])).predict(
            list(ease_table().user_ids_)), ease_table().predict(list(ease_table().user_ids_))),
     B, None),
    ("behaves-duplicate-matrix-entries-sum", lambda t, m: np.testing.assert_array_equal(
        EASE(device="cpu").fit(sp.coo_matrix((np.ones(4), ([0, 0, 1, 2], [1, 1, 0, 2])),
                                             shape=(3, 3))).train_matrix_.toarray()[0],
        [0.0, 2.0, 0.0]),
     B, None),
    ("behaves-string-and-categorical-ids", lambda t, m: np.testing.assert_array_equal(
        EASE(l2=10.0, device="cpu", rating_threshold=None).fit(
            T().assign(user="u" + T()["user"].astype(str),
                       item=T()["item"].astype("category"))).predict(
            ["u" + str(u) for u in ease_table().user_ids_]),
        ease_table().predict(list(ease_table().user_ids_))),
     B, None),
    ("behaves-all-zero-rows-are-users-without-history", lambda t, m: np.testing.assert_array_equal(
        ease().predict(sp.csr_matrix((2, 25))), np.zeros((2, 25), dtype=np.float32)),
     B, None),
    ("behaves-sensitive-other-labels-align-by-position", lambda t, m: np.testing.assert_array_equal(
        adv(random_state=0).fit(T().set_axis(T().index + 1000),
                                sensitive_features=shuffled_S_for_table().sort_index()).transform(
            list(ease_table().user_ids_)),
        adv(random_state=0).fit(T(), sensitive_features=shuffled_S_for_table().sort_index())
        .transform(list(ease_table().user_ids_))),
     B, None),
    ("behaves-sensitive-missing-values-are-left-out", lambda t, m: np.testing.assert_array_equal(
        attribute_leakage(ease(), X(), S().assign(group=S()["group"].where(np.arange(60) >= 5)),
                          attributes=["group"], n_bootstraps=0, cv=3)["n_test"], [55]),
     B, None),
    ("behaves-bpr-reads-non-zero-as-positive", lambda t, m: np.testing.assert_array_equal(
        _zoo.fit("BPRMF", X=(3 * X()).tocsr()).predict(X()), _zoo.fit("BPRMF").predict(X())),
     B, None),
    ("behaves-ease-weighs-strengths", lambda t, m: np.testing.assert_allclose(
        EASE(l2=90.0, device="cpu", dtype="float64").fit(3 * X()).coef_.numpy(),
        EASE(l2=10.0, device="cpu", dtype="float64").fit(X()).coef_.numpy(), atol=1e-10),
     B, None),
    ("behaves-binary-relevance-reads-non-zero", lambda t, m: np.testing.assert_allclose(
        ndcg_at_k(3 * np.eye(4), np.eye(4) + 0.1, k=2), ndcg_at_k(np.eye(4), np.eye(4) + 0.1, k=2)),
     B, None),
]


def test_at_least_forty_distinct_cases():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch):
    _id, call, expected, match = case
    if expected == B:
        call(tmp_path, monkeypatch)  # asserts inside
        return
    if isinstance(expected, str) and expected.startswith(W):
        category = {"UserWarning": UserWarning}[expected.split(":")[1]]
        with pytest.warns(category, match=match):
            call(tmp_path, monkeypatch)
        return
    with pytest.raises(expected, match=match):
        call(tmp_path, monkeypatch)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match=r"CUDA is not available.*device='cpu'"):
        EASE(device="cuda").fit(X())


def test_every_public_object_is_exported():
    # the reliability tables cover every name of skadvrec.__all__ (the zoo, the scorers, the
    # attacks); a new public name must be added to them
    covered = set(_zoo.ESTIMATORS) | set(_zoo.TRANSFORMERS) | {
        "select_target_items", "RankingScorer", "NDCGScorer", "RecallScorer", "HitRateScorer",
        "AUCScorer", "GroupMetricScorer", "UnderservedUpliftScorer", "LeakageScorer",
        "TargetHitRatioScorer", "FeatureGroupAUCScorer", "RowAUCScorer", "__version__"}
    # select_target_items has its row in the table above
    assert set(skadvrec.__all__) <= covered
