"""Synthetic implicit feedback with a planted user group, for offline tests and examples."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_interactions"]

_SYNTH_START = 1_577_836_800  # 2020-01-01T00:00:00Z
_RATING_CUMSHARE = (0.06, 0.17, 0.44, 0.78)  # MovieLens-like shares of ratings 1..4
_CHUNK_CELLS = 1 << 21  # logits computed for this many (user, item) cells at a time


def _check_int(value, name, min_value, max_value=None, hint=""):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.{hint}")
    if value < min_value or (max_value is not None and value > max_value):
        upper = "" if max_value is None else f" and <= {max_value}"
        raise ValueError(f"{name} must be >= {min_value}{upper}, got {value}.{hint}")
    return int(value)


def _check_nonneg_float(value, name, hint=""):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.{hint}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.{hint}")
    return float(value)


def _activity_counts(raw, target_mean, low, high):
    """Scale ``raw`` so that ``clip(rint(c * raw), low, high)`` has mean ``target_mean``."""

    def mean_at(c):
        return np.clip(np.rint(c * raw), low, high).mean()

    lo, hi = 0.0, 1.0
    while mean_at(hi) < target_mean and hi < 1e12:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mean_at(mid) < target_mean:
            lo = mid
        else:
            hi = mid
    return np.clip(np.rint(hi * raw), low, high).astype(np.int64)


def make_interactions(
    n_users=600,
    n_items=300,
    *,
    density=0.05,
    n_factors=8,
    n_groups=2,
    group_weights=None,
    popularity_skew=1.0,
    attribute_signal=1.0,
    activity_skew=1.0,
    min_interactions=5,
    return_frame=False,
    random_state=None,
):
    """Generate a synthetic implicit-feedback matrix with a planted user group.

    Each user ``u`` is assigned to one of ``n_groups`` groups and gets latent factors
    ``z_u + attribute_signal * c_g``, where ``c_g`` is the centre of its group (centres sum
    to zero over groups and have unit variance per factor). Each item ``i`` gets latent
    factors ``v_i`` and a popularity term ``-popularity_skew * log(r_i)``, where ``r_i`` is a
    random popularity rank, so item exposure follows a power law. A user with ``n_u``
    interactions samples ``n_u`` distinct items from
    ``softmax(u . v_i / sqrt(n_factors) - popularity_skew * log(r_i))``, which is done for
    all users at once with the Gumbel-top-k trick. The group term ``c_g . v_i`` makes the
    group predictable from a user's row when ``attribute_signal > 0``; with
    ``attribute_signal=0`` the interactions do not depend on the group.

    Activity ``n_u`` is log-normal with spread ``activity_skew``, scaled so that the mean
    density is ``density``, rounded and clipped to ``[min_interactions, n_items]``. When
    ``min_interactions`` exceeds ``density * n_items`` the realised density is higher than
    requested.

    Parameters
    ----------
    n_users : int, default=600
        Number of users (rows), >= 1.
    n_items : int, default=300
        Number of items (columns), >= 1.
    density : float, default=0.05
        Target fraction of non-zero cells, in (0, 1].
    n_factors : int, default=8
        Dimension of the latent factors, >= 1.
    n_groups : int, default=2
        Number of user groups, >= 1. Labels are ``"g0"``, ``"g1"``, ...
    group_weights : array-like of shape (n_groups,), default=None
        Non-negative relative group sizes (normalised to sum to one). None gives equal sizes.
    popularity_skew : float, default=1.0
        Exponent of the item popularity power law, >= 0. 0 gives uniform exposure.
    attribute_signal : float, default=1.0
        Strength of the group-specific preference, >= 0. Also shifts the mean ``age`` of the
        groups apart. 0 makes interactions and age independent of the group.
    activity_skew : float, default=1.0
        Standard deviation of the log-normal user activity, >= 0. 0 gives every user the
        same number of interactions.
    min_interactions : int, default=5
        Minimum number of interactions per user, between 0 and ``n_items``.
    return_frame : bool, default=False
        If True, also return the interactions as a DataFrame with ratings and timestamps.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output. Pass an int for identical results across calls.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        X : scipy.sparse.csr_matrix of shape (n_users, n_items), dtype float32
            Binary user-item interactions.
        sensitive_features : pandas.DataFrame of shape (n_users, 2)
            Indexed by user id (index name ``user``), with ``group`` (categorical with
            labels ``"g0"``, ``"g1"``, ...) and ``age`` (float years; group means differ by
            ``10 * attribute_signal`` years from first to last group, plus N(0, 10) noise,
            clipped to [14, 90]).
        interactions : pandas.DataFrame
            Only when ``return_frame=True``. int64 columns ``user``, ``item``, ``rating``
            (1 to 5, increasing with the user-item affinity ``u . v_i / sqrt(n_factors)``
            plus noise, with MovieLens-like shares) and ``timestamp`` (Unix seconds, strictly
            increasing within a user in sampling order), sorted by user then time.
        description : str
            The generating parameters.

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> data = make_interactions(n_users=100, n_items=50, random_state=0)
    >>> data.X.shape
    (100, 50)
    >>> data.sensitive_features["group"].cat.categories.tolist()
    ['g0', 'g1']
    >>> bool(data.X.sum(axis=1).min() >= 5)
    True
    """
    n_users = _check_int(n_users, "n_users", 1, hint=" Pass a positive number of users.")
    n_items = _check_int(n_items, "n_items", 1, hint=" Pass a positive number of items.")
    if isinstance(density, (bool, np.bool_)) or not isinstance(density, numbers.Real):
        raise ValueError(f"density must be a real number in (0, 1], got {density!r}.")
    if not (0 < density <= 1):
        raise ValueError(
            f"density must be in (0, 1], got {density}; it is the expected fraction of "
            "non-zero cells, e.g. 0.05."
        )
    density = float(density)
    n_factors = _check_int(n_factors, "n_factors", 1)
    n_groups = _check_int(n_groups, "n_groups", 1, hint=" Use n_groups=1 for no groups.")
    popularity_skew = _check_nonneg_float(
        popularity_skew, "popularity_skew", " Use 0 for uniform item popularity."
    )
    attribute_signal = _check_nonneg_float(
        attribute_signal, "attribute_signal", " Use 0 for no group signal."
    )
    activity_skew = _check_nonneg_float(
        activity_skew, "activity_skew", " Use 0 for equal activity across users."
    )
    min_interactions = _check_int(
        min_interactions, "min_interactions", 0, n_items,
        hint=" A user cannot interact with more than n_items distinct items.",
    )
    if group_weights is None:
        weights = np.full(n_groups, 1.0 / n_groups)
    else:
        weights = np.asarray(group_weights, dtype=float)
        if weights.ndim != 1 or weights.shape[0] != n_groups:
            raise ValueError(
                f"group_weights must have one entry per group: got shape {weights.shape} for "
                f"n_groups={n_groups}. Pass {n_groups} weights or leave it as None."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"group_weights must be finite, non-negative and sum to a positive value, got "
                f"{weights.tolist()}."
            )
        weights = weights / weights.sum()

    rng = check_random_state(random_state)

    # Users, groups and latent factors.
    groups = rng.choice(n_groups, size=n_users, p=weights)
    centres = rng.standard_normal((n_groups, n_factors))
    centres -= centres.mean(axis=0)
    rms = np.sqrt(np.mean(centres**2))
    if rms > 0:
        centres /= rms
    user_factors = rng.standard_normal((n_users, n_factors))
    user_factors += attribute_signal * centres[groups]
    item_factors = rng.standard_normal((n_items, n_factors)) / np.sqrt(n_factors)
    popularity = -popularity_skew * np.log(rng.permutation(n_items) + 1.0)

    offsets = np.linspace(-0.5, 0.5, n_groups) if n_groups > 1 else np.zeros(1)
    age = 35.0 + 10.0 * attribute_signal * offsets[groups] + rng.normal(0.0, 10.0, n_users)
    age = np.clip(age, 14.0, 90.0)

    # Activity: log-normal with unit mean, scaled to the target density.
    raw = np.exp(activity_skew * rng.standard_normal(n_users) - 0.5 * activity_skew**2)
    counts = _activity_counts(raw, density * n_items, min_interactions, n_items)

    # Sampling without replacement: Gumbel-top-k on the logits, in row chunks.
    chunk = max(1, _CHUNK_CELLS // n_items)
    rank = np.arange(n_items)
    cols_parts, affinity_parts = [], []
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        affinity = user_factors[start:stop] @ item_factors.T
        scores = affinity + popularity + rng.gumbel(size=affinity.shape)
        k_max = int(counts[start:stop].max())
        if k_max < n_items // 2:
            # Only the k_max best of each row are needed: partition, then sort those.
            top = np.argpartition(-scores, k_max - 1, axis=1)[:, :k_max] if k_max else (
                np.zeros((stop - start, 0), dtype=np.intp)
            )
            inner = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
            order = np.take_along_axis(top, inner, axis=1)
        else:
            order = np.argsort(-scores, axis=1)
        keep = rank[: order.shape[1]] < counts[start:stop, None]
        cols_parts.append(order[keep])
        affinity_parts.append(np.take_along_axis(affinity, order, axis=1)[keep])
    cols = np.concatenate(cols_parts).astype(np.int64)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), counts)

    X = sp.csr_matrix(
        (np.ones(cols.shape[0], dtype=np.float32), (rows, cols)), shape=(n_users, n_items)
    )
    X.sort_indices()

    sensitive = pd.DataFrame(
        {
            "group": pd.Categorical.from_codes(
                groups, categories=[f"g{g}" for g in range(n_groups)]
            ),
            "age": age,
        },
        index=pd.Index(np.arange(n_users), name="user"),
    )
    description = (
        f"Synthetic implicit feedback from skadvrec.datasets.make_interactions: {n_users} "
        f"users x {n_items} items, {cols.shape[0]} interactions (density "
        f"{cols.shape[0] / (n_users * n_items):.4f}; requested {density}), n_factors="
        f"{n_factors}, n_groups={n_groups}, popularity_skew={popularity_skew}, "
        f"attribute_signal={attribute_signal}, activity_skew={activity_skew}, "
        f"min_interactions={min_interactions}."
    )
    result = Bunch(X=X, sensitive_features=sensitive, description=description)

    if return_frame:
        n_obs = cols.shape[0]
        affinity = np.concatenate(affinity_parts) if affinity_parts else np.zeros(0)
        noisy = affinity + rng.normal(0.0, 0.5, n_obs)
        if n_obs:
            cuts = np.quantile(noisy, _RATING_CUMSHARE)
            ratings = 1 + np.searchsorted(cuts, noisy, side="right")
        else:
            ratings = np.zeros(0, dtype=np.int64)
        gaps = 1 + np.floor(rng.exponential(86_400.0, n_obs)).astype(np.int64)
        csum = np.concatenate(([0], np.cumsum(gaps)))
        before = csum[np.cumsum(counts) - counts]  # elapsed time before each user's block
        first = rng.randint(0, 365 * 86_400, size=n_users)
        timestamps = (
            _SYNTH_START + np.repeat(first, counts) + csum[1:] - np.repeat(before, counts)
        ).astype(np.int64)
        result["interactions"] = pd.DataFrame(
            {
                "user": rows,
                "item": cols,
                "rating": ratings.astype(np.int64),
                "timestamp": timestamps,
            }
        )
    return result
