"""Markdown tables (mean ± std over the CFP seeds) from the JSON files of prompt_ml1m.py.

    python benchmarks/prompt_tables.py [results/] [--backbone-seed 0]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

COLS = ["hit@1", "hit@3", "hit@5", "hit@10", "auc_gender", "auc_age", "auc_occupation"]


def _fmt(v, d=4):
    v = np.asarray(v, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.{d}f}"
    return f"{v.mean():.{d}f} ± {v.std(ddof=1):.{d}f}"


def _rel(v):
    v = 100 * np.asarray(v, dtype=float)
    if len(v) == 1:
        return f"{v[0]:+.1f} %"
    return f"{v.mean():+.1f} ± {v.std(ddof=1):.1f} %"


def table(files):
    """One row per model label: mean ± std over the files (seeds); hit@5 relative to the
    backbone row of the same file (same negatives and audit folds)."""
    per, done = {}, set()
    for f in files:
        seed = re.search(r"_seed(\d+)_", Path(f).name).group(1)
        rows = json.loads(Path(f).read_text())
        base = next(r for r in rows if r["model"] == "P5 backbone")
        for r in rows:
            if (r["model"], seed) in done:  # the backbone row of a seed in several files
                continue
            done.add((r["model"], seed))
            d = per.setdefault(r["model"], {c: [] for c in COLS + ["rel5", "fit_s"]})
            for c in COLS:
                d[c].append(r[c])
            d["rel5"].append(r["hit@5"] / base["hit@5"] - 1)
            d["fit_s"].append(r["fit_s"])
    out = ["| model | n | hit@1 | hit@3 | hit@5 (rel. to P5) | hit@10 | gender AUC | age AUC "
           "| occupation AUC | fit (s) |", "|---" * 10 + "|"]
    for m, d in per.items():
        n = len(d["hit@1"])
        cells = [_fmt(d["hit@1"]), _fmt(d["hit@3"]),
                 f"{_fmt(d['hit@5'])} ({_rel(d['rel5'])})", _fmt(d["hit@10"]),
                 _fmt(d["auc_gender"]), _fmt(d["auc_age"]), _fmt(d["auc_occupation"]),
                 _fmt(d["fit_s"], 0)]
        out.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--backbone-seed", type=int, default=0)
    a = ap.parse_args()
    d, b = Path(a.dir), a.backbone_seed
    single = sorted(d.glob(f"cfp_ml1m_bb{b}_seed*_gender_age_occupation_ce.json"))
    mix = sorted(d.glob(f"cfp_ml1m_bb{b}_seed*_mix_ce_rw.json"))
    gender_w = sorted(d.glob(f"cfp_ml1m_bb{b}_seed*_gender_ce_w*.json"))
    for name, files in (("CFP per attribute", single), ("Prompt Mixture", mix),
                        ("CFP gender, other w", gender_w)):
        if files:
            print(f"### {name}: {[f.name for f in files]}\n\n{table(files)}\n")
    for g in sorted(d.glob(f"grid_ml1m_bb{b}_seed*.json")):
        r = json.loads(g.read_text())
        res = pd.DataFrame(r["results"])
        res["gender AUC"] = -res.pop("mean_test_leak")
        lines = ["| " + " | ".join(res.columns) + " |", "|---" * len(res.columns) + "|"]
        lines += ["| " + " | ".join(f"{v:.4g}" for v in row) + " |" for row in res.to_numpy()]
        print(f"### {g.name}: refit {r['best']}, {r['seconds']:.0f} s, "
              f"{r.get('dropped_rows')} rows dropped\n\n" + "\n".join(lines) + "\n")
    for j in sorted(d.glob(f"p5_ml1m_seed{b}*.json")):
        print(f"### {j.name}\n\n{j.read_text()}\n")


if __name__ == "__main__":
    main()
