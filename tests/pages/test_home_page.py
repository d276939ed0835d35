"""The app shell: the home page renders, lists the lessons and dataset sources, and stays TensorFlow-free."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from cnnviz import data
from cnnviz.catalogue import LESSONS

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_home_page_lists_every_lesson_and_dataset():
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "home.py"), default_timeout=30).run()
    assert not at.exception
    subheaders = [element.value for element in at.subheader]
    assert sorted(subheaders) == sorted(lesson.title for lesson in LESSONS)  # Read column by column.
    table = at.dataframe[0].value
    assert list(table["Dataset"]) == ["Fashion-MNIST", "MNIST digits", "CIFAR-10"]
    # Fashion-MNIST always has a source: the bundled sample at the very least.
    assert table["Source"][0] in {"local", "keras", "bundled sample"}
    assert all(isinstance(note, str) and note for note in table["Why"])


def test_home_page_reports_the_bundled_sample_when_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    assert data.source_status("fashion_mnist").source == "bundled sample"
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "home.py"), default_timeout=30).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["Source"][0] == "bundled sample"
    assert table["Source"][2] == "unavailable"  # CIFAR-10 has no bundled fallback.


def _home_table_without_internet(monkeypatch, tmp_path, *, reachable: bool):
    # Downloads switched on (no CNNVIZ_OFFLINE), no data folder, an empty Keras cache; whether the
    # download servers answer is decided here (this machine may have no internet at all).
    from cnnviz.data import sources

    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.delenv("CNNVIZ_OFFLINE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(sources, "_keras_installed", lambda: True)
    monkeypatch.setattr(sources, "_reach", lambda host, timeout: reachable)
    data.clear_caches()
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "home.py"), default_timeout=30).run()
    finally:
        data.clear_caches()
    assert not at.exception
    return at.dataframe[0].value


def test_home_table_does_not_promise_a_download_when_the_internet_cannot_be_reached(monkeypatch, tmp_path):
    table = _home_table_without_internet(monkeypatch, tmp_path, reachable=False)
    assert list(table["Source"]) == ["bundled sample", "unavailable", "unavailable"]
    assert not any("will download" in note for note in table["Why"])
    assert "storage.googleapis.com" in table["Why"][1] and "www.cs.toronto.edu" in table["Why"][2]


def test_home_table_promises_a_download_only_when_its_server_answers(monkeypatch, tmp_path):
    table = _home_table_without_internet(monkeypatch, tmp_path, reachable=True)
    assert list(table["Source"]) == ["keras", "keras", "keras"]
    assert all("will download" in note for note in table["Why"])


def test_entry_point_runs_the_navigation_without_error():
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value.startswith("cnnviz")


def test_every_lesson_of_the_catalogue_has_its_page_file():
    # The app lists every lesson of the catalogue: a missing page file is a bug, not a hidden lesson.
    missing = [lesson.file for lesson in LESSONS if not (PROJECT_ROOT / lesson.file).is_file()]
    assert not missing, f"catalogue lessons without a page file: {missing}"
    assert len({lesson.url_path for lesson in LESSONS}) == len(LESSONS)
    assert len({lesson.title for lesson in LESSONS}) == len(LESSONS)


def test_the_navigation_lists_home_and_every_lesson_of_the_catalogue(monkeypatch):
    # AppTest does not expose the sidebar navigation, so record what app.py hands to st.navigation.
    calls = []
    original = st.navigation

    def recording(pages, **kwargs):
        calls.append(pages)
        return original(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", recording)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    (sections,) = calls
    assert [page.title for page in sections["cnnviz"]] == ["Home"]
    assert [page.url_path for page in sections["Lessons"]] == [lesson.url_path for lesson in LESSONS]
    assert [page.title for page in sections["Lessons"]] == [lesson.title for lesson in LESSONS]


def test_opening_the_home_page_does_not_import_tensorflow():
    script = textwrap.dedent(
        """
        import json, sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
        print(json.dumps({
            "exception": bool(at.exception),
            "tensorflow": "tensorflow" in sys.modules,
            "keras": "keras" in sys.modules,
        }))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script, str(PROJECT_ROOT / "app_pages" / "home.py")], cwd=PROJECT_ROOT, capture_output=True,
                               text=True, timeout=180, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"exception": False, "tensorflow": False, "keras": False}
