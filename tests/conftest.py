import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))


@pytest.fixture
def offline(monkeypatch):
    """No TFDS downloads and no user data dir: only what ships offline."""
    monkeypatch.setenv("WSJAX_OFFLINE", "1")
    monkeypatch.delenv("WSJAX_DATA_DIR", raising=False)
