"""Memory bounds of the server (issue 15): freed heap goes back to the system, page caches are bounded."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cnnviz import memory
from cnnviz.training.jobs import Job

PROJECT_ROOT = Path(__file__).resolve().parent.parent
UI_MODULES = sorted((PROJECT_ROOT / "app_pages").glob("*.py")) + sorted((PROJECT_ROOT / "widgets").rglob("*.py")) \
    + [PROJECT_ROOT / "app.py"]

# In a child process: 240 MB of 60 KB blocks (below malloc's mmap threshold, so on the heap) are
# freed except the last one, which pins the heap's top so that free() alone cannot shrink it.
FRAGMENTED_HEAP = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from cnnviz import memory

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    blocks = [bytearray(60_000) for _ in range(4000)]
    last = blocks[-1]
    del blocks
    before = rss_mb()
    {trim}
    print(before, rss_mb())
""")


def _freed_and_after(trim: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP.format(root=str(PROJECT_ROOT), trim=trim)],
                         capture_output=True, text=True, check=True).stdout
    before, after = map(float, out.split())
    return before, after


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_heap_returns_freed_heap_pages_to_the_system():
    kept_before, kept_after = _freed_and_after("pass")
    assert kept_before - kept_after < 20  # Without a trim the freed 240 MB stay resident...
    assert kept_before > 200
    before, after = _freed_and_after("assert memory.trim_heap()")
    assert before - after > 200  # ...and trim_heap gives them back.


# Five pokes in a row (a burst of page runs), then the quiet: one trim, on the trimmer's thread.
IDLE_TRIM = """
import threading, time
done = threading.Event()
trimmer = memory.IdleTrimmer(delay=0.05, release=lambda: (memory.release_free_pages(), done.set()))
for _ in range(5):
    trimmer.poke()
assert done.wait(30)
time.sleep(0.3)  # Six more delays without a poke: still one trim.
assert trimmer.trims == 1, trimmer.trims
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_the_idle_trimmer_gives_freed_pages_back_once_after_a_burst_of_runs():
    before, after = _freed_and_after(IDLE_TRIM)
    assert before - after > 200


def test_the_idle_trimmer_waits_for_the_quiet_after_the_last_poke_then_trims_once():
    released = threading.Event()
    trimmer = memory.IdleTrimmer(delay=1.5, release=released.set)
    # Pokes every 0.1 s for 3 s: never 1.5 s of quiet, so nothing is released, although the first
    # poke was 3 s ago (a trimmer that timed from the first poke would have released at 1.5 s).
    began = time.monotonic()
    while time.monotonic() - began < 3.0:
        trimmer.poke()
        assert not released.wait(0.1)
    assert released.wait(30)  # Then the quiet: one release...
    assert trimmer.trims == 1
    released.clear()
    assert not released.wait(4.5)  # ...and no other in three more delays without a poke.
    assert trimmer.trims == 1


def test_while_the_pokes_never_stop_the_idle_trimmer_still_trims_every_max_wait():
    released = threading.Event()
    trimmer = memory.IdleTrimmer(delay=60.0, max_wait=0.5, release=released.set)
    trimmer.poke()
    deadline = time.monotonic() + 30
    while not released.is_set() and time.monotonic() < deadline:
        trimmer.poke()  # Never a minute of quiet.
        released.wait(0.05)
    assert released.is_set() and trimmer.trims == 1


# In a child process with TensorFlow's oneDNN kernels on (the app's setting; the tests otherwise run
# them off, see conftest.py): one convolution over 2,048 images (a 354 MB output), then freed.
LARGE_FREED_TENSOR = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from cnnviz import memory
    {setting}
    import tensorflow as tf

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    kernel = tf.random.uniform((3, 3, 32, 64))
    tf.nn.conv2d(tf.random.uniform((8, 26, 26, 32)), kernel, 1, "SAME")  # the kernels' own set-up
    before = rss_mb()
    output = tf.nn.conv2d(tf.random.uniform((2048, 26, 26, 32)), kernel, 1, "SAME")
    float(tf.reduce_sum(output))
    del output
    memory.trim_heap()
    print(rss_mb() - before)
""")


def _kept_after_a_large_tensor(setting: str) -> float:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(memory.SYSTEM_ALLOCATOR, None)
    code = LARGE_FREED_TENSOR.format(root=str(PROJECT_ROOT), setting=setting)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         timeout=300).stdout
    return float(out.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_with_the_system_allocator_tensorflow_gives_freed_tensors_back():
    # TensorFlow's own pool (its default with oneDNN) keeps the freed output resident (530 MB kept
    # on the machine this was written on); with malloc, trim_heap returns it.
    assert _kept_after_a_large_tensor("assert memory.use_system_allocator()") < 50
    assert _kept_after_a_large_tensor("pass") > 200  # ...what the setting removes (if this fails,
    # TensorFlow no longer pools and use_system_allocator may be dropped).


def test_use_system_allocator_sets_tensorflows_variable_only_if_unset(monkeypatch):
    monkeypatch.setenv(memory.SYSTEM_ALLOCATOR, "unset")  # so that teardown restores the real value...
    monkeypatch.delenv(memory.SYSTEM_ALLOCATOR)  # ...after this test's calls set it
    monkeypatch.setitem(sys.modules, "tensorflow", sys)  # TensorFlow already imported: too late
    assert not memory.use_system_allocator() and memory.SYSTEM_ALLOCATOR not in os.environ
    monkeypatch.delitem(sys.modules, "tensorflow")
    assert memory.use_system_allocator() and os.environ[memory.SYSTEM_ALLOCATOR] == "1"
    monkeypatch.setenv(memory.SYSTEM_ALLOCATOR, "0")  # the operator's own choice wins
    assert not memory.use_system_allocator() and os.environ[memory.SYSTEM_ALLOCATOR] == "0"


def _streamlit_caches(path: Path):
    """(function name, has max_entries, number of parameters) of every st.cache_data/cache_resource."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = ast.unparse(call.func if call else decorator)
            if target in ("st.cache_data", "st.cache_resource"):
                keywords = {k.arg for k in call.keywords} if call else set()
                yield node.name, "max_entries" in keywords, len(node.args.args)


def _unbounded(path: Path) -> list[str]:
    # A cached function without parameters has one entry, so it needs no bound.
    return [name for name, bounded, parameters in _streamlit_caches(path) if not bounded and parameters]


def test_every_page_cache_with_parameters_is_bounded():
    unbounded = {str(path.relative_to(PROJECT_ROOT)): names for path in UI_MODULES if (names := _unbounded(path))}
    assert unbounded == {}


def test_the_bound_check_sees_an_unbounded_cache(tmp_path):
    planted = tmp_path / "page.py"
    planted.write_text("import streamlit as st\n\n@st.cache_data\ndef f(x):\n    return x\n\n"
                       "@st.cache_resource(show_spinner=False)\ndef g():\n    return 1\n\n"
                       "@st.cache_data(max_entries=4)\ndef h(x):\n    return x\n")
    assert _unbounded(planted) == ["f"]


def test_a_job_trims_the_heap_when_its_work_ends(monkeypatch):
    trims = []
    monkeypatch.setattr(memory, "trim_heap", lambda: trims.append("trim") or True)
    for work in (lambda on_progress: 42, lambda on_progress: 1 / 0):  # a result, then an error
        job = Job(work, name="memory-test").start()
        assert job.wait(10)
        job._thread.join(10)
    assert trims == ["trim", "trim"]



# In a child process: 8 threads allocate at the same time; glibc's malloc_stats lists the arenas.
ARENAS_USED = textwrap.dedent("""
    import ctypes, sys, threading
    sys.path.insert(0, {root!r})
    from cnnviz import memory
    {limit}
    barrier = threading.Barrier(8)
    kept = []

    def allocate():
        barrier.wait()
        kept.append([bytearray(200) for _ in range(20_000)])
        barrier.wait()

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ctypes.CDLL("libc.so.6").malloc_stats()  # Per-arena lines on stderr.
""")


def _arenas_used(limit: str) -> int:
    err = subprocess.run([sys.executable, "-c", ARENAS_USED.format(root=str(PROJECT_ROOT), limit=limit)],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stderr
    return sum(line.startswith("Arena ") for line in err.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_limit_arenas_makes_threads_share_two_malloc_arenas():
    assert _arenas_used("pass") > 2  # Threads allocating together get arenas of their own...
    assert 1 <= _arenas_used("assert memory.limit_arenas()") <= memory.ARENAS  # ...unless limited.


def test_trim_heap_collects_unreachable_cycles_first():
    import gc
    import weakref

    class Node:
        pass

    node = Node()
    node.self = node  # A cycle: only the garbage collector frees it.
    alive = weakref.ref(node)
    gc.disable()
    try:
        del node
        assert alive() is not None
        memory.trim_heap()
        assert alive() is None
    finally:
        gc.enable()


def test_app_py_limits_the_arenas_and_the_server_skips_the_full_collection_after_each_run():
    import tomllib

    app = ast.parse((PROJECT_ROOT / "app.py").read_text())
    calls = [ast.unparse(node.func) for node in ast.walk(app) if isinstance(node, ast.Call)]
    assert calls.index("memory.before_tensorflow") < calls.index("st.navigation")  # Before any page runs.
    # The idle trimmer is poked in the `finally` around the page's run: after errors and reruns too.
    finals = [ast.unparse(node) for tried in ast.walk(app) if isinstance(tried, ast.Try) for node in tried.finalbody]
    assert "memory.idle_trimmer.poke()" in finals
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    # A full collection after every run costs 50-200 ms per slider change; jobs collect (trim_heap).
    assert config["runner"]["postScriptGC"] is False


def test_python_m_cnnviz_sets_the_memory_settings_before_anything_imports_tensorflow(monkeypatch):
    # Importing the command's module loads no TensorFlow (a child process, so nothing is loaded yet)...
    check = subprocess.run([sys.executable, "-c", "import sys, cnnviz.__main__; "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"],
                           capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert check.stdout.strip() == "[]"
    # ...and its main() sets both settings before the command that trains runs.
    from cnnviz import __main__ as cli

    calls: list[str] = []
    monkeypatch.setattr(memory, "limit_arenas", lambda: calls.append("arenas") or True)
    monkeypatch.setattr(memory, "use_system_allocator", lambda: calls.append("allocator") or True)
    monkeypatch.setattr(cli, "run_experiment", lambda *args, **kwargs: calls.append("experiment") or 0)
    assert cli.main(["experiment", "lenet-vs-relu"]) == 0
    assert calls == ["arenas", "allocator", "experiment"]  # memory.before_tensorflow, then the command.
