"""skadvrec.plot, headless (Agg): each plot draws the numbers it is given."""

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skadvrec.plot import (  # noqa: E402
    pareto_front,
    plot_attack_heatmap,
    plot_group_metrics,
    plot_tradeoff,
    plot_uplift_curve,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.random(40), rng.random(40)
    x[3], y[3] = np.nan, 0.99  # NaN points are never on the front
    mask = pareto_front(x, y)
    for i in range(40):
        dominated = any(x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i])
                        for j in range(40) if not np.isnan(x[j]))
        assert mask[i] == (not dominated and not np.isnan(x[i]))
    # minimising y flips which points survive
    lo = pareto_front(x, y, maximize=(True, False))
    assert lo[np.nanargmax(np.where(np.isnan(x), -1, x))]
    assert not np.array_equal(mask, lo)


def test_tradeoff_from_cv_results_draws_the_front():
    cv_results = {
        "params": [{"model__rho": r} for r in (0.0, 0.1, 0.3, 0.6)],
        "mean_test_recall": np.array([0.12, 0.13, 0.15, 0.01]),
        "mean_test_thr": np.array([-0.0045, -0.0040, -0.0026, 0.0]),  # scorer: -T-HR
    }
    ax = plot_tradeoff(cv_results, "recall", "thr")
    front = ax.get_lines()[0]
    assert front.get_label() == "Pareto front"
    # (0.15, -0.0026) dominates 0.0 and 0.1; 0.6 stays (best robustness)
    np.testing.assert_allclose(front.get_xdata(), [0.01, 0.15])
    np.testing.assert_allclose(front.get_ydata(), [0.0, -0.0026])
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["rho=0", "rho=0.1", "rho=0.3", "rho=0.6"]


def test_tradeoff_negates_and_names_missing_scores():
    table = pd.DataFrame({"ndcg": [0.5, 0.48], "leak": [-0.68, -0.54]},
                         index=pd.Index(["MultVAE", "AdvXMultVAE"], name="model"))
    ax = plot_tradeoff(table, "ndcg", "leak", negate=(False, True), maximize=(True, False),
                       label="model")
    np.testing.assert_allclose(sorted(ax.get_lines()[0].get_ydata()), [0.54, 0.68])
    assert {t.get_text() for t in ax.texts} == {"MultVAE", "AdvXMultVAE"}
    with pytest.raises(KeyError, match="mean_test_gap"):
        plot_tradeoff({"params": [{}], "mean_test_ndcg": [0.1]}, "ndcg", "gap")


def test_group_bars_heights_are_the_group_means():
    a = pd.DataFrame({"mean": [0.45, 0.54], "std": [0.1, 0.2], "n_users": [10, 20]},
                     index=pd.Index(["F", "M"], name="group"))
    b = pd.DataFrame({"mean": [0.42, 0.53], "std": [0.1, 0.2], "n_users": [10, 20]},
                     index=pd.Index(["F", "M"], name="group"))
    ax = plot_group_metrics({"MultVAE": a, "AdvXMultVAE": b})
    heights = [round(bar.get_height(), 4) for bar in ax.patches]
    assert heights == [0.45, 0.54, 0.42, 0.53]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["F", "M"]


def test_uplift_curve_in_percent_with_significance():
    curve = pd.DataFrame({"q": [0.05, 0.1, 0.2, 0.5], "relative_change": [0.173, 0.09, 0.048,
                                                                         0.026],
                          "p_value": [0.0001, 0.001, 0.2, 0.6]})
    ax = plot_uplift_curve(curve)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [5, 10, 20, 50])
    np.testing.assert_allclose(line.get_ydata(), [17.3, 9.0, 4.8, 2.6])
    filled, hollow = ax.collections[0], ax.collections[1]
    assert len(filled.get_offsets()) == 2 and len(hollow.get_offsets()) == 2


def test_attack_heatmap_from_long_table_averages_seeds():
    long = pd.DataFrame({"model": ["BPR-MF"] * 3 + ["PamaCF"] * 3,
                         "attack": ["random", "random", "bandwagon"] * 2,
                         "t-hr@50": [0.004, 0.005, 0.006, 0.002, 0.003, 0.001]})
    ax = plot_attack_heatmap(long)
    data = np.asarray(ax.images[0].get_array())
    rows = [t.get_text() for t in ax.get_yticklabels()]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert rows == ["BPR-MF", "PamaCF"] and cols == ["random", "bandwagon"]
    np.testing.assert_allclose(data, [[0.0045, 0.006], [0.0025, 0.001]])
    assert "0.0045" in {t.get_text() for t in ax.texts}


def test_plots_draw_on_a_given_axes_and_save(tmp_path):
    _, axes = plt.subplots(1, 2)
    table = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0]})
    assert plot_tradeoff(table, "a", "b", ax=axes[1]) is axes[1]
    axes[1].figure.savefig(tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000
