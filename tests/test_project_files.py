"""The project's set-up files say the same thing: the README's test command is what CI runs,
requirements are pinned, and the Streamlit config has the settings the app relies on."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _ci_test_command() -> str:
    match = re.search(r"^TEST_COMMAND='([^']+)'", (PROJECT_ROOT / ".ci" / "run").read_text(), re.MULTILINE)
    assert match, ".ci/run must define TEST_COMMAND"
    return match.group(1)


def test_ci_runs_exactly_the_readme_test_command():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f"\n{_ci_test_command()}\n" in readme


def test_the_test_command_lints_and_type_checks_before_the_tests():
    steps = [step.strip() for step in _ci_test_command().split("&&")]
    assert steps[-3:] == ["ruff check .", "mypy", "python -m pytest"]
    pinned = dict(line.split("==") for line in _requirement_lines("requirements-dev.txt"))
    assert {"ruff", "mypy", "pytest"} <= pinned.keys()
    tools = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]
    assert "ruff" in tools and tools["mypy"]["files"] == ["cnnviz"]


def _requirement_lines(name: str) -> list[str]:
    lines = (line.split("#")[0].strip() for line in (PROJECT_ROOT / name).read_text().splitlines())
    return [line for line in lines if line]


def test_readme_install_and_run_command_starts_the_app():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert re.search(r"^python3 -m venv .venv && .+pip install -r requirements.txt && streamlit run app.py$",
                     readme, re.MULTILINE)


def test_requirements_are_pinned_with_cpu_tensorflow_on_linux():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in _requirement_lines(name):
            assert "==" in line, f"{name}: {line!r} is not pinned"
    runtime = (PROJECT_ROOT / "requirements.txt").read_text()
    assert 'tensorflow-cpu==' in runtime and 'platform_system == "Linux"' in runtime
    assert "pytest" not in runtime, "test tools belong in requirements-dev.txt"


def test_streamlit_config_for_projector_and_uploads():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 50  # The class-folder zip; other uploads check their own limits.
    assert config["browser"]["gatherUsageStats"] is False
    assert config["theme"]["baseFontSize"] >= 16


def test_the_file_watcher_never_walks_the_virtualenv():
    """With the project's config, Streamlit's own source watcher (the one `streamlit run` uses) runs
    in a fresh process in the project folder, over every module the app has loaded: it must hold no
    inotify watch (watchdog's recursive watch of the project walked all of .venv) and watch no file
    inside .venv, while still watching the app's own files (a saved page reruns the app)."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from streamlit import config
        config.get_config_options(force_reparse=True)
        from streamlit.watcher import path_watcher
        from streamlit.watcher.local_sources_watcher import LocalSourcesWatcher
        import cnnviz.catalogue, widgets.ui  # What the app loads; numpy, plotly, streamlit live in .venv.

        class Pages:
            main_script_path = str(Path("app.py").resolve())
            def get_pages(self):
                return {"main": {"script_path": self.main_script_path, "page_script_hash": "main"}}

        watcher = LocalSourcesWatcher(Pages())
        watcher.update_watched_modules()
        watched = sorted(watcher._watched_modules)
        inotify = 0
        for entry in Path(f"/proc/{os.getpid()}/fdinfo").iterdir():
            try:
                inotify += entry.read_text().count("inotify wd:")
            except OSError:
                pass
        print(json.dumps({"type": config.get_option("server.fileWatcherType"),
                          "class": path_watcher.get_default_path_watcher_class().__name__,
                          "watched": watched, "inotify": inotify}))
        watcher.close()
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=120, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    venv = str(PROJECT_ROOT / ".venv")
    assert result["type"] == "poll" and result["class"] == "PollingPathWatcher", result["type"]
    assert result["inotify"] == 0
    assert not [path for path in result["watched"] if path.startswith(venv)]
    assert str(PROJECT_ROOT / "app.py") in result["watched"]
    assert str(PROJECT_ROOT / "widgets" / "ui.py") in result["watched"]


def test_pytest_settings_find_the_tests_and_the_top_level_packages():
    parser = configparser.ConfigParser()
    parser.read(PROJECT_ROOT / "pytest.ini")
    settings = parser["pytest"]
    assert settings["testpaths"].split() == ["tests"]
    # `pythonpath = .` makes cnnviz/, widgets/ and app_pages/ importable without installing anything.
    assert settings["pythonpath"].split() == ["."]
    assert {"browser", "slow"} <= {line.split(":")[0].strip() for line in settings["markers"].splitlines() if line}
