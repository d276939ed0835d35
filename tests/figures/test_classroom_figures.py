"""The class page's figures: the poll histogram shows the store's counts, and the QR code is a real
QR code of the link (its size is the QR version's, its finder patterns are where the standard puts them)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cnnviz.classroom import Poll, PollResults
from cnnviz.figures import classroom as figures
from cnnviz.figures.style import BLUE, GREEN, GREY


def _results(revealed: bool) -> PollResults:
    poll = Poll(1, "How big?", ("25 × 25", "26 × 26", "27 × 27"), 0.0, revealed, 1 if revealed else None)
    return PollResults(poll, (2, 5, 0), 7, 9)


def test_the_histogram_shows_the_counts_and_the_right_option_only_after_the_reveal():
    live = figures.poll_figure(_results(False))
    bar = live.data[0]
    assert list(bar.x) == [2, 5, 0] and list(bar.y) == ["25 × 25", "26 × 26", "27 × 27"]
    assert list(bar.marker.color) == [BLUE] * 3  # Nothing gives the answer away.
    assert live.layout.title.text == "7 of 9 students answered"
    revealed = figures.poll_figure(_results(True))
    assert list(revealed.data[0].marker.color) == [GREY, GREEN, GREY]


def test_the_qr_code_is_a_qr_code_of_the_right_version_and_size():
    link = "http://localhost:8501/classroom?class=ABCDEFGHJKMN"
    image = np.asarray(Image.open(io.BytesIO(figures.qr_png(link))).convert("L"))
    side_modules = image.shape[0] // figures.QR_SCALE - 2 * figures.QR_BORDER
    assert image.shape[0] == image.shape[1] and image.shape[0] % figures.QR_SCALE == 0
    # A version-v code is 17 + 4v modules wide; 50 bytes at level M need version 4 (ISO 18004, table 7).
    assert side_modules == 17 + 4 * 4
    modules = image[::figures.QR_SCALE, ::figures.QR_SCALE][figures.QR_BORDER:-figures.QR_BORDER,
                                                             figures.QR_BORDER:-figures.QR_BORDER] < 128
    finder = np.ones((7, 7), bool)
    finder[1:6, 1:6] = False
    finder[2:5, 2:5] = True
    for corner in (modules[:7, :7], modules[:7, -7:], modules[-7:, :7]):
        assert (corner == finder).all()
    assert not modules[-7:, -7:].all()  # No finder pattern in the fourth corner.
    assert figures.qr_png(link + "X") != figures.qr_png(link)
