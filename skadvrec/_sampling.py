"""Sampling of training examples from an implicit-feedback matrix, on the device.

Uniform BPR triples (u, i⁺, j⁻) and uniform negatives for given users, drawn with a seeded
torch generator on the device of the CSR structure, vectorised (no Python loop over users).
Every family that trains on sampled positives and negatives (the embedding models of
:mod:`skadvrec.cf`, factorisation machines) draws them here. This module sits at the bottom of
the package: it imports no estimator.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["pair_keys", "sample_negatives", "sample_bpr_triples", "TripleSampler"]


def pair_keys(indptr, indices, n_items):
    """Keys ``u * n_items + i`` of the pairs of a CSR structure, in CSR order.

    With the column indices sorted within each row the keys are sorted, so membership of a
    (user, item) pair is one :func:`torch.searchsorted`.

    Parameters
    ----------
    indptr, indices : LongTensor
        The CSR structure (column indices sorted within each row).
    n_items : int

    Returns
    -------
    keys : LongTensor of shape (nnz,)

    Examples
    --------
    >>> import torch
    >>> pair_keys(torch.tensor([0, 2, 3]), torch.tensor([0, 2, 1]), 4)
    tensor([0, 2, 5])
    """
    deg = indptr[1:] - indptr[:-1]
    rows = torch.repeat_interleave(torch.arange(len(deg), device=indptr.device), deg)
    return rows * n_items + indices


def sample_negatives(users, n_items, keys, generator, reject=None):
    """For each entry of ``users``, an item drawn uniformly among those the user has not
    interacted with (vectorised rejection sampling: each round redraws only the rejected ones).

    Parameters
    ----------
    users : LongTensor of shape (n,)
        Users, each with at least one item they have not interacted with (otherwise the
        rejection loop never ends; :func:`sample_bpr_triples` draws only such users).
    n_items : int
    keys : LongTensor
        The sorted pair keys of the positives (:func:`pair_keys`).
    generator : torch.Generator
        On the device of ``users``.
    reject : callable, default=None
        ``reject(users, neg, todo)``: the entries of ``todo`` whose pair (users[t], neg[t]) is a
        positive, in order (a faster membership test, e.g. the native one of the embedding
        trainers; it must agree with ``keys``). None: :func:`torch.searchsorted` on ``keys``.
        The random draws, hence the result, are the same either way.

    Returns
    -------
    neg : LongTensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> keys = pair_keys(torch.tensor([0, 2, 3]), torch.tensor([0, 2, 1]), 4)
    >>> g = torch.Generator().manual_seed(0)
    >>> neg = sample_negatives(torch.tensor([0, 0, 1, 1]), 4, keys, g)
    >>> bool(torch.isin(neg[:2], torch.tensor([0, 2])).any()), bool((neg[2:] == 1).any())
    (False, False)
    """
    dev = users.device
    neg = torch.randint(n_items, (len(users),), generator=generator, device=dev)
    return _redraw(users, neg, torch.arange(len(users), device=dev), n_items, keys, generator,
                   reject, tested=False)


def _redraw(users, neg, todo, n_items, keys, generator, reject, tested):
    """The rejection rounds of :func:`sample_negatives`: the entries ``todo`` of ``neg`` that
    hit a positive are redrawn until none does (``tested``: ``todo`` holds exactly the entries
    that hit one, so the first round starts with the redraw)."""
    dev = users.device
    while len(keys):
        if tested:
            tested = False
            if len(todo) == 0:
                break
        elif reject is not None:
            todo = reject(users, neg, todo)
            if len(todo) == 0:
                break
        else:
            k = users[todo] * n_items + neg[todo]
            at = torch.searchsorted(keys, k).clamp_(max=len(keys) - 1)
            bad = keys[at] == k
            if not bool(bad.any()):
                break
            todo = todo[bad]
        neg[todo] = torch.randint(n_items, (len(todo),), generator=generator, device=dev)
    return neg


def sample_bpr_triples(indptr, indices, n_items, n_samples, generator, active_users=None,
                       keys=None, reject=None, draw=None):
    """Draw ``n_samples`` BPR triples (u, i⁺, j⁻) on the device of ``indptr``.

    The user is uniform over ``active_users`` (users with at least one training item and at
    least one item they have not interacted with), the positive is uniform over the user's
    training items and the negative uniform over the items the user has not interacted with
    (:func:`sample_negatives`).

    Parameters
    ----------
    indptr, indices : LongTensor
        The CSR structure of the training matrix (column indices sorted within each row).
    n_items : int
    n_samples : int
    generator : torch.Generator
        On the same device as ``indptr``.
    active_users : LongTensor, default=None
        Users to draw from; by default every user with a training item and a non-item.
    keys : LongTensor, default=None
        The sorted pair keys (:func:`pair_keys`) used for the negatives' membership test;
        computed from the CSR structure when None (:class:`TripleSampler` computes them once).
    reject : callable, default=None
        A faster membership test for the negatives (see :func:`sample_negatives`).
    draw : callable, default=None
        ``draw(active_users, pick, r, neg) -> (users, pos, bad)``: the users, the positives
        and the entries whose negative is a positive, from the random draws (the user's index
        in ``active_users``, a uniform for the positive, the first negative), in one pass (e.g.
        the native one of the embedding trainers; it must agree with the torch form), or None
        where it does not apply (then the torch form runs on the same draws). The random
        draws, hence the result, are the same either way.

    Returns
    -------
    users, pos, neg : LongTensor of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> indptr, indices = torch.tensor([0, 2, 3]), torch.tensor([0, 2, 1])
    >>> g = torch.Generator().manual_seed(0)
    >>> u, i, j = sample_bpr_triples(indptr, indices, 4, 1000, g)
    >>> keys = set(zip([0, 0, 1], [0, 2, 1]))
    >>> all((a, b) in keys for a, b in zip(u.tolist(), i.tolist()))
    True
    >>> any((a, b) in keys for a, b in zip(u.tolist(), j.tolist()))
    False
    """
    dev = indptr.device
    deg = indptr[1:] - indptr[:-1]
    if active_users is None:
        active_users = torch.nonzero((deg > 0) & (deg < n_items)).squeeze(1)
    if len(active_users) == 0:
        raise ValueError("no user has both a training item and an item to use as a negative; "
                         "BPR needs users with 1 <= interactions < n_items.")
    pick = torch.randint(len(active_users), (n_samples,), generator=generator, device=dev)
    if keys is None:
        keys = pair_keys(indptr, indices, n_items)
    r = torch.rand(n_samples, generator=generator, device=dev)
    neg = None
    if draw is not None:  # the same draws, in the same order, as the torch form below
        neg = torch.randint(n_items, (n_samples,), generator=generator, device=dev)
        out = draw(active_users, pick, r, neg)
        if out is not None:
            users, pos, bad = out
            return users, pos, _redraw(users, neg, bad, n_items, keys, generator, reject,
                                       tested=True)
    users = active_users[pick]
    off = torch.minimum((r * deg[users]).long(), deg[users] - 1)
    pos = indices[indptr[users] + off]
    if neg is None:
        return users, pos, sample_negatives(users, n_items, keys, generator, reject)
    return users, pos, _redraw(users, neg, torch.arange(n_samples, device=dev), n_items, keys,
                               generator, reject, tested=False)


class TripleSampler:
    """Uniform BPR triples from one fixed training matrix, its structure kept on the device.

    Parameters
    ----------
    X : sparse matrix of shape (n_users, n_items)
        Training positives (the non-zeros).
    device : torch.device or str
    reject, draw : callable, default=None
        A faster membership test for the negatives and a faster first pass of the draw (see
        :func:`sample_bpr_triples`); the draws are the same with or without them.

    Attributes
    ----------
    indptr, indices : LongTensor
        The CSR structure on the device (columns sorted within rows).
    active_users : LongTensor
        Users with at least one positive and one negative (the ones drawn).
    keys : LongTensor
        Sorted pair keys (:func:`pair_keys`).

    Examples
    --------
    >>> import scipy.sparse as sp, torch
    >>> X = sp.csr_matrix([[1, 0, 1, 0], [0, 1, 0, 0]])
    >>> u, i, j = TripleSampler(X, "cpu").sample(5, torch.Generator().manual_seed(0))
    >>> u.shape
    torch.Size([5])
    """

    def __init__(self, X, device, reject=None, draw=None):
        X = sp.csr_matrix(X)
        if not X.has_sorted_indices:
            X = X.sorted_indices()
        self.n_items = X.shape[1]
        self.indptr = torch.from_numpy(X.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(X.indices.astype(np.int64)).to(device)
        deg = self.indptr[1:] - self.indptr[:-1]
        self.active_users = torch.nonzero((deg > 0) & (deg < self.n_items)).squeeze(1)
        self.keys = pair_keys(self.indptr, self.indices, self.n_items)
        self.reject, self.draw = reject, draw

    def sample(self, n_samples, generator):
        """``n_samples`` triples (users, positives, negatives), see :func:`sample_bpr_triples`."""
        return sample_bpr_triples(self.indptr, self.indices, self.n_items, n_samples, generator,
                                  self.active_users, self.keys, self.reject, self.draw)
