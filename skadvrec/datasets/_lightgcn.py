"""NGCF / LightGCN train-test splits of implicit-feedback datasets (Gowalla, ...)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch

from ._fetch import _ensure_files

__all__ = ["load_lightgcn_split"]

# Where each split lives and the SHA-256 of every file the loader reads. The sums were
# computed from copies verified byte-identical to the official releases.
_LIGHTGCN_BASE_URL = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/"

# To add "yelp2018" or "amazon-book" (same train.txt / test.txt layout), add an entry with
# the SHA-256 of both files and a description.
_LIGHTGCN_SPLITS = {
    "gowalla": {
        "folder": "gowalla",
        "base_url": _LIGHTGCN_BASE_URL + "gowalla/",
        "files": {
            "train.txt": "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
            "test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
        },
        "description": (
            "Gowalla check-ins (SNAP loc-gowalla; Cho, Myers and Leskovec, KDD 2011), 10-core "
            "filtered with a random per-user 80/20 train/test split by NGCF (Wang et al., "
            "SIGIR 2019) and reused unchanged by LightGCN (He et al., SIGIR 2020); files from "
            "the kuandeng/LightGCN repository. Implicit feedback, no user attributes: 29,858 "
            "users, 40,981 items, 810,128 train and 217,242 test interactions. Research use; "
            "cite the three papers above."
        ),
    },
}


def _read_adjacency_lists(path):
    """Parse ``user item item ...`` lines into int64 arrays (file order).

    Returns the user and item of every interaction, and the user id of every line (so that
    users whose lines list no items are still counted).
    """
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not a valid 'user item item ...' file: it contains non-ASCII bytes. "
            "Check that it is the original, space-separated LightGCN split file."
        ) from exc
    lengths = np.fromiter(
        (n for n in (len(line.split()) for line in text.splitlines()) if n), dtype=np.int64
    )
    # np.fromstring in text mode parses all whitespace-separated integers in C; partial
    # parses (a stray token) surface as a warning, turned into an error here.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            flat = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning) as exc:
            flat = None
            reason = str(exc)
    if flat is None or flat.shape[0] != lengths.sum():
        reason = reason if flat is None else "unexpected token count"
        raise ValueError(
            f"{path} is not a valid 'user item item ...' file ({reason}): every line must "
            "hold space-separated non-negative integers. Check that it is the original "
            "LightGCN split file."
        )
    starts = np.cumsum(lengths) - lengths
    is_user = np.zeros(flat.shape[0], dtype=bool)
    is_user[starts] = True
    users = np.repeat(flat[starts], lengths - 1)
    items = flat[~is_user]
    if flat.size and flat.min() < 0:
        raise ValueError(f"{path} contains negative ids; ids must be non-negative integers.")
    return users, items, flat[starts]


def _to_binary_csr(users, items, shape):
    matrix = sp.csr_matrix(
        (np.ones(users.shape[0], dtype=np.float32), (users, items)), shape=shape
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


def load_lightgcn_split(name="gowalla", *, data_home=None, download=True):
    """Load a NGCF/LightGCN train/test split of an implicit-feedback dataset.

    Reads ``<data_home>/<name>/train.txt`` and ``test.txt``, where each line is
    ``user item item ...`` with ids starting at 0 (a line may list no items). Missing files
    are downloaded from the ``kuandeng/LightGCN`` GitHub repository when ``download=True``
    and checked against fixed SHA-256 sums.

    Parameters
    ----------
    name : {"gowalla"}, default="gowalla"
        Which split to load.
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home`.
    download : bool, default=True
        If True, fetch and verify missing files. If False, raise
        :class:`FileNotFoundError` when files are missing.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        train, test : scipy.sparse.csr_matrix of shape (n_users, n_items), dtype float32
            Binary interaction matrices. ``n_users`` (``n_items``) is the largest user (item)
            id over both files plus one, so both matrices have the same shape.
        train_df, test_df : pandas.DataFrame
            The same interactions as int64 columns ``user`` and ``item``, in file order.
        description : str
            Source of the data, citations and counts.

    Raises
    ------
    ValueError
        If ``name`` is not a known split, or a file is malformed.
    FileNotFoundError
        If files are missing and ``download=False``.
    OSError
        If a download fails or a downloaded file does not match its checksum.

    Examples
    --------
    >>> from skadvrec.datasets import load_lightgcn_split
    >>> data = load_lightgcn_split("gowalla")  # doctest: +SKIP
    >>> data.train.shape, data.train.nnz, data.test.nnz  # doctest: +SKIP
    ((29858, 40981), 810128, 217242)
    """
    if not isinstance(name, str) or name.lower() not in _LIGHTGCN_SPLITS:
        raise ValueError(
            f"Unknown LightGCN split {name!r}; known splits are {sorted(_LIGHTGCN_SPLITS)}."
        )
    spec = _LIGHTGCN_SPLITS[name.lower()]
    folder = _ensure_files(spec, data_home, download, f"LightGCN split {name!r}",
                           "load_lightgcn_split")
    train_u, train_i, train_lines = _read_adjacency_lists(folder / "train.txt")
    test_u, test_i, test_lines = _read_adjacency_lists(folder / "test.txt")
    # Users whose lines list no items still count towards n_users.
    n_users = int(max(train_lines.max(initial=-1), test_lines.max(initial=-1))) + 1
    n_items = int(max(train_i.max(initial=-1), test_i.max(initial=-1))) + 1
    shape = (n_users, n_items)
    return Bunch(
        train=_to_binary_csr(train_u, train_i, shape),
        test=_to_binary_csr(test_u, test_i, shape),
        train_df=pd.DataFrame({"user": train_u, "item": train_i}),
        test_df=pd.DataFrame({"user": test_u, "item": test_i}),
        description=spec["description"],
    )
