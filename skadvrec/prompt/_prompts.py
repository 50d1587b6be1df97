"""The prompt family's tiny tokenizer: a fixed word vocabulary for the P5 templates plus one token
per user and one per item, and vectorised prompt building (no Python loop over users).

Token ids: ``0`` pad (also the decoder start), ``1`` eos, ``2`` unk, then the template words,
then the user tokens ``user_<code>`` (the last one, ``user_?``, stands for a user the model
does not know: every fold-in row of the matrix form), then the item tokens ``item_<code>`` in
one contiguous block, so a full ranking is one slice of the decoder's output distribution.
"""

from __future__ import annotations

import numpy as np
import torch

PAD, EOS, UNK = 0, 1, 2
_SEQ_PRE = "given the following watching history of".split()
_SEQ_POST = "predict next possible item to be watched by the user ?".split()
_DIR_PRE = "which item should be recommended to".split()
_DIR_POST = "choose one of the candidates ?".split()
WORDS = tuple(dict.fromkeys(_SEQ_PRE + _SEQ_POST + _DIR_PRE + _DIR_POST + [":"]))
USER_POS = len(_SEQ_PRE)  # position of the user token in both templates
assert len(_DIR_PRE) == USER_POS


class Vocabulary:
    """Token ids for ``n_users`` user tokens (+ ``user_?``) and ``n_items`` item tokens."""

    def __init__(self, n_users, n_items):
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.word = {w: 3 + i for i, w in enumerate(WORDS)}
        self.user_offset = 3 + len(WORDS)
        self.unknown_user = self.user_offset + self.n_users
        self.item_offset = self.unknown_user + 1
        self.size = self.item_offset + self.n_items

    def words(self, words, device):
        return torch.tensor([self.word[w] for w in words], dtype=torch.long, device=device)

    def decode(self, ids):
        """Readable text of a 1-D id sequence (for docs and debugging)."""
        inv = {v: k for k, v in self.word.items()}
        out = []
        for t in np.asarray(ids).tolist():
            if t == PAD:
                continue
            if t in inv:
                out.append(inv[t])
            elif self.user_offset <= t < self.unknown_user:
                out.append(f"user_{t - self.user_offset}")
            elif t == self.unknown_user:
                out.append("user_?")
            elif t >= self.item_offset:
                out.append(f"item_{t - self.item_offset}")
            else:
                out.append("<eos>" if t == EOS else "<unk>")
        return " ".join(out)


def _assemble(vocab, user_tok, middle, n_mid, pre, post):
    """pre words, user token, ':', ``middle`` (B, M) token ids left-aligned with ``n_mid`` valid
    each, post words; pads at the end. Returns (ids, mask)."""
    dev = middle.device
    B, M = middle.shape
    pre_ids, post_ids = vocab.words(pre, dev), vocab.words(post, dev)
    head = len(pre) + 2
    L = head + M + len(post)
    ids = torch.full((B, L), PAD, dtype=torch.long, device=dev)
    ids[:, :len(pre)] = pre_ids
    ids[:, len(pre)] = user_tok
    ids[:, len(pre) + 1] = vocab.word[":"]
    ids[:, head:head + M] = middle
    cols = head + n_mid[:, None] + torch.arange(len(post), device=dev)
    ids.scatter_(1, cols, post_ids.expand(B, -1).contiguous())
    mask = (torch.arange(L, device=dev) < (head + n_mid + len(post))[:, None]).float()
    return ids, mask


def sequential_prompt(vocab, user_tok, hist):
    """Template 2-1 style: "given the following watching history of user_u : i1 … in predict
    next possible item to be watched by the user ?". ``hist``: (B, H) item codes left-aligned,
    -1 = none."""
    valid = hist >= 0
    middle = torch.where(valid, hist + vocab.item_offset, torch.full_like(hist, PAD))
    return _assemble(vocab, user_tok, middle, valid.sum(1), _SEQ_PRE, _SEQ_POST)


def direct_prompt(vocab, user_tok, candidates):
    """"which item should be recommended to user_u : c1 … cC choose one of the candidates ?"."""
    n = torch.full((candidates.shape[0],), candidates.shape[1], device=candidates.device)
    return _assemble(vocab, user_tok, candidates + vocab.item_offset, n, _DIR_PRE, _DIR_POST)


def pad_cat(a, b):
    """Stack two (ids, mask) pairs of different lengths (pads appended)."""
    (ia, ma), (ib, mb) = a, b
    L = max(ia.shape[1], ib.shape[1])

    def pad(t, v):
        return torch.nn.functional.pad(t, (0, L - t.shape[1]), value=v)
    return torch.cat([pad(ia, PAD), pad(ib, PAD)]), torch.cat([pad(ma, 0.0), pad(mb, 0.0)])


def histories(indptr, items, user, end, max_history):
    """(B, H) the last ``max_history`` items before flat position ``end`` of each user's
    sequence (left-aligned, -1 padded). ``indptr``/``items``: CSR tensors on the device."""
    start = torch.maximum(indptr[user], end - max_history)
    pos = start[:, None] + torch.arange(max_history, device=items.device)
    valid = pos < end[:, None]
    vals = items[pos.clamp(max=max(len(items) - 1, 0))] if len(items) else pos
    return torch.where(valid, vals, torch.full_like(vals, -1))


def row_histories(rows, max_history):
    """(B, H) up to ``max_history`` items of dense input rows (the last ones in column order;
    a matrix has no time), left-aligned, -1 padded."""
    n_items = rows.shape[1]
    h = min(max_history, n_items)
    col = torch.arange(n_items, device=rows.device).expand_as(rows)
    key = torch.where(rows > 0, col, torch.full_like(col, -1))
    top = key.topk(h, dim=1).values.flip(1)  # ascending; the -1s first
    n = (top >= 0).sum(1)
    # left-align: shift each row by its number of -1s
    shift = (h - n)[:, None]
    idx = (torch.arange(h, device=rows.device) + shift).clamp(max=h - 1)
    out = top.gather(1, idx)
    return torch.where(torch.arange(h, device=rows.device) < n[:, None], out,
                       torch.full_like(out, -1))


def sample_units(unit_user, user_start, cap, gen):
    """Indices of a random sample (torch generator) of at most ``cap`` units per user; units
    are grouped by user, ``user_start[u]`` the first unit of user u."""
    key = torch.rand(len(unit_user), generator=gen, device=unit_user.device)
    order = torch.argsort(unit_user.double() + key.double())
    rank = torch.arange(len(order), device=order.device) - user_start[unit_user[order]]
    return order[rank < cap]
