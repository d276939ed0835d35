"""Watch an AppTest script while it runs, and click a button mid-run as a browser would.

`AppTest.run()` returns only when the script ends, so what a page shows *during* a long training
(and a Stop click in the middle of it) is out of its reach. `LiveRun` runs `at.run()` in a thread,
parses the messages the script has sent so far into an element tree (`tree()`), and `click(key)`
asks the running script for a rerun with that button pressed: what the Streamlit server does when
a student clicks, so the rerun interrupts the running script and the button's `on_click` runs first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from streamlit.runtime.scriptrunner import RerunData
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import ElementTree, parse_tree_from_messages
from streamlit.testing.v1.local_script_runner import LocalScriptRunner


class LiveRun:
    def __init__(self, at: AppTest, monkeypatch: pytest.MonkeyPatch, *, timeout: float = 300) -> None:
        self.at = at
        self.timeout = timeout
        self.error: BaseException | None = None
        self._runners: list[LocalScriptRunner] = []
        original = LocalScriptRunner.__init__
        runners = self._runners

        def recording_init(runner, *args, **kwargs):
            original(runner, *args, **kwargs)
            runners.append(runner)

        monkeypatch.setattr(LocalScriptRunner, "__init__", recording_init)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.at.run(timeout=self.timeout)
        except BaseException as error:  # noqa: BLE001 - re-raised by join().
            self.error = error

    def start(self) -> LiveRun:
        self._thread.start()
        return self

    def tree(self) -> ElementTree:
        """What the running script has drawn so far."""
        if not self._runners:
            return parse_tree_from_messages([])
        tree = parse_tree_from_messages(list(self._runners[-1].forward_msgs()))
        tree._runner = self.at
        return tree

    def wait_for(self, condition: Callable[[ElementTree], bool], *, timeout: float = 240,
                 what: str = "the condition") -> ElementTree:
        """Poll the running script's tree until `condition(tree)` holds; the tree that satisfied it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise AssertionError(f"the script ended before {what}")
            try:
                tree = self.tree()
            except (KeyError, IndexError, ValueError):  # a message half-way through
                tree = None
            if tree is not None and condition(tree):
                return tree
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def click(self, key: str) -> None:
        """Click the button `key` of the running script (a rerun that interrupts it)."""
        tree = self.tree()
        tree.button(key=key).click()
        assert self._runners[-1].request_rerun(RerunData(widget_states=tree.get_widget_states()))

    def join(self) -> AppTest:
        self._thread.join(self.timeout)
        assert not self._thread.is_alive(), "the script did not end"
        if self.error is not None:
            raise self.error
        return self.at


def markdown(tree) -> str:
    return "\n".join(element.value for element in tree.markdown)
