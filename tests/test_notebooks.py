"""Every notebook runs top to bottom (nbclient), in a scratch folder, and leaves its files."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_are_notebooks():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert "01_walkthrough.ipynb" in names and "02_compress_your_model.ipynb" in names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_top_to_bottom(path, tmp_path, xla_default_env):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=xla_default_env)  # the kernel compiles as a user's does (tests/conftest.py)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert glob.glob(str(tmp_path / "*.wsjax")), "the notebook writes its compressed model"
    if os.path.basename(path).startswith("02_"):
        assert (tmp_path / "accuracy_vs_bytes.png").stat().st_size > 10_000
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "HashedNets 1/16" in text and "test accuracy" in text
