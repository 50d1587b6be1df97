"""P5Recommender: a small T5 encoder-decoder trained on P5-style text prompts."""

from __future__ import annotations

import copy
import numbers
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils import metadata_routing
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._data import ITEM, USER
from .._params import ITERATIVE_CONSTRAINTS, NON_NEGATIVE_REAL, POSITIVE_INT, POSITIVE_REAL
from ..base import IterativeRecommender, _holdout_interactions
from . import _prompts as P
from . import _t5

__all__ = ["P5Recommender"]


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class P5Recommender(IterativeRecommender):
    """A P5-style recommender: a T5 encoder-decoder that reads a text prompt naming the user and
    their history and generates the next item's token (Geng et al. 2022, as the UP5 backbone).

    The vocabulary is a tiny fixed word list for the templates, **one token per user**
    (``user_<u>``) and **one token per item** (``item_<i>``) — P5 spells ids in sub-word pieces;
    one token each keeps the model small and makes a full ranking one softmax. Training prompts
    (each training interaction after a user's first is one target):

    * sequential (UP5's template 2-1): "given the following watching history of user_u :
      i1 … in predict next possible item to be watched by the user ?" → ``item_next``, with the
      last ``max_history`` items before the target (in ``timestamp`` order; a table without
      timestamps or a matrix uses column order);
    * direct (a share ``direct_fraction`` of the targets): "which item should be recommended
      to user_u : c1 … cC choose one of the candidates ?" → the target, among
      ``n_direct_candidates`` candidates (the target plus random items, shuffled).

    The loss is the token cross-entropy of the target item over the whole vocabulary (AdamW,
    gradient clipping). The score of item i for a user is log p(item_i | sequential prompt of
    the user's whole fitted history): ``predict`` / ``recommend`` rank every item at once,
    :meth:`score_candidates` ranks candidate lists, :meth:`hit_ratio` / ``score`` is UP5's hit@k
    over the gold item plus 100 sampled negatives.

    Parameters
    ----------
    backbone : str, default="t5"
        ``"t5"``: a randomly initialised T5 built from ``d_model``, ``n_layers``, ``n_heads``,
        ``d_ff``, ``dropout``; or the path of a local T5 / P5 checkpoint directory
        (``save_pretrained`` format), loaded offline (``local_files_only``) with its input /
        output embeddings resized to this vocabulary, then fine-tuned in ``fit`` (the size
        parameters are then ignored; nothing is ever downloaded).
    d_model, n_layers, n_heads, d_ff : int, default=64, 2, 4, 256
        T5 width, encoder (= decoder) layers, attention heads, feed-forward width. The defaults
        (about 0.86 M parameters on ML-1M, 0.63 M of them the 9.8 k token embeddings) train
        on ML-1M in about 20 minutes on one CPU thread with ``max_targets_per_user=20`` and 4
        epochs (BENCHMARKS.md: d_ff=128, 0.79 M); UP5's backbone is t5-small (512 wide, 6 + 6
        layers, 8 heads, d_ff 2048; 60 M).
    dropout : float, default=0.0
        T5 dropout (UP5's t5-small uses 0.1; the small default model underfits ML-1M, and
        seeded dropout costs a fifth of a CPU step).
    max_history : int, default=20
        Items of history in a prompt (the last ones).
    direct_fraction : float, default=0.2
        Share of the training targets asked by the direct template (table form only; a fold-in
        user of the matrix form has no user token to be asked about).
    n_direct_candidates : int, default=20
    learning_rate : float, default=1e-3
    weight_decay : float, default=0.0
        AdamW's decoupled weight decay.
    clip_norm : float, default=1.0
        Gradient-norm clipping (UP5's ``clip``).
    max_targets_per_user : int or None, default=None
        Each epoch, a fresh random sample (seeded) of at most this many training targets per
        user; None uses every target every epoch (P5). A cap spreads a CPU budget over more
        users per update on long histories (ML-1M has ~165 ratings per user).
    batch_size : int, default=256
        Prompts per update; also the scoring batch (users).
    max_iter : int, default=10
        Epochs (one pass over every training target).
    early_stopping : bool, default=True
        Validate ``validation_metric`` (full ranking) after each epoch on held-out items: with
        a timestamped table and no ``validation_data``, **each user's last item** (users with
        >= 3 items; the UP5 protocol's validation item), else ``validation_fraction`` of each
        user's items at random. The held-out items join the histories again after ``fit``, so
        a later target's prompt ends with them, as in UP5's test prompts.
    n_iter_no_change : int, default=2
    validation_fraction : float, default=0.1
    validation_metric : str, default="hitrate@10"
    dtype, device, rating_threshold, random_state, verbose
        As in the other recommenders; ``rating_threshold=None`` (default) keeps every rated
        item as an interaction, as P5 does.

    Attributes
    ----------
    t5_ : transformers.T5ForConditionalGeneration
        The trained model (eval mode).
    vocabulary_size_ : int
    n_parameters_ : int
    history_, n_iter_, best_epoch_, n_steps_ : as in the other iterative recommenders.

    Notes
    -----
    Table form: users are known by their token, so ``predict`` etc. take fitted users. Matrix
    form: every row is prompted as ``user_?`` with its items in column order (fold-in: new
    users are scored from their row); ``score`` is then the base fold-in NDCG.
    ``transform`` is the final encoder state at the user token (the mean over the user-id span,
    which is one token here): the representation UP5's discriminators attack.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skadvrec.prompt import P5Recommender
    >>> rng = np.random.default_rng(0)
    >>> start = np.repeat(rng.integers(0, 20, 30), 8)
    >>> X = pd.DataFrame({"user": np.repeat(np.arange(30), 8),
    ...                   "item": (start + np.tile(np.arange(8), 30)) % 20,
    ...                   "timestamp": np.tile(np.arange(8), 30)})
    >>> model = P5Recommender(d_model=32, n_heads=2, d_ff=64, max_iter=2, early_stopping=False,
    ...                       device="cpu", random_state=0).fit(X)
    >>> model.transform(X).shape
    (30, 32)
    """

    __metadata_request__fit = {"sensitive_features": metadata_routing.UNUSED}
    _validation_protocol = "interactions"

    _parameter_constraints: dict = {
        **ITERATIVE_CONSTRAINTS,
        "backbone": [str],
        "d_model": POSITIVE_INT,
        "n_layers": POSITIVE_INT,
        "n_heads": POSITIVE_INT,
        "d_ff": POSITIVE_INT,
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_history": POSITIVE_INT,
        "direct_fraction": [Interval(Real, 0, 1, closed="both")],
        "n_direct_candidates": [Interval(Integral, 2, None, closed="left")],
        "learning_rate": POSITIVE_REAL,
        "weight_decay": NON_NEGATIVE_REAL,
        "clip_norm": POSITIVE_REAL,
        "max_targets_per_user": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, *, backbone="t5", d_model=64, n_layers=2, n_heads=4, d_ff=256,
                 dropout=0.0, max_history=20, direct_fraction=0.2, n_direct_candidates=20,
                 learning_rate=1e-3, weight_decay=0.0, clip_norm=1.0,
                 max_targets_per_user=None, batch_size=256, max_iter=10, early_stopping=True,
                 n_iter_no_change=2, validation_fraction=0.1,
                 validation_metric="hitrate@10", dtype="float32", device="auto",
                 rating_threshold=None, random_state=None, verbose=False):
        self.backbone = backbone
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.max_history = max_history
        self.direct_fraction = direct_fraction
        self.n_direct_candidates = n_direct_candidates
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.max_targets_per_user = max_targets_per_user
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

    def _fit(self, data, sensitive_features=None, validation_data=None):
        for name in ("_full_seq", "_train_seq"):
            self.__dict__.pop(name, None)
        return super()._fit(data, sensitive_features, validation_data)

    # -- data --------------------------------------------------------------------------------
    def _sequences(self, data):
        """(indptr, items) of every user's positives: time order for a timestamped table,
        column order otherwise."""
        if data.sequences is not None:
            return data.sequences
        X = data.matrix
        return X.indptr.copy(), X.indices.copy()

    def _split_validation(self, data, validation_data, rng):
        self._full_seq = self._sequences(data)
        indptr, items = self._full_seq
        if validation_data is None and data.sequences is not None:
            counts = np.diff(indptr)
            users = np.flatnonzero(counts >= 3)
            if len(users) == 0:
                raise ValueError("no user has >= 3 interactions to hold out a validation item; "
                                 "pass validation_data or set early_stopping=False.")
            last = indptr[users + 1] - 1
            keep = np.ones(len(items), dtype=bool)
            keep[last] = False
            M = sp.csr_matrix((np.ones(len(users)), (users, items[last])), shape=data.shape)
            train = data.matrix - data.matrix.multiply(M > 0)
            train.eliminate_zeros()
            self._train_seq = self._filter(indptr, items, keep)
            return sp.csr_matrix(train), np.arange(data.shape[0]), (M.tocsr(), train.tocsr())
        X, rows, (M, seen) = _holdout_interactions(self, data, validation_data,
                                                   self.validation_fraction, rng)
        u = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        keep = np.asarray(M[u, items]).ravel() == 0 if len(items) else np.ones(0, bool)
        self._train_seq = self._filter(indptr, items, keep)
        return X, rows, (M, seen)

    @staticmethod
    def _filter(indptr, items, keep):
        counts = np.add.reduceat(keep.astype(np.int64), indptr[:-1]) if len(items) else (
            np.zeros(len(indptr) - 1, np.int64))
        counts[np.diff(indptr) == 0] = 0
        return np.concatenate([[0], np.cumsum(counts)]), items[keep]

    # -- model -------------------------------------------------------------------------------
    def _build_model(self, vocab_size, seed):
        if self.backbone == "t5":
            model = _t5.build_t5(vocab_size, d_model=self.d_model, num_layers=self.n_layers,
                                 num_heads=self.n_heads, d_ff=self.d_ff, dropout=self.dropout,
                                 seed=seed)
        else:
            model = _t5.load_t5(self.backbone, vocab_size, seed=seed)
        return model.to(device=self.device_, dtype=self._torch_dtype())

    def _init_model(self, train, data, sensitive_features, rng, gen):
        tr = self._tr
        n_users, n_items = data.shape
        if not hasattr(self, "_train_seq"):
            self._full_seq = self._train_seq = self._sequences(data)
        self.table_form_ = data.kind == "table"
        tr.vocab = P.Vocabulary(n_users if self.table_form_ else 0, n_items)
        tr.model = self._build_model(tr.vocab.size, rng.randint(2**31 - 1))
        tr.model.train()
        self._init_units(*self._train_seq, gen)
        tr.opt = torch.optim.AdamW(tr.model.parameters(), lr=self.learning_rate,
                                   weight_decay=self.weight_decay)
        return tr.n_units

    def _init_units(self, indptr, items, gen):
        """Training units: every position after a user's first (its target), on the device."""
        tr, dev = self._tr, self.device_
        tr.indptr = torch.as_tensor(indptr, dtype=torch.long, device=dev)
        tr.items = torch.as_tensor(items, dtype=torch.long, device=dev)
        counts = np.diff(indptr)
        pos = np.arange(len(items))
        user = np.repeat(np.arange(len(counts)), counts)
        first = pos == np.repeat(np.asarray(indptr[:-1]), counts)
        if (~first).sum() == 0:
            raise ValueError("no user has two or more interactions, so there is no next item to "
                             "learn: every training target needs a history of at least one item.")
        tr.all_pos = torch.as_tensor(pos[~first], device=dev)
        tr.all_user = torch.as_tensor(user[~first], device=dev)
        tr.unit_pos, tr.unit_user = tr.all_pos, tr.all_user
        tr.gen = gen
        cap = self.max_targets_per_user
        tr.n_units = len(tr.all_pos)
        if cap is not None:
            per_user = np.bincount(user[~first], minlength=len(counts))
            tr.user_start = torch.as_tensor(np.concatenate([[0], np.cumsum(per_user)[:-1]]),
                                            device=dev)
            tr.n_units = int(np.minimum(per_user, cap).sum())

    def _history_len(self):
        return int(self.max_history)

    def _train_user_tokens(self, user):
        """Token ids of training units' users (CFP maps its rows to the backbone's users)."""
        return self._user_tokens(self._tr.vocab, user)

    def _user_tokens(self, vocab, user):
        if self.table_form_:
            return user + vocab.user_offset
        return torch.full_like(user, vocab.unknown_user)

    def _batch_prompts(self, idx, gen, allow_direct=True):
        """(ids, mask, target item codes) for training units ``idx``; without direct prompts
        the rows follow ``idx``."""
        tr = self._tr
        pos, user = tr.unit_pos[idx], tr.unit_user[idx]
        target = tr.items[pos]
        hist = P.histories(tr.indptr, tr.items, user, pos, self._history_len())
        utok = self._train_user_tokens(user)
        frac = float(self.direct_fraction) if self.table_form_ and allow_direct else 0.0
        if frac > 0:
            direct = torch.rand(len(idx), generator=gen, device=idx.device) < frac
        else:
            direct = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
        seq = P.sequential_prompt(tr.vocab, utok[~direct], hist[~direct])
        if not direct.any():
            return seq[0], seq[1], target[~direct]
        n_d, C = int(direct.sum()), int(min(self.n_direct_candidates, tr.vocab.n_items))
        cand = torch.randint(0, tr.vocab.n_items, (n_d, C), generator=gen, device=idx.device)
        slot = torch.randint(0, C, (n_d,), generator=gen, device=idx.device)
        cand[torch.arange(n_d, device=idx.device), slot] = target[direct]
        dp = P.direct_prompt(tr.vocab, utok[direct], cand)
        ids, mask = P.pad_cat(seq, dp)
        return ids, mask, torch.cat([target[~direct], target[direct]])

    def _train_step(self, idx):
        tr = self._tr
        ids, mask, target = self._batch_prompts(idx, tr.gen)
        enc = _t5.encode(tr.model, ids, mask, gen=tr.gen)
        dec = torch.zeros(len(ids), 1, dtype=torch.long, device=ids.device)
        logits = _t5.decode(tr.model, enc, mask, dec, gen=tr.gen)[:, 0]
        loss = torch.nn.functional.cross_entropy(logits.float(),
                                                 target + tr.vocab.item_offset)
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tr.model.parameters(), float(self.clip_norm))
        tr.opt.step()
        return {"loss": loss.detach()}

    def _prepare_validation(self):
        self._tr.model.eval()

    def _start_epoch(self, epoch):
        tr = self._tr
        tr.model.train()
        if self.max_targets_per_user is not None:  # a fresh sample of targets per user
            keep = P.sample_units(tr.all_user, tr.user_start, int(self.max_targets_per_user),
                                  tr.gen)
            tr.unit_pos, tr.unit_user = tr.all_pos[keep], tr.all_user[keep]

    def _snapshot(self):
        return _state(self._tr.model)

    def _restore(self, state):
        self._tr.model.load_state_dict(state)

    def _finish_fit(self):
        tr = self._tr
        self.t5_ = tr.model.eval()
        for p in self.t5_.parameters():
            p.requires_grad_(False)
        self._vocab = tr.vocab
        indptr, items = self._full_seq
        self.histories_ = (np.asarray(indptr, dtype=np.int64), np.asarray(items, np.int64))
        self.vocabulary_size_ = tr.vocab.size
        self.n_parameters_ = _t5.n_parameters(self.t5_)
        self.d_model_ = int(self.t5_.config.d_model)
        for name in ("_full_seq", "_train_seq"):
            self.__dict__.pop(name, None)

    # -- scoring -----------------------------------------------------------------------------
    def _live(self):
        """(model, vocabulary, indptr, items) — the training state while fitting."""
        tr = self.__dict__.get("_tr")
        if tr is not None and hasattr(tr, "model"):
            return tr.model, tr.vocab, tr.indptr, tr.items
        dev = self.device_
        cache = self.__dict__.get("_hist_cache")
        if cache is None or cache[0].device != dev:
            indptr, items = self.histories_
            cache = (torch.as_tensor(indptr, device=dev), torch.as_tensor(items, device=dev))
            self._hist_cache = cache
        return self.t5_, self._vocab, cache[0], cache[1]

    def _user_prompts(self, user_idx):
        model, vocab, indptr, items = self._live()
        user = torch.as_tensor(np.asarray(user_idx), dtype=torch.long, device=self.device_)
        hist = P.histories(indptr, items, user, indptr[user + 1], self._history_len())
        if (hist[:, 0] < 0).any():
            raise ValueError("a user has an empty history: the prompt needs at least one item.")
        return model, vocab, P.sequential_prompt(vocab, self._user_tokens(vocab, user), hist)

    def _row_prompts(self, X_rows):
        model, vocab, _, _ = self._live()
        hist = P.row_histories(X_rows, self._history_len())
        if (hist[:, 0] < 0).any():
            bad = int((hist[:, 0] < 0).sum())
            raise ValueError(f"{bad} row(s) of X have no interaction (an empty history): a P5 "
                             "prompt needs at least one item; drop those rows.")
        utok = torch.full((len(hist),), vocab.unknown_user, device=hist.device)
        return model, vocab, P.sequential_prompt(vocab, utok, hist)

    # the prompt family's hooks (CFP overrides _prefixes)
    def _prefixes(self):
        return None, None, None

    def _item_scores(self, model, vocab, ids, mask):
        enc_p, dec_p, cross_p = self._prefixes()
        enc = _t5.encode(model, ids, mask, prefix=enc_p)
        dec = torch.zeros(len(ids), 1, dtype=torch.long, device=ids.device)
        logits = _t5.decode(model, enc, mask, dec, self_prefix=dec_p, cross_prefix=cross_p)
        logp = torch.log_softmax(logits[:, 0].float(), dim=-1)
        return logp[:, vocab.item_offset:vocab.item_offset + vocab.n_items].to(
            self._torch_dtype())

    def _user_repr(self, model, ids, mask):
        enc_p = self._prefixes()[0]
        return _t5.encode(model, ids, mask, prefix=enc_p)[:, P.USER_POS]

    def _scores_from_users(self, user_idx):
        model, vocab, (ids, mask) = self._user_prompts(user_idx)
        return self._item_scores(model, vocab, ids, mask)

    def _scores_from_rows(self, X_rows):
        model, vocab, (ids, mask) = self._row_prompts(X_rows)
        return self._item_scores(model, vocab, ids, mask)

    def _transform_users(self, user_idx):
        model, _, (ids, mask) = self._user_prompts(user_idx)
        return self._user_repr(model, ids, mask)

    def _transform_rows(self, X_rows):
        model, _, (ids, mask) = self._row_prompts(X_rows)
        return self._user_repr(model, ids, mask)

    # -- candidate ranking (UP5's evaluation) -------------------------------------------------
    def score_candidates(self, users, candidates):
        """Log-likelihood of generating each candidate item for each fitted user (table form).

        Parameters
        ----------
        users : array-like of shape (n,)
            Fitted user ids.
        candidates : array-like of shape (n, n_candidates)
            Item ids (fitted items).

        Returns
        -------
        ndarray of shape (n, n_candidates)
            log p(item | the user's sequential prompt); higher ranks first.
        """
        check_is_fitted(self, "t5_")
        self._ensure_device()
        if not self.table_form_:
            raise ValueError("score_candidates names users by id; the model was fitted on a "
                             "matrix, whose users have no id token. Use predict(rows).")
        users = np.asarray(users)
        cand = np.asarray(candidates)
        if cand.ndim != 2 or cand.shape[0] != len(users):
            raise ValueError(f"candidates must have shape (n_users, n_candidates) = "
                             f"({len(users)}, k); got {cand.shape}.")
        uidx, known = self._fitted_user_index(users)
        if not known.all():
            raise ValueError(f"{int((~known).sum())} user(s) were not seen in fit, e.g. "
                             f"{users[~known][:3].tolist()}; P5 knows users by their id token.")
        cidx = np.clip(np.searchsorted(self.item_ids_, cand), 0, len(self.item_ids_) - 1)
        if not (self.item_ids_[cidx] == cand).all():
            raise ValueError("candidates name items that were not seen in fit.")
        out = np.empty(cand.shape, dtype=np.float64)
        bs = self._batch()
        with torch.no_grad():
            for s in range(0, len(users), bs):
                sc = self._scores_from_users(uidx[s:s + bs])
                c = torch.as_tensor(cidx[s:s + bs], device=sc.device)
                out[s:s + bs] = sc.gather(1, c).double().cpu().numpy()
        return out

    def hit_ratio(self, X, ks=(1, 3, 5, 10), *, n_negatives=100, random_state=0):
        """UP5's hit@k: each held-out (user, item) row is ranked among ``n_negatives`` sampled
        items.

        The negatives are drawn (seeded) from the **item** ids, distinct, excluding the gold
        item and the user's fitted history. (The official code draws them from
        ``range(6040)``, the *user*-id range of ML-1M, a quirk; here they are items.)

        Parameters
        ----------
        X : DataFrame with columns ``user`` and ``item``
            Held-out interactions of fitted users (rows naming unfitted items are skipped with
            a warning).
        ks : sequence of int, default=(1, 3, 5, 10)
        n_negatives : int, default=100
        random_state : int, default=0

        Returns
        -------
        dict of str to float
            ``{"hit@k": mean over rows}``.
        """
        check_is_fitted(self, "t5_")
        if not isinstance(X, pd.DataFrame) or USER not in X.columns or ITEM not in X.columns:
            raise ValueError("hit_ratio takes a DataFrame of held-out interactions with columns "
                             "'user' and 'item'.")
        if len(X) == 0:
            raise ValueError("X is empty: no held-out interaction to rank.")
        users, items = np.asarray(X[USER]), np.asarray(X[ITEM])
        cidx = np.clip(np.searchsorted(self.item_ids_, items), 0, len(self.item_ids_) - 1)
        ok = self.item_ids_[cidx] == items
        if not ok.all():
            warnings.warn(f"{int((~ok).sum())} row(s) name items not seen in fit; skipped.",
                          UserWarning, stacklevel=2)
        users, cidx = users[ok], cidx[ok]
        if not isinstance(n_negatives, numbers.Integral) or not 1 <= n_negatives < self.n_items_:
            raise ValueError(f"n_negatives must be in [1, {self.n_items_ - 1}]; got "
                             f"{n_negatives!r}.")
        uidx, known = self._fitted_user_index(users)
        if not known.all():
            raise ValueError(f"{int((~known).sum())} user(s) were not seen in fit, e.g. "
                             f"{users[~known][:3].tolist()}.")
        gen = torch.Generator(device="cpu").manual_seed(int(random_state))
        bs = self._batch()
        hits = {k: [] for k in ks}
        self._ensure_device()
        with torch.no_grad():
            for s in range(0, len(uidx), bs):
                u = uidx[s:s + bs]
                g = torch.as_tensor(cidx[s:s + bs], device=self.device_)
                seen = self.train_matrix_[u]
                r = torch.rand(len(u), self.n_items_, generator=gen).to(self.device_)
                rr, cc = seen.nonzero()
                r[torch.as_tensor(rr), torch.as_tensor(cc)] = 2.0
                r[torch.arange(len(u)), g.cpu()] = 3.0
                neg = r.topk(n_negatives, dim=1, largest=False).indices
                sc = self._scores_from_users(u)
                gold = sc.gather(1, g[:, None])
                rank = (sc.gather(1, neg) >= gold).sum(1)
                for k in ks:
                    hits[k].append((rank < k).cpu().numpy())
        return {f"hit@{k}": float(np.concatenate(v).mean()) for k, v in hits.items()}

    def score(self, X, y=None):
        """Table form: UP5's hit@5 over the gold item plus 100 sampled item negatives (fewer
        when there are not enough items; see :meth:`hit_ratio`). Matrix form: the base fold-in
        NDCG@100."""
        check_is_fitted(self, "t5_")
        if self.table_form_:
            n_neg = min(100, self.n_items_ - 1)
            return self.hit_ratio(X, ks=(5,), n_negatives=n_neg)["hit@5"]
        return super().score(X, y)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_hist_cache", None)
        return state

    def _copy_backbone(self):
        """A frozen deep copy of the fitted T5 (for CFP)."""
        return copy.deepcopy(self.t5_)
