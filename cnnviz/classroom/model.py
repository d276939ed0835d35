"""The classroom's records and rules, shared by every store: limits, codes, secrets, checks.

Nothing here stores anything; `cnnviz.classroom.store` (in-process) and
`cnnviz.classroom.redis_store` (Redis) keep the records and both call these checks, so the two
implementations refuse exactly the same inputs with exactly the same messages.

Security rules (issue 18):
- a class code is drawn with `secrets` from a 30-character alphabet, 12 characters: ~58.9 bits, so with
  at most `Limits.max_classes` live classes a guess hits one with odds below 1 in 10^15;
- the lecturer's secret is a separate 256-bit `secrets` token; stores keep only its SHA-256 and
  compare digests with `hmac.compare_digest` (constant time); knowing the code is not enough;
- a student id is a 128-bit token too, so one student cannot answer for another;
- display names are stored raw but bounded (length and characters, see `clean_name`): escaping
  them is the page's job (show them with `st.text` or escape them before markdown).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnviz.errors import ClassroomFull, ClassroomInputError, LecturerOnly

# No 0/O, 1/I/L, U (and no lower case): a code read off a projector is typed without doubt.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_LENGTH = 12
SECRET_BYTES = 32
STUDENT_ID_BYTES = 16
ENTRY_STATUSES = ("queued", "training", "done", "failed")
# Characters a display name may use besides letters and digits (any script) and single spaces.
NAME_PUNCTUATION = "-_.'"


@dataclass(frozen=True)
class Limits:
    """Every bound of a classroom store (each refusal names the bound and its value)."""

    max_classes: int = 100             # live classes on one server (or one Redis)
    max_students: int = 400            # students per class
    max_polls: int = 200               # polls per class
    max_answers: int = 400             # answers per poll (one per student, changed until reveal)
    max_options: int = 12              # answer options per poll
    max_entries: int = 400             # leaderboard entries per class
    max_entries_per_student: int = 3
    max_name_chars: int = 24
    max_title_chars: int = 80
    max_question_chars: int = 300
    max_option_chars: int = 80
    max_config_chars: int = 4000       # a leaderboard entry's configuration, as JSON
    max_budget_chars: int = 2000       # the lecturer's budget, as JSON
    max_message_chars: int = 300       # an entry's status message
    max_page_chars: int = 80           # follow me: the lecturer's page (url path)
    max_query_chars: int = 8000        # follow me: the lecturer's query string
    ttl_seconds: float = 6 * 3600      # a class expires this long after it started
    max_ttl_seconds: float = 24 * 3600


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ClassInfo:
    """A class as anyone may see it (never the lecturer's secret)."""

    code: str
    title: str
    created_at: float
    expires_at: float
    students: int
    budget: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewClass:
    """What `create_class` returns: the code to share, and the secret only the lecturer's browser keeps."""

    code: str
    lecturer_secret: str
    info: ClassInfo


@dataclass(frozen=True)
class Student:
    """One student of a class. `student_id` is the student's own token (keep it in the session)."""

    student_id: str
    number: int        # 1, 2, ... in joining order
    name: str          # raw (bounded) text: escape it when showing it
    joined_at: float

    @property
    def display_name(self) -> str:
        return self.name or f"Student {self.number}"


@dataclass(frozen=True)
class Poll:
    """A question sent to the class. `answer` (an index of `options`) is None until revealed
    when read through a student's view; the lecturer's view (`include_answer`) carries it."""

    poll_id: int
    question: str
    options: tuple[str, ...]
    created_at: float
    revealed: bool = False
    answer: int | None = None


@dataclass(frozen=True)
class PollResults:
    """The live histogram: `counts[i]` students chose `options[i]`; `answered` of `students` answered."""

    poll: Poll
    counts: tuple[int, ...]
    answered: int
    students: int


@dataclass(frozen=True)
class Entry:
    """A leaderboard entry: a student's configuration and, once trained, its test accuracy.

    `config_key` is the SHA-256 of the configuration's canonical JSON: identical configurations
    have the same key, so the trainer trains them once.
    """

    entry_id: int
    student_id: str
    name: str
    config: Mapping[str, Any]
    config_key: str
    submitted_at: float
    status: str = "queued"
    accuracy: float | None = None
    spread: float | None = None
    parameters: int | None = None
    message: str = ""


@dataclass(frozen=True)
class RankedEntry:
    """One row of the leaderboard: ties in accuracy share a rank (1, 1, 3, ...)."""

    rank: int
    entry: Entry


@dataclass(frozen=True)
class FollowState:
    """The lecturer's current view; `version` goes up by one on every push (0: never pushed)."""

    page: str
    query: str
    version: int
    updated_at: float | None


# --- codes and secrets -------------------------------------------------------------------------

def code_entropy_bits() -> float:
    return CODE_LENGTH * math.log2(len(CODE_ALPHABET))


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def new_student_id() -> str:
    return secrets.token_urlsafe(STUDENT_ID_BYTES)


def normalise_code(raw: str) -> str:
    """A typed or linked code in its stored form (upper case; spaces and dashes dropped); a string
    that cannot be a code gives a code that matches no class (never an exception)."""
    text = str(raw)[:4 * CODE_LENGTH].upper().replace("-", "").replace(" ", "")
    return text if len(text) == CODE_LENGTH and all(c in CODE_ALPHABET for c in text) else ""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(str(secret).encode("utf-8", "replace")).hexdigest()


def secret_matches(secret: str | None, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored digest."""
    if not secret or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def require_lecturer(secret: str | None, stored_hash: str) -> None:
    if not secret_matches(secret, stored_hash):
        raise LecturerOnly("Only the lecturer of this class can do that: this browser does not hold "
                           "the class's lecturer key (the join code is not enough).")


# --- checks --------------------------------------------------------------------------------------

def full(what: str, limit: int) -> ClassroomFull:
    return ClassroomFull(f"{what} is full (at most {limit:,}). {_FULL_ADVICE.get(what, '')}".strip())


_FULL_ADVICE = {
    "This server's list of classes": "Try again when a class has ended or expired.",
    "This class": "Ask the lecturer to start a second class for the rest of the room.",
    "This class's list of polls": "Start a new class to send more questions.",
    "This poll's answers": "Your answer could not be counted.",
    "This class's leaderboard": "No more entries can be submitted in this class.",
}


def _bounded_text(raw: Any, what: str, limit: int, *, allow_newlines: bool = False) -> str:
    if not isinstance(raw, str):
        raise ClassroomInputError(f"{what} must be text.")
    text = unicodedata.normalize("NFC", raw).strip()
    if len(text) > limit:
        raise ClassroomInputError(f"{what} is too long ({len(text):,} characters; at most {limit:,}).")
    bad = [c for c in text if unicodedata.category(c).startswith("C") and not (allow_newlines and c == "\n")]
    if bad:
        raise ClassroomInputError(f"{what} holds control or invisible characters; type it as plain text.")
    return text


def clean_name(raw: Any, limits: Limits = DEFAULT_LIMITS) -> str:
    """A display name as stored: NFC, trimmed, runs of spaces made one; letters and digits of any
    script, single spaces and - _ . ' only; at most `max_name_chars`. "" means anonymous.

    It is stored raw (not escaped): a page must show it as text (`st.text`, or escaped markdown).
    """
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ClassroomInputError("A display name must be text.")
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    if len(text) > limits.max_name_chars:
        raise ClassroomInputError(f"A display name has at most {limits.max_name_chars} characters "
                                  f"(this one has {len(text)}).")
    if not all(c.isalnum() or c == " " or c in NAME_PUNCTUATION for c in text):
        raise ClassroomInputError("A display name may use letters, digits, spaces and - _ . ' only.")
    return text


def clean_title(raw: Any, limits: Limits = DEFAULT_LIMITS) -> str:
    return " ".join(_bounded_text(raw, "A class title", limits.max_title_chars).split())


def clean_ttl(ttl_seconds: float | None, limits: Limits = DEFAULT_LIMITS) -> float:
    ttl = limits.ttl_seconds if ttl_seconds is None else ttl_seconds
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= limits.max_ttl_seconds:
        raise ClassroomInputError(f"A class lasts more than 0 seconds and at most "
                                  f"{limits.max_ttl_seconds / 3600:g} hours.")
    return float(ttl)


def clean_poll(question: Any, options: Any, answer: int | None,
               limits: Limits = DEFAULT_LIMITS) -> tuple[str, tuple[str, ...], int | None]:
    question_text = _bounded_text(question, "A poll's question", limits.max_question_chars, allow_newlines=True)
    if not question_text:
        raise ClassroomInputError("A poll needs a question.")
    if isinstance(options, str) or not isinstance(options, list | tuple):
        raise ClassroomInputError("A poll's options must be a list of texts.")
    if not 2 <= len(options) <= limits.max_options:
        raise ClassroomInputError(f"A poll has from 2 to {limits.max_options} options (this one has {len(options)}).")
    cleaned = tuple(_bounded_text(option, "A poll's option", limits.max_option_chars) for option in options)
    if any(not option for option in cleaned):
        raise ClassroomInputError("A poll's options cannot be empty.")
    if len(set(cleaned)) != len(cleaned):
        raise ClassroomInputError("A poll's options must all differ.")
    return question_text, cleaned, (None if answer is None else clean_choice(answer, len(cleaned)))


def clean_choice(choice: Any, n_options: int) -> int:
    if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < n_options:
        raise ClassroomInputError(f"An answer is one of the poll's {n_options} options (0 to {n_options - 1}).")
    return int(choice)


def canonical_json(value: Any, what: str, limit: int) -> str:
    """`value` as compact, key-sorted JSON (so equal configurations give equal text), bounded."""
    if not isinstance(value, Mapping):
        raise ClassroomInputError(f"{what} must be a mapping of settings.")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        raise ClassroomInputError(f"{what} can hold only texts, numbers, true/false, lists and mappings.") from None
    if len(text) > limit:
        raise ClassroomInputError(f"{what} is too long ({len(text):,} characters as JSON; at most {limit:,}).")
    return text


def config_key(config_json: str) -> str:
    return hashlib.sha256(config_json.encode("utf-8")).hexdigest()


def clean_entry_update(status: Any, accuracy: Any, spread: Any, parameters: Any, message: Any,
                       limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    if status not in ENTRY_STATUSES:
        raise ClassroomInputError(f"An entry's status is one of {', '.join(ENTRY_STATUSES)}.")

    def fraction(value: Any, what: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not (0.0 <= value <= 1.0):
            raise ClassroomInputError(f"An entry's {what} is a number from 0 to 1.")
        return float(value)

    accuracy_value, spread_value = fraction(accuracy, "accuracy"), fraction(spread, "spread")
    if status == "done" and accuracy_value is None:
        raise ClassroomInputError("A trained entry needs its test accuracy.")
    if parameters is not None and (isinstance(parameters, bool) or not isinstance(parameters, int) or parameters < 0):
        raise ClassroomInputError("An entry's parameter count is a whole number, 0 or more.")
    return {"status": status, "accuracy": accuracy_value, "spread": spread_value, "parameters": parameters,
            "message": _bounded_text(message, "An entry's message", limits.max_message_chars)}


def clean_follow(page: Any, query: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[str, str]:
    page_text = _bounded_text(page, "The followed page", limits.max_page_chars)
    if not all(c.isascii() and (c.isalnum() or c in "-_/") for c in page_text):
        raise ClassroomInputError("The followed page is a url path (letters, digits, - _ /).")
    query_text = _bounded_text(query, "The followed view", limits.max_query_chars)
    if query_text.startswith("?"):
        query_text = query_text[1:]
    if not all(c.isascii() and c.isprintable() and c != " " for c in query_text):
        raise ClassroomInputError("The followed view is a url query string (printable ASCII, no spaces).")
    return page_text, query_text


def rank_entries(entries: list[Entry]) -> list[RankedEntry]:
    """Trained entries, best test accuracy first (ties share a rank, then first submitted first)."""
    done = sorted((e for e in entries if e.status == "done" and e.accuracy is not None),
                  key=lambda e: (-(e.accuracy or 0.0), e.submitted_at, e.entry_id))
    ranked: list[RankedEntry] = []
    for position, entry in enumerate(done, start=1):
        same = ranked and ranked[-1].entry.accuracy == entry.accuracy
        ranked.append(RankedEntry(ranked[-1].rank if same else position, entry))
    return ranked


def student_view(poll: Poll) -> Poll:
    """The poll as a student sees it: no answer before the reveal."""
    return poll if poll.revealed else Poll(poll.poll_id, poll.question, poll.options, poll.created_at, False, None)
