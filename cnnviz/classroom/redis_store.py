"""The classroom store in Redis: several Streamlit servers share classes, polls, entries, follow me.

Keys (prefix `cnnviz:classroom:` by default; `{code}` is a Redis Cluster hash tag):

    <prefix>classes                  sorted set: code -> expiry time (bounds the live classes)
    <prefix>{code}                   hash: title, secret_hash, created_at, expires_at, budget,
                                     students / polls / entries (counters), follow_page,
                                     follow_query, follow_version, follow_at
    <prefix>{code}:students          hash: student id -> {"number", "name", "joined_at" (text: exact)}
    <prefix>{code}:polls             hash: "<n>" -> the poll as sent; "<n>:revealed" -> its answer
    <prefix>{code}:answers:<n>       hash: student id -> option index (one answer per student)
    <prefix>{code}:entries           hash: "<n>" -> the entry as submitted
    <prefix>{code}:entry_status      hash: "<n>" -> {"status", "accuracy", ...}
    <prefix>{code}:per_student       hash: student id -> how many entries

Every key of a class gets `PEXPIREAT` at the class's expiry when it is written, so Redis drops
a class by itself; reads also compare the expiry with the store's clock (injectable in tests).
Every write that checks a bound or a state (create, join, answer, send, reveal, submit, update,
follow) is one Lua script, so concurrent students cannot exceed a bound or lose an answer.
Texts a student typed are encoded to JSON in Python and stored as they are (never re-encoded
in Lua). When Redis cannot be reached, every method raises `ClassroomUnavailable` (a
`ClassroomError` with a message for a student). `redis` is imported only here, when a store is made.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

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
    Student,
)
from cnnviz.classroom.store import (
    NOT_FOUND,
    ClassroomStore,
    Clock,
    not_revealed,
    poll_closed,
    unknown_entry,
    unknown_poll,
    unknown_student,
)
from cnnviz.errors import ClassNotFound, ClassroomError, ClassroomUnavailable

if TYPE_CHECKING:
    import redis

DEFAULT_PREFIX = "cnnviz:classroom:"

# Shared head of every script: KEYS[1] is the class hash, ARGV[1] the time now; ms is the expiry.
_LIVE = """
local e = redis.call('HGET', KEYS[1], 'expires_at')
if (not e) or tonumber(e) <= tonumber(ARGV[1]) then return {'notfound'} end
local ms = string.format('%d', math.floor(tonumber(e) * 1000))
"""

# KEYS: classes zset, class hash. ARGV: now, max_classes, code, title, secret_hash, expires_at.
_CREATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {'full'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'taken'} end
redis.call('HSET', KEYS[2], 'title', ARGV[4], 'secret_hash', ARGV[5], 'created_at', ARGV[1],
           'expires_at', ARGV[6], 'students', 0, 'polls', 0, 'entries', 0, 'follow_version', 0, 'budget', '{}')
redis.call('PEXPIREAT', KEYS[2], string.format('%d', math.floor(tonumber(ARGV[6]) * 1000)))
redis.call('ZADD', KEYS[1], ARGV[6], ARGV[3])
return {'ok'}
"""

# KEYS: class, students. ARGV: now, max_students, student id, name.
_JOIN = _LIVE + """
if tonumber(redis.call('HGET', KEYS[1], 'students')) >= tonumber(ARGV[2]) then return {'full'} end
local n = redis.call('HINCRBY', KEYS[1], 'students', 1)
redis.call('HSET', KEYS[2], ARGV[3], cjson.encode({number = n, name = ARGV[4], joined_at = ARGV[1]}))
redis.call('PEXPIREAT', KEYS[2], ms)
return {'ok', n}
"""

# KEYS: class, polls. ARGV: now, max_polls, poll JSON.
_SEND = _LIVE + """
if tonumber(redis.call('HGET', KEYS[1], 'polls')) >= tonumber(ARGV[2]) then return {'full'} end
local n = redis.call('HINCRBY', KEYS[1], 'polls', 1)
redis.call('HSET', KEYS[2], tostring(n), ARGV[3])
redis.call('PEXPIREAT', KEYS[2], ms)
return {'ok', n}
"""

# KEYS: class, students, polls, answers of this poll. ARGV: now, poll id, student id, choice, max_answers.
_ANSWER = _LIVE + """
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then return {'nostudent'} end
local p = redis.call('HGET', KEYS[3], ARGV[2])
if not p then return {'nopoll'} end
if redis.call('HEXISTS', KEYS[3], ARGV[2] .. ':revealed') == 1
   or tonumber(redis.call('HGET', KEYS[1], 'polls')) ~= tonumber(ARGV[2]) then return {'closed'} end
local n_options = #cjson.decode(p)['options']
local c = tonumber(ARGV[4])
if c < 0 or c >= n_options then return {'badchoice', n_options} end
if redis.call('HEXISTS', KEYS[4], ARGV[3]) == 0 and redis.call('HLEN', KEYS[4]) >= tonumber(ARGV[5]) then
  return {'full'}
end
redis.call('HSET', KEYS[4], ARGV[3], c)
redis.call('PEXPIREAT', KEYS[4], ms)
return {'ok'}
"""

# KEYS: class, polls. ARGV: now, poll id, answer index.
_REVEAL = _LIVE + """
if not redis.call('HGET', KEYS[2], ARGV[2]) then return {'nopoll'} end
redis.call('HSET', KEYS[2], ARGV[2] .. ':revealed', ARGV[3])
return {'ok'}
"""

# KEYS: class, students, entries, per_student. ARGV: now, student id, max_entries, max per student, entry JSON.
_SUBMIT = _LIVE + """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return {'nostudent'} end
if tonumber(redis.call('HGET', KEYS[1], 'entries')) >= tonumber(ARGV[3]) then return {'full'} end
if tonumber(redis.call('HGET', KEYS[4], ARGV[2]) or '0') >= tonumber(ARGV[4]) then return {'full_student'} end
local n = redis.call('HINCRBY', KEYS[1], 'entries', 1)
redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
redis.call('HSET', KEYS[3], tostring(n), ARGV[5])
redis.call('PEXPIREAT', KEYS[3], ms)
redis.call('PEXPIREAT', KEYS[4], ms)
return {'ok', n}
"""

# KEYS: class, entries, entry_status. ARGV: now, entry id, status JSON.
_UPDATE = _LIVE + """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return {'noentry'} end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[3], ms)
return {'ok'}
"""

# KEYS: class. ARGV: now, field, value (a plain field of a live class: the budget).
_SET_FIELD = _LIVE + """
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return {'ok'}
"""

# KEYS: class. ARGV: now, page, query.
_FOLLOW = _LIVE + """
local v = redis.call('HINCRBY', KEYS[1], 'follow_version', 1)
redis.call('HSET', KEYS[1], 'follow_page', ARGV[2], 'follow_query', ARGV[3], 'follow_at', ARGV[1])
return {'ok', v}
"""


def _number(value: float) -> str:
    return repr(float(value))


def _is_id(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def _unavailable(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` with Redis's own errors (server down, timeout) turned into `ClassroomUnavailable`."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as error:
            import redis

            if isinstance(error, redis.RedisError):
                raise ClassroomUnavailable(
                    "The class server cannot be reached just now (its shared store, Redis, does not answer); "
                    "try again in a moment, and tell the lecturer if it goes on.") from error
            raise

    return wrapper


class RedisStore(ClassroomStore):
    """The classroom store in Redis at `url` (or on an existing `client` made with
    `decode_responses=True`). Thread-safe (redis-py's connection pool); several processes and
    servers may share one Redis."""

    def __init__(self, url: str | None = None, *, client: redis.Redis | None = None, prefix: str = DEFAULT_PREFIX,
                 limits: Limits = DEFAULT_LIMITS, clock: Clock | None = None):
        import redis as redis_module

        if client is None:
            if not url:
                raise ClassroomError("The Redis classroom store needs a Redis URL (redis://host:port/0).")
            client = redis_module.Redis.from_url(url, decode_responses=True, socket_timeout=5,
                                                 socket_connect_timeout=5)
        # Typed loosely: with decode_responses=True every reply is str, which redis-py's stubs cannot say.
        self.client: Any = client
        self.prefix = prefix
        self.limits = limits
        self.clock = clock or time.time
        self._scripts = {name: client.register_script(source) for name, source in (
            ("create", _CREATE), ("join", _JOIN), ("send", _SEND), ("answer", _ANSWER), ("reveal", _REVEAL),
            ("submit", _SUBMIT), ("update", _UPDATE), ("set_field", _SET_FIELD), ("follow", _FOLLOW))}

    # --- keys and helpers ---------------------------------------------------------------------
    def _key(self, code: str, part: str = "") -> str:
        return f"{self.prefix}{{{code}}}" + (f":{part}" if part else "")

    def class_keys(self, code: str) -> list[str]:
        """Every key this class may have (for `end_class`, and tests that check the expiry)."""
        polls = int(self.client.hget(self._key(code), "polls") or 0)
        return [self._key(code, part) for part in ("", "students", "polls", "entries", "entry_status", "per_student")] \
            + [self._key(code, f"answers:{n}") for n in range(1, polls + 1)]

    def _run(self, name: str, keys: list[str], now: float, *args: Any) -> list[Any]:
        result = self._scripts[name](keys=keys, args=[_number(now), *args])
        if result[0] == "notfound":
            raise ClassNotFound(NOT_FOUND)
        return list(result)

    @staticmethod
    def _code(code: str) -> str:
        normalised = model.normalise_code(code)
        if not normalised:
            raise ClassNotFound(NOT_FOUND)
        return normalised

    def _live_hash(self, code: str) -> tuple[str, dict[str, str]]:
        normalised = model.normalise_code(code)
        record = self.client.hgetall(self._key(normalised)) if normalised else {}
        if not record or float(record["expires_at"]) <= self.clock():
            raise ClassNotFound(NOT_FOUND)
        return normalised, record

    def _lecturer(self, code: str, secret: str | None) -> tuple[str, dict[str, str]]:
        normalised, record = self._live_hash(code)
        model.require_lecturer(secret, record["secret_hash"])
        return normalised, record

    def _info(self, code: str, record: dict[str, str]) -> ClassInfo:
        return ClassInfo(code, record["title"], float(record["created_at"]), float(record["expires_at"]),
                         int(record["students"]), json.loads(record["budget"]))

    # --- class sessions -----------------------------------------------------------------------
    def create_class(self, title: str = "", *, ttl_seconds: float | None = None) -> NewClass:
        clean_title, ttl = model.clean_title(title, self.limits), model.clean_ttl(ttl_seconds, self.limits)
        secret = model.new_secret()
        now = self.clock()
        while True:
            code = model.new_code()
            status = self._scripts["create"](
                keys=[self.prefix + "classes", self._key(code)],
                args=[_number(now), self.limits.max_classes, code, clean_title, model.hash_secret(secret),
                      _number(now + ttl)])[0]
            if status == "full":
                raise model.full("This server's list of classes", self.limits.max_classes)
            if status == "ok":
                info = ClassInfo(code, clean_title, float(_number(now)), float(_number(now + ttl)), 0, {})
                return NewClass(code, secret, info)

    def class_info(self, code: str) -> ClassInfo:
        return self._info(*self._live_hash(code))

    def end_class(self, code: str, secret: str) -> None:
        normalised, _ = self._lecturer(code, secret)
        keys = self.class_keys(normalised)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*keys)
        pipe.zrem(self.prefix + "classes", normalised)
        pipe.execute()

    def is_lecturer(self, code: str, secret: str | None) -> bool:
        return model.secret_matches(secret, self._live_hash(code)[1]["secret_hash"])

    def set_budget(self, code: str, secret: str, budget: Mapping[str, Any]) -> ClassInfo:
        text = model.canonical_json(budget, "The leaderboard budget", self.limits.max_budget_chars)
        normalised, _ = self._lecturer(code, secret)
        self._run("set_field", [self._key(normalised)], self.clock(), "budget", text)
        return self.class_info(normalised)

    # --- students -----------------------------------------------------------------------------
    def join(self, code: str, name: str = "") -> Student:
        clean = model.clean_name(name, self.limits)
        normalised = self._code(code)
        student_id, now = model.new_student_id(), float(_number(self.clock()))
        result = self._run("join", [self._key(normalised), self._key(normalised, "students")], now,
                           self.limits.max_students, student_id, clean)
        if result[0] == "full":
            raise model.full("This class", self.limits.max_students)
        return Student(student_id, int(result[1]), clean, now)

    @staticmethod
    def _student(student_id: str, text: str) -> Student:
        data = json.loads(text)
        return Student(student_id, int(data["number"]), data["name"], float(data["joined_at"]))

    def student(self, code: str, student_id: str) -> Student:
        normalised, _ = self._live_hash(code)
        text = self.client.hget(self._key(normalised, "students"), str(student_id))
        if text is None:
            raise unknown_student()
        return self._student(student_id, text)

    def students(self, code: str, secret: str) -> list[Student]:
        normalised, _ = self._lecturer(code, secret)
        found = self.client.hgetall(self._key(normalised, "students"))
        return sorted((self._student(key, text) for key, text in found.items()), key=lambda s: s.number)

    # --- polls --------------------------------------------------------------------------------
    def send_poll(self, code: str, secret: str, question: str, options: list[str] | tuple[str, ...],
                  *, answer: int | None = None) -> Poll:
        question_text, cleaned, answer_index = model.clean_poll(question, options, answer, self.limits)
        normalised, _ = self._lecturer(code, secret)
        now = float(_number(self.clock()))
        text = json.dumps({"question": question_text, "options": cleaned, "created_at": now, "answer": answer_index},
                          ensure_ascii=False)
        result = self._run("send", [self._key(normalised), self._key(normalised, "polls")], now,
                           self.limits.max_polls, text)
        if result[0] == "full":
            raise model.full("This class's list of polls", self.limits.max_polls)
        return Poll(int(result[1]), question_text, cleaned, now, False, answer_index)

    def _read_poll(self, code: str, poll_id: int) -> Poll:
        """The poll with its hidden answer (the lecturer's view); `code` is normalised and live."""
        if not _is_id(poll_id):
            raise unknown_poll()
        text, revealed = self.client.hmget(self._key(code, "polls"), str(poll_id), f"{poll_id}:revealed")
        if text is None:
            raise unknown_poll()
        data = json.loads(text)
        answer = int(revealed) if revealed is not None else data["answer"]
        return Poll(poll_id, data["question"], tuple(data["options"]), float(data["created_at"]),
                    revealed is not None, answer)

    def current_poll(self, code: str) -> Poll | None:
        normalised, record = self._live_hash(code)
        latest = int(record["polls"])
        return model.student_view(self._read_poll(normalised, latest)) if latest else None

    def poll(self, code: str, poll_id: int, secret: str | None = None) -> Poll:
        normalised, record = self._live_hash(code)
        found = self._read_poll(normalised, poll_id)
        return found if model.secret_matches(secret, record["secret_hash"]) else model.student_view(found)

    def answer(self, code: str, poll_id: int, student_id: str, choice: int) -> None:
        normalised = self._code(code)  # one round trip: the script checks that the class is live
        if not _is_id(poll_id):
            raise unknown_poll()
        if isinstance(choice, bool) or not isinstance(choice, int):
            model.clean_choice(choice, 2)  # raises the readable message
        result = self._run("answer", [self._key(normalised), self._key(normalised, "students"),
                                      self._key(normalised, "polls"), self._key(normalised, f"answers:{poll_id}")],
                           self.clock(), poll_id, str(student_id), int(choice), self.limits.max_answers)
        status = result[0]
        if status == "nostudent":
            raise unknown_student()
        if status == "nopoll":
            raise unknown_poll()
        if status == "closed":
            raise poll_closed()
        if status == "badchoice":
            model.clean_choice(choice, int(result[1]))
        if status == "full":
            raise model.full("This poll's answers", self.limits.max_answers)

    def my_answer(self, code: str, poll_id: int, student_id: str) -> int | None:
        normalised, _ = self._live_hash(code)
        self._read_poll(normalised, poll_id)
        value = self.client.hget(self._key(normalised, f"answers:{poll_id}"), str(student_id))
        return None if value is None else int(value)

    def results(self, code: str, poll_id: int, secret: str | None = None) -> PollResults:
        normalised, record = self._live_hash(code)
        found = self._read_poll(normalised, poll_id)
        lecturer = model.secret_matches(secret, record["secret_hash"])
        if not (found.revealed or lecturer):
            raise not_revealed()
        pipe = self.client.pipeline(transaction=True)
        pipe.hvals(self._key(normalised, f"answers:{poll_id}"))
        pipe.hget(self._key(normalised), "students")
        values, students = pipe.execute()
        counts = [0] * len(found.options)
        for value in values:
            counts[int(value)] += 1
        return PollResults(found if lecturer else model.student_view(found), tuple(counts), sum(counts),
                           int(students or 0))

    def reveal(self, code: str, secret: str, poll_id: int, answer: int | None = None) -> Poll:
        normalised, _ = self._lecturer(code, secret)
        found = self._read_poll(normalised, poll_id)
        index = found.answer if answer is None else model.clean_choice(answer, len(found.options))
        if index is None:
            raise ClassroomError("Give the answer to reveal: this poll was sent without one.")
        keys = [self._key(normalised), self._key(normalised, "polls")]
        if self._run("reveal", keys, self.clock(), poll_id, index)[0] == "nopoll":
            raise unknown_poll()
        return Poll(found.poll_id, found.question, found.options, found.created_at, True, index)

    # --- leaderboard --------------------------------------------------------------------------
    def submit_entry(self, code: str, student_id: str, config: Mapping[str, Any]) -> Entry:
        text = model.canonical_json(config, "A leaderboard entry", self.limits.max_config_chars)
        student = self.student(code, student_id)
        normalised = model.normalise_code(code)
        now = float(_number(self.clock()))
        base = {"student_id": student.student_id, "name": student.display_name, "config": json.loads(text),
                "config_key": model.config_key(text), "submitted_at": now}
        result = self._run("submit", [self._key(normalised), self._key(normalised, "students"),
                                      self._key(normalised, "entries"), self._key(normalised, "per_student")],
                           now, student.student_id, self.limits.max_entries, self.limits.max_entries_per_student,
                           json.dumps(base, ensure_ascii=False))
        if result[0] == "nostudent":
            raise unknown_student()
        if result[0] == "full":
            raise model.full("This class's leaderboard", self.limits.max_entries)
        if result[0] == "full_student":
            raise model.full("Your list of leaderboard entries", self.limits.max_entries_per_student)
        return self._entry(int(result[1]), json.dumps(base), None)

    @staticmethod
    def _entry(entry_id: int, base_text: str, status_text: str | None) -> Entry:
        base = json.loads(base_text)
        status = json.loads(status_text) if status_text else {}
        return Entry(entry_id, base["student_id"], base["name"], base["config"], base["config_key"],
                     float(base["submitted_at"]), status.get("status", "queued"), status.get("accuracy"),
                     status.get("spread"), status.get("parameters"), status.get("message", ""))

    def update_entry(self, code: str, entry_id: int, *, status: str, accuracy: float | None = None,
                     spread: float | None = None, parameters: int | None = None, message: str = "") -> Entry:
        changes = model.clean_entry_update(status, accuracy, spread, parameters, message, self.limits)
        normalised, _ = self._live_hash(code)
        if not _is_id(entry_id):
            raise unknown_entry()
        result = self._run("update", [self._key(normalised), self._key(normalised, "entries"),
                                      self._key(normalised, "entry_status")],
                           self.clock(), entry_id, json.dumps(changes, ensure_ascii=False))
        if result[0] == "noentry":
            raise unknown_entry()
        return self.entry(normalised, entry_id)

    def entry(self, code: str, entry_id: int) -> Entry:
        normalised, _ = self._live_hash(code)
        if not _is_id(entry_id):
            raise unknown_entry()
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(self._key(normalised, "entries"), str(entry_id))
        pipe.hget(self._key(normalised, "entry_status"), str(entry_id))
        base, status = pipe.execute()
        if base is None:
            raise unknown_entry()
        return self._entry(entry_id, base, status)

    def entries(self, code: str) -> list[Entry]:
        normalised, _ = self._live_hash(code)
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self._key(normalised, "entries"))
        pipe.hgetall(self._key(normalised, "entry_status"))
        bases, statuses = pipe.execute()
        return [self._entry(int(key), bases[key], statuses.get(key)) for key in sorted(bases, key=int)]

    # --- follow me ----------------------------------------------------------------------------
    def set_follow(self, code: str, secret: str, page: str, query: str = "") -> FollowState:
        page_text, query_text = model.clean_follow(page, query, self.limits)
        normalised, _ = self._lecturer(code, secret)
        now = float(_number(self.clock()))
        result = self._run("follow", [self._key(normalised)], now, page_text, query_text)
        return FollowState(page_text, query_text, int(result[1]), now)

    def follow_state(self, code: str) -> FollowState:
        _, record = self._live_hash(code)
        at = record.get("follow_at")
        return FollowState(record.get("follow_page", ""), record.get("follow_query", ""),
                           int(record.get("follow_version", 0)), None if at is None else float(at))

    def close(self) -> None:
        self.client.close()


for _name in sorted(ClassroomStore.__abstractmethods__ | {"leaderboard", "rank", "class_keys"}):
    setattr(RedisStore, _name, _unavailable(getattr(RedisStore, _name)))
