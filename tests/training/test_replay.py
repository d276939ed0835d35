"""Replay training: frames follow the recorded clock at the chosen speed and show only recorded
values; the train page replays a finished run in its live figure without training again."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.catalogue import PROJECT_ROOT
from cnnviz.lessons import lenet_vs_relu
from cnnviz.training import engine, replay

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
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "train.py"), default_timeout=180).run()
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

    monkeypatch.setattr(engine, "_train_now", _no_training)
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


# --------------------------------------------------------------------------------------------
# Several runs replayed together (comparison, transfer strategies, augmentation variants)
# --------------------------------------------------------------------------------------------

# A fast run (1 s epochs) and a slow one (4 s epochs), the latter with no recorded seconds for one
# epoch (an older cache entry): it falls back to 1 s there.
FAST = {"loss": [1.0, 0.5], "accuracy": [0.6, 0.8], "val_loss": [0.9, 0.6], "val_accuracy": [0.65, 0.75],
        "seconds": [1.0, 1.0]}
SLOW = {"loss": [2.0, 1.2, 0.9], "accuracy": [0.3, 0.5, 0.6], "val_loss": [1.8, 1.1, 0.95],
        "val_accuracy": [0.35, 0.5, 0.55], "seconds": [4.0, 4.0, float("nan")]}


def test_runs_replayed_together_start_at_once_each_on_its_own_clock():
    frames = replay.replay_frames_together({"fast": FAST, "slow": SLOW}, speed="1x", frames_per_second=1.0)
    # The replay lasts as long as the longest run (4 + 4 + 1 s), one frame per second.
    assert [frame.at_seconds for frame in frames] == pytest.approx(list(range(10)))
    by_time = {round(frame.at_seconds): frame for frame in frames}
    assert by_time[0].epochs_done == {"fast": 0, "slow": 0}
    assert by_time[0].histories["fast"]["loss"] == [] and by_time[0].histories["slow"]["loss"] == []
    # The fast run has finished both epochs at 2 s while the slow one is still in its first.
    assert by_time[1].epochs_done == {"fast": 1, "slow": 0}
    assert by_time[2].epochs_done == {"fast": 2, "slow": 0}
    assert by_time[4].epochs_done == {"fast": 2, "slow": 1} and by_time[8].epochs_done["slow"] == 2
    assert frames[-1].epochs_done == {"fast": 2, "slow": 3}
    assert frames[-1].histories == {"fast": FAST, "slow": SLOW}
    # Every frame shows recorded prefixes only, and nothing ever shrinks.
    for before, after in zip(frames, frames[1:]):
        for name, full in (("fast", FAST), ("slow", SLOW)):
            assert after.epochs_done[name] >= before.epochs_done[name]
            for metric, values in after.histories[name].items():
                assert values == full[metric][:after.epochs_done[name]]


def test_together_speeds_scale_the_clock_and_instant_is_one_frame():
    runs = {"fast": FAST, "slow": SLOW}
    one = replay.replay_frames_together(runs, speed="1x")
    assert replay.replay_frames_together(runs, speed="2x")[-1].at_seconds == pytest.approx(one[-1].at_seconds / 2)
    assert replay.replay_frames_together(runs, speed="0.25x")[-1].at_seconds == pytest.approx(4 * 9.0)
    instant = replay.replay_frames_together(runs, speed="instant")
    assert len(instant) == 1 and instant[0].histories == runs
    assert len(replay.replay_frames_together(runs, speed="1x", max_frames=5)) == 5
    assert len(replay.replay_frames_together({"empty": {"loss": []}}, speed="1x")) == 1
    for bad in ("10x", 0, -2.0):
        with pytest.raises(ValueError):
            replay.replay_frames_together(runs, speed=bad)


def test_shared_loss_axis_fits_every_run():
    assert replay.group_loss_axis_top({"fast": FAST, "slow": SLOW}) == pytest.approx(1.05 * 2.0)
    assert replay.group_loss_axis_top({"none": {"loss": [float("nan")]}, "fast": FAST}) == pytest.approx(1.05)
    assert replay.speed_factor("instant") is None and replay.speed_factor(3) == 3.0


# --------------------------------------------------------------------------------------------
# The multi-run pages: comparison, transfer learning, augmentation lab
# --------------------------------------------------------------------------------------------

def _page(name: str, timeout: float = 300) -> AppTest:
    return AppTest.from_file(str(PROJECT_ROOT / "app_pages" / name), default_timeout=timeout)


def _record_charts(monkeypatch) -> list:
    """Every (key, figure) the pages draw through `ui.plotly_chart` from now on (replay frames included)."""
    from widgets import ui

    drawn = []
    original = ui.plotly_chart

    def recording(figure, **kwargs):
        drawn.append((kwargs.get("key", ""), figure))
        return original(figure, **kwargs)

    monkeypatch.setattr(ui, "plotly_chart", recording)
    return drawn


def _values(figure, *, trace_name: str = "") -> int:
    """Finite y values drawn by a figure's traces (those whose name contains `trace_name`)."""
    import math

    return sum(sum(1 for y in (trace.y if trace.y is not None else ()) if y is not None and math.isfinite(y))
               for trace in figure.data if trace_name in (trace.name or ""))


def _replay(at: AppTest, monkeypatch, key: str, *, speed: str, choice: str | None = None) -> list:
    """Choose what to replay, at `speed`, press Replay; returns the frames drawn (figures, in order)."""
    if choice is not None:
        at.selectbox(key=f"{key}_run").set_value(choice)
    at.select_slider(key=f"{key}_speed").set_value(speed)
    drawn = _record_charts(monkeypatch)
    at.button(key=f"{key}_button").click().run()
    assert not at.exception, at.exception
    return [figure for name, figure in drawn if name.startswith(f"{key}_frame_")]


def _assert_grows_to(frames: list, total: int, trace_name: str = "") -> None:
    counts = [_values(figure, trace_name=trace_name) for figure in frames]
    assert len(frames) >= 2 and counts[0] == 0 and counts[-1] == total
    assert counts == sorted(counts)  # The curves only grow.


@pytest.mark.slow
def test_comparison_page_replays_all_models_together_or_one(monkeypatch):
    at = _page("lenet_vs_relu.py").run()
    at.select_slider(key="lvr_train_images").set_value(256)
    at.select_slider(key="lvr_test_images").set_value(100)
    at.select_slider(key="lvr_updates").set_value(8)
    at.slider(key="lvr_seeds").set_value(1)
    at.button(key="lvr_run").click().run()
    assert not at.exception, at.exception
    labels = [item.label for item in lenet_vs_relu.VARIANTS]
    assert at.selectbox(key="lvr_replay_run").options == ["All 6 models together", *labels]

    monkeypatch.setattr(engine, "_train_now", _no_training)
    # All six together: four curves (loss/accuracy, training/validation) per model and epoch; with the
    # same budget of weight updates, each model trains for as many epochs as its batch size allows.
    settings = at.session_state["lvr_requested"]["settings"]
    epochs = [lenet_vs_relu.variant_epochs(item.key, settings) for item in lenet_vs_relu.VARIANTS]
    frames = _replay(at, monkeypatch, "lvr_replay", speed="1x")
    _assert_grows_to(frames, 4 * sum(epochs))

    # One model: its figure (the seeds of a comparison train together, so no within-epoch points).
    seed = lenet_vs_relu.variant(lenet_vs_relu.RELU_CNN)
    frames = _replay(at, monkeypatch, "lvr_replay", speed="2x", choice=seed.label)
    config = lenet_vs_relu.comparison_configs(settings)[seed.key]
    points = at.session_state.get("_replay_live_points", {}).get(config.key(), [])
    _assert_grows_to(frames, 2 * (len(points) + 2 * lenet_vs_relu.variant_epochs(seed.key, settings)))
    assert "Loss (cross-entropy)" in str(frames[-1].layout.annotations)


@pytest.mark.slow
def test_transfer_page_replays_pre_training_and_the_strategies(monkeypatch):
    at = _page("transfer.py").run()
    at.select_slider(key="transfer_pretrain_per_class").set_value(20)
    at.select_slider(key="transfer_test_per_class").set_value(10)
    at.slider(key="transfer_pretrain_epochs").set_value(2)
    at.slider(key="transfer_epochs").set_value(1)
    at.run()
    at.button(key="transfer_pretrain_button").click().run()
    assert not at.exception, at.exception
    # One run: no choice to make, just its speed and the button.
    assert not [box for box in at.selectbox if box.key == "transfer_pretrain_replay_run"]
    monkeypatch.setattr(engine, "_train_now", _no_training)
    frames = _replay(at, monkeypatch, "transfer_pretrain_replay", speed="2x")
    points = [p for kept in at.session_state["_replay_live_points"].values() for p in kept]
    assert points
    _assert_grows_to(frames, 2 * (len(points) + 2 * 2))
    monkeypatch.undo()

    at.select_slider(key="transfer_transfer_per_class").set_value(10)
    at.select_slider(key="transfer_smallest").set_value(6)
    at.select_slider(key="transfer_largest").set_value(30)
    at.slider(key="transfer_size_steps").set_value(2)
    at.run()
    at.button(key="transfer_compare_button").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="transfer_replay_size").options == ["6 images", "30 images"]
    strategies = ["Frozen features, new output layer only", "Fine-tune everything", "Train from scratch"]
    assert at.selectbox(key="transfer_compare_replay_run").options == ["All three strategies together",
                                                                        *strategies]
    monkeypatch.setattr(engine, "_train_now", _no_training)
    at.selectbox(key="transfer_replay_size").set_value(30)
    frames = _replay(at, monkeypatch, "transfer_compare_replay", speed="1x")
    # These runs trained in the background job: per-epoch training curves (loss and accuracy) per
    # strategy, and the test split scored once, after the last epoch (`validate_every_epoch=False`).
    epochs = len(frames[-1].data[0].y)
    assert epochs >= 1
    _assert_grows_to(frames, 3 * (2 * epochs + 2))
    frames = _replay(at, monkeypatch, "transfer_compare_replay", speed="instant", choice=strategies[1])
    assert len(frames) == 1 and _values(frames[0]) == 2 * epochs + 2


@pytest.mark.slow
def test_augmentation_lab_replays_the_variants_even_from_the_disk_cache(monkeypatch):
    from widgets import ui

    at = _page("augmentation.py").run()
    at.select_slider(key="aug_fit_images").set_value(200)
    at.slider(key="aug_fit_epochs").set_value(3)
    at.multiselect(key="aug_fit_variants").set_value(["baseline", "dropout"])
    at.button(key="aug_fit_train").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="aug_fit_replay_run").options == ["All variants together", "No regularisation",
                                                              "Dropout"]
    monkeypatch.setattr(engine, "_train_now", _no_training)
    # Both variants together: per variant, training and test accuracy and the gap, three epochs each.
    frames = _replay(at, monkeypatch, "aug_fit_replay", speed="1x")
    _assert_grows_to(frames, 2 * 3 * 3)

    # A new session after a restart: the runs come from the disk cache, with per-epoch history only.
    ui.job_registry.clear()
    again = _page("augmentation.py")
    again.session_state["aug_fit_images"] = 200
    again.session_state["aug_fit_epochs"] = 3
    again.session_state["aug_fit_variants"] = ["baseline", "dropout"]
    again.run()
    assert not again.exception, again.exception
    assert "_replay_live_points" not in again.session_state
    frames = _replay(again, monkeypatch, "aug_fit_replay", speed="2x", choice="Dropout")
    _assert_grows_to(frames, 2 * 2 * 3)  # Loss and accuracy, training and validation, per epoch.
