"""Plots of accuracy, fairness and robustness results (needs the ``plot`` extra: matplotlib).

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is None) and returns
it, so plots compose and can be saved with ``ax.figure.savefig(path)``:

- :func:`plot_tradeoff`: accuracy against a fairness or robustness score, one point per
  candidate of a ``GridSearchCV`` (``cv_results_``) or row of a table, with the Pareto front;
- :func:`plot_group_metrics`: a ranking metric per group of a sensitive attribute
  (:func:`~skadvrec.metrics.metric_by_group`), for one model or several side by side;
- :func:`plot_uplift_curve`: the relative change on a reference model's bottom-q users
  (:func:`~skadvrec.metrics.underserved_uplift`);
- :func:`plot_attack_heatmap`: a value (T-HR@50, say) for every defence × attack pair.

:func:`pareto_front` is the front itself, as a boolean mask.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

__all__ = ["pareto_front", "plot_tradeoff", "plot_group_metrics", "plot_uplift_curve",
           "plot_attack_heatmap"]

_INSTALL = "pip install 'skadvrec[plot]'  (or: pip install matplotlib)"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"skadvrec.plot needs matplotlib: {_INSTALL}") from exc
    return plt


def _axes(ax, figsize=(6.0, 4.0)):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize)
    return ax


def pareto_front(x, y, *, maximize=(True, True)):
    """Boolean mask of the points that no other point dominates.

    A point dominates another when it is at least as good on both coordinates and strictly
    better on one. Points with a NaN coordinate are never on the front.

    Parameters
    ----------
    x, y : array-like of shape (n_points,)
    maximize : (bool, bool), default=(True, True)
        Whether larger is better on each coordinate (scikit-learn scores: yes).

    Returns
    -------
    ndarray of bool, shape (n_points,)

    Examples
    --------
    >>> from skadvrec.plot import pareto_front
    >>> pareto_front([0.1, 0.2, 0.3, 0.2], [0.9, 0.5, 0.1, 0.4]).tolist()
    [True, True, True, False]
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length; got shapes {x.shape} and "
                         f"{y.shape}.")
    sx = 1.0 if maximize[0] else -1.0
    sy = 1.0 if maximize[1] else -1.0
    a, b = sx * x, sy * y
    ok = ~(np.isnan(a) | np.isnan(b))
    # (n, n) comparison: fine for the size of a hyper-parameter grid or a benchmark table
    geq = (a[None, :] >= a[:, None]) & (b[None, :] >= b[:, None])
    gt = (a[None, :] > a[:, None]) | (b[None, :] > b[:, None])
    dominated = (geq & gt & ok[None, :]).any(axis=1)
    return ok & ~dominated


def _results_frame(results):
    """cv_results_ (dict), a fitted search (has cv_results_) or a DataFrame -> DataFrame."""
    if hasattr(results, "cv_results_"):
        results = results.cv_results_
    if isinstance(results, pd.DataFrame):
        return results
    if isinstance(results, dict):
        return pd.DataFrame({k: (list(v) if np.ndim(v) else v) for k, v in results.items()})
    raise TypeError("results must be a GridSearchCV (or its cv_results_ dict) or a DataFrame; "
                    f"got {type(results).__name__}.")


def _column(frame, name):
    for candidate in (name, f"mean_test_{name}"):
        if candidate in frame.columns:
            return candidate
    scores = [c[len("mean_test_"):] for c in frame.columns if str(c).startswith("mean_test_")]
    hint = f" The searched scores are {scores}." if scores else ""
    raise KeyError(f"no column {name!r} (nor 'mean_test_{name}') in the results; columns: "
                   f"{list(frame.columns)}.{hint}")


def _point_labels(frame, label):
    if label is None:
        if "params" in frame.columns:
            return [", ".join(f"{k.split('__')[-1]}={_fmt(v)}" for k, v in p.items())
                    for p in frame["params"]]
        return [str(i) for i in frame.index]
    if callable(label):
        return [str(label(row)) for _, row in frame.iterrows()]
    if label not in frame.columns and label == frame.index.name:
        return [str(v) for v in frame.index]
    return [str(v) for v in frame[label]]


def _fmt(v):
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return f"{v:g}"
    if isinstance(v, dict):
        return "(" + ", ".join(_fmt(x) for x in v.values()) + ")"
    return str(v)


def plot_tradeoff(results, x, y, *, maximize=(True, True), label=None, annotate=True,
                  negate=(False, False), ax=None):
    """Accuracy against fairness (or robustness): every candidate, with the Pareto front.

    Parameters
    ----------
    results : GridSearchCV, its ``cv_results_`` dict, or DataFrame
        With a search, ``x`` and ``y`` name scorers (``"ndcg"`` reads ``mean_test_ndcg``);
        with a DataFrame (a benchmark table, say), they name columns.
    x, y : str
        The two scores; by default larger is better on both (scikit-learn's convention, so a
        negated leakage or gap score works as it is).
    maximize : (bool, bool), default=(True, True)
        Which direction is better on each axis, as *plotted* (after ``negate``).
    label : str, callable or None, default=None
        Point labels: a column name, a function of the row, or None (a search's parameter
        values; a table's index).
    annotate : bool, default=True
        Write the labels next to the points.
    negate : (bool, bool), default=(False, False)
        Plot ``-x`` / ``-y``, e.g. to show T-HR@50 or balanced accuracy from a scorer that
        returns them negated.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib.axes.Axes
        The front is the line labelled ``"Pareto front"``; its points are the candidates that
        no other candidate beats on both scores.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skadvrec.plot import plot_tradeoff
    >>> table = pd.DataFrame({"ndcg": [0.50, 0.48, 0.40], "bacc": [0.68, 0.54, 0.60]},
    ...                      index=pd.Index(["MultVAE", "Adv (50, 50)", "Adv (800, 0)"]))
    >>> ax = plot_tradeoff(table, "ndcg", "bacc", maximize=(True, False))
    >>> ax.get_lines()[0].get_label()
    'Pareto front'
    """
    frame = _results_frame(results)
    cx, cy = _column(frame, x), _column(frame, y)
    xs = frame[cx].to_numpy(dtype=float) * (-1.0 if negate[0] else 1.0)
    ys = frame[cy].to_numpy(dtype=float) * (-1.0 if negate[1] else 1.0)
    front = pareto_front(xs, ys, maximize=maximize)
    ax = _axes(ax)
    order = np.argsort(xs[front])
    ax.plot(xs[front][order], ys[front][order], "-", color="C3", lw=1.5, zorder=1,
            label="Pareto front")
    ax.scatter(xs[~front], ys[~front], color="0.6", zorder=2, label="dominated")
    ax.scatter(xs[front], ys[front], color="C3", zorder=3, label="on the front")
    if annotate:
        for text, px, py in zip(_point_labels(frame, label), xs, ys):
            if np.isfinite(px) and np.isfinite(py):
                ax.annotate(text, (px, py), textcoords="offset points", xytext=(4, 4),
                            fontsize=8)
    arrow = {True: "higher is better", False: "lower is better"}
    ax.set_xlabel(f"{'-' if negate[0] else ''}{x}  ({arrow[maximize[0]]})")
    ax.set_ylabel(f"{'-' if negate[1] else ''}{y}  ({arrow[maximize[1]]})")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return ax


def plot_group_metrics(by_group, *, value="mean", error="std", ax=None):
    """Bars of a metric per group, for one model or several side by side.

    Parameters
    ----------
    by_group : DataFrame or dict of str to DataFrame
        The output of :func:`~skadvrec.metrics.metric_by_group` (indexed by group, with columns
        ``mean`` and ``std``), or ``{model name: that output}``.
    value : str, default="mean"
        Column drawn as the bar height.
    error : str or None, default="std"
        Column drawn as the error bar (None: no error bar). Note that ``std`` is the spread of
        the users' values, not an uncertainty of the mean.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib.axes.Axes
        The bars are ``ax.patches``, model after model, one per group in each.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skadvrec.plot import plot_group_metrics
    >>> g = pd.DataFrame({"mean": [0.45, 0.54], "std": [0.2, 0.2]}, index=["F", "M"])
    >>> ax = plot_group_metrics({"MultVAE": g})
    >>> [float(round(bar.get_height(), 2)) for bar in ax.patches]
    [0.45, 0.54]
    """
    tables = by_group if isinstance(by_group, dict) else {None: by_group}
    if not tables:
        raise ValueError("by_group is empty; pass metric_by_group(...) or a dict of them.")
    groups = list(dict.fromkeys(g for t in tables.values() for g in t.index))
    ax = _axes(ax)
    width = 0.8 / len(tables)
    pos = np.arange(len(groups))
    for j, (name, table) in enumerate(tables.items()):
        if value not in table.columns:
            raise KeyError(f"column {value!r} not in the per-group table {list(table.columns)}.")
        t = table.reindex(groups)
        err = t[error].to_numpy(dtype=float) if error and error in t.columns else None
        ax.bar(pos + (j - (len(tables) - 1) / 2) * width, t[value].to_numpy(dtype=float),
               width=width, yerr=err, capsize=3, label=name)
    ax.set_xticks(pos)
    ax.set_xticklabels([str(g) for g in groups])
    ax.set_ylabel(value)
    if len(tables) > 1 or None not in tables:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_uplift_curve(curve, *, value="relative_change", alpha=0.05, ax=None):
    """The change on the reference model's bottom-q users against q.

    Parameters
    ----------
    curve : DataFrame or dict of str to DataFrame
        The output of :func:`~skadvrec.metrics.underserved_uplift` (columns ``q``,
        ``relative_change``, ``absolute_change``, ``p_value``), or ``{label: that output}``.
    value : {"relative_change", "absolute_change"}, default="relative_change"
        Relative changes are drawn in percent.
    alpha : float, default=0.05
        Points whose ``p_value`` is below it are filled; the others are hollow.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib.axes.Axes
        One line per curve, x = q in percent of users.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skadvrec.plot import plot_uplift_curve
    >>> c = pd.DataFrame({"q": [0.05, 0.2], "relative_change": [0.17, 0.05],
    ...                   "p_value": [0.001, 0.2]})
    >>> ax = plot_uplift_curve({"R-LARM(NN)": c})
    >>> ax.get_lines()[0].get_ydata().tolist()
    [17.0, 5.0]
    """
    curves = curve if isinstance(curve, dict) else {None: curve}
    ax = _axes(ax)
    scale = 100.0 if value == "relative_change" else 1.0
    for j, (name, c) in enumerate(curves.items()):
        for col in ("q", value):
            if col not in c.columns:
                raise KeyError(f"column {col!r} not in the curve {list(c.columns)}; pass the "
                               "output of skadvrec.metrics.underserved_uplift.")
        q = c["q"].to_numpy(dtype=float) * 100.0
        v = c[value].to_numpy(dtype=float) * scale
        color = f"C{j}"
        ax.plot(q, v, "-", color=color, label=name)
        sig = (c["p_value"].to_numpy(dtype=float) < alpha) if "p_value" in c.columns else (
            np.zeros(len(c), dtype=bool))
        ax.scatter(q[sig], v[sig], color=color, zorder=3)
        ax.scatter(q[~sig], v[~sig], facecolors="white", edgecolors=color, zorder=3)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xlabel("bottom q % of users (by the reference model)")
    ax.set_ylabel("relative change (%)" if value == "relative_change" else "absolute change")
    ax.set_title(f"filled: p < {alpha:g} (paired test)", fontsize=8)
    if len(curves) > 1 or None not in curves:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_attack_heatmap(table, *, index="model", columns="attack", value="t-hr@50", fmt=".4f",
                        cmap="Reds", ax=None):
    """Heat map of a value for every defence (row) × attack (column).

    Parameters
    ----------
    table : DataFrame
        Either wide (defences as the index, attacks as the columns) or long, with columns
        ``index``, ``columns`` and ``value`` (repeated pairs, e.g. seeds, are averaged).
    index, columns, value : str
        Column names of a long table.
    fmt : str, default=".4f"
        Format of the numbers written in the cells.
    cmap : str, default="Reds"
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib.axes.Axes
        The image (``ax.images[0]``) holds the matrix; each cell is annotated with its value.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skadvrec.plot import plot_attack_heatmap
    >>> long = pd.DataFrame({"model": ["BPRMF", "BPRMF", "PamaCF", "PamaCF"],
    ...                      "attack": ["random", "bandwagon"] * 2,
    ...                      "t-hr@50": [0.0045, 0.0050, 0.0026, 0.0021]})
    >>> ax = plot_attack_heatmap(long)
    >>> ax.images[0].get_array().shape
    (2, 2)
    """
    if {index, columns, value} <= set(table.columns):
        wide = table.pivot_table(index=index, columns=columns, values=value, aggfunc="mean",
                                 sort=False)
    else:
        wide = table
    wide = wide.astype(float)
    ax = _axes(ax, figsize=(max(5.0, 2.6 + 1.3 * wide.shape[1]), 1.4 + 0.4 * wide.shape[0]))
    data = wide.to_numpy()
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, aspect="auto")
    ax.figure.colorbar(im, ax=ax, label=value)
    ax.set_xticks(np.arange(wide.shape[1]))
    ax.set_xticklabels([str(c) for c in wide.columns])
    ax.set_yticks(np.arange(wide.shape[0]))
    ax.set_yticklabels([str(r) for r in wide.index])
    finite = data[np.isfinite(data)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                ax.text(j, i, format(data[i, j], fmt), ha="center", va="center", fontsize=8,
                        color="white" if data[i, j] > mid else "black")
    ax.set_xlabel(wide.columns.name or columns)
    ax.set_ylabel(wide.index.name or index)
    return ax
