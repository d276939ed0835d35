"""The whole app's memory: one student visits every page and runs every default (issue 15).

A fresh `streamlit run app.py` server (empty CNNVIZ_CACHE_DIR, CNNVIZ_OFFLINE=1, CNNVIZ_DATA_DIR as
in the environment) and ONE headless-Chromium session that opens the home page, then every page of
`cnnviz.catalogue.LESSONS` in order, and presses each page's default run button: Train on the
Train page; Run the comparison (LeNet vs ReLU); Pre-train, Retrain and Compare the strategies
(transfer); Train the variants (augmentation); the explain page then explains the model just
trained. Each run is awaited (the page's script idle with no Stop button, bounded by --time-limit).

After each step the server's current RSS (psutil, the process and its children) and its peak
(VmHWM) are printed; then RSS after a quiet --settle seconds; the last line is JSON:
{"steady_rss_mb": ..., "peak_rss_mb": ..., "steps": [...]}.

`--quick` passes smaller settings through the Train page's link (fewer images and epochs); the
other pages run their defaults either way (their links do not carry the run's size).

Measured 2026-12-01 on 2 loaded cores (load 6-13; one run each, so +-50 MB): TensorFlow's import
alone is ~560 MB RSS. Before `cnnviz.memory.trim_heap` after each job: after Train 819 MB,
after LeNet vs ReLU 1096, after the transfer comparison 1131 (peak 1263). With it: 848, 1049, 1168
(peak 1294). With it and MALLOC_ARENA_MAX=2 in the server's environment: 799, 974, 1073, after
augmentation 1090, steady after everything 1108 MB (peak 1373): still above the 1 GB goal.
Later the same day (load 18-21), with `cnnviz.memory.limit_arenas()` in app.py (two arenas, set at
run time), trim_heap collecting cycles first and Streamlit's post-run collection off: after Train
792, after Lenet vs ReLU 976, after the transfer comparison 1117, after augmentation 1181, steady
1197 MB (peak 1420): no measurable change within this bench's +-50 MB, still above 1 GB.
The same with `--env MALLOC_MMAP_THRESHOLD_=262144` (load 20-28): after Train 732, after LeNet vs
ReLU 877, after the transfer comparison 1017 MB (peak 1112); augmentation was not measured in that
run. Not adopted: with that threshold set at run time (mallopt), one epoch of the Train page's
default on 6,000 images took 8.1 and 6.9 s against 5.0 and 3.8 s without it (two alternating
pairs, load 8-11).

2026-12-02, later (idle VM, one run each unless said): with forward passes in batches of at most
`budget.EVAL_BATCH` = 256 images (TensorFlow's oneDNN convolutions keep buffers sized by the largest
batch they saw), steady 1,215, 1,217 and 1,214 MB in three runs (peak 1,241-1,242), against 1,333 MB
before that change. `--cache-dir` run twice (the second server finds every model on disk and trains
nothing): 933 MB steady. `--warmup` (every default trained by `python -m cnnviz warmup` in its own
process first): 920 MB steady, peak 931 MB (912 MB with the same warm-up started by hand). Then the fast
loops passed their images to the traced functions as arguments instead of capturing them (TensorFlow
keeps a traced graph and its captured tensors alive): steady 1,114, 1,097 and 1,069 MB in three runs
(peak 1,098-1,144).

2026-12-02, last session (same VM, idle): with no traced graph kept per run (`engine.without_replica_sum`):
1,046 and 1,071 MB steady (peak 1,097-1,102). With TensorFlow's tensors from malloc as well
(`memory.use_system_allocator`): 1,021 (by `--env TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1`), 1,026 and 1,020 MB
(peak 1,178-1,213). `--attribute` of the last: 405 MB library pages, 192 MB Python small-object arenas, 267 MB in use
in malloc. With one malloc arena (`memory.ARENAS = 1`) in addition: 976 MB, but the LeNet vs ReLU run
took 25.7 s against 18.0 s (one run each), so two arenas stay.

2026-12-02, the session after (same VM, idle): 1,007 MB at the start. With freed heap pages returned once the
server is quiet (`memory.idle_trimmer`): 947, 954 (`--attribute`) and 1,002 MB (peak 1,132-1,196); one arena
on top gave 969 and 968 MB, no clear gain. With forward passes in batches of 128 (`budget.EVAL_BATCH`, was
256) as well: 929, 945 and 980 MB (peak 1,107-1,130); with the final code of that session (the trimmer's
30 s maximum wait, `memory.before_tensorflow`) 909 and 944 MB (peak 1,067-1,099), and 948 MB after the
seeds' grouped convolution: under the 1,024 line in all six runs, by 44-115 MB.

Usage: python bench/memory.py [--quick] [--warmup] [--cache-dir DIR] [--time-limit 900] [--settle 10]
                              [--attribute] [--env NAME=VALUE ...]
Traffic goes only to the server this script starts on 127.0.0.1; every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import peak_rss_mb, start_app_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from cnnviz.catalogue import LESSONS  # noqa: E402 - after the path to the project

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EXCEPTION = '[data-testid="stException"]'
# Each page's default run buttons (Streamlit `key=`s), pressed in order when they appear.
RUN_BUTTONS = {
    "train": ["train_start"],
    "lenet-vs-relu": ["lvr_run"],
    "transfer": ["transfer_pretrain_button", "transfer_retrain_button", "transfer_compare_button"],
    "augmentation": ["aug_fit_train"],
    "explain": ["explain_train_default"],  # Only shown when no model of this session is there.
}
QUICK_QUERY = {"train": "train_limit_train=3000&train_limit_test=500&train_epochs=1&train_batch_size=64"}


def start_server(cache_dir: str, log, extra_env: dict[str, str], report: str | None = None) -> tuple[subprocess.Popen, str]:
    launcher = [sys.executable, str(Path(__file__).resolve()), "--serve", report] if report else None
    return start_app_server(log, launcher=launcher, CNNVIZ_OFFLINE="1", CNNVIZ_CACHE_DIR=cache_dir,
                            TF_CPP_MIN_LOG_LEVEL="2", **extra_env)


# ---------------------------------------------------------------------------------------------
# --attribute: what holds the server's memory (a report written by the server on SIGUSR1)
# ---------------------------------------------------------------------------------------------

class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def memory_report() -> dict:
    """NumPy arrays reachable from Python (by owner, largest first), Keras models and TensorFlow
    variables alive, and glibc's heap (in use and free) of this process."""
    import gc

    gc.collect()
    arrays: dict[int, Any] = {}
    numpy = sys.modules.get("numpy")
    holders: dict[int, str] = {}
    for holder in gc.get_objects():
        for referent in gc.get_referents(holder):
            if numpy is not None and isinstance(referent, numpy.ndarray):
                base = referent
                while isinstance(base.base, numpy.ndarray):
                    base = base.base
                if id(base) not in arrays:
                    arrays[id(base)] = base
                    holders[id(base)] = type(holder).__qualname__
    largest = sorted(arrays.values(), key=lambda a: a.nbytes, reverse=True)
    report: dict[str, Any] = {
        "numpy_mb": round(sum(a.nbytes for a in largest) / 2**20, 1), "numpy_arrays": len(largest),
        "largest_arrays": [f"{a.shape} {a.dtype} {a.nbytes / 2**20:.1f} MB held by {holders[id(a)]}"
                           for a in largest[:15]]}
    keras = sys.modules.get("keras")
    if keras is not None:
        objects = gc.get_objects()
        models = [o for o in objects if isinstance(o, keras.Model)]
        report["keras_models"] = len(models)
        variables = [o for o in objects if isinstance(o, keras.Variable)]
        report["keras_variables_mb"] = round(sum(int(numpy.prod(v.shape)) * 4 for v in variables) / 2**20, 1)
        functions = sys.modules["tensorflow"].types.experimental.GenericFunction
        report["tf_functions"] = sum(1 for o in objects if isinstance(o, functions))
        # Eager tensors that Python reaches (not variables: those are counted above): a tensor's
        # buffer is TensorFlow's, not NumPy's, so the arrays above do not count it.
        tensor_type = sys.modules["tensorflow"].Tensor
        tensors = {id(r): r for o in objects for r in (o, *gc.get_referents(o))
                   if isinstance(r, tensor_type) and hasattr(r, "numpy")}
        sized = sorted((((t.shape.num_elements() or 0) * t.dtype.size, t) for t in tensors.values()
                        if t.shape.is_fully_defined()), key=lambda item: item[0], reverse=True)
        report["tf_tensors_mb"] = round(sum(size for size, _ in sized) / 2**20, 1)
        report["largest_tensors"] = [f"{tuple(t.shape)} {t.dtype.name} {size / 2**20:.1f} MB" for size, t in sized[:5]]
    rollup = Path("/proc/self/smaps_rollup")
    if rollup.exists():
        fields = dict(line.split(":", 1) for line in rollup.read_text().splitlines()[1:] if ":" in line)
        for name in ("Rss", "Anonymous", "Private_Clean", "Private_Dirty", "Shared_Clean"):
            if name in fields:
                report[f"smaps_{name.lower()}_mb"] = round(int(fields[name].split()[0]) / 1024, 1)
    report["python_arenas_mb"] = _pymalloc_mb()
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    report["malloc_in_use_mb"] = round((info.uordblks + info.hblkhd) / 2**20, 1)
    report["malloc_free_mb"] = round(info.fordblks / 2**20, 1)
    report["malloc_mmapped_mb"] = round(info.hblkhd / 2**20, 1)
    return report


def _pymalloc_mb() -> float | None:
    """Python's small-object allocator's arenas (mapped by Python itself, so not in malloc's figures)."""
    import re

    with tempfile.TemporaryFile() as file:  # sys._debugmallocstats writes to the C stderr
        saved = os.dup(2)
        try:
            os.dup2(file.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        file.seek(0)
        text = file.read().decode(errors="replace")
    total = re.search(r"^Total\s*=\s*([\d,]+)", text, re.MULTILINE)
    return round(int(total.group(1).replace(",", "")) / 2**20, 1) if total else None


def serve(report_path: str, arguments: list[str]) -> None:
    """`streamlit <arguments>`, writing `memory_report()` as one JSON line to `report_path` on SIGUSR1."""
    import signal
    import threading

    def on_signal(*_: Any) -> None:
        def write() -> None:
            with open(report_path, "a") as file:
                file.write(json.dumps(memory_report()) + "\n")
        threading.Thread(target=write, daemon=True).start()

    def on_release(*_: Any) -> None:
        # An experiment, not the app's behaviour: what would be freed without the finished jobs
        # (their results and Keras models) and the cached datasets?
        def release() -> None:
            from cnnviz import memory

            ui = sys.modules.get("widgets.ui")
            if ui is not None:
                registry = ui.job_registry()
                registry.keep_ended = 0
                registry._prune()
                ui._cached_dataset.clear()
            memory.trim_heap()  # The app's own: collect cycles, then give free heap pages back.
            with open(report_path, "a") as file:
                file.write(json.dumps({"released": True, **memory_report()}) + "\n")
        threading.Thread(target=release, daemon=True).start()

    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, on_release)
    from streamlit.web import cli

    sys.argv = ["streamlit", *arguments]
    cli.main()


def ask_report(process: subprocess.Popen, report_path: str, seconds: float = 60.0, release: bool = False) -> dict | None:
    import signal

    before = Path(report_path).read_text().count("\n") if Path(report_path).exists() else 0
    os.kill(process.pid, signal.SIGUSR2 if release else signal.SIGUSR1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = Path(report_path).read_text().splitlines() if Path(report_path).exists() else []
        if len(lines) > before:
            return json.loads(lines[-1])
        time.sleep(0.5)
    return None


def rss_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def script_idle(page) -> bool:
    return bool(page.evaluate(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return !!app && app.getAttribute('data-test-script-state') === 'notRunning';
        }"""))


def wait_done(page, deadline: float) -> str:
    """Wait until the page's script is idle with no Stop button twice in a row; '' or a failure."""
    quiet = 0
    while time.monotonic() < deadline:
        if page.locator(EXCEPTION).count():
            return "traceback"
        busy = (page.get_by_role("button", name="Stop").count() > 0
                or page.locator('[data-testid="stSpinner"]').count() > 0)
        quiet = quiet + 1 if script_idle(page) and not busy else 0
        if quiet >= 3:
            return ""
        time.sleep(0.5)
    return "time limit"


def reveal(page, button) -> bool:
    """Make `button` visible, opening the page's tabs one after another if needed (True once visible)."""
    if button.is_visible():
        return True
    tabs = page.get_by_role("tab")
    for index in range(tabs.count()):
        tabs.nth(index).click()
        time.sleep(0.5)
        if button.is_visible():
            return True
    return False


def warm_up(cache_dir: str) -> None:
    """`python -m cnnviz warmup` into `cache_dir`, in its own process (as a lecturer runs it before
    class): the server then finds every default model on disk. Prints its time and peak RSS."""
    began = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([sys.executable, "-m", "cnnviz", "warmup"], cwd=PROJECT_ROOT, stdout=out,
                                   stderr=err, text=True, env={**os.environ, "CNNVIZ_OFFLINE": "1",
                                                               "CNNVIZ_CACHE_DIR": cache_dir,
                                                               "TF_CPP_MIN_LOG_LEVEL": "2"})
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource use, peak RSS included
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        last = (out.read().strip().splitlines() or [""])[-1]
        errors = err.read()
    print(f"warm-up (python -m cnnviz warmup, its own process): {time.monotonic() - began:.1f} s, "
          f"exit {code}, peak RSS {usage.ru_maxrss / 1024:.0f} MB; {last}", flush=True)
    if code:
        raise SystemExit(f"The warm-up failed:\n{errors[-2000:]}")


def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    steps = []
    with (contextlib.nullcontext(args.cache_dir) if args.cache_dir
          else tempfile.TemporaryDirectory(prefix="cnnviz-memory-cache-")) as cache_dir, \
            tempfile.NamedTemporaryFile("w", prefix="cnnviz-memory-server-", suffix=".log", delete=False) as log, \
            sync_playwright() as playwright:
        report_path = f"{log.name}.reports" if args.attribute else None
        if args.warmup:
            warm_up(cache_dir)
        process, url = start_server(cache_dir, log, dict(item.split("=", 1) for item in args.env), report_path)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        start = time.monotonic()

        def record(name: str, seconds: float, failure: str = "") -> None:
            step = {"step": name, "seconds": round(seconds, 1), "rss_mb": round(rss_mb(process.pid)),
                    "peak_rss_mb": round(peak_rss_mb(process.pid)), "failure": failure}
            steps.append(step)
            print(f"{name:<34} {step['seconds']:>7.1f} s  RSS {step['rss_mb']:>5} MB  peak {step['peak_rss_mb']:>5} MB"
                  f"{'  FAILED: ' + failure if failure else ''}", flush=True)
            if report_path:
                step["report"] = ask_report(process, report_path)
                print(f"    {json.dumps(step['report'])}", flush=True)

        try:
            record("server started", 0.0)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(url)
            failure = wait_done(page, time.monotonic() + 120)
            record("home", time.monotonic() - start, failure)
            for lesson in LESSONS:
                began = time.monotonic()
                query = QUICK_QUERY.get(lesson.url_path, "") if args.quick else ""
                page.goto(f"{url}/{lesson.url_path}" + (f"?{query}" if query else ""))
                failure = wait_done(page, time.monotonic() + 180)
                record(f"visit {lesson.url_path}", time.monotonic() - began, failure)
                for key in RUN_BUTTONS.get(lesson.url_path, []):
                    button = page.locator(f".st-key-{key} button")
                    if not button.count() or button.first.is_disabled():
                        continue
                    began = time.monotonic()
                    if not reveal(page, button.first):
                        record(f"  run {key}", 0.0, "button not visible in any tab")
                        continue
                    button.first.click(timeout=30_000)
                    time.sleep(1.0)
                    failure = wait_done(page, began + args.time_limit)
                    record(f"  run {key}", time.monotonic() - began, failure)
            time.sleep(args.settle)
            record(f"after {args.settle:g} s quiet", time.monotonic() - start)
            if report_path:
                released = ask_report(process, report_path, release=True)
                print(f"released (ended jobs and cached datasets dropped): RSS {round(rss_mb(process.pid))} MB "
                      f"{json.dumps(released)}", flush=True)
        finally:
            browser.close()
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return {"quick": args.quick, "env": args.env, "steady_rss_mb": steps[-1]["rss_mb"], "peak_rss_mb": steps[-1]["peak_rss_mb"],
            "failures": [f"{s['step']}: {s['failure']}" for s in steps if s["failure"]], "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller Train-page settings through its link")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds per run before giving up")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra environment of the server, e.g. MALLOC_ARENA_MAX=2")
    parser.add_argument("--settle", type=float, default=10.0, help="quiet seconds before the last measure")
    parser.add_argument("--cache-dir", default=None,
                        help="the server's CNNVIZ_CACHE_DIR, kept after the run (default: a fresh temporary "
                             "folder); a second run with the same folder finds every model on disk and trains none")
    parser.add_argument("--warmup", action="store_true",
                        help="first run `python -m cnnviz warmup` into the server's cache, in its own process: "
                             "the tour then trains nothing in the server (the lecture-hall set-up)")
    parser.add_argument("--attribute", action="store_true",
                        help="after each step, the server reports what holds its memory (arrays, models, heap)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit("Needs Debian chromium at /usr/bin/chromium (apt-get install chromium).")
    summary = run(args)
    print(f"\nSteady RSS after every page and default: {summary['steady_rss_mb']} MB "
          f"(peak {summary['peak_rss_mb']} MB; goal < 1024 MB)")
    print(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3:])
    else:
        main()
