"""Command line: ``skadvrec`` (or ``python -m skadvrec``).

``skadvrec benchmark`` runs every estimator of the package side by side on one dataset and
prints one table of accuracy, fairness and robustness columns; with no command it runs with
its defaults (embedded synthetic data, offline, CPU or GPU). ``skadvrec models`` lists the
estimators. The benchmark's protocol is in :mod:`skadvrec.cli._protocol`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from .. import __version__
from ._protocol import ATTACKS, DATASETS, MODELS, BenchmarkConfig

_DESCRIPTION = """\
skadvrec: scikit-learn-compatible adversarially trained recommenders.

With no command, `skadvrec` (and `python -m skadvrec`) runs `skadvrec benchmark` with its
defaults: every estimator of the package on embedded synthetic data (planted user groups, an
attribute signal, a poisoning attack), offline, in about a minute on a 2-core CPU."""

_BENCH_DESCRIPTION = """\
Run the package's estimators side by side on one dataset and print one table:
  accuracy    NDCG@k and Recall@k of held-out users (80/20 fold-in)
  fairness    NDCG@k gap between the groups of a protected attribute, the attribute's
              leakage (balanced accuracy of an attacker on transform(X)), and the relative
              NDCG@100 change on the bottom q of users of an EASE reference
  robustness  T-HR@50 of an attack's target items after the model is fitted again on the
              training users plus the attack's fake users (lower is more robust)
Each model and seed is one run (a progress bar counts them); a run that fails is reported
under the table and the others go on."""

_BENCH_EPILOG = """\
examples:
  skadvrec benchmark                                   # synthetic data, every model, seed 0
  skadvrec benchmark --models ease rlarm pamacf --seeds 0 1 2 --out results/bench
  skadvrec benchmark --dataset ml-1m --data-home ../shared/data --device cuda
  skadvrec benchmark --config bench.toml               # keys as the long options; a
                                                       # [params.MODEL] table sets parameters
  skadvrec models                                      # the model names

Real datasets are read from --data-home (default: $SKADVREC_DATA, else ~/skadvrec_data) and
never downloaded unless --download is given (MovieLens from GroupLens, Gowalla from the
LightGCN repository, SHA-256 checked)."""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the descriptions' line breaks and show every default (but not "None")."""

    def _get_help_string(self, action):
        if action.default is None or action.default is argparse.SUPPRESS or isinstance(
                action.default, bool):
            return action.help
        if isinstance(action.default, (list, tuple)):
            return f"{action.help} (default: {' '.join(map(str, action.default))})"
        return super()._get_help_string(action)


def _device(value):
    """argparse type of --device: a one-line error for CUDA on a machine without it."""
    v = str(value).strip().lower()
    if v in ("auto", "cpu"):
        return v
    if v == "cuda" or re.fullmatch(r"cuda:\d+", v):
        import torch

        if not torch.cuda.is_available():
            why = ("this torch is a CPU build" if torch.version.cuda is None
                   else "no CUDA device is visible")
            raise argparse.ArgumentTypeError(
                f"{value!r} asked for, but CUDA is not available here ({why}, torch "
                f"{torch.__version__}); use --device cpu or --device auto")
        if ":" in v and int(v.split(":")[1]) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{value!r}: there are {torch.cuda.device_count()} CUDA device(s), numbered "
                "from 0")
        return v
    raise argparse.ArgumentTypeError(f"{value!r} is not a device; use auto, cpu, cuda or "
                                     "cuda:N")


def _share_or_count(value):
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if x <= 0 or (x >= 1 and x != int(x)):
        raise argparse.ArgumentTypeError(f"{value!r}: give a share in (0, 1) or a whole count")
    return int(x) if x >= 1 else x


def _positive_int(value):
    try:
        x = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if x < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 1")
    return x


def _share(value):
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be in (0, 1]")
    return x


def _models_help():
    return ", ".join(MODELS)


def build_parser():
    """The ``skadvrec`` argument parser (sub-commands ``benchmark`` and ``models``)."""
    parser = argparse.ArgumentParser(prog="skadvrec", description=_DESCRIPTION,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"skadvrec {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="{benchmark,models}")
    b = sub.add_parser("benchmark", help="run the estimators side by side on one dataset and "
                       "print one table (the default command)", description=_BENCH_DESCRIPTION,
                       epilog=_BENCH_EPILOG, formatter_class=_Formatter)
    data = b.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="synthetic",
                      help="dataset to run on; synthetic is generated in memory (no download)")
    data.add_argument("--data-home", metavar="DIR", default=None,
                      help="folder holding ml-100k/, ml-1m/ or gowalla/ (default: "
                           "$SKADVREC_DATA, else ~/skadvrec_data)")
    data.add_argument("--download", action="store_true",
                      help="download a missing real dataset into --data-home (checksummed)")
    data.add_argument("--n-users", type=_positive_int, default=2000, metavar="N",
                      help="synthetic data only: number of users")
    data.add_argument("--n-items", type=_positive_int, default=500, metavar="N",
                      help="synthetic data only: number of items")
    data.add_argument("--attribute-signal", type=float, default=0.6, metavar="S",
                      help="synthetic data only: how strongly the planted group shapes a "
                           "user's items (0 = not at all)")
    run = b.add_argument_group("runs")
    run.add_argument("--models", nargs="+", metavar="NAME", default=["all"],
                     help=f"models to run, or 'all'; one of: {_models_help()}")
    run.add_argument("--device", type=_device, default="auto",
                     help="auto (CUDA when available), cpu, cuda or cuda:N")
    run.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                     help="one run of every model per seed (user split, initialisation, "
                          "attack); the table shows mean ± std")
    run.add_argument("--test-size", type=_share_or_count, default=0.2, metavar="SIZE",
                     help="held-out users per seed: a share or a count")
    run.add_argument("--threads", type=int, default=0, metavar="N",
                     help="torch threads; 0: 1 on the synthetic data (its models are too small "
                          "to gain from more), torch's default on real data")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="also show a progress bar inside each iterative fit")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar over the runs")
    measure = b.add_argument_group("measures")
    measure.add_argument("--k", type=_positive_int, default=20,
                         help="cut-off of NDCG@k and Recall@k (and of the group gap)")
    measure.add_argument("--q", type=_share, default=0.2,
                         help="share of worst-served users (by EASE) for the uplift column")
    measure.add_argument("--attacks", nargs="+", choices=ATTACKS, default=["random"],
                         help="poisoning attacks, one T-HR@50 column each")
    measure.add_argument("--n-fake-users", type=_share_or_count, default=0.02, metavar="SIZE",
                         help="fake users of each attack: a share of the training users or a "
                              "count")
    measure.add_argument("--n-targets", type=_positive_int, default=5, metavar="N",
                         help="unpopular items each attack promotes")
    io = b.add_argument_group("input and output")
    io.add_argument("--config", metavar="FILE.toml", default=None,
                    help="read options from a TOML file (keys as the long options, with _ or "
                         "-; a [params.MODEL] table sets that model's parameters); options "
                         "given on the command line win. --out writes the run's config.toml")
    io.add_argument("--out", metavar="DIR", default=None,
                    help="also write runs.csv, summary.csv, results.md, config.toml and PNG "
                         "plots (trade-offs, robustness heat map) into DIR")
    sub.add_parser("models", help="list the estimators the benchmark runs",
                   description="List the estimators the benchmark runs, with their names for "
                   "--models.", formatter_class=_Formatter)
    return parser, b


_LIST_KEYS = ("models", "seeds", "attacks")


def _read_config(path, bench):
    """TOML file -> (defaults for the benchmark parser, per-model params)."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            bench.error("--config needs Python >= 3.11 (tomllib) or the tomli package")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        bench.error(f"--config: no such file {path!r}")
    except tomllib.TOMLDecodeError as exc:
        bench.error(f"--config {path}: not valid TOML ({exc})")
    params = raw.pop("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        bench.error(f"--config {path}: 'params' must hold one table per model, e.g. "
                    "[params.ease] with l2 = 200.0")
    unknown_models = sorted(set(params) - set(MODELS))
    if unknown_models:
        bench.error(f"--config {path}: [params.{unknown_models[0]}] names no model; models: "
                    f"{_models_help()}")
    dests = {a.dest: a for a in bench._actions if a.dest not in ("help", "config")}
    defaults = {}
    for key, value in raw.items():
        dest = key.replace("-", "_")
        if dest not in dests:
            bench.error(f"--config {path}: unknown key {key!r}; the keys are the long options: "
                        f"{', '.join(sorted(dests))}")
        action = dests[dest]
        if dest in _LIST_KEYS and not isinstance(value, list):
            value = [value]
        if action.type is not None and not isinstance(value, list):
            try:
                value = action.type(str(value)) if not isinstance(value, bool) else value
            except argparse.ArgumentTypeError as exc:
                bench.error(f"--config {path}: {key}: {exc}")
        defaults[dest] = value
    return defaults, params


def _to_config(args, params, bench):
    models = []
    for m in args.models:
        models += [x for x in str(m).replace(",", " ").split() if x]
    if models == ["all"] or not models:
        models = []
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        bench.error(f"--models: unknown model {unknown[0]!r}; choose among: {_models_help()} "
                    "(or all)")
    bad = [a for a in args.attacks if a not in ATTACKS]
    if bad:
        bench.error(f"--attacks: unknown attack {bad[0]!r}; choose among {', '.join(ATTACKS)}")
    if args.dataset not in DATASETS:
        bench.error(f"--dataset: unknown dataset {args.dataset!r}; choose among "
                    f"{', '.join(DATASETS)}")
    try:
        seeds = tuple(int(s) for s in args.seeds)
    except (TypeError, ValueError):
        bench.error(f"--seeds must be integers; got {args.seeds!r}")
    for name, p in params.items():
        try:
            MODELS[name].build(args.dataset, device="cpu", overrides=p)
        except (ValueError, TypeError) as exc:
            bench.error(f"[params.{name}]: {exc}")
    return BenchmarkConfig(
        dataset=args.dataset, data_home=args.data_home, download=bool(args.download),
        models=tuple(models), device=_device(args.device), seeds=seeds, k=int(args.k),
        q=float(args.q), attacks=tuple(dict.fromkeys(args.attacks)),
        n_fake_users=args.n_fake_users, n_targets=int(args.n_targets),
        test_size=args.test_size, n_users=int(args.n_users), n_items=int(args.n_items),
        attribute_signal=float(args.attribute_signal), threads=max(0, int(args.threads)),
        verbose=bool(args.verbose),
        params={k: dict(v) for k, v in params.items()})


def _list_models():
    width = max(len(n) for n in MODELS)
    print("name".ljust(width) + "  family  estimator")
    for name, spec in MODELS.items():
        note = "  (fitted with the protected attribute)" if spec.sensitive else ""
        print(f"{name.ljust(width)}  {spec.family:<6}  {spec.estimator.replace(':', '.')}"
              f"{note}")
    return 0


def _benchmark(cfg, args, bench):
    from ._protocol import format_table, legend, run_benchmark, summarize, write_outputs

    try:
        runs, info = run_benchmark(cfg, progress=not args.no_progress)
    except FileNotFoundError as exc:
        from ..datasets import get_data_home

        bench.error(f"--dataset {cfg.dataset}: not found under {get_data_home(cfg.data_home)} "
                    f"(from {'--data-home' if cfg.data_home else '$SKADVREC_DATA or the default'}"
                    "). On the command line, --data-home DIR names the folder that holds it and "
                    f"--download fetches it from the official source (SHA-256 checked). The "
                    f"loader said: {exc}")
    summary = summarize(runs, cfg)
    print(f"skadvrec benchmark on {cfg.dataset}")
    print(format_table(summary, cfg, markdown=False))
    print()
    print(legend(cfg, info))
    print(f"wall time {info['wall_s']:.0f} s; torch {info['torch']}, {info['threads']} threads")
    if args.out:
        files = write_outputs(args.out, runs, summary, cfg, info)
        print(f"wrote {', '.join(str(f) for f in files)}")
    acc = f"ndcg@{cfg.k}"
    return 0 if acc in runs.columns and bool(runs[acc].notna().any()) else 1


def main(argv=None):
    """Entry point of the ``skadvrec`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, bench = build_parser()
    if not argv or argv[0] not in ("benchmark", "models", "-h", "--help", "--version"):
        argv = ["benchmark", *argv]  # no command: the benchmark with its defaults
    if argv[0] == "benchmark":
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv[1:])
        params = {}
        if known.config:
            defaults, params = _read_config(known.config, bench)
            bench.set_defaults(**defaults)
    args = parser.parse_args(argv)
    if args.command == "models":
        return _list_models()
    if args.data_home is not None and not Path(os.path.expanduser(args.data_home)).is_dir():
        bench.error(f"--data-home {args.data_home!r} is not a folder")
    cfg = _to_config(args, params, bench)
    return _benchmark(cfg, args, bench)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
