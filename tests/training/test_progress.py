"""cnnviz.training.progress: the divergence rule (the engine tests train into it for real)."""

from __future__ import annotations

import math

import pytest

from cnnviz import training


def test_divergence_threshold_is_relative_to_guessing():
    # Ten times the loss of guessing uniformly among k classes (ln k).
    assert training.divergence_threshold(10) == pytest.approx(10 * math.log(10))
    assert training.divergence_threshold(2) == pytest.approx(10 * math.log(2))
    assert training.divergence_threshold(1) == training.divergence_threshold(2)
