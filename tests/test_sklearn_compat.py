"""scikit-learn's estimator checks over every estimator, with the inapplicable ones named."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skadvrec.linear import EASE, EASEIPW

_PREDICT_2D = ("predict returns an (n_users, n_items) score matrix, like a multi-output "
               "regressor over items; this check asserts predict(X).shape == (n_samples,)")

EXPECTED_FAILED = {
    "check_estimator_sparse_array": _PREDICT_2D,
    "check_estimator_sparse_matrix": _PREDICT_2D,
}

ESTIMATORS = [EASE(l2=10.0, device="cpu"), EASEIPW(l2=10.0, beta=0.5, device="cpu")]


def _expected(estimator):
    return EXPECTED_FAILED


@parametrize_with_checks(list(ESTIMATORS), expected_failed_checks=_expected)
def test_sklearn_compatible(estimator, check):
    check(estimator)
