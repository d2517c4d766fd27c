import pytest


@pytest.fixture
def offline(monkeypatch):
    """No TFDS downloads and no user data dir: only what ships offline."""
    monkeypatch.setenv("WSJAX_OFFLINE", "1")
    monkeypatch.delenv("WSJAX_DATA_DIR", raising=False)
