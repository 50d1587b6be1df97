"""MovieLens 100K / 1M: parsers of the GroupLens files and the two public loaders.

:func:`load_movielens` returns the ratings and the user and movie tables separately;
:func:`load_movielens_features` joins them into one interaction table with categorical side
fields, the input of the factorization-machine family.
"""

from __future__ import annotations

import itertools
import numbers
import re

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._fetch import _ensure_files, _parse_error

__all__ = ["load_movielens", "load_movielens_features"]

_MOVIELENS_TERMS = (
    "MovieLens data (c) GroupLens Research, University of Minnesota. Terms of use: research "
    "use only (no commercial use without permission); no redistribution without permission; "
    "users may not be identified; publications must cite F. Maxwell Harper and Joseph A. "
    "Konstan (2015), 'The MovieLens Datasets: History and Context', ACM Transactions on "
    "Interactive Intelligent Systems (TiiS) 5(4):19. See the README in the data folder."
)

# Where each release lives and the SHA-256 of every file the loaders read. The sums were
# computed from copies verified byte-identical to the official releases. ``extra_files`` are
# extracted next to the data for its terms of use; documentation only, not checksummed.
_MOVIELENS = {
    "100k": {
        "folder": "ml-100k",
        "extra_files": ("README",),
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
        "extra_files": ("README",),
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


def _check_variant(variant, loader):
    """Return the normalised variant name and its registry entry."""
    if not isinstance(variant, str) or variant.lower() not in _MOVIELENS:
        raise ValueError(
            f"Unknown MovieLens variant {variant!r}; valid values are "
            f"{sorted(_MOVIELENS)}. Use {loader}('100k') or {loader}('1m')."
        )
    variant = variant.lower()
    return variant, _MOVIELENS[variant]


def _read_movielens(variant, spec, data_home, download, loader):
    """Make sure the files are there (downloading them if allowed), then parse them."""
    folder = _ensure_files(spec, data_home, download, f"MovieLens {variant}", loader)
    parse = _load_ml100k if variant == "100k" else _load_ml1m
    try:
        return parse(folder)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise _parse_error(exc, folder, f"MovieLens {variant}", loader) from exc


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
    variant, spec = _check_variant(variant, "load_movielens")
    interactions, users, items = _read_movielens(variant, spec, data_home, download,
                                                 "load_movielens")
    # ``items`` is shadowed by dict.items on a Bunch, so ``movies`` gives attribute access.
    return Bunch(
        interactions=interactions,
        users=users,
        items=items,
        movies=items,
        description=spec["title"] + " " + _MOVIELENS_TERMS,
    )


# ---------------------------------------------------------------------------------------------
# One interaction table with categorical side fields (input of the FM family)
# ---------------------------------------------------------------------------------------------

_UNKNOWN_YEAR = "unknown"
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")  # ML-1M titles end with the release year


def _check_bins(bins, name, example):
    """Return ``bins`` as a strictly increasing, non-empty 1-D int64 array, or raise."""
    arr = None if isinstance(bins, (str, bytes)) else np.asarray(bins)
    if arr is None or arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be a non-empty sequence of integers, got {bins!r}; pass for "
            f"example {name}={example}."
        )
    if np.any(np.diff(arr) <= 0):
        raise ValueError(
            f"{name} must be strictly increasing, got {arr.tolist()}; pass for example "
            f"{name}={example}."
        )
    return arr.astype(np.int64)


def _bin_ages(ages, bins, variant):
    """Bucket of each age: the largest ``bins[j]`` with ``bins[j] <= age`` (else ``bins[0]``)."""
    if variant == "1m":
        stray = sorted(set(bins[1:].tolist()) - set(_AGE_CODES))
        if stray:
            raise ValueError(
                f"age_bins {bins.tolist()} split the MovieLens-1M age buckets at {stray}: "
                f"ML-1M only records the bucket codes {list(_AGE_CODES)}, so for variant='1m' "
                "every value of age_bins after the first must be one of these codes (merging "
                "buckets is possible, splitting them is not)."
            )
    labels = bins[np.searchsorted(bins[1:], np.asarray(ages), side="right")]
    return pd.Categorical(labels, categories=bins.tolist())


def _bin_years(years, year_bins):
    """Release-year bucket of each movie (``years`` is float, NaN when unknown)."""
    is_real = isinstance(year_bins, numbers.Real)
    if isinstance(year_bins, (bool, np.bool_)) or (
        is_real and not isinstance(year_bins, numbers.Integral)
    ):
        raise ValueError(
            f"year_bins must be a positive integer (bucket width in years) or an increasing "
            f"sequence of integer years, got {year_bins!r}; pass for example year_bins=10."
        )
    years = np.asarray(years, dtype=float)
    known = ~np.isnan(years)
    year = years[known].astype(np.int64)
    if isinstance(year_bins, numbers.Integral):
        width = int(year_bins)
        if width < 1:
            raise ValueError(
                f"year_bins must be >= 1 when it is a bucket width, got {width}; pass for "
                "example year_bins=10 for decades."
            )
        start = year // width * width
        first = int(start.min()) if start.size else 0
        starts = range(first, int(start.max()) + 1 if start.size else 0, width)
        names = [str(s) if width == 1 else f"{s}-{s + width - 1}" for s in starts]
        position = (start - first) // width
    else:
        edges = _check_bins(year_bins, "year_bins", "(1960, 1980, 1990)").tolist()
        names = [f"<{edges[0]}"]
        names += [str(a) if b - a == 1 else f"{a}-{b - 1}" for a, b in itertools.pairwise(edges)]
        names.append(f">={edges[-1]}")
        position = np.searchsorted(edges, year, side="right")
    codes = np.full(years.shape[0], len(names), dtype=np.int64)  # "unknown" comes last
    codes[known] = position
    return pd.Categorical.from_codes(codes, categories=[*names, _UNKNOWN_YEAR])


def _release_years(variant, items):
    """Release year of each listed movie as floats, NaN when unknown."""
    if variant == "100k":
        return items["release_date"].dt.year.to_numpy(dtype=float, na_value=np.nan)
    found = items["title"].str.extract(_TITLE_YEAR, expand=False)
    return pd.to_numeric(found, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _row_positions(index, ids, what, source):
    """Row of ``index`` holding each id of ``ids``; every id must be listed."""
    position = index.get_indexer(ids)
    if np.any(position < 0):
        unknown = np.unique(np.asarray(ids)[position < 0])
        raise ValueError(
            f"The ratings refer to {unknown.size} {what} id(s) not listed in {source}, e.g. "
            f"{unknown[:5].tolist()}; the files are not from the same MovieLens release. "
            "Replace the data folder with an unmodified copy."
        )
    return position


def _take(categorical, position):
    """``categorical[position]`` as a new Categorical with the same categories."""
    codes = np.asarray(categorical.codes)[position]
    return pd.Categorical.from_codes(codes, dtype=categorical.dtype)


def load_movielens_features(
    variant="100k",
    *,
    data_home=None,
    download=True,
    age_bins=(1, 18, 25, 35, 45, 50, 56),
    year_bins=10,
    zip_prefix_len=1,
):
    """Load MovieLens ratings as one table with categorical user and movie fields.

    One row per rating, in file order, with the rating's ids, value and time and the
    categorical fields of its user and its movie. This is the input ``X`` of the
    factorization-machine family (FM, AdvFM, AAFM): every column other than ``user``,
    ``item``, ``rating`` and ``timestamp`` is a feature field. The files are those of
    :func:`load_movielens` (same folder, download and checksum rules).

    Field contract: a single-valued categorical field is a column of pandas ``category``
    dtype whose categories are the field's full vocabulary (also values no row takes, so
    that the vocabulary does not depend on which rows are kept); **a multi-valued
    categorical field is a column of tuples** (object dtype), each tuple holding the values
    of that row, possibly none. No field has missing values: what is unknown has its own
    category.

    Parameters
    ----------
    variant : {"100k", "1m"}, default="100k"
        Which MovieLens release to load.
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home`.
    download : bool, default=True
        If True, fetch and verify missing files from GroupLens. If False, raise
        :class:`FileNotFoundError` when files are missing.
    age_bins : sequence of int, default=(1, 18, 25, 35, 45, 50, 56)
        Strictly increasing age bucket labels, each also the lowest age of its bucket: an
        age goes to the largest value that does not exceed it, and ages below
        ``age_bins[1]`` go to the first bucket, labelled ``age_bins[0]``. The default is
        the MovieLens-1M coding (under 18 -> 1, 18-24 -> 18, 25-34 -> 25, 35-44 -> 35,
        45-49 -> 45, 50-55 -> 50, 56 and over -> 56), so 100K ages in years get the 1M
        codes and 1M codes are kept unchanged. As 1M only records the codes, for
        ``variant="1m"`` every value after the first must be a 1M code (buckets can be
        merged, e.g. ``(1, 25, 45)``, not split).
    year_bins : int or sequence of int, default=10
        Release-year buckets. An int ``w`` gives buckets of ``w`` years starting at
        multiples of ``w``, labelled ``"1990-1999"`` for ``w=10`` (``"1995"`` for ``w=1``),
        from the bucket of the earliest to that of the latest year among the listed movies.
        A strictly increasing sequence of years ``(e1, ..., ek)`` gives the buckets
        ``"<e1"``, ``"e1-(e2-1)"``, ..., ``">=ek"``. Movies without a release year are in
        the last category, ``"unknown"`` (always present).
    zip_prefix_len : int, default=1
        Number of leading characters of the zip code kept, >= 1 (1 gives the US zip
        region). Non-numeric codes (Canadian postcodes in 100K) are kept as their prefix
        too, and codes shorter than the prefix whole.

    Returns
    -------
    table : pandas.DataFrame
        One row per rating (``RangeIndex``, file order) with the columns below.

        ``user``, ``item``, ``rating``, ``timestamp`` : int64
            As in ``load_movielens(variant).interactions``.
        ``gender`` : category
            ``"F"`` or ``"M"``.
        ``age`` : category
            Age bucket label (int) from ``age_bins``; categories are ``list(age_bins)``.
        ``occupation`` : category
            Occupation name; for 100K the 21 names of ``u.user`` (sorted), for 1M the 21
            names of the README's codes 0-20 (in code order).
        ``zip`` : category
            The first ``zip_prefix_len`` characters of the zip code; categories are the
            sorted prefixes of the listed users.
        ``genres`` : object, tuples of str
            Multi-valued: the movie's genre names in the order of the ``genre_*`` columns
            of :func:`load_movielens` (100K: ``u.genre``, including ``"unknown"``; 1M: the
            README order), e.g. ``("Animation", "Children's", "Comedy")``.
        ``year`` : category
            Release-year bucket from ``year_bins``. For 100K the year of the
            ``release_date`` field of ``u.item`` (missing for one movie), for 1M the year
            in parentheses that ends the title; ``"unknown"`` when there is none.

    Raises
    ------
    ValueError
        If ``variant`` is unknown, a bins or prefix argument is invalid, or the files
        disagree (a rating of a user or movie that is not listed).
    FileNotFoundError
        If files are missing and ``download=False``.
    OSError
        If a download fails or a downloaded file does not match its checksum.

    See Also
    --------
    load_movielens : The ratings, users and movies as separate tables.

    Notes
    -----
    The data is (c) GroupLens Research and licensed for research use only, without
    redistribution; publications must cite Harper & Konstan (2015). See the
    ``description`` field returned by :func:`load_movielens`.

    Examples
    --------
    >>> from skadvrec.datasets import load_movielens_features
    >>> X = load_movielens_features("100k")  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (100000, 10)
    >>> X[["user", "item", "gender", "age", "zip", "year"]].head(3)  # doctest: +SKIP
       user  item gender age zip       year
    0   196   242      M  45   5  1990-1999
    1   186   302      F  35   0  1990-1999
    2    22   377      M  25   4  1990-1999
    >>> X.loc[1, "genres"]  # doctest: +SKIP
    ('Crime', 'Film-Noir', 'Mystery', 'Thriller')
    """
    variant, spec = _check_variant(variant, "load_movielens_features")
    age_bins = _check_bins(age_bins, "age_bins", "(1, 18, 25, 35, 45, 50, 56)")
    if (
        isinstance(zip_prefix_len, (bool, np.bool_))
        or not isinstance(zip_prefix_len, numbers.Integral)
        or zip_prefix_len < 1
    ):
        raise ValueError(
            f"zip_prefix_len must be an integer >= 1, got {zip_prefix_len!r}; pass for "
            "example zip_prefix_len=1 for the zip region or 5 for the whole US zip code."
        )
    _bin_years([], year_bins)  # validate before reading or downloading anything
    if variant == "1m":
        _bin_ages([], age_bins, variant)

    interactions, users, items = _read_movielens(
        variant, spec, data_home, download, "load_movielens_features"
    )
    user_file, item_file = ("u.user", "u.item") if variant == "100k" else (
        "users.dat", "movies.dat"
    )
    user_row = _row_positions(users.index, interactions["user"], "user", user_file)
    item_row = _row_positions(items.index, interactions["item"], "movie", item_file)

    zips = users["zip_code"].astype(str).str.slice(0, int(zip_prefix_len))
    user_fields = {
        "gender": users["gender"].array,
        "age": _bin_ages(users["age"].to_numpy(), age_bins, variant),
        "occupation": users["occupation"].array,
        "zip": pd.Categorical(zips.to_numpy(dtype=object)),
    }
    genres = np.empty(len(items), dtype=object)
    genres[:] = [tuple(g) for g in items["genres"]]
    year = _bin_years(_release_years(variant, items), year_bins)

    table = {name: interactions[name].to_numpy() for name in
             ("user", "item", "rating", "timestamp")}
    for name, field in user_fields.items():
        if np.any(np.asarray(field.codes) < 0):
            raise ValueError(
                f"{user_file} has {name} values outside {list(field.categories)}; the file "
                "is not the original MovieLens one. Replace it with an unmodified copy."
            )
        table[name] = _take(field, user_row)
    table["genres"] = pd.Series(genres[item_row], dtype=object)
    table["year"] = _take(year, item_row)
    return pd.DataFrame(table)
