"""The one bounded parser for numbers and JSON that a student types or a link carries.

Every text that comes from outside (a shared link's parameter, a pasted layer stack, a typed
kernel, a quiz answer) is read here, with its size checked *before* any conversion: a number
is refused when its text is longer than `MAX_NUMBER_CHARACTERS` (so a 400-digit or 5,000-digit
number never reaches `int()` or `float()`), a float must be finite (`1e400` is refused, not
turned into infinity), and a JSON text is refused when it is longer than its limit or nested
deeper than `MAX_JSON_DEPTH` (before `json.loads`, which would otherwise recurse). Every refusal
is an `InputError` (or the caller's own `CnnvizError` subclass) with a message for a student.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from cnnviz.errors import CnnvizError, InputError

MAX_NUMBER_CHARACTERS = 32  # "-1.2345678901234567e-300" fits; a 400-digit number does not.
MAX_JSON_CHARACTERS = 200_000  # The longest JSON text read (a layer stack is far smaller).
MAX_JSON_DEPTH = 16  # Lists and objects inside each other; a layer stack needs 4.
LARGEST_NUMBER = 1e15  # The largest magnitude a typed or linked number may have.

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _shown(text: str, limit: int = 24) -> str:
    """A short, quoted excerpt of a refused text (pages escape it before showing it)."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _check_length(text: str, what: str, error: type[CnnvizError]) -> str:
    text = text.strip()
    if not text:
        raise error(f"{what} is empty: type a number.")
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise error(f"{what} has {len(text):,} characters; a number here has at most {MAX_NUMBER_CHARACTERS}.")
    return text


def _check_range(value: float, what: str, minimum: float | None, maximum: float | None,
                 error: type[CnnvizError]) -> None:
    low = -LARGEST_NUMBER if minimum is None else minimum
    high = LARGEST_NUMBER if maximum is None else maximum
    if not low <= value <= high:
        raise error(f"{what} must be between {_number_text(low)} and {_number_text(high)}, "
                    f"not {_number_text(value)}.")


def _number_text(value: float) -> str:
    """1,000,000 rather than 1e+06 for whole numbers a student reads; 1e+308 for the rest."""
    if float(value).is_integer() and abs(value) < 1e16:
        return f"{int(value):,}"
    return f"{value:g}"


def parse_int(text: str, *, what: str = "The number", minimum: int | None = None, maximum: int | None = None,
              error: type[CnnvizError] = InputError) -> int:
    """A whole number from text ("42", "-3"), within [minimum, maximum] (default ±LARGEST_NUMBER)."""
    text = _check_length(str(text), what, error)
    if not _INT.fullmatch(text):
        raise error(f"{what} must be a whole number such as 12, not {_shown(text)}.")
    value = int(text)
    _check_range(value, what, minimum, maximum, error)
    return value


def parse_float(text: str, *, what: str = "The number", minimum: float | None = None,
                maximum: float | None = None, error: type[CnnvizError] = InputError) -> float:
    """A finite decimal number from text ("0.5", "-1e-3"), within [minimum, maximum].

    NaN, infinity, `1e400` (which float() would turn into infinity) and hexadecimal or
    underscore forms are refused.
    """
    text = _check_length(str(text), what, error)
    if not _FLOAT.fullmatch(text):
        raise error(f"{what} must be a number such as 0.5 or -1e-3, not {_shown(text)}.")
    value = float(text)
    if not math.isfinite(value):
        raise error(f"{what} is too large to be a finite number here (numbers stay within ±{LARGEST_NUMBER:g}).")
    _check_range(value, what, minimum, maximum, error)
    return value


def check_number(value: Any, *, what: str = "The number", error: type[CnnvizError] = InputError) -> float:
    """A number that is already a Python int or float (e.g. read from JSON), checked the same way."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{what} must be a number, not {_shown(str(value))}.")
    if isinstance(value, int) and abs(value) > LARGEST_NUMBER:  # Before float(): no OverflowError.
        raise error(f"{what} is too large (numbers here stay within ±{LARGEST_NUMBER:g}).")
    number = float(value)
    if not math.isfinite(number) or abs(number) > LARGEST_NUMBER:
        raise error(f"{what} is too large (numbers here are finite and stay within ±{LARGEST_NUMBER:g}).")
    return number


def json_depth(text: str) -> int:
    """How deeply lists and objects nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def parse_json(text: str | bytes, *, what: str = "The JSON", max_characters: int = MAX_JSON_CHARACTERS,
               max_depth: int = MAX_JSON_DEPTH, error: type[CnnvizError] = InputError) -> Any:
    """A JSON document with bounded size, nesting and numbers, or `error` with a readable message.

    Numbers are checked as they are read: an integer or a decimal whose text is longer than
    `MAX_NUMBER_CHARACTERS`, `1e400`, NaN and Infinity are refused before any conversion.
    """
    if isinstance(text, bytes):
        if len(text) > max_characters * 4:
            raise error(f"{what} is too long (over {max_characters:,} characters).")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{what} is not UTF-8 text, so it cannot be JSON.") from None
    if len(text) > max_characters:
        raise error(f"{what} is too long (over {max_characters:,} characters).")
    if json_depth(text) > max_depth:
        raise error(f"{what} nests lists or objects more than {max_depth} levels deep; "
                    "nothing here needs that many.")

    def constant(token: str) -> Any:
        raise error(f"{what} holds {token}, which is not a number that can be used here.")

    try:
        return json.loads(text, parse_int=lambda token: _json_number(token, what, error),
                          parse_float=lambda token: _json_number(token, what, error), parse_constant=constant)
    except json.JSONDecodeError as problem:
        raise error(f"{what} is not valid JSON ({problem.msg} at line {problem.lineno}, "
                    f"column {problem.colno}).") from None
    except RecursionError:  # Not reached after the depth check; kept as a guard.
        raise error(f"{what} nests too deeply.") from None


def _json_number(token: str, what: str, error: type[CnnvizError]) -> int | float:
    """One number of a JSON text, its length checked before it is converted."""
    if len(token) > MAX_NUMBER_CHARACTERS:
        raise error(f"{what} holds a number with {len(token):,} characters; numbers here have at most "
                    f"{MAX_NUMBER_CHARACTERS} characters and stay within ±{LARGEST_NUMBER:g}.")
    value: int | float = int(token) if _INT.fullmatch(token) else float(token)
    check_number(value, what=f"{what}: the number {_shown(token)}", error=error)
    return value
