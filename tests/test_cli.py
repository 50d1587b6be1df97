"""The ``skadvrec`` command: the benchmark job, its options, files and errors."""

import importlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from skadvrec import cli
from skadvrec.cli._protocol import DATASETS, MODELS, BenchmarkConfig, ModelSpec, run_benchmark
from skadvrec.base import BaseRecommender

SMALL = ["--n-users", "300", "--n-items", "80", "--no-progress"]


def _run(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_registry_holds_every_recommender_of_the_package():
    registered = {spec.estimator_class() for spec in MODELS.values()}
    missing = []
    for family in ("linear", "vae", "cf", "fm", "prompt"):
        try:
            module = importlib.import_module(f"skadvrec.{family}")
        except ModuleNotFoundError:
            continue  # a family not built yet
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, BaseRecommender) and obj not in (
                    registered):
                missing.append(f"skadvrec.{family}.{name}")
    assert not missing, f"add a ModelSpec line to skadvrec/cli/_protocol.py for {missing}"


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_spec_builds_with_valid_parameters(dataset):
    for spec in MODELS.values():
        est = spec.build(dataset, device="cpu", random_state=3, attribute="gender")
        assert est.get_params()["random_state"] == 3


def test_benchmark_writes_tables_and_plots_and_reproduces_from_its_config(tmp_path, capsys):
    out = tmp_path / "run"
    rc, stdout, _ = _run(["benchmark", "--models", "ease", "ease-ipw", "--seeds", "0", "1",
                          "--attacks", "random", "bandwagon", "--out", str(out), *SMALL],
                         capsys)
    assert rc == 0
    assert "EASE-IPW" in stdout and "T-HR@50 bandwagon" in stdout and "leakage BAcc" in stdout
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["model"]) == ["EASE", "EASE", "EASE-IPW", "EASE-IPW"]
    cols = ["ndcg@20", "recall@20", "gap", "leakage", "uplift", "t-hr@50 random",
            "t-hr@50 bandwagon", "fit_s"]
    assert np.isfinite(runs[cols].to_numpy(dtype=float)).all()
    assert (runs["leakage"] > 0.5).all()  # the planted group leaks into x·B
    ease = runs[runs["name"] == "ease"]
    assert (ease["uplift"] == 0).all()  # EASE against its own reference
    assert ease["ndcg@20"].nunique() == 2  # two seeds, two user splits
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert summary.loc["ease", "seeds"] == 2
    np.testing.assert_allclose(summary.loc["ease", "ndcg@20"], ease["ndcg@20"].mean())
    md = (out / "results.md").read_text(encoding="utf-8")
    assert md.count("\n| EASE") == 2 and "±" in md
    for png in ("tradeoff_gap.png", "tradeoff_leakage.png", "robustness.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the written config reproduces the run
    again = tmp_path / "again"
    rc, _, _ = _run(["benchmark", "--config", str(out / "config.toml"), "--out", str(again),
                     "--no-progress"], capsys)
    assert rc == 0
    pd.testing.assert_frame_equal(pd.read_csv(again / "runs.csv").drop(columns="fit_s"),
                                  runs.drop(columns="fit_s"))


def test_no_command_runs_the_default_benchmark(monkeypatch):
    seen = {}

    def fake(cfg, args, bench):
        seen["cfg"] = cfg
        return 0

    monkeypatch.setattr(cli, "_benchmark", fake)
    assert cli.main([]) == 0
    cfg = seen["cfg"]
    assert cfg.dataset == "synthetic" and cfg.model_names() == list(MODELS)
    assert cfg.seeds == (0,) and cfg.attacks == ("random",)
    assert cli.main(["--models", "pamacf", "--seeds", "1", "2"]) == 0
    assert seen["cfg"].model_names() == ["pamacf"] and seen["cfg"].seeds == (1, 2)


def test_config_file_sets_options_and_params_and_the_command_line_wins(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "_benchmark", lambda cfg, a, b: seen.setdefault("cfg", cfg) and 0)
    conf = tmp_path / "b.toml"
    conf.write_text('models = ["ease", "pamacf"]\nseeds = [4, 5]\nn-users = 700\nk = 10\n'
                    '[params.ease]\nl2 = 250.0\n')
    cli.main(["benchmark", "--config", str(conf), "--k", "30"])
    cfg = seen["cfg"]
    assert cfg.model_names() == ["ease", "pamacf"] and cfg.seeds == (4, 5)
    assert cfg.n_users == 700 and cfg.k == 30
    assert MODELS["ease"].build(overrides=cfg.params["ease"]).l2 == 250.0


@pytest.mark.parametrize("text, message", [
    ("colour = 1\n", "unknown key 'colour'"),
    ("[params.ease]\nlambda = 3\n", "unknown parameter(s) ['lambda']"),
    ("[params.nope]\nl2 = 3\n", "[params.nope] names no model"),
    ("device = 'tpu'\n", "not a device"),
    ("models = [", "not valid TOML"),
])
def test_bad_config_is_a_one_line_usage_error(tmp_path, capsys, text, message):
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    with pytest.raises(SystemExit) as exc:
        cli.main(["benchmark", "--config", str(conf)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a CPU-only machine")
def test_cuda_without_cuda_is_a_one_line_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--device", "cuda"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("skadvrec benchmark: error: argument --device: 'cuda'")
    assert "CUDA is not available" in err[-1] and "--device cpu" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_unknown_model_and_missing_dataset_say_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--models", "ease", "svd"])
    assert "unknown model 'svd'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["--dataset", "ml-100k", "--data-home", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "--download" in err and "--data-home" in err


def test_help_is_plain_text_with_defaults(capsys):
    for argv in (["--help"], ["benchmark", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        text = capsys.readouterr().out
        assert "``" not in text and ":class:" not in text and ":func:" not in text
    assert "With no command" in cli.build_parser()[0].format_help()
    bench_help = cli.build_parser()[1].format_help()
    for option, default in (("--n-users", "2000"), ("--n-items", "500"), ("--seeds", "0"),
                            ("--device", "auto"), ("--k", "20"), ("--models", "all")):
        assert option in bench_help
        assert f"(default: {default})" in " ".join(bench_help.split())


def test_a_failing_model_is_reported_and_the_others_run(monkeypatch):
    monkeypatch.setitem(MODELS, "broken", ModelSpec("broken", "Broken", "skadvrec.linear:EASE",
                                                    {"l2": -1.0}))
    cfg = BenchmarkConfig(models=("broken", "ease"), n_users=300, n_items=80, device="cpu")
    runs, info = run_benchmark(cfg, progress=False)
    broken = runs.set_index("name").loc["broken"]
    assert "l2" in broken["error"] and np.isnan(broken["ndcg@20"])
    assert np.isfinite(runs.set_index("name").loc["ease", "ndcg@20"])
    assert info["n_users"] == 300


def test_a_stronger_attack_promotes_its_targets_more():
    base = dict(models=("ease",), n_users=600, n_items=300, device="cpu", seeds=(0,))
    weak, _ = run_benchmark(BenchmarkConfig(n_fake_users=2, **base), progress=False)
    strong, _ = run_benchmark(BenchmarkConfig(n_fake_users=0.1, **base), progress=False)
    assert strong["t-hr@50 random"].iloc[0] > 2 * weak["t-hr@50 random"].iloc[0]


def test_python_dash_m_and_the_models_command():
    res = subprocess.run([sys.executable, "-m", "skadvrec", "models"], capture_output=True,
                         check=False, text=True, timeout=120)
    assert res.returncode == 0
    names = [line.split()[0] for line in res.stdout.splitlines()[1:]]
    assert names == list(MODELS)
