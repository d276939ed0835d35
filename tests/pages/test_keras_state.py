"""Streamlit's end-of-rerun `keras.backend.clear_session()` is off (`ui.keep_keras_state_between_reruns`):
a rerun of a page must not reset Keras' global state, which a background training may be using."""

from __future__ import annotations

import pytest
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from cnnviz.catalogue import PROJECT_ROOT
from widgets import ui


def test_a_page_rerun_leaves_keras_global_state_alone():
    keras = pytest.importorskip("keras")
    assert script_runner._clean_problem_modules is ui._no_cleaning
    first = keras.backend.get_uid("cnnviz_probe")
    page = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "home.py"), default_timeout=60)
    page.run()
    assert not page.exception, page.exception
    # The oracle is Keras' own counter: clear_session() would start it again at 1.
    assert keras.backend.get_uid("cnnviz_probe") == first + 1
