"""The shared layer: the data object, the training-loop template and the prediction API."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from skadvrec._data import check_interactions
from skadvrec._params import ITERATIVE_CONSTRAINTS, POSITIVE_REAL
from skadvrec.base import IterativeRecommender
from skadvrec.datasets import make_interactions
from skadvrec.linear import EASE
from skadvrec.model_selection import fold_in_split


# -- the data object ------------------------------------------------------------------------------
def _table():
    return pd.DataFrame({
        "user": ["u2", "u1", "u1", "u2", "u3", "u1"],
        "item": [10, 10, 20, 30, 20, 30],
        "rating": [5, 4, 2, 5, 4, 5],
        "timestamp": [9, 3, 1, 2, 7, 5],
        "gender": ["M", "F", "F", "M", "F", "F"],        # constant within users
        "genres": [["a"], ["a"], ["b", "c"], ["c"], ["b", "c"], ["c"]],  # within items, lists
        "hour": [1, 2, 3, 4, 5, 6],                      # varies within both
    })


def test_interaction_data_keeps_features_and_sequences():
    df = _table()
    data, items = check_interactions(df, rating_threshold=4, keep_table=True)
    assert data.user_ids.tolist() == ["u1", "u2", "u3"] and items.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(data.matrix.toarray(), [[1, 0, 1], [1, 0, 1], [0, 1, 0]])
    # every row kept in the table (the rating-2 row too), with codes and the positive flag
    assert len(data.table) == 6
    assert data.table["positive"].tolist() == [True, True, False, True, True, True]
    assert data.table["user_code"].tolist() == [1, 0, 0, 1, 2, 0]
    assert list(data.user_features.columns) == ["gender"]
    assert data.user_features["gender"].tolist() == ["F", "M", "F"]
    assert list(data.item_features.columns) == ["genres"]
    assert data.item_features["genres"].tolist() == [("a",), ("b", "c"), ("c",)]
    assert "hour" in data.table.columns and "hour" not in data.feature_columns
    # items or users with no positive row (code -1) do not make a side's column look varying
    neg = pd.concat([df, pd.DataFrame({"user": ["u4", "u5"], "item": [40, 50],
                                       "rating": [1, 2], "timestamp": [1, 1],
                                       "gender": ["M", "F"], "genres": [["a"], ["b"]],
                                       "hour": [7, 8]})], ignore_index=True)
    d2, _ = check_interactions(neg, rating_threshold=4, keep_table=True)
    assert list(d2.user_features.columns) == ["gender"]
    assert list(d2.item_features.columns) == ["genres"]
    indptr, seq = data.sequences  # positives by time: u1 = 10 (t3), 30 (t5); u2 = 30, 10
    per_user = [items[seq[indptr[u]:indptr[u + 1]]].tolist() for u in range(3)]
    assert per_user == [[10, 30], [30, 10], [20]]
    # the input is not modified
    assert isinstance(df.loc[0, "genres"], list) and "user_code" not in df.columns


def test_interaction_data_matrix_form_and_prediction_path():
    X = sp.random(5, 4, density=0.5, format="csr", random_state=0)
    data, _ = check_interactions(X, keep_table=True)
    assert data.kind == "matrix" and data.table is None and data.sequences is None
    assert data.item_ids.tolist() == [0, 1, 2, 3]
    table, _ = check_interactions(_table())  # prediction: no table copy made
    assert table.table is None and table.user_features is None


# -- the training-loop template on a toy family --------------------------------------------------
class _Toy(IterativeRecommender):
    """Item popularity learned by gradient steps: a minimal family of the loop template."""

    _parameter_constraints = {**ITERATIVE_CONSTRAINTS, "learning_rate": POSITIVE_REAL}

    def __init__(self, *, learning_rate=0.1, batch_size=4, max_iter=5, early_stopping=False,
                 n_iter_no_change=2, validation_fraction=0.2, validation_metric="ndcg@5",
                 dtype="float32", device="cpu", rating_threshold=None, random_state=0,
                 verbose=False, nan_at=None, interrupt_at=None):
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.validation_metric = validation_metric
        self.dtype = dtype
        self.device = device
        self.rating_threshold = rating_threshold
        self.random_state = random_state
        self.verbose = verbose
        self.nan_at = nan_at
        self.interrupt_at = interrupt_at

    def _init_model(self, train, data, sensitive_features, rng, gen):
        tr = self._tr
        tr.w = torch.randn(train.shape[1], generator=gen)
        tr.rows = self._batch_source(train, self.device_, torch.float32)
        tr.seen, tr.epoch = [], 0
        return train.shape[0]

    def _start_epoch(self, epoch):
        self._tr.epoch = epoch
        if self.interrupt_at is not None and epoch == self.interrupt_at:
            raise KeyboardInterrupt

    def _train_step(self, idx):
        tr = self._tr
        tr.seen.append(idx.clone())
        xb = tr.rows(idx)
        target = xb.mean(0)
        loss = ((tr.w - target) ** 2).mean()
        tr.w -= self.learning_rate * 2 * (tr.w - target) / len(tr.w)
        if self.nan_at is not None and tr.epoch == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "size": torch.tensor(float(len(idx)))}

    def _prepare_validation(self):
        self.w_ = self._tr.w.clone()

    def _snapshot(self):
        return self._tr.w.clone()

    def _restore(self, state):
        self._tr.w = state

    def _finish_fit(self):
        self.w_ = self._tr.w.clone()
        self.batches_ = [t.tolist() for t in self._tr.seen]

    def _scores_from_rows(self, X_rows):
        return self.w_.expand(X_rows.shape[0], -1).clone()


@pytest.fixture(scope="module")
def X():
    return make_interactions(n_users=60, n_items=20, density=0.2, random_state=0).X


def test_template_batching_policy(X):
    m = _Toy(batch_size=7, max_iter=3).fit(X)
    # each epoch: every training user once, in a seeded random order, batches of 7, last smaller
    per_epoch = len(range(0, 60, 7))
    assert m.n_steps_ == 3 * per_epoch and m.n_iter_ == 3 and m.best_epoch_ == 3
    for e in range(3):
        ep = m.batches_[e * per_epoch:(e + 1) * per_epoch]
        assert [len(b) for b in ep] == [7] * 8 + [4]
        assert sorted(sum(ep, [])) == list(range(60))
    assert m.batches_[0] != m.batches_[per_epoch]  # reshuffled
    assert _Toy(batch_size=7, max_iter=3).fit(X).batches_ == m.batches_  # seeded
    # the record is the mean per unit over the epoch: "size" averages the batch sizes by unit
    assert m.history_[0]["size"] == pytest.approx((8 * 7 * 7 + 4 * 4) / 60)
    assert "_tr" not in m.__dict__ and "_train_rows" not in m.__dict__


def test_template_restores_best_epoch_and_its_score(X):
    v_in, v_out = fold_in_split(X[40:], 0.6, random_state=0)
    m = _Toy(learning_rate=5.0, early_stopping=True, n_iter_no_change=2, max_iter=30).fit(
        X[:40], validation_data=(v_in, v_out))
    hist = m.history_
    assert hist[0]["epoch"] == 0 and "val_ndcg@5" in hist[0]
    scores = [h["val_ndcg@5"] for h in hist]
    assert m.best_epoch_ == int(np.argmax(scores)) and m.best_validation_score_ == max(scores)
    again = np.nanmean(m.evaluate(v_in, ["ndcg@5"], targets=v_out)[0]["ndcg@5"])
    assert again == pytest.approx(m.best_validation_score_, abs=1e-6)


def test_template_nan_loss_stops_with_the_epoch():
    X = make_interactions(n_users=30, n_items=10, density=0.3, random_state=0).X
    with pytest.raises(FloatingPointError, match="at epoch 3.*learning_rate"):
        _Toy(nan_at=2).fit(X)


def test_template_keyboard_interrupt_keeps_a_usable_model(X):
    v_in, v_out = fold_in_split(X[40:], 0.6, random_state=0)
    with pytest.warns(UserWarning, match="interrupted after 2 complete epoch"):
        m = _Toy(early_stopping=True, max_iter=10, n_iter_no_change=10,
                 interrupt_at=2).fit(X[:40], validation_data=(v_in, v_out))
    assert m.n_iter_ == 2 and m.best_epoch_ <= 2
    assert np.isfinite(m.predict(v_in)).all()
    with pytest.raises(KeyboardInterrupt):  # nothing trained and nothing validated: re-raised
        _Toy(interrupt_at=0).fit(X)


def test_parameters_validated_once_with_their_name(X):
    with pytest.raises(ValueError, match="'learning_rate' parameter of _Toy"):
        _Toy(learning_rate=-1).fit(X)
    with pytest.raises(ValueError, match="'validation_fraction' parameter"):
        _Toy(validation_fraction=1.5).fit(X)
    with pytest.raises(ValueError, match="validation_data .* shapes"):
        _Toy(early_stopping=True).fit(X, validation_data=(X[:5], X[:6]))


# -- the prediction API ---------------------------------------------------------------------------
def test_table_prediction_api_without_item_column():
    df = make_interactions(n_users=50, n_items=15, density=0.3, random_state=1,
                           return_frame=True).interactions
    m = EASE(l2=10.0, device="cpu", rating_threshold=None).fit(df)
    users = m.user_ids_[:4]
    by_list = m.recommend(list(users), k=3)
    by_table = m.recommend(pd.DataFrame({"user": users}), k=3)
    pd.testing.assert_frame_equal(by_list, by_table)
    frame = m.predict(users, as_frame=True)
    assert list(frame.columns) == list(m.item_ids_) and list(frame.index) == list(users)
    np.testing.assert_array_equal(frame.to_numpy(), m.predict(pd.DataFrame({"user": users})))
    with pytest.raises(ValueError, match="not seen in fit"):
        m.predict(["nobody"])
    with pytest.warns(FutureWarning, match="input_fraction"):
        m2 = EASE(l2=10.0, device="cpu").fit(sp.csr_matrix(m.train_matrix_))
        m2.evaluate(sp.csr_matrix(m.train_matrix_), ["ndcg@10"], fold_in_fraction=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m2.evaluate(sp.csr_matrix(m.train_matrix_), ["ndcg@10"], input_fraction=0.5)
