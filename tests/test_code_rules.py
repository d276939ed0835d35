"""Rules of the code base, checked on the source: the core never imports Streamlit, and nothing
imports TensorFlow or Keras at module level except inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORE_MODULES = sorted((PROJECT_ROOT / "cnnviz").rglob("*.py"))
HEAVY = {"tensorflow", "keras"}


def _top_level_imports(path: Path) -> set[str]:
    """Root package names imported at module level (not inside a function or class body)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.name)
def test_core_module_never_imports_streamlit(path):
    assert "streamlit" not in _all_imports(path)


@pytest.mark.parametrize("path", CORE_MODULES + [PROJECT_ROOT / "widgets" / "ui.py", PROJECT_ROOT / "app.py"],
                         ids=lambda p: p.name)
def test_tensorflow_is_only_imported_lazily(path):
    assert not (_top_level_imports(path) & HEAVY), f"{path.name} imports TensorFlow/Keras at module level"


def test_the_checker_sees_a_module_level_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import keras\n\ndef f():\n    import tensorflow\n")
    assert _top_level_imports(sample) == {"keras"}
    assert _all_imports(sample) == {"keras", "tensorflow"}
