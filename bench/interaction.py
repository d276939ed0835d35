"""How fast the convolution lab reacts: change-to-redraw time per control, in a real browser.

Starts the real app (`streamlit run app.py` on a loopback port, file watcher off), opens the
convolution lab in headless Debian Chromium (Playwright) with the quiz off, and for each control
(preset, stride, padding, kernel size, step, play) changes it back and forth `--repeats` times:

- end to end: from the change (the page receiving the key or pointer press: its event's time
  stamp, after Playwright's own work of sending it, which is printed apart) until the figure
  the control redraws (kernel, output or step-through chart) holds new data in the browser
  (a map chart drawn again, or a Plotly chart's `gd.data` replaced), measured with the page's own
  clock (`performance.now()`), and split at the websocket into input handling, server and
  network, and the browser's drawing;
- server time: how long the script runs (whole page, or one fragment) that the change started
  took on the server. The server is started through this file (`--serve`), which wraps
  Streamlit's `ScriptRunner._run_script` and prints one `CNNVIZ-RUN` line per run; nothing in
  the app is changed for the measurement.
- Play: frames per second of the step-through while playing (the output position shown in the
  step-through chart's title changing), over `--play-seconds`.

The machine is shared (2 cores, other engineers' tests and servers): absolute times are noisy.
Compare the figures of one run with each other, and rerun when the load (printed) was high.
The last lines are machine-readable: one `RESULT {json}` line per control and a `SUMMARY {json}`.

Run from the project root: `python bench/interaction.py [--repeats 12] [--app-dir DIR]`
(`--app-dir` benches another checkout, e.g. the previous commit, with this same script).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import free_port, wait_for_health  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RUN_MARK = "CNNVIZ-RUN"
TARGET_SERVER_MS = 100.0
TARGET_E2E_MS = 250.0
TARGET_FPS = 5.0

# Helpers installed in the page: mark a chart's current data, and report when it was replaced.
PAGE_HELPERS = """
window.__bench = {
  plot(key) { return document.querySelector(`.st-key-${key} .js-plotly-plot`); },
  // A map chart (widgets/map_chart.js: a canvas) counts the data it has drawn in data-renders.
  map(key) { return document.querySelector(`.st-key-${key} .cnnviz-map`); },
  mark(key) {
    const gd = this.plot(key);
    if (gd && gd.data) { gd.data.__benchOld = true; }
    const map = this.map(key);
    this.renders = map ? map.dataset.renders : null;
    return performance.now();
  },
  changed(key) {
    const map = this.map(key);
    if (map) { return map.dataset.renders !== this.renders ? performance.now() : false; }
    const gd = this.plot(key);
    return (gd && gd.data && gd._fullLayout && !gd.data.__benchOld) ? performance.now() : false;
  },
  title(key) {
    const map = this.map(key);
    if (map) { return map.dataset.title || ''; }
    const gd = this.plot(key);
    return gd && gd._fullLayout && gd.layout.title ? String(gd.layout.title.text || gd.layout.title) : '';
  },
  // The first input event (key or pointer press) and message sent after `since`, and the last
  // message received before `until` (ms).
  traffic(since, until) {
    const input = window.__benchInput.find((t) => t >= since);
    const sent = window.__benchWs.sent.find((t) => t >= since);
    const received = window.__benchWs.received.filter((t) => t <= until);
    return {input: input ?? null, sent: sent ?? null, received: received.length ? received[received.length - 1] : null};
  },
  idle() {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning';
  },
};
// When the page received each key or pointer press (the event's own time stamp: the moment a
// student's press would reach the page, after the automation's own work of sending it).
window.__benchInput = [];
for (const type of ['keydown', 'pointerdown']) {
  window.addEventListener(type, (event) => window.__benchInput.push(event.timeStamp), {capture: true});
}
// Streamlit's websocket, wrapped to note when each message leaves and arrives (performance.now()).
(() => {
  const Native = window.WebSocket;
  window.__benchWs = {sent: [], received: []};
  function Wrapped(...args) {
    const socket = new Native(...args);
    const send = socket.send.bind(socket);
    socket.send = (data) => { window.__benchWs.sent.push(performance.now()); return send(data); };
    socket.addEventListener('message', () => window.__benchWs.received.push(performance.now()));
    return socket;
  }
  Wrapped.prototype = Native.prototype;
  for (const name of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) { Wrapped[name] = Native[name]; }
  window.WebSocket = Wrapped;
})();
"""


# ---------------------------------------------------------------------------------------------
# The server side: Streamlit with each script run timed
# ---------------------------------------------------------------------------------------------

def serve(arguments: list[str]) -> None:
    """`streamlit <arguments>`, printing `CNNVIZ-RUN <start epoch s> <wall ms> <fragment 0/1> <cpu ms>` per run.

    The CPU time is the script thread's own (`time.thread_time`): less sensitive than the wall
    time to other programs on a shared machine.
    """
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.web import cli

    original = script_runner.ScriptRunner._run_script
    depth = threading.local()

    def timed_run_script(self, rerun_data):
        level = getattr(depth, "level", 0)
        depth.level = level + 1
        started_wall, started, started_cpu = time.time(), time.perf_counter(), time.thread_time()
        try:
            return original(self, rerun_data)
        finally:
            depth.level = level
            if level == 0:  # A rerun inside a run (st.rerun) is part of the outer one.
                fragment = 1 if rerun_data.fragment_id_queue else 0
                print(f"{RUN_MARK} {started_wall:.6f} {(time.perf_counter() - started) * 1000:.2f} {fragment} "
                      f"{(time.thread_time() - started_cpu) * 1000:.2f}", file=sys.stderr, flush=True)

    script_runner.ScriptRunner._run_script = timed_run_script  # type: ignore[method-assign]
    # The app's own folder (Streamlit puts it first on the path) must provide cnnviz, not this checkout.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != PROJECT_ROOT]
    sys.argv = ["streamlit", *arguments]
    cli.main()


class Server:
    """The app on a loopback port, with its script runs collected from the log."""

    def __init__(self, app_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "CNNVIZ_OFFLINE": "1"}
        env.setdefault("CNNVIZ_DATA_DIR", "/tmp/cnnvizdata")
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", "run", "app.py",
             "--server.headless", "true", "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.runs: queue.Queue[tuple[float, float, int, float]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        wait_for_health(self.url, self.process)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            self.log.flush()
            if line.startswith(RUN_MARK):
                _, start, ms, fragment, cpu = line.split()
                self.runs.put((float(start), float(ms), int(fragment), float(cpu)))

    def runs_since(self, since: float) -> list[tuple[float, float, int, float]]:
        """The runs logged so far that started at or after `since` (epoch seconds); older ones are dropped."""
        found: list[tuple[float, float, int, float]] = []
        while True:
            try:
                run = self.runs.get_nowait()
            except queue.Empty:
                return found
            if run[0] >= since - 0.002:
                found.append(run)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# The browser side
# ---------------------------------------------------------------------------------------------

def wait_idle(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_function("() => window.__bench.idle()", timeout=timeout_ms, polling=20)


def settle(page, server: Server) -> None:
    """Wait for the app to be idle and nothing more to arrive, then forget the runs seen so far."""
    wait_idle(page)
    time.sleep(0.25)
    wait_idle(page)
    server.runs_since(time.time() + 3600)


def measure_change(page, server: Server, chart: str, action) -> tuple[float, float, float, int, tuple[float, float, float], float]:
    """(end-to-end ms, server ms, server CPU ms, runs, phases, automation ms) of one change:
    `action()` until `chart` holds new data. End to end starts when the page receives the key or
    pointer press (its event time stamp); `automation` is the time Playwright took before that
    (from its command to the event: not the app's). `phases` splits the end-to-end time at the
    websocket (ms): from the press to the browser's first message out (input handling), from there
    to the last message in before the redraw (server and network), and from that message to the
    redrawn chart (the browser's drawing)."""
    settle(page, server)
    started_wall = time.time()
    started = page.evaluate("(key) => window.__bench.mark(key)", chart)
    action()
    handle = page.wait_for_function("(key) => window.__bench.changed(key)", arg=chart, polling="raf",
                                    timeout=60_000)
    redrawn = float(handle.json_value())
    traffic = page.evaluate("([since, until]) => window.__bench.traffic(since, until)", [started, redrawn])
    pressed = traffic["input"] if traffic["input"] is not None and traffic["input"] <= redrawn else started
    sent = traffic["sent"] if traffic["sent"] is not None and pressed <= traffic["sent"] <= redrawn else pressed
    received = traffic["received"] if traffic["received"] is not None and traffic["received"] >= sent else sent
    phases = (sent - pressed, received - sent, redrawn - received)
    wait_idle(page)
    time.sleep(0.15)
    wait_idle(page)
    runs = server.runs_since(started_wall)
    return (redrawn - pressed, sum(run[1] for run in runs), sum(run[3] for run in runs), len(runs), phases,
            pressed - started)


def select_option(page, label: str, option: str):
    """A selectbox change: open the list first (not timed), return the click that changes it."""
    def prepare():
        page.get_by_label(label, exact=True).first.click()
        page.get_by_role("option", name=option, exact=True).first.wait_for()
    return prepare, lambda: page.get_by_role("option", name=option, exact=True).first.click()


def segment(page, key: str, option: str):
    """A click on one option of a segmented control (`st.segmented_control` with this key)."""
    return lambda: page.locator(f".st-key-{key} button", has_text=option).first.click()


def slider_key(page, label: str, key: str):
    slider = page.locator(f'input[type="range"][aria-label="{label}"]').first
    return lambda: slider.press(key)


def controls(page) -> dict[str, tuple[str, list]]:
    """Per control: the chart it redraws and the changes to make in turn (prepare, change)."""
    def nothing() -> None:
        return None

    return {
        "preset": ("conv_kernel_chart", [select_option(page, "Preset", "Sobel x"),
                                         select_option(page, "Preset", "Laplacian edge")]),
        "stride": ("conv_output_chart", [(nothing, slider_key(page, "Stride S", "ArrowRight")),
                                         (nothing, slider_key(page, "Stride S", "ArrowLeft"))]),
        "padding": ("conv_output_chart", [(nothing, segment(page, "conv_padding", "same")),
                                          (nothing, segment(page, "conv_padding", "valid"))]),
        "kernel size": ("conv_kernel_chart", [(nothing, lambda: page.get_by_text("5×5", exact=True).first.click()),
                                              (nothing, lambda: page.get_by_text("3×3", exact=True).first.click())]),
        "step": ("conv_step_output_chart", [(nothing, slider_key(page, "Output column", "ArrowRight")),
                                            (nothing, slider_key(page, "Output column", "ArrowLeft"))]),
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


COUNT_TITLE_CHANGES = """async ([key, seconds]) => {
    // The title names the position shown ("... position (row, col)"): one change per frame.
    const title = () => window.__bench.title(key);
    const seen = [];
    let last = title();
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
        await new Promise(requestAnimationFrame);
        const now = title();
        // A chart being replaced has no title for a moment: not a frame.
        if (now && now !== last) { seen.push(performance.now()); last = now; }
    }
    return seen;
}"""


def frame_rate(times: list[float]) -> tuple[float, float | None]:
    """(frames per second, median gap in ms) of the moments a frame appeared."""
    if len(times) < 2:
        return 0.0, None
    gaps = [b - a for a, b in zip(times, times[1:])]
    return (len(times) - 1) / ((times[-1] - times[0]) / 1000), statistics.median(gaps)


def measure_sweep(page, server: Server, seconds: float) -> dict:
    """Frames per second of the in-browser sweep (a Plotly animation: no server work per frame)."""
    settle(page, server)
    page.get_by_text("Sweep in the browser", exact=False).first.click()
    page.wait_for_selector(".st-key-conv_sweep_chart .js-plotly-plot", timeout=60_000)
    settle(page, server)
    started_wall = time.time()
    page.locator(".st-key-conv_sweep_chart .updatemenu-button").first.click()
    times = page.evaluate(COUNT_TITLE_CHANGES, ["conv_sweep_chart", seconds])
    runs = server.runs_since(started_wall)
    page.locator(".st-key-conv_sweep_chart .updatemenu-button").nth(1).click()
    fps, gap = frame_rate(times)
    return {"control": "sweep (browser)", "frames": len(times), "fps": round(fps, 2),
            "frame_gap_median_ms": round(gap, 1) if gap else None, "server_runs": len(runs)}


def measure_play(page, server: Server, seconds: float) -> dict:
    """Frames per second of Play: how often the step-through chart's title (its position) changes."""
    settle(page, server)
    page.get_by_role("button", name="Play", exact=True).first.click()
    started_wall = time.time()
    times = page.evaluate(COUNT_TITLE_CHANGES, ["conv_step_output_chart", seconds])
    runs = server.runs_since(started_wall)
    pause = page.get_by_role("button", name="Pause", exact=True).first
    if pause.count():
        pause.click()
    page.get_by_role("button", name="Play", exact=True).first.wait_for(timeout=120_000)
    settle(page, server)
    frames = len(times)
    fps, gap = frame_rate(times)
    server_ms = [run[1] for run in runs]
    cpu_ms = [run[3] for run in runs]
    return {"control": "play", "frames": frames, "fps": round(fps, 2),
            "frame_gap_median_ms": round(gap, 1) if gap else None,
            "server_median_ms": round(statistics.median(server_ms), 1) if server_ms else None,
            "server_p90_ms": round(percentile(server_ms, 0.9), 1) if server_ms else None,
            "server_cpu_median_ms": round(statistics.median(cpu_ms), 1) if cpu_ms else None,
            "runs": len(runs)}


def check_link(page, server: Server) -> dict:
    """After the changes: do the address bar and "Copy link to this view" carry what the controls show?"""
    settle(page, server)
    from urllib.parse import parse_qs, urlparse

    shown = {label: page.locator(f'input[type="range"][aria-label="{label}"]').first.get_attribute("aria-valuetext")
             for label in ("Stride S", "Output column")}
    in_url = parse_qs(urlparse(page.url).query)
    page.get_by_role("button", name="Copy link to this view").first.click()
    code = page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"]').first
    code.wait_for()
    in_link = parse_qs(urlparse(code.inner_text().strip()).query)
    page.keyboard.press("Escape")
    expected = {"conv_stride": shown["Stride S"], "conv_col": shown["Output column"]}
    url_agrees = all(in_url.get(key) == [value] for key, value in expected.items())
    link_agrees = all(in_link.get(key) == [value] for key, value in expected.items())
    return {"control": "link", "shown": expected, "url": {key: in_url.get(key) for key in expected},
            "link": {key: in_link.get(key) for key in expected}, "url_agrees": url_agrees,
            "link_agrees": link_agrees, "agree": url_agrees and link_agrees}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12, help="changes per control (alternating)")
    parser.add_argument("--play-seconds", type=float, default=6.0)
    parser.add_argument("--app-dir", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--query", default="conv_quiz=0", help="query string the lab is opened with")
    parser.add_argument("--log", type=Path, default=Path("/tmp/cnnviz-interaction-server.log"))
    parser.add_argument("--only-play", action="store_true", help="measure Play only")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    print(f"app: {args.app_dir}  repeats: {args.repeats}  load average before: "
          f"{' '.join(f'{x:.2f}' for x in load_before)} on {os.cpu_count()} cores", flush=True)
    server = Server(args.app_dir, args.log)
    results: list[dict] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script(PAGE_HELPERS)
            page.set_default_timeout(60_000)
            page.goto(f"{server.url}/convolution?{args.query}")
            page.wait_for_selector(".st-key-conv_step_output_chart :is(.js-plotly-plot, .cnnviz-map)", timeout=120_000)
            settle(page, server)
            for name, (chart, changes) in ({} if args.only_play else controls(page)).items():
                for prepare, change in changes:  # Warm-up: caches filled once, not counted.
                    settle(page, server)
                    prepare()
                    measure_change(page, server, chart, change)
                e2e, server_ms, cpu_ms, run_counts, phases, automation = [], [], [], [], [], []
                for index in range(args.repeats):
                    prepare, change = changes[index % len(changes)]
                    settle(page, server)
                    prepare()
                    total, on_server, cpu, count, split, before = measure_change(page, server, chart, change)
                    e2e.append(total)
                    phases.append(split)
                    automation.append(before)
                    server_ms.append(on_server)
                    cpu_ms.append(cpu)
                    run_counts.append(count)
                result = {"control": name, "chart": chart, "n": len(e2e),
                          "e2e_median_ms": round(statistics.median(e2e), 1),
                          "e2e_p90_ms": round(percentile(e2e, 0.9), 1),
                          "server_median_ms": round(statistics.median(server_ms), 1),
                          "server_p90_ms": round(percentile(server_ms, 0.9), 1),
                          "server_cpu_median_ms": round(statistics.median(cpu_ms), 1),
                          "runs_per_change": statistics.median(run_counts),
                          "input_median_ms": round(statistics.median(p[0] for p in phases), 1),
                          "server_and_network_median_ms": round(statistics.median(p[1] for p in phases), 1),
                          "drawing_median_ms": round(statistics.median(p[2] for p in phases), 1),
                          "automation_median_ms": round(statistics.median(automation), 1)}
                results.append(result)
                print(f"{name:12s} end to end median {result['e2e_median_ms']:7.1f} ms  p90 "
                      f"{result['e2e_p90_ms']:7.1f} ms | server median {result['server_median_ms']:7.1f} ms  "
                      f"p90 {result['server_p90_ms']:7.1f} ms, CPU median {result['server_cpu_median_ms']:6.1f} ms "
                      f"({result['runs_per_change']} run(s) per change) | input {result['input_median_ms']} ms, "
                      f"server and network {result['server_and_network_median_ms']} ms, drawing "
                      f"{result['drawing_median_ms']} ms (Playwright before the press: "
                      f"{result['automation_median_ms']} ms, not counted)",
                      flush=True)
            link: dict | None = {"agree": None, "url_agrees": None, "link_agrees": None} if args.only_play else None
            # Move the step (a nested fragment: the address bar follows at once, the copied link at the
            # next lab change), then the stride (the lab fragment, which rewrites the copied link).
            if link is None:
                page.locator('input[type="range"][aria-label="Output column"]').first.press("ArrowRight")
                settle(page, server)
                page.locator('input[type="range"][aria-label="Output column"]').first.press("ArrowRight")
                settle(page, server)
                page.locator('input[type="range"][aria-label="Stride S"]').first.press("ArrowRight")
                link = check_link(page, server)
                results.append(link)
                print(f"{'link':12s} address bar agrees with the controls: {link['url_agrees']}, copied link: "
                      f"{link['link_agrees']} {link}", flush=True)
            play = measure_play(page, server, args.play_seconds)
            results.append(play)
            try:
                sweep = measure_sweep(page, server, args.play_seconds)
            except Exception as error:  # noqa: BLE001 - an app without the sweep (e.g. an older checkout).
                sweep = {"control": "sweep (browser)", "fps": None, "error": type(error).__name__}
            results.append(sweep)
            print(f"{'sweep':12s} {sweep.get('fps')} frames/s in the browser ({sweep.get('frames')} frames, "
                  f"median gap {sweep.get('frame_gap_median_ms')} ms, {sweep.get('server_runs')} server runs)",
                  flush=True)
            print(f"{'play':12s} {play['fps']:.2f} frames/s ({play['frames']} frames in {args.play_seconds:.0f} s, "
                  f"median gap {play['frame_gap_median_ms']} ms) | server median {play['server_median_ms']} ms "
                  f"(CPU {play['server_cpu_median_ms']} ms) per frame", flush=True)
            browser.close()
    finally:
        server.stop()
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)} (shared machine: times are noisy; "
          "compare controls within this run)")
    changes = [r for r in results if r["control"] not in ("play", "link", "sweep (browser)")]
    summary = {
        "app_dir": str(args.app_dir), "load_before": load_before[0], "load_after": load_after[0],
        "worst_e2e_median_ms": max((r["e2e_median_ms"] for r in changes), default=None),
        "worst_server_median_ms": max((r["server_median_ms"] for r in changes), default=None),
        "worst_server_cpu_median_ms": max((r["server_cpu_median_ms"] for r in changes), default=None),
        "play_fps": play["fps"], "sweep_fps": sweep.get("fps"), "link_agrees": link["agree"],
        "meets_targets": (all(r["e2e_median_ms"] < TARGET_E2E_MS and r["server_median_ms"] < TARGET_SERVER_MS
                              for r in changes)
                          and max(play["fps"], sweep.get("fps") or 0.0) >= TARGET_FPS),
    }
    for result in results:
        print("RESULT " + json.dumps(result))
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
    else:
        main()
