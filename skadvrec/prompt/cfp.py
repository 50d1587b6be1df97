"""CFP: counterfactually-fair prefix prompts on a frozen P5 backbone (UP5, Hua et al. 2024)."""

from __future__ import annotations

import copy
import math
import numbers
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._params import COMMON_CONSTRAINTS, NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_REAL
from .._torch import make_generator
from ..base import _TrainingState
from . import _prompts as P
from . import _t5
from .p5 import P5Recommender

__all__ = ["CFP"]

_KINDS = ("encoder", "decoder", "cross")


class _PrefixPrompt(torch.nn.Module):
    """A prefix prompt (Li & Liang): L trainable tokens, reparameterised by one MLP per
    attention kind (encoder self, decoder self, cross) into per-layer keys and values. With the
    Prompt Token Reweighter, the encoder's tokens first attend to each other (learned position
    queries, multi-head attention)."""

    def __init__(self, length, d_model, hidden, n_layers, n_heads, d_kv, reweighter):
        super().__init__()
        self.shape = (int(length), n_heads, d_kv)
        self.n_layers = dict(n_layers)
        self.tokens = torch.nn.Parameter(torch.randn(length, d_model) * 0.02)
        self.mlp = torch.nn.ModuleDict({
            k: torch.nn.Sequential(torch.nn.Linear(d_model, hidden), torch.nn.Tanh(),
                                   torch.nn.Linear(hidden, n_layers[k] * 2 * n_heads * d_kv))
            for k in _KINDS})
        self.reweighter = None
        if reweighter:
            heads = n_heads if d_model % n_heads == 0 else 1
            self.positions = torch.nn.Parameter(torch.randn(length, d_model) * 0.02)
            self.reweighter = torch.nn.MultiheadAttention(d_model, heads, batch_first=True)

    def forward(self):
        """{kind: tensor (n_layers, 2, n_heads, L, d_kv)}."""
        L, H, dk = self.shape
        out = {}
        for k in _KINDS:
            src = self.tokens
            if self.reweighter is not None and k == "encoder":
                mixed, _ = self.reweighter(self.positions[None], src[None], src[None],
                                           need_weights=False)
                src = src + mixed[0]
            kv = self.mlp[k](src).view(L, self.n_layers[k], 2, H, dk)
            out[k] = kv.permute(1, 2, 3, 0, 4)
        return out


class _PromptMixture(torch.nn.Module):
    """Prompt Mixture: per kind, layer, key / value and head, ``length`` learned queries attend
    over the concatenated tokens of the trained single-attribute prompts and mix them back to
    ``length`` tokens (a convex combination of the trained prefixes)."""

    def __init__(self, length, n_layers, n_heads, d_kv):
        super().__init__()
        self.scale = d_kv ** -0.5
        self.queries = torch.nn.ParameterDict({
            k: torch.nn.Parameter(torch.randn(n_layers[k], 2, n_heads, length, d_kv) * 0.02)
            for k in _KINDS})

    def forward(self, prompts):
        out = {}
        for k in _KINDS:
            cat = torch.cat([p[k] for p in prompts], dim=3)  # (nl, 2, H, ΣL, dk)
            w = torch.softmax(self.queries[k] @ cat.transpose(-1, -2) * self.scale, dim=-1)
            out[k] = w @ cat
        return out


def _discriminator(d_model, hidden, n_classes):
    layers, d = [], d_model
    for h in hidden:
        layers += [torch.nn.Linear(d, h), torch.nn.LeakyReLU(0.2)]
        d = h
    layers.append(torch.nn.Linear(d, n_classes))
    return torch.nn.Sequential(*layers)


def _as_lists(kv):
    """{kind: (nl, 2, H, L, dk)} → the per-layer (pk, pv) lists of ``_t5.encode`` / ``decode``."""
    return tuple([(t[i, 0][None], t[i, 1][None]) for i in range(t.shape[0])]
                 for t in (kv["encoder"], kv["decoder"], kv["cross"]))


class CFP(P5Recommender):
    """Counterfactually-fair prompts (UP5's CFP): per protected attribute, a prefix prompt on a
    **frozen** P5 backbone, trained adversarially to remove the attribute from the user
    representation while keeping the recommendation loss low.

    For each attribute k a prefix prompt θ_k (``prefix_length`` tokens through an MLP of width
    ``prefix_hidden`` into keys and values of every encoder self-attention, decoder
    self-attention and cross-attention layer) and a discriminator D_k (an MLP on the user
    representation h_u = the final encoder state at the user token, predicting the class) are
    trained alternately on UP5's schedule: per batch, ``prompt_steps`` prompt updates on

        L_rec(θ_k) − w_k · L_dis^k(θ_k)        (D_k fixed; L_rec = the target item's token CE)

    and every ``rs_step`` batches ``together_steps`` joint steps (in the first ``rec_steps`` of
    them the prompt takes an L_rec step, then D_k a step on L_dis^k) and ``sole_steps`` more D_k
    steps. The backbone's weights never change (they are a frozen copy; tested bit for bit).
    L_dis is the softmax cross-entropy of the logits, applied once, for binary and multi-class
    attributes alike (UP5's code applies a softmax and then PyTorch's cross-entropy, which is
    a second softmax, to multi-class attributes; binary ones use a sigmoid and BCE, the same as
    a two-class softmax).

    **Prompt Mixture** (``mixture=True``): after the single-attribute prompts, learned queries
    attend over the concatenated prompts of ``mixture_attributes`` (per layer, kind, key / value
    and head) to give one prompt for that set, trained with UP5's loss
    L_rec − Σ_{k∈S} w_k L_dis^k + Σ_{k∉S} w_k L_dis^k (confuse the selected attributes, keep the
    other trained ones) against fresh discriminators; the single prompts stay fixed, so a set
    of attributes gets a prompt without training a prompt for the combination.
    **Prompt Token Reweighter** (``reweighter=True``): the encoder prompt's tokens attend to
    each other (learned position queries) before the MLP.

    Parameters
    ----------
    backbone : P5Recommender, FrozenEstimator, str, dict or None, default=None
        A fitted :class:`P5Recommender` (used as it is; wrap it in
        ``sklearn.frozen.FrozenEstimator`` to keep it fitted through ``clone`` /
        ``GridSearchCV``), an unfitted one (fitted on X first), a local T5 / P5 checkpoint
        directory (``P5Recommender(backbone=path)`` fitted on X first), a dict of
        ``P5Recommender`` parameters (a config file's form), or None (a default
        ``P5Recommender``); all but the first are fitted on X first, seeded from
        ``random_state``.
    attributes : list of str or None, default=None
        Columns of ``sensitive_features`` that get a prompt (None: every column). Every
        attribute is categorical (its distinct values are the classes; NaN = unknown, left out
        of L_dis).
    discriminator_weight : float or dict, default=10.0
        w_k (one for all, or ``{attribute: w}``). UP5's ML-1M commands use 100 for age and 10
        for occupation; 0 trains the prompt on L_rec only.
    adversary_loss : {"ce", "confusion"}, default="ce"
        What the prompt does to a discriminator of a removed attribute. ``"ce"`` (UP5):
        maximise its cross-entropy, −w·L_dis. ``"confusion"``: minimise w times the
        cross-entropy between the uniform distribution and its prediction, pushing it to
        chance; a confidently *wrong* discriminator (which a maximised CE rewards) still
        separates the classes, so a fresh attacker finds them. Kept attributes (mixture)
        always use +w·L_dis.
    prefix_length : int, default=10
    prefix_hidden : int, default=128
        Width of the reparameterisation MLP (UP5: 800 on t5-small).
    reweighter : bool, default=False
    mixture : bool, default=False
    mixture_attributes : list of str or None, default=None
        The set S the mixture removes (None: every attribute); the others are kept.
    prompt : str, default="auto"
        The prompt applied by ``predict`` / ``recommend`` / ``transform`` / ``score`` (read at
        prediction time, so one fitted model serves every variant): ``"auto"`` (the mixture if
        trained, else the single attribute's prompt; an error with several), an attribute
        name, ``"mixture"``, or ``"none"`` (the bare backbone).
    discriminator_hidden : tuple of int, default=(128,)
        Hidden widths of D_k (LeakyReLU 0.2). UP5 uses a 9-layer MLP 1024-2048-2048-1024-1024
        -512-512-256 with batch norm on t5-small.
    learning_rate : float, default=1e-3
        AdamW step of the prompts (UP5: 1e-4 for 20 epochs).
    discriminator_learning_rate : float, default=1e-3
    prompt_steps, rs_step, together_steps, rec_steps, sole_steps : int, default=1, 20, 10, 5, 10
        The schedule above. UP5's ML-1M commands: 10 prompt steps per batch (``times``), 20,
        20, 15, 10; the defaults are lighter for a CPU.
    clip_norm : float, default=1.0
    max_targets_per_user : int or None, default=None
        Per epoch, a fresh sample of at most this many prompts per user (None: every target).
    batch_size : int, default=128
    max_iter : int, default=3
        Epochs per prompt (and for the mixture).
    dtype, device, rating_threshold, random_state, verbose
        As in :class:`P5Recommender`.

    Attributes
    ----------
    backbone_ : P5Recommender
        The fitted backbone (its ``t5_`` is never modified).
    t5_ : the frozen copy of the backbone's T5 that the prompts steer.
    prompts_ : torch.nn.ModuleDict
        One trained prefix prompt per attribute.
    mixture_ : torch.nn.Module or None
    discriminators_ : torch.nn.ModuleDict
        The last discriminators (``"<attribute>"`` and ``"mixture:<attribute>"``).
    attributes_, classes_, discriminator_weights_ : the attributes, their classes, w_k.
    phase_history_ : dict of str to list of dict
        Per phase (an attribute, ``"mixture"``): per epoch ``loss_rec``, ``loss_dis``.

    Notes
    -----
    ``transform(X)`` is h_u with the selected prompt applied, so
    :class:`~skadvrec.metrics.LeakageScorer` audits the backbone (``prompt="none"``) and every
    prompt the same way. Prefix keys and values are exact per-layer prefix tuning, done in the
    package's own T5 forward pass (see ``skadvrec/prompt/_t5.py``: Hugging Face T5 takes no
    encoder-side key/value prefix).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skadvrec.prompt import CFP, P5Recommender
    >>> rng = np.random.default_rng(0)
    >>> g = rng.integers(0, 2, 40)
    >>> X = pd.DataFrame({"user": np.repeat(np.arange(40), 8),
    ...                   "item": (np.repeat(rng.integers(0, 10, 40) + 10 * g, 8)
    ...                            + np.tile(np.arange(8), 40)) % 20,
    ...                   "timestamp": np.tile(np.arange(8), 40)})
    >>> S = pd.DataFrame({"g": np.repeat(g, 8).astype(str)})
    >>> p5 = P5Recommender(d_model=32, n_heads=2, d_ff=64, max_iter=2, early_stopping=False,
    ...                    device="cpu", random_state=0).fit(X)
    >>> cfp = CFP(backbone=p5, prefix_length=4, prefix_hidden=32, max_iter=1,
    ...           device="cpu", random_state=0).fit(X, sensitive_features=S)
    >>> cfp.transform(X).shape
    (40, 32)
    """

    __metadata_request__fit = {"sensitive_features": None}

    _parameter_constraints: dict = {
        **COMMON_CONSTRAINTS,
        "backbone": [HasMethods(["fit"]), str, dict, None],
        "attributes": ["array-like", str, None],
        "discriminator_weight": [Interval(Real, 0, None, closed="left"), dict],
        "adversary_loss": [StrOptions({"ce", "confusion"})],
        "prefix_length": POSITIVE_INT,
        "prefix_hidden": POSITIVE_INT,
        "reweighter": ["boolean"],
        "mixture": ["boolean"],
        "mixture_attributes": ["array-like", None],
        "prompt": [str],
        "discriminator_hidden": [tuple, list],
        "learning_rate": POSITIVE_REAL,
        "discriminator_learning_rate": POSITIVE_REAL,
        "prompt_steps": POSITIVE_INT,
        "rs_step": POSITIVE_INT,
        "together_steps": NON_NEGATIVE_INT,
        "rec_steps": NON_NEGATIVE_INT,
        "sole_steps": NON_NEGATIVE_INT,
        "clip_norm": POSITIVE_REAL,
        "max_targets_per_user": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": POSITIVE_INT,
    }

    def __init__(self, *, backbone=None, attributes=None, discriminator_weight=10.0,
                 adversary_loss="ce", prefix_length=10, prefix_hidden=128, reweighter=False,
                 mixture=False,
                 mixture_attributes=None, prompt="auto", discriminator_hidden=(128,),
                 learning_rate=1e-3, discriminator_learning_rate=1e-3, prompt_steps=1,
                 rs_step=20, together_steps=10, rec_steps=5, sole_steps=10, clip_norm=1.0,
                 max_targets_per_user=None, batch_size=128, max_iter=3, dtype="float32",
                 device="auto", rating_threshold=None, random_state=None, verbose=False):
        self.backbone = backbone
        self.attributes = attributes
        self.discriminator_weight = discriminator_weight
        self.adversary_loss = adversary_loss
        self.prefix_length = prefix_length
        self.prefix_hidden = prefix_hidden
        self.reweighter = reweighter
        self.mixture = mixture
        self.mixture_attributes = mixture_attributes
        self.prompt = prompt
        self.discriminator_hidden = discriminator_hidden
        self.learning_rate = learning_rate
        self.discriminator_learning_rate = discriminator_learning_rate
        self.prompt_steps = prompt_steps
        self.rs_step = rs_step
        self.together_steps = together_steps
        self.rec_steps = rec_steps
        self.sole_steps = sole_steps
        self.clip_norm = clip_norm
        self.max_targets_per_user = max_targets_per_user
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.dtype = dtype
        self.device = device
        self.rating_threshold = rating_threshold
        self.random_state = random_state
        self.verbose = verbose

    # CFP trains a fixed number of epochs per phase (UP5 has no early stopping)
    early_stopping = False
    validation_metric = "hitrate@10"

    def _check_params(self, data):
        if not isinstance(self.discriminator_hidden, (tuple, list)) or not all(
                isinstance(h, numbers.Integral) and h > 0 for h in self.discriminator_hidden):
            raise ValueError("discriminator_hidden must be a tuple of positive ints; got "
                             f"{self.discriminator_hidden!r}.")

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X, y=None, *, sensitive_features=None):
        """Fit (or take) the backbone, then train the prompts (and the mixture).

        Parameters
        ----------
        X : DataFrame or sparse matrix
            Interactions in the backbone's input form (a table naming the backbone's users and
            items, or a user x item matrix); the prompts are trained on its next-item prompts.
        y : None
        sensitive_features : DataFrame
            The protected attributes, one row per row of X. Required. With metadata routing
            (GridSearchCV, Pipeline) call ``set_fit_request(sensitive_features=True)``.

        Returns
        -------
        self : object
        """
        if sensitive_features is None:
            raise ValueError(
                "CFP needs the protected attributes: call fit(X, sensitive_features=S) with S a "
                "DataFrame holding one column per attribute and one row per row of X. In "
                "GridSearchCV or a Pipeline with sklearn.set_config(enable_metadata_routing="
                "True), also call model.set_fit_request(sensitive_features=True).")
        self._validate_params_early()
        self._bb = self._resolve_backbone(X)
        try:
            data, S = self._validate_fit(X, sensitive_features)
            self._fit(data, S)
        finally:
            self.__dict__.pop("_bb", None)
        return self

    def _validate_params_early(self):
        from .._params import validate_parameter_constraints

        validate_parameter_constraints(self._parameter_constraints, self.get_params(deep=False),
                                       caller_name=type(self).__name__)

    def _resolve_backbone(self, X):
        bb = self.backbone
        if bb is not None and hasattr(bb, "estimator") and not isinstance(bb, P5Recommender):
            bb = bb.estimator  # sklearn.frozen.FrozenEstimator
        if isinstance(bb, P5Recommender) and hasattr(bb, "t5_"):
            return bb
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        if bb is None:
            bb = P5Recommender(device=self.device, random_state=seed)
        elif isinstance(bb, str):
            bb = P5Recommender(backbone=bb, device=self.device, random_state=seed)
        elif isinstance(bb, dict):
            kw = {"device": self.device, "random_state": seed, **bb}
            try:
                bb = P5Recommender(**kw)
            except TypeError as exc:
                raise ValueError(f"backbone as a dict holds P5Recommender parameters; {exc}") \
                    from exc
        elif not isinstance(bb, P5Recommender):
            raise ValueError(f"backbone must be a P5Recommender (fitted or not), a "
                             f"FrozenEstimator of one, a checkpoint directory or None; got "
                             f"{type(bb).__name__}.")
        else:
            bb = clone(bb)
        return bb.fit(X)

    def _fit(self, data, S, validation_data=None):
        bb = self._bb
        self._check_params(data)
        if (data.kind == "table") != bb.table_form_:
            raise ValueError("X must have the backbone's input form: "
                             + ("an interaction table" if bb.table_form_ else "a matrix") + ".")
        rng = check_random_state(self.random_state)
        gen = make_generator(rng, self.device_)
        # the backbone's fitted state, and a frozen copy of its T5 on our device
        self.backbone_ = bb
        self.t5_ = copy.deepcopy(bb.t5_).to(device=self.device_, dtype=self._torch_dtype())
        self.t5_.eval()
        for p in self.t5_.parameters():
            p.requires_grad_(False)
        for name in ("_vocab", "histories_", "table_form_", "item_ids_", "n_items_",
                     "train_matrix_", "input_form_", "vocabulary_size_", "d_model_"):
            if hasattr(bb, name):
                setattr(self, name, getattr(bb, name))
        if bb.table_form_:
            self.user_ids_ = bb.user_ids_
        self.__dict__.pop("_hist_cache", None)
        self.max_history_ = bb._history_len()
        umap, indptr, items = self._map_to_backbone(data)
        labels = self._prepare_sensitive(S)
        self._tr = _TrainingState()
        try:
            self._setup(umap, indptr, items, labels, gen)
            self.phase_history_, self.n_steps_ = {}, 0
            self.prompts_ = torch.nn.ModuleDict()
            self.discriminators_ = torch.nn.ModuleDict()
            steps = 0
            for a in self.attributes_:
                self._phase(a, [a], [], gen, rng)
                steps += self.n_steps_
            self.mixture_ = None
            if self.mixture:
                sel = self._mixture_set()
                keep = [a for a in self.attributes_ if a not in sel]
                self._phase("mixture", sel, keep, gen, rng)
                steps += self.n_steps_
            self.n_steps_ = steps
        finally:
            self.__dict__.pop("_tr", None)
        self.history_ = [r for h in self.phase_history_.values() for r in h]
        self.n_iter_ = int(self.max_iter)
        self.n_parameters_prompt_ = {a: _t5.n_parameters(m) for a, m in self.prompts_.items()}
        return self

    def _mixture_set(self):
        sel = (list(self.attributes_) if self.mixture_attributes is None
               else [str(a) for a in np.atleast_1d(self.mixture_attributes)])
        unknown = [a for a in sel if a not in self.attributes_]
        if unknown or len(sel) < 2:
            raise ValueError(f"mixture_attributes must name >= 2 of the prompted attributes "
                             f"{self.attributes_}; got {sel}.")
        return sel

    def _map_to_backbone(self, data):
        """(row → backbone user code or -1, sequences in backbone item codes) of CFP's X."""
        bb = self.backbone_
        indptr, items = bb._sequences(data)
        if data.kind == "table":
            codes = np.clip(np.searchsorted(bb.item_ids_, data.item_ids), 0,
                            len(bb.item_ids_) - 1)
            if not (bb.item_ids_[codes] == data.item_ids).all():
                raise ValueError("X names items the backbone was not fitted on; CFP prompts a "
                                 "fitted backbone, whose vocabulary is fixed.")
            items = codes[items]
            uidx, known = bb._fitted_user_index(data.user_ids)
            if not known.all():
                raise ValueError(f"{int((~known).sum())} user(s) of X were not seen by the "
                                 f"backbone, e.g. {data.user_ids[~known][:3].tolist()}; it "
                                 "knows users by their id token.")
            umap = uidx
        else:
            if data.shape[1] != bb.n_items_:
                raise ValueError(f"X has {data.shape[1]} items but the backbone "
                                 f"{bb.n_items_}.")
            umap = np.full(data.shape[0], -1)
        return umap, indptr, items

    def _prepare_sensitive(self, S):
        attrs = self.attributes
        if attrs is None:
            attrs = list(S.columns)
        attrs = [attrs] if isinstance(attrs, str) else list(attrs)
        missing = [a for a in attrs if a not in S.columns]
        if missing:
            raise ValueError(f"attributes {missing} are not columns of sensitive_features "
                             f"({list(S.columns)}).")
        w = self.discriminator_weight
        if isinstance(w, dict):
            if set(w) != set(attrs):
                raise ValueError(f"discriminator_weight names {sorted(w)} but the attributes "
                                 f"are {attrs}; give one weight per attribute.")
            bad = [a for a, v in w.items() if not (isinstance(v, numbers.Real) and v >= 0
                                                  and math.isfinite(v))]
            if bad:
                raise ValueError(f"discriminator_weight for {bad} must be finite and >= 0.")
            weights = {a: float(w[a]) for a in attrs}
        else:
            weights = {a: float(w) for a in attrs}
        labels, classes = {}, {}
        for a in attrs:
            cat = pd.Categorical(S[a].reset_index(drop=True)).remove_unused_categories()
            if len(cat.categories) < 2:
                raise ValueError(f"attribute {a!r} has {len(cat.categories)} class among the "
                                 "users of X; a discriminator needs at least two. Drop it from "
                                 "attributes.")
            classes[a] = np.asarray(cat.categories)
            labels[a] = np.asarray(cat.codes, dtype=np.int64)  # NaN → -1 (ignored)
        self.attributes_ = [str(a) for a in attrs]
        self.classes_ = classes
        self.discriminator_weights_ = weights
        return labels

    def _setup(self, umap, indptr, items, labels, gen):
        tr, dev = self._tr, self.device_
        tr.model, tr.vocab = self.t5_, self._vocab
        tr.umap = torch.as_tensor(umap, dtype=torch.long, device=dev)
        tr.labels = {a: torch.as_tensor(v, device=dev) for a, v in labels.items()}
        self._init_units(indptr, items, gen)

    def _history_len(self):
        return int(self.__dict__.get("max_history_", 20))

    def _train_user_tokens(self, user):
        if self.table_form_:
            return self._tr.umap[user] + self._tr.vocab.user_offset
        return torch.full_like(user, self._tr.vocab.unknown_user)

    def _sizes(self):
        d, H, dk, ne, nd = _t5.t5_sizes(self.t5_)
        return d, H, dk, {"encoder": ne, "decoder": nd, "cross": nd}

    def _phase(self, name, confuse, keep, gen, rng):
        """Train one prompt (an attribute) or the mixture against fresh discriminators."""
        tr, dev, dtype = self._tr, self.device_, self._torch_dtype()
        d, H, dk, n_layers = self._sizes()
        with _t5._seeded(rng.randint(2**31 - 1)):
            if name == "mixture":
                module = _PromptMixture(int(self.prefix_length), n_layers, H, dk)
            else:
                module = _PrefixPrompt(int(self.prefix_length), d, int(self.prefix_hidden),
                                       n_layers, H, dk, bool(self.reweighter))
            discs = torch.nn.ModuleDict({
                a: _discriminator(d, tuple(self.discriminator_hidden), len(self.classes_[a]))
                for a in confuse + keep})
        module.to(device=dev, dtype=dtype)
        discs.to(device=dev, dtype=dtype)
        sources = [self.prompts_[a] for a in confuse] if name == "mixture" else None
        tr.prompt = (lambda: module([s() for s in sources])) if sources else module
        tr.module, tr.discs = module, discs
        tr.signs = {a: -1.0 for a in confuse} | {a: 1.0 for a in keep}
        tr.popt = torch.optim.AdamW(module.parameters(), lr=self.learning_rate)
        tr.dopt = torch.optim.AdamW(discs.parameters(), lr=self.discriminator_learning_rate,
                                    weight_decay=1e-4)
        tr.batch = 0
        if sources:
            for s in sources:
                s.requires_grad_(False)
        self._run_epochs(tr.n_units, gen, None, None)
        module.requires_grad_(False).eval()
        if name == "mixture":
            self.mixture_ = module
            self.mixture_attributes_ = list(confuse)
            for a, m in discs.items():
                self.discriminators_[f"mixture:{a}"] = m.requires_grad_(False)
        else:
            self.prompts_[name] = module
            self.discriminators_[name] = discs[name].requires_grad_(False)
        self.phase_history_[name] = self.history_

    def _forward(self, ids, mask, target):
        tr = self._tr
        enc_p, dec_p, cross_p = _as_lists(tr.prompt())
        enc = _t5.encode(tr.model, ids, mask, prefix=enc_p)
        dec = torch.zeros(len(ids), 1, dtype=torch.long, device=ids.device)
        logits = _t5.decode(tr.model, enc, mask, dec, self_prefix=dec_p, cross_prefix=cross_p)
        rec = torch.nn.functional.cross_entropy(logits[:, 0].float(),
                                                target + tr.vocab.item_offset)
        return rec, enc[:, P.USER_POS]

    def _dis_losses(self, h, ys):
        return {a: torch.nn.functional.cross_entropy(self._tr.discs[a](h).float(), ys[a],
                                                     ignore_index=-1)
                for a in self._tr.discs}

    def _adversarial(self, h, ys):
        """The prompt's adversarial term: Σ_removed (−w L_dis or w·CE(uniform, D)) +
        Σ_kept w L_dis, and the mean L_dis (for the record)."""
        tr, w = self._tr, self.discriminator_weights_
        dis = self._dis_losses(h, ys)
        total = 0.0
        for a, v in dis.items():
            if tr.signs[a] > 0:
                total = total + w[a] * torch.nan_to_num(v)
            elif self.adversary_loss == "ce":
                total = total - w[a] * torch.nan_to_num(v)
            else:
                logp = torch.log_softmax(tr.discs[a](h).float(), dim=-1)
                known = (ys[a] >= 0).float()
                conf = -(logp.mean(-1) * known).sum() / known.sum().clamp(min=1.0)
                total = total + w[a] * conf
        return total, torch.stack([v.detach() for v in dis.values()]).mean()

    def _step(self, opt, loss, params):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, float(self.clip_norm))
        opt.step()

    def _train_step(self, idx):
        tr = self._tr
        ids, mask, target = self._batch_prompts(idx, tr.gen, allow_direct=False)
        rows = tr.unit_user[idx]
        ys = {a: tr.labels[a][rows] for a in tr.discs}
        # nan_to_num: a batch whose users all lack an attribute gives a NaN CE
        pparams = [p for p in tr.module.parameters() if p.requires_grad]
        for _ in range(int(self.prompt_steps)):
            rec, h = self._forward(ids, mask, target)
            adv, dis_loss = self._adversarial(h, ys)
            self._step(tr.popt, rec + adv, pparams)  # L_rec − Σ_S w L_dis + Σ_keep w L_dis
        tr.batch += 1
        if tr.batch % int(self.rs_step) == 0:
            h_det = h.detach()
            for j in range(int(self.together_steps)):
                if j < int(self.rec_steps):
                    rec_j, h_j = self._forward(ids, mask, target)
                    self._step(tr.popt, rec_j, pparams)
                    h_det = h_j.detach()
                self._step(tr.dopt, sum(torch.nan_to_num(v) for v in
                                        self._dis_losses(h_det, ys).values()),
                           list(tr.discs.parameters()))
            for _ in range(int(self.sole_steps)):
                self._step(tr.dopt, sum(torch.nan_to_num(v) for v in
                                        self._dis_losses(h_det, ys).values()),
                           list(tr.discs.parameters()))
        return {"loss_rec": rec.detach(), "loss_dis": dis_loss}

    def _start_epoch(self, epoch):
        tr = self._tr
        if self.max_targets_per_user is not None:
            keep = P.sample_units(tr.all_user, tr.user_start, int(self.max_targets_per_user),
                                  tr.gen)
            tr.unit_pos, tr.unit_user = tr.all_pos[keep], tr.all_user[keep]

    def _snapshot(self):  # pragma: no cover - no early stopping
        return None

    def _restore(self, state):  # pragma: no cover
        pass

    def _finish_fit(self):  # pragma: no cover - CFP's _fit finishes itself
        pass

    # -- prediction --------------------------------------------------------------------------
    def _live(self):
        dev = self.device_
        cache = self.__dict__.get("_hist_cache")
        if cache is None or cache[0].device != dev:
            indptr, items = self.histories_
            cache = (torch.as_tensor(indptr, device=dev), torch.as_tensor(items, device=dev))
            self._hist_cache = cache
        return self.t5_, self._vocab, cache[0], cache[1]

    def _selected(self):
        check_is_fitted(self, "prompts_")
        p = self.prompt
        if p == "auto":
            if self.mixture_ is not None:
                return "mixture"
            if len(self.prompts_) == 1:
                return next(iter(self.prompts_))
            raise ValueError(f"prompt='auto' is ambiguous with prompts for {list(self.prompts_)}"
                             " and no mixture; set prompt to one of them, 'none' or train the "
                             "mixture (mixture=True).")
        if p == "none" or p in self.prompts_ or (p == "mixture" and self.mixture_ is not None):
            return p
        raise ValueError(f"prompt={p!r} is not available; choose 'auto', 'none', "
                         + ("'mixture', " if self.mixture_ is not None else "")
                         + f"or an attribute of {list(self.prompts_)}.")

    def _prefixes(self):
        sel = self._selected()
        if sel == "none":
            return None, None, None
        with torch.no_grad():
            if sel == "mixture":
                kv = self.mixture_([self.prompts_[a]() for a in self.mixture_attributes_])
            else:
                kv = self.prompts_[sel]()
        return _as_lists(kv)
