"""Parameter validation: scikit-learn's ``_parameter_constraints`` machinery, in one place.

Every estimator declares ``_parameter_constraints`` (a dict ``name -> list of constraints``, as
scikit-learn's own estimators do) and ``fit`` validates them once, with errors that name the
parameter (``InvalidParameterError``, a ``ValueError`` and ``TypeError``). scikit-learn keeps the
constraint classes in a private module; they are imported here only, so a change there is
mended in one file.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import (HasMethods, Interval, InvalidParameterError,
                                             Options, StrOptions,
                                             validate_parameter_constraints)

__all__ = ["HasMethods", "Integral", "Interval", "InvalidParameterError", "Options", "Real",
           "StrOptions", "validate_parameter_constraints", "DEVICE", "DTYPE",
           "POSITIVE_INT", "NON_NEGATIVE_INT", "POSITIVE_REAL", "NON_NEGATIVE_REAL",
           "UNIT_OPEN", "ITERATIVE_CONSTRAINTS", "COMMON_CONSTRAINTS"]

POSITIVE_INT = [Interval(Integral, 1, None, closed="left")]
NON_NEGATIVE_INT = [Interval(Integral, 0, None, closed="left")]
POSITIVE_REAL = [Interval(Real, 0, None, closed="neither")]
NON_NEGATIVE_REAL = [Interval(Real, 0, None, closed="left")]
UNIT_OPEN = [Interval(Real, 0, 1, closed="neither")]
DEVICE = [str]  # "auto" | "cpu" | "cuda" | "cuda:<i>", resolved (and checked) in fit
DTYPE = [StrOptions({"float32", "float64"})]

# the parameters every recommender shares
COMMON_CONSTRAINTS = {
    "dtype": DTYPE,
    "device": DEVICE,
    "batch_size": POSITIVE_INT,
    "rating_threshold": [Real, None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}

# and the ones of the recommenders trained by epochs (IterativeRecommender)
ITERATIVE_CONSTRAINTS = {
    **COMMON_CONSTRAINTS,
    "max_iter": POSITIVE_INT,
    "early_stopping": ["boolean"],
    "n_iter_no_change": POSITIVE_INT,
    "validation_fraction": UNIT_OPEN,
    "validation_metric": [str],
}
