"""Figures of the class page (issue 18): a poll's live histogram, and the join link as a QR code.

Nothing here calls Streamlit or imports TensorFlow. Option texts come from the lessons' own
questions (never from a student), and plotly draws them as text, not HTML markup.
"""

from __future__ import annotations

import io

import plotly.graph_objects as go
import segno

from cnnviz.classroom import PollResults
from cnnviz.figures.style import BLUE, GREEN, GREY

QR_SCALE = 10  # Pixels per QR module: a version-4 code is ~330 pixels wide, readable across a room.
QR_BORDER = 4  # The quiet zone the QR standard asks for, in modules.


def poll_figure(results: PollResults) -> go.Figure:
    """How many students chose each option; once revealed, the right option is green."""
    poll = results.poll
    right = poll.answer if poll.revealed else None
    colours = [GREEN if index == right else (GREY if right is not None else BLUE) for index in range(len(poll.options))]
    figure = go.Figure(go.Bar(
        x=list(results.counts), y=list(poll.options), orientation="h", marker_color=colours,
        text=[str(count) for count in results.counts], textposition="auto",
        hovertemplate="%{y}: %{x} students<extra></extra>"))
    figure.update_layout(
        title=f"{results.answered} of {results.students} students answered",
        xaxis_title="students", yaxis={"autorange": "reversed", "type": "category"},
        height=120 + 48 * len(poll.options), margin={"l": 10, "r": 10, "t": 50, "b": 40}, showlegend=False)
    figure.update_xaxes(rangemode="tozero", dtick=max(1, -(-max(results.counts, default=0) // 8)))
    return figure


def qr_png(link: str) -> bytes:
    """The join link as a QR code (PNG, error correction M), for the projector."""
    code = segno.make(link, error="m", micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=QR_SCALE, border=QR_BORDER)
    return buffer.getvalue()
