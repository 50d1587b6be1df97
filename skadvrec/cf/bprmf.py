"""BPR-MF: matrix factorisation trained with Bayesian personalised ranking (Rendle et al. 2009)."""

from __future__ import annotations

from ._base import (_ATTRIBUTES_AND_NOTES, _TRAINING_PARAMS, EMBEDDING_CONSTRAINTS,
                    _EmbeddingRecommender)

__all__ = ["BPRMF"]


class BPRMF(_EmbeddingRecommender):
    """Matrix factorisation trained with the BPR loss, sampled on the device.

    s(u, i) = e_uᵀ e_i with one learned vector per user and per item. Each epoch draws as many
    triples (u, i⁺, j⁻) as there are training interactions, uniformly on the device (user
    uniform, positive uniform among the user's items, negative uniform among the others), and
    minimises mean softplus(s(u, j) − s(u, i)) + ``reg`` · mean(‖e_u‖² + ‖e_i‖² + ‖e_j‖²) with
    AdamW (row-sparse: a step updates only the rows of its batch). The defaults are those of the
    PamaCF reference code's MF backbone (dimension 64, batch 2048, 30 epochs, AdamW weight decay
    0.01, reg 1e-4) except the initialisation, N(0, 0.01²) instead of the code's N(0, 0.1²),
    chosen by measurement on Gowalla and ML-1M (BENCHMARKS.md, "Speed (issue 14)"): from
    N(0, 0.1²) BPR needs many epochs to leave the random start (Gowalla Recall@20 after 3 epochs
    0.005 vs 0.12). ``init_std=0.1, learning_rate=1e-3`` is the PamaCF code's setting, used by
    the robustness reproduction (``benchmarks/cf_gowalla.py``) and the defaults of
    :class:`~skadvrec.cf.APR` and :class:`~skadvrec.cf.PamaCF`.

    Parameters
    ----------
    n_components : int, default=64
        Embedding size.
{training}

{attributes}

    Examples
    --------
    >>> from skadvrec.cf import BPRMF
    >>> from skadvrec.datasets import make_interactions
    >>> df = make_interactions(n_users=200, n_items=50, random_state=0,
    ...                        return_frame=True).interactions
    >>> model = BPRMF(n_components=16, max_iter=5, device="cpu", random_state=0).fit(df)
    >>> model.recommend(df[df.user < 3], k=2).shape
    (6, 4)
    """

    _parameter_constraints = EMBEDDING_CONSTRAINTS

    def __init__(self, *, n_components=64, learning_rate=1e-3, weight_decay=0.01, reg=1e-4,
                 init_std=0.01, batch_size=2048, max_iter=30, early_stopping=False,
                 n_iter_no_change=10, validation_fraction=0.1, validation_metric="recall@20",
                 fold_in_l2=1.0, dtype="float32", device="auto", rating_threshold=None,
                 random_state=None, verbose=False):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.reg = reg
        self.init_std = init_std
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.validation_metric = validation_metric
        self.fold_in_l2 = fold_in_l2
        self.dtype = dtype
        self.device = device
        self.rating_threshold = rating_threshold
        self.random_state = random_state
        self.verbose = verbose


BPRMF.__doc__ = BPRMF.__doc__.format(
    training=_TRAINING_PARAMS.format(
        weight_decay=0.01, max_iter=30, learning_rate="1e-3",
        lr_note="", init_std=0.01,
        init_note=(", chosen on Gowalla and ML-1M.\n        ``init_std=0.1`` is the PamaCF "
                   "code's N(0, 0.1²), the reproduction setting"),
        weight_decay_note="PyTorch's AdamW default, as in the PamaCF code"),
    attributes=_ATTRIBUTES_AND_NOTES)
