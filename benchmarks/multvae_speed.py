"""MultVAE / AdvXMultVAE training-step time on ML-1M (batch 500), the issue-4 speed target.

Target: <= 1.3 ms per step on an H100 (RecBole 1.2.1's MultVAE: 6-7 ms per step, 0.078 s per
epoch on the same machine). A step = one forward + backward + Adam update on 500 users; the
time per step is the epoch time (after a warm-up epoch) divided by the steps in the epoch.

    SKADVREC_DATA=../shared/data python benchmarks/multvae_speed.py --device cuda
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from _common import header, print_table
from advxmultvae_ml1m import load
from skadvrec.vae import AdvXMultVAE, MultVAE


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    header("MultVAE training-step time, ML-1M, batch 500", args.device)
    X, S = load()
    rows = []
    common = dict(batch_size=500, max_iter=args.epochs, early_stopping=False, device=args.device,
                  random_state=0)
    models = {
        "MultVAE [n→600→200]": MultVAE(**common),
        "AdvXMultVAE gender+age, 10 heads": AdvXMultVAE(
            attributes=["gender", "age"], attribute_types={"age": "continuous"}, n_heads=10,
            grad_scale=200.0, **common),
    }
    steps = math.ceil(X.shape[0] / 500)
    for name, model in models.items():
        model.fit(X, sensitive_features=S if isinstance(model, AdvXMultVAE) else None)
        secs = [h["seconds"] for h in model.history_[1:]]  # first epoch = warm-up
        rows.append({"model": name, "steps/epoch": steps,
                     "s/epoch": f"{np.median(secs):.3f}",
                     "ms/step": f"{1000 * np.median(secs) / steps:.2f}"})
    print_table(rows, ["model", "steps/epoch", "s/epoch", "ms/step"])


if __name__ == "__main__":
    main()
