"""cnnviz.training.cache: the disk cache of finished runs, valid only for the data they trained on."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from cnnviz import training


def test_disk_cache_round_trip_and_corrupt_entries(tiny_data, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    config = tiny_config(epochs=2)
    assert training.load_cached(config) is None
    result = training.train(config, data=tiny_data)
    assert training.load_cached(config) is None  # injected data is not cached by default
    entry = training.store_cached(result)
    assert entry is not None and entry.parent == tmp_path / "training"
    loaded = training.load_cached(config, data=tiny_data)
    assert loaded is not None and loaded.from_cache and loaded.data_source == "injected"
    assert loaded.history == result.history
    assert loaded.test_accuracy == result.test_accuracy and loaded.class_names == result.class_names
    for a, b in zip(loaded.model.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.predict(tiny_data.x_test), result.predict(tiny_data.x_test), atol=1e-6)
    # A cached result's test images come from the data it was looked up with (nothing is loaded).
    np.testing.assert_array_equal(loaded.test_data()[0], tiny_data.x_test)
    # With the cache on, train() returns the stored result without training.
    reports = []
    again = training.train(config, reports.append, data=tiny_data, use_cache=True)
    assert again.from_cache and again.history == result.history and reports
    # A corrupted entry is ignored.
    (entry / "model.keras").write_bytes(b"not a keras file")
    assert training.load_cached(config, data=tiny_data) is None
    (entry / "result.json").write_text("{broken")
    assert training.load_cached(config, data=tiny_data) is None
    assert not training.is_cached(config, data=tiny_data)


def test_a_cached_result_is_only_reused_on_the_same_data_source(tiny_data, tiny_config, tmp_path, monkeypatch):
    # A "full data" run trained on the bundled sample must not be reused once the full dataset is there.
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    sample = SimpleNamespace(**vars(tiny_data), source="bundled sample")
    full = SimpleNamespace(**vars(tiny_data), source="local")
    config = tiny_config(epochs=1)
    first = training.train(config, data=sample, use_cache=True)
    assert first.data_source == "bundled sample" and not first.from_cache
    assert training.is_cached(config, data=sample) and not training.is_cached(config, data=full)
    assert training.train(config, data=sample, use_cache=True).from_cache
    retrained = training.train(config, data=full, use_cache=True)
    assert not retrained.from_cache and retrained.data_source == "local"
    # The entry now holds the full-data run; the sample's is gone.
    assert training.load_cached(config, data=full).data_source == "local"
    assert training.load_cached(config, data=sample) is None
    # A source the caller already resolved is used as it is.
    assert training.is_cached(config, source="local") and not training.is_cached(config, source="bundled sample")
    # Without data, the entry must match the source `cnnviz.data.load` would use now.
    from cnnviz import data as data_module

    def status(source):
        return lambda name: data_module.SourceStatus(source=source, note="")

    monkeypatch.setattr(data_module, "source_status", status("local"))
    assert training.data_source(config) == "local" and training.is_cached(config)
    monkeypatch.setattr(data_module, "source_status", status("bundled sample"))
    assert not training.is_cached(config) and training.load_cached(config) is None
    # Entries written before the source was recorded are not trusted either.
    meta_path = training.cache_dir() / config.key() / "result.json"
    meta = json.loads(meta_path.read_text())
    del meta["data_source"]
    meta_path.write_text(json.dumps(meta))
    assert not training.is_cached(config, data=full)


def test_default_cache_dir_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNVIZ_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert training.cache_dir() == tmp_path / ".cache" / "cnnviz" / "training"
