"""FM, AdvFM and AAFM: factorization machines on categorical side features, and their
adversarial training for feature fairness.

Hu, Cao, He, Tan, Kan, "Automatic Feature Fairness in Recommendation via Adversaries",
SIGIR-AP 2023 (arXiv 2309.15418); official code ``HoldenHu/AdvFM``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .._params import NON_NEGATIVE_INT, Interval, Real, StrOptions
from ._base import FM_CONSTRAINTS, _FactorizationMachine

__all__ = ["FM", "AdvFM", "AAFM", "perturbation_direction"]

_COMMON_PARAMS = """\
    n_components : int, default=32
        Embedding size k of every field value (the official code uses 64).
    field_maps : bool, default=False
        False: the textbook FM (one weight and one embedding per value). True: the released
        AAFM code's backbone, with per-field linear maps for the first-order term
        (``u_fᵀ e_f + β_f``) and the pairwise term (``A_f e_f + c_f``).
    learning_rate : float, default=5e-3
        Adam step size (the official code's).
    weight_decay : float, default=1e-3
        Adam's (coupled, L2) weight decay on every parameter, as the official code.
    init_std : float, default=0.01
        Value embeddings start as N(0, init_std²).
    batch_size : int, default=1024
        Rows per step (the official code uses 512); also users per batch of the ranking API.
    max_iter : int, default=30
        Epochs.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows at random (or use ``validation_data`` of
        ``fit``), score ``validation_metric`` after each epoch, stop after
        ``n_iter_no_change`` epochs without improvement and keep the best epoch's parameters.
    n_iter_no_change : int, default=3
    validation_fraction : float, default=0.1
        The official protocol's 10 % of the training rows.
    validation_metric : {"auc", "neg_log_loss"}, default="auc"
        Row-level: ROC AUC (or mean log-likelihood) of the held-out labels.
    n_negatives : int, default=1
        Only for input with no negative row (no ``label`` column and every rating at or
        above the threshold, or a user × item matrix): random items the user has no
        interaction with, drawn per positive row and epoch (1 is the official Pinterest
        protocol).
    fold_in_l2 : float, default=1.0
        Ridge penalty of the fold-in of new users' rows (matrix form), see Notes.
    rating_threshold : float or None, default=4.0
        Rows with ``rating >= rating_threshold`` are clicks (label 1) and the rows below are
        explicit non-clicks (label 0), the official ML-100K protocol. A ``label`` column takes
        precedence. None: every row is a click (negatives are sampled).
    dtype : {"float32", "float64"}, default="float32"
    device : str, default="auto"
        "auto" (CUDA if available), "cpu", "cuda" or "cuda:<i>".
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the batches, the negatives and the validation split.
    verbose : bool, default=False
        Show a tqdm bar over epochs."""

_ADV_PARAMS = """\
    adv_weight : float, default=1.0
        Weight of the adversarial (perturbed) loss added to the clean one.
    n_clean_epochs : int, default=1
        Epochs trained without perturbation first (the official code: 1).
    grad_norm : {"value", "vocabulary"}, default="value"
        How the gradient of the clean loss with respect to the embedding table becomes a
        direction. ``"value"``: each value's gradient row is scaled to unit L2 norm (FGSM
        with an L2 ball per value: the intended reading). ``"vocabulary"``: the released code's
        behaviour, each embedding coordinate normalised across the field's whole vocabulary
        (``normalize(grad, dim=0)``): a value's perturbation then shrinks with the number and
        size of the other values' gradients in the batch (likely a bug; kept for the
        ablation).
    adv_fields : list of str or None, default=None
        Fields whose value embeddings are perturbed; None: every field (the official code
        perturbs the attribute fields and the id of the side under study)."""

_ATTRIBUTES = """\
    model_ : FMNet
        The fitted torch module (embedding table, weights, optional field maps).
    fields_ : list of str
        The fields, single-valued first (``user``, ``item`` and every other column except
        ``rating``, ``timestamp``, ``label``).
    field_sides_ : dict of str to {"user", "item", "row"}
        Which entity each field describes (constant within users, within items, or neither).
    vocabulary_ : dict of str to Index
        The values of each field seen in the training rows (the others are unknown).
    feature_frequencies_ : dict of str to Series
        Frequency α of each value in the training rows
        (:func:`skadvrec.metrics.value_frequency`), read by the frequency-group scorers.
    classes_ : ndarray of shape (2,)
        ``[0, 1]``, the column order of :meth:`predict_proba`.
    user_factors_, item_factors_ : Tensor of shape (n_users, k), (n_items, k)
        The summed user-side (item-side) field vectors of each fitted user (item), in
        ``user_ids_`` (``item_ids_``) order: a user-item score is ``intercept_ + user_bias_[u] +
        item_bias_[i] + user_factors_[u] · item_factors_[i]``. ``user_factors_`` is what
        :meth:`transform` returns (the representation a leakage audit attacks).
    user_bias_, item_bias_ : Tensor
        First-order plus within-side pairwise parts of those scores.
    intercept_ : float
    fold_in_projection_ : Tensor of shape (n_items, k)
        P = V (VᵀV + αI)⁻¹ with V = ``item_factors_``: a new user's row x gets x P.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``bce`` (clean loss), for the adversarial models
        ``adversarial`` (None in the clean epochs) and AAFM's ``penalty``, ``seconds``, and
        ``val_<metric>`` with early stopping (the first entry, ``epoch=0``, scores the initial
        model).
    n_iter_, best_epoch_, best_validation_score_, n_steps_
        As for every iterative estimator of the package."""

_NOTES = """\
    The input is an interaction table whose columns other than ``user``, ``item``,
    ``rating``, ``timestamp`` and ``label`` are categorical fields (strings, integers,
    booleans, ``category``; a multi-valued field such as genres is a column of tuples, mean-
    pooled). Continuous columns, missing values and fields with a single value are rejected
    with a message saying how to fix them. ``user`` and ``item`` are fields too. A value not
    seen in training (a new user, a new category) maps to the field's **unknown bucket**: a
    zero embedding and weight, so the field adds nothing to the score.

    The pairwise term is computed in O(k·F) per row (Rendle's identity). Pairs within one
    multi-valued field are not counted (the field is one pooled vector).

    ``predict_proba`` / ``decision_function`` / ``score`` work on interaction rows; the
    ranking API of the base (``predict``, ``recommend``, ``evaluate``) ranks every fitted
    item, with its own item-side fields, for fitted users (table form; row-level fields are
    absent there), and a user × item matrix's rows are new users folded in by ridge regression
    onto ``item_factors_``."""


def _store(est, params):
    """What every ``__init__`` of the family does, and all it does: keep each argument under
    its own name (scikit-learn's contract; ``params`` is the ``__init__``'s ``locals()``)."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


class FM(_FactorizationMachine):
    __doc__ = f"""Factorization machine for click prediction on categorical side features.

    The logit of a row is ``b + Σ_f w_f + Σ_{{f<g}} ⟨v_f, v_g⟩`` over its fields (user and
    item ids, user attributes, item attributes, context), trained by binary cross-entropy on
    the labelled rows with Adam. This is the backbone of :class:`AdvFM` and :class:`AAFM`.

    Parameters
    ----------
{_COMMON_PARAMS}

    Attributes
    ----------
{_ATTRIBUTES}

    See Also
    --------
    AdvFM : FGSM perturbations of the value embeddings with a fixed strength.
    AAFM : Perturbation strengths and sample weights adapted to rare feature values.

    Notes
    -----
{_NOTES}

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.fm import FM
    >>> X = pd.DataFrame({{"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 3, 2, 3],
    ...                   "rating": [5, 1, 4, 2, 5, 1],
    ...                   "gender": ["F", "F", "M", "M", "F", "F"]}})
    >>> model = FM(n_components=4, max_iter=5, early_stopping=False, random_state=0,
    ...            device="cpu").fit(X)
    >>> model.predict_proba(X).shape
    (6, 2)
    >>> model.fields_
    ['user', 'item', 'gender']
    """

    def __init__(self, *, n_components=32, field_maps=False, learning_rate=5e-3,
                 weight_decay=1e-3, init_std=0.01, batch_size=1024, max_iter=30,
                 early_stopping=True, n_iter_no_change=3, validation_fraction=0.1,
                 validation_metric="auc", n_negatives=1, fold_in_l2=1.0, rating_threshold=4.0,
                 dtype="float32", device="auto", random_state=None, verbose=False):
        _store(self, locals())


_ADV_CONSTRAINTS = {
    **FM_CONSTRAINTS,
    "eps": [Interval(Real, 0, None, closed="left")],
    "adv_weight": [Interval(Real, 0, None, closed="left")],
    "n_clean_epochs": NON_NEGATIVE_INT,
    "grad_norm": [StrOptions({"value", "vocabulary"})],
    "adv_fields": [list, tuple, None],
}


class _Adversarial(_FactorizationMachine):
    """The perturbation shared by AdvFM and AAFM: FGSM on the value embeddings."""

    _adversarial = True

    def _init_adversary(self, enc, device, dtype):
        tr = self._tr
        fields = enc.order if self.adv_fields is None else list(self.adv_fields)
        tr.adv_mask = torch.tensor([float(f in fields) for f in enc.order], device=device,
                                   dtype=dtype)
        tr.field_of_row = torch.from_numpy(enc.field_of_row).to(device)
        return []

    def _direction(self, grad):
        return perturbation_direction(grad, self._tr.field_of_row, self.grad_norm)

    def _sample_weights(self, stats):
        return None

    def _penalty(self, eps):
        return None


def perturbation_direction(grad, field_of_row, grad_norm="value"):
    """Perturbation directions of the embedding rows from the clean loss's gradient.

    Parameters
    ----------
    grad : Tensor of shape (n_rows, k)
        Gradient of the clean loss with respect to the embedding table.
    field_of_row : LongTensor of shape (n_rows,)
        The field of each row (any index for the absent row 0, whose gradient is zero).
    grad_norm : {"value", "vocabulary"}, default="value"
        ``"value"``: each row scaled to unit L2 norm (rows with no gradient stay zero).
        ``"vocabulary"``: the released code's ``normalize(grad, dim=0)`` per field table: each
        coordinate divided by its L2 norm over the field's rows.

    Returns
    -------
    Tensor of shape (n_rows, k)

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    >>> perturbation_direction(g, torch.tensor([2, 0, 0]))
    tensor([[0.0000, 0.0000],
            [0.6000, 0.8000],
            [0.0000, 1.0000]])
    >>> perturbation_direction(g, torch.tensor([2, 0, 0]), "vocabulary")
    tensor([[0.0000, 0.0000],
            [1.0000, 0.9701],
            [0.0000, 0.2425]])
    """
    if grad_norm == "value":
        return F.normalize(grad, dim=1)
    sq = grad.new_zeros(int(field_of_row.max()) + 1, grad.shape[1])
    sq.index_add_(0, field_of_row, grad * grad)
    return grad / sq.sqrt().clamp_min(1e-12)[field_of_row]


class AdvFM(_Adversarial):
    __doc__ = f"""Adversarially trained factorization machine (fixed perturbation strength).

    After ``n_clean_epochs`` clean epochs, each step backpropagates the clean BCE, turns the
    gradient of the embedding table into unit directions (``grad_norm``), perturbs the value
    embeddings of ``adv_fields`` by ``eps`` times their direction (FGSM: the worst case to
    first order) and adds ``adv_weight`` times the BCE of the perturbed model to the clean
    loss. The official code's AdvFM baseline (ε = 0.5).

    Parameters
    ----------
    eps : float, default=0.02
        L2 size of each value's perturbation. The official code's 0.5 is sized for its
        backbone's N(0, 1) embeddings; the textbook FM's value embeddings have norms near
        0.1 on MovieLens, where 0.5 swamps them (see BENCHMARKS.md for the tuned values).
{_ADV_PARAMS}
{_COMMON_PARAMS}

    Attributes
    ----------
{_ATTRIBUTES}

    See Also
    --------
    FM, AAFM

    Notes
    -----
{_NOTES}

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.fm import AdvFM
    >>> X = pd.DataFrame({{"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 3, 2, 3],
    ...                   "rating": [5, 1, 4, 2, 5, 1]}})
    >>> model = AdvFM(n_components=4, max_iter=3, early_stopping=False, random_state=0,
    ...               device="cpu").fit(X)
    >>> [h["adversarial"] is None for h in model.history_]
    [True, False, False]
    """

    _parameter_constraints = _ADV_CONSTRAINTS

    def __init__(self, *, eps=0.02, adv_weight=1.0, n_clean_epochs=1, grad_norm="value",
                 adv_fields=None, n_components=32, field_maps=False, learning_rate=5e-3,
                 weight_decay=1e-3, init_std=0.01, batch_size=1024, max_iter=30,
                 early_stopping=True, n_iter_no_change=3, validation_fraction=0.1,
                 validation_metric="auc", n_negatives=1, fold_in_l2=1.0, rating_threshold=4.0,
                 dtype="float32", device="auto", random_state=None, verbose=False):
        _store(self, locals())

    def _strengths(self, stats, n):
        return (float(self.eps) * self._tr.adv_mask).expand(n, -1)


def _row_stat(table, single, bags, empty):
    """Per row and field: ``table[value row]``, the mean over a multi-valued field's values
    (``empty`` for an empty tuple)."""
    cols = [table[single]]
    for bag in bags:
        mask = (bag > 0).to(table.dtype)
        cnt = mask.sum(1)
        s = (table[bag] * mask).sum(1)
        cols.append(torch.where(cnt > 0, s / cnt.clamp(min=1), torch.full_like(s, empty)))
    return torch.cat([cols[0]] + [c[:, None] for c in cols[1:]], 1)


class AAFM(_Adversarial):
    __doc__ = f"""Adaptive adversarial factorization machine (AAFM, and D-AAFM with ``decay``).

    AdvFM with the perturbation adapted to each sample's feature values (Hu et al. 2023):

    * **strength from combination variety**: a value seen in few combinations (small
      :func:`~skadvrec.metrics.combination_variety` β) is perturbed harder. For row k and
      field f, ``ε_kf = eps · softplus(w_f · h̃_kf)`` where ``h̃_k`` is the vector
      ``(1/β_k1, …, 1/β_kF)`` over the perturbed fields scaled to unit L2 norm and ``w_f`` a
      learnable strength per field (started at ``strength_init``), as the released code;
    * **sample weight from feature frequency**: the perturbed loss of row k is weighted by
      ``λ_k``, the batch's min-max scaling of ``−freq_k`` into ``[1, max_sample_weight]``,
      where ``freq_k`` is the row's mean value frequency α
      (:func:`~skadvrec.metrics.sample_frequency`): rows of rare values weigh up to
      ``max_sample_weight`` times more;
    * a penalty ``Σ_f ‖ε_·f‖₂`` (L2 norm over the batch's rows) keeps the learnt strengths
      small; with ``decay=True`` (the code's D-AAFM) it is ``log10(Σ_f ‖ε_·f‖₂) / t`` with
      ``t`` the adversarial epoch (1, 2, ...).

    α and β are computed in ``fit`` from the training rows (the official repository does not
    release that step; the definitions are the package's, see
    :mod:`skadvrec.metrics.feature_fairness`).

    Parameters
    ----------
    eps : float, default=0.05
        Scale of the learnt strengths (1.0 is the code's ``softplus(w_f h̃_kf)``, sized for
        its backbone's N(0, 1) embeddings, see :class:`AdvFM`).
    strength_init : float, default=0.5
        Initial ``w_f`` (the code's 0.5).
    max_sample_weight : float, default=100.0
        Upper end of the sample weights' range ``[1, max_sample_weight]`` (the code's 100).
    variety : bool, default=True
        Use β for the strengths; False gives every perturbed field the same ``h̃`` (ablation).
    frequency : bool, default=True
        Weight the samples by frequency; False weighs every row 1 (ablation).
    decay : bool, default=False
        D-AAFM: the strengths' penalty decays with the epoch (see above). In the released
        D-AAFM code the decaying term is a Python float (``math.log10`` of a tensor) and so
        carries no gradient; here it does.
    strength_form : {"code", "monotone"}, default="code"
        ``"code"``: ``ε_kf = eps · softplus(w_f · h̃_kf)``, as released. Once the penalty has
        driven ``w_f`` below 0 (within the first adversarial epoch on ML-100K), this
        *decreases* with ``h̃``: rare combinations are then perturbed *less*, the opposite of
        the paper's rule. ``"monotone"``: ``ε_kf = eps · softplus(w_f) · √F · h̃_kf`` (F the
        number of perturbed fields), which keeps "rarer is perturbed harder" while the learnt
        field scale ``softplus(w_f)`` decays (ablation).
{_ADV_PARAMS}
{_COMMON_PARAMS}

    Attributes
    ----------
    strengths_ : Series
        The learnt ``w_f`` of the perturbed fields.
    combination_variety_ : dict of str to Series
        β of each value in the training rows.
{_ATTRIBUTES}

    See Also
    --------
    FM, AdvFM
    skadvrec.metrics.FeatureGroupAUCScorer : AUC across frequency groups or field values.

    Notes
    -----
{_NOTES}

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.fm import AAFM
    >>> X = pd.DataFrame({{"user": [1, 1, 2, 2, 3, 3, 4, 4], "item": [1, 2, 1, 3, 2, 1, 1, 2],
    ...                   "rating": [5, 1, 4, 2, 5, 1, 4, 4],
    ...                   "gender": ["F", "F", "M", "M", "F", "F", "M", "M"]}})
    >>> model = AAFM(n_components=4, max_iter=3, early_stopping=False, random_state=0,
    ...              device="cpu").fit(X)
    >>> sorted(model.strengths_.index)
    ['gender', 'item', 'user']
    >>> model.combination_variety_["gender"].round(2).to_dict()  # F never met item 3
    {{'F': 0.67, 'M': 1.0}}
    """

    _parameter_constraints = {
        **_ADV_CONSTRAINTS,
        "strength_init": [Real],
        "max_sample_weight": [Interval(Real, 1, None, closed="left")],
        "variety": ["boolean"],
        "frequency": ["boolean"],
        "decay": ["boolean"],
        "strength_form": [StrOptions({"code", "monotone"})],
    }

    def __init__(self, *, eps=0.05, strength_init=0.5, max_sample_weight=100.0, variety=True,
                 frequency=True, decay=False, strength_form="code", adv_weight=1.0,
                 n_clean_epochs=1, grad_norm="value", adv_fields=None, n_components=32,
                 field_maps=False, learning_rate=5e-3, weight_decay=1e-3, init_std=0.01,
                 batch_size=1024, max_iter=30, early_stopping=True, n_iter_no_change=3,
                 validation_fraction=0.1, validation_metric="auc", n_negatives=1,
                 fold_in_l2=1.0, rating_threshold=4.0, dtype="float32", device="auto",
                 random_state=None, verbose=False):
        _store(self, locals())

    def _needs_variety(self):
        return True  # also published as combination_variety_

    def _init_adversary(self, enc, device, dtype):
        super()._init_adversary(enc, device, dtype)
        tr = self._tr
        tr.alpha_row = _per_row(enc, tr.alpha, device, dtype, fill=0.0)
        tr.beta_row = _per_row(enc, tr.beta, device, dtype, fill=1.0).clamp_min(1e-6)
        tr.strength = torch.nn.Parameter(torch.full((len(enc.order),), float(self.strength_init),
                                                    device=device, dtype=dtype))
        tr.extra_params = {"strength": tr.strength}
        mask = tr.adv_mask
        tr.eps_mask = float(self.eps) * mask  # eps on the perturbed fields, 0 elsewhere
        tr.h_flat = mask / mask.sum().sqrt()  # variety=False: every perturbed field alike
        tr.sqrt_fields = mask.sum().sqrt()
        return [tr.strength]

    def _row_stats(self, single, bags):
        """Per row: ``h`` (rows, fields), the unit vector of inverse varieties over the
        perturbed fields, and ``freq``, the mean value frequency (constant per row, so
        computed once per epoch's rows)."""
        tr, mask = self._tr, self._tr.adv_mask
        inv = mask / _row_stat(tr.beta_row, single, bags, empty=1.0)
        return {"h": inv / inv.norm(dim=1, keepdim=True).clamp_min(1e-12),
                "freq": _row_stat(tr.alpha_row, single, bags, empty=0.0).mean(1)}

    def _strengths(self, stats, n):
        return self._strength_form(self._tr.strength, stats, n)[0]

    def _sample_weights(self, stats):
        if not self.frequency:
            return None
        if "weight" in stats:  # computed for the whole epoch (_epoch_stats)
            return stats["weight"]
        return _minmax_weights(stats["freq"], float(self.max_sample_weight))

    def _epoch_stats(self, stats, n_units):
        """The sample weights of every batch of the epoch at once (the batch-wise min-max of
        :meth:`_sample_weights`, on a (batches, rows) view): a handful of operations per epoch
        instead of per step."""
        if not self.frequency:
            return stats
        freq, top = stats["freq"], float(self.max_sample_weight)
        bs = min(self._batch(), n_units)
        cut = (len(freq) // bs) * bs
        parts = [_minmax_weights(freq[:cut].view(-1, bs), top).reshape(-1)]
        if cut < len(freq):
            parts.append(_minmax_weights(freq[cut:], top))
        return {**stats, "weight": torch.cat(parts) if len(parts) > 1 else parts[0]}

    def _strengths_step(self, stats, n):
        """:meth:`_strengths` without autograd, keeping ``w_f h̃`` for the backward."""
        return self._strength_form(self._tr.strength.detach(), stats, n)

    def _strength_form(self, w, stats, n):
        """The strengths (n, F) for the field weights ``w`` (the learnt ones, or detached) and
        ``w_f h̃`` (None for the monotone form): the one formula of both steps."""
        tr = self._tr
        h = stats["h"] if self.variety else tr.h_flat
        if self.strength_form == "monotone":
            return (h * (F.softplus(w) * tr.sqrt_fields * tr.eps_mask)).expand(n, -1), None
        wh = h * w
        return (F.softplus(wh) * tr.eps_mask).expand(n, -1), wh

    def _penalty(self, eps):
        total = eps.norm(dim=0).sum()
        if not self.decay:
            return total
        return torch.log10(total.clamp_min(1e-12)) / max(self._tr.adv_epoch, 1)

    def _strength_backward(self, stats, eps, d_eps, ctx=None):
        """The hand-written gradient of :meth:`_strengths` and :meth:`_penalty` (the
        autograd path of ``field_maps=True`` differentiates them; the tests check both
        agree). ``ctx``: ``w_f h̃`` from :meth:`_strengths_step` (None: recomputed)."""
        tr = self._tr
        w = tr.strength.detach()
        norms = torch.linalg.vector_norm(eps, dim=0)
        total = norms.sum()
        inv = norms.clamp_min(1e-12).reciprocal_()  # ∂ Σ_f ‖ε_·f‖ / ∂ε = ε / ‖ε_·f‖
        if self.decay:
            t = max(tr.adv_epoch, 1)
            penalty = torch.log10(total.clamp_min(1e-12)) / t
            inv = inv / (total.clamp_min(1e-12) * (math.log(10) * t))
        else:
            penalty = total
        g = torch.addcmul(d_eps, eps, inv)
        h = stats["h"] if self.variety else tr.h_flat
        if self.strength_form == "monotone":
            grad = (g * h).sum(0) * (tr.sqrt_fields * torch.sigmoid(w) * tr.eps_mask)
        else:
            wh = ctx if ctx is not None else h * w
            grad = (g.mul_(h).mul_(torch.sigmoid(wh))).sum(0).mul_(tr.eps_mask)
        tr.strength.grad = grad
        return penalty

    def _finish_adversary(self):
        tr = self._tr
        fields = [f for f, m in zip(tr.enc.order, tr.adv_mask.tolist()) if m > 0]
        w = tr.strength.detach().cpu().numpy()
        self.strengths_ = pd.Series([float(w[tr.enc.order.index(f)]) for f in fields],
                                    index=fields, name="strength")


def _minmax_weights(freq, top):
    """AAFM's sample weights along the last axis: ``−freq`` min-max scaled into ``[1, top]``
    (all 1 where the frequencies are all equal)."""
    lo, hi = freq.amin(-1, keepdim=True), freq.amax(-1, keepdim=True)
    w = 1.0 + (top - 1.0) * (hi - freq) / (hi - lo)
    return torch.where(hi > lo, w, torch.ones_like(w))


def _per_row(enc, stats, device, dtype, fill):
    """A (n_rows,) tensor of a per-value statistic (dict field -> Series) on embedding rows."""
    out = np.full(enc.n_rows, fill, dtype=np.float64)
    for f in enc.order:
        values, rows = enc.values_of(f)
        s = pd.Series(stats[f])
        s.index = pd.Index(s.index.to_numpy(dtype=object))
        out[rows] = s.reindex(values).fillna(fill).to_numpy(dtype=np.float64)
    return torch.as_tensor(out, device=device, dtype=dtype)

