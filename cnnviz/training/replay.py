"""Replay training: the frames that re-draw a finished run's live curves at a chosen speed.

A finished run keeps its per-epoch history (`loss`, `accuracy`, `val_loss`, `val_accuracy` and
the wall-clock `seconds` of each epoch) and, when it trained on this server, the running
within-epoch points `(epoch_position, loss, accuracy)` of a training `Job.live_points`. A replay
shows the curves growing again, on the recorded clock: at 1x the curves grow as fast as they did
while training, 2x twice as fast, "instant" in one frame. Nothing is invented between recorded
values: a frame shows exactly the points recorded up to its moment.

`replay_frames` is pure (no Streamlit, no Keras): the page only sleeps until each frame's
`at_seconds` and draws `frame.history` and `frame.live_points` with the live-training figure.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Replay speeds offered to students: a factor on the recorded clock (None = instant, one frame).
# The fast engine trains a small default network in a few seconds, so slow motion is offered too.
SPEEDS: dict[str, float | None] = {"0.25x": 0.25, "0.5x": 0.5, "1x": 1.0, "2x": 2.0, "5x": 5.0, "instant": None}
DEFAULT_SPEED = "1x"
# Redrawing a Plotly figure costs a round trip to the browser: at most this many frames per second
# of replay, and at most MAX_FRAMES in all (a long run at 1x skips frames rather than stutter).
MAX_FRAMES_PER_SECOND = 4.0
MAX_FRAMES = 240
# Per-epoch seconds assumed when a history has none recorded (e.g. an older cache entry).
FALLBACK_EPOCH_SECONDS = 1.0

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass(frozen=True)
class ReplayFrame:
    """What the live figure shows at `at_seconds` after the replay started.

    `history` has the per-epoch lists of the epochs finished by then; `live_points` the running
    points recorded by then; `epochs_done` = len(history["loss"]).
    """

    at_seconds: float
    history: dict
    live_points: tuple
    epochs_done: int


def speed_factor(speed: str | float | None) -> float | None:
    """The clock factor of `speed` (a key of `SPEEDS`, a positive factor, or None = instant).

    Raises ValueError for an unknown name or a factor that is not positive.
    """
    if isinstance(speed, str):
        if speed not in SPEEDS:
            raise ValueError(f"Unknown replay speed {speed!r}; choose one of {', '.join(SPEEDS)}.")
        return SPEEDS[speed]
    if speed is not None and not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
        raise ValueError("The replay speed must be a positive factor (2 = twice as fast as training).")
    return None if speed is None else float(speed)


def epoch_seconds(history: Mapping[str, Sequence[float]]) -> list[float]:
    """Recorded seconds of each finished epoch (a fallback of 1 s where missing or not positive)."""
    epochs = len(history.get("loss", ()))
    recorded = list(history.get("seconds", ()))
    out = []
    for index in range(epochs):
        value = float(recorded[index]) if index < len(recorded) else math.nan
        out.append(value if math.isfinite(value) and value > 0 else FALLBACK_EPOCH_SECONDS)
    return out


def recorded_seconds(history: Mapping[str, Sequence[float]]) -> float:
    """How long the run took, on the recorded clock (sum of the per-epoch seconds)."""
    return float(sum(epoch_seconds(history)))


def _clock(history: Mapping[str, Sequence[float]]):
    """Map an epoch position x (0..epochs) to recorded seconds since training started."""
    durations = epoch_seconds(history)
    starts = [0.0]
    for duration in durations:
        starts.append(starts[-1] + duration)

    def at(position: float) -> float:
        if not durations:
            return 0.0
        position = min(max(float(position), 0.0), float(len(durations)))
        epoch = min(int(position), len(durations) - 1)
        return starts[epoch] + (position - epoch) * durations[epoch]

    return at


def _truncate(history: Mapping[str, Sequence[float]], epochs: int) -> dict:
    return {name: list(history.get(name, ()))[:epochs] for name in HISTORY_KEYS if name in history}


def replay_frames(history: Mapping[str, Sequence[float]], live_points: Sequence[Sequence[float]] = (), *,
                  speed: str | float | None = DEFAULT_SPEED, max_frames: int = MAX_FRAMES,
                  frames_per_second: float = MAX_FRAMES_PER_SECOND) -> list[ReplayFrame]:
    """The frames of a replay at `speed` (a key of `SPEEDS`, a positive factor, or None = instant).

    Events are the recorded ones: every running point at its recorded moment (its epoch position
    on that epoch's recorded clock) and every epoch end. Frames fall on a regular grid of at most
    `frames_per_second` per second of replay (and at most `max_frames`), each showing every event
    up to its moment; the last frame is always the whole run. Raises ValueError for a speed that
    is not positive.
    """
    factor = speed_factor(speed)
    epochs = len(history.get("loss", ()))
    # Only running points inside the finished epochs are replayed (a stopped run's tail has none).
    points = tuple(tuple(float(v) for v in point) for point in live_points
                   if len(point) >= 3 and 0.0 <= float(point[0]) <= max(epochs, 0) + 1e-9)
    points = tuple(sorted(points, key=lambda point: point[0]))
    final = ReplayFrame(0.0, _truncate(history, epochs), points, epochs)
    if factor is None or (epochs == 0 and not points):
        return [final]

    clock = _clock(history)
    total = recorded_seconds(history) / factor
    point_times = [clock(point[0]) / factor for point in points]
    epoch_end_times = [clock(epoch + 1) / factor for epoch in range(epochs)]
    count = int(max(2, min(max_frames, math.ceil(total * frames_per_second) + 1)))
    frames = []
    for index in range(count):
        at_seconds = total * index / (count - 1)
        # A small tolerance so an event exactly on a frame's moment is shown in that frame.
        limit = at_seconds + 1e-9
        shown_points = bisect.bisect_right(point_times, limit)
        epochs_done = bisect.bisect_right(epoch_end_times, limit)
        frames.append(ReplayFrame(at_seconds, _truncate(history, epochs_done), points[:shown_points], epochs_done))
    frames[-1] = ReplayFrame(total, final.history, final.live_points, epochs)
    return frames


def loss_axis_top(history: Mapping[str, Sequence[float]], live_points: Sequence[Sequence[float]] = ()) -> float:
    """An upper limit for the loss axis that fits every finite loss of the run (5% headroom; 1 if none)."""
    values = [*history.get("loss", ()), *history.get("val_loss", ()), *(point[1] for point in live_points)]
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return 1.05 * max(finite) if finite and max(finite) > 0 else 1.0


# --------------------------------------------------------------------------------------------
# Several runs replayed together (the comparison, transfer-strategy and augmentation pages)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupFrame:
    """What a replay of several runs together shows at `at_seconds` after it started.

    `histories` maps each run's name to the per-epoch lists of the epochs it had finished by then
    (every run is present, possibly with empty lists); `epochs_done` maps it to their number.
    """

    at_seconds: float
    histories: dict
    epochs_done: dict


def replay_frames_together(histories: Mapping[str, Mapping[str, Sequence[float]]], *,
                           speed: str | float | None = DEFAULT_SPEED, max_frames: int = MAX_FRAMES,
                           frames_per_second: float = MAX_FRAMES_PER_SECOND) -> list[GroupFrame]:
    """The frames of a replay of several runs at once, as a race: all start at 0 together.

    Each run follows its own recorded clock (its per-epoch `seconds`), so a run whose epochs took
    longer finishes its curves later; at 1x the replay lasts as long as the longest run. Only
    per-epoch values are replayed (they are all a cached run keeps). The last frame shows every
    run whole. Raises ValueError for a speed that is not positive.
    """
    factor = speed_factor(speed)
    names = list(histories)
    counts = {name: len(histories[name].get("loss", ())) for name in names}
    final = GroupFrame(0.0, {name: _truncate(histories[name], counts[name]) for name in names}, dict(counts))
    if factor is None or not any(counts.values()):
        return [final]
    ends = {}
    for name in names:
        clock = _clock(histories[name])
        ends[name] = [clock(epoch + 1) / factor for epoch in range(counts[name])]
    total = max(recorded_seconds(histories[name]) for name in names) / factor
    count = int(max(2, min(max_frames, math.ceil(total * frames_per_second) + 1)))
    frames = []
    for index in range(count):
        at_seconds = total * index / (count - 1)
        done = {name: bisect.bisect_right(ends[name], at_seconds + 1e-9) for name in names}
        frames.append(GroupFrame(at_seconds, {name: _truncate(histories[name], done[name]) for name in names}, done))
    frames[-1] = GroupFrame(total, final.histories, final.epochs_done)
    return frames


def group_loss_axis_top(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> float:
    """An upper limit for a shared loss axis that fits every finite loss of every run (1 if none)."""
    merged = {name: [value for history in histories.values() for value in history.get(name, ())]
              for name in ("loss", "val_loss")}
    return loss_axis_top(merged)
