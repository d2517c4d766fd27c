import os

import pytest

# The suite compiles thousands of small programs (one study's smoke run alone compiles about
# 250) and runs each a few steps on a few hundred examples, so XLA:CPU's optimising passes
# cost more than they save: at level 0 the redundancy smoke run took 37 s instead of 57 s.
# What a program computes does not depend on the level beyond float rounding; benchmarks/,
# the studies, and the tests that train for real in a fresh process (the README script and
# the notebooks: see ``xla_default_env``) run at XLA's default. Set before any test module
# imports JAX (flags are read when the backend starts); a caller's own XLA_FLAGS come after
# it, and theirs win.
SUITE_XLA_FLAG = "--xla_backend_optimization_level=0"
CALLER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = f"{SUITE_XLA_FLAG} {CALLER_XLA_FLAGS}".strip()

# Every fit asked for loop='auto' runs the Python loop instead of measuring both loops on its
# first epoch (one compile per net instead of two: notebook 02 took 46 s instead of 59 s). The
# loops compute the same updates (tests/test_train.py); the tests of 'auto' itself unset it.
os.environ.setdefault("WSJAX_LOOP", "python")


@pytest.fixture
def xla_default_env():
    """The environment for a subprocess that should compile as a user's run does: the
    caller's XLA_FLAGS without the suite's optimisation level."""
    env = dict(os.environ)
    if CALLER_XLA_FLAGS:
        env["XLA_FLAGS"] = CALLER_XLA_FLAGS
    else:
        env.pop("XLA_FLAGS", None)
    return env


def pytest_collection_modifyitems(items):
    """Long files first (those with a ``slow`` test, then the studies' smoke tests), so that
    under ``-n 2 --dist loadfile`` the short files fill in around them instead of one worker
    finishing a notebook alone at the end. A stable sort: the order within a file is kept.
    ``make test`` passes ``--no-loadscope-reorder``: without it xdist hands out files by
    their number of tests, most first, whatever this order says."""

    def rank(item):
        name = os.path.basename(str(item.fspath))
        slow_file = any(i.get_closest_marker("slow") for i in by_file[name])
        return 0 if slow_file else 1 if name.startswith("test_study_") else 2

    by_file: dict = {}
    for item in items:
        by_file.setdefault(os.path.basename(str(item.fspath)), []).append(item)
    items.sort(key=rank)


@pytest.fixture
def offline(monkeypatch):
    """No TFDS downloads and no user data dir: only what ships offline."""
    monkeypatch.setenv("WSJAX_OFFLINE", "1")
    monkeypatch.delenv("WSJAX_DATA_DIR", raising=False)
