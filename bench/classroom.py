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

Leaderboard entries and training workers come with the leaderboard (issue 18, a later step).

Usage: python bench/classroom.py [--students 8 32 64] [--stores in-process redis] [--json]
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

from cnnviz.classroom import ClassroomStore, InProcessStore, Limits, RedisStore  # noqa: E402

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

    threads = [threading.Thread(target=student, args=(i,)) for i in range(students)]
    for thread in threads:
        thread.start()
    baseline = peak_rss_mb(os.getpid())
    barrier.wait()
    start = time.perf_counter()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--stores", nargs="+", choices=["in-process", "redis"], default=["in-process", "redis"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("STORE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    rows = []
    for n in args.students:
        for kind in args.stores:
            child = subprocess.run([sys.executable, __file__, "--one", kind, str(n)], capture_output=True, text=True,
                                   timeout=TIME_LIMIT * 3, cwd=PROJECT_ROOT)
            if child.returncode:
                raise SystemExit(f"{kind} N={n} failed:\n{child.stderr[-3000:]}")
            rows.append({"store": kind, **json.loads(child.stdout.strip().splitlines()[-1])})
    reference = {row["students"]: row["wall_s"] for row in rows if row["store"] == "in-process"}
    for row in rows:
        if row["students"] in reference:
            row["wall_vs_in_process"] = row["wall_s"] / reference[row["students"]]
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
