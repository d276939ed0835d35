"""The classroom's shared state behind one interface, and its in-process implementation.

`ClassroomStore` is what pages use (issue 18): class sessions, the lecturer's secret, joining,
polls (send, answer, live histogram, reveal), leaderboard entries (submit, status, rank) and
follow me (the lecturer's page and query string, with a version counter). Two implementations
pass the same tests (tests/classroom/):

- `InProcessStore`: one dict behind one lock, for one Streamlit server (the default);
- `cnnviz.classroom.redis_store.RedisStore`: shared by several servers through Redis
  (`open_store(url)` picks it when a Redis URL is given).

Every method that changes a class checks what it may: lecturer actions need the lecturer's
secret (`LecturerOnly`), student actions the student's id; an unknown, ended or expired code is
`ClassNotFound`; a bound reached is `ClassroomFull`; bad text or values `ClassroomInputError`
(all `cnnviz.errors.ClassroomError`s, with messages for a student). Names and texts are stored
raw (bounded, see `model.clean_name`): pages escape them when they show them.
"""

from __future__ import annotations

import abc
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cnnviz.classroom import model
from cnnviz.classroom.model import (
    DEFAULT_LIMITS,
    ClassInfo,
    Entry,
    FollowState,
    Limits,
    NewClass,
    Poll,
    PollResults,
    RankedEntry,
    Student,
)
from cnnviz.errors import ClassNotFound, ClassroomError, LecturerOnly

Clock = Callable[[], float]

NOT_FOUND = ("There is no class with this code: check the code, or the class has ended or expired "
             "(ask the lecturer for a new link).")


class ClassroomStore(abc.ABC):
    """The shared state of class sessions. `limits` bound everything; `clock` gives the time (s)."""

    limits: Limits
    clock: Clock

    # --- class sessions -----------------------------------------------------------------------
    @abc.abstractmethod
    def create_class(self, title: str = "", *, ttl_seconds: float | None = None) -> NewClass:
        """A new class: its unguessable code, the lecturer's secret (shown once; keep it in the
        lecturer's session only) and its info. It expires `ttl_seconds` (default
        `limits.ttl_seconds`) after now."""

    @abc.abstractmethod
    def class_info(self, code: str) -> ClassInfo:
        """The class's public info (title, times, number of students, budget), or `ClassNotFound`."""

    @abc.abstractmethod
    def end_class(self, code: str, secret: str) -> None:
        """The lecturer ends the class: everything of it is deleted at once."""

    @abc.abstractmethod
    def is_lecturer(self, code: str, secret: str | None) -> bool:
        """Whether `secret` is this class's lecturer secret (constant-time compare)."""

    @abc.abstractmethod
    def set_budget(self, code: str, secret: str, budget: Mapping[str, Any]) -> ClassInfo:
        """The lecturer's leaderboard budget (a JSON-able mapping: max parameters, epochs, ...);
        checking entries against it is the trainer's job."""

    # --- students -----------------------------------------------------------------------------
    @abc.abstractmethod
    def join(self, code: str, name: str = "") -> Student:
        """A student joins with an optional display name; keep `student_id` in that student's session."""

    @abc.abstractmethod
    def student(self, code: str, student_id: str) -> Student:
        """The student with this id, or `ClassroomError` when this id never joined this class."""

    @abc.abstractmethod
    def students(self, code: str, secret: str) -> list[Student]:
        """Every student of the class, in joining order (the lecturer's roster)."""

    # --- polls --------------------------------------------------------------------------------
    @abc.abstractmethod
    def send_poll(self, code: str, secret: str, question: str, options: list[str] | tuple[str, ...],
                  *, answer: int | None = None) -> Poll:
        """The lecturer sends a question with its options (and, optionally, the index of the
        computed answer, kept hidden until `reveal`); it becomes the class's current poll and
        the previous one stops taking answers."""

    @abc.abstractmethod
    def current_poll(self, code: str) -> Poll | None:
        """The latest poll as students see it (no answer before the reveal), or None."""

    @abc.abstractmethod
    def poll(self, code: str, poll_id: int, secret: str | None = None) -> Poll:
        """One poll; with the lecturer's secret its answer is included even before the reveal."""

    @abc.abstractmethod
    def answer(self, code: str, poll_id: int, student_id: str, choice: int) -> None:
        """A student's answer (an index of the options) to the current, unrevealed poll; a second
        answer replaces the first."""

    @abc.abstractmethod
    def my_answer(self, code: str, poll_id: int, student_id: str) -> int | None:
        """The student's answer to this poll, or None."""

    @abc.abstractmethod
    def results(self, code: str, poll_id: int, secret: str | None = None) -> PollResults:
        """The live histogram: for the lecturer at any time, for everyone once revealed."""

    @abc.abstractmethod
    def reveal(self, code: str, secret: str, poll_id: int, answer: int | None = None) -> Poll:
        """The lecturer reveals the answer (given here, or the one sent with the poll): the
        poll stops taking answers and everyone sees the answer and the histogram."""

    # --- leaderboard --------------------------------------------------------------------------
    @abc.abstractmethod
    def submit_entry(self, code: str, student_id: str, config: Mapping[str, Any]) -> Entry:
        """A student's configuration for the leaderboard (JSON-able), status "queued"."""

    @abc.abstractmethod
    def update_entry(self, code: str, entry_id: int, *, status: str, accuracy: float | None = None,
                     spread: float | None = None, parameters: int | None = None, message: str = "") -> Entry:
        """The trainer's report on an entry: "training", "done" (with its test accuracy and, when
        several seeds ran, their spread) or "failed" (with a message; "queued" again to retry)."""

    @abc.abstractmethod
    def entry(self, code: str, entry_id: int) -> Entry:
        """One entry, or `ClassroomError` when there is none with this id."""

    @abc.abstractmethod
    def entries(self, code: str) -> list[Entry]:
        """Every entry of the class, in submission order."""

    def leaderboard(self, code: str) -> list[RankedEntry]:
        """The trained entries ranked by test accuracy (ties share a rank)."""
        return model.rank_entries(self.entries(code))

    def rank(self, code: str, entry_id: int) -> int | None:
        """The entry's rank on the leaderboard, or None while it is not trained."""
        self.entry(code, entry_id)
        return next((row.rank for row in self.leaderboard(code) if row.entry.entry_id == entry_id), None)

    # --- follow me ----------------------------------------------------------------------------
    @abc.abstractmethod
    def set_follow(self, code: str, secret: str, page: str, query: str = "") -> FollowState:
        """The lecturer pushes the current page (url path) and view (query string); the version
        goes up by one, so a following page moves when the version it last saw is older."""

    @abc.abstractmethod
    def follow_state(self, code: str) -> FollowState:
        """The lecturer's latest pushed view (version 0, empty page: nothing pushed yet)."""

    def close(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Release connections (nothing to do in-process)."""


def unknown_student() -> ClassroomError:
    return ClassroomError("This browser is not a student of this class (join the class again).")


def unknown_poll() -> ClassroomError:
    return ClassroomError("There is no such poll in this class.")


def unknown_entry() -> ClassroomError:
    return ClassroomError("There is no such leaderboard entry in this class.")


def poll_closed() -> ClassroomError:
    return ClassroomError("This question is closed: the answer was revealed or a newer question was sent.")


def not_revealed() -> LecturerOnly:
    return LecturerOnly("The answers are shown once the lecturer reveals the answer.")


@dataclass
class _Class:
    code: str
    title: str
    secret_hash: str
    created_at: float
    expires_at: float
    budget: dict[str, Any] = field(default_factory=dict)
    students: dict[str, Student] = field(default_factory=dict)
    polls: list[Poll] = field(default_factory=list)
    answers: dict[int, dict[str, int]] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    follow: FollowState = field(default_factory=lambda: FollowState("", "", 0, None))


class InProcessStore(ClassroomStore):
    """Every class in this process's memory, behind one lock (one Streamlit server)."""

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS, clock: Clock = time.time):
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._classes: dict[str, _Class] = {}

    def _purge(self, now: float) -> None:
        for code in [code for code, record in self._classes.items() if record.expires_at <= now]:
            del self._classes[code]

    def _class(self, code: str) -> _Class:
        """The live class (call with the lock held)."""
        record = self._classes.get(model.normalise_code(code))
        if record is None or record.expires_at <= self.clock():
            if record is not None:
                del self._classes[record.code]
            raise ClassNotFound(NOT_FOUND)
        return record

    def _lecturer_class(self, code: str, secret: str | None) -> _Class:
        record = self._class(code)
        model.require_lecturer(secret, record.secret_hash)
        return record

    def _info(self, record: _Class) -> ClassInfo:
        return ClassInfo(record.code, record.title, record.created_at, record.expires_at, len(record.students),
                         dict(record.budget))

    def create_class(self, title: str = "", *, ttl_seconds: float | None = None) -> NewClass:
        clean_title, ttl = model.clean_title(title, self.limits), model.clean_ttl(ttl_seconds, self.limits)
        secret = model.new_secret()
        with self._lock:
            now = self.clock()
            self._purge(now)
            if len(self._classes) >= self.limits.max_classes:
                raise model.full("This server's list of classes", self.limits.max_classes)
            code = model.new_code()
            while code in self._classes:  # Astronomically rare; never reuse a live code.
                code = model.new_code()
            record = _Class(code, clean_title, model.hash_secret(secret), now, now + ttl)
            self._classes[code] = record
            return NewClass(code, secret, self._info(record))

    def class_info(self, code: str) -> ClassInfo:
        with self._lock:
            return self._info(self._class(code))

    def end_class(self, code: str, secret: str) -> None:
        with self._lock:
            del self._classes[self._lecturer_class(code, secret).code]

    def is_lecturer(self, code: str, secret: str | None) -> bool:
        with self._lock:
            return model.secret_matches(secret, self._class(code).secret_hash)

    def set_budget(self, code: str, secret: str, budget: Mapping[str, Any]) -> ClassInfo:
        text = model.canonical_json(budget, "The leaderboard budget", self.limits.max_budget_chars)
        with self._lock:
            record = self._lecturer_class(code, secret)
            record.budget = json.loads(text)
            return self._info(record)

    def join(self, code: str, name: str = "") -> Student:
        clean = model.clean_name(name, self.limits)
        with self._lock:
            record = self._class(code)
            if len(record.students) >= self.limits.max_students:
                raise model.full("This class", self.limits.max_students)
            student = Student(model.new_student_id(), len(record.students) + 1, clean, self.clock())
            record.students[student.student_id] = student
            return student

    def student(self, code: str, student_id: str) -> Student:
        with self._lock:
            found = self._class(code).students.get(student_id)
        if found is None:
            raise unknown_student()
        return found

    def students(self, code: str, secret: str) -> list[Student]:
        with self._lock:
            return sorted(self._lecturer_class(code, secret).students.values(), key=lambda s: s.number)

    def send_poll(self, code: str, secret: str, question: str, options: list[str] | tuple[str, ...],
                  *, answer: int | None = None) -> Poll:
        question_text, cleaned, answer_index = model.clean_poll(question, options, answer, self.limits)
        with self._lock:
            record = self._lecturer_class(code, secret)
            if len(record.polls) >= self.limits.max_polls:
                raise model.full("This class's list of polls", self.limits.max_polls)
            poll = Poll(len(record.polls) + 1, question_text, cleaned, self.clock(), False, answer_index)
            record.polls.append(poll)
            record.answers[poll.poll_id] = {}
            return poll

    def _poll(self, record: _Class, poll_id: int) -> Poll:
        if isinstance(poll_id, bool) or not isinstance(poll_id, int) or not 1 <= poll_id <= len(record.polls):
            raise unknown_poll()
        return record.polls[poll_id - 1]

    def current_poll(self, code: str) -> Poll | None:
        with self._lock:
            record = self._class(code)
            return model.student_view(record.polls[-1]) if record.polls else None

    def poll(self, code: str, poll_id: int, secret: str | None = None) -> Poll:
        with self._lock:
            record = self._class(code)
            found = self._poll(record, poll_id)
            return found if model.secret_matches(secret, record.secret_hash) else model.student_view(found)

    def answer(self, code: str, poll_id: int, student_id: str, choice: int) -> None:
        with self._lock:
            record = self._class(code)
            found = self._poll(record, poll_id)
            if student_id not in record.students:
                raise unknown_student()
            if found.revealed or poll_id != len(record.polls):
                raise poll_closed()
            index = model.clean_choice(choice, len(found.options))
            answers = record.answers[poll_id]
            if student_id not in answers and len(answers) >= self.limits.max_answers:
                raise model.full("This poll's answers", self.limits.max_answers)
            answers[student_id] = index

    def my_answer(self, code: str, poll_id: int, student_id: str) -> int | None:
        with self._lock:
            record = self._class(code)
            self._poll(record, poll_id)
            return record.answers[poll_id].get(student_id)

    def results(self, code: str, poll_id: int, secret: str | None = None) -> PollResults:
        with self._lock:
            record = self._class(code)
            found = self._poll(record, poll_id)
            lecturer = model.secret_matches(secret, record.secret_hash)
            if not (found.revealed or lecturer):
                raise not_revealed()
            counts = [0] * len(found.options)
            for index in record.answers[poll_id].values():
                counts[index] += 1
            return PollResults(found if lecturer else model.student_view(found), tuple(counts),
                               sum(counts), len(record.students))

    def reveal(self, code: str, secret: str, poll_id: int, answer: int | None = None) -> Poll:
        with self._lock:
            record = self._lecturer_class(code, secret)
            found = self._poll(record, poll_id)
            index = found.answer if answer is None else model.clean_choice(answer, len(found.options))
            if index is None:
                raise ClassroomError("Give the answer to reveal: this poll was sent without one.")
            revealed = replace(found, revealed=True, answer=index)
            record.polls[poll_id - 1] = revealed
            return revealed

    def submit_entry(self, code: str, student_id: str, config: Mapping[str, Any]) -> Entry:
        text = model.canonical_json(config, "A leaderboard entry", self.limits.max_config_chars)
        with self._lock:
            record = self._class(code)
            student = record.students.get(student_id)
            if student is None:
                raise unknown_student()
            if len(record.entries) >= self.limits.max_entries:
                raise model.full("This class's leaderboard", self.limits.max_entries)
            if sum(e.student_id == student_id for e in record.entries) >= self.limits.max_entries_per_student:
                raise model.full("Your list of leaderboard entries", self.limits.max_entries_per_student)
            entry = Entry(len(record.entries) + 1, student_id, student.display_name, json.loads(text),
                          model.config_key(text), self.clock())
            record.entries.append(entry)
            return entry

    def _entry_index(self, record: _Class, entry_id: int) -> int:
        if isinstance(entry_id, bool) or not isinstance(entry_id, int) or not 1 <= entry_id <= len(record.entries):
            raise unknown_entry()
        return entry_id - 1

    def update_entry(self, code: str, entry_id: int, *, status: str, accuracy: float | None = None,
                     spread: float | None = None, parameters: int | None = None, message: str = "") -> Entry:
        changes = model.clean_entry_update(status, accuracy, spread, parameters, message, self.limits)
        with self._lock:
            record = self._class(code)
            index = self._entry_index(record, entry_id)
            record.entries[index] = updated = replace(record.entries[index], **changes)
            return updated

    def entry(self, code: str, entry_id: int) -> Entry:
        with self._lock:
            record = self._class(code)
            return record.entries[self._entry_index(record, entry_id)]

    def entries(self, code: str) -> list[Entry]:
        with self._lock:
            return list(self._class(code).entries)

    def set_follow(self, code: str, secret: str, page: str, query: str = "") -> FollowState:
        page_text, query_text = model.clean_follow(page, query, self.limits)
        with self._lock:
            record = self._lecturer_class(code, secret)
            record.follow = FollowState(page_text, query_text, record.follow.version + 1, self.clock())
            return record.follow

    def follow_state(self, code: str) -> FollowState:
        with self._lock:
            return self._class(code).follow
