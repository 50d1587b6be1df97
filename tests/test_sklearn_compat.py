"""scikit-learn's estimator checks over every estimator, with the inapplicable ones named."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skadvrec.cf import APR, BPRMF, LightGCN, PamaCF
from skadvrec.fm import AAFM, FM, AdvFM
from skadvrec.linear import ARM, EASE, EASEIPW, RLARM

_PREDICT_2D = ("predict returns an (n_users, n_items) score matrix, like a multi-output "
               "regressor over items; this check asserts predict(X).shape == (n_samples,)")

EXPECTED_FAILED = {
    "check_estimator_sparse_array": _PREDICT_2D,
    "check_estimator_sparse_matrix": _PREDICT_2D,
}

_ADV = dict(l2=10.0, ndcg_k=2, max_iter=2, early_stopping=False, batch_size=16,
            device="cpu", random_state=0)
ESTIMATORS = [EASE(l2=10.0, device="cpu"), EASEIPW(l2=10.0, beta=0.5, device="cpu"),
              ARM(**_ADV), RLARM(**_ADV), RLARM(adversary="mlp", hidden_size=3, **_ADV),
              RLARM(learner="closed_form", **_ADV)]
_CF = dict(n_components=4, max_iter=2, batch_size=32, device="cpu", random_state=0)
ESTIMATORS += [BPRMF(**_CF), LightGCN(n_layers=2, **_CF), APR(n_pretrain_epochs=1, **_CF),
               PamaCF(n_pretrain_epochs=1, backbone="lightgcn", **_CF)]
# a matrix is read as the positives of an id-only table (negatives sampled, rows folded in)
_FM = dict(n_components=4, max_iter=2, batch_size=32, device="cpu", random_state=0)
ESTIMATORS += [FM(early_stopping=False, **_FM), AdvFM(early_stopping=False, **_FM),
               AAFM(field_maps=True, **_FM)]


_ONE_ITEM = ("a one-item matrix is rejected because the adversary's ranking cut-off ndcg_k "
             "exceeds the item count; the message says so instead of sklearn's wording")


_NO_NEGATIVE = ("BPR needs an item the user has not interacted with as the negative; a one-item "
                "matrix has none, and the error says so instead of sklearn's wording")


_FM_ONE_ITEM = ("a one-item matrix leaves no item to draw as a negative, so the row-level "
                "validation AUC has one label only; the error says so instead of sklearn's "
                "wording")


def _expected(estimator):
    if isinstance(estimator, (FM, AdvFM, AAFM)) and estimator.early_stopping:
        return {**EXPECTED_FAILED, "check_fit2d_1feature": _FM_ONE_ITEM}
    if isinstance(estimator, (ARM, RLARM)):
        return {**EXPECTED_FAILED, "check_fit2d_1feature": _ONE_ITEM}
    if isinstance(estimator, (BPRMF, LightGCN, APR, PamaCF)):
        return {**EXPECTED_FAILED, "check_fit2d_1feature": _NO_NEGATIVE}
    return EXPECTED_FAILED


@parametrize_with_checks(list(ESTIMATORS), expected_failed_checks=_expected)
def test_sklearn_compatible(estimator, check):
    check(estimator)
