"""Every public estimator of skadvrec in a small, fast configuration (the reliability suites).

A family that lands later adds a row to ``ESTIMATORS`` (and, if it transforms, to
``TRANSFORMERS``); the persistence, determinism, mutation and divergence tests then cover it.
"""

from __future__ import annotations

import functools

import numpy as np

from skadvrec import (AAFM, APR, ARM, BPRMF, EASE, EASEIPW, FM, RLARM, AdvFM, AdvXMultVAE,
                      BandwagonAttack, LightGCN, LinearErasure, MultVAE, PamaCF, PopularAttack,
                      RandomAttack)
from skadvrec.datasets import make_interactions
from skadvrec.preprocessing import InteractionFilter

_IT = dict(max_iter=2, early_stopping=False, device="cpu", random_state=0)
_CF = dict(n_components=4, batch_size=64, **_IT)
_VAE = dict(hidden_dims=(8,), latent_dim=4, batch_size=32, anneal_steps=0, **_IT)
_FM = dict(n_components=4, batch_size=64, **_IT)
_LIN = dict(l2=10.0, ndcg_k=5, batch_size=32, **_IT)

# name -> (factory(**overrides), needs sensitive_features, iterative)
ESTIMATORS = {
    "EASE": (lambda **kw: EASE(**{"l2": 10.0, "device": "cpu", **kw}), False, False),
    "EASEIPW": (lambda **kw: EASEIPW(**{"l2": 10.0, "beta": 0.5, "device": "cpu", **kw}), False,
                False),
    "ARM": (lambda **kw: ARM(**{**_LIN, **kw}), False, True),
    "RLARM": (lambda **kw: RLARM(**{**_LIN, **kw}), False, True),
    "MultVAE": (lambda **kw: MultVAE(**{**_VAE, **kw}), False, True),
    "AdvXMultVAE": (lambda **kw: AdvXMultVAE(**{**_VAE, "attributes": ["group"], **kw}), True,
                    True),
    "BPRMF": (lambda **kw: BPRMF(**{**_CF, **kw}), False, True),
    "LightGCN": (lambda **kw: LightGCN(**{**_CF, "n_layers": 2, **kw}), False, True),
    "APR": (lambda **kw: APR(**{**_CF, "n_pretrain_epochs": 1, **kw}), False, True),
    "PamaCF": (lambda **kw: PamaCF(**{**_CF, "n_pretrain_epochs": 1, **kw}), False, True),
    "FM": (lambda **kw: FM(**{**_FM, **kw}), False, True),
    "AdvFM": (lambda **kw: AdvFM(**{**_FM, "n_clean_epochs": 1, **kw}), False, True),
    "AAFM": (lambda **kw: AAFM(**{**_FM, "n_clean_epochs": 1, **kw}), False, True),
}

# transformers other than the recommenders: name -> (factory, fit(obj, data) -> output)
TRANSFORMERS = {
    "RandomAttack": lambda: RandomAttack(n_targets=2, n_fake_users=3, random_state=0),
    "BandwagonAttack": lambda: BandwagonAttack(n_targets=2, n_fake_users=3, random_state=0),
    "PopularAttack": lambda: PopularAttack(n_targets=2, n_fake_users=3, random_state=0),
    "LinearErasure": lambda: LinearErasure(attributes=["group"]),
    "InteractionFilter": lambda: InteractionFilter(min_user_interactions=3),
}


@functools.lru_cache(maxsize=None)
def data():
    """(X, S, table): a small matrix with its users' attributes, and an interaction table."""
    d = make_interactions(n_users=60, n_items=25, density=0.25, random_state=0)
    t = make_interactions(n_users=40, n_items=15, density=0.3, random_state=1,
                          return_frame=True).interactions
    return d.X.tocsr(), d.sensitive_features.reset_index(drop=True), t


def fit(name, X=None, **overrides):
    """Fit estimator ``name`` of ``ESTIMATORS`` on the zoo's matrix (or X)."""
    factory, needs_s, _ = ESTIMATORS[name]
    X0, S, _ = data()
    X = X0 if X is None else X
    model = factory(**overrides)
    if needs_s:
        return model.fit(X, sensitive_features=S.iloc[:X.shape[0]])
    return model.fit(X)


def transformer_output(name, obj, X, S, table):
    """Fit transformer ``name`` and return the output that must survive a round trip."""
    if name == "LinearErasure":
        Z = np.asarray(X.toarray(), dtype=np.float64)
        return obj.fit(Z, S).transform(Z)
    if name == "InteractionFilter":
        return obj.fit(table).transform(table).to_numpy()
    out = obj.fit_transform(X)
    return out.toarray() if hasattr(out, "toarray") else np.asarray(out)
