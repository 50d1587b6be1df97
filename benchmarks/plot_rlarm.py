"""Plot the bottom-q curve (the R-LARM paper's Figure 2) from rlarm_ml1m.py's JSON output.

    python benchmarks/plot_rlarm.py results/rlarm_ml1m.json benchmarks/figures/rlarm_bottom_q.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(src, dst):
    res = json.loads(open(src).read())
    curves = res["curves"]
    models = sorted({k.split("|")[0] for k in curves})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, mode in zip(axes, ("same", "independent")):
        width = 0.8 / len(models)
        for i, name in enumerate(models):
            runs = curves[f"{name}|{mode}"]
            qs = runs[0]["q"]
            rel = np.array([r["relative_change"] for r in runs]) * 100
            x = np.arange(len(qs)) + (i - (len(models) - 1) / 2) * width
            ax.bar(x, rel.mean(axis=0), width, yerr=rel.std(axis=0, ddof=1) if len(runs) > 1
                   else None, label=name, capsize=2)
        ax.set_xticks(np.arange(len(qs)), [f"{int(q * 100)}%" for q in qs])
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("bottom q of test users by EASE NDCG@100")
        ax.set_title({"same": "selected on the measured targets (paper)",
                      "independent": "selected on an independent fold-in split"}[mode])
    axes[0].set_ylabel("NDCG@100 change vs EASE (%)")
    axes[1].legend(fontsize=8)
    fig.suptitle("ML-1M, 600 test users, mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
