"""Warnings point at the caller's line and are not repeated per candidate and fold."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from skadvrec import _warnings
from skadvrec.linear import EASE


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 300
    return pd.DataFrame({"user": rng.integers(0, 200, n),
                         "item": rng.integers(0, 50, n)}).drop_duplicates()


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(_warnings, "_SEEN", set())


def _search(table):
    gs = GridSearchCV(EASE(), {"l2": [1.0, 10.0, 100.0]},
                      cv=KFold(3, shuffle=True, random_state=0))
    gs.fit(table)  # the line every warning must name
    return gs


def _kinds(records):
    return sorted({_warnings._DIGITS.sub("#", str(r.message)) for r in records})


def test_search_warns_once_per_kind_at_the_callers_line(table):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")
        _search(table)
    assert rec, "the table has users that only appear in a test fold: a warning is expected"
    # every kind once, although each of the 9 candidate/fold fits meets it
    assert len(rec) == len(_kinds(rec))
    for r in rec:
        assert r.filename == __file__, r.filename
        assert r.lineno == _search.__code__.co_firstlineno + 3


def test_always_filter_shows_every_occurrence(table):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _search(table)
    # 3 candidates × 3 folds (+ the refit scores nothing): repeated kinds are all shown
    assert len(rec) > len(_kinds(rec))


def test_error_and_ignore_filters_are_honoured(table):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = EASE().fit(table.iloc[:150])
        with pytest.raises(UserWarning, match="unseen in fit|not seen in fit"):
            model.score(table.iloc[150:])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("ignore")
        _search(table)
    assert rec == []


def test_a_new_call_site_warns_again(table):
    model = EASE().fit(table.iloc[:150])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")
        model.score(table.iloc[150:])
        model.score(table.iloc[150:])  # same kind, another line: shown again
        for _ in range(3):
            model.score(table.iloc[150:])  # one line, three calls: shown once
    lines = [r.lineno for r in rec if "not seen in fit" in str(r.message)]
    assert len(lines) == 3 and len(set(lines)) == 3
