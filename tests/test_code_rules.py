"""Rules of the code base, checked on the source (see the developers' guide):

- the core (`cnnviz/`) never imports Streamlit;
- cnnviz's own modules are imported at module level, never inside a function;
- TensorFlow and Keras are imported only inside functions, where a model is built or trained;
- pages live in `app_pages/`: no top-level `pages/` or `views/` folder (Streamlit would treat
  `pages/` as a legacy multipage app);
- pages and widgets catch exception classes, never compare class names;
- every lesson of the catalogue has its page file, named after the lesson, and every page is a lesson.

Each checker is also run on a planted violation, so a rule cannot pass by seeing nothing.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnviz.catalogue import LESSONS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORE_MODULES = sorted((PROJECT_ROOT / "cnnviz").rglob("*.py"))
UI_MODULES = sorted((PROJECT_ROOT / "app_pages").glob("*.py")) + sorted((PROJECT_ROOT / "widgets").rglob("*.py")) \
    + [PROJECT_ROOT / "app.py"]
APP_MODULES = CORE_MODULES + UI_MODULES
OWN_PACKAGES = {"cnnviz", "widgets"}
HEAVY = {"tensorflow", "keras"}
LESSON_NAMES = {"convolution", "calculator", "train", "lenet_vs_relu", "transfer", "augmentation", "explain",
                "classroom"}


def _relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else path.name


def _imports(path: Path) -> Iterator[tuple[str, bool, int]]:
    """(root package, inside a function?, line) for every import statement of a module.

    A relative import counts as one of cnnviz's own. Imports under `if TYPE_CHECKING:` never run
    and are skipped.
    """
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[str, bool, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name.split(".")[0], in_function, child.lineno
            elif isinstance(child, ast.ImportFrom):
                root = "cnnviz" if child.level else (child.module or "").split(".")[0]
                yield root, in_function, child.lineno
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from visit(child, inner)

    yield from visit(tree, False)


def _streamlit_imports(path: Path) -> list[int]:
    return [line for root, _, line in _imports(path) if root == "streamlit"]


def _own_imports_in_functions(path: Path) -> list[int]:
    return [line for root, in_function, line in _imports(path) if in_function and root in OWN_PACKAGES]


def _eager_heavy_imports(path: Path) -> list[int]:
    """Lines that import TensorFlow/Keras outside any function (module level, class bodies, module-level try/if)."""
    return [line for root, in_function, line in _imports(path) if not in_function and root in HEAVY]


def _class_name_comparisons(path: Path) -> list[int]:
    """Lines that compare a `__name__` (`type(error).__name__ == "X"`, `... in {...}`): pages catch classes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            # An attribute `x.__name__`; a bare `__name__ == "__main__"` is the module's name, not a class's.
            if any(isinstance(operand, ast.Attribute) and operand.attr in {"__name__", "__qualname__"}
                   for operand in [node.left, *node.comparators]):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", CORE_MODULES, ids=_relative)
def test_core_module_never_imports_streamlit(path):
    assert not _streamlit_imports(path), f"{_relative(path)} imports streamlit (lines {_streamlit_imports(path)})"


@pytest.mark.parametrize("path", APP_MODULES, ids=_relative)
def test_own_modules_are_imported_at_module_level(path):
    lines = _own_imports_in_functions(path)
    assert not lines, f"{_relative(path)} imports cnnviz/widgets inside a function (lines {lines})"


@pytest.mark.parametrize("path", APP_MODULES, ids=_relative)
def test_tensorflow_is_only_imported_inside_functions(path):
    lines = _eager_heavy_imports(path)
    assert not lines, f"{_relative(path)} imports TensorFlow/Keras outside a function (lines {lines})"


@pytest.mark.parametrize("path", UI_MODULES, ids=_relative)
def test_pages_and_widgets_never_compare_class_names(path):
    lines = _class_name_comparisons(path)
    assert not lines, f"{_relative(path)} compares class names (lines {lines}); catch the class instead"


@pytest.mark.parametrize("folder", ["pages", "views"])
def test_no_top_level_pages_or_views_folder(folder):
    assert not (PROJECT_ROOT / folder).exists(), f"pages live in app_pages/, not {folder}/"


def _misnamed_lesson_pages(lessons, root: Path) -> list[str]:
    """Lessons whose page is not `app_pages/<lesson name>.py` (the name is the URL path with underscores)."""
    problems = []
    for lesson in lessons:
        name = lesson.url_path.replace("-", "_")
        if lesson.file != f"app_pages/{name}.py" or not (root / lesson.file).is_file():
            problems.append(f"{lesson.title}: {lesson.file} (expected app_pages/{name}.py)")
    return problems


def test_every_lesson_has_a_page_file_named_after_it():
    assert {lesson.url_path.replace("-", "_") for lesson in LESSONS} == LESSON_NAMES
    assert not _misnamed_lesson_pages(LESSONS, PROJECT_ROOT)
    pages = {path.stem for path in (PROJECT_ROOT / "app_pages").glob("*.py")} - {"home", "__init__"}
    assert pages == LESSON_NAMES, "every page in app_pages/ (apart from home.py) is a lesson of the catalogue"


# ---- the checkers see a planted violation -------------------------------------------------------

def test_the_checkers_see_planted_violations(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import keras\n"                                   # 1: eager heavy import
        "import streamlit as st\n"                         # 2: streamlit
        "try:\n    import tensorflow as tf\nexcept ImportError:\n    tf = None\n"  # 4: eager, though nested
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import keras.layers\n"    # 9: never runs
        "class Model:\n    import keras\n"                # 11: runs at import time
        "def f():\n    import tensorflow\n    from cnnviz import data\n    from . import figures\n"  # 13-15
        "def g(error):\n    return type(error).__name__ == 'DatasetUnavailable'\n"  # 17
        "def h(error):\n    return error.__class__.__name__ in {'SettingsError'}\n"  # 19
        "if __name__ == '__main__':\n    f()\n"
    )
    assert _eager_heavy_imports(sample) == [1, 4, 11]
    assert _streamlit_imports(sample) == [2]
    assert _own_imports_in_functions(sample) == [14, 15]
    assert _class_name_comparisons(sample) == [17, 19]


def test_the_lesson_checker_sees_a_misnamed_or_missing_page(tmp_path):
    (tmp_path / "app_pages").mkdir()
    (tmp_path / "app_pages" / "comparison.py").write_text("")
    misnamed = dataclasses.replace(LESSONS[0], file="app_pages/comparison.py", url_path="lenet-vs-relu")
    missing = dataclasses.replace(LESSONS[0], file="app_pages/train.py", url_path="train")
    assert len(_misnamed_lesson_pages([misnamed, missing], tmp_path)) == 2
