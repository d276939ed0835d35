"""Shareable views: a page's controls written to URL query parameters and read back, safely.

Each page declares the controls it shares as `Param`s named like their widget keys. Reading a
URL returns only the values that decode and validate; everything else is reported as rejected
so the page can show a small notice instead of failing. Writing returns strings for
`st.query_params`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnviz.errors import CnnvizError, LinkError
from cnnviz.parsing import parse_float, parse_int, parse_json

MAX_PARAM_LENGTH = 8000  # A URL is no place for megabytes; longer values are refused.


@dataclass(frozen=True)
class Param:
    """One shared control. `kind` is int, float, bool, choice, str or json."""

    key: str
    kind: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    validate: Callable[[Any], bool] | None = None  # Extra check for json values.

    def decode(self, raw: str) -> Any:
        """Turn a query-string value back into the widget's value, or raise ValueError (a `LinkError`).

        Numbers and JSON go through the one bounded parser (`cnnviz.parsing`): lengths, nesting and
        magnitudes are checked before anything is converted.
        """
        if len(raw) > MAX_PARAM_LENGTH:
            raise LinkError("too long")
        if self.kind == "int":
            value: Any = parse_int(raw, minimum=_whole(self.minimum), maximum=_whole(self.maximum), error=LinkError)
        elif self.kind == "float":
            value = parse_float(raw, minimum=self.minimum, maximum=self.maximum, error=LinkError)
        elif self.kind == "bool":
            if raw not in ("0", "1", "true", "false"):
                raise ValueError("not a boolean")
            value = raw in ("1", "true")
        elif self.kind == "choice":
            matches = [choice for choice in (self.choices or ()) if str(choice) == raw]
            if not matches:
                raise ValueError("not one of the choices")
            value = matches[0]
        elif self.kind == "str":
            value = raw
        elif self.kind == "json":
            value = parse_json(raw, max_characters=MAX_PARAM_LENGTH, error=LinkError)
        else:
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.kind in ("int", "float"):
            if self.minimum is not None and value < self.minimum:
                raise ValueError("below the minimum")
            if self.maximum is not None and value > self.maximum:
                raise ValueError("above the maximum")
        if self.validate is not None and not self.validate(value):
            raise ValueError("rejected by the page")
        return value

    def encode(self, value: Any) -> str:
        """The query-string form of a widget value."""
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "json":
            return json.dumps(value, separators=(",", ":"), sort_keys=True)
        if self.kind == "float":
            return repr(float(value))
        return str(value)


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


def read_params(params: Iterable[Param], query: Mapping[str, str],
                ignore: Iterable[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Decode the query parameters a page knows; return (values by key, rejected names).

    Parameters in `ignore` (app-wide ones such as `presenter`) are neither applied nor rejected.
    """
    by_key = {param.key: param for param in params}
    skip = set(ignore)
    values: dict[str, Any] = {}
    rejected: list[str] = []
    for name, raw in query.items():
        if name in skip:
            continue
        param = by_key.get(name)
        if param is None:
            rejected.append(name)
            continue
        try:
            values[name] = param.decode(str(raw))
        except (ValueError, TypeError, OverflowError, RecursionError, CnnvizError):
            rejected.append(name)
    return values, rejected


def write_params(params: Iterable[Param], state: Mapping[str, Any]) -> dict[str, str]:
    """Encode the current value of every shared control that has one."""
    return {param.key: param.encode(state[param.key]) for param in params
            if param.key in state and state[param.key] is not None}
