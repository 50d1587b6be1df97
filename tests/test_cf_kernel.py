"""The native (C) step of the MF trainers: equal to the torch row-sparse step, its build and cache,
the fallback without a compiler, and the ``SKADVREC_NATIVE=0`` switch."""

import os
import pickle
import threading
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skadvrec._sampling import TripleSampler
from skadvrec._torch import RowAdamW
from skadvrec.cf import APR, BPRMF, PamaCF, _kernel
from skadvrec.datasets import make_interactions

needs_cc = pytest.mark.skipif(_kernel._compiler() is None, reason="no C compiler on this machine")


@pytest.fixture(scope="module")
def df():
    return make_interactions(n_users=120, n_items=60, density=0.15, random_state=0,
                             return_frame=True).interactions[["user", "item"]]


def _torch_form(model):
    model._native_step_allowed = False
    return model


def _step_pair(model, n_users, n_items, d, gen):
    """Two trainers on the same table: the torch row-sparse step and the native one."""
    table = torch.randn(n_users + n_items, d, generator=gen) * 0.3
    adv = model._adversary()
    states = []
    for native in (False, True):
        tr = types.SimpleNamespace(
            n_users=n_users, row_opt=RowAdamW(table, lr=0.01, weight_decay=model.weight_decay),
            adversary=adv, adversarial=adv is not None, native=None)
        if native:
            rule = (0, 0.0, 0.0) if adv is None else (*adv.rule.native_args(), adv.weight)
            tr.native = _kernel.NativeStep.create(tr.row_opt, n_users, rule)
            assert tr.native is not None
        m = type(model)(**model.get_params())
        m._tr = tr
        states.append(m)
    return (*states, table)


@needs_cc
@pytest.mark.parametrize("model", [
    BPRMF(weight_decay=0.05, reg=0.01), BPRMF(weight_decay=0.0, reg=0.0),
    APR(eps=0.3, reg=0.01), PamaCF(rho=0.3), PamaCF(rho=0.3, magnitude="paper"),
], ids=["bprmf", "bprmf-no-decay", "apr", "pamacf", "pamacf-paper"])
@pytest.mark.parametrize("d", [8, 13], ids=["d8", "d13"])  # 13: the vector loops' scalar tails
def test_native_step_equals_torch_step(model, d):
    """Step by step on hand-made batches: rows touched often, rows left out for 1 to 2,500 steps
    (the momentum catch-up in closed form, through the table of powers and beyond it, and the
    moments' cut-off below 1e-20), rows never touched (the common weight-decay scale): the
    native step leaves the optimiser state where the torch step does, with the same losses."""
    gen = torch.Generator().manual_seed(0)
    n_users, n_items, B = 20, 30, 6
    ref, nat, table = _step_pair(model, n_users, n_items, d, gen)
    rare = {0: [25, 26], 3: [27], 500: [25], 2100: [26, 27]}  # item rows left out for long
    n_steps = 2200
    for step in range(n_steps):
        u = torch.randint(n_users - 2, (B,), generator=gen)  # users 18, 19: never touched
        i = torch.randint(20, (B,), generator=gen)
        j = torch.randint(20, 25, (B,), generator=gen)
        for k, item in enumerate(rare.get(step, [])):
            j[k] = item
        # the same batch through both forms
        for m in (ref, nat):
            m._tr.triples = (u, i, j)
        idx = torch.arange(B)
        a = ref._sparse_step(idx)
        b = nat._native_step(idx)
        for key in a:
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-5, abs=1e-7), (step, key)
        if step in (0, 1, 2, 3, 4, 499, 500, 501, 2100, 2101):
            for x, y in ((ref._tr.row_opt, nat._tr.row_opt),):
                assert x.t == y.t and x._scale == y._scale
                np.testing.assert_allclose(y.state, x.state, rtol=2e-4, atol=1e-6)
                assert torch.equal(x._last, y._last)
    ref._tr.row_opt.flush()
    nat._tr.native.flush()  # the native flush: one pass over the table
    assert nat._tr.row_opt._scale == 1.0 and bool((nat._tr.row_opt._last == n_steps).all())
    x, y = ref._tr.row_opt.table, nat._tr.row_opt.table
    np.testing.assert_allclose(y, x, rtol=2e-4, atol=1e-6)
    # the untouched users moved by the weight decay alone, as under dense AdamW
    decayed = table[18:20] * (1 - 0.01 * model.weight_decay) ** n_steps
    np.testing.assert_allclose(y[18:20], decayed, rtol=1e-4)
    if model.weight_decay:
        assert not torch.allclose(y[18:20], table[18:20])


@needs_cc
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model", [
    BPRMF(reg=0.01), APR(eps=0.3, n_pretrain_epochs=2), PamaCF(rho=0.3, n_pretrain_epochs=2),
], ids=["bprmf", "apr", "pamacf"])
def test_native_fit_equals_torch_fit(df, model):
    """Whole fits (small batches: most rows miss most steps) train the same model with either
    step, and the native sampler draws the same triples."""
    params = dict(n_components=16, batch_size=64, max_iter=5, device="cpu", random_state=0)
    a = type(model)(**{**model.get_params(), **params}).fit(df)
    b = _torch_form(type(model)(**{**model.get_params(), **params})).fit(df)
    for x, y in ((a.user_embeddings_, b.user_embeddings_),
                 (a.item_embeddings_, b.item_embeddings_)):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=2e-5)
    for ha, hb in zip(a.history_, b.history_):
        for k in ("loss", "bpr", "adversarial"):
            if hb[k] is None:
                assert ha[k] is None
            else:
                assert ha[k] == pytest.approx(hb[k], rel=1e-5)


def test_native_sampler_draws_the_same_triples():
    if _kernel.load() is None:
        pytest.skip("the native kernel is not available here")
    X = sp.random(200, 90, density=0.2, random_state=1, format="csr")
    a, b = TripleSampler(X, "cpu"), TripleSampler(X, "cpu")
    b.reject = _kernel.NativeReject.create(b, _kernel.load())
    c = TripleSampler(X, "cpu")  # and the native first pass over the draws, with either test
    c.draw = _kernel.NativeTriples.create(c, _kernel.load())
    d = TripleSampler(X, "cpu", reject=b.reject)
    d.draw = c.draw
    for seed in range(3):
        ta = a.sample(4000, torch.Generator().manual_seed(seed))
        for other in (b, c, d):
            tb = other.sample(4000, torch.Generator().manual_seed(seed))
            assert all(torch.equal(x, y) for x, y in zip(ta, tb))
        before = torch.get_default_dtype()  # float64 uniforms: the torch form, same triples
        try:
            torch.set_default_dtype(torch.float64)
            ta64 = a.sample(4000, torch.Generator().manual_seed(seed))
            tc64 = c.sample(4000, torch.Generator().manual_seed(seed))
        finally:
            torch.set_default_dtype(before)
        assert all(torch.equal(x, y) for x, y in zip(ta64, tc64))
        u, i, j = ta  # and the draws are what they claim: positives, then non-positives
        dense = X.toarray() != 0
        assert dense[u.numpy(), i.numpy()].all() and not dense[u.numpy(), j.numpy()].any()


@needs_cc
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model", [
    BPRMF(reg=0.01), APR(eps=0.3, n_pretrain_epochs=1), PamaCF(rho=0.3, n_pretrain_epochs=1),
    PamaCF(rho=0.3, n_pretrain_epochs=1, magnitude="paper"),
], ids=["bprmf", "apr", "pamacf", "pamacf-paper"])
def test_native_epoch_in_one_call_equals_step_by_step(df, model, monkeypatch):
    """The epoch as one native call makes the same updates as the native step called batch by
    batch from the training loop (the same model to the bit) and keeps the same record."""
    from skadvrec.base import IterativeRecommender

    params = dict(n_components=16, batch_size=50, max_iter=3, device="cpu", random_state=0)
    a = type(model)(**{**model.get_params(), **params}).fit(df)
    with monkeypatch.context() as mp:  # the loop of the base class: one _native_step a batch
        mp.setattr(type(model), "_train_batches", IterativeRecommender._train_batches)
        b = type(model)(**{**model.get_params(), **params}).fit(df)
    assert torch.equal(a.user_embeddings_, b.user_embeddings_)
    assert torch.equal(a.item_embeddings_, b.item_embeddings_)
    assert a.n_steps_ == b.n_steps_ == 3 * int(np.ceil(len(df) / 50))
    for ha, hb in zip(a.history_, b.history_):
        assert {k: v for k, v in ha.items() if k != "seconds"} == \
            {k: v for k, v in hb.items() if k != "seconds"}


@needs_cc
def test_native_step_is_used_only_where_it_applies(df):
    """float32 on the CPU gets the native step; float64 and the dense path keep torch."""
    seen = []
    orig = BPRMF._finish_fit

    def spy(self):
        seen.append(self._tr.native is not None)
        return orig(self)

    params = dict(n_components=8, max_iter=1, device="cpu", random_state=0)
    BPRMF._finish_fit = spy
    try:
        BPRMF(**params).fit(df)
        BPRMF(dtype="float64", **params).fit(df)
        m = BPRMF(**params)
        m._sparse_updates = False
        m.fit(df)
    finally:
        BPRMF._finish_fit = orig
    assert seen == [True, False, False]


def test_switch_off_with_environment(df, monkeypatch):
    """SKADVREC_NATIVE=0: no build, the torch step, the same model as the torch form."""
    monkeypatch.setenv("SKADVREC_NATIVE", "0")
    monkeypatch.setattr(_kernel, "_lib", None)
    monkeypatch.setattr(_kernel, "_failed", None)
    monkeypatch.setattr(_kernel, "_build", lambda *a, **k: pytest.fail("built despite the switch"))
    assert _kernel.load() is None
    params = dict(n_components=8, max_iter=2, device="cpu", random_state=0)
    a = BPRMF(**params).fit(df)
    b = _torch_form(BPRMF(**params)).fit(df)
    assert torch.equal(a.user_embeddings_, b.user_embeddings_)


def test_fallback_without_compiler(df, monkeypatch, recwarn):
    """No C compiler: one warning, then the torch step (the same model as the torch form)."""
    monkeypatch.delenv("SKADVREC_NATIVE", raising=False)
    monkeypatch.setattr(_kernel, "_lib", None)
    monkeypatch.setattr(_kernel, "_failed", None)
    monkeypatch.setattr(_kernel, "_compiler", lambda: None)
    params = dict(n_components=8, max_iter=2, device="cpu", random_state=0)
    with pytest.warns(RuntimeWarning, match="native BPR step could not be built"):
        a = BPRMF(**params).fit(df)
    assert _kernel._failed and _kernel.load() is None  # remembered: not retried per fit
    b = _torch_form(BPRMF(**params)).fit(df)
    assert torch.equal(a.user_embeddings_, b.user_embeddings_)


@needs_cc
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_baseline_build_trains_the_same_model(df, monkeypatch, tmp_path):
    """The library built without the AVX2 clone (the build's last resort, and what runs on a CPU
    without AVX2) trains the same models as the default build, to float32 rounding."""
    monkeypatch.setenv("SKADVREC_KERNEL_CACHE", str(tmp_path))
    base = _kernel._load_library(_kernel._build(_kernel._compiler(), (_kernel._BASE_FLAGS,)))
    params = dict(n_components=16, batch_size=50, max_iter=3, device="cpu", random_state=0)
    for model in (BPRMF(reg=0.01), PamaCF(rho=0.3, n_pretrain_epochs=1)):
        a = type(model)(**{**model.get_params(), **params}).fit(df)
        monkeypatch.setattr(_kernel, "_lib", base)
        b = type(model)(**{**model.get_params(), **params}).fit(df)
        monkeypatch.undo()
        monkeypatch.setenv("SKADVREC_KERNEL_CACHE", str(tmp_path))
        np.testing.assert_allclose(a.user_embeddings_, b.user_embeddings_, rtol=1e-3,
                                   atol=2e-5)
        assert a.history_[-1]["loss"] == pytest.approx(b.history_[-1]["loss"], rel=1e-5)


@needs_cc
def test_fallback_when_the_build_fails(df, monkeypatch, tmp_path):
    monkeypatch.setenv("SKADVREC_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(_kernel, "_lib", None)
    monkeypatch.setattr(_kernel, "_failed", None)
    monkeypatch.setattr(_kernel, "_SOURCE", "this is not C;")
    with pytest.warns(RuntimeWarning, match="could not be built"):
        m = BPRMF(n_components=8, max_iter=1, device="cpu", random_state=0).fit(df)
    assert m.n_iter_ == 1
    assert not [f for f in os.listdir(tmp_path) if not f.startswith(".")]  # nothing left over


@needs_cc
def test_build_is_cached_and_safe_under_concurrency(monkeypatch, tmp_path):
    """Builds racing into an empty cache all end with the same complete library (each compiles
    under a temporary name and renames it into place); later calls reuse it."""
    monkeypatch.setenv("SKADVREC_KERNEL_CACHE", str(tmp_path))
    cc = _kernel._compiler()
    paths, errors = [], []

    def build():
        try:
            paths.append(_kernel._build(cc))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(paths)) == 1
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(paths[0])]  # no temp files left
    lib = _kernel._load_library(paths[0])
    assert lib.skadvrec_kernel_version() == _kernel._VERSION
    mtime = os.path.getmtime(paths[0])
    assert _kernel._build(cc) == paths[0] and os.path.getmtime(paths[0]) == mtime


@needs_cc
def test_pickle_of_a_natively_fitted_model(df):
    m = PamaCF(rho=0.3, n_pretrain_epochs=1, n_components=8, max_iter=2, device="cpu",
               random_state=0).fit(df)
    blob = pickle.dumps(m)
    assert b"ctypes" not in blob and b"NativeStep" not in blob
    m2 = pickle.loads(blob)
    assert torch.equal(m2.user_embeddings_, m.user_embeddings_)
    assert not hasattr(m2, "_tr")
