"""cnnviz's environment settings: the one place that reads and checks the `CNNVIZ_*` variables.

| variable                   | meaning                                                  | default          |
|----------------------------|----------------------------------------------------------|------------------|
| `CNNVIZ_CACHE_DIR`         | the disk cache folder (decoded datasets, trained models) | `~/.cache/cnnviz` |
| `CNNVIZ_DATA_DIR`          | a folder of dataset files to read before downloading     | none             |
| `CNNVIZ_OFFLINE`           | `1`/`true`/`yes`/`on` switches downloads off              | off              |
| `CNNVIZ_MAX_TRAINING_JOBS` | trainings that may run at once (a whole number 1..64)     | 2                |
| `CNNVIZ_TRAINING_MEMORY_MB`| memory one training run may use (MB, 16..1,000,000)       | 800 (see `cnnviz.architecture.budget`) |
| `CNNVIZ_REDIS_URL`         | the Redis shared by several servers (`redis://`, `rediss://`, `unix://`): class sessions | none: in-process |

An empty or unset variable means its default. A value that cannot be used is never silently
replaced: `problems()` lists one message per bad variable, the app shows them on every page and
logs them once (`report_once`), and every `python -m cnnviz` command refuses to run (exit 2).
So that the app still starts and can show the message, the accessors return the default for a
value that cannot be used (a bad cache folder is kept as it is: nothing is stored there, and the
message says so).

The environment is read on every call (tests and the command line change it), never cached.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_MAX_TRAINING_JOBS = 2
# More trainings at once than this on a classroom server is a typing mistake, not a plan.
MAX_TRAINING_JOBS_LIMIT = 64
# Longer values are not parsed at all (a whole number of up to 8 digits is more than enough).
_MAX_NUMBER_CHARS = 8
# `cnnviz.architecture.budget` refuses values outside this range (BudgetError).
TRAINING_MEMORY_MB_RANGE = (16, 1_000_000)
_TRUE = {"1", "true", "yes", "on", "y"}
REDIS_SCHEMES = ("redis", "rediss", "unix")
_MAX_URL_CHARS = 2000
_FALSE = {"0", "false", "no", "off", "n"}

logger = logging.getLogger("cnnviz.settings")


@dataclass(frozen=True)
class Checked:
    """One variable's value after checking: the value to use, and a message when the raw text was bad."""

    value: Any
    problem: str = ""


def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def _shown(text: str) -> str:
    """The raw value as quoted in a message: shortened, so a huge value does not flood the log."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _check_max_training_jobs() -> Checked:
    name, raw = "CNNVIZ_MAX_TRAINING_JOBS", _raw("CNNVIZ_MAX_TRAINING_JOBS")
    if not raw:
        return Checked(DEFAULT_MAX_TRAINING_JOBS)
    value = int(raw) if len(raw) <= _MAX_NUMBER_CHARS and raw.isascii() and raw.lstrip("+-").isdigit() else None
    if value is None or not 1 <= value <= MAX_TRAINING_JOBS_LIMIT:
        return Checked(DEFAULT_MAX_TRAINING_JOBS,
                       f"{name}={_shown(raw)} is not a whole number from 1 to {MAX_TRAINING_JOBS_LIMIT} "
                       f"(how many trainings may run at once); using {DEFAULT_MAX_TRAINING_JOBS} until it is fixed.")
    return Checked(value)


def _check_training_memory_mb() -> Checked:
    name, raw = "CNNVIZ_TRAINING_MEMORY_MB", _raw("CNNVIZ_TRAINING_MEMORY_MB")
    if not raw:
        return Checked(None)
    if not (len(raw) <= _MAX_NUMBER_CHARS and raw.isascii() and raw.isdigit()
            and TRAINING_MEMORY_MB_RANGE[0] <= int(raw) <= TRAINING_MEMORY_MB_RANGE[1]):
        low, high = TRAINING_MEMORY_MB_RANGE
        return Checked(None, f"{name}={_shown(raw)} is not a whole number of megabytes from {low} to {high:,} "
                             "(the memory one training run may use); training refuses to start until it is fixed.")
    return Checked(int(raw))


def _check_offline() -> Checked:
    name, raw = "CNNVIZ_OFFLINE", _raw("CNNVIZ_OFFLINE")
    if raw.lower() in _TRUE:
        return Checked(True)
    if not raw or raw.lower() in _FALSE:
        return Checked(False)
    return Checked(False, f"{name}={_shown(raw)} is neither on (1, true, yes, on) nor off (0, false, no, off); "
                          "downloads stay allowed until it is fixed.")


def _check_folder(name: str, purpose: str, *, must_exist: bool) -> Checked:
    raw = _raw(name)
    if not raw:
        return Checked(None)
    path = Path(raw).expanduser()
    # The nearest existing folder on the way: a path through a regular file can never be created.
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return Checked(path, f"{name}={_shown(raw)} cannot be {purpose}: {existing} is a file, not a folder.")
    if must_exist and not path.is_dir():
        return Checked(path, f"{name}={_shown(raw)} cannot be {purpose}: there is no such folder.")
    return Checked(path)


def _check_cache_dir() -> Checked:
    return _check_folder("CNNVIZ_CACHE_DIR", "the disk cache folder", must_exist=False)


def _check_data_dir() -> Checked:
    return _check_folder("CNNVIZ_DATA_DIR", "the folder of dataset files", must_exist=True)


def _redacted_url(raw: str) -> str:
    """A Redis URL as quoted in a message: never its password (it may be in the log)."""
    try:
        parts = urlsplit(raw)
        if parts.password is not None or parts.username is not None:
            netloc = "***@" + parts.netloc.rsplit("@", 1)[1]
            raw = parts._replace(netloc=netloc).geturl()
    except ValueError:
        raw = raw.split("@", 1)[-1] if "@" in raw else raw
    return _shown(raw)


def _check_redis_url() -> Checked:
    name, raw = "CNNVIZ_REDIS_URL", _raw("CNNVIZ_REDIS_URL")
    if not raw:
        return Checked(None)
    fallback = "class sessions stay on this server only (in-process) until it is fixed."
    if len(raw) > _MAX_URL_CHARS or not raw.isascii() or not raw.isprintable() or " " in raw:
        return Checked(None, f"{name} is not a Redis URL (at most {_MAX_URL_CHARS} printable ASCII characters, "
                             f"no spaces); {fallback}")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return Checked(None, f"{name}={_redacted_url(raw)} is not a Redis URL (its port or host cannot be read); "
                             f"{fallback}")
    if parts.scheme not in REDIS_SCHEMES:
        return Checked(None, f"{name}={_redacted_url(raw)} is not a Redis URL: it starts with redis://, rediss:// "
                             f"or unix:// (e.g. redis://localhost:6379/0); {fallback}")
    if parts.scheme == "unix" and not parts.path:
        return Checked(None, f"{name}={_redacted_url(raw)} names no socket file (unix:///path/to/redis.sock); "
                             f"{fallback}")
    if parts.scheme != "unix" and not parts.hostname:
        return Checked(None, f"{name}={_redacted_url(raw)} names no host (e.g. redis://localhost:6379/0); {fallback}")
    database = parts.path.strip("/") if parts.scheme != "unix" else ""
    if database and not (database.isdigit() and len(database) <= 5):
        return Checked(None, f"{name}={_redacted_url(raw)}: the database after the host is a number "
                             f"(e.g. /0); {fallback}")
    del port  # Read only to check it (urlsplit raises for a bad one).
    return Checked(raw)


# Every CNNVIZ_* variable and its check (one entry to add a variable).
CHECKS: dict[str, Callable[[], Checked]] = {
    "CNNVIZ_CACHE_DIR": _check_cache_dir,
    "CNNVIZ_DATA_DIR": _check_data_dir,
    "CNNVIZ_OFFLINE": _check_offline,
    "CNNVIZ_MAX_TRAINING_JOBS": _check_max_training_jobs,
    "CNNVIZ_TRAINING_MEMORY_MB": _check_training_memory_mb,
    "CNNVIZ_REDIS_URL": _check_redis_url,
}


def problems() -> list[str]:
    """One message per `CNNVIZ_*` variable whose value cannot be used (empty when all are fine)."""
    return [checked.problem for checked in (check() for check in CHECKS.values()) if checked.problem]


def max_training_jobs() -> int:
    """`CNNVIZ_MAX_TRAINING_JOBS`: trainings that may run at once (default 2; see `problems`)."""
    return int(_check_max_training_jobs().value)


def training_memory_mb() -> int | None:
    """`CNNVIZ_TRAINING_MEMORY_MB` in megabytes, or None when it is unset or invalid (see `problems`)."""
    value = _check_training_memory_mb().value
    return int(value) if value is not None else None


def training_memory_problem() -> str | None:
    """Why `CNNVIZ_TRAINING_MEMORY_MB` cannot be used (None when it is unset or valid)."""
    return _check_training_memory_mb().problem


def offline() -> bool:
    """`CNNVIZ_OFFLINE`: True when downloads are switched off."""
    return bool(_check_offline().value)


def redis_url() -> str | None:
    """`CNNVIZ_REDIS_URL`: the Redis that class sessions share, or None (unset or invalid: in-process)."""
    value = _check_redis_url().value
    return str(value) if value else None


def cache_dir() -> Path:
    """`CNNVIZ_CACHE_DIR`, or `~/.cache/cnnviz` when it is not set."""
    value = _check_cache_dir().value
    return value if value is not None else Path.home() / ".cache" / "cnnviz"


def data_dir() -> Path | None:
    """`CNNVIZ_DATA_DIR`, or None when it is not set."""
    value = _check_data_dir().value
    return value if isinstance(value, Path) else None


_reported: set[str] = set()
_reported_lock = threading.Lock()


def report_once(messages: list[str] | None = None) -> list[str]:
    """Log every current problem to the server log (each message once per process); returns them all."""
    found = problems() if messages is None else messages
    with _reported_lock:
        for message in found:
            if message not in _reported:
                _reported.add(message)
                logger.error("Invalid environment setting: %s", message)
    return found
