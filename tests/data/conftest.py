"""Fixtures of the dataset tests."""

from __future__ import annotations

import pytest

from cnnviz import data


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No data folder, an empty Keras home, no downloads, a private cache; module caches reset."""
    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    data.clear_caches()
    yield
    data.clear_caches()
