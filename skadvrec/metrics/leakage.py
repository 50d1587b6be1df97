"""Attribute leakage: how well the strongest of several fresh attackers recovers a protected
attribute from a model's user representation.

The audit freezes a fitted estimator and takes ``estimator.transform(X)``, the representation of
the audited users (the latent mean μ(x) of a VAE, the reconstructed score vector ``x·B`` of
EASE, ...). A portfolio of scikit-learn attackers learns each attribute from the representation
of *other* users and predicts it for the audited ones:

- with ``X_train`` / ``sensitive_features_train`` (the estimator's training users, say), every
  attacker is trained on those users and scored on the audited users;
- otherwise by cross-fitting: the audited users are split into ``cv`` (stratified) folds and
  each user is predicted by attackers that were trained on the other folds.

The audit reports the **strongest** attacker (the worst case for the model): the highest
balanced accuracy and macro AUC for a categorical attribute (chance: ``1 / n_classes`` and 0.5),
the lowest mean absolute error and highest R² for a continuous one (against predicting the
attack-training median), with a bootstrap interval over the audited users, and each attacker's
own figures on request. It errs towards finding leakage: a representation passes only if no
attacker of the portfolio beats chance.
"""

from __future__ import annotations

import numbers
import warnings
from collections import OrderedDict

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from .._sensitive import ATTRIBUTE_TYPES, as_frame, check_aligned, resolve_attribute_types
from ._scorers import _RoutedScorer, _unwrap
from .fairness import _ROUTING_HELP

__all__ = ["attribute_leakage", "LeakageScorer", "resolve_attribute_types", "default_attackers"]

_COLUMNS = ["type", "attacker", "balanced_accuracy", "balanced_accuracy_low",
            "balanced_accuracy_high", "auc", "auc_low", "auc_high", "chance_balanced_accuracy",
            "mae", "mae_low", "mae_high", "mae_baseline", "r2", "r2_low", "r2_high", "n_train",
            "n_test", "protocol"]
_ATTACKER_COLUMNS = ["type", "balanced_accuracy", "auc", "mae", "r2"]
_BOOT_BLOCK = 250  # bootstrap replicates evaluated at once


# -- the attackers ------------------------------------------------------------------------------
def default_attackers(kind, random_state=0):
    """The audit's default attacker portfolio for one kind of attribute.

    Categorical (``kind="categorical"``):

    - ``"logistic"``: :class:`~sklearn.linear_model.LogisticRegression` with
      ``class_weight="balanced"``, C chosen among 10^-4 … 10^2 by a stratified 3-fold inner
      cross-validation on balanced accuracy;
    - ``"mlp"``: :class:`~sklearn.neural_network.MLPClassifier` with one hidden layer of 100
      ReLU units, a strong L2 penalty (``alpha=3``), up to 100 Adam epochs and no early stopping
      (accuracy-based early stopping on a small validation share stops an imbalanced problem
      near the majority class);
    - ``"gradient_boosting"``: :class:`~sklearn.ensemble.HistGradientBoostingClassifier`,
      100 trees of up to 15 leaves on 63 bins per feature, learning rate 0.05, no early
      stopping.

    The last two are trained on the natural class shares and decide by their posterior divided
    by the training class shares (the Bayes rule for balanced accuracy); the logistic regression
    weights its classes instead. (Class weights make the gradient boosting many times slower.)

    Continuous (``kind="continuous"``): ``"ridge"`` (:class:`~sklearn.linear_model.RidgeCV`,
    α among 10^-2 … 10^4 by efficient leave-one-out) and ``"gradient_boosting"``
    (:class:`~sklearn.ensemble.HistGradientBoostingRegressor`, absolute-error loss, otherwise as
    the classifier).

    Every attacker sees the representation standardised on its training users.

    Parameters
    ----------
    kind : {"categorical", "continuous"}
    random_state : int, default=0
        Seeds the inner cross-validation and the stochastic attackers.

    Returns
    -------
    list of (name, estimator)

    Examples
    --------
    >>> from skadvrec.metrics import default_attackers
    >>> [name for name, _ in default_attackers("categorical")]
    ['logistic', 'mlp', 'gradient_boosting']
    """
    if kind == "categorical":
        logistic = GridSearchCV(
            LogisticRegression(class_weight="balanced", max_iter=1000),
            {"C": [float(c) for c in np.logspace(-4, 2, 7)]},
            cv=StratifiedKFold(3, shuffle=True, random_state=random_state),
            scoring="balanced_accuracy")
        mlp = MLPClassifier(hidden_layer_sizes=(100,), alpha=3.0, max_iter=100,
                            early_stopping=False, random_state=random_state)
        gbt = HistGradientBoostingClassifier(learning_rate=0.05, max_leaf_nodes=15, max_bins=63,
                                             early_stopping=False, random_state=random_state)
        return [("logistic", logistic), ("mlp", mlp), ("gradient_boosting", gbt)]
    if kind == "continuous":
        ridge = RidgeCV(alphas=np.logspace(-2, 4, 13))
        gbt = HistGradientBoostingRegressor(loss="absolute_error", learning_rate=0.05,
                                            max_leaf_nodes=15, max_bins=63, early_stopping=False,
                                            random_state=random_state)
        return [("ridge", ridge), ("gradient_boosting", gbt)]
    raise ValueError(f"kind must be 'categorical' or 'continuous'; got {kind!r}.")


def _estimator_name(est):
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    return type(last).__name__


def _resolve_attackers(attacker, kind, seed):
    """(name, unfitted estimator) pairs of the right kind; "default" expands to the portfolio."""
    items = [attacker] if attacker is None or isinstance(attacker, str) or hasattr(
        attacker, "fit") else attacker
    if isinstance(items, dict):
        items = list(items.items())
    want = is_classifier if kind == "categorical" else is_regressor
    out = []
    for item in items:
        if item is None or (isinstance(item, str) and item == "default"):
            out.extend(default_attackers(kind, seed))
            continue
        name, est = item if isinstance(item, tuple) else (None, item)
        if not hasattr(est, "fit"):
            raise TypeError(f"attacker must be a scikit-learn estimator, a list of them, a dict "
                            f"{{name: estimator}} or 'default'; got {est!r}.")
        if not (is_classifier(est) or is_regressor(est)):
            raise TypeError(f"attacker {_estimator_name(est)} is neither a classifier nor a "
                            "regressor.")
        if want(est):
            out.append((name or _estimator_name(est), clone(est)))
    if not out:
        need = "classifier" if kind == "categorical" else "regressor"
        raise ValueError(f"attacker has no {need} for a {kind} attribute; add one to the list "
                         "(or 'default' for the default portfolio).")
    names, seen = [], {}
    for name, _ in out:  # unique names: a second LogisticRegression becomes LogisticRegression_2
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return [(n, _seeded(e, seed)) for n, (_, e) in zip(names, out)]


def _seeded(est, seed):
    """Give an unseeded user attacker the audit's seed, so that the audit is reproducible."""
    params = {k: seed for k, v in est.get_params(deep=True).items()
              if (k == "random_state" or k.endswith("__random_state")) and v is None}
    return est.set_params(**params) if params else est


def _balances_itself(est):
    return any((k == "class_weight" or k.endswith("__class_weight")) and v is not None
               for k, v in est.get_params(deep=True).items())


# -- fitting and predicting ---------------------------------------------------------------------
def _fit_predict_classifier(est, Z_tr, y_tr, Z_te, n_classes):
    """Decisions suited to balanced accuracy and per-class scores for macro AUC.

    An attacker that weights its classes itself (``class_weight`` set) decides by its largest
    posterior; any other attacker by its posterior divided by the class's share of its training
    users (the Bayes rule for balanced accuracy), or by its own ``predict`` when it has no
    ``predict_proba``.
    """
    est.fit(Z_tr, y_tr)
    prior = None
    if not _balances_itself(est):
        prior = np.bincount(y_tr, minlength=n_classes) / len(y_tr)
    learned = np.asarray(est.classes_)
    scores = np.full((Z_te.shape[0], n_classes), -np.inf)
    if hasattr(est, "predict_proba"):
        proba = est.predict_proba(Z_te)
        scores[:, learned] = proba
        decide = proba if prior is None else proba / prior[learned]
        pred = learned[np.argmax(decide, axis=1)]
    else:
        dec = np.asarray(est.decision_function(Z_te), dtype=np.float64)
        if dec.ndim == 1:
            scores[:, learned[1]], scores[:, learned[0]] = dec, -dec
        else:
            scores[:, learned] = dec
        pred = np.asarray(est.predict(Z_te))
    return pred.astype(np.int64), scores


def _predict_out_of_sample(attackers, kind, Z, y, splits, n_classes):
    """Each attacker's predictions for the scored users, and the per-fold baseline."""
    n = len(y)
    preds = {}
    base = np.empty(n)
    for name, proto in attackers:
        pred = np.empty(n, dtype=np.int64 if kind == "categorical" else np.float64)
        scores = np.empty((n, n_classes)) if kind == "categorical" else None
        for tr, te in splits:
            scaler = StandardScaler().fit(Z[tr])
            Z_tr, Z_te = scaler.transform(Z[tr]), scaler.transform(Z[te])
            est = clone(proto)
            if kind == "categorical":
                pred[te], scores[te] = _fit_predict_classifier(est, Z_tr, y[tr], Z_te,
                                                               n_classes)
            else:
                pred[te] = est.fit(Z_tr, y[tr]).predict(Z_te)
                base[te] = np.median(y[tr])
        preds[name] = (pred, scores)
    return preds, base


# -- metrics, vectorised over bootstrap replicates (rows of W: user multiplicities) --------------
def _balanced_accuracy(y, pred, W, n_classes):
    onehot = np.eye(n_classes)[y]
    count = W @ onehot
    hit = W @ (onehot * (pred == y)[:, None])
    present = np.bincount(y, minlength=n_classes) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(count[:, present] > 0, hit[:, present] / count[:, present],
                                   np.nan), axis=1)


def _binary_auc(score, pos, W):
    """Weighted Mann-Whitney AUC (ties count one half) for each row of W."""
    order = np.argsort(score, kind="mergesort")
    s, p, Wo = score[order], pos[order], W[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    wp = np.add.reduceat(Wo * p, starts, axis=1)
    wn = np.add.reduceat(Wo * ~p, starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    den = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (wp * (below + 0.5 * wn)).sum(axis=1) / den, np.nan)


def _macro_auc(y, scores, W, n_classes):
    present = [k for k in range(n_classes) if 0 < np.sum(y == k) < len(y)]
    if not present:
        return np.full(W.shape[0], np.nan)
    if n_classes == 2:  # both one-vs-rest AUCs are the same number
        return _binary_auc(scores[:, 1] - scores[:, 0], y == 1, W)
    return np.mean([_binary_auc(scores[:, k], y == k, W) for k in present], axis=0)


def _regression(y, pred, W):
    n = W.sum(axis=1)
    err = y - pred
    mae = W @ np.abs(err) / n
    ybar = W @ y / n
    sst = W @ (y ** 2) - n * ybar ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1.0 - (W @ err ** 2) / sst, np.nan)
    return mae, r2


def _figures(kind, y, preds, W, n_classes):
    """{metric: (n_attackers, n_rows_of_W)} for the given user weights."""
    out = {}
    for pred, scores in preds.values():
        if kind == "categorical":
            figs = {"balanced_accuracy": _balanced_accuracy(y, pred, W, n_classes),
                    "auc": _macro_auc(y, scores, W, n_classes)}
        else:
            mae, r2 = _regression(y, pred, W)
            figs = {"mae": mae, "r2": r2}
        for metric, v in figs.items():
            out.setdefault(metric, []).append(v)
    return {m: np.asarray(v) for m, v in out.items()}


def _worst_case(metric, values):
    """The strongest attacker's figure (rows: attackers): lowest MAE, highest otherwise."""
    if np.all(np.isnan(values)):
        return np.full(values.shape[1:], np.nan)
    return np.nanmin(values, axis=0) if metric == "mae" else np.nanmax(values, axis=0)


def _bootstrap(kind, y, preds, n_classes, n_bootstraps, confidence, rng):
    """Percentile interval of the strongest attacker's figure, per metric."""
    metrics = ("balanced_accuracy", "auc") if kind == "categorical" else ("mae", "r2")
    if not n_bootstraps:
        return {m: (np.nan, np.nan) for m in metrics}
    n = len(y)
    worst = {m: [] for m in metrics}
    for start in range(0, n_bootstraps, _BOOT_BLOCK):
        b = min(_BOOT_BLOCK, n_bootstraps - start)
        W = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)
        for metric, vals in _figures(kind, y, preds, W, n_classes).items():
            worst[metric].append(_worst_case(metric, vals))
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    out = {}
    for m, v in worst.items():
        v = np.concatenate(v)
        out[m] = tuple(np.percentile(v[~np.isnan(v)], q)) if np.any(~np.isnan(v)) else (
            np.nan, np.nan)
    return out


# -- one attribute ------------------------------------------------------------------------------
def _audit_one(kind, name, Z, y, Z_train, y_train, *, attacker, cv, n_bootstraps, confidence,
               seed):
    holdout = Z_train is not None
    if kind == "categorical":
        classes = np.unique(y if not holdout else y_train)
        if holdout:
            unseen = np.setdiff1d(np.unique(y), classes)
            if len(unseen):
                raise ValueError(f"attribute {name!r}: class(es) {list(unseen)} of the audited "
                                 "users never occur among the attack training users; train "
                                 "the attackers on users of every class.")
        if len(classes) < 2:
            raise ValueError(f"attribute {name!r} has {len(classes)} class among the "
                             f"{'attack training' if holdout else 'audited'} users; leakage "
                             "needs at least two.")
        codes = np.searchsorted(classes, y)
        counts = np.bincount(np.searchsorted(classes, y_train) if holdout else codes)
        need = 3 if holdout else cv
        if counts.min() < need:
            raise ValueError(
                f"attribute {name!r}: class {classes[counts.argmin()]!r} has "
                f"{counts.min()} {'attack training' if holdout else 'audited'} user(s), fewer "
                f"than the {need} that {'the inner cross-validation' if holdout else 'cv'} "
                f"needs; audit more users{'' if holdout else ' or lower cv'}.")
        n_classes = len(classes)
    else:
        codes, n_classes = y, 0
        if len(y) < max(4, 0 if holdout else cv) or (holdout and len(y_train) < 4):
            raise ValueError(f"attribute {name!r}: only {len(y)} audited users have a value; "
                             "audit more users.")
    attackers = _resolve_attackers(attacker, kind, seed)
    if holdout:
        y_tr = np.searchsorted(classes, y_train) if kind == "categorical" else y_train
        Z_all = np.vstack([Z_train, Z])
        y_all = np.concatenate([y_tr, codes])
        splits = [(np.arange(len(y_tr)), len(y_tr) + np.arange(len(codes)))]
        n_train, protocol = len(y_tr), "held-out"
    else:
        splitter = (StratifiedKFold if kind == "categorical" else KFold)(
            cv, shuffle=True, random_state=seed)
        Z_all, y_all = Z, codes
        splits = list(splitter.split(Z, codes))
        n_train, protocol = len(codes), f"cross-fit ({cv} folds)"
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        preds, base = _predict_out_of_sample(attackers, kind, Z_all, y_all, splits, n_classes)
    scored = splits[0][1] if holdout else np.arange(len(codes))
    y_sc = y_all[scored]
    preds = {k: (p[scored], None if s is None else s[scored]) for k, (p, s) in preds.items()}
    point = _figures(kind, y_sc, preds, np.ones((1, len(y_sc))), n_classes)
    names = [n for n, _ in attackers]
    per_attacker = pd.DataFrame({m: v[:, 0] for m, v in point.items()}, index=names)
    interval = _bootstrap(kind, y_sc, preds, n_classes, n_bootstraps, confidence,
                          check_random_state(seed))
    row = {"type": kind, "n_train": n_train, "n_test": len(y_sc), "protocol": protocol}
    for metric, vals in point.items():
        row[metric] = float(_worst_case(metric, vals)[0])
        row[f"{metric}_low"], row[f"{metric}_high"] = map(float, interval[metric])
    primary = "balanced_accuracy" if kind == "categorical" else "mae"
    col = per_attacker[primary]
    row["attacker"] = col.idxmin() if primary == "mae" else col.idxmax()
    if kind == "categorical":
        row["chance_balanced_accuracy"] = 1.0 / n_classes
    else:
        row["mae_baseline"] = float(np.mean(np.abs(y_sc - base[scored])))
    return row, per_attacker


# -- inputs -------------------------------------------------------------------------------------
def _representation(estimator, X, S):
    """``transform(X)`` of the (Pipeline-wrapped) estimator and S aligned with its rows.

    ``estimator="passthrough"`` takes X as the representation itself.
    """
    if isinstance(estimator, str) and estimator == "passthrough":
        Z = np.asarray(X, dtype=np.float64)
        if Z.ndim != 2:
            raise ValueError(f"with estimator='passthrough' X is the representation and must be "
                             f"2-D; got shape {Z.shape}.")
        if len(S) != Z.shape[0]:
            raise ValueError(f"sensitive_features has {len(S)} rows but X has {Z.shape[0]}; "
                             "pass one row per row of X.")
        return Z, S.reset_index(drop=True)
    est, Xt = _unwrap(estimator, X, require="transform")
    n_rows = len(X) if isinstance(X, pd.DataFrame) else X.shape[0]
    if len(S) != n_rows:
        raise ValueError(f"sensitive_features has {len(S)} rows but X has {n_rows}; pass one "
                         "row per row of X.")
    check_aligned(S, X)
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
    if random_state is None:
        return 0
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def _check_audit_params(cv, n_bootstraps, confidence):
    if not isinstance(cv, numbers.Integral) or isinstance(cv, bool) or cv < 2:
        raise ValueError(f"cv must be an int >= 2 (the number of cross-fitting folds); got "
                         f"{cv!r}.")
    if (not isinstance(n_bootstraps, numbers.Integral) or isinstance(n_bootstraps, bool)
            or n_bootstraps < 0):
        raise ValueError(f"n_bootstraps must be an int >= 0; got {n_bootstraps!r}.")
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")


def _target(col, kind):
    known = col.notna().to_numpy()
    if kind == "categorical":
        return known, np.asarray(col[known].astype(str))
    return known, col[known].to_numpy(dtype=np.float64)


# the same representation, labels and settings give the same audit: keep the last few (a
# multi-metric search asks for BAcc and AUC of one attribute through two scorers)
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 16


def _cached_audit(kind, name, Z, y, Z_train, y_train, **kw):
    key = joblib.hash((kind, Z, y, Z_train, y_train, kw))
    if key not in _CACHE:
        _CACHE[key] = _audit_one(kind, name, Z, y, Z_train, y_train, **kw)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    row, per_attacker = _CACHE[key]
    return dict(row), per_attacker.copy()


def attribute_leakage(estimator, X, sensitive_features, *, X_train=None,
                      sensitive_features_train=None, attributes=None, attribute_types=None,
                      attacker=None, cv=5, n_bootstraps=1000, confidence=0.95, random_state=0,
                      return_attackers=False):
    """Audit how much of each protected attribute the strongest of several attackers recovers.

    The representation is ``estimator.transform(X)`` (for a Pipeline, the earlier steps
    transform X first). Each attacker of the portfolio is a fresh scikit-learn estimator that
    sees the representation standardised on its training users:

    - **held-out protocol** (``X_train`` and ``sensitive_features_train`` given): the attackers
      learn from ``transform(X_train)``, e.g. the estimator's own training users, and are scored
      on the users of X;
    - **cross-fitting** (only X given): the users of X are split into ``cv`` folds (stratified
      for categorical attributes) and every user is predicted by attackers trained on the other
      folds, so each user is scored by a model that did not see it.

    Decisions suit balanced accuracy: an attacker that sets ``class_weight`` decides by its
    largest posterior, any other by its posterior divided by the class shares of its training
    users (the Bayes rule for balanced accuracy). The attackers run single-threaded and
    seeded, so an audit of the same representation gives the same figures on any machine with
    the same library versions, and a representation perturbed at the level of floating-point
    reduction order moves them by far less than 0.01.

    The audit reports the worst case: the highest balanced accuracy and the highest macro AUC
    over the attackers (the AUC may come from another attacker than the BAcc), or the lowest MAE
    and highest R². The interval is a percentile bootstrap over the scored users of that worst
    case (each replicate takes the best attacker again), so it covers the sampling of users,
    not the attackers' training randomness. Picking the best of several attackers on the scored
    users biases the figures slightly upwards (about +0.01 BAcc at chance with 1,000 users): the
    audit errs towards finding leakage.

    What is attacked is whatever ``transform`` returns: the latent mean μ(x) for
    :class:`~skadvrec.vae.MultVAE` and :class:`~skadvrec.vae.AdvXMultVAE`, and for
    :class:`~skadvrec.linear.EASE` (no latent space) the reconstructed score vector ``x·B``.

    Parameters
    ----------
    estimator : fitted estimator with ``transform``, a Pipeline ending in one, or "passthrough"
        With ``"passthrough"``, X (and ``X_train``) are the representations themselves.
    X : sparse matrix of shape (n_users, n_items) or DataFrame
        Audited users, in the estimator's input form.
    sensitive_features : DataFrame, Series or array-like
        One row per row of X, one column per attribute. Missing values (NaN) leave that user
        out of that attribute's audit.
    X_train, sensitive_features_train : default=None
        Users the attackers are trained on (held-out protocol), in the same forms; give both or
        neither.
    attributes : str, sequence of str or None, default=None
        Columns to audit; None audits every column.
    attribute_types : dict or None, default=None
        ``{attribute: "categorical" | "continuous"}`` overriding the dtype inference of
        :func:`resolve_attribute_types`.
    attacker : estimator, list, dict or None, default=None
        The attackers: a scikit-learn classifier or regressor, a list of them (or of
        ``(name, estimator)`` pairs), or a dict ``{name: estimator}``; classifiers attack the
        categorical attributes and regressors the continuous ones. The string ``"default"`` in
        the list stands for the default portfolio (:func:`default_attackers`); None uses it
        alone. A classifier needs ``predict_proba`` or ``decision_function``. Unseeded attackers
        get ``random_state``.
    cv : int, default=5
        Cross-fitting folds (when ``X_train`` is not given).
    n_bootstraps : int, default=1000
        Bootstrap replicates for the interval; 0 skips it (the bounds are NaN).
    confidence : float, default=0.95
        Coverage of the interval.
    random_state : int, RandomState instance or None, default=0
        Seeds the folds, the attackers and the bootstrap; None means 0 (an audit is always
        reproducible).
    return_attackers : bool, default=False
        Also return each attacker's figures.

    Returns
    -------
    table : DataFrame
        Indexed by attribute, with columns ``type``; ``attacker`` (the strongest: highest BAcc,
        or lowest MAE); ``balanced_accuracy`` and ``auc`` (binary: ROC AUC; multi-class: macro
        one-vs-rest), each with ``_low`` / ``_high`` bounds; ``chance_balanced_accuracy``
        (1 / n_classes); ``mae`` with bounds, ``mae_baseline`` (MAE of predicting the attack
        training users' median), ``r2`` with bounds; ``n_train`` (users the attackers learn
        from; with cross-fitting each fold's attackers see (cv − 1) / cv of them) and
        ``n_test`` (scored users); ``protocol``. NaN where a column does not apply.
    attackers : DataFrame
        Only with ``return_attackers=True``: indexed by (attribute, attacker), the columns
        ``type``, ``balanced_accuracy``, ``auc``, ``mae`` and ``r2`` of each attacker.

    See Also
    --------
    LeakageScorer : the same audit as a GridSearchCV scorer.
    default_attackers : the default portfolio.

    Examples
    --------
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.metrics import attribute_leakage
    >>> d = make_interactions(n_users=400, n_items=60, attribute_signal=2.0, random_state=0)
    >>> model = EASE(l2=50.0, device="cpu").fit(d.X[:200])
    >>> S = d.sensitive_features
    >>> table = attribute_leakage(model, d.X[200:], S[200:],
    ...                           X_train=d.X[:200], sensitive_features_train=S[:200])
    >>> table["type"].to_dict()
    {'group': 'categorical', 'age': 'continuous'}
    >>> bool(table.loc["group", "balanced_accuracy_low"] > table.loc["group",
    ...                                                               "chance_balanced_accuracy"])
    True
    >>> int(table.loc["group", "n_train"]), int(table.loc["group", "n_test"])
    (200, 200)
    """
    if sensitive_features is None:
        raise ValueError(f"a leakage audit needs the users' attributes; {_ROUTING_HELP}")
    if (X_train is None) != (sensitive_features_train is None):
        raise ValueError("give X_train and sensitive_features_train together (the attack "
                         "training users and their attributes), or neither for cross-fitting.")
    _check_audit_params(cv, n_bootstraps, confidence)
    S = as_frame(sensitive_features)
    attrs, types = resolve_attribute_types(S, attributes, attribute_types)
    Z, S = _representation(estimator, X, S)
    Z_tr = S_tr = None
    if X_train is not None:
        S_tr = as_frame(sensitive_features_train)
        missing = [a for a in attrs if a not in S_tr.columns]
        if missing:
            raise ValueError(f"sensitive_features_train lacks the audited attribute(s) "
                             f"{missing}.")
        Z_tr, S_tr = _representation(estimator, X_train, S_tr)
        if Z_tr.shape[1] != Z.shape[1]:
            raise ValueError(f"the representation of X_train has {Z_tr.shape[1]} columns but "
                             f"that of X has {Z.shape[1]}.")
    seed = _seed(random_state)
    kw = dict(attacker=attacker, cv=int(cv), n_bootstraps=int(n_bootstraps),
              confidence=float(confidence), seed=seed)
    rows, details = [], []
    for a in attrs:
        known, y = _target(S[a], types[a])
        if Z_tr is not None:
            known_tr, y_tr = _target(S_tr[a], types[a])
            z_tr = Z_tr[known_tr]
        else:
            z_tr = y_tr = None
        row, per_attacker = _cached_audit(types[a], a, Z[known], y, z_tr, y_tr, **kw)
        rows.append(row)
        per_attacker.insert(0, "type", types[a])
        details.append(per_attacker.set_axis(
            pd.MultiIndex.from_product([[a], per_attacker.index],
                                       names=["attribute", "attacker"])))
    table = pd.DataFrame(rows, index=pd.Index(attrs, name="attribute"), columns=_COLUMNS)
    if not return_attackers:
        return table
    return table, pd.concat(details).reindex(columns=_ATTACKER_COLUMNS)


class LeakageScorer(_RoutedScorer):
    """Attribute leakage of ``transform(X)`` as a scorer (less leakage = higher score).

    Runs :func:`attribute_leakage` for one attribute on the held-out users of a CV split
    (cross-fitted: each user is predicted by attackers trained on the other folds) and returns
    ``-balanced_accuracy``, ``-auc``, ``-r2`` or ``+mae`` of the strongest attacker (a larger
    attacker error is less leakage), so GridSearchCV's "higher is better" holds. The attributes
    arrive as ``sensitive_features`` metadata: enable routing and call
    ``set_score_request(sensitive_features=True)``. Two scorers of one attribute (BAcc and AUC,
    say) share one audit of each candidate.

    Parameters
    ----------
    attribute : str or None, default=None
        Column of ``sensitive_features`` to audit; None when it has a single column.
    metric : {"balanced_accuracy", "auc", "mae", "r2"}, default="balanced_accuracy"
        The first two need a categorical attribute, the last two a continuous one.
    attribute_type : {"categorical", "continuous"} or None, default=None
        Overrides the dtype inference.
    attacker, cv, random_state
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
    >>> bool((search.cv_results_["mean_test_leak"] < -0.5).all())
    True
    """

    _metadata = ("sensitive_features",)
    _METRICS = ("balanced_accuracy", "auc", "mae", "r2")

    def __init__(self, attribute=None, metric="balanced_accuracy", *, attribute_type=None,
                 attacker=None, cv=5, random_state=0):
        if metric not in self._METRICS:
            raise ValueError(f"metric must be one of {self._METRICS}; got {metric!r}.")
        if attribute_type is not None and attribute_type not in ATTRIBUTE_TYPES:
            raise ValueError(f"attribute_type must be 'categorical', 'continuous' or None; got "
                             f"{attribute_type!r}.")
        _check_audit_params(cv, 0, 0.5)
        self.attribute = attribute
        self.metric = metric
        self.attribute_type = attribute_type
        self.attacker = attacker
        self.cv = cv
        self.random_state = random_state

    def audit(self, estimator, X, y=None, sensitive_features=None):
        """The one-row table of :func:`attribute_leakage` for ``attribute`` (no interval)."""
        if sensitive_features is None:
            raise ValueError(f"LeakageScorer needs the users' attributes; {_ROUTING_HELP}")
        S = as_frame(sensitive_features)
        attr = self.attribute
        if attr is None:
            if S.shape[1] != 1:
                raise ValueError(f"sensitive_features has columns {list(S.columns)}; name the "
                                 "one to audit with LeakageScorer(attribute=<column>).")
            attr = S.columns[0]
        types = None if self.attribute_type is None else {attr: self.attribute_type}
        return attribute_leakage(estimator, X, S, attributes=[attr], attribute_types=types,
                                 attacker=self.attacker, cv=self.cv, n_bootstraps=0,
                                 random_state=self.random_state)

    def __call__(self, estimator, X, y=None, sensitive_features=None, **metadata):
        row = self.audit(estimator, X, sensitive_features=sensitive_features).iloc[0]
        needs = "continuous" if self.metric in ("mae", "r2") else "categorical"
        if row["type"] != needs:
            other = "mae or r2" if needs == "categorical" else "balanced_accuracy or auc"
            raise ValueError(f"metric={self.metric!r} needs a {needs} attribute, but "
                             f"{row.name!r} is {row['type']}; use {other} or set "
                             "attribute_type.")
        value = float(row[self.metric])
        return value if self.metric == "mae" else -value
