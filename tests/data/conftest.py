"""Fixtures of the dataset tests."""

from __future__ import annotations

import pytest

from cnnviz import data
from cnnviz.data import sources


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No data folder, an empty Keras home, no downloads, a private cache; module caches reset."""
    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    # Tests that switch downloads on fake keras.datasets; the download host counts as reachable
    # unless a test says otherwise (this machine may have no internet).
    monkeypatch.setattr(sources, "_reach", lambda host, timeout: True)
    data.clear_caches()
    yield
    data.clear_caches()
