"""The project's set-up files say the same thing: the README's test command is what CI runs,
requirements are pinned, and the Streamlit config has the settings the app relies on."""

from __future__ import annotations

import re
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


def test_readme_install_and_run_command_starts_the_app():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert re.search(r"^python3 -m venv .venv && .+pip install -r requirements.txt && streamlit run app.py$",
                     readme, re.MULTILINE)


def test_requirements_are_pinned_with_cpu_tensorflow_on_linux():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (PROJECT_ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                assert "==" in line, f"{name}: {line!r} is not pinned"
    runtime = (PROJECT_ROOT / "requirements.txt").read_text()
    assert 'tensorflow-cpu==' in runtime and 'platform_system == "Linux"' in runtime
    assert "pytest" not in runtime, "test tools belong in requirements-dev.txt"


def test_streamlit_config_for_projector_and_uploads():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 10
    assert config["browser"]["gatherUsageStats"] is False
    assert config["theme"]["baseFontSize"] >= 16
