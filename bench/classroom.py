"""A class answering a poll: N students join and answer at once, on each classroom store.

For each store (in-process; Redis, on a fresh private `redis-server` per setting) and each N
(default 8, 32, 64), a fresh Python process runs the simulation, so that each peak is its own:
the lecturer creates a class and sends a poll; N student threads, released together, join,
read the current poll and answer (then change their mind once); the lecturer's thread reads the
live histogram until every answer is in (or the time limit passes), reveals the answer, and
every student reads the revealed histogram.

Reported per setting: completion (answers counted / N, and whether the histogram equals the
answers given), wall time from the release to the last student reading the reveal, the live
histogram reads the lecturer made meanwhile, the simulating process's peak RSS (VmHWM) and its
growth during the run, and for Redis the server's peak RSS and `used_memory_peak`; plus the time
ratio of Redis to in-process for the same N, measured in the same run (the machine is shared:
absolute times are noisy, ratios less so).

Leaderboard (`--part leaderboard`): N students, released together, join and each submit one
entry, drawn from `len(ENTRY_CONFIGS)` distinct configurations (so identical ones must train once);
the lecturer's page calls the trainer's `refresh` every `REFRESH_S` until every entry is trained.
Settings: in-process (`LocalEntryTrainer`: the server's own training threads, TensorFlow imported
before the clock starts, as on a server that trained once already) and Redis with 1 and 2
`python -m cnnviz worker` processes (`RQEntryTrainer`; workers started and registered, TensorFlow
loaded, before the clock starts). Each setting has its own fresh disk cache, so every distinct
configuration really trains. Reported: completion (entries done / N), trainings run (the models
in the setting's disk cache; for Redis also RQ's finished jobs), wall time from the release to the last entry done, the simulating process's peak
RSS and each worker's peak RSS (VmHWM). Budget: `LEADERBOARD_BUDGET` (tiny: 512 training images,
500 test images, 1 epoch, 1 seed).

Usage: python bench/classroom.py [--part poll leaderboard] [--students 8 32 64]
       [--stores in-process redis] [--workers 1 2] [--json]
Traffic goes only to the redis-server this script starts on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from measure import free_port, peak_rss_mb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from cnnviz.classroom import (  # noqa: E402
    ClassroomStore,
    InProcessStore,
    Limits,
    RedisStore,
    leaderboard,
    trainers,
    workers,
)

OPTIONS = ["26×26×8", "28×28×8", "26×26×1", "13×13×8"]
TIME_LIMIT = 60.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def simulate(store: ClassroomStore, students: int) -> dict:
    """One poll answered by `students` threads released together; the lecturer watches live."""
    new = store.create_class("bench")
    poll = store.send_poll(new.code, new.lecturer_secret, "Output shape?", OPTIONS, answer=0)
    barrier = threading.Barrier(students + 1)
    revealed = threading.Event()
    given: dict[int, int] = {}
    seen_reveal: list[bool] = [False] * students
    errors: list[str] = []

    def student(i: int) -> None:
        try:
            barrier.wait()
            me = store.join(new.code, f"student {i}")
            current = store.current_poll(new.code)
            assert current is not None and current.poll_id == poll.poll_id
            store.answer(new.code, poll.poll_id, me.student_id, i % len(OPTIONS))
            given[i] = (3 * i + 1) % len(OPTIONS)
            store.answer(new.code, poll.poll_id, me.student_id, given[i])
            if not revealed.wait(TIME_LIMIT):
                raise TimeoutError("no reveal")
            seen_reveal[i] = store.results(new.code, poll.poll_id).poll.answer == 0
        except Exception as error:  # noqa: BLE001 (counted and reported)
            errors.append(f"{type(error).__name__}: {error}")

    threads, baseline, start = start_students(student, students, barrier)
    reads = 0
    while True:
        results = store.results(new.code, poll.poll_id, new.lecturer_secret)
        reads += 1
        if results.answered >= students or time.perf_counter() - start > TIME_LIMIT or len(errors) == students:
            break
        time.sleep(0.005)  # the lecturer's page refreshes; a real one every ~1 s
    all_in = time.perf_counter() - start
    store.reveal(new.code, new.lecturer_secret, poll.poll_id)
    revealed.set()
    for thread in threads:
        thread.join(TIME_LIMIT)
    wall = time.perf_counter() - start
    final = store.results(new.code, poll.poll_id, new.lecturer_secret)
    oracle = Counter(given.values())
    return {"students": students, "answered": final.answered, "saw_reveal": sum(seen_reveal),
            "histogram_ok": final.counts == tuple(oracle[i] for i in range(len(OPTIONS))),
            "errors": len(errors), "first_error": errors[0] if errors else "", "all_answers_in_s": all_in,
            "wall_s": wall, "live_reads": reads, "peak_rss_mb": peak_rss_mb(os.getpid()),
            "rss_growth_mb": max(0.0, peak_rss_mb(os.getpid()) - baseline)}


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """A private redis-server (no persistence) on a free loopback port; returns (process, url)."""
    import redis

    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    with redis.Redis.from_url(url) as client:
        while True:
            try:
                client.ping()
                return process, url
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise
                time.sleep(0.02)


def run_one(kind: str, students: int) -> dict:
    """One setting in this process (the child of `main`)."""
    limits = Limits(max_students=max(students, 1), max_answers=max(students, 1))
    if kind == "in-process":
        return simulate(InProcessStore(limits=limits), students)
    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-redis-") as folder:
        process, url = start_redis(Path(folder))
        store = RedisStore(url, limits=limits)
        try:
            result = simulate(store, students)
            info = store.client.info("memory")
            result["redis_used_memory_peak_mb"] = info["used_memory_peak"] / 2**20
            result["redis_peak_rss_mb"] = peak_rss_mb(process.pid)
            return result
        finally:
            store.close()
            process.terminate()
            process.wait(10)


LEADERBOARD_BUDGET = leaderboard.LeaderboardBudget(max_parameters=50_000, max_epochs=1, train_images=512,
                                                   test_images=500, seeds=1)
REFRESH_S = 0.25
LEADERBOARD_TIME_LIMIT = 600.0


def entry_configs() -> list[dict]:
    """The distinct configurations the students pick from (4: two networks, two learning rates)."""
    budget = LEADERBOARD_BUDGET
    small = leaderboard.preset_entry_config("bottleneck_cnn", budget)
    relu = leaderboard.preset_entry_config("fashion_relu_cnn", budget)
    return [small, relu, {**small, "learning_rate": 0.001}, {**relu, "learning_rate": 0.001}]


def simulate_leaderboard(store: ClassroomStore, trainer: trainers.EntryTrainer, students: int,
                         extra: dict | None = None) -> dict:
    """N student threads, released together, join and submit one entry each; the lecturer's
    page refreshes the board until every entry is trained (or the time limit passes)."""
    configs = entry_configs()
    new = store.create_class("bench")
    store.set_budget(new.code, new.lecturer_secret, LEADERBOARD_BUDGET.to_mapping())
    barrier = threading.Barrier(students + 1)
    errors: list[str] = []

    def student(i: int) -> None:
        try:
            barrier.wait()
            me = store.join(new.code, f"student {i}")
            entry = store.submit_entry(new.code, me.student_id, configs[i % len(configs)])
            trainer.submit(new.code, entry.entry_id)
        except Exception as error:  # noqa: BLE001 (counted and reported)
            errors.append(f"{type(error).__name__}: {error}")

    threads, baseline, start = start_students(student, students, barrier)
    for thread in threads:
        thread.join(TIME_LIMIT)
    submitted_s = time.perf_counter() - start
    refreshes = 0
    while True:
        trainer.refresh(new.code)
        refreshes += 1
        entries = store.entries(new.code)
        if len(entries) + len(errors) >= students and all(e.status in ("done", "failed") for e in entries):
            break
        if time.perf_counter() - start > LEADERBOARD_TIME_LIMIT:
            break
        time.sleep(REFRESH_S)  # the lecturer's page re-reads the board
    wall = time.perf_counter() - start
    entries = store.entries(new.code)
    done = [e for e in entries if e.status == "done"]
    by_key: dict[str, set] = {}
    for e in done:
        by_key.setdefault(e.config_key, set()).add(e.accuracy)
    return {"students": students, "entries": len(entries), "done": len(done),
            "failed": sum(e.status == "failed" for e in entries),
            "first_failure": next((e.message for e in entries if e.status == "failed"), ""),
            "twins_agree": all(len(values) == 1 for values in by_key.values()),
            "distinct_configs": len({e.config_key for e in entries}), "errors": len(errors),
            "first_error": errors[0] if errors else "", "submitted_s": submitted_s, "wall_s": wall,
            "refreshes": refreshes, "peak_rss_mb": peak_rss_mb(os.getpid()),
            "rss_growth_mb": max(0.0, peak_rss_mb(os.getpid()) - baseline), **(extra or {})}


def start_workers(count: int, url: str, cache: Path, log_dir: Path) -> list[subprocess.Popen]:
    """`count` `python -m cnnviz worker` processes on `url`, waited for until RQ lists them."""
    from rq import Queue, Worker

    env = {**os.environ, "CNNVIZ_REDIS_URL": url, "CNNVIZ_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen([sys.executable, "-m", "cnnviz", "worker"], cwd=PROJECT_ROOT, env=env,
                                  stdout=(log_dir / f"worker{i}.log").open("w"), stderr=subprocess.STDOUT)
                 for i in range(count)]
    import redis

    with redis.Redis.from_url(url) as client:
        queue = Queue(workers.QUEUE_NAME, connection=client)
        deadline = time.monotonic() + 300
        while Worker.count(connection=client, queue=queue) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                stop_processes(processes)
                raise SystemExit(f"workers did not start: {(log_dir / 'worker0.log').read_text()[-2000:]}")
            time.sleep(0.1)
    return processes


def start_students(student, students: int, barrier: threading.Barrier) -> tuple[list[threading.Thread], float, float]:
    """Start one thread per student (each waits at `barrier`), then release them all at once:
    (the threads, this process's peak RSS before the release in MB, the release's perf_counter)."""
    threads = [threading.Thread(target=student, args=(i,)) for i in range(students)]
    for thread in threads:
        thread.start()
    baseline = peak_rss_mb(os.getpid())
    barrier.wait()
    return threads, baseline, time.perf_counter()


def add_ratio_to_in_process(rows: list[dict], column: str) -> None:
    """Each row's wall time as a ratio to the in-process row of the same N (measured in this run)."""
    reference = {row["students"]: row["wall_s"] for row in rows if row[column] == "in-process"}
    for row in rows:
        if row["students"] in reference:
            row["wall_vs_in_process"] = row["wall_s"] / reference[row["students"]]


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def trained_models(cache: Path) -> int:
    """How many models the setting trained: the models its fresh disk cache holds."""
    return len(list((cache / "training").glob("*/model.keras")))


def run_leaderboard(kind: str, students: int, n_workers: int) -> dict:
    """One leaderboard setting in this process (the child of `main`), with a fresh disk cache."""
    limits = Limits(max_students=max(students, 1), max_entries=max(students, 1))
    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-board-") as folder_name:
        folder = Path(folder_name)
        os.environ["CNNVIZ_CACHE_DIR"] = str(folder / "cache")
        if kind == "in-process":
            import tensorflow  # noqa: F401 - loaded before the clock, as on a server that trained once

            store = InProcessStore(limits=limits)
            local = trainers.LocalEntryTrainer(store)
            result = simulate_leaderboard(store, local, students)
            result["trainings"] = trained_models(folder / "cache")
            return result
        process, url = start_redis(folder)
        pool: list[subprocess.Popen] = []
        try:
            pool = start_workers(n_workers, url, folder / "cache", folder)
            store = RedisStore(url, limits=limits)
            trainer = workers.RQEntryTrainer(url, store=store)
            result = simulate_leaderboard(store, trainer, students)
            from rq.registry import FinishedJobRegistry

            result["trainings"] = trained_models(folder / "cache")
            result["rq_jobs"] = len(FinishedJobRegistry(queue=trainer.queue).get_job_ids())
            result["worker_peak_rss_mb"] = [peak_rss_mb(p.pid) for p in pool]
            result["redis_peak_rss_mb"] = peak_rss_mb(process.pid)
            trainer.close()
            store.close()
            return result
        finally:
            stop_processes(pool)
            process.terminate()
            process.wait(10)


def _leaderboard_table(rows: list[dict]) -> None:
    print(f"{'setting':<15}{'N':>4}{'done':>9}{'failed':>7}{'configs':>8}{'trained':>8}{'twins':>6}{'err':>5}"
          f"{'submit s':>9}{'wall s':>8}{'x in-proc':>10}{'RSS MB':>8}{'+MB':>6}{'worker RSS MB':>16}{'redis MB':>9}")
    for row in rows:
        worker_rss = "/".join(f"{v:.0f}" for v in row.get("worker_peak_rss_mb", [])) or "-"
        print(f"{row['setting']:<15}{row['students']:>4}{row['done']:>6}/{row['students']:<2}{row['failed']:>7}"
              f"{row['distinct_configs']:>8}{row['trainings']:>8}{'ok' if row['twins_agree'] else 'BAD':>6}"
              f"{row['errors']:>5}{row['submitted_s']:>9.3f}{row['wall_s']:>8.2f}"
              f"{row.get('wall_vs_in_process', float('nan')):>10.2f}{row['peak_rss_mb']:>8.0f}{row['rss_growth_mb']:>6.0f}"
              f"{worker_rss:>16}{row.get('redis_peak_rss_mb', float('nan')):>9.1f}")
        for key in ("first_error", "first_failure"):
            if row[key]:
                print(f"   {key.replace('_', ' ')}: {row[key]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=["poll", "leaderboard"], default=["poll", "leaderboard"])
    parser.add_argument("--students", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--stores", nargs="+", choices=["in-process", "redis"], default=["in-process", "redis"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes (Redis leaderboard)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("STORE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--one-board", nargs=3, metavar=("STORE", "N", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    if args.one_board:
        print(json.dumps(run_leaderboard(args.one_board[0], int(args.one_board[1]), int(args.one_board[2]))),
              flush=True)
        # Leave without TensorFlow's teardown: once, at N=64 in-process, the interpreter's exit aborted
        # in C++ ("FATAL: exception not rethrown") after the run had finished and printed its figures.
        os._exit(0)
    if "poll" in args.part:
        poll_part(args)
    if "leaderboard" in args.part:
        leaderboard_part(args)


def leaderboard_part(args: argparse.Namespace) -> None:
    rows = []
    for n in args.students:
        settings = [("in-process", 0)] if "in-process" in args.stores else []
        settings += [("redis", w) for w in args.workers] if "redis" in args.stores else []
        for kind, n_workers in settings:
            child = subprocess.run([sys.executable, __file__, "--one-board", kind, str(n), str(n_workers)],
                                   capture_output=True, text=True, timeout=LEADERBOARD_TIME_LIMIT + 600,
                                   cwd=PROJECT_ROOT)
            if child.returncode:
                raise SystemExit(f"leaderboard {kind} N={n} workers={n_workers} failed:\n{child.stderr[-3000:]}")
            setting = "in-process" if kind == "in-process" else f"redis {n_workers} worker{'s' * (n_workers > 1)}"
            rows.append({"setting": setting, **json.loads(child.stdout.strip().splitlines()[-1])})
            print(f"  {setting} N={n}: {rows[-1]['wall_s']:.1f} s {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    add_ratio_to_in_process(rows, "setting")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"Leaderboard: {LEADERBOARD_BUDGET.describe()}; {len(entry_configs())} distinct configurations")
    _leaderboard_table(rows)


def poll_part(args: argparse.Namespace) -> None:
    rows = []
    for n in args.students:
        for kind in args.stores:
            child = subprocess.run([sys.executable, __file__, "--one", kind, str(n)], capture_output=True, text=True,
                                   timeout=TIME_LIMIT * 3, cwd=PROJECT_ROOT)
            if child.returncode:
                raise SystemExit(f"{kind} N={n} failed:\n{child.stderr[-3000:]}")
            rows.append({"store": kind, **json.loads(child.stdout.strip().splitlines()[-1])})
    add_ratio_to_in_process(rows, "store")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'store':<11}{'N':>4}{'answered':>10}{'reveal':>8}{'hist':>6}{'err':>5}{'all in s':>10}{'wall s':>9}"
          f"{'x in-proc':>10}{'reads':>7}{'RSS MB':>8}{'+MB':>6}{'redis RSS':>10}{'redis mem':>10}")
    for row in rows:
        print(f"{row['store']:<11}{row['students']:>4}{row['answered']:>7}/{row['students']:<2}"
              f"{row['saw_reveal']:>8}{'ok' if row['histogram_ok'] else 'BAD':>6}{row['errors']:>5}"
              f"{row['all_answers_in_s']:>10.3f}{row['wall_s']:>9.3f}{row.get('wall_vs_in_process', float('nan')):>10.2f}"
              f"{row['live_reads']:>7}{row['peak_rss_mb']:>8.1f}{row['rss_growth_mb']:>6.1f}"
              f"{row.get('redis_peak_rss_mb', float('nan')):>10.1f}{row.get('redis_used_memory_peak_mb', float('nan')):>10.2f}")
        if row["first_error"]:
            print(f"   first error: {row['first_error']}")


if __name__ == "__main__":
    main()
