"""The walkthrough notebook's code cells run top to bottom (on a small slice of the data)."""

import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_walkthrough_notebook_runs(monkeypatch, tmp_path):
    from wsjax import data

    full_load = data.load

    def small_load(name, split, **kw):
        x, y = full_load(name, split, **kw)
        return x[:3000], y[:3000]

    monkeypatch.setattr(data, "load", small_load)
    with open(os.path.join(ROOT, "notebooks", "01_walkthrough.ipynb")) as f:
        nb = json.load(f)
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    source = source.replace("/tmp/lenet300100.wsjax", str(tmp_path / "n.wsjax"))
    scope: dict = {}
    exec(compile(source, "01_walkthrough.ipynb", "exec"), scope)
    assert scope["result"].history[-1]["eval_accuracy"] > 0.6
    np.testing.assert_array_equal(scope["small"]["Dense_0"]["kernel"], scope["loaded"]["Dense_0"]["kernel"])
    assert scope["report"].totals()["compression"] > 15
