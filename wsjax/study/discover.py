"""Finding and importing the studies of a checkout's ``experiments/`` folder.

Each study is a package ``experiments/<name>/`` with a ``run.py``. They are imported as
``experiments.<name>`` from the folder's own path (no change to ``sys.path``), so the
installed ``wsjax`` command runs them from any working directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from wsjax.study.args import ROOT

EXPERIMENTS = os.path.join(ROOT, "experiments")


def studies(folder: str = EXPERIMENTS) -> list[str]:
    """The names of the studies in ``folder`` (sub-packages with a ``run.py``)."""
    if not os.path.isdir(folder):
        return []
    return sorted(d for d in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, d, "run.py")) and not d.startswith(("_", ".")))


def _experiments_package(folder: str):
    package = sys.modules.get("experiments")
    if package is not None and os.path.abspath(os.path.dirname(package.__file__ or "")) == os.path.abspath(folder):
        return package
    spec = importlib.util.spec_from_file_location("experiments", os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    package = importlib.util.module_from_spec(spec)
    sys.modules["experiments"] = package
    spec.loader.exec_module(package)
    return package


def load(name: str, module: str = "run", folder: str = EXPERIMENTS):
    """The module ``experiments.<name>.<module>`` (``run``, ``config`` or ``report``)."""
    if name not in studies(folder):
        raise ValueError(f"unknown study {name!r}; studies: {', '.join(studies(folder)) or '(none)'}")
    _experiments_package(folder)
    return importlib.import_module(f"experiments.{name}.{module}")
