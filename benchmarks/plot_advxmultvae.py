"""Trade-off plot for the AdvXMultVAE λ grid from advxmultvae_ml1m.py's JSON output.

    python benchmarks/plot_advxmultvae.py results/advxmultvae_ml1m.json \
        benchmarks/figures/advxmultvae_tradeoff.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    res = json.loads(open(src).read())
    adv, base = res["AdvXMultVAE"], res["MultVAE"]
    top_age = max(p["grad_scale"]["age"] for p in adv["params"]) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [("gender bacc", -1, "gender balanced accuracy of the attacker (0.5 = none)"),
              ("age mae", 1, "age MAE of the attacker (higher = less leakage)")]
    for ax, (key, sign, label) in zip(axes, panels):
        for i, params in enumerate(adv["params"]):
            lam = params["grad_scale"]
            x = sign * adv[f"mean_test_{key}"][i]
            y = adv["mean_test_ndcg@10"][i]
            ax.errorbar(x, y, xerr=adv[f"std_test_{key}"][i], yerr=adv["std_test_ndcg@10"][i],
                        fmt="o", capsize=2, color=plt.cm.viridis(lam["age"] / top_age))
            ax.annotate(f"({lam['gender']:g},{lam['age']:g})", (x, y), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        if res.get("best_params") in adv["params"]:  # the refit's choice
            i = adv["params"].index(res["best_params"])
            ax.plot(sign * adv[f"mean_test_{key}"][i], adv["mean_test_ndcg@10"][i], "o", ms=14,
                    mfc="none", mec="black", label="refit choice")
        ax.errorbar(sign * base[f"mean_test_{key}"][0], base["mean_test_ndcg@10"][0],
                    xerr=base[f"std_test_{key}"][0], yerr=base["std_test_ndcg@10"][0],
                    fmt="*", ms=12, color="red", label="MultVAE")
        ax.axhline(0.9 * base["mean_test_ndcg@10"][0], ls="--", lw=0.8, color="grey",
                   label="−10 % NDCG@10 of MultVAE")
        if key == "gender bacc":
            ax.axvline(0.55, ls=":", lw=0.8, color="grey", label="BAcc 0.55")
        ax.set_xlabel(label)
        ax.set_ylabel("NDCG@10 (20/80 fold-in)")
        ax.legend(fontsize=8)
    fig.suptitle("AdvXMultVAE on ML-1M: (λ_gender, λ_age), mean ± std over 3 user splits; "
                 "colour = λ_age")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
