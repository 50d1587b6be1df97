"""LightGCN (He et al., SIGIR 2020): embeddings smoothed over the user–item graph.

The estimator trains the :class:`~skadvrec.cf._backbones.LightGCNBackbone` (graph propagation,
with its sparse products and their custom backward pass) with the family's BPR trainer.
"""

from __future__ import annotations

from .._params import NON_NEGATIVE_INT
from ._backbones import LightGCNBackbone, normalized_graph, propagate
from ._base import (_ATTRIBUTES_AND_NOTES, _TRAINING_PARAMS, EMBEDDING_CONSTRAINTS,
                    _EmbeddingRecommender)

__all__ = ["LightGCN", "normalized_graph", "propagate"]


class LightGCN(_EmbeddingRecommender):
    """LightGCN trained with BPR (He et al., SIGIR 2020).

    Ego embeddings (``n_components``, N(0, ``init_std``²)) are propagated ``n_layers`` times over
    the normalised user–item graph; the final embedding is the mean of the layers and
    s(u, i) = e_uᵀ e_i. Each step propagates the whole graph on the device (sparse × dense
    products, two per layer), takes a batch of uniformly sampled triples (u, i⁺, j⁻) and
    minimises mean softplus(s(u, j) − s(u, i)) + ``reg`` · mean(‖u⁰‖² + ‖i⁰‖² + ‖j⁰‖²) with AdamW
    (one epoch = as many triples as training interactions). For adversarial training on this
    backbone use :class:`~skadvrec.cf.APR` or :class:`~skadvrec.cf.PamaCF` with
    ``backbone="lightgcn"``.

    Parameters
    ----------
    n_components : int, default=64
        Embedding size.
    n_layers : int, default=3
        Propagation layers (0 gives BPR-MF).
{training}

{attributes}

    Examples
    --------
    >>> from skadvrec.cf import LightGCN
    >>> from skadvrec.datasets import make_interactions
    >>> df = make_interactions(n_users=200, n_items=50, random_state=0,
    ...                        return_frame=True).interactions
    >>> model = LightGCN(n_components=16, max_iter=3, device="cpu", random_state=0).fit(df)
    >>> model.transform(df).shape
    (200, 16)
    """

    _parameter_constraints = {**EMBEDDING_CONSTRAINTS, "n_layers": NON_NEGATIVE_INT}

    def __init__(self, *, n_components=64, n_layers=3, learning_rate=1e-3, weight_decay=0.0,
                 reg=1e-4, init_std=0.1, batch_size=2048, max_iter=1000, early_stopping=False,
                 n_iter_no_change=10, validation_fraction=0.1, validation_metric="recall@20",
                 fold_in_l2=1.0, dtype="float32", device="auto", rating_threshold=None,
                 random_state=None, verbose=False):
        self.n_components = n_components
        self.n_layers = n_layers
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

    def _backbone(self):
        return LightGCNBackbone(self.n_layers)


LightGCN.__doc__ = LightGCN.__doc__.format(
    training=_TRAINING_PARAMS.format(weight_decay=0.0, max_iter=1000, learning_rate="1e-3",
                                     lr_note=" (the LightGCN code)", init_std=0.1,
                                     init_note="",
                                     weight_decay_note="the LightGCN code uses Adam: none"),
    attributes=_ATTRIBUTES_AND_NOTES)
