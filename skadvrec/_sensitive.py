"""Protected (sensitive) user attributes: the one place that reads ``sensitive_features``.

``sensitive_features`` is a DataFrame with one column per protected attribute and one row per
row of X (a Series or an array is accepted and named). Whether an attribute is categorical or
continuous is inferred from its dtype and can be overridden per attribute. Everything that uses
protected attributes (the adversarial estimators, the leakage audit, concept erasure, the group
metrics) goes through these functions, so the rules are the same everywhere.

This module is at the bottom of the package: it imports no estimator family and nothing from
``skadvrec.metrics``.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from pandas.api import types as pdt

__all__ = ["as_frame", "check_aligned", "infer_type", "resolve_attribute_types",
           "ATTRIBUTE_TYPES"]

ATTRIBUTE_TYPES = ("categorical", "continuous")


def as_frame(sensitive_features):
    """``sensitive_features`` as a DataFrame with named columns.

    A DataFrame is returned as it is (not copied, index kept); a Series becomes one column
    named after it (``"attr0"`` when it has no name); a 1-D or 2-D array becomes columns
    ``attr0, attr1, ...`` with a default index.

    Parameters
    ----------
    sensitive_features : DataFrame, Series or array-like of shape (n_rows,) or (n_rows, n_attrs)

    Returns
    -------
    DataFrame

    Examples
    --------
    >>> import numpy as np
    >>> from skadvrec._sensitive import as_frame
    >>> list(as_frame(np.array([["F", 1], ["M", 2]])).columns)
    ['attr0', 'attr1']
    """
    if isinstance(sensitive_features, pd.DataFrame):
        return sensitive_features
    if isinstance(sensitive_features, pd.Series):
        name = sensitive_features.name if sensitive_features.name is not None else "attr0"
        return sensitive_features.to_frame(name=name)
    arr = np.asarray(sensitive_features)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"sensitive_features must be 1-D or 2-D; got shape {arr.shape}.")
    return pd.DataFrame(arr, columns=[f"attr{j}" for j in range(arr.shape[1])])


def check_aligned(sensitive_features, X):
    """Check that ``sensitive_features`` rows line up with the rows of an interaction table.

    Rows are aligned by position. When X is a DataFrame and ``sensitive_features`` a DataFrame
    or Series carrying the same index labels as X but in another order (e.g. shuffled, or
    sorted by user), positional alignment would give rows the wrong attributes without any
    error, so this raises. A default ``RangeIndex`` and indexes with other labels (the slices
    a search makes of a positional frame) are taken positionally, as documented. A matrix X has
    no index: its rows are the users, in order.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user": [1, 2], "item": [5, 6]}, index=[10, 11])
    >>> check_aligned(pd.Series(["F", "M"], index=[10, 11]), X)
    >>> check_aligned(pd.Series(["M", "F"], index=[11, 10]), X)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: the index of sensitive_features does not match the index of X (position 0: ...
    """
    if not isinstance(X, pd.DataFrame) or not isinstance(sensitive_features,
                                                          (pd.DataFrame, pd.Series)):
        return
    idx = sensitive_features.index
    if len(idx) != len(X) or idx.equals(X.index):
        return
    if isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1:
        return  # a default index: positional by construction (e.g. after reset_index)
    try:
        same_labels = idx.sort_values().equals(X.index.sort_values())
    except TypeError:  # labels of types that cannot be ordered together: not X's labels
        return
    if not same_labels:
        return
    a, b = np.asarray(idx), np.asarray(X.index)
    i = int(np.flatnonzero(a != b)[0])
    raise ValueError(f"the index of sensitive_features does not match the index of X (position "
                     f"{i}: {a[i]!r} vs {b[i]!r}): the same labels in another order, but rows "
                     "are aligned by position. Pass sensitive_features.loc[X.index], or "
                     ".reset_index(drop=True) if it is already in X's row order.")


def infer_type(col):
    """``"categorical"`` or ``"continuous"`` from the dtype of one attribute column.

    pandas ``category``, ``object``, ``string`` and ``bool`` columns are categorical, numeric
    columns (integer codes included) continuous.

    Parameters
    ----------
    col : Series

    Returns
    -------
    {"categorical", "continuous"}

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec._sensitive import infer_type
    >>> infer_type(pd.Series(["F", "M"])), infer_type(pd.Series([25.0, 40.0]))
    ('categorical', 'continuous')
    """
    if (isinstance(col.dtype, pd.CategoricalDtype) or pdt.is_bool_dtype(col.dtype)
            or pdt.is_object_dtype(col.dtype) or pdt.is_string_dtype(col.dtype)):
        return "categorical"
    if pdt.is_numeric_dtype(col.dtype):
        return "continuous"
    raise ValueError(f"cannot tell whether attribute {col.name!r} (dtype {col.dtype}) is "
                     "categorical or continuous; set attribute_types={name: 'categorical' or "
                     "'continuous'}.")


def resolve_attribute_types(sensitive_features, attributes=None, attribute_types=None):
    """Which attributes to use and whether each is categorical or continuous.

    Inference from the dtype: pandas ``category``, ``object``, ``string`` and ``bool`` columns
    are categorical, numeric columns (integer codes included) are continuous;
    ``attribute_types`` overrides it per attribute, e.g. for an integer-coded occupation.

    Parameters
    ----------
    sensitive_features : DataFrame, Series or array-like
        One column per attribute (see :func:`as_frame`).
    attributes : str, sequence of str or None, default=None
        Columns to use; None uses every column.
    attribute_types : dict or None, default=None
        ``{attribute: "categorical" | "continuous"}`` overriding the inference.

    Returns
    -------
    attributes : list
    types : dict of attribute to {"categorical", "continuous"}

    Examples
    --------
    >>> import pandas as pd
    >>> from skadvrec.metrics import resolve_attribute_types
    >>> S = pd.DataFrame({"gender": ["F", "M"], "age": [25.0, 40.0], "occupation": [3, 7]})
    >>> resolve_attribute_types(S, attribute_types={"occupation": "categorical"})[1]
    {'gender': 'categorical', 'age': 'continuous', 'occupation': 'categorical'}
    """
    S = as_frame(sensitive_features)
    cols = list(S.columns)
    if attributes is None:
        attrs = cols
    else:
        attrs = [attributes] if isinstance(attributes, (str, numbers.Number)) else list(attributes)
        missing = [a for a in attrs if a not in S.columns]
        if missing:
            raise ValueError(f"attribute(s) {missing} are not columns of sensitive_features "
                             f"{cols}; pass attributes=<column names> or add the columns.")
        if len(set(attrs)) != len(attrs):
            raise ValueError(f"attributes lists a column twice: {attrs}.")
    if not attrs:
        raise ValueError("no attribute to use: sensitive_features has no columns.")
    overrides = {} if attribute_types is None else attribute_types
    if not isinstance(overrides, dict):
        raise ValueError("attribute_types must be a dict {attribute: 'categorical' | "
                         f"'continuous'}} or None; got {attribute_types!r}.")
    for a, t in overrides.items():
        if a not in S.columns:
            raise ValueError(f"attribute_types names {a!r}, which is not a column of "
                             f"sensitive_features {cols}.")
        if t not in ATTRIBUTE_TYPES:
            raise ValueError(f"attribute_types[{a!r}] must be 'categorical' or 'continuous'; "
                             f"got {t!r}.")
    types = {}
    for a in attrs:
        t = overrides.get(a) or infer_type(S[a])
        if t == "continuous" and not pdt.is_numeric_dtype(S[a].dtype):
            raise ValueError(f"attribute {a!r} is set to continuous but its values (dtype "
                             f"{S[a].dtype}) are not numbers; convert it or call it "
                             "'categorical'.")
        types[a] = t
    return attrs, types
