"""Dataset loaders and a synthetic interaction generator.

Real datasets (MovieLens 100K / 1M, the LightGCN Gowalla split) are read from a local data
folder in their original published layouts. When files are missing they can be downloaded
from their official sources and are checked against SHA-256 sums fixed in this module. No
data file is shipped with the package.

:func:`make_interactions` builds a small synthetic implicit-feedback matrix with a planted
user group, for tests and examples that must run offline.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch, check_random_state

__all__ = [
    "get_data_home",
    "load_movielens",
    "load_lightgcn_split",
    "make_interactions",
]

_ENV_VAR = "SKADVREC_DATA"
_DEFAULT_HOME = "~/skadvrec_data"
_DOWNLOAD_TIMEOUT = 60  # seconds without data before urllib gives up

# ---------------------------------------------------------------------------------------------
# Registries: where each dataset lives and the SHA-256 of every file the loaders read.
# The sums were computed from copies verified byte-identical to the official releases.
# ---------------------------------------------------------------------------------------------

_MOVIELENS_TERMS = (
    "MovieLens data (c) GroupLens Research, University of Minnesota. Terms of use: research "
    "use only (no commercial use without permission); no redistribution without permission; "
    "users may not be identified; publications must cite F. Maxwell Harper and Joseph A. "
    "Konstan (2015), 'The MovieLens Datasets: History and Context', ACM Transactions on "
    "Interactive Intelligent Systems (TiiS) 5(4):19. See the README in the data folder."
)

_MOVIELENS = {
    "100k": {
        "folder": "ml-100k",
        "url": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "files": {
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        },
        "title": "MovieLens 100K (GroupLens, ml-100k.zip): 100,000 ratings (1-5) from 943 "
        "users on 1,682 movies, collected 1997-09 to 1998-04.",
    },
    "1m": {
        "folder": "ml-1m",
        "url": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "files": {
            "ratings.dat": "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
            "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
            "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
        },
        "title": "MovieLens 1M (GroupLens, ml-1m.zip): 1,000,209 ratings (1-5) from 6,040 "
        "users who joined MovieLens in 2000, on 3,706 of 3,883 listed movies.",
    },
}

# Extracted next to the data for its terms of use; documentation only, not checksummed.
_MOVIELENS_EXTRA_FILES = ("README",)

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

# MovieLens-1M age buckets (README): code -> label; 100K ages in years are binned onto them.
_AGE_CODES = (1, 18, 25, 35, 45, 50, 56)
_AGE_EDGES = (18, 25, 35, 45, 50, 56)  # lower bounds of buckets 2..7

_ML1M_OCCUPATIONS = (
    "other or not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)

# Genre order of the ML-1M README; genres not listed here are appended in sorted order.
_ML1M_GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


# ---------------------------------------------------------------------------------------------
# Data home, file checks and downloads
# ---------------------------------------------------------------------------------------------


def get_data_home(data_home=None) -> Path:
    """Return the folder where skadvrec looks for (and downloads) datasets.

    The folder is, in order of precedence: the ``data_home`` argument, the ``SKADVREC_DATA``
    environment variable, then ``~/skadvrec_data``. A leading ``~`` is expanded. The folder
    is not created here; the loaders create it only when they download into it.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Explicit data folder. When None, ``$SKADVREC_DATA`` is used if set and non-empty,
        else ``~/skadvrec_data``.

    Returns
    -------
    data_home : pathlib.Path
        The resolved data folder.

    Examples
    --------
    >>> from skadvrec.datasets import get_data_home
    >>> str(get_data_home("/tmp/my_data"))
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(_ENV_VAR) or _DEFAULT_HOME
    try:
        path = Path(os.fspath(data_home))
    except TypeError as exc:
        raise ValueError(
            f"data_home must be a string or path-like object, got {type(data_home).__name__}; "
            "pass a folder path such as '~/skadvrec_data' or leave it as None."
        ) from exc
    return path.expanduser()


def _urlretrieve(url, filename):
    """Download ``url`` to the local file ``filename`` (the module's only network access)."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response:
        with open(filename, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temp_path(folder, name):
    """Create an empty temporary file in ``folder`` (same filesystem as the final file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(fd)
    return Path(tmp)


def _download(url, dest_tmp, what):
    try:
        _urlretrieve(url, dest_tmp)
    except (urllib.error.URLError, OSError) as exc:
        raise OSError(
            f"Could not download {what} from {url}: {exc}. Check your network connection, or "
            "download the files yourself and place them in the data folder (see "
            "skadvrec.datasets.get_data_home)."
        ) from exc


def _check_sha256(path, expected, name):
    got = _sha256(path)
    if got != expected:
        raise OSError(
            f"Checksum mismatch for downloaded file {name!r}: expected SHA-256 {expected}, got "
            f"{got}. The corrupt file was deleted; try again, or place a verified copy in the "
            "data folder yourself."
        )


def _missing_files(folder, names):
    return [name for name in names if not (folder / name).is_file()]


def _not_found_error(folder, missing, dataset, loader):
    return FileNotFoundError(
        f"{dataset} files not found: {', '.join(missing)} missing in {folder}. Point "
        f"{loader}(data_home=...) or the {_ENV_VAR} environment variable at the folder that "
        f"contains '{folder.name}/', or call {loader}(..., download=True) to fetch and verify "
        "them from the official source."
    )


def _fetch_movielens_zip(spec, folder, data_home):
    """Download the GroupLens zip and extract the missing, checksummed files into ``folder``.

    Every needed file is extracted to a temporary file and verified first; only when all
    match are they renamed into place, so a failed download leaves nothing behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wanted = _missing_files(folder, spec["files"])
    tmp_zip = _temp_path(data_home, spec["folder"] + ".zip")
    extracted = {}
    try:
        _download(spec["url"], tmp_zip, f"{spec['folder']}.zip")
        try:
            archive = zipfile.ZipFile(tmp_zip)
        except zipfile.BadZipFile as exc:
            raise OSError(
                f"The file downloaded from {spec['url']} is not a valid zip archive ({exc}). "
                "Try again later or download it yourself and extract it into the data folder."
            ) from exc
        with archive:
            members = {Path(m).name: m for m in archive.namelist() if not m.endswith("/")}
            extra = [n for n in _MOVIELENS_EXTRA_FILES if not (folder / n).is_file()]
            for name in [*wanted, *extra]:
                if name not in members:
                    if name in extra:
                        continue
                    raise OSError(
                        f"The archive downloaded from {spec['url']} has no file {name!r}; "
                        "download and extract it yourself into the data folder."
                    )
                tmp = _temp_path(folder, name)
                extracted[name] = tmp
                with archive.open(members[name]) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
        for name in wanted:
            _check_sha256(extracted[name], spec["files"][name], f"{spec['folder']}/{name}")
        for name, tmp in extracted.items():
            os.replace(tmp, folder / name)
        extracted.clear()
    finally:
        for tmp in extracted.values():
            tmp.unlink(missing_ok=True)
        tmp_zip.unlink(missing_ok=True)


def _fetch_plain_files(spec, folder):
    """Download each missing file of ``spec`` into ``folder``, verifying its SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in _missing_files(folder, spec["files"]):
        tmp = _temp_path(folder, name)
        try:
            _download(spec["base_url"] + name, tmp, f"{spec['folder']}/{name}")
            _check_sha256(tmp, spec["files"][name], f"{spec['folder']}/{name}")
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)


def _ensure_files(spec, data_home, download, dataset, loader):
    data_home = get_data_home(data_home)
    folder = data_home / spec["folder"]
    missing = _missing_files(folder, spec["files"])
    if missing:
        if not download:
            raise _not_found_error(folder, missing, dataset, loader)
        data_home.mkdir(parents=True, exist_ok=True)
        created = not folder.exists()
        try:
            if "url" in spec:
                _fetch_movielens_zip(spec, folder, data_home)
            else:
                _fetch_plain_files(spec, folder)
        except BaseException:
            if created and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # leave no empty dataset folder behind after a failure
            raise
    return folder


# ---------------------------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------------------------


def _sanitize(name):
    return re.sub(r"[^0-9a-z]", "_", name.lower())


def _age_group(codes):
    return pd.Categorical(codes, categories=list(_AGE_CODES), ordered=True)


def _years_to_age_code(years):
    years = np.asarray(years)
    return np.asarray(_AGE_CODES)[np.searchsorted(_AGE_EDGES, years, side="right")]


def _genre_frame(index, genre_names, flags):
    """Build the ``genres`` list column and the ``genre_<name>`` int8 flag columns."""
    flags = np.asarray(flags, dtype=np.int8)
    names = np.asarray(genre_names, dtype=object)
    genres = [list(names[row.astype(bool)]) for row in flags]
    columns = {"genres": pd.Series(genres, index=index, dtype=object)}
    for j, name in enumerate(genre_names):
        columns["genre_" + _sanitize(name)] = pd.Series(flags[:, j], index=index)
    return columns


def _load_ml100k(folder):
    interactions = pd.read_csv(
        folder / "u.data",
        sep="\t",
        header=None,
        names=["user", "item", "rating", "timestamp"],
        dtype=np.int64,
        engine="c",
    )

    raw_users = pd.read_csv(
        folder / "u.user",
        sep="|",
        header=None,
        names=["user", "age", "gender", "occupation", "zip_code"],
        dtype={"user": np.int64, "age": np.int64, "gender": str, "occupation": str,
               "zip_code": str},
        keep_default_na=False,
    )
    users = pd.DataFrame(
        {
            "gender": pd.Categorical(raw_users["gender"], categories=["F", "M"]),
            "age": raw_users["age"].to_numpy(dtype=np.int64),
            "age_group": _age_group(_years_to_age_code(raw_users["age"].to_numpy())),
            "occupation": pd.Categorical(raw_users["occupation"]),
            "zip_code": raw_users["zip_code"].astype(str).to_numpy(),
        },
        index=pd.Index(raw_users["user"].to_numpy(dtype=np.int64), name="user"),
    )

    genre_table = pd.read_csv(
        folder / "u.genre", sep="|", header=None, names=["genre", "index"],
        encoding="latin-1", keep_default_na=False,
    ).dropna()
    genre_table = genre_table[genre_table["genre"] != ""].sort_values("index")
    genre_names = list(genre_table["genre"])

    item_cols = ["item", "title", "release_date", "video_release_date", "imdb_url"]
    raw_items = pd.read_csv(
        folder / "u.item",
        sep="|",
        header=None,
        names=item_cols + [f"g{j}" for j in range(len(genre_names))],
        encoding="latin-1",
        dtype={"item": np.int64, "title": str, "release_date": str},
        keep_default_na=False,
        usecols=lambda c: c not in ("video_release_date", "imdb_url"),
    )
    index = pd.Index(raw_items["item"].to_numpy(dtype=np.int64), name="item")
    release = pd.to_datetime(
        raw_items["release_date"], format="%d-%b-%Y", errors="coerce"
    )
    items = pd.DataFrame(
        {
            "title": pd.Series(raw_items["title"].to_numpy(), index=index, dtype=str),
            "release_date": pd.Series(release.to_numpy(), index=index),
            **_genre_frame(
                index, genre_names, raw_items[[f"g{j}" for j in range(len(genre_names))]]
            ),
        },
        index=index,
    )
    return interactions, users, items


def _read_double_colon_ints(path, names):
    """Read an all-integer ``::``-separated file with the fast C parser (``sep=':'``)."""
    cols = list(range(0, 2 * len(names), 2))
    frame = pd.read_csv(
        path, sep=":", header=None, usecols=cols, dtype=np.int64, engine="c"
    )
    frame.columns = names
    return frame


def _load_ml1m(folder):
    interactions = _read_double_colon_ints(
        folder / "ratings.dat", ["user", "item", "rating", "timestamp"]
    )

    # users.dat has no ':' inside fields, so the same trick applies (zip codes kept as text).
    raw_users = pd.read_csv(
        folder / "users.dat",
        sep=":",
        header=None,
        usecols=[0, 2, 4, 6, 8],
        names=["user", "_1", "gender", "_3", "age", "_5", "occupation", "_7", "zip_code"],
        dtype={"user": np.int64, "gender": str, "age": np.int64, "occupation": np.int64,
               "zip_code": str},
        keep_default_na=False,
        engine="c",
    )
    occ = raw_users["occupation"].to_numpy()
    if occ.min() < 0 or occ.max() >= len(_ML1M_OCCUPATIONS):
        raise ValueError(
            f"{folder / 'users.dat'} has occupation codes outside 0..20; the file is not the "
            "original MovieLens 1M users.dat."
        )
    users = pd.DataFrame(
        {
            "gender": pd.Categorical(raw_users["gender"], categories=["F", "M"]),
            "age": raw_users["age"].to_numpy(dtype=np.int64),
            "age_group": _age_group(raw_users["age"].to_numpy()),
            "occupation": pd.Categorical.from_codes(occ, categories=list(_ML1M_OCCUPATIONS)),
            "zip_code": raw_users["zip_code"].astype(str).to_numpy(),
        },
        index=pd.Index(raw_users["user"].to_numpy(dtype=np.int64), name="user"),
    )

    # Titles may contain ':' so movies.dat (3,883 lines) is split in Python.
    text = (folder / "movies.dat").read_bytes().decode("latin-1")
    ids, titles, genre_lists = [], [], []
    for line in text.splitlines():
        if not line:
            continue
        movie_id, title, genres = line.split("::")
        ids.append(int(movie_id))
        titles.append(title)
        genre_lists.append(genres.split("|") if genres else [])
    seen = {g for gl in genre_lists for g in gl}
    genre_names = [g for g in _ML1M_GENRES if g in seen] + sorted(seen - set(_ML1M_GENRES))
    position = {g: j for j, g in enumerate(genre_names)}
    flags = np.zeros((len(ids), len(genre_names)), dtype=np.int8)
    for i, gl in enumerate(genre_lists):
        flags[i, [position[g] for g in gl]] = 1
    index = pd.Index(np.asarray(ids, dtype=np.int64), name="item")
    items = pd.DataFrame(
        {
            "title": pd.Series(titles, index=index, dtype=str),
            **_genre_frame(index, genre_names, flags),
        },
        index=index,
    )
    return interactions, users, items


def load_movielens(variant="100k", *, data_home=None, download=True):
    """Load the MovieLens 100K or 1M ratings with user and movie attributes.

    Files are read from ``<data_home>/ml-100k/`` (``u.data``, ``u.user``, ``u.item``,
    ``u.genre``) or ``<data_home>/ml-1m/`` (``ratings.dat``, ``users.dat``, ``movies.dat``)
    in the layouts published by GroupLens. Missing files are downloaded from
    files.grouplens.org when ``download=True`` and checked against fixed SHA-256 sums.

    The data is (c) GroupLens Research and licensed for research use only, without
    redistribution; publications must cite Harper & Konstan (2015). See the ``description``
    field of the result.

    Parameters
    ----------
    variant : {"100k", "1m"}, default="100k"
        Which MovieLens release to load.
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home`.
    download : bool, default=True
        If True, fetch and verify missing files from GroupLens. If False, raise
        :class:`FileNotFoundError` when files are missing.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        interactions : pandas.DataFrame
            One row per rating, in file order, with int64 columns ``user``, ``item``,
            ``rating`` (1 to 5) and ``timestamp`` (Unix seconds). Ids are those of the files.
        users : pandas.DataFrame
            Indexed by user id (index name ``user``), with columns ``gender`` (categorical
            ``"F"``/``"M"``), ``age`` (int: years for 100K, the bucket code for 1M),
            ``age_group`` (ordered categorical with the MovieLens-1M bucket codes 1, 18, 25,
            35, 45, 50, 56; 100K ages in years are binned onto them: under 18 -> 1, 18-24 ->
            18, 25-34 -> 25, 35-44 -> 35, 45-49 -> 45, 50-55 -> 50, 56 and over -> 56),
            ``occupation`` (categorical names; for 1M the 21 names of the README's codes
            0-20) and ``zip_code`` (string).
        items : pandas.DataFrame
            Indexed by movie id (index name ``item``), with ``title`` (str, decoded from
            latin-1), ``genres`` (list of genre names) and one int8 0/1 column per genre
            named ``genre_<name>`` (lower case, non-alphanumerics replaced by ``_``, e.g.
            ``genre_sci_fi``). For 100K also ``release_date`` (datetime, NaT when missing).
            All listed movies are included, also those without ratings. Because a
            :class:`~sklearn.utils.Bunch` is a dict, ``data.items`` is the dict method: use
            ``data["items"]`` or the alias ``data.movies`` (the same DataFrame).
        movies : pandas.DataFrame
            Alias of ``items`` that supports attribute access.
        description : str
            Source of the data and its terms of use.

    Raises
    ------
    ValueError
        If ``variant`` is not one of the known releases.
    FileNotFoundError
        If files are missing and ``download=False``.
    OSError
        If a download fails or a downloaded file does not match its checksum.

    Examples
    --------
    >>> from skadvrec.datasets import load_movielens
    >>> ml = load_movielens("100k")  # doctest: +SKIP
    >>> ml.interactions.shape  # doctest: +SKIP
    (100000, 4)
    >>> ml.users["gender"].value_counts().to_dict()  # doctest: +SKIP
    {'M': 670, 'F': 273}
    """
    if not isinstance(variant, str) or variant.lower() not in _MOVIELENS:
        raise ValueError(
            f"Unknown MovieLens variant {variant!r}; valid values are "
            f"{sorted(_MOVIELENS)}. Use load_movielens('100k') or load_movielens('1m')."
        )
    variant = variant.lower()
    spec = _MOVIELENS[variant]
    folder = _ensure_files(spec, data_home, download, f"MovieLens {variant}", "load_movielens")
    loader = _load_ml100k if variant == "100k" else _load_ml1m
    interactions, users, items = loader(folder)
    # ``items`` is shadowed by dict.items on a Bunch, so ``movies`` gives attribute access.
    return Bunch(
        interactions=interactions,
        users=users,
        items=items,
        movies=items,
        description=spec["title"] + " " + _MOVIELENS_TERMS,
    )


# ---------------------------------------------------------------------------------------------
# LightGCN-style splits (Gowalla, ...)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------

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
