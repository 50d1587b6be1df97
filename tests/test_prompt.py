"""The prompt family: P5Recommender (T5 backbone) and CFP (counterfactually-fair prompts).

CPU, tiny T5 configs, synthetic sequences with a planted attribute: a user of group g walks
through the items of half g one step at a time, so the next item is learnable from the last one
and the group is written all over the history (hence the user representation).
"""

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from skadvrec.metrics import attribute_leakage  # noqa: E402
from skadvrec.prompt import CFP, P5Recommender  # noqa: E402
from skadvrec.prompt import _t5  # noqa: E402

N_USERS, N_ITEMS, LENGTH = 160, 40, 12
TINY = dict(d_model=32, n_layers=2, n_heads=2, d_ff=64, batch_size=64, device="cpu")
PROMPT = dict(prefix_length=4, prefix_hidden=32, max_iter=2, batch_size=64, rs_step=2,
              together_steps=4, rec_steps=2, sole_steps=4, learning_rate=5e-3,
              discriminator_learning_rate=5e-3, max_targets_per_user=4, device="cpu",
              random_state=0)


def _sequences(seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, N_USERS)
    coin = rng.integers(0, 2, N_USERS)  # an attribute with no signal
    half = N_ITEMS // 2
    start = rng.integers(0, half, N_USERS)
    steps = np.arange(LENGTH)
    items = (start[:, None] + steps) % half + g[:, None] * half
    df = pd.DataFrame({"user": np.repeat(np.arange(N_USERS), LENGTH) + 100,
                       "item": items.ravel(), "timestamp": np.tile(steps, N_USERS)})
    S = pd.DataFrame({"group": np.where(np.repeat(g, LENGTH) == 1, "b", "a"),
                      "coin": np.repeat(coin, LENGTH).astype(str)})
    return df, S


@pytest.fixture(scope="module")
def data():
    df, S = _sequences()
    test = df.groupby("user").tail(1)
    train = df.drop(test.index)
    S_train = S.loc[train.index].reset_index(drop=True)
    per_user = S.iloc[::LENGTH].reset_index(drop=True)
    return dict(train=train.reset_index(drop=True), test=test.reset_index(drop=True),
                S=S_train, users=pd.DataFrame({"user": np.arange(N_USERS) + 100}),
                S_users=per_user)


@pytest.fixture(scope="module")
def p5(data):
    return P5Recommender(**TINY, max_iter=8, early_stopping=False, learning_rate=1e-2,
                         max_targets_per_user=4, random_state=0).fit(data["train"])


def _leak(est, data, attr="group"):
    res = attribute_leakage(est, data["users"], data["S_users"][[attr]], n_bootstraps=0,
                            attacker=LogisticRegression(max_iter=2000))
    return float(res["auc"].iloc[0])


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_own_t5_forward_equals_hugging_face():
    m = _t5.build_t5(50, d_model=32, num_layers=2, num_heads=4, d_ff=64, dropout=0.0,
                     seed=0).eval()
    ids = torch.randint(3, 50, (3, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 7)
    mask[0, 5:] = 0
    dec = torch.tensor([[0, 5], [0, 6], [0, 7]])
    with torch.no_grad():
        ref = m(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec).logits
        ours = _t5.decode(m, _t5.encode(m, ids, mask), mask, dec)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_backbone_learns_the_next_item(p5, data):
    hits = p5.hit_ratio(data["test"], ks=(1, 5), n_negatives=20, random_state=0)
    assert hits["hit@5"] > 0.6 > 5 / 21  # random ranking: 5 of 21
    top = p5.recommend(data["test"], k=1)
    assert (top["item"].to_numpy() == data["test"]["item"].to_numpy()).mean() > 0.5
    assert p5.score(data["test"]) == pytest.approx(
        p5.hit_ratio(data["test"], ks=(5,), n_negatives=39)["hit@5"])
    # score_candidates agrees with the full ranking
    sc = p5.score_candidates(data["test"]["user"][:4], np.tile(np.arange(5), (4, 1)))
    full = p5.predict(data["test"]["user"][:4])
    np.testing.assert_allclose(sc, full[:, :5], rtol=1e-5)


@pytest.fixture(scope="module")
def fitted(p5, data):
    """One CFP fit shared by several tests: prompts for the planted group (w=20) and a
    signal-free coin, their mixture (with the token reweighter), and the backbone's weights
    before it."""
    before = _weights(p5.t5_)
    cfp = CFP(backbone=p5, discriminator_weight={"group": 20.0, "coin": 1.0}, mixture=True,
              mixture_attributes=["group", "coin"], reweighter=True, **PROMPT)
    cfp.fit(data["train"], sensitive_features=data["S"])
    return cfp, before


def test_prompts_train_while_the_backbone_stays_bit_identical(p5, fitted, data):
    cfp, before = fitted
    for name, t in _weights(p5.t5_).items():
        assert torch.equal(t, before[name]), name
    for name, t in _weights(cfp.t5_).items():
        assert torch.equal(t, before[name]), name
    assert all(not p.requires_grad for p in cfp.t5_.parameters())
    hist = cfp.phase_history_["group"]
    assert len(hist) == PROMPT["max_iter"] and np.isfinite([h["loss_rec"] for h in hist]).all()
    view = clone(cfp)  # parameters only
    assert view.get_params()["prompt"] == "auto"
    Z_prompt = cfp.set_params(prompt="group").transform(data["users"])
    Z_none = cfp.set_params(prompt="none").transform(data["users"])
    cfp.set_params(prompt="auto")
    np.testing.assert_allclose(Z_none, p5.transform(data["users"]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(Z_prompt, Z_none)


def test_leakage_falls_with_the_discriminator_weight_and_w0_keeps_it(p5, fitted, data):
    base = _leak(p5, data)
    assert base > 0.75  # the planted group leaks into the backbone's user token
    w0 = CFP(backbone=p5, attributes=["group"], discriminator_weight=0.0, **PROMPT)
    w0.fit(data["train"], sensitive_features=data["S"])
    leak0 = _leak(w0, data)
    cfp, _ = fitted
    leak20 = _leak(cfp.set_params(prompt="group"), data)
    cfp.set_params(prompt="auto")
    assert leak0 > base - 0.08
    assert leak20 < leak0 - 0.1


def test_a_mixture_of_two_trained_prompts_works(p5, fitted, data):
    cfp, _ = fitted
    assert set(cfp.prompts_) == {"group", "coin"} and cfp.mixture_ is not None
    assert cfp.mixture_attributes_ == ["group", "coin"]
    assert set(cfp.phase_history_) == {"group", "coin", "mixture"}
    Z = {p: cfp.set_params(prompt=p).transform(data["users"])
         for p in ("mixture", "group", "coin")}
    cfp.set_params(prompt="auto")
    assert not np.allclose(Z["mixture"], Z["group"]) and not np.allclose(Z["mixture"], Z["coin"])
    assert _leak(cfp, data) < _leak(p5, data) - 0.05
    assert cfp.hit_ratio(data["test"], ks=(5,), n_negatives=20)["hit@5"] > 0.5
    with pytest.raises(ValueError, match="not available"):
        cfp.set_params(prompt="age").transform(data["users"])
    cfp.set_params(prompt="auto")


def test_bad_input_gets_a_clear_error(p5, data):
    one_class = data["S"].assign(group="a")
    with pytest.raises(ValueError, match="class"):
        CFP(backbone=p5, attributes=["group"], **PROMPT).fit(data["train"],
                                                             sensitive_features=one_class)
    with pytest.raises(ValueError, match="sensitive_features"):
        CFP(backbone=p5, **PROMPT).fit(data["train"])
    with pytest.raises(ValueError, match="not seen in fit"):
        p5.transform(pd.DataFrame({"user": [100, 99999]}))
    unknown = data["train"].assign(user=data["train"]["user"] + 10_000)
    with pytest.raises(ValueError, match="not seen by the backbone"):
        CFP(backbone=p5, **PROMPT).fit(unknown, sensitive_features=data["S"])
    single = pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [0, 0]})
    with pytest.raises(ValueError, match="next item"):
        P5Recommender(**TINY, max_iter=1, early_stopping=False).fit(single)
    # matrix form: a row without any interaction has an empty history
    X = np.zeros((6, 8))
    X[np.arange(6), np.arange(6)] = 1
    X[np.arange(6), np.arange(1, 7)] = 1
    m = P5Recommender(**TINY, max_iter=1, early_stopping=False, random_state=0).fit(X)
    assert m.predict(X).shape == (6, 8)
    with pytest.raises(ValueError, match="empty history"):
        m.predict(np.zeros((1, 8)))


def test_clone_get_params_and_pickle_round_trip(p5, data):
    cfp = CFP(backbone=p5, attributes=["group"], **{**PROMPT, "max_iter": 1})
    params = clone(cfp).get_params()
    assert params["prefix_length"] == 4 and params["backbone"] is not p5
    cfp.fit(data["train"], sensitive_features=data["S"])
    again = pickle.loads(pickle.dumps(cfp))
    users = data["test"]["user"][:10]
    np.testing.assert_allclose(again.predict(users), cfp.predict(users), rtol=1e-6)
    p5_again = pickle.loads(pickle.dumps(p5))
    np.testing.assert_allclose(p5_again.transform(users), p5.transform(users), rtol=1e-6)


def test_local_checkpoint_backbone_loads_offline_and_cfp_runs_on_it(tmp_path, data):
    ckpt = _t5.build_t5(30, d_model=24, num_layers=1, num_heads=2, d_ff=48, dropout=0.0,
                        seed=1)
    ckpt.save_pretrained(tmp_path)
    model = P5Recommender(backbone=str(tmp_path), max_iter=1, early_stopping=False,
                          batch_size=64, device="cpu", random_state=0)
    model.fit(data["train"])
    assert model.d_model_ == 24 and model.t5_.config.num_layers == 1
    assert model.transform(data["users"]).shape == (N_USERS, 24)
    cfp = CFP(backbone=model, attributes=["group"], **{**PROMPT, "max_iter": 1})
    cfp.fit(data["train"], sensitive_features=data["S"])
    assert cfp.transform(data["users"]).shape == (N_USERS, 24)
    with pytest.raises(ValueError, match="not a directory"):
        P5Recommender(backbone=str(tmp_path / "missing"), max_iter=1,
                      early_stopping=False).fit(data["train"])
