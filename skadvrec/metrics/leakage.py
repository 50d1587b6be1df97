"""Attribute leakage: how well a fresh attacker recovers a protected attribute from a model's
user representation.

The audit freezes a fitted estimator, takes ``estimator.transform(X)`` for the audited users (the
latent mean μ(x) of a VAE, the reconstructed score vector ``x·B`` of EASE, ...), splits those
users (stratified for categorical attributes) and trains a new scikit-learn MLP on one part to
predict the attribute from the representation. Its quality on the other part is the leakage:
balanced accuracy and macro AUC for categorical attributes (chance is ``1 / n_classes`` and 0.5),
mean absolute error for continuous ones (compared with predicting the training median). An
estimator that removed the attribute leaves the attacker at chance.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from sklearn.compose import TransformedTargetRegressor
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from ._scorers import _RoutedScorer, _unwrap
from .fairness import _ROUTING_HELP

__all__ = ["attribute_leakage", "LeakageScorer", "resolve_attribute_types"]

_TYPES = ("categorical", "continuous")
_COLUMNS = ["type", "balanced_accuracy", "auc", "chance_balanced_accuracy", "mae",
            "mae_baseline", "n_train", "n_test"]


def _as_frame(S):
    """``sensitive_features`` as a DataFrame (Series → one column, array → attr0, attr1, ...)."""
    if isinstance(S, pd.DataFrame):
        return S
    if isinstance(S, pd.Series):
        return S.to_frame(name=S.name if S.name is not None else "attr0")
    arr = np.asarray(S)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"sensitive_features must be 1-D or 2-D; got shape {arr.shape}.")
    return pd.DataFrame(arr, columns=[f"attr{j}" for j in range(arr.shape[1])])


def _infer_type(col):
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
    sensitive_features : DataFrame
        One column per attribute.
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
    S = _as_frame(sensitive_features)
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
        if t not in _TYPES:
            raise ValueError(f"attribute_types[{a!r}] must be 'categorical' or 'continuous'; "
                             f"got {t!r}.")
    types = {}
    for a in attrs:
        t = overrides.get(a) or _infer_type(S[a])
        if t == "continuous" and not pdt.is_numeric_dtype(S[a].dtype):
            raise ValueError(f"attribute {a!r} is set to continuous but its values (dtype "
                             f"{S[a].dtype}) are not numbers; convert it or call it "
                             "'categorical'.")
        types[a] = t
    return attrs, types


def _representation(estimator, X, S):
    """``transform(X)`` of the (Pipeline-wrapped) estimator and S aligned with its rows."""
    est, Xt = _unwrap(estimator, X, require="transform")
    n_rows = len(X) if isinstance(X, pd.DataFrame) else X.shape[0]
    if len(S) != n_rows:
        raise ValueError(f"sensitive_features has {len(S)} rows but X has {n_rows}; pass one "
                         "row per row of X.")
    S = S.reset_index(drop=True)
    if isinstance(X, pd.DataFrame) and "user" in X.columns:
        # table form: one representation row per user of Xt, in order of first appearance
        per_user = S.set_axis(pd.Index(np.asarray(X["user"]))).groupby(level=0, sort=False).first()
        users = pd.unique(np.asarray(Xt["user"]))
        S = per_user.reindex(users).reset_index(drop=True)
    Z = np.asarray(est.transform(Xt), dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] != len(S):
        raise ValueError(f"transform(X) returned shape {Z.shape}, which does not give one row "
                         f"per audited user ({len(S)}).")
    return Z, S


def _seed(random_state):
    if random_state is None or isinstance(random_state, numbers.Integral):
        return random_state
    return int(check_random_state(random_state).randint(2**31 - 1))


def _audit_categorical(Z, y, *, test_size, hidden_layer_sizes, max_iter, seed, name):
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"attribute {name!r} has {len(classes)} class among the audited users; "
                         "leakage needs at least two.")
    if counts.min() < 2:
        raise ValueError(f"attribute {name!r}: class {classes[counts.argmin()]!r} has a single "
                         "audited user, too few for a stratified split; audit more users.")
    Z_tr, Z_te, y_tr, y_te = train_test_split(Z, y, test_size=test_size, random_state=seed,
                                              stratify=y)
    clf = make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=hidden_layer_sizes, max_iter=max_iter, early_stopping=True,
        random_state=seed)).fit(Z_tr, y_tr)
    proba = clf.predict_proba(Z_te)
    learned = clf[-1].classes_
    bacc = balanced_accuracy_score(y_te, learned[proba.argmax(axis=1)])
    present = np.unique(y_te)
    if len(present) < 2:
        auc = float("nan")
    elif len(learned) == 2:
        auc = roc_auc_score(y_te == learned[1], proba[:, 1])
    else:
        auc = roc_auc_score(y_te, proba, multi_class="ovr", average="macro", labels=learned)
    return {"type": "categorical", "balanced_accuracy": float(bacc), "auc": float(auc),
            "chance_balanced_accuracy": 1.0 / len(classes), "mae": np.nan,
            "mae_baseline": np.nan, "n_train": len(y_tr), "n_test": len(y_te)}


def _audit_continuous(Z, y, *, test_size, hidden_layer_sizes, max_iter, seed, name):
    if len(y) < 4:
        raise ValueError(f"attribute {name!r}: only {len(y)} audited users have a value.")
    Z_tr, Z_te, y_tr, y_te = train_test_split(Z, y, test_size=test_size, random_state=seed)
    reg = TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), MLPRegressor(
            hidden_layer_sizes=hidden_layer_sizes, max_iter=max_iter, early_stopping=True,
            random_state=seed)),
        transformer=StandardScaler()).fit(Z_tr, y_tr)
    mae = mean_absolute_error(y_te, reg.predict(Z_te))
    base = float(np.mean(np.abs(y_te - np.median(y_tr))))
    return {"type": "continuous", "balanced_accuracy": np.nan, "auc": np.nan,
            "chance_balanced_accuracy": np.nan, "mae": float(mae), "mae_baseline": base,
            "n_train": len(y_tr), "n_test": len(y_te)}


def attribute_leakage(estimator, X, sensitive_features, *, attributes=None, attribute_types=None,
                      test_size=0.3, hidden_layer_sizes=(100,), max_iter=200, random_state=0):
    """Audit how much of each protected attribute a fresh attacker recovers from ``transform(X)``.

    For each attribute the audited users (rows of X, or users of an interaction table) with a
    known value are split, stratified by class for categorical attributes, into an attacker
    training part and a test part. A scikit-learn MLP (inputs standardised, ``early_stopping``
    on 10 % of its training part, seeded) learns the attribute from the representation; the
    test part gives the leakage. Audit users the estimator was not fitted on (held-out users)
    to measure what the model reveals about new users.

    What is attacked is whatever ``transform`` returns: the latent mean μ(x) for
    :class:`~skadvrec.vae.MultVAE` and :class:`~skadvrec.vae.AdvXMultVAE`, and for
    :class:`~skadvrec.linear.EASE` (no latent space) the reconstructed score vector ``x·B``.

    Parameters
    ----------
    estimator : fitted estimator with ``transform``, or a Pipeline ending in one
        The Pipeline's earlier steps transform X first.
    X : sparse matrix of shape (n_users, n_items) or DataFrame
        Audited users, in the estimator's input form.
    sensitive_features : DataFrame, Series or array-like
        One row per row of X, one column per attribute. Missing values (NaN) leave that user
        out of that attribute's audit.
    attributes : str, sequence of str or None, default=None
        Columns to audit; None audits every column.
    attribute_types : dict or None, default=None
        ``{attribute: "categorical" | "continuous"}`` overriding the dtype inference of
        :func:`resolve_attribute_types`.
    test_size : float or int, default=0.3
        Share (or number) of audited users the attacker is tested on.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layers of the attacker MLP.
    max_iter : int, default=200
        Maximum attacker epochs (early stopping usually ends it sooner).
    random_state : int, RandomState instance or None, default=0
        Seeds the split and the attacker; an int gives the same split for every attribute.

    Returns
    -------
    DataFrame
        Indexed by attribute, with columns ``type``, ``balanced_accuracy``, ``auc`` (binary:
        ROC AUC of the second class; multi-class: macro one-vs-rest), ``chance_balanced_accuracy``
        (1 / n_classes), ``mae``, ``mae_baseline`` (MAE of predicting the attacker's training
        median), ``n_train`` and ``n_test``; NaN where a column does not apply.

    See Also
    --------
    LeakageScorer : the same audit as a GridSearchCV scorer.

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import attribute_leakage
    >>> d = make_interactions(n_users=400, n_items=60, attribute_signal=2.0, random_state=0)
    >>> model = EASE(l2=50.0, device="cpu").fit(d.X[:200])
    >>> table = attribute_leakage(model, d.X[200:], d.sensitive_features[200:])
    >>> table["type"].to_dict()
    {'group': 'categorical', 'age': 'continuous'}
    >>> bool(table.loc["group", "balanced_accuracy"] > table.loc["group",
    ...                                                           "chance_balanced_accuracy"])
    True
    >>> int(table.loc["group", "n_test"])
    60
    """
    if sensitive_features is None:
        raise ValueError(f"a leakage audit needs the users' attributes; {_ROUTING_HELP}")
    S = _as_frame(sensitive_features)
    attrs, types = resolve_attribute_types(S, attributes, attribute_types)
    Z, S = _representation(estimator, X, S)
    seed = _seed(random_state)
    kw = dict(test_size=test_size, hidden_layer_sizes=tuple(hidden_layer_sizes),
              max_iter=max_iter, seed=seed)
    rows = []
    for a in attrs:
        col = S[a]
        known = col.notna().to_numpy()
        if types[a] == "categorical":
            y = np.asarray(col[known].astype(str))
            rows.append(_audit_categorical(Z[known], y, name=a, **kw))
        else:
            y = col[known].to_numpy(dtype=np.float64)
            rows.append(_audit_continuous(Z[known], y, name=a, **kw))
    return pd.DataFrame(rows, index=pd.Index(attrs, name="attribute"), columns=_COLUMNS)


class LeakageScorer(_RoutedScorer):
    """Attribute leakage of ``transform(X)`` as a scorer (less leakage = higher score).

    Runs :func:`attribute_leakage` for one attribute on the held-out users of a CV split and
    returns ``-balanced_accuracy``, ``-auc`` or ``+mae`` (a larger attacker error is less
    leakage), so GridSearchCV's "higher is better" holds. The attributes arrive as
    ``sensitive_features`` metadata: enable routing and call
    ``set_score_request(sensitive_features=True)``.

    Parameters
    ----------
    attribute : str or None, default=None
        Column of ``sensitive_features`` to audit; None when it has a single column.
    metric : {"balanced_accuracy", "auc", "mae"}, default="balanced_accuracy"
        The first two need a categorical attribute, ``"mae"`` a continuous one.
    attribute_type : {"categorical", "continuous"} or None, default=None
        Overrides the dtype inference.
    test_size, hidden_layer_sizes, max_iter, random_state
        As in :func:`attribute_leakage`.

    Examples
    --------
    >>> import sklearn
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import LeakageScorer, NDCGScorer
    >>> from skadvrec.model_selection import UserHoldout
    >>> d = make_interactions(n_users=400, n_items=60, attribute_signal=2.0, random_state=0)
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     leak = LeakageScorer("group").set_score_request(sensitive_features=True)
    ...     search = GridSearchCV(EASE(device="cpu"), {"l2": [10.0, 100.0]},
    ...                           cv=UserHoldout(test_size=150, random_state=0),
    ...                           scoring={"ndcg": NDCGScorer(20), "leak": leak}, refit="ndcg")
    ...     search = search.fit(d.X, sensitive_features=d.sensitive_features)
    >>> bool((search.cv_results_["mean_test_leak"] < 0).all())
    True
    """

    _metadata = ("sensitive_features",)
    _METRICS = ("balanced_accuracy", "auc", "mae")

    def __init__(self, attribute=None, metric="balanced_accuracy", *, attribute_type=None,
                 test_size=0.3, hidden_layer_sizes=(100,), max_iter=200, random_state=0):
        if metric not in self._METRICS:
            raise ValueError(f"metric must be one of {self._METRICS}; got {metric!r}.")
        if attribute_type is not None and attribute_type not in _TYPES:
            raise ValueError(f"attribute_type must be 'categorical', 'continuous' or None; got "
                             f"{attribute_type!r}.")
        self.attribute = attribute
        self.metric = metric
        self.attribute_type = attribute_type
        self.test_size = test_size
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_iter = max_iter
        self.random_state = random_state

    def audit(self, estimator, X, y=None, sensitive_features=None):
        """The one-row table of :func:`attribute_leakage` for ``attribute``."""
        if sensitive_features is None:
            raise ValueError(f"LeakageScorer needs the users' attributes; {_ROUTING_HELP}")
        S = _as_frame(sensitive_features)
        attr = self.attribute
        if attr is None:
            if S.shape[1] != 1:
                raise ValueError(f"sensitive_features has columns {list(S.columns)}; name the "
                                 "one to audit with LeakageScorer(attribute=<column>).")
            attr = S.columns[0]
        types = None if self.attribute_type is None else {attr: self.attribute_type}
        return attribute_leakage(estimator, X, S, attributes=[attr], attribute_types=types,
                                 test_size=self.test_size,
                                 hidden_layer_sizes=self.hidden_layer_sizes,
                                 max_iter=self.max_iter, random_state=self.random_state)

    def __call__(self, estimator, X, y=None, sensitive_features=None, **metadata):
        row = self.audit(estimator, X, sensitive_features=sensitive_features).iloc[0]
        needs = "continuous" if self.metric == "mae" else "categorical"
        if row["type"] != needs:
            raise ValueError(f"metric={self.metric!r} needs a {needs} attribute, but "
                             f"{row.name!r} is {row['type']}; use "
                             f"{'mae' if needs == 'categorical' else 'balanced_accuracy or auc'}"
                             " or set attribute_type.")
        value = float(row[self.metric])
        return value if self.metric == "mae" else -value
