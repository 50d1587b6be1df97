"""Tests for skadvrec.datasets: real-data loaders, checksummed downloads, synthetic data."""

import hashlib
import os
import shutil
import time
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

# The private modules are patched where the names are looked up: the network access
# (_fetch._urlretrieve) and the registries of URLs and checksums.
from skadvrec.datasets import (
    _fetch,
    _lightgcn,
    _movielens,
    get_data_home,
    load_lightgcn_split,
    load_movielens,
    load_movielens_features,
    make_interactions,
)

DATA_HOME = Path(
    os.environ.get("SKADVREC_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
)

ML100K_FILES = ("u.data", "u.user", "u.item", "u.genre")
ML1M_FILES = ("ratings.dat", "users.dat", "movies.dat")
GOWALLA_FILES = ("train.txt", "test.txt")


def _require(folder, names):
    missing = [n for n in names if not (DATA_HOME / folder / n).is_file()]
    if missing:
        pytest.skip(f"real data not available: {missing} missing in {DATA_HOME / folder}")


@pytest.fixture(scope="module")
def ml100k():
    _require("ml-100k", ML100K_FILES)
    return load_movielens("100k", data_home=DATA_HOME, download=False)


@pytest.fixture(scope="module")
def ml1m():
    _require("ml-1m", ML1M_FILES)
    start = time.perf_counter()
    data = load_movielens("1m", data_home=DATA_HOME, download=False)
    data["_load_seconds"] = time.perf_counter() - start
    return data


@pytest.fixture(scope="module")
def gowalla():
    _require("gowalla", GOWALLA_FILES)
    start = time.perf_counter()
    data = load_lightgcn_split("gowalla", data_home=DATA_HOME, download=False)
    data["_load_seconds"] = time.perf_counter() - start
    return data


# ---------------------------------------------------------------------------------------------
# get_data_home
# ---------------------------------------------------------------------------------------------


def test_get_data_home_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SKADVREC_DATA", str(tmp_path / "from_env"))
    assert get_data_home(tmp_path / "explicit") == tmp_path / "explicit"
    assert get_data_home(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert get_data_home() == tmp_path / "from_env"

    monkeypatch.delenv("SKADVREC_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_data_home() == tmp_path / "skadvrec_data"
    assert get_data_home("~/elsewhere") == tmp_path / "elsewhere"
    assert isinstance(get_data_home(), Path)
    assert not (tmp_path / "skadvrec_data").exists()  # resolving does not create it


def test_get_data_home_rejects_non_paths():
    with pytest.raises(ValueError, match="data_home must be a string or path-like"):
        get_data_home(42)


# ---------------------------------------------------------------------------------------------
# MovieLens on the real files
# ---------------------------------------------------------------------------------------------


def test_ml100k_counts_and_dtypes(ml100k):
    inter = ml100k.interactions
    assert list(inter.columns) == ["user", "item", "rating", "timestamp"]
    assert all(inter[c].dtype == np.int64 for c in inter.columns)
    assert inter.shape == (100_000, 4)
    assert inter["user"].nunique() == 943
    assert inter["item"].nunique() == 1682
    counts = inter["rating"].value_counts().sort_index()
    assert counts.to_dict() == {1: 6110, 2: 11370, 3: 27145, 4: 34174, 5: 21201}
    # File order: the first line of u.data is "196 242 3 881250949".
    assert inter.iloc[0].tolist() == [196, 242, 3, 881250949]

    users = ml100k.users
    assert users.index.name == "user" and len(users) == 943
    assert list(users.columns) == ["gender", "age", "age_group", "occupation", "zip_code"]
    assert isinstance(users["gender"].dtype, pd.CategoricalDtype)
    assert users["gender"].value_counts().to_dict() == {"M": 670, "F": 273}
    assert users["age"].dtype == np.int64
    assert users["occupation"].nunique() == 21
    assert "technician" in set(users["occupation"])
    assert users.loc[1, "zip_code"] == "85711"
    assert all(isinstance(z, str) for z in users["zip_code"])


def test_ml100k_age_groups_follow_ml1m_buckets(ml100k):
    users = ml100k.users
    dtype = users["age_group"].dtype
    assert isinstance(dtype, pd.CategoricalDtype) and dtype.ordered
    assert list(dtype.categories) == [1, 18, 25, 35, 45, 50, 56]
    expected = pd.cut(
        users["age"], [-np.inf, 17, 24, 34, 44, 49, 55, np.inf],
        labels=[1, 18, 25, 35, 45, 50, 56],
    )
    assert (users["age_group"].astype(int) == expected.astype(int)).all()
    assert users.loc[1, "age_group"] == 18  # 24 years old
    assert users.loc[2, "age_group"] == 50  # 53 years old


def test_ml100k_items(ml100k):
    items = ml100k["items"]
    assert ml100k.movies is items
    assert items.index.name == "item" and len(items) == 1682
    genre_cols = [c for c in items.columns if c.startswith("genre_")]
    assert len(genre_cols) == 19
    assert {"genre_unknown", "genre_children_s", "genre_film_noir", "genre_sci_fi"} <= set(
        genre_cols
    )
    assert all(items[c].dtype == np.int8 for c in genre_cols)
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc[1, ["genre_animation", "genre_children_s", "genre_comedy"]].tolist() == [
        1, 1, 1,
    ]
    # Flags and lists agree everywhere.
    assert (items[genre_cols].sum(axis=1) == items["genres"].map(len)).all()
    # latin-1 titles are decoded properly.
    assert items.loc[543, "title"] == "Misérables, Les (1995)"
    assert pd.api.types.is_datetime64_any_dtype(items["release_date"])
    assert items.loc[1, "release_date"] == pd.Timestamp("1995-01-01")
    assert items["release_date"].isna().sum() == 1  # item 267, "unknown"
    assert pd.isna(items.loc[267, "release_date"])


def test_ml1m_counts_and_dtypes(ml1m):
    assert ml1m["_load_seconds"] < 5.0
    inter = ml1m.interactions
    assert list(inter.columns) == ["user", "item", "rating", "timestamp"]
    assert all(inter[c].dtype == np.int64 for c in inter.columns)
    assert inter.shape == (1_000_209, 4)
    assert inter.iloc[0].tolist() == [1, 1193, 5, 978300760]
    assert inter["user"].nunique() == 6040
    assert inter["item"].nunique() == 3706
    assert inter["rating"].value_counts().sort_index().to_dict() == {
        1: 56174, 2: 107557, 3: 261197, 4: 348971, 5: 226310,
    }

    users = ml1m.users
    assert users.index.name == "user" and len(users) == 6040
    assert users["gender"].value_counts().to_dict() == {"M": 4331, "F": 1709}
    assert users["age_group"].value_counts().sort_index().tolist() == [
        222, 1103, 2096, 1193, 550, 496, 380,
    ]
    assert (users["age"] == users["age_group"].astype(int)).all()
    occ = users["occupation"].cat.categories
    assert len(occ) == 21
    assert occ[0] == "other or not specified"
    assert occ[1] == "academic/educator"
    assert occ[20] == "writer"
    assert users.loc[1, "occupation"] == "K-12 student"  # code 10
    assert users.loc[1, "zip_code"] == "48067"


def test_ml1m_items(ml1m):
    items = ml1m["items"]
    assert items.index.name == "item" and len(items) == 3883
    assert "release_date" not in items.columns
    genre_cols = [c for c in items.columns if c.startswith("genre_")]
    assert len(genre_cols) == 18
    assert all(items[c].dtype == np.int8 for c in genre_cols)
    assert items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert (items[genre_cols].sum(axis=1) == items["genres"].map(len)).all()
    assert items.loc[73, "title"] == "Misérables, Les (1995)"
    # Titles with ':' survive the '::' split.
    assert any(":" in t for t in items["title"])
    assert set(ml1m.interactions["item"]) <= set(items.index)


def test_movielens_description_names_terms(ml100k):
    text = ml100k.description
    assert "GroupLens" in text
    assert "Harper" in text and "Konstan" in text
    assert "redistribution" in text


def test_movielens_bad_variant():
    with pytest.raises(ValueError, match=r"Unknown MovieLens variant '20m'.*'100k', '1m'"):
        load_movielens("20m")


def test_movielens_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        load_movielens("1m", data_home=tmp_path, download=False)
    msg = str(excinfo.value)
    assert str(tmp_path / "ml-1m") in msg
    assert "ratings.dat" in msg
    assert "data_home" in msg and "SKADVREC_DATA" in msg and "download=True" in msg


def test_movielens_uses_env_var(monkeypatch, ml100k):
    monkeypatch.setenv("SKADVREC_DATA", str(DATA_HOME))
    data = load_movielens(download=False)
    assert data.interactions.shape == (100_000, 4)


# ---------------------------------------------------------------------------------------------
# LightGCN split
# ---------------------------------------------------------------------------------------------


def test_gowalla_counts(gowalla):
    assert gowalla["_load_seconds"] < 5.0
    train, test = gowalla.train, gowalla.test
    assert sp.issparse(train) and train.format == "csr" and test.format == "csr"
    assert train.shape == test.shape == (29_858, 40_981)
    assert train.dtype == np.float32 and test.dtype == np.float32
    assert train.nnz == 810_128 and test.nnz == 217_242
    assert set(np.unique(train.data)) == {1.0} and set(np.unique(test.data)) == {1.0}
    assert train.multiply(test).nnz == 0  # no train/test overlap
    assert np.all(np.diff(train.indptr) > 0) and np.all(np.diff(test.indptr) > 0)

    for frame, matrix in ((gowalla.train_df, train), (gowalla.test_df, test)):
        assert list(frame.columns) == ["user", "item"]
        assert frame["user"].dtype == np.int64 and frame["item"].dtype == np.int64
        assert len(frame) == matrix.nnz
        assert np.all(np.diff(frame["user"].to_numpy()) >= 0)  # file order, one line per user
        assert matrix[frame["user"].to_numpy(), frame["item"].to_numpy()].min() == 1.0
    assert "LightGCN" in gowalla.description and "Gowalla" in gowalla.description


def test_lightgcn_split_handles_empty_lines_and_shapes(monkeypatch, tmp_path):
    folder = tmp_path / "gowalla"
    folder.mkdir()
    # User 4 has no train items and user 5 has no test items; item 7 appears only in test.
    (folder / "train.txt").write_text("0 1 2\n1 3\n4\n5 0 1 6\n")
    (folder / "test.txt").write_text("0 3\n1 7\n4 2 \n\n5\n")
    data = load_lightgcn_split(data_home=tmp_path, download=False)
    assert data.train.shape == data.test.shape == (6, 8)
    assert data.train.nnz == 6 and data.test.nnz == 3
    assert data.train_df["user"].tolist() == [0, 0, 1, 5, 5, 5]
    assert data.train_df["item"].tolist() == [1, 2, 3, 0, 1, 6]
    assert data.test_df.to_numpy().tolist() == [[0, 3], [1, 7], [4, 2]]
    assert data.train[4].nnz == 0 and data.test[5].nnz == 0

    # A user line with no items still counts towards n_users.
    (folder / "test.txt").write_text("0 3\n9\n")
    assert load_lightgcn_split(data_home=tmp_path, download=False).train.shape == (10, 7)


def test_lightgcn_split_malformed_file(tmp_path):
    folder = tmp_path / "gowalla"
    folder.mkdir()
    (folder / "train.txt").write_text("0 1 2\n1 x\n")
    (folder / "test.txt").write_text("0 3\n")
    with pytest.raises(ValueError, match="not a valid 'user item item ...' file"):
        load_lightgcn_split(data_home=tmp_path, download=False)


def test_lightgcn_split_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown LightGCN split 'movielens'.*'gowalla'"):
        load_lightgcn_split("movielens")
    with pytest.raises(FileNotFoundError) as excinfo:
        load_lightgcn_split("gowalla", data_home=tmp_path, download=False)
    msg = str(excinfo.value)
    assert str(tmp_path / "gowalla") in msg and "train.txt" in msg
    assert "SKADVREC_DATA" in msg and "download=True" in msg


# ---------------------------------------------------------------------------------------------
# Downloads (the network is never used: the single fetch function is replaced)
# ---------------------------------------------------------------------------------------------


def _serve(monkeypatch, sources):
    """Make _fetch._urlretrieve (the only network access) copy ``sources[url]`` to the file."""
    requested = []

    def fake_urlretrieve(url, filename):
        requested.append(url)
        shutil.copyfile(sources[url], filename)

    monkeypatch.setattr(_fetch, "_urlretrieve", fake_urlretrieve)
    return requested


def _make_zip(path, folder, files):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{folder}/", "")
        for name, payload in files.items():
            zf.writestr(f"{folder}/{name}", payload)
    return path


def _leftovers(root):
    return sorted(p.name for p in root.rglob("*") if p.is_file())


FAKE_ML100K = {
    "u.data": b"1\t10\t4\t881250949\n2\t10\t3\t881250950\n1\t20\t5\t881250951\n",
    "u.user": b"1|24|M|technician|85711\n2|53|F|other|94043\n",
    "u.item": (
        b"10|Mis\xe9rables, Les (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|1|0|0"
        b"|0|0|0|0\n20|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    ),
    "u.genre": (
        b"unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\n"
        b"Documentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\n"
        b"Mystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n\n"
    ),
    "README": b"fake readme\n",
}


def test_download_movielens_real_zip(monkeypatch, tmp_path):
    _require("ml-100k", ML100K_FILES)
    payload = {n: (DATA_HOME / "ml-100k" / n).read_bytes() for n in ML100K_FILES}
    archive = _make_zip(tmp_path / "served.zip", "ml-100k", payload)
    requested = _serve(monkeypatch, {_movielens._MOVIELENS["100k"]["url"]: archive})

    home = tmp_path / "home"
    data = load_movielens("100k", data_home=home)
    assert requested == ["https://files.grouplens.org/datasets/movielens/ml-100k.zip"]
    assert sorted(_leftovers(home)) == sorted(ML100K_FILES)  # no zip or .part files left
    assert data.interactions.shape == (100_000, 4)
    assert data["items"].loc[543, "title"] == "Misérables, Les (1995)"

    # Second call finds the files and does not download again.
    load_movielens("100k", data_home=home)
    assert len(requested) == 1


def test_download_movielens_with_patched_checksums(monkeypatch, tmp_path):
    # Runs without the real data: the registry's sums are replaced by the fake files' sums.
    sums = {n: hashlib.sha256(FAKE_ML100K[n]).hexdigest() for n in ML100K_FILES}
    monkeypatch.setitem(_movielens._MOVIELENS["100k"], "files", sums)
    archive = _make_zip(tmp_path / "served.zip", "ml-100k", FAKE_ML100K)
    _serve(monkeypatch, {_movielens._MOVIELENS["100k"]["url"]: archive})

    home = tmp_path / "home"
    data = load_movielens("100k", data_home=home)
    assert sorted(_leftovers(home)) == sorted([*ML100K_FILES, "README"])
    assert data.interactions["rating"].tolist() == [4, 3, 5]
    assert data["items"].loc[10, "title"] == "Misérables, Les (1995)"
    assert data["items"].loc[10, "genres"] == ["Drama", "Musical"]
    assert pd.isna(data["items"].loc[20, "release_date"])
    assert data.users.loc[2, "age_group"] == 50


def test_download_movielens_checksum_mismatch(monkeypatch, tmp_path):
    archive = _make_zip(tmp_path / "served.zip", "ml-100k", FAKE_ML100K)
    _serve(monkeypatch, {_movielens._MOVIELENS["100k"]["url"]: archive})

    home = tmp_path / "home"
    expected = _movielens._MOVIELENS["100k"]["files"]["u.data"]
    got = hashlib.sha256(FAKE_ML100K["u.data"]).hexdigest()
    with pytest.raises(OSError, match="Checksum mismatch") as excinfo:
        load_movielens("100k", data_home=home)
    msg = str(excinfo.value)
    assert expected in msg and got in msg
    assert _leftovers(home) == []  # neither the zip nor any extracted file remains
    assert not (home / "ml-100k").exists()


def test_download_movielens_missing_member(monkeypatch, tmp_path):
    files = {n: v for n, v in FAKE_ML100K.items() if n != "u.genre"}
    archive = _make_zip(tmp_path / "served.zip", "ml-100k", files)
    _serve(monkeypatch, {_movielens._MOVIELENS["100k"]["url"]: archive})
    with pytest.raises(OSError, match="has no file 'u.genre'"):
        load_movielens("100k", data_home=tmp_path / "home")
    assert _leftovers(tmp_path / "home") == []


def test_download_network_error_is_clear(monkeypatch, tmp_path):
    calls = []

    def offline(url, filename):
        calls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(_fetch, "_urlretrieve", offline)
    with pytest.raises(OSError, match="Could not download ml-1m.zip from https://files"):
        load_movielens("1m", data_home=tmp_path)
    assert calls == [_movielens._MOVIELENS["1m"]["url"]]
    assert _leftovers(tmp_path) == []


def test_download_gowalla(monkeypatch, tmp_path):
    _require("gowalla", GOWALLA_FILES)
    base = _lightgcn._LIGHTGCN_SPLITS["gowalla"]["base_url"]
    assert base == "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/gowalla/"
    requested = _serve(
        monkeypatch, {base + n: DATA_HOME / "gowalla" / n for n in GOWALLA_FILES}
    )
    home = tmp_path / "home"
    data = load_lightgcn_split("gowalla", data_home=home)
    assert sorted(requested) == sorted(base + n for n in GOWALLA_FILES)
    assert _leftovers(home) == sorted(GOWALLA_FILES)
    assert data.train.nnz == 810_128 and data.test.nnz == 217_242


def test_download_gowalla_checksum_mismatch(monkeypatch, tmp_path):
    base = _lightgcn._LIGHTGCN_SPLITS["gowalla"]["base_url"]
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 2\n")
    _serve(monkeypatch, {base + n: bad for n in GOWALLA_FILES})
    home = tmp_path / "home"
    with pytest.raises(OSError, match="Checksum mismatch") as excinfo:
        load_lightgcn_split("gowalla", data_home=home)
    msg = str(excinfo.value)
    assert _lightgcn._LIGHTGCN_SPLITS["gowalla"]["files"]["train.txt"] in msg
    assert hashlib.sha256(b"0 1 2\n").hexdigest() in msg
    assert _leftovers(home) == []
    assert not (home / "gowalla").exists()


# ---------------------------------------------------------------------------------------------
# load_movielens_features: one interaction table with categorical side fields
# ---------------------------------------------------------------------------------------------

FEATURE_COLUMNS = ["user", "item", "rating", "timestamp", "gender", "age", "occupation", "zip",
                   "genres", "year"]
CATEGORY_FIELDS = ["gender", "age", "occupation", "zip", "year"]
ML1M_AGE_CODES = [1, 18, 25, 35, 45, 50, 56]
# Ages in years -> ML-1M bucket, chosen on both sides of every edge.
AGE_EDGE_CASES = {7: 1, 17: 1, 18: 18, 24: 18, 25: 25, 34: 25, 35: 35, 44: 35, 45: 45, 49: 45,
                  50: 50, 55: 50, 56: 56, 73: 56}


def _check_feature_table(table, interactions):
    """Contract shared by every variant: layout, dtypes, one row per rating, no missing field."""
    assert list(table.columns) == FEATURE_COLUMNS
    assert isinstance(table.index, pd.RangeIndex)
    pd.testing.assert_frame_equal(
        table[["user", "item", "rating", "timestamp"]], interactions.reset_index(drop=True)
    )
    for name in CATEGORY_FIELDS:
        assert isinstance(table[name].dtype, pd.CategoricalDtype), name
        assert (table[name].cat.codes >= 0).all(), name  # no NaN
    assert table["genres"].dtype == object
    assert table["genres"].map(type).eq(tuple).all()
    assert not table.isna().any().any()
    # Each movie has one genre tuple and one year, each user one value per user field.
    assert (table.groupby("item")["genres"].nunique() == 1).all()
    assert (table.groupby("item", observed=True)["year"].nunique() == 1).all()
    for name in ("gender", "age", "occupation", "zip"):
        assert (table.groupby("user", observed=True)[name].nunique() == 1).all(), name


def _raw_item_genres(path, genre_path, item_ids):
    """Genre names of ``item_ids`` read straight from the u.item flags (independent parser)."""
    names = [line.split("|")[0] for line in genre_path.read_text("latin-1").splitlines() if line]
    out = {}
    for line in path.read_bytes().decode("latin-1").splitlines():
        fields = line.split("|")
        if int(fields[0]) in item_ids:
            flags = fields[-len(names):]
            out[int(fields[0])] = tuple(n for n, f in zip(names, flags) if f == "1")
    return out


@pytest.fixture(scope="module")
def ml100k_features():
    _require("ml-100k", ML100K_FILES)
    return load_movielens_features("100k", data_home=DATA_HOME, download=False)


def test_features_ml100k_real(ml100k_features, ml100k):
    table = ml100k_features
    assert len(table) == 100_000 == len(ml100k.interactions)
    _check_feature_table(table, ml100k.interactions)

    folder = DATA_HOME / "ml-100k"
    raw_users = pd.read_csv(folder / "u.user", sep="|", header=None, dtype=str,
                            names=["user", "age", "gender", "occupation", "zip"])
    occupations = (folder / "u.occupation").read_text().split()
    assert list(table["gender"].cat.categories) == ["F", "M"]
    assert list(table["age"].cat.categories) == ML1M_AGE_CODES
    assert list(table["occupation"].cat.categories) == sorted(occupations)
    assert len(occupations) == 21
    zip_regions = sorted(set(raw_users["zip"].str[0]))
    assert list(table["zip"].cat.categories) == zip_regions
    assert {"T", "V"} <= set(zip_regions)  # Canadian postcodes kept as their prefix
    assert list(table["year"].cat.categories) == [
        "1920-1929", "1930-1939", "1940-1949", "1950-1959", "1960-1969", "1970-1979",
        "1980-1989", "1990-1999", "unknown",
    ]

    # Per-rating user fields agree with u.user (ages binned independently with pd.cut).
    raw_users = raw_users.set_index(raw_users["user"].astype(int))
    ages = raw_users["age"].astype(int)
    buckets = pd.cut(ages, [-np.inf, 17, 24, 34, 44, 49, 55, np.inf], labels=ML1M_AGE_CODES)
    assert (table["age"].astype(int).to_numpy()
            == buckets.astype(int).loc[table["user"]].to_numpy()).all()
    assert (table["zip"].astype(str).to_numpy()
            == raw_users["zip"].str[0].loc[table["user"]].to_numpy()).all()
    assert (table["occupation"].astype(str).to_numpy()
            == raw_users["occupation"].loc[table["user"]].to_numpy()).all()

    # Genres of hand-checked movies, against the u.item flags.
    expected = {
        1: ("Animation", "Children's", "Comedy"),  # Toy Story
        2: ("Action", "Adventure", "Thriller"),  # GoldenEye
        50: ("Action", "Adventure", "Romance", "Sci-Fi", "War"),  # Star Wars
        242: ("Comedy",),  # Kolya
        267: ("unknown",),  # the movie without title or date
        302: ("Crime", "Film-Noir", "Mystery", "Thriller"),  # L.A. Confidential
    }
    assert _raw_item_genres(folder / "u.item", folder / "u.genre", set(expected)) == expected
    first = table.drop_duplicates("item").set_index("item")
    assert {i: first.loc[i, "genres"] for i in expected} == expected
    assert table.loc[0, "genres"] == ("Comedy",)  # first rating: user 196, movie 242

    # Release years: decades, and the movie without a release date is "unknown".
    assert first.loc[50, "year"] == "1970-1979" and first.loc[1, "year"] == "1990-1999"
    assert first.loc[267, "year"] == "unknown"
    assert (table["year"] == "unknown").sum() == (table["item"] == 267).sum() > 0


def test_features_ml1m_real(ml1m):
    table = load_movielens_features("1m", data_home=DATA_HOME, download=False)
    assert len(table) == 1_000_209
    _check_feature_table(table, ml1m.interactions)
    assert list(table["age"].cat.categories) == ML1M_AGE_CODES
    # The 1M age codes are kept unchanged.
    codes = ml1m.users["age"].loc[table["user"]].to_numpy()
    assert (table["age"].astype(int).to_numpy() == codes).all()
    assert list(table["occupation"].cat.categories) == list(
        ml1m.users["occupation"].cat.categories
    )
    assert list(table["zip"].cat.categories) == list("0123456789")
    first = table.drop_duplicates("item").set_index("item")
    assert first.loc[1, "genres"] == ("Animation", "Children's", "Comedy")
    assert first.loc[2858, "genres"] == ("Comedy", "Drama")  # American Beauty
    assert first.loc[1193, "year"] == "1970-1979"  # One Flew Over the Cuckoo's Nest (1975)
    assert first.loc[2858, "year"] == "1990-1999"
    assert table["year"].cat.categories[-1] == "unknown"
    assert (table["year"] == "unknown").sum() == 0  # every 1M title ends with its year


def _fake_ml100k(ages, zips):
    """FAKE_ML100K with one user per age (ids 1, 2, ...), each rating movies 10 and 20."""
    users = "".join(
        f"{u}|{age}|{'MF'[u % 2]}|{'writer' if u % 3 else 'none'}|{z}\n"
        for u, (age, z) in enumerate(zip(ages, zips), start=1)
    )
    data = "".join(
        f"{u}\t{i}\t{1 + (u + i) % 5}\t{881250949 + u}\n"
        for u in range(1, len(ages) + 1) for i in (10, 20)
    )
    return {**FAKE_ML100K, "u.user": users.encode(), "u.data": data.encode()}


def _load_fake(monkeypatch, tmp_path, files, folder="ml-100k", variant="100k", **kwargs):
    """Serve ``files`` as the GroupLens zip (checksums patched) and load the feature table."""
    names = [n for n in files if n != "README"]
    sums = {n: hashlib.sha256(files[n]).hexdigest() for n in names}
    monkeypatch.setitem(_movielens._MOVIELENS[variant], "files", sums)
    archive = _make_zip(tmp_path / f"{folder}.zip", folder, files)
    _serve(monkeypatch, {_movielens._MOVIELENS[variant]["url"]: archive})
    return load_movielens_features(variant, data_home=tmp_path / "home", **kwargs)


def test_features_fake_ml100k(monkeypatch, tmp_path):
    ages = list(AGE_EDGE_CASES)
    zips = ["85711", "T8H1N", "0213", "9", *["55105"] * (len(ages) - 4)]
    files = _fake_ml100k(ages, zips)
    table = _load_fake(monkeypatch, tmp_path, files)
    inter = load_movielens("100k", data_home=tmp_path / "home", download=False).interactions
    assert len(table) == 2 * len(ages)
    _check_feature_table(table, inter)

    per_user = table.drop_duplicates("user").set_index("user")
    got = dict(zip(ages, per_user["age"].astype(int).loc[range(1, len(ages) + 1)]))
    assert got == AGE_EDGE_CASES
    assert list(table["age"].cat.categories) == ML1M_AGE_CODES
    assert list(per_user["zip"].iloc[:4]) == ["8", "T", "0", "9"]
    assert list(table["zip"].cat.categories) == ["0", "5", "8", "9", "T"]
    assert list(table["gender"].cat.categories) == ["F", "M"]
    assert list(table["occupation"].cat.categories) == ["none", "writer"]

    per_item = table.drop_duplicates("item").set_index("item")
    assert per_item.loc[10, "genres"] == ("Drama", "Musical")
    assert per_item.loc[20, "genres"] == ("unknown",)
    assert per_item.loc[10, "year"] == "1990-1999" and per_item.loc[20, "year"] == "unknown"
    assert list(table["year"].cat.categories) == ["1990-1999", "unknown"]


def test_features_bins_and_prefix_options(monkeypatch, tmp_path):
    ages = [17, 18, 20, 21, 59, 60]
    files = _fake_ml100k(ages, ["85711", "T8H1N", "0213", "9", "55105", "55105-1234"])
    table = _load_fake(monkeypatch, tmp_path, files, age_bins=[0, 21, 60],
                       year_bins=(1990, 1996), zip_prefix_len=3)
    per_user = table.drop_duplicates("user").set_index("user")
    assert per_user["age"].astype(int).tolist() == [0, 0, 0, 21, 21, 60]
    assert list(table["age"].cat.categories) == [0, 21, 60]
    assert per_user["zip"].tolist() == ["857", "T8H", "021", "9", "551", "551"]
    assert list(table["year"].cat.categories) == ["<1990", "1990-1995", ">=1996", "unknown"]
    assert set(table.loc[table["item"] == 10, "year"]) == {"1990-1995"}

    # Width 1: one bucket per year; the whole zip code when the prefix is longer.
    table = load_movielens_features("100k", data_home=tmp_path / "home", download=False,
                                    year_bins=1, zip_prefix_len=20)
    assert list(table["year"].cat.categories) == ["1995", "unknown"]
    assert table.drop_duplicates("user")["zip"].tolist()[-1] == "55105-1234"


FAKE_ML1M = {
    "ratings.dat": b"1::1::5::978300760\n2::2::3::978300761\n3::3::4::978300762\n"
                   b"4::1::1::978300763\n5::2::2::978300764\n6::3::5::978300765\n"
                   b"7::1::4::978300766\n",
    "users.dat": b"1::F::1::10::48067\n2::M::18::0::70072\n3::M::25::20::5\n"
                 b"4::F::35::1::98107-2117\n5::M::45::12::T8H1N\n6::F::50::7::02138\n"
                 b"7::M::56::16::94043\n",
    "movies.dat": b"1::Toy Story (1995)::Animation|Children's|Comedy\n"
                  b"2::Star Wars: Episode IV - A New Hope (1977)::War|Action|Sci-Fi\n"
                  b"3::Untitled::Drama\n",
    "README": b"fake readme\n",
}


def test_features_fake_ml1m_keeps_age_codes(monkeypatch, tmp_path):
    table = _load_fake(monkeypatch, tmp_path, FAKE_ML1M, folder="ml-1m", variant="1m")
    inter = load_movielens("1m", data_home=tmp_path / "home", download=False).interactions
    _check_feature_table(table, inter)
    assert table["age"].astype(int).tolist() == ML1M_AGE_CODES  # users 1..7, one code each
    assert list(table["age"].cat.categories) == ML1M_AGE_CODES
    assert table["occupation"].astype(str).tolist()[:3] == [
        "K-12 student", "other or not specified", "writer",
    ]
    assert len(table["occupation"].cat.categories) == 21
    assert table["zip"].astype(str).tolist() == ["4", "7", "5", "9", "T", "0", "9"]
    per_item = table.drop_duplicates("item").set_index("item")
    assert per_item.loc[2, "genres"] == ("Action", "Sci-Fi", "War")  # README order
    assert per_item["year"].astype(str).to_dict() == {
        1: "1990-1999", 2: "1970-1979", 3: "unknown",
    }

    # Merging 1M buckets works; splitting them is refused.
    merged = load_movielens_features("1m", data_home=tmp_path / "home", download=False,
                                     age_bins=(1, 25, 45))
    assert merged["age"].astype(int).tolist() == [1, 1, 25, 25, 45, 45, 45]
    with pytest.raises(ValueError, match=r"split the MovieLens-1M age buckets at \[20\]"):
        load_movielens_features("1m", data_home=tmp_path / "home", download=False,
                                age_bins=(1, 20, 25))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "20m"}, r"Unknown MovieLens variant '20m'.*load_movielens_features\("),
        ({"age_bins": (18, 18, 25)}, "age_bins must be strictly increasing"),
        ({"age_bins": (1.0, 18.5)}, "age_bins must be a non-empty sequence of integers"),
        ({"age_bins": []}, "age_bins must be a non-empty sequence of integers"),
        ({"age_bins": "1,18"}, "age_bins must be a non-empty sequence of integers"),
        ({"year_bins": 0}, "year_bins must be >= 1"),
        ({"year_bins": 2.5}, "year_bins must be a positive integer"),
        ({"year_bins": True}, "year_bins must be a positive integer"),
        ({"year_bins": (1990, 1980)}, "year_bins must be strictly increasing"),
        ({"zip_prefix_len": 0}, "zip_prefix_len must be an integer >= 1"),
        ({"zip_prefix_len": True}, "zip_prefix_len must be an integer >= 1"),
        ({"zip_prefix_len": 1.5}, "zip_prefix_len must be an integer >= 1"),
    ],
)
def test_features_validation_before_any_file_access(tmp_path, kwargs, match):
    # The folder is empty: a FileNotFoundError would mean the check came too late.
    with pytest.raises(ValueError, match=match):
        load_movielens_features(data_home=tmp_path, download=False, **kwargs)


def test_features_missing_files_and_unlisted_ids(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_movielens_features\(data_home=\.\.\.\)"):
        load_movielens_features("100k", data_home=tmp_path, download=False)

    folder = tmp_path / "ml-100k"
    folder.mkdir()
    files = _fake_ml100k([30, 40], ["85711", "94043"])
    files["u.data"] += b"99\t10\t4\t881250999\n"
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    with pytest.raises(ValueError, match=r"1 user id\(s\) not listed in u.user, e.g. \[99\]"):
        load_movielens_features("100k", data_home=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------
# make_interactions
# ---------------------------------------------------------------------------------------------


def _group_predictability(data, seed=0):
    y = data.sensitive_features["group"].cat.codes.to_numpy()
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_score(
        LogisticRegression(max_iter=1000), data.X, y, cv=cv, scoring="balanced_accuracy"
    )
    return scores.mean()


def test_make_interactions_output_structure():
    data = make_interactions(n_users=120, n_items=80, random_state=0, return_frame=True)
    X = data.X
    assert sp.issparse(X) and X.format == "csr"
    assert X.shape == (120, 80) and X.dtype == np.float32
    assert set(np.unique(X.data)) == {1.0}
    assert X.has_sorted_indices

    sf = data.sensitive_features
    assert len(sf) == 120 and list(sf.columns) == ["group", "age"]
    assert isinstance(sf["group"].dtype, pd.CategoricalDtype)
    assert list(sf["group"].cat.categories) == ["g0", "g1"]
    assert sf["age"].dtype == np.float64

    inter = data.interactions
    assert list(inter.columns) == ["user", "item", "rating", "timestamp"]
    assert all(inter[c].dtype == np.int64 for c in inter.columns)
    assert len(inter) == X.nnz
    assert not inter.duplicated(["user", "item"]).any()
    rebuilt = sp.csr_matrix(
        (np.ones(len(inter)), (inter["user"], inter["item"])), shape=X.shape
    )
    assert (rebuilt != X).nnz == 0
    assert set(inter["rating"]) == {1, 2, 3, 4, 5}
    assert (inter.groupby("user")["timestamp"].diff().dropna() > 0).all()
    assert "description" in data and "make_interactions" in data.description

    assert "interactions" not in make_interactions(n_users=20, n_items=10, random_state=0)


def test_make_interactions_reproducible():
    a = make_interactions(random_state=7, return_frame=True)
    b = make_interactions(random_state=7, return_frame=True)
    c = make_interactions(random_state=8)
    assert (a.X != b.X).nnz == 0
    pd.testing.assert_frame_equal(a.sensitive_features, b.sensitive_features)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    assert (a.X != c.X).nnz > 0
    rng = np.random.RandomState(3)
    d = make_interactions(random_state=rng)
    assert (d.X != make_interactions(random_state=np.random.RandomState(3)).X).nnz == 0


@pytest.mark.parametrize("min_interactions", [5, 20])
def test_make_interactions_min_interactions(min_interactions):
    data = make_interactions(
        n_users=300, n_items=100, density=0.02, activity_skew=2.0,
        min_interactions=min_interactions, random_state=0,
    )
    assert np.asarray(data.X.sum(axis=1)).min() >= min_interactions


@pytest.mark.parametrize("density", [0.02, 0.05, 0.2])
def test_make_interactions_density(density):
    data = make_interactions(n_users=500, n_items=200, density=density, random_state=1,
                             min_interactions=1)
    realised = data.X.nnz / (500 * 200)
    assert abs(realised - density) <= 0.3 * density


def test_make_interactions_activity_skew():
    flat = make_interactions(activity_skew=0.0, random_state=0)
    rows = np.diff(flat.X.indptr)
    assert rows.min() == rows.max() == 15  # 0.05 * 300
    skewed = make_interactions(activity_skew=1.5, random_state=0)
    assert np.diff(skewed.X.indptr).std() > 5


def test_make_interactions_group_signal():
    strong = make_interactions(attribute_signal=2.0, random_state=0)
    none = make_interactions(attribute_signal=0.0, random_state=0)
    assert _group_predictability(strong) > 0.7
    assert _group_predictability(none) < 0.6

    # Age follows the group only when there is a signal.
    def age_gap(data):
        means = data.sensitive_features.groupby("group", observed=True)["age"].mean()
        return means["g1"] - means["g0"]

    assert age_gap(strong) > 10
    assert abs(age_gap(none)) < 4


def test_make_interactions_group_weights():
    data = make_interactions(n_users=2000, n_items=50, n_groups=3, group_weights=[1, 1, 2],
                             random_state=0)
    shares = data.sensitive_features["group"].value_counts(normalize=True)
    assert list(data.sensitive_features["group"].cat.categories) == ["g0", "g1", "g2"]
    assert abs(shares["g2"] - 0.5) < 0.05 and abs(shares["g0"] - 0.25) < 0.05


def test_make_interactions_popularity_skew():
    def top_decile_share(skew):
        X = make_interactions(popularity_skew=skew, random_state=0).X
        counts = np.sort(np.asarray(X.sum(axis=0)).ravel())[::-1]
        return counts[: len(counts) // 10].sum() / counts.sum()

    uniform, skewed = top_decile_share(0.0), top_decile_share(1.5)
    assert skewed > uniform + 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_users": 0}, "n_users must be >= 1"),
        ({"n_items": 2.5}, "n_items must be an integer"),
        ({"density": 0.0}, r"density must be in \(0, 1\]"),
        ({"density": 1.5}, r"density must be in \(0, 1\]"),
        ({"n_factors": 0}, "n_factors must be >= 1"),
        ({"n_groups": 0}, "n_groups must be >= 1"),
        ({"group_weights": [1, 2, 3]}, "group_weights must have one entry per group"),
        ({"group_weights": [0, 0]}, "sum to a positive value"),
        ({"group_weights": [1, -1]}, "non-negative"),
        ({"popularity_skew": -1}, "popularity_skew must be a finite number >= 0"),
        ({"attribute_signal": np.nan}, "attribute_signal must be a finite number >= 0"),
        ({"activity_skew": "big"}, "activity_skew must be a real number"),
        ({"min_interactions": 301}, r"min_interactions must be >= 0 and <= 300"),
        ({"min_interactions": -1}, "min_interactions must be >= 0"),
    ],
)
def test_make_interactions_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_interactions(**kwargs)


def test_make_interactions_edge_cases():
    full = make_interactions(n_users=10, n_items=6, density=1.0, random_state=0)
    assert full.X.nnz == 60
    single = make_interactions(n_users=5, n_items=1, n_groups=1, min_interactions=1,
                               random_state=0, return_frame=True)
    assert single.X.nnz == 5 and list(single.sensitive_features["group"].unique()) == ["g0"]
    sparse_users = make_interactions(n_users=50, n_items=40, density=0.01, min_interactions=0,
                                     random_state=0, return_frame=True)
    assert len(sparse_users.interactions) == sparse_users.X.nnz
