"""Class codes, secrets and names (cnnviz.classroom.model): unguessable, separate, bounded."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections import Counter

import pytest
from scipy import stats

from cnnviz.classroom import model
from cnnviz.errors import ClassroomInputError, LecturerOnly


def test_codes_have_enough_entropy_and_are_uniform_and_unique():
    assert model.code_entropy_bits() >= 58
    # The bound of the docstring: with every class slot full, one guess hits below 1 in 10^15.
    assert model.DEFAULT_LIMITS.max_classes / len(model.CODE_ALPHABET) ** model.CODE_LENGTH < 1e-15
    codes = [model.new_code() for _ in range(10_000)]
    assert len(set(codes)) == len(codes)
    assert all(len(code) == model.CODE_LENGTH and set(code) <= set(model.CODE_ALPHABET) for code in codes)
    # Every character of every position equally likely (chi-square against the uniform law).
    counts = Counter(char for code in codes for char in code)
    observed = [counts[char] for char in model.CODE_ALPHABET]
    assert stats.chisquare(observed).pvalue > 1e-6
    first = Counter(code[0] for code in codes)
    assert stats.chisquare([first[char] for char in model.CODE_ALPHABET]).pvalue > 1e-6


def test_codes_and_secrets_do_not_come_from_the_seedable_random_module():
    random.seed(0)
    first = (model.new_code(), model.new_secret(), model.new_student_id())
    random.seed(0)
    second = (model.new_code(), model.new_secret(), model.new_student_id())
    assert all(a != b for a, b in zip(first, second, strict=True))
    # And not from another process's state either.
    run = [sys.executable, "-c", "import random; random.seed(0); from cnnviz.classroom import model; "
                                 "print(model.new_code())"]
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout != \
        subprocess.run(run, capture_output=True, text=True, check=True).stdout


def test_the_lecturer_secret_is_long_and_separate_from_the_code():
    secret = model.new_secret()
    assert len(secret) >= 43  # 32 random bytes in URL-safe base64
    assert math.log2(64) * len(secret) >= 256
    code = model.new_code()
    assert not model.secret_matches(code, model.hash_secret(secret))
    assert model.secret_matches(secret, model.hash_secret(secret))
    for wrong in (None, "", secret[:-1], secret + "x", secret.upper()):
        assert not model.secret_matches(wrong, model.hash_secret(secret))
        with pytest.raises(LecturerOnly, match="lecturer"):
            model.require_lecturer(wrong, model.hash_secret(secret))


def test_the_secret_is_compared_in_constant_time(monkeypatch):
    calls = []
    real = model.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(model.hmac, "compare_digest", spy)
    digest = model.hash_secret("the secret")
    assert model.secret_matches("the secret", digest)
    assert not model.secret_matches("another", digest)
    assert [b for _, b in calls] == [digest, digest]


@pytest.mark.parametrize(("typed", "stored"), [
    ("  Ada   Lovelace ", "Ada Lovelace"), ("José Ñúñez", "José Ñúñez"), ("李小龍", "李小龍"),
    ("o'neil-smith_2.0", "o'neil-smith_2.0"), ("tab\tand\nnew line", "tab and new line"), ("", ""), (None, ""),
])
def test_names_are_stored_raw_but_bounded(typed, stored):
    assert model.clean_name(typed) == stored


@pytest.mark.parametrize("typed", [
    "<b>x</b>", "a&b", "[link](http://x)", "*bold*", "zero\u200bwidth", "a" * 25,
    "emoji 🙂", 12,
])
def test_names_with_markup_control_characters_or_too_long_are_refused(typed):
    with pytest.raises(ClassroomInputError):
        model.clean_name(typed)


def test_typed_codes_are_normalised_and_junk_matches_nothing():
    code = model.new_code()
    assert model.normalise_code(f" {code[:4].lower()}-{code[4:8]} {code[8:]} ") == code
    for junk in ("", "x" * 10_000, code[:-1], code + "A", "0" * model.CODE_LENGTH, "I" * model.CODE_LENGTH):
        assert model.normalise_code(junk) == ""
