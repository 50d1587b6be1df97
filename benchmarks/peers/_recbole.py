"""RecBole 1.2.1 models built on our matrices (a stand-in dataset; no RecBole data pipeline).

RecBole numbers users and items from 1 (0 is its padding id), so ids are shifted by one. Only
the model objects are RecBole's: the benchmark feeds them our batches (the same triples / users
our trainer uses), with torch's Adam, so its data loader and negative sampler, which add time
in RecBole's own trainer, are not counted: the ratios are in RecBole's favour.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from _shims import apply

apply()


class StandInDataset:
    """What RecBole's general models read from a Dataset: ``num``, ``inter_matrix``,
    ``history_item_matrix``, for a users x items CSR matrix."""

    def __init__(self, X):
        X = sp.csr_matrix(X, dtype=np.float32)
        n_users, n_items = X.shape
        # shift ids by one (RecBole's padding id 0)
        self._X = sp.csr_matrix((X.data, X.indices + 1, np.r_[0, X.indptr]),
                                shape=(n_users + 1, n_items + 1))
        self._n = {"user_id": n_users + 1, "item_id": n_items + 1}

    def num(self, field):
        return self._n[field]

    def inter_matrix(self, form="coo", value_field=None):
        return self._X.tocoo() if form == "coo" else self._X.tocsr()

    def history_item_matrix(self, value_field=None, max_history_len=None):
        X = self._X
        lens = np.diff(X.indptr)
        width = int(lens.max())
        ids = np.zeros((X.shape[0], width), dtype=np.int64)
        vals = np.zeros((X.shape[0], width), dtype=np.float32)
        rows = np.repeat(np.arange(X.shape[0]), lens)
        cols = np.arange(X.nnz) - np.repeat(X.indptr[:-1], lens)
        ids[rows, cols] = X.indices
        vals[rows, cols] = 1.0
        return torch.from_numpy(ids), torch.from_numpy(vals), torch.from_numpy(lens)


class _Config(dict):
    """RecBole's models read their config by key, and a few by attribute (``config.device``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def config(**kw):
    base = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_",
            "device": torch.device("cpu"), "embedding_size": 64, "n_layers": 3,
            "reg_weight": 1e-4, "require_pow": False, "mlp_hidden_size": [600],
            "latent_dimension": 200, "dropout_prob": 0.5, "anneal_cap": 0.2,
            "total_anneal_steps": 200000}
    base.update(kw)
    return _Config(base)


def model(name, X, **kw):
    from recbole.model.general_recommender import BPR, EASE, LightGCN, MultiVAE

    cls = {"BPR": BPR, "EASE": EASE, "LightGCN": LightGCN, "MultiVAE": MultiVAE}[name]
    return cls(config(**kw), StandInDataset(X))


def interaction(**cols):
    from recbole.data.interaction import Interaction

    return Interaction({k: (v + 1) for k, v in cols.items()})
