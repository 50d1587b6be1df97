"""Pipelines that end in a recommender: ``recommend`` and ``evaluate`` without ``pipe[-1]``.

A scikit-learn :class:`~sklearn.pipeline.Pipeline` offers the final step's ``predict``,
``score`` and ``transform``, but not a recommender's ``recommend`` or ``evaluate``.
:class:`RecommenderPipeline` is a Pipeline that also offers them (when the final step has
them), and :func:`recommend` does the same for any fitted Pipeline: both pass X through the
earlier steps' ``transform`` first (an attack's ``transform`` leaves X unchanged, an
:class:`~skadvrec.preprocessing.InteractionFilter` filters a table) and then call the final
step.
"""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

__all__ = ["RecommenderPipeline", "make_recommender_pipeline", "recommend"]


def _through(pipe, X):
    """X transformed by every step but the last (None and "passthrough" skipped)."""
    for _, step in pipe.steps[:-1]:
        if step is not None and step != "passthrough":
            X = step.transform(X)
    return X


def _final(pipe, method):
    est = pipe.steps[-1][1] if isinstance(pipe, Pipeline) else pipe
    if not hasattr(est, method):
        raise TypeError(f"the final step {type(est).__name__} has no {method}(); a "
                        f"{method} needs a Pipeline that ends in a skadvrec recommender.")
    return est


def recommend(pipe, X, k=10, **kwargs):
    """Top-``k`` items of a fitted Pipeline ending in a recommender (or of a recommender).

    Parameters
    ----------
    pipe : fitted Pipeline or recommender
    X : sparse matrix, DataFrame or sequence of user ids
        Users to recommend for, in the form the Pipeline takes; the earlier steps transform it.
    k : int, default=10
    **kwargs
        Passed to the final step's ``recommend`` (e.g. ``exclude_seen=False``).

    Returns
    -------
    The final step's ``recommend(X_transformed, k)``: an array of item ids (matrix form) or a
    long DataFrame (table form).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skadvrec.attacks import RandomAttack
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.pipeline import recommend
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> pipe = make_pipeline(RandomAttack(n_fake_users=0.05, random_state=0),
    ...                      EASE(l2=10.0, device="cpu")).fit(X)
    >>> recommend(pipe, X[:3], k=5).shape
    (3, 5)
    """
    if isinstance(pipe, Pipeline):
        check_is_fitted(pipe)
        return _final(pipe, "recommend").recommend(_through(pipe, X), k, **kwargs)
    return _final(pipe, "recommend").recommend(X, k, **kwargs)


def _final_has(method):
    def check(self):
        getattr(self._final_estimator, method)  # AttributeError hides the method
        return True
    return check


class RecommenderPipeline(Pipeline):
    """A :class:`~sklearn.pipeline.Pipeline` that also offers its recommender's ``recommend``,
    ``evaluate`` and ``iter_scores``.

    Parameters are those of :class:`~sklearn.pipeline.Pipeline`, so it works wherever a Pipeline
    does (``GridSearchCV``, ``clone``, the skadvrec scorers, which read the attack step's
    targets).

    Examples
    --------
    >>> from skadvrec.attacks import RandomAttack
    >>> from skadvrec.datasets import make_interactions
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.pipeline import RecommenderPipeline
    >>> X = make_interactions(n_users=200, n_items=50, random_state=0).X
    >>> pipe = RecommenderPipeline([("attack", RandomAttack(n_fake_users=0.05, random_state=0)),
    ...                             ("model", EASE(l2=10.0, device="cpu"))]).fit(X)
    >>> pipe.recommend(X[:2], k=3).shape
    (2, 3)
    >>> values, rows = pipe.evaluate(X[150:], ["ndcg@10"])
    >>> values["ndcg@10"].shape
    (50,)
    """

    @available_if(_final_has("recommend"))
    def recommend(self, X, k=10, **kwargs):
        """The final step's ``recommend`` on X passed through the earlier steps."""
        check_is_fitted(self)
        return self._final_estimator.recommend(_through(self, X), k, **kwargs)

    @available_if(_final_has("evaluate"))
    def evaluate(self, X, metrics=("ndcg@100",), **kwargs):
        """The final step's ``evaluate`` on X passed through the earlier steps."""
        check_is_fitted(self)
        return self._final_estimator.evaluate(_through(self, X), metrics, **kwargs)

    @available_if(_final_has("iter_scores"))
    def iter_scores(self, X, **kwargs):
        """The final step's ``iter_scores`` on X passed through the earlier steps."""
        check_is_fitted(self)
        return self._final_estimator.iter_scores(_through(self, X), **kwargs)


def make_recommender_pipeline(*steps, memory=None, verbose=False):
    """:func:`sklearn.pipeline.make_pipeline` for a :class:`RecommenderPipeline`.

    Examples
    --------
    >>> from skadvrec.attacks import RandomAttack
    >>> from skadvrec.linear import EASE
    >>> from skadvrec.pipeline import make_recommender_pipeline
    >>> pipe = make_recommender_pipeline(RandomAttack(), EASE())
    >>> [name for name, _ in pipe.steps]
    ['randomattack', 'ease']
    """
    from sklearn.pipeline import make_pipeline

    inner = make_pipeline(*steps, memory=memory, verbose=verbose)
    return RecommenderPipeline(inner.steps, memory=memory, verbose=verbose)
