import os
from pathlib import Path

import pytest
import torch

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if "SKADVREC_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["SKADVREC_DATA"] = str(_SHARED)

# One torch thread: the test fits are tiny, and with several threads they slow down by orders of
# magnitude whenever another process competes for the cores.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)


def data_path(*parts):
    """Path to a shared dataset file, or skip the test when it is absent."""
    base = Path(os.environ.get("SKADVREC_DATA", _SHARED))
    p = base.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"dataset file {p} is not available")
    return p
