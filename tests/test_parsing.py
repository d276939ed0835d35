"""The one bounded parser (cnnviz.parsing): sizes checked before anything is converted."""

from __future__ import annotations

import json

import pytest

from cnnviz import parsing
from cnnviz.errors import ArchitectureError, InputError


@pytest.mark.parametrize("document", [
    [], {}, [1, -2, 3.5, 1e-300, 0.0], {"input_shape": [28, 28, 1], "layers": [{"type": "dense", "units": 10}]},
    {"text": "brackets [[[[ in a string {{{{ do not nest", "escaped \\\" quote": [[1]]},
    [[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]],  # 16 levels: the limit itself.
])
def test_valid_documents_read_as_json_loads_reads_them(document):
    text = json.dumps(document)
    assert parsing.parse_json(text) == json.loads(text)


@pytest.mark.parametrize("text, message", [
    ("[" * 17 + "]" * 17, "more than 16 levels deep"),
    ("[" * 100_000 + "]" * 100_000, "more than 16 levels deep"),
    ("[" + "9" * 400 + "]", "400 characters"),
    ("[" + "9" * 5000 + "]", "5,000 characters"),
    ("[1e400]", "too large"),
    ("[-1e400]", "too large"),
    ("[1e16]", "too large"),
    ("[NaN]", "NaN"),
    ("[Infinity]", "Infinity"),
    ("{oops", "not valid JSON"),
    ("x" * 200_001, "too long"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_bad_documents_are_refused_with_a_message(text, message):
    with pytest.raises(InputError) as refused:
        parsing.parse_json(text)
    assert message in str(refused.value)


def test_the_callers_error_class_is_raised():
    with pytest.raises(ArchitectureError, match="levels deep"):
        parsing.parse_json("[" * 50 + "]" * 50, error=ArchitectureError)


@pytest.mark.parametrize("text, expected", [("42", 42), ("-3", -3), ("+7", 7), (" 12 ", 12)])
def test_whole_numbers(text, expected):
    assert parsing.parse_int(text) == expected


@pytest.mark.parametrize("text, expected", [("0.5", 0.5), ("-1e-3", -1e-3), (".5", 0.5), ("3", 3.0), ("1e15", 1e15)])
def test_decimal_numbers(text, expected):
    assert parsing.parse_float(text) == expected


@pytest.mark.parametrize("parse, text, message", [
    (parsing.parse_int, "9" * 400, "400 characters"),
    (parsing.parse_int, "9" * 5000, "5,000 characters"),
    (parsing.parse_int, "1_000", "whole number"),
    (parsing.parse_int, "3.5", "whole number"),
    (parsing.parse_int, "", "empty"),
    (parsing.parse_float, "1e400", "too large"),
    (parsing.parse_float, "nan", "must be a number"),
    (parsing.parse_float, "inf", "must be a number"),
    (parsing.parse_float, "0x10", "must be a number"),
    (parsing.parse_float, "1e308", "between"),
])
def test_bad_numbers_are_refused(parse, text, message):
    with pytest.raises(InputError) as refused:
        parse(text)
    assert message in str(refused.value)


def test_bounds_are_checked_and_named():
    assert parsing.parse_int("5", minimum=1, maximum=10) == 5
    with pytest.raises(InputError, match="between 1 and 10, not 11"):
        parsing.parse_int("11", minimum=1, maximum=10)
    with pytest.raises(InputError, match="between 0 and 1, not 1.5"):
        parsing.parse_float("1.5", minimum=0, maximum=1)
