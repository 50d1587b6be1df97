"""Closed-form linear concept erasure of protected attributes from a user representation.

:class:`LinearErasure` is LEACE (Belrose et al., "LEACE: Perfect linear concept erasure in
closed form", NeurIPS 2023): the affine map of least mean-squared change after which no linear
predictor recovers the attribute better than a constant. It is a scikit-learn transformer, so it
sits after a recommender's ``transform`` in a Pipeline, or is applied to any representation.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._params import validate_parameter_constraints
from ._sensitive import as_frame, resolve_attribute_types

__all__ = ["LinearErasure"]


class LinearErasure(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Remove protected attributes from a representation by LEACE, a closed-form linear erasure.

    For representations x with covariance Σ_xx and the attribute coded as a vector c (the
    one-hot of a categorical attribute's classes, or a continuous attribute's value; several
    attributes are stacked), the eraser is ``r(x) = x − W⁺ P W (x − μ)``, with μ the mean
    representation, the whitening ``W = (Σ_xx^{1/2})⁺`` and ``P`` the orthogonal projection onto
    the column space of ``W Σ_xc`` (Σ_xc the cross-covariance). On the users it is
    fitted on, ``r(x)`` has zero covariance with every coded attribute, so every linear
    predictor of an attribute does no better than a constant (a linear attacker reads chance);
    among the affine maps with that property it changes x least in mean squared distance. The
    change has rank at most ``n_classes − 1`` per categorical attribute and 1 per continuous
    one. Non-linear attackers may still recover what the erasure leaves in higher moments: audit
    with :func:`~skadvrec.metrics.attribute_leakage`, whose default portfolio includes
    non-linear attackers.

    The closed form is computed here in float64 numpy (the eigendecomposition of Σ_xx and an SVD
    of ``W Σ_xc``, with ranks cut at the numerical tolerance), without covariance shrinkage, so
    the in-sample guarantee holds exactly up to rounding.

    Parameters
    ----------
    attributes : str, sequence of str or None, default=None
        Columns of ``y`` to erase; None erases every column.
    attribute_types : dict or None, default=None
        ``{attribute: "categorical" | "continuous"}`` overriding the dtype inference (category,
        object, string and bool columns are categorical, numeric ones continuous).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Mean representation of the training users (the erasure keeps it).
    proj_left_ : ndarray of shape (n_features, rank_)
    proj_right_ : ndarray of shape (rank_, n_features)
        The eraser is ``X − (X − mean_) @ proj_right_.T @ proj_left_.T``.
    rank_ : int
        Rank of the change (≤ Σ (n_classes − 1) over categorical attributes + the number of
        continuous ones).
    attributes_ : list
        The erased attributes.
    attribute_types_ : dict
        ``{attribute: "categorical" | "continuous"}``.
    classes_ : dict
        ``{attribute: ndarray of class labels}`` for the categorical attributes.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has feature names.

    See Also
    --------
    skadvrec.metrics.attribute_leakage : audit what an attacker still recovers.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skadvrec.erasure import LinearErasure
    >>> rng = np.random.default_rng(0)
    >>> y = rng.choice(["F", "M"], 500)
    >>> Z = rng.normal(size=(500, 8)) + 2.0 * (y == "F")[:, None]
    >>> eraser = LinearErasure().fit(Z, y)
    >>> Z_erased = eraser.transform(Z)
    >>> eraser.rank_
    1
    >>> cov = np.cov(np.c_[Z_erased, y == "F"].T)[-1, :-1]
    >>> bool(np.abs(cov).max() < 1e-10)
    True

    In a Pipeline after a recommender, the erasure applies to its ``transform`` output (the
    recommender ignores ``y``):

    >>> from sklearn.pipeline import make_pipeline
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> d = make_interactions(n_users=300, n_items=40, attribute_signal=2.0, random_state=0)
    >>> pipe = make_pipeline(EASE(device="cpu"), LinearErasure(attributes="group"))
    >>> pipe = pipe.fit(d.X, d.sensitive_features)
    >>> pipe.transform(d.X).shape
    (300, 40)
    """

    _parameter_constraints = {
        "attributes": [str, list, tuple, None],
        "attribute_types": [dict, None],
    }

    def __init__(self, attributes=None, attribute_types=None):
        self.attributes = attributes
        self.attribute_types = attribute_types

    def _concept(self, S):
        """Centred attribute codes (n, q); unknown values (NaN) code as the mean."""
        blocks = []
        self.classes_ = {}
        for a in self.attributes_:
            col = S[a]
            known = col.notna().to_numpy()
            if self.attribute_types_[a] == "categorical":
                classes, codes = np.unique(np.asarray(col[known].astype(str)),
                                           return_inverse=True)
                if len(classes) < 2:
                    raise ValueError(f"attribute {a!r} has {len(classes)} class among the "
                                     "users; there is nothing to erase. Drop it from "
                                     "attributes.")
                self.classes_[a] = classes
                block = np.zeros((len(col), len(classes)))
                block[np.flatnonzero(known), codes] = 1.0
            else:
                block = np.zeros((len(col), 1))
                block[known, 0] = col[known].to_numpy(dtype=np.float64)
                if not np.all(np.isfinite(block)):
                    raise ValueError(f"attribute {a!r} contains infinite values.")
            if known.sum() < 2:
                raise ValueError(f"attribute {a!r} is known for {known.sum()} user(s); an "
                                 "erasure needs at least two.")
            block[known] -= block[known].mean(axis=0)
            blocks.append(block)
        return np.hstack(blocks)

    def fit(self, X, y):
        """Fit the eraser of the attributes ``y`` from the representation X.

        Parameters
        ----------
        X : array-like of shape (n_users, n_features)
            The representation (e.g. a recommender's ``transform`` output).
        y : DataFrame, Series or array-like of shape (n_users,) or (n_users, n_attributes)
            The protected attributes, one row per row of X; NaN marks an unknown value.

        Returns
        -------
        self : object
        """
        validate_parameter_constraints(self._parameter_constraints, self.get_params(deep=False),
                                       caller_name=type(self).__name__)
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if y is None:
            raise ValueError("LinearErasure requires y to be passed, but the target y is None: "
                             "call fit(X, y) with y the protected attributes to erase, one row "
                             "per row of X.")
        S = as_frame(y)
        if len(S) != X.shape[0]:
            raise ValueError(f"y has {len(S)} rows but X has {X.shape[0]}; pass one row of "
                             "attributes per row of X.")
        S = S.reset_index(drop=True)
        self.attributes_, self.attribute_types_ = resolve_attribute_types(
            S, self.attributes, self.attribute_types)
        C = self._concept(S)
        n, d = X.shape
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        sigma_xx = Xc.T @ Xc / n
        sigma_xc = Xc.T @ C / n
        lam, V = np.linalg.eigh((sigma_xx + sigma_xx.T) / 2)
        keep = lam > max(lam.max(), 0.0) * d * np.finfo(np.float64).eps
        inv_sqrt = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
        sqrt = np.where(keep, np.sqrt(np.clip(lam, 0.0, None)), 0.0)
        W = (V * inv_sqrt) @ V.T
        W_pinv = (V * sqrt) @ V.T
        U, s, _ = np.linalg.svd(W @ sigma_xc, full_matrices=False)
        rank = int(np.sum(s > (s.max() if s.size else 0.0) * max(U.shape) *
                          np.finfo(np.float64).eps)) if s.size and s.max() > 0 else 0
        U = U[:, :rank]
        self.proj_left_ = W_pinv @ U
        self.proj_right_ = U.T @ W
        self.rank_ = rank
        return self

    def transform(self, X):
        """Erase the attributes from X.

        Parameters
        ----------
        X : array-like of shape (n_users, n_features)

        Returns
        -------
        ndarray of shape (n_users, n_features)
        """
        check_is_fitted(self, "proj_left_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X - ((X - self.mean_) @ self.proj_right_.T) @ self.proj_left_.T

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
