"""Execute every notebook of notebooks/ top to bottom at the small size, with nbclient.

As papermill does, a cell that sets ``SIZE = "small"`` is inserted after the cell tagged
``parameters``; each notebook runs in a fresh Jupyter kernel (ipykernel) in the notebooks/
folder, and any cell that raises fails the test with the cell's traceback.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# which dataset folder each notebook reads (skipped, like the data tests, when it is absent)
NEEDS = {"rlarm_ml1m": "ml-1m", "advxmultvae_ml1m": "ml-1m", "pamacf_gowalla": "gowalla",
         "tutorial_gridsearch_pipeline": "ml-100k", "aafm_ml100k": "ml-100k", "cfp_ml1m": "ml-1m"}


def _with_small_size(nb):
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    assert "SIZE" in nb.cells[tagged[0]].source
    injected = nbformat.v4.new_code_cell('SIZE = "small"\nDEVICE = "cpu"')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(tagged[0] + 1, injected)
    return nb


def test_every_notebook_is_listed_with_its_data():
    assert NOTEBOOKS, "no notebook found"
    assert {p.stem for p in NOTEBOOKS} <= set(NEEDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_the_small_size(path):
    data_home = Path(os.environ.get("SKADVREC_DATA", ""))
    need = NEEDS.get(path.stem)
    if need and not (data_home / need).is_dir():
        pytest.skip(f"dataset folder {data_home / need} is not available")
    nb = _with_small_size(nbformat.read(path, as_version=4))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
