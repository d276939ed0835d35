"""Many students at once: no answer lost, no bound exceeded, no version skipped (both stores).

Each test starts its threads together on a barrier so that their calls overlap."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cnnviz.classroom import Limits, RedisStore
from cnnviz.errors import ClassroomFull

STUDENTS = 64


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(0..n-1)` in n threads released at once; each result, or the ClassroomFull raised."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except ClassroomFull as full:
            return full

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_many_students_answering_at_once_lose_no_answer(store):
    new = store.create_class()
    poll = store.send_poll(new.code, new.lecturer_secret, "Which class?", ["a", "b", "c", "d", "e"], answer=2)

    def student(i: int) -> int:
        me = store.join(new.code, f"student {i}")
        store.answer(new.code, poll.poll_id, me.student_id, i % 5)
        store.answer(new.code, poll.poll_id, me.student_id, (i * 7 + 1) % 5)  # changes their mind
        return (i * 7 + 1) % 5

    final = _together(STUDENTS, student)
    oracle = Counter(final)
    results = store.results(new.code, poll.poll_id, new.lecturer_secret)
    assert results.counts == tuple(oracle[i] for i in range(5))
    assert (results.answered, results.students) == (STUDENTS, STUDENTS)
    numbers = [s.number for s in store.students(new.code, new.lecturer_secret)]
    assert numbers == list(range(1, STUDENTS + 1))


def test_joining_at_once_never_exceeds_the_bound(make_store):
    store = make_store(Limits(max_students=20))
    new = store.create_class()
    outcomes = _together(48, lambda i: store.join(new.code))
    joined = [o for o in outcomes if not isinstance(o, ClassroomFull)]
    assert len(joined) == 20 and sorted(s.number for s in joined) == list(range(1, 21))
    assert store.class_info(new.code).students == 20


def test_submitting_and_creating_at_once_never_exceed_their_bounds(make_store):
    store = make_store(Limits(max_entries=10, max_classes=5))
    new = store.create_class()
    students = [store.join(new.code) for _ in range(30)]
    outcomes = _together(30, lambda i: store.submit_entry(new.code, students[i].student_id, {"i": i}))
    entries = [o for o in outcomes if not isinstance(o, ClassroomFull)]
    assert sorted(e.entry_id for e in entries) == list(range(1, 11))
    assert len(store.entries(new.code)) == 10
    created = [o for o in _together(20, lambda i: store.create_class()) if not isinstance(o, ClassroomFull)]
    assert len(created) == 4 and len({c.code for c in created}) == 4  # 4 more beside the first


def test_follow_me_versions_count_every_push(store):
    new = store.create_class()
    states = _together(24, lambda i: store.set_follow(new.code, new.lecturer_secret, "train", f"step={i}"))
    assert sorted(s.version for s in states) == list(range(1, 25))
    latest = store.follow_state(new.code)
    assert latest.version == 24 and latest.query == next(s.query for s in states if s.version == 24)


_SERVER = """
import sys, threading
from cnnviz.classroom import RedisStore
url, code, poll_id, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
store = RedisStore(url)
barrier = threading.Barrier(count)
def student(i):
    barrier.wait()
    me = store.join(code, f"p{i}")
    store.answer(code, poll_id, me.student_id, i % 3)
threads = [threading.Thread(target=student, args=(first + i,)) for i in range(count)]
[t.start() for t in threads]
[t.join() for t in threads]
store.close()
"""


def test_two_server_processes_answering_into_one_redis_lose_nothing(redis_url):
    """Two Streamlit replicas are two processes: each runs 24 students against the same Redis."""
    store = RedisStore(redis_url)
    try:
        new = store.create_class()
        poll = store.send_poll(new.code, new.lecturer_secret, "q", ["a", "b", "c"])
        servers = [subprocess.Popen([sys.executable, "-c", _SERVER, redis_url, new.code, str(poll.poll_id),
                                     str(first), "24"]) for first in (0, 24)]
        assert [server.wait(timeout=60) for server in servers] == [0, 0]
        oracle = Counter(i % 3 for i in range(48))
        results = store.results(new.code, poll.poll_id, new.lecturer_secret)
        assert results.counts == (oracle[0], oracle[1], oracle[2]) and results.students == 48
    finally:
        store.close()
