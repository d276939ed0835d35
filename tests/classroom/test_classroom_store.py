"""The classroom store's behaviour, the same for the in-process and the Redis implementation
(`store` / `make_store` are parametrised over both in conftest.py)."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
from collections import Counter

import pytest

from cnnviz.classroom import InProcessStore, Limits, RedisStore, open_store
from cnnviz.errors import (
    ClassNotFound,
    ClassroomError,
    ClassroomFull,
    ClassroomInputError,
    ClassroomUnavailable,
    CnnvizError,
    LecturerOnly,
)

QUESTION = "Output shape of Conv2D(8, 3) on a 28×28×1 image, padding 'valid'?"
OPTIONS = ("28×28×8", "26×26×8", "26×26×1", "14×14×8")


# --- class sessions and the lecturer's secret ---------------------------------------------------

def test_a_class_has_a_code_a_separate_secret_and_public_info(store, clock):
    new = store.create_class("  CNNs,   week 3 ")
    info = store.class_info(new.code)
    assert info == new.info
    assert (info.code, info.title, info.students, info.budget) == (new.code, "CNNs, week 3", 0, {})
    assert info.expires_at - info.created_at == pytest.approx(store.limits.ttl_seconds)
    assert new.lecturer_secret != new.code and new.code not in new.lecturer_secret
    assert new.lecturer_secret not in repr(info)
    assert store.is_lecturer(new.code, new.lecturer_secret)
    other = store.create_class()
    assert other.code != new.code
    for wrong in (None, "", new.code, other.lecturer_secret, new.lecturer_secret[:-1]):
        assert not store.is_lecturer(new.code, wrong)


def test_lecturer_actions_need_the_lecturer_secret(store):
    new, other = store.create_class(), store.create_class()
    poll = store.send_poll(new.code, new.lecturer_secret, QUESTION, OPTIONS, answer=1)
    actions = {
        "send a poll": lambda s: store.send_poll(new.code, s, QUESTION, OPTIONS),
        "reveal": lambda s: store.reveal(new.code, s, poll.poll_id),
        "follow": lambda s: store.set_follow(new.code, s, "train"),
        "roster": lambda s: store.students(new.code, s),
        "budget": lambda s: store.set_budget(new.code, s, {"max_parameters": 50_000}),
        "end": lambda s: store.end_class(new.code, s),
    }
    for action in actions.values():
        for wrong in (None, "", new.code, other.lecturer_secret):
            with pytest.raises(LecturerOnly, match="lecturer"):
                action(wrong)
    # Nothing happened: one poll, no follow, the class still there.
    assert store.current_poll(new.code).poll_id == 1 and not store.current_poll(new.code).revealed
    assert store.follow_state(new.code).version == 0
    for action in actions.values():
        action(new.lecturer_secret)
    with pytest.raises(ClassNotFound):
        store.class_info(new.code)


def test_unknown_codes_are_not_found_with_a_message_for_a_student(store):
    store.create_class()
    for code in ("", "ABCDEFGHJKMN", "nonsense", "x" * 5000):
        with pytest.raises(ClassNotFound, match="no class with this code"):
            store.join(code)
        with pytest.raises(CnnvizError):
            store.class_info(code)


def test_a_typed_code_finds_its_class(store):
    new = store.create_class()
    typed = f"{new.code[:4].lower()}-{new.code[4:8]}-{new.code[8:]}"
    assert store.join(typed).number == 1
    assert store.class_info(typed).students == 1


def test_the_budget_is_kept_as_json(store):
    new = store.create_class()
    info = store.set_budget(new.code, new.lecturer_secret, {"max_parameters": 50_000, "max_epochs": 3,
                                                            "subset": [0, 1, 2]})
    assert info.budget == {"max_parameters": 50_000, "max_epochs": 3, "subset": [0, 1, 2]}
    assert store.class_info(new.code).budget == info.budget
    with pytest.raises(ClassroomInputError):
        store.set_budget(new.code, new.lecturer_secret, {"x": "y" * 5000})
    with pytest.raises(ClassroomInputError):
        store.set_budget(new.code, new.lecturer_secret, {"x": float("nan")})


# --- students --------------------------------------------------------------------------------------

def test_students_join_with_bounded_raw_names(store):
    new = store.create_class()
    ada = store.join(new.code, "  Ada  Lovelace ")
    anonymous = store.join(new.code)
    jose = store.join(new.code, "José")
    assert (ada.number, anonymous.number, jose.number) == (1, 2, 3)
    assert (ada.name, anonymous.display_name, jose.name) == ("Ada Lovelace", "Student 2", "José")
    assert len({ada.student_id, anonymous.student_id, jose.student_id}) == 3
    assert store.student(new.code, jose.student_id) == jose
    assert store.students(new.code, new.lecturer_secret) == [ada, anonymous, jose]
    assert store.class_info(new.code).students == 3
    for bad in ("<script>alert(1)</script>", "a" * 25, "bell\x07"):
        with pytest.raises(ClassroomInputError, match="display name"):
            store.join(new.code, bad)
    assert store.class_info(new.code).students == 3
    with pytest.raises(ClassroomError, match="not a student"):
        store.student(new.code, "made-up")
    with pytest.raises(ClassroomError, match="not a student"):
        store.student(store.create_class().code, ada.student_id)


# --- polls ---------------------------------------------------------------------------------------

def test_poll_answers_histogram_and_reveal(store):
    new = store.create_class()
    secret = new.lecturer_secret
    students = [store.join(new.code, f"s{i}") for i in range(7)]
    poll = store.send_poll(new.code, secret, QUESTION, list(OPTIONS), answer=1)
    assert (poll.poll_id, poll.options, poll.answer, poll.revealed) == (1, OPTIONS, 1, False)
    seen = store.current_poll(new.code)
    assert (seen.question, seen.options, seen.answer, seen.revealed) == (QUESTION, OPTIONS, None, False)
    assert store.poll(new.code, 1).answer is None and store.poll(new.code, 1, secret).answer == 1

    rng = random.Random(3)
    chosen = {}
    for student in students[:6]:
        for _ in range(2):  # A second answer replaces the first.
            chosen[student.student_id] = rng.randrange(len(OPTIONS))
            store.answer(new.code, 1, student.student_id, chosen[student.student_id])
    oracle = Counter(chosen.values())
    live = store.results(new.code, 1, secret)
    assert live.counts == tuple(oracle[i] for i in range(len(OPTIONS)))
    assert (live.answered, live.students) == (6, 7)
    assert store.my_answer(new.code, 1, students[0].student_id) == chosen[students[0].student_id]
    assert store.my_answer(new.code, 1, students[6].student_id) is None
    with pytest.raises(LecturerOnly, match="reveals"):
        store.results(new.code, 1)  # a student, before the reveal

    revealed = store.reveal(new.code, secret, 1)
    assert (revealed.revealed, revealed.answer) == (True, 1)
    assert store.current_poll(new.code).answer == 1
    shown = store.results(new.code, 1)
    assert shown.counts == live.counts and shown.poll.answer == 1
    with pytest.raises(ClassroomError, match="closed"):
        store.answer(new.code, 1, students[6].student_id, 0)
    assert store.results(new.code, 1, secret).answered == 6


def test_poll_answers_are_checked(store):
    new = store.create_class()
    secret, student = new.lecturer_secret, store.join(new.code)
    first = store.send_poll(new.code, secret, "Which class?", ["shirt", "coat"])
    for bad in (-1, 2, True, "0", 0.5):
        with pytest.raises(ClassroomInputError, match="options"):
            store.answer(new.code, first.poll_id, student.student_id, bad)
    with pytest.raises(ClassroomError, match="not a student"):
        store.answer(new.code, first.poll_id, "made-up", 0)
    for poll_id in (0, 2, -1, True):
        with pytest.raises(ClassroomError, match="no such poll"):
            store.answer(new.code, poll_id, student.student_id, 0)
    store.answer(new.code, first.poll_id, student.student_id, 0)
    second = store.send_poll(new.code, secret, "Which variant wins?", ["ReLU", "sigmoid", "no difference"])
    assert second.poll_id == 2 and store.current_poll(new.code).poll_id == 2
    with pytest.raises(ClassroomError, match="closed"):
        store.answer(new.code, first.poll_id, student.student_id, 1)
    assert store.results(new.code, first.poll_id, secret).counts == (1, 0)
    with pytest.raises(ClassroomError, match="without one"):
        store.reveal(new.code, secret, second.poll_id)
    assert store.reveal(new.code, secret, second.poll_id, answer=2).answer == 2
    with pytest.raises(ClassroomInputError):
        store.reveal(new.code, secret, first.poll_id, answer=5)


@pytest.mark.parametrize(("question", "options"), [
    ("", ["a", "b"]), ("q" * 301, ["a", "b"]), ("q", ["only one"]), ("q", [f"o{i}" for i in range(13)]),
    ("q", ["same", "same"]), ("q", ["a", ""]), ("q", "ab"), ("q", ["a", "b" * 81]), ("q\x00", ["a", "b"]),
])
def test_bad_polls_are_refused(store, question, options):
    new = store.create_class()
    with pytest.raises(ClassroomInputError):
        store.send_poll(new.code, new.lecturer_secret, question, options)
    assert store.current_poll(new.code) is None


# --- leaderboard ---------------------------------------------------------------------------------

def test_leaderboard_entries_status_and_rank(store):
    new = store.create_class()
    ada, bo, cy, di = (store.join(new.code, name) for name in ("Ada", "Bo", "", "Di"))
    config = {"stack": [{"type": "conv", "filters": 8}], "epochs": 2, "optimizer": "adam"}
    first = store.submit_entry(new.code, ada.student_id, config)
    same = store.submit_entry(new.code, bo.student_id, dict(reversed(list(config.items()))))
    other = store.submit_entry(new.code, cy.student_id, {**config, "epochs": 3})
    fourth = store.submit_entry(new.code, di.student_id, {**config, "epochs": 1})
    assert [e.entry_id for e in (first, same, other, fourth)] == [1, 2, 3, 4]
    assert (first.status, first.name, other.name, first.config) == ("queued", "Ada", "Student 3", config)
    assert first.config_key == same.config_key != other.config_key  # identical configurations train once
    assert store.leaderboard(new.code) == [] and store.rank(new.code, 1) is None

    assert store.update_entry(new.code, 1, status="training").status == "training"
    store.update_entry(new.code, 1, status="done", accuracy=0.88, spread=0.01, parameters=12_000)
    store.update_entry(new.code, 2, status="done", accuracy=0.88, parameters=12_000)
    store.update_entry(new.code, 3, status="done", accuracy=0.91, spread=0.004, parameters=12_000)
    failed = store.update_entry(new.code, 4, status="failed", message="The worker stopped; retry.")
    assert (failed.status, failed.message, failed.accuracy) == ("failed", "The worker stopped; retry.", None)
    # Oracle: 0.91 first; the two 0.88 share rank 2; the failed entry is not ranked.
    board = store.leaderboard(new.code)
    assert [(row.rank, row.entry.entry_id) for row in board] == [(1, 3), (2, 1), (2, 2)]
    assert board[1].entry.spread == 0.01 and board[0].entry.parameters == 12_000
    assert [store.rank(new.code, i) for i in (1, 2, 3, 4)] == [2, 2, 1, None]
    assert [e.status for e in store.entries(new.code)] == ["done", "done", "done", "failed"]
    assert store.entry(new.code, 3).accuracy == 0.91
    assert store.update_entry(new.code, 4, status="queued").message == ""


def test_leaderboard_inputs_are_checked(store):
    new = store.create_class()
    student = store.join(new.code)
    with pytest.raises(ClassroomError, match="not a student"):
        store.submit_entry(new.code, "made-up", {"epochs": 1})
    for bad in ({"x": object()}, {"x": "y" * 5000}, ["epochs", 1], {"x": float("inf")}):
        with pytest.raises(ClassroomInputError):
            store.submit_entry(new.code, student.student_id, bad)
    store.submit_entry(new.code, student.student_id, {"epochs": 1})
    for kwargs in ({"status": "won"}, {"status": "done"}, {"status": "done", "accuracy": 1.5},
                   {"status": "done", "accuracy": 0.5, "parameters": -1}, {"status": "failed", "message": "m" * 301}):
        with pytest.raises(ClassroomInputError):
            store.update_entry(new.code, 1, **kwargs)
    for entry_id in (0, 2, True):
        with pytest.raises(ClassroomError, match="no such leaderboard entry"):
            store.update_entry(new.code, entry_id, status="training")
        with pytest.raises(ClassroomError, match="no such leaderboard entry"):
            store.rank(new.code, entry_id)
    assert store.entry(new.code, 1).status == "queued"


# --- follow me -----------------------------------------------------------------------------------

def test_follow_me_keeps_the_latest_view_and_counts_versions(store):
    new = store.create_class()
    assert store.follow_state(new.code) == type(store.follow_state(new.code))("", "", 0, None)
    first = store.set_follow(new.code, new.lecturer_secret, "train", "?stack=%5B%5D&epochs=2")
    assert (first.page, first.query, first.version) == ("train", "stack=%5B%5D&epochs=2", 1)
    second = store.set_follow(new.code, new.lecturer_secret, "convolution")
    assert store.follow_state(new.code) == second
    assert (second.page, second.query, second.version) == ("convolution", "", 2)
    for page, query in (("../etc", ""), ("train", "a b"), ("x" * 81, ""), ("train", "é=1"), ("train", "a" * 8001)):
        with pytest.raises(ClassroomInputError):
            store.set_follow(new.code, new.lecturer_secret, page, query)
    assert store.follow_state(new.code).version == 2


# --- bounds --------------------------------------------------------------------------------------

def test_every_store_is_bounded_with_a_clear_message(make_store):
    store = make_store(Limits(max_classes=2, max_students=3, max_polls=2, max_answers=2, max_entries=3,
                              max_entries_per_student=2))
    new = store.create_class()
    store.create_class()
    with pytest.raises(ClassroomFull, match=r"list of classes is full \(at most 2\)"):
        store.create_class()
    students = [store.join(new.code) for _ in range(3)]
    with pytest.raises(ClassroomFull, match=r"This class is full \(at most 3\)"):
        store.join(new.code, "late")
    store.send_poll(new.code, new.lecturer_secret, "q1", ["a", "b"])
    store.send_poll(new.code, new.lecturer_secret, "q2", ["a", "b"])
    with pytest.raises(ClassroomFull, match=r"polls is full \(at most 2\)"):
        store.send_poll(new.code, new.lecturer_secret, "q3", ["a", "b"])
    store.answer(new.code, 2, students[0].student_id, 0)
    store.answer(new.code, 2, students[1].student_id, 0)
    store.answer(new.code, 2, students[1].student_id, 1)  # changing an answer is not a new answer
    with pytest.raises(ClassroomFull, match=r"answers is full \(at most 2\)"):
        store.answer(new.code, 2, students[2].student_id, 0)
    assert store.results(new.code, 2, new.lecturer_secret).counts == (1, 1)
    store.submit_entry(new.code, students[0].student_id, {"n": 1})
    store.submit_entry(new.code, students[0].student_id, {"n": 2})
    with pytest.raises(ClassroomFull, match=r"Your list of leaderboard entries is full \(at most 2\)"):
        store.submit_entry(new.code, students[0].student_id, {"n": 3})
    store.submit_entry(new.code, students[1].student_id, {"n": 3})
    with pytest.raises(ClassroomFull, match=r"leaderboard is full \(at most 3\)"):
        store.submit_entry(new.code, students[2].student_id, {"n": 4})
    assert len(store.entries(new.code)) == 3
    assert issubclass(ClassroomFull, CnnvizError)


# --- expiry and ending -----------------------------------------------------------------------------

def test_classes_expire_and_free_their_slot(make_store, clock):
    store = make_store(Limits(max_classes=1))
    short = store.create_class(ttl_seconds=60)
    student = store.join(short.code)
    clock.advance(59)
    assert store.class_info(short.code).students == 1
    with pytest.raises(ClassroomFull):
        store.create_class()
    clock.advance(1)
    for action in (lambda: store.class_info(short.code), lambda: store.join(short.code),
                   lambda: store.answer(short.code, 1, student.student_id, 0),
                   lambda: store.set_follow(short.code, short.lecturer_secret, "train"),
                   lambda: store.entries(short.code), lambda: store.follow_state(short.code)):
        with pytest.raises(ClassNotFound):
            action()
    assert store.create_class().code != short.code  # the expired class no longer counts
    for ttl in (0, -1, 24 * 3600 + 1, True, "60"):
        with pytest.raises(ClassroomInputError):
            store.create_class(ttl_seconds=ttl)


def test_ending_a_class_removes_it_and_nothing_else(store):
    ended, kept = store.create_class(), store.create_class()
    for new in (ended, kept):
        student = store.join(new.code)
        store.send_poll(new.code, new.lecturer_secret, "q", ["a", "b"])
        store.answer(new.code, 1, student.student_id, 1)
        store.submit_entry(new.code, student.student_id, {"epochs": 1})
    store.end_class(ended.code, ended.lecturer_secret)
    with pytest.raises(ClassNotFound):
        store.current_poll(ended.code)
    assert store.results(kept.code, 1, kept.lecturer_secret).counts == (0, 1)
    assert len(store.entries(kept.code)) == 1


# --- implementation specifics (checked against Redis itself) -------------------------------------

@pytest.fixture
def redis_store(redis_url, clock):
    store = RedisStore(redis_url, clock=clock)
    store.client.flushdb()
    yield store
    store.close()


def test_redis_keys_expire_with_the_class_and_never_hold_the_secret(redis_store, clock):
    new = redis_store.create_class(ttl_seconds=600)
    student = redis_store.join(new.code, "Ada")
    redis_store.send_poll(new.code, new.lecturer_secret, "q", ["a", "b"])
    redis_store.answer(new.code, 1, student.student_id, 0)
    redis_store.submit_entry(new.code, student.student_id, {"epochs": 1})
    redis_store.update_entry(new.code, 1, status="training")
    client = redis_store.client
    keys = sorted(client.scan_iter(match=f"{redis_store.prefix}*"))
    class_keys = [key for key in keys if new.code in key]
    assert sorted(class_keys) == sorted(redis_store.class_keys(new.code))
    assert len(class_keys) == 7
    for key in class_keys:
        assert 0 < client.pttl(key) <= 600_000, key  # Redis itself forgets the class
    dump = " ".join(str(client.hgetall(key)) for key in class_keys if client.type(key) == "hash")
    assert new.lecturer_secret not in dump and new.code not in dump.replace(new.code + "}", "")
    redis_store.end_class(new.code, new.lecturer_secret)
    assert list(client.scan_iter(match=f"*{new.code}*")) == []


def test_redis_drops_a_class_whose_time_is_past(redis_store, clock):
    clock.advance(-3600)  # a server whose clock is an hour behind: the class's expiry is already past
    new = redis_store.create_class(ttl_seconds=60)
    assert list(redis_store.client.scan_iter(match=f"*{new.code}*")) == []


def test_two_redis_stores_share_one_class(redis_store, redis_url, clock):
    other_server = RedisStore(redis_url, clock=clock)
    try:
        new = redis_store.create_class()
        student = other_server.join(new.code, "Bo")
        redis_store.send_poll(new.code, new.lecturer_secret, "q", ["a", "b"], answer=0)
        other_server.answer(new.code, 1, student.student_id, 1)
        assert redis_store.results(new.code, 1, new.lecturer_secret).counts == (0, 1)
        assert other_server.set_follow(new.code, new.lecturer_secret, "train").version == 1
        assert redis_store.follow_state(new.code).page == "train"
    finally:
        other_server.close()


def test_an_unreachable_redis_is_a_clear_classroom_error():
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0")
    try:
        for action in (lambda: store.create_class(), lambda: store.class_info("ABCDEFGHJKMN"),
                       lambda: store.join("ABCDEFGHJKMN"), lambda: store.leaderboard("ABCDEFGHJKMN")):
            with pytest.raises(ClassroomUnavailable, match="cannot be reached"):
                action()
    finally:
        store.close()
    assert issubclass(ClassroomUnavailable, ClassroomError)


def test_open_store_picks_the_implementation_and_the_core_does_not_import_redis(redis_url):
    assert isinstance(open_store(None), InProcessStore)
    store = open_store(redis_url)
    try:
        assert isinstance(store, RedisStore)
        assert store.class_info(store.create_class().code).students == 0
    finally:
        store.close()
    code = ("import sys, cnnviz.classroom, cnnviz.classroom.leaderboard, cnnviz.classroom.trainers, "
            "cnnviz.classroom.workers; "
            "print(sorted(m for m in ('redis', 'rq', 'streamlit', 'tensorflow') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
