"""Categorical fields of an interaction table as integer codes into one embedding table.

Every value of every field seen in the training rows gets one row of a shared embedding table
(row 0 is the *absent* row: padding of a multi-valued field, and the **unknown bucket** of a
value not seen in training, whose embedding and weight are fixed at zero, so that an unknown
value adds nothing to a score). A single-valued field is one code per table row; a
multi-valued field (a column of tuples) is a zero-padded block of codes, mean-pooled by the
model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from .._data import ITEM, USER
from ..metrics.feature_fairness import explode_field, is_multi_valued

__all__ = ["check_field_columns", "FieldEncoder"]

_CATEGORICAL_HELP = ("FM fields are categorical: strings, integers, booleans, a pandas "
                     "'category' column, or tuples of such values for a multi-valued field")


_SCALARS = (str, bytes, bool, int, np.integer, np.bool_)


def _check_scalars(col, name):
    """Reject values that are not categorical scalars (floats, containers, ...)."""
    values = col.to_numpy()
    if pdt.infer_dtype(values, skipna=False) in ("string", "integer", "boolean", "bytes"):
        return
    ok = np.fromiter((isinstance(v, _SCALARS) for v in values), bool, len(values))
    if not ok.all():
        example = values[np.flatnonzero(~ok)[0]]
        raise ValueError(f"field {name!r} holds a {type(example).__name__} value "
                         f"({example!r}); {_CATEGORICAL_HELP}. Bin continuous values into "
                         "categories first (pandas.cut / qcut).")


def check_field_columns(table, fields, *, fit=True):
    """Check the field columns of ``table``; return the names of the multi-valued ones.

    A field must be categorical (see the module docstring), have no missing value and, in the
    training table (``fit=True``), take at least two values (``user`` and ``item`` excepted).
    """
    multi = []
    for name in fields:
        col = table[name]
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            if col.isna().any():
                raise ValueError(f"field {name!r} has {int(col.isna().sum())} missing value(s); "
                                 "give them a category of their own, e.g. "
                                 f"X[{name!r}] = X[{name!r}].cat.add_categories('unknown')"
                                 ".fillna('unknown').")
        elif pdt.is_bool_dtype(dtype) or pdt.is_integer_dtype(dtype) or pdt.is_string_dtype(
                dtype) and dtype != object:
            if col.isna().any():
                raise ValueError(f"field {name!r} has {int(col.isna().sum())} missing value(s); "
                                 f"fill them with a value of their own, e.g. "
                                 f"X[{name!r}].fillna('unknown').")
        elif dtype == object:
            if col.isna().any():
                raise ValueError(f"field {name!r} has {int(col.isna().sum())} missing value(s) "
                                 "(None / NaN); fill them with a value of their own, e.g. "
                                 f"X[{name!r}].fillna('unknown'), or () for a multi-valued "
                                 "field.")
            try:
                is_multi = is_multi_valued(col)
            except ValueError as exc:
                raise ValueError(f"{exc} {_CATEGORICAL_HELP}.") from None
            if is_multi:
                _, values = explode_field(col)
                inner = pd.Series(values, dtype=object)
                if len(inner) and inner.isna().any():
                    raise ValueError(f"multi-valued field {name!r} has missing values inside "
                                     "its tuples; drop them from the tuples.")
                _check_scalars(inner, name)
                multi.append(name)
            else:
                _check_scalars(col, name)
        elif pdt.is_float_dtype(dtype):
            raise ValueError(f"field {name!r} is continuous (dtype {dtype}); {_CATEGORICAL_HELP}"
                             ". Bin it into categories first (pandas.cut / qcut), or cast "
                             "integer-valued codes to int.")
        else:
            raise ValueError(f"field {name!r} has an unsupported dtype {dtype}; "
                             f"{_CATEGORICAL_HELP}. Convert it (a date: bin it into periods, "
                             "e.g. X[col].dt.year.astype(str)).")
        if fit and name not in (USER, ITEM):
            _, values = explode_field(col)
            uniques = pd.unique(pd.Series(values, dtype=object)) if len(values) else []
            if len(uniques) < 2:
                shown = repr(uniques[0]) if len(uniques) else "no value"
                raise ValueError(f"field {name!r} takes a single value ({shown}) in the training "
                                 "rows: it carries no information. Drop the column.")
    return multi


class FieldEncoder:
    """Vocabulary of each field and the codes of table rows into one embedding table.

    Parameters
    ----------
    fields : list of str
        Field names; the single-valued ones come first in :attr:`order`.
    multi : list of str
        The multi-valued fields among ``fields``.
    sides : dict of str to {"user", "item", "row"}
        Which entity each field describes (for look-ups of missing columns and ranking).
    """

    def __init__(self, fields, multi, sides):
        self.single = [f for f in fields if f not in multi]
        self.bags = [f for f in fields if f in multi]
        self.order = self.single + self.bags
        self.sides = dict(sides)

    def fit(self, table):
        """Learn the vocabularies from the training rows ``table``."""
        self.vocab, self.offset = {}, {}
        start = 1  # row 0: the absent / unknown row
        for f in self.order:
            _, values = explode_field(table[f])
            self.vocab[f] = pd.Index(pd.unique(pd.Series(values, dtype=object)))
            self.offset[f] = start
            start += len(self.vocab[f])
        self.width = {f: max(int(table[f].map(len).max()) if len(table) else 1, 1)
                      for f in self.bags}
        self.n_rows = start
        field_of_row = np.full(self.n_rows, len(self.order), dtype=np.int64)
        for j, f in enumerate(self.order):
            field_of_row[self.offset[f]:self.offset[f] + len(self.vocab[f])] = j
        self.field_of_row = field_of_row
        return self

    def rows_of(self, field, values):
        """Embedding rows of ``values`` of ``field`` (0 where unseen in training)."""
        local = self.vocab[field].get_indexer(pd.Index(np.asarray(values, dtype=object)))
        return np.where(local >= 0, local + self.offset[field], 0).astype(np.int64)

    def values_of(self, field):
        """(values, embedding rows) of ``field``'s vocabulary."""
        v = self.vocab[field]
        return v, np.arange(self.offset[field], self.offset[field] + len(v))

    def _bag(self, col, field):
        rows, values = explode_field(col)
        codes = self.rows_of(field, values)
        lengths = np.bincount(rows, minlength=len(col))
        width = max(self.width[field], int(lengths.max()) if len(lengths) else 0)
        out = np.zeros((len(col), width), dtype=np.int64)
        pos = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        keep = pos < width
        out[rows[keep], pos[keep]] = codes[keep]
        return out

    def encode(self, table, lookups=None):
        """Codes of the rows of ``table``: ``(single (n, n_single), [bag (n, width), ...])``.

        A field missing from ``table`` is filled from ``lookups`` (``{"user": Lookup, "item":
        Lookup}``) by the row's user or item id when it is on that side.
        """
        n = len(table)
        single = np.zeros((n, len(self.single)), dtype=np.int64)
        bags = [None] * len(self.bags)
        filled = set()
        for side in ("user", "item"):
            need = [f for f in self.order if f not in table.columns and self.sides[f] == side]
            if not need or lookups is None or side not in lookups:
                continue
            key = USER if side == "user" else ITEM
            if key not in table.columns:
                raise ValueError(f"X has neither the field(s) {need} nor a {key!r} column to "
                                 "look them up by.")
            at = lookups[side].find(table[key].to_numpy())
            for f in need:
                if f in self.single:
                    j = self.single.index(f)
                    single[:, j] = np.where(at >= 0, lookups[side].single[np.maximum(at, 0), j],
                                            0)
                else:
                    j = self.bags.index(f)
                    b = lookups[side].bags[j][np.maximum(at, 0)]
                    b[at < 0] = 0
                    bags[j] = b
                filled.add(f)
        missing = [f for f in self.order if f not in table.columns and f not in filled]
        if missing:
            raise ValueError(f"X lacks the field column(s) {missing} the model was fitted with; "
                             "pass them (the user- and item-side fields of fitted users and "
                             "items can be left out: they are looked up by id).")
        for j, f in enumerate(self.single):
            if f in table.columns:
                single[:, j] = self.rows_of(f, table[f].to_numpy())
        for j, f in enumerate(self.bags):
            if f in table.columns:
                if len(table) and not is_multi_valued(table[f]):
                    raise ValueError(f"field {f!r} was multi-valued (tuples) in fit; pass tuples.")
                bags[j] = self._bag(table[f], f)
        return single, bags


class Lookup:
    """The field codes of each distinct user (or item) of a table, found by id."""

    def __init__(self, ids, single, bags):
        order = np.argsort(ids, kind="stable")
        self.ids, self.single, self.bags = ids[order], single[order], [b[order] for b in bags]

    @classmethod
    def from_table(cls, encoder, table, key, side):
        """One entry per distinct ``table[key]``: that id's first row, fields of ``side`` only
        (the other fields' codes are 0, absent)."""
        first = table.drop_duplicates(key)
        single, bags = encoder.encode(first)
        for j, f in enumerate(encoder.single):
            if encoder.sides[f] != side:
                single[:, j] = 0
        for j, f in enumerate(encoder.bags):
            if encoder.sides[f] != side:
                bags[j][:] = 0
        return cls(first[key].to_numpy(), single, bags)

    def find(self, ids):
        """Position of each id (-1 where unknown)."""
        ids = np.asarray(ids)
        try:
            at = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
            return np.where(self.ids[at] == ids, at, -1)
        except TypeError:  # ids of a type that cannot be compared with the fitted ones
            return np.full(len(ids), -1)
