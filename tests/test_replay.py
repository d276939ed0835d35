"""Replay training: frames follow the recorded clock at the chosen speed and show only recorded
values; the train page replays a finished run in its live figure without training again."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import replay, training
from cnnviz.lessons import PROJECT_ROOT

HISTORY = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.6, 0.75, 0.8], "val_loss": [0.8, 0.6, 0.5],
           "val_accuracy": [0.7, 0.78, 0.82], "seconds": [4.0, 2.0, 2.0]}
# Running points at fractional epoch positions (epoch_position, loss, accuracy).
POINTS = [(0.5, 1.5, 0.4), (1.0, 1.0, 0.6), (1.5, 0.7, 0.7), (2.0, 0.6, 0.75), (2.5, 0.45, 0.78)]


def test_instant_is_one_frame_with_the_whole_run():
    frames = replay.replay_frames(HISTORY, POINTS, speed="instant")
    assert len(frames) == 1
    assert frames[0].history == HISTORY and frames[0].epochs_done == 3
    assert frames[0].live_points == tuple(POINTS)


def test_one_x_follows_the_recorded_seconds():
    frames = replay.replay_frames(HISTORY, POINTS, speed="1x", frames_per_second=1.0)
    # 8 recorded seconds at one frame per second: frames at 0, 1, ..., 8.
    assert [frame.at_seconds for frame in frames] == pytest.approx(list(range(9)))
    by_time = {round(frame.at_seconds): frame for frame in frames}
    # Epoch 1 took 4 s: its end (and the running point at 1.0) shows at 4 s, not before.
    assert by_time[3].epochs_done == 0 and by_time[4].epochs_done == 1
    # The point at epoch position 0.5 was recorded half-way through the 4-second first epoch.
    assert len(by_time[1].live_points) == 0 and len(by_time[2].live_points) == 1
    # Epoch 2 (2 s) ends at 6 s; epoch 3 at 8 s; the point at 2.5 is one second into epoch 3.
    assert by_time[6].epochs_done == 2 and by_time[7].live_points[-1] == POINTS[-1]
    assert frames[-1].history == HISTORY and frames[-1].live_points == tuple(POINTS)


def test_faster_speeds_scale_the_clock_and_frames_only_grow():
    one = replay.replay_frames(HISTORY, POINTS, speed="1x")
    for name, factor in (("2x", 2.0), ("5x", 5.0), (4.0, 4.0)):
        frames = replay.replay_frames(HISTORY, POINTS, speed=name)
        assert frames[-1].at_seconds == pytest.approx(one[-1].at_seconds / factor)
    frames = replay.replay_frames(HISTORY, POINTS, speed="2x")
    times = [frame.at_seconds for frame in frames]
    assert times == sorted(times) and times[0] == 0.0
    for before, after in zip(frames, frames[1:]):
        assert after.epochs_done >= before.epochs_done
        assert len(after.live_points) >= len(before.live_points)
        # Every frame shows a prefix of the recorded values, nothing interpolated.
        for name, values in after.history.items():
            assert values == HISTORY[name][:after.epochs_done]
        assert after.live_points == tuple(POINTS[:len(after.live_points)])


def test_frame_count_is_bounded_for_long_runs():
    long_history = {name: values * 40 for name, values in HISTORY.items()}
    long_history["seconds"] = [30.0] * 120
    frames = replay.replay_frames(long_history, speed="1x", max_frames=50)
    assert len(frames) == 50
    assert frames[-1].at_seconds == pytest.approx(3600.0)


def test_missing_seconds_fall_back_and_bad_speeds_are_refused():
    history = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.7], "val_loss": [0.9, 0.6], "val_accuracy": [0.6, 0.7]}
    assert replay.recorded_seconds(history) == 2 * replay.FALLBACK_EPOCH_SECONDS
    assert replay.replay_frames(history, speed="1x")[-1].epochs_done == 2
    assert len(replay.replay_frames({"loss": []}, speed="1x")) == 1
    for bad in ("10x", 0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            replay.replay_frames(HISTORY, speed=bad)


def test_points_beyond_the_finished_epochs_are_not_replayed():
    # A stopped run: one finished epoch, a running point in the unfinished second one.
    history = {name: values[:1] for name, values in HISTORY.items()}
    frames = replay.replay_frames(history, [(0.5, 1.5, 0.4), (1.4, 0.9, 0.6)], speed="5x")
    assert frames[-1].live_points == ((0.5, 1.5, 0.4),)


# --------------------------------------------------------------------------------------------
# The train page
# --------------------------------------------------------------------------------------------

def _no_training(*args, **kwargs):
    raise AssertionError("a replay must not train")


def _curve_points(chart) -> int:
    """Number of loss values drawn by the live figure (running points + per-epoch markers)."""
    spec = json.loads(chart.proto.spec)
    return sum(len([y for y in trace.get("y", []) if y is not None]) for trace in spec["data"])


@pytest.mark.slow
def test_train_page_replays_the_run_in_its_live_figure(monkeypatch):
    at = AppTest.from_file(str(PROJECT_ROOT / "views" / "train_cnn.py"), default_timeout=180).run()
    at.number_input(key="train_limit_train").set_value(300)
    at.number_input(key="train_limit_test").set_value(100)
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_batch_size").set_value(32).run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    result = at.session_state["train_result"]
    assert result.epochs_completed == 2
    # This session watched the run train: its within-epoch points are kept for the replay.
    points = at.session_state["_replay_live_points"][result.config.key()]
    assert points and all(0 < point[0] <= 2 for point in points)

    monkeypatch.setattr(training, "_train_now", _no_training)
    at.select_slider(key="train_replay_speed").set_value("instant")
    at.button(key="train_replay_button").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train_result"] is result
    charts = [chart for chart in at.get("plotly_chart") if "Loss (cross-entropy)" in chart.proto.spec]
    assert len(charts) == 1  # The replay draws in the same place as the curves.
    # The final frame shows every recorded value: running points and both epochs' markers.
    assert _curve_points(charts[0]) == 2 * (len(points) + 2 * result.epochs_completed)

    # At 5x the replay runs through its frames and ends on the whole run, still without training.
    at.select_slider(key="train_replay_speed").set_value("5x")
    at.button(key="train_replay_button").click().run()
    assert not at.exception, at.exception
    charts = [chart for chart in at.get("plotly_chart") if "Loss (cross-entropy)" in chart.proto.spec]
    assert _curve_points(charts[0]) == 2 * (len(points) + 2 * result.epochs_completed)


def test_slow_motion_stretches_the_clock():
    frames = replay.replay_frames(HISTORY, POINTS, speed="0.25x")
    assert frames[-1].at_seconds == pytest.approx(4 * replay.recorded_seconds(HISTORY))
    assert list(replay.SPEEDS)[:3] == ["0.25x", "0.5x", "1x"] and replay.SPEEDS["instant"] is None


def test_loss_axis_fits_every_finite_loss():
    assert replay.loss_axis_top(HISTORY, POINTS) == pytest.approx(1.05 * 1.5)
    assert replay.loss_axis_top({"loss": [float("nan")], "val_loss": []}) == 1.0
