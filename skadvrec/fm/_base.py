"""The shared machinery of FM, AdvFM and AAFM: data preparation, the template's hooks, scoring.

Training units are the labelled rows of the interaction table: each row's label is its
``label`` column, or ``rating >= rating_threshold`` (the rows below are explicit negatives, the
official AAFM protocol). A table with positives only (or a user × item matrix) gets
``n_negatives`` random negatives per positive row, redrawn every epoch with the seeded
generator. The loss is the binary cross-entropy of the logits; the adversarial models add a
second, perturbed pass (see :mod:`skadvrec.fm.fm`).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.utils import metadata_routing
from sklearn.utils.validation import check_is_fitted

from .._data import ITEM, LABEL, RATING, USER, check_table
from .._params import (
    ITERATIVE_CONSTRAINTS,
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    POSITIVE_REAL,
    StrOptions,
)
from .._warnings import warn
from .._sampling import sample_negatives
from .._torch import DenseAdam, ridge_fold_in
from ..base import IterativeRecommender
from ..metrics.feature_fairness import (
    combination_variety,
    feature_fields,
    field_sides,
    row_labels,
    value_frequency,
)
from ._fields import FieldEncoder, Lookup, check_field_columns
from ._net import FMNet, RowLayout, fm_logits

FM_CONSTRAINTS = {
    **ITERATIVE_CONSTRAINTS,
    "validation_metric": [StrOptions({"auc", "neg_log_loss"})],
    "n_components": POSITIVE_INT,
    "field_maps": ["boolean"],
    "learning_rate": POSITIVE_REAL,
    "weight_decay": NON_NEGATIVE_REAL,
    "init_std": POSITIVE_REAL,
    "n_negatives": POSITIVE_INT,
    "fold_in_l2": POSITIVE_REAL,
}

_INFERENCE_ROWS = 1 << 16  # rows per batch when scoring a table


class _Prepared:
    """What ``fit`` derives from the input before training (deleted after fit)."""


def _prepare(est, data):
    """The fit table, its fields (checked), their sides and the row labels (None: implicit)."""
    p = _Prepared()
    if data.kind == "matrix":
        coo = data.matrix.tocoo()
        p.table = pd.DataFrame({USER: coo.row.astype(np.int64), ITEM: coo.col.astype(np.int64)})
    else:
        p.table = data.table.drop(columns=["user_code", "item_code", "positive"])
    p.fields = feature_fields(p.table)
    p.multi = check_field_columns(p.table, p.fields, fit=True)
    labels = None
    if LABEL in p.table.columns or (RATING in p.table.columns
                                    and est.rating_threshold is not None):
        labels = row_labels(p.table, est.rating_threshold)
        if labels.max() == 0:
            raise ValueError("every training row has label 0; the model needs clicks (1).")
        if labels.min() == 1:
            labels = None  # positives only: negatives are sampled
    p.labels = labels
    p.sides = field_sides(p.table, p.fields)
    return p


class _FactorizationMachine(IterativeRecommender):
    """Base of FM, AdvFM and AAFM (the template's hooks and the scoring API)."""

    __metadata_request__fit = {"sensitive_features": metadata_routing.UNUSED}
    _parameter_constraints = FM_CONSTRAINTS
    _default_score_k = 20
    _adversarial = False  # AdvFM / AAFM: a perturbed second pass per step
    _shuffle = False  # _start_epoch shuffles the rows once per epoch (a batch is a slice)

    # -- the template around the hooks -----------------------------------------------------------
    def _fit(self, data, sensitive_features=None, validation_data=None):
        try:
            return super()._fit(data, sensitive_features, validation_data)
        finally:
            self.__dict__.pop("_prep", None)

    def _check_params(self, data):
        self._prep = _prepare(self, data)
        if self._adversarial and self.adv_fields is not None:
            bad = [f for f in self.adv_fields if f not in self._prep.fields]
            if bad or not len(self.adv_fields):
                raise ValueError(f"adv_fields {list(self.adv_fields)} must name fields of X "
                                 f"({self._prep.fields}); {bad} are not.")

    def _split_validation(self, data, validation_data, rng):
        """Row-level validation: a random ``validation_fraction`` of the table's rows (the
        official protocol's 10 % of the training rows), or ``validation_data`` (labelled rows);
        scored by AUC (or log-loss) of the held-out labels."""
        n = len(self._prep.table)
        users = np.arange(data.matrix.shape[0])
        if validation_data is not None:
            if not isinstance(validation_data, pd.DataFrame):
                raise ValueError("validation_data for FM models is an interaction table of "
                                 "labelled rows (a DataFrame), like X.")
            check_table(validation_data)
            self._prep.validation = validation_data.reset_index(drop=True)
            return np.arange(n), users, self._prep.validation
        n_val = int(round(self.validation_fraction * n))
        if n_val < 1 or n_val >= n:
            raise ValueError(f"validation_fraction={self.validation_fraction} gives {n_val} of "
                             f"{n} rows for validation; adjust it, pass validation_data or set "
                             "early_stopping=False.")
        perm = rng.permutation(n)
        self._prep.validation = np.sort(perm[:n_val])
        return np.sort(perm[n_val:]), users, self._prep.validation

    def _init_model(self, train, data, sensitive_features, rng, gen):
        prep, tr, dev, dtype = self._prep, self._tr, self.device_, self._torch_dtype()
        rows = train if isinstance(train, np.ndarray) else np.arange(len(prep.table))
        table = prep.table.iloc[rows].reset_index(drop=True)
        enc = FieldEncoder(prep.fields, prep.multi, prep.sides).fit(table)
        tr.enc = enc
        tr.lookups = {side: Lookup.from_table(enc, prep.table, key, side)
                      for side, key in (("user", USER), ("item", ITEM))}
        tr.alpha = value_frequency(table, enc.order)
        tr.beta = (combination_variety(table, enc.order, sides=prep.sides)
                   if self._needs_variety() else None)
        single, bags = enc.encode(table)
        tr.single = torch.from_numpy(single).to(dev)
        tr.bags = [torch.from_numpy(b).to(dev) for b in bags]
        tr.gen, tr.implicit = gen, prep.labels is None
        if tr.implicit:
            n = self._init_sampling(table, single, bags)
        else:
            tr.y = torch.from_numpy(prep.labels[rows]).to(device=dev, dtype=dtype)
            n = len(rows)
        tr.net = FMNet(enc.n_rows, len(enc.single), len(enc.bags), self.n_components,
                       self.field_maps, self.init_std, gen, dev, dtype)
        params = list(tr.net.parameters()) + self._init_adversary(enc, dev, dtype)
        tr.opt = DenseAdam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        tr.adv_on, tr.adv_epoch = False, 0
        if self.early_stopping:
            self._init_validation(prep, prep.validation)
        return n

    def _needs_variety(self):
        return False

    def _init_adversary(self, enc, device, dtype):
        """Extra trainable tensors of the adversary (AAFM's field strengths)."""
        return []

    def _strengths_step(self, stats, n):
        """``(eps, ctx)`` for the hand-written step: the strengths (n, F), as
        :meth:`_strengths`, and what :meth:`_strength_backward` reuses (None: nothing)."""
        return self._strengths(stats, n), None

    def _strength_backward(self, stats, eps, d_eps, ctx=None):
        """Set the gradient of the learnt strengths from ``d_eps`` = ∂(weighted adversarial
        loss)/∂ε (n, F) plus that of the penalty; return the penalty (None: no strengths)."""
        return None

    # -- implicit data: negatives ------------------------------------------------------------------
    def _init_sampling(self, table, single, bags):
        tr, dev = self._tr, self.device_
        users = tr.lookups["user"].find(table[USER].to_numpy())
        items = tr.lookups["item"].find(table[ITEM].to_numpy())
        n_items = len(tr.lookups["item"].ids)
        keys = np.unique(users.astype(np.int64) * n_items + items)
        per_user = np.bincount(keys // n_items, minlength=len(tr.lookups["user"].ids))
        can = per_user[users] < n_items  # a user with every item gets no negative
        if not can.any():
            warn("every user interacted with every item: no negative can be drawn, so "
                          "the model only sees clicks. Give explicit negatives (a 'label' "
                          "column or ratings below rating_threshold).", UserWarning)
        tr.keys = torch.from_numpy(keys).to(dev)
        tr.pos_users = torch.from_numpy(users.astype(np.int64)).to(dev)
        tr.neg_rows = torch.from_numpy(np.flatnonzero(can)).to(dev)
        tr.n_items_all = n_items
        enc = tr.enc
        tr.item_cols = torch.tensor([j for j, f in enumerate(enc.single)
                                     if enc.sides[f] == "item"], dtype=torch.long, device=dev)
        tr.item_bags = [j for j, f in enumerate(enc.bags) if enc.sides[f] == "item"]
        tr.item_single = torch.from_numpy(tr.lookups["item"].single).to(dev)
        tr.item_bag_codes = [torch.from_numpy(b).to(dev) for b in tr.lookups["item"].bags]
        tr.pos_single, tr.pos_bags = tr.single, tr.bags
        return len(table) + int(can.sum()) * int(self.n_negatives)

    def _with_negatives(self, single, bags, users, generator, rows=None):
        """Rows of ``single``/``bags`` (positives) followed by ``n_negatives`` copies of each
        of ``rows`` (default: all) with a random non-interacted item (item-side fields
        replaced); labels 1 then 0."""
        tr = self._tr
        k = int(self.n_negatives)
        src = rows if rows is not None else torch.arange(len(single), device=single.device)
        src = src.repeat(k)
        neg = sample_negatives(users[src], tr.n_items_all, tr.keys, generator)
        s_neg = single[src]
        if len(tr.item_cols):
            s_neg[:, tr.item_cols] = tr.item_single[neg][:, tr.item_cols]
        b_neg = [b[src] for b in bags]
        for j in tr.item_bags:
            b_neg[j] = _pad_to(tr.item_bag_codes[j][neg], b_neg[j].shape[1])
        out_single = torch.cat([single, s_neg])
        out_bags = [torch.cat([_pad_to(a, max(a.shape[1], b.shape[1])),
                               _pad_to(b, max(a.shape[1], b.shape[1]))]) for a, b in
                    zip(bags, b_neg)]
        y = torch.cat([torch.ones(len(single), dtype=self._torch_dtype(), device=single.device),
                       torch.zeros(len(s_neg), dtype=self._torch_dtype(), device=single.device)])
        return out_single, out_bags, y

    def _start_epoch(self, epoch):
        """The epoch's rows (implicit data: fresh negatives), their per-row statistics, and
        one shuffle of all of them (the base's shuffle is off: a batch is then a slice, with no
        per-step gather)."""
        tr = self._tr
        if tr.implicit or epoch == 0:
            if tr.implicit:
                tr.single, tr.bags, tr.y = self._with_negatives(tr.pos_single, tr.pos_bags,
                                                                tr.pos_users, tr.gen,
                                                                tr.neg_rows)
            tr.layout = RowLayout(tr.single.shape[1], [b.shape[1] for b in tr.bags])
            tr.all_codes, tr.all_scale = RowLayout.codes(tr.single, tr.bags, tr.y.dtype)
            tr.all_stats = self._row_stats(tr.single, tr.bags)
        perm = torch.randperm(len(tr.y), generator=tr.gen, device=tr.y.device)
        tr.codes = tr.all_codes.index_select(1, perm)
        tr.y_epoch = tr.y.index_select(0, perm)
        tr.scale = tr.all_scale.index_select(1, perm) if tr.all_scale is not None else None
        tr.stats = self._epoch_stats({k: v.index_select(0, perm)
                                      for k, v in tr.all_stats.items()}, len(tr.y))
        tr.pos = 0
        tr.adv_on = self._adversarial and epoch >= self.n_clean_epochs
        tr.adv_epoch = epoch - self.n_clean_epochs + 1 if tr.adv_on else 0

    def _row_stats(self, single, bags):
        """Per-row tensors the adversary reads in each step (AAFM: variety and frequency),
        shuffled with the rows."""
        return {}

    def _epoch_stats(self, stats, n_units):
        """The shuffled per-row tensors, with whatever the adversary can compute for all the
        epoch's batches at once (AAFM: the sample weights). Batch ``b`` is the slice
        ``[b·bs, (b+1)·bs)`` with ``bs = min(batch_size, n_units)`` (the template's)."""
        return stats

    # -- one step -----------------------------------------------------------------------------
    def _train_step(self, idx):
        tr = self._tr
        sl = slice(tr.pos, tr.pos + len(idx))  # the epoch's rows are already shuffled
        tr.pos += len(idx)
        codes, y = tr.codes[:, sl], tr.y_epoch[sl]
        scale = tr.scale[:, sl] if tr.scale is not None else None
        stats = {k: v[sl] for k, v in tr.stats.items()}
        for p in tr.opt.params:
            p.grad = None
        if self.field_maps:
            out = self._autograd_step(codes, y, stats)
        else:
            out = self._manual_step(codes, scale, y, stats)
        tr.opt.step()
        return out

    def _adversarial_loss(self, z_adv, y, stats):
        """The perturbed pass's loss: the batch mean of the rows' BCE, times the sample weights
        (AAFM), and the per-row weights of its gradient (None: all 1)."""
        weights = self._sample_weights(stats)
        return F.binary_cross_entropy_with_logits(z_adv, y, weight=weights), weights

    def _autograd_step(self, codes, y, stats):
        """One step by autograd (the field-map backbone)."""
        tr, lay = self._tr, self._tr.layout
        single, bags = lay.split(codes)
        bce = F.binary_cross_entropy_with_logits(tr.net(single, bags), y)
        bce.backward()  # adversarial: the perturbation's direction, and kept in the step
        tr.net.clear_absent_grad()
        if not tr.adv_on:
            return {"loss": bce, "bce": bce}
        direction = self._direction(tr.net.embedding.grad.detach())
        eps = self._strengths(stats, len(y))
        adv, _ = self._adversarial_loss(tr.net(single, bags, eps, direction), y, stats)
        penalty = self._penalty(eps)
        extra = float(self.adv_weight) * adv + (penalty if penalty is not None else 0.0)
        extra.backward()
        tr.net.clear_absent_grad()
        return self._step_record(bce, adv, penalty, extra)

    @staticmethod
    def _step_record(bce, adv, penalty, extra):
        out = {"loss": bce + extra, "bce": bce, "adversarial": adv}
        if penalty is not None:
            out["penalty"] = penalty
        return out

    def _manual_step(self, codes, scale, y, stats):
        """One step of the textbook FM with the gradient written out (see
        :mod:`skadvrec.fm._net`): one gather and one scatter per table and pass, no autograd
        graph except for AAFM's learnt strengths (a (batch, fields) tensor)."""
        tr, net, lay = self._tr, self._tr.net, self._tr.layout
        width, n = codes.shape
        flat = codes.reshape(-1)
        E, W = net.embedding, net.weight
        k = E.shape[1]
        with torch.no_grad():
            v = lay.blocks(E.index_select(0, flat).view(width, n, k), scale)
            w = W.index_select(0, flat).view(width, n)
            lin = (w * scale).sum(0) if scale is not None else w.sum(0)
            z, s = fm_logits(v, lin, net.bias)
            bce = F.binary_cross_entropy_with_logits(z, y)
            dz = (torch.sigmoid(z) - y) / n
            rows, _ = lay.row_grad(dz, v, s, scale)
            grad_e = _scatter_rows(torch.zeros_like(E), flat, rows)
        out = {"loss": bce, "bce": bce}
        if tr.adv_on:
            with torch.no_grad():
                dz_adv, adv, eps, d_eps = self._perturbed_pass(grad_e, flat, v, lin, y, stats,
                                                               scale)
                dz = dz + dz_adv
                penalty = self._strength_backward(stats, eps[0], d_eps, eps[1])
            extra = float(self.adv_weight) * adv + (penalty if penalty is not None else 0.0)
            out = self._step_record(bce, adv, penalty, extra)
        with torch.no_grad():
            grad_e[0] = 0  # the absent row stays at zero
            dw = dz * scale if scale is not None else dz.expand(width, n)
            grad_w = torch.zeros_like(W).index_add_(0, flat, dw.reshape(-1))
            grad_w[0] = 0
        E.grad, W.grad, net.bias.grad = grad_e, grad_w, dz.sum()
        return out

    def _perturbed_pass(self, grad_e, flat, v, lin, y, stats, scale):
        """The adversarial half of :meth:`_manual_step`, after the clean gradient ``grad_e``
        of the embedding table has been scattered: the perturbed field vectors, their loss,
        and the scatter of their gradient into ``grad_e``. Returns ``(dz_adv, adv, eps,
        d_eps)``: ∂(weighted adversarial loss)/∂z (n,), the loss, the strengths (n, F) with
        what their backward reuses (:meth:`_strengths_step`), and ∂(weighted adversarial
        loss)/∂ε (n, F).

        Only the batch's rows are touched. With ``grad_norm="value"`` the direction of a row
        is its gradient over its L2 norm: the batch's gradient rows are gathered as they are
        and the per-row factor 1/norm is folded into the strengths (a (fields, n) product)
        instead of normalising the whole table and multiplying every coordinate;
        ``"vocabulary"`` normalises across each field's rows, so it builds the table's
        direction first (:func:`~skadvrec.fm.fm.perturbation_direction`). The clean pass's
        gathered field vectors ``v`` and first-order sums ``lin`` are reused."""
        tr, net, lay = self._tr, self._tr.net, self._tr.layout
        width, n = flat.shape[0] // y.shape[0], y.shape[0]
        k = grad_e.shape[1]
        ns = lay.n_single
        eps, ctx = self._strengths_step(stats, n)  # (n, F)
        eps_t = eps.T
        if self.grad_norm == "value":
            inv = torch.linalg.vector_norm(grad_e, dim=1).clamp_min_(1e-12).reciprocal_()
            inv[0] = 0  # the absent row has no direction
            g = grad_e.index_select(0, flat).view(width, n, k)  # raw gradient rows
            r = inv.index_select(0, flat).view(width, n)  # their 1 / norm
        else:
            grad_e[0] = 0
            g = self._direction(grad_e).index_select(0, flat).view(width, n, k)
            r = None
        # single-valued fields: v + ε · (g / ‖g‖), one fused multiply-add
        coef = eps_t[:ns] * r[:ns] if r is not None else eps_t[:ns]
        v_adv = [torch.addcmul(v[0], coef[..., None], g[:ns])]
        d_bags = []
        for j, (a, b) in enumerate(lay.bag_slices):  # a bag: the mean of its directions
            w = scale[a:b] * r[a:b] if r is not None else scale[a:b]
            d = (g[a:b] * w[..., None]).sum(0)
            d_bags.append(d)
            v_adv.append(torch.addcmul(v[1 + j][0], eps_t[ns + j][:, None], d)[None])
        z_adv, s_adv = fm_logits(v_adv, lin, net.bias)
        adv, weights = self._adversarial_loss(z_adv, y, stats)
        dz_adv = (torch.sigmoid(z_adv) - y) * (float(self.adv_weight) / n)
        if weights is not None:
            dz_adv *= weights
        rows, g_adv = lay.row_grad(dz_adv, v_adv, s_adv, scale, fused=True)
        _scatter_rows(grad_e, flat, rows)
        d_single = (g_adv[0] * g[:ns]).sum(2)
        if r is not None:
            d_single = d_single * r[:ns]
        d_eps = torch.cat([d_single] + [(ga[0] * d).sum(1)[None]
                                        for ga, d in zip(g_adv[1:], d_bags)]).T
        return dz_adv, adv, (eps, ctx), d_eps

    def _end_epoch(self, record):
        if self._adversarial:
            record.setdefault("adversarial", None)  # the clean epochs

    # -- validation -------------------------------------------------------------------------------
    def _init_validation(self, prep, validation):
        tr, dev = self._tr, self.device_
        if isinstance(validation, pd.DataFrame):
            table = validation
            check_field_columns(table, [f for f in prep.fields if f in table.columns],
                                fit=False)
            y = row_labels(table, self.rating_threshold)
            single, bags = tr.enc.encode(table, tr.lookups)
            tr.val = (torch.from_numpy(single).to(dev),
                      [torch.from_numpy(b).to(dev) for b in bags], y)
            return
        table = prep.table.iloc[validation].reset_index(drop=True)
        single, bags = tr.enc.encode(table)
        s, b = torch.from_numpy(single).to(dev), [torch.from_numpy(x).to(dev) for x in bags]
        if prep.labels is None:  # held-out positives, one fixed set of negatives
            users = tr.lookups["user"].find(table[USER].to_numpy()).astype(np.int64)
            keep = np.isin(users, tr.pos_users[tr.neg_rows].cpu().numpy())
            s, b, y = self._with_negatives(s, b, torch.from_numpy(users).to(dev), tr.gen,
                                           torch.from_numpy(np.flatnonzero(keep)).to(dev))
            y = y.cpu().numpy().astype(np.int64)
        else:
            y = prep.labels[validation]
        tr.val = (s, b, y)

    def _score_validation(self, val):
        tr = self._tr
        single, bags, y = tr.val  # encoded by _init_model from ``val``
        with torch.no_grad():
            z = torch.cat([tr.net(single[sl], [b[sl] for b in bags])
                           for sl in _chunks(len(single))]).double().cpu().numpy()
        if len(np.unique(y)) < 2:
            raise ValueError("the validation rows are all of one label; AUC needs both. Use a "
                             "larger validation_fraction or pass validation_data.")
        if self.validation_metric == "auc":
            return float(roc_auc_score(y, z))
        p = 1.0 / (1.0 + np.exp(-z))
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    # -- snapshots and the fitted model ---------------------------------------------------------
    def _trainable(self):
        tr = self._tr
        return dict(tr.net.named_parameters(), **getattr(tr, "extra_params", {}))

    def _snapshot(self):
        return {k: v.detach().clone() for k, v in self._trainable().items()}

    def _restore(self, state):
        with torch.no_grad():
            for k, v in self._trainable().items():
                v.copy_(state[k])

    def _finish_fit(self):
        tr = self._tr
        net = tr.net.requires_grad_(False)
        self.model_ = net
        enc = tr.enc
        self.fields_ = list(enc.order)
        self.field_sides_ = {f: enc.sides[f] for f in enc.order}
        self.vocabulary_ = {f: enc.vocab[f] for f in enc.order}
        self.feature_frequencies_ = tr.alpha
        if tr.beta is not None:
            self.combination_variety_ = tr.beta
        else:
            self.__dict__.pop("combination_variety_", None)
        self.classes_ = np.array([0, 1])
        self._encoder, self._lookups = enc, tr.lookups
        self._finish_adversary()
        self._set_factors()

    def _finish_adversary(self):
        """Public attributes of the adversary (AAFM's learnt strengths)."""

    def _set_factors(self):
        """Per fitted user and item: summed field vectors and the partial scores."""
        net = self.model_
        with torch.no_grad():
            self.intercept_ = float(net.intercept())
            for side, ids in (("user", getattr(self, "user_ids_", None)),
                              ("item", self.item_ids_)):
                if ids is None:  # matrix form: no fitted users (new rows are folded in)
                    continue
                s, b = self._side_codes(side, ids)
                S, a = net.side(s, b)
                setattr(self, f"{side}_factors_", S)
                setattr(self, f"{side}_bias_", a)
            self.fold_in_projection_ = ridge_fold_in(self.item_factors_, self.fold_in_l2)
        if self.input_form_ == "matrix":
            self.__dict__.pop("user_factors_", None)
            self.__dict__.pop("user_bias_", None)

    def _side_codes(self, side, ids):
        lk = self._lookups[side]
        at = lk.find(np.asarray(ids))
        s = np.where((at >= 0)[:, None], lk.single[np.maximum(at, 0)], 0)
        b = [np.where((at >= 0)[:, None], x[np.maximum(at, 0)], 0) for x in lk.bags]
        dev = self.device_
        return torch.from_numpy(s).to(dev), [torch.from_numpy(x).to(dev) for x in b]

    # -- the ranking API of the base (fitted users; matrix rows folded in) ----------------------
    def _scores_from_users(self, user_idx):
        idx = torch.as_tensor(np.asarray(user_idx), device=self.device_)
        return (self.intercept_ + self.user_bias_[idx, None] + self.item_bias_[None, :]
                + self.user_factors_[idx] @ self.item_factors_.T)

    def _transform_users(self, user_idx):
        idx = torch.as_tensor(np.asarray(user_idx), device=self.device_)
        return self.user_factors_[idx]

    def _transform_rows(self, X_rows):
        return X_rows @ self.fold_in_projection_

    def _scores_from_rows(self, X_rows):
        return (self.intercept_ + self.item_bias_[None, :]
                + self._transform_rows(X_rows) @ self.item_factors_.T)

    # -- interaction rows -------------------------------------------------------------------------
    def decision_function(self, X):
        """Logit of a click for each interaction row of X.

        Parameters
        ----------
        X : DataFrame
            Rows with the fitted fields (``fields_``). The user-side fields of a fitted user
            and the item-side fields of a fitted item may be left out: they are looked up by
            the ``user`` / ``item`` id. A value not seen in training (a new user, a new
            category) falls in the field's unknown bucket and adds nothing to the logit.
            ``label``, ``rating`` and ``timestamp`` columns are ignored. For a model fitted
            on a user × item matrix, X is a matrix of new users' rows and the result is the
            (n_users, n_items) logit matrix (as :meth:`predict`).

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        check_is_fitted(self, "model_")
        self._ensure_device()
        if not isinstance(X, pd.DataFrame):
            if self.input_form_ == "table":
                raise ValueError("this model was fitted on an interaction table: pass a "
                                 "DataFrame of interaction rows (user, item, fields).")
            return self.predict(X)
        if self.input_form_ != "table":
            raise ValueError("this model was fitted on a user x item matrix; pass a matrix of "
                             f"{self.n_items_} columns, not a DataFrame.")
        if len(X) == 0:
            raise ValueError("X has no rows to score.")
        present = [f for f in self.fields_ if f in X.columns]
        check_field_columns(X, present, fit=False)
        single, bags = self._encoder.encode(X.reset_index(drop=True), self._lookups)
        dev = self.device_
        out = []
        with torch.no_grad():
            for sl in _chunks(len(single)):
                s = torch.from_numpy(single[sl]).to(dev)
                b = [torch.from_numpy(x[sl]).to(dev) for x in bags]
                out.append(self.model_(s, b).double().cpu().numpy())
        return np.concatenate(out)

    def predict_proba(self, X):
        """Click probability of each interaction row of X.

        Parameters
        ----------
        X : DataFrame
            As in :meth:`decision_function`.

        Returns
        -------
        ndarray of shape (n_rows, 2)
            ``[:, 1]`` is the click probability σ(logit), ``[:, 0]`` its complement (columns in
            ``classes_`` order). For a model fitted on a matrix: the (n_users, n_items)
            probabilities.
        """
        z = self.decision_function(X)
        p = 1.0 / (1.0 + np.exp(-z))
        if not isinstance(X, pd.DataFrame):
            return p
        return np.column_stack([1.0 - p, p])

    def score(self, X, y=None):
        """ROC AUC of the click logits on the labelled rows of X.

        Parameters
        ----------
        X : DataFrame
            Held-out rows with a ``label`` column, or ``rating`` (binarised by
            ``rating_threshold``). For a model fitted on a matrix, the base's ranking score
            (mean NDCG of held-out users).
        y : None
            Ignored.

        Returns
        -------
        float
        """
        if not isinstance(X, pd.DataFrame):
            return super().score(X, y)
        labels = row_labels(X, self.rating_threshold)
        if labels.min() == labels.max():
            raise ValueError("X's rows are all of one label; AUC needs clicks and non-clicks.")
        return float(roc_auc_score(labels, self.decision_function(X)))

    def fit(self, X, y=None, *, sensitive_features=None, validation_data=None):
        """Fit the model on labelled interaction rows.

        Parameters
        ----------
        X : DataFrame or sparse matrix of shape (n_users, n_items)
            An interaction table: ``user``, ``item``, optional ``rating`` (binarised by
            ``rating_threshold``) or ``label`` (0/1), and categorical field columns
            (multi-valued: tuples). A user × item matrix is read as the positives of an
            id-only table.
        y : None
            Ignored (the labels are columns of X).
        sensitive_features : ignored
            Present for API consistency; not requested by metadata routing.
        validation_data : DataFrame, default=None
            With ``early_stopping``: labelled rows to validate on. When None,
            ``validation_fraction`` of X's rows are held out at random.

        Returns
        -------
        self : object
        """
        try:
            return super().fit(X, y, sensitive_features=sensitive_features,
                               validation_data=validation_data)
        except TypeError:
            if isinstance(X, pd.DataFrame):  # unhashable values (sets, dicts) in a column:
                check_table(X)               # say which field and how to fix it
                check_field_columns(X, feature_fields(X), fit=True)
            raise


def _scatter_rows(table, codes, rows):
    """``table[codes[i]] += rows[i]`` for every i (repeated codes accumulate), in place.

    Two kernels that sum the same rows in the same order (up to float rounding): measured on
    the CPU at one thread (13,312 codes into 2,703 rows), the row-wise ``index_add_`` is faster
    for rows of 16 floats and more (k = 32: 0.20 ms against 0.34 ms) and slower for short ones
    (k = 10: 0.36 ms against 0.18 ms), where ``index_put_(accumulate=True)`` is kept."""
    if rows.shape[1] >= 16:
        return table.index_add_(0, codes, rows)
    return table.index_put_((codes,), rows, accumulate=True)


def _chunks(n):
    for start in range(0, n, _INFERENCE_ROWS):
        yield slice(start, min(start + _INFERENCE_ROWS, n))


def _pad_to(t, width):
    if t.shape[1] >= width:
        return t
    return F.pad(t, (0, width - t.shape[1]))
