"""Shims that let RecBole 1.2.1 run on current numpy / torch / scipy (benchmarks only).

RecBole 1.2.1 (2023) predates numpy 2, torch 2.6 and scipy 1.14. Nothing here touches the
skadvrec package; ``apply()`` is called once by ``benchmarks/peers/run.py`` before RecBole is
imported:

* numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``; RecBole's configurator
  reads them (``recbole/config/configurator.py``). They are aliased to ``np.float64``,
  ``np.complex128`` and ``np.str_``; so are the names its ``Config.compatibility_settings``
  sets (``np.float``, ``np.int``, ``np.bool``, ...), which its metric code uses, since the
  models here are built without a RecBole ``Config``.
* torch 2.6 made ``torch.load(..., weights_only=True)`` the default; RecBole's checkpoints hold
  pickled config objects, so ``torch.load`` defaults back to ``weights_only=False`` (RecBole's own
  files only; these benchmarks load no checkpoint).
* scipy removed the private ``dok_matrix._update`` that RecBole's LightGCN / NGCF adjacency
  builder calls (``A._update(data_dict)``); it is restored as an update of the dok's dict.
* pandas 3: RecBole's ``token_seq`` fields (e.g. ML-1M's genre) fail to load. These benchmarks
  never load a RecBole dataset (the models get our matrices through a stand-in dataset,
  ``_recbole.py``), so no shim is needed for it.
"""

from __future__ import annotations

import functools


def apply():
    import numpy as np
    import scipy.sparse as sp
    import torch

    for name, alias in (("float_", np.float64), ("complex_", np.complex128),
                        ("unicode_", np.str_)):
        if not hasattr(np, name):
            setattr(np, name, alias)
    # what RecBole's Config.compatibility_settings() sets: its metrics (recbole.evaluator)
    # use np.float etc.; we build models without a Config, so set them here
    for name, alias in (("bool", np.bool_), ("int", np.int_), ("float", np.float64),
                        ("complex", np.complex128), ("object", np.object_), ("str", np.str_),
                        ("long", np.int_), ("unicode", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, alias)
    if not getattr(torch.load, "_skadvrec_shim", False):
        original = torch.load

        @functools.wraps(original)
        def load(*args, **kwargs):
            kwargs.setdefault("weights_only", False)
            return original(*args, **kwargs)

        load._skadvrec_shim = True
        torch.load = load
    if not hasattr(sp.dok_matrix, "_update"):
        def _update(self, data):
            for (r, c), v in data.items():  # pragma: no cover - replaced below when possible
                self[r, c] = v
        if hasattr(sp.dok_matrix((1, 1)), "_dict"):
            def _update(self, data):  # noqa: F811 - the fast form on scipy >= 1.13
                self._dict.update(data)
        sp.dok_matrix._update = _update
