"""The one module of shared Streamlit widgets for cnnviz pages.

Pages import it as `from widgets import ui`. The core (`cnnviz/`) never imports Streamlit;
this module is the bridge: widgets in, a core call, figures out. It must not import
TensorFlow at module level (the home page, convolution lab and calculator never load it).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitAPIException

from cnnviz import data, training
from cnnviz.architecture import EDITOR_ARGUMENTS, LAYER_TYPES, LAYERS
from cnnviz.errors import CnnvizError, TrainingStopped
from cnnviz.figures.style import PRESENTER_CSS, style_figure
from cnnviz.figures.training_curves import live_training_figure
from cnnviz.shareable import Param, read_params, write_params
from cnnviz.training import replay


def page_header(title: str, teaches: str) -> None:
    """Title and a one-line statement of what the page teaches.

    In presenter mode it also reserves the slot under the title where `key_figure()` puts the
    page's key figure, so that it is on the projector without scrolling.
    """
    st.title(title)
    st.caption(teaches)
    st.session_state[_KEY_FIGURE_SLOT] = st.container(key="key_figure") if presenter_mode() else None


_KEY_FIGURE_SLOT = "_key_figure_slot"


@contextmanager
def key_figure():
    """Where a page draws its key figure: in presenter mode, the slot just under the title (filled
    later in the script, shown first); otherwise right here, in the page's normal reading order."""
    slot = st.session_state.get(_KEY_FIGURE_SLOT) if presenter_mode() else None
    with slot if slot is not None else st.container():
        yield


def dataset_selectbox(key: str, *, label: str = "Dataset", default: str = "fashion_mnist",
                      options: tuple[str, ...] = data.DATASETS) -> str:
    """Choose one of the datasets cnnviz knows; returns its name (e.g. "fashion_mnist")."""
    return st.selectbox(label, options, index=options.index(default),
                        format_func=lambda name: data.spec(name).title, key=key)


@st.cache_resource(max_entries=6, show_spinner="Loading the dataset…")
def _cached_dataset(name: str, limit_train: int | None, limit_test: int | None, seed: int,
                    allow_download: bool) -> data.Dataset:
    return data.load(name, limit_train=limit_train, limit_test=limit_test, seed=seed,
                     allow_download=allow_download)


def load_dataset_or_stop(name: str, *, limit_train: int | None = None, limit_test: int | None = None,
                         seed: int = 0, allow_download: bool = True) -> data.Dataset:
    """Load a dataset (cached and shared between sessions) and say which source it came from.

    When no source has it, the reason is shown in the page and the script stops there,
    so the rest of the app keeps working.
    """
    try:
        dataset = _cached_dataset(name, limit_train, limit_test, seed, allow_download)
    except data.DatasetUnavailable as error:
        st.error(str(error), icon=":material/cloud_off:")
        st.stop()
    show_dataset_source(dataset)
    return dataset


def show_dataset_source(dataset: data.Dataset) -> None:
    """A one-line caption naming the source of the data in use and why it was chosen."""
    label = data.spec(dataset.name).title
    st.caption(f":material/database: **{label}** from **{dataset.source}** — {dataset.note} "
               f"({len(dataset.x_train):,} training / {len(dataset.x_test):,} test images)")


# Presenter mode and shareable views: shared by every page (lecture-ready).

PRESENTER_KEY = "presenter_mode"
APP_WIDE_PARAMS = ("presenter",)


def presenter_mode() -> bool:
    """Whether the lecturer switched presenter mode on in this session."""
    return bool(st.session_state.get(PRESENTER_KEY, False))


def presenter_toggle() -> bool:
    """The sidebar's presenter-mode switch (also turned on by `?presenter=1` in a shared link)."""
    if PRESENTER_KEY not in st.session_state:
        st.session_state[PRESENTER_KEY] = st.query_params.get("presenter") == "1"
    enabled = st.sidebar.toggle(
        "Presenter mode", key=PRESENTER_KEY,
        help="Large text, thick lines and a colour-blind-safe palette for a projector.")
    if enabled:
        st.markdown(PRESENTER_CSS, unsafe_allow_html=True)
    # Keep the link in step with the switch on every page, including pages that share no controls.
    if enabled and st.query_params.get("presenter") != "1":
        st.query_params["presenter"] = "1"
    elif not enabled and "presenter" in st.query_params:
        del st.query_params["presenter"]
    return enabled


def plotly_chart(figure, **kwargs):
    """`st.plotly_chart` with presenter-mode styling applied when it is on."""
    style_figure(figure, presenter=presenter_mode())
    kwargs.setdefault("width", "stretch")
    return st.plotly_chart(figure, **kwargs)


def _view_marker(params: list[Param]) -> str:
    return "_view_restored:" + ",".join(sorted(param.key for param in params))


def _saved_view_key(params: list[Param]) -> str:
    return "_view_saved:" + ",".join(sorted(param.key for param in params))


def restore_view(params: list[Param]) -> None:
    """Apply a shared link's parameters, once per session and page, before the widgets exist.

    Values that are unknown or invalid are ignored with a small notice; nothing raises.
    """
    marker = _view_marker(params)
    if marker in st.session_state:
        # Back from another page: the URL lost its parameters on the page switch and Streamlit
        # dropped the state of this page's widgets, so put back the values of the last run here.
        for key, value in st.session_state.get(_saved_view_key(params), {}).items():
            if key not in st.session_state:
                st.session_state[key] = value
        return
    st.session_state[marker] = True
    values, rejected = read_params(params, st.query_params.to_dict(), ignore=APP_WIDE_PARAMS)
    for key, value in values.items():
        st.session_state[key] = value
    if rejected:
        st.caption(f":material/link_off: Ignored link parameters that this page does not understand: "
                   f"{', '.join(sorted(rejected))}.")


def publish_view(params: list[Param]) -> None:
    """Mirror the page's controls into the URL and offer a link to this exact view."""
    query = write_params(params, st.session_state)
    # A plain (non-widget) copy survives a switch to another page and back (see restore_view).
    st.session_state[_saved_view_key(params)] = {
        param.key: st.session_state[param.key] for param in params if param.key in st.session_state}
    if presenter_mode():
        query["presenter"] = "1"
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    base = (st.context.url or "").split("?")[0]
    link = f"{base}?{urlencode(query)}" if query else base
    with st.popover("Copy link to this view", icon=":material/link:"):
        st.caption("Opens this page with every control as it is now.")
        st.code(link, language=None, wrap_lines=True)


# --------------------------------------------------------------------------------------------
# Training with live progress (shared by the train, comparison, transfer and augmentation pages)
# --------------------------------------------------------------------------------------------

TRAINING_CACHE_ENTRIES = 8


@st.cache_resource(max_entries=TRAINING_CACHE_ENTRIES, show_spinner=False)
def _training_job(job_key: str, _config: training.TrainConfig, _data: object = None,
                  _source: str | None = None) -> training.Job[training.Progress, training.TrainResult]:
    """The shared background job for one configuration on one data source (started on a miss, kept
    when finished). Keyed by `_job_key`; the config, data and source themselves are not hashed
    (underscore). No `st.*` call happens in here, so nothing is replayed on a cache hit.
    """
    return training.training_job(_config, data=_data, use_cache=True, source=_source).start()


def _job_key(config: training.TrainConfig, source: str) -> str:
    """The shared job's cache key: the settings and the source of their data (the same settings on
    other data, say the bundled sample and then the full dataset, is another job)."""
    return f"{config.key()}:{source}"


def _unfinished_key(key: str) -> str:
    return f"{key}__unfinished_result"


def _describe_progress(progress: training.Progress | None) -> str:
    if progress is None:
        return "Preparing the data and building the model…"
    if progress.phase == "waiting":
        position = int(progress.metrics.get("queue_position", 0))
        return (f"Waiting for a free training slot (place {position} in the queue): "
                "other students are training right now.")
    prefix = "Pre-training the model to copy weights from — " if progress.phase == "warm start" else ""
    text = f"{prefix}Epoch {progress.epoch}/{progress.epochs} · batch {progress.batch}/{progress.batches}"
    if "loss" in progress.metrics:
        text += f" · loss {progress.metrics['loss']:.4f}"
    if "accuracy" in progress.metrics:
        text += f" · accuracy {progress.metrics['accuracy']:.1%}"
    if progress.images_per_second > 0:
        text += f" · {progress.images_per_second:,.0f} images/s"
    return text


def _show_unfinished(result: training.TrainResult) -> None:
    done = result.epochs_completed
    if result.stopped_reason == "diverged":
        st.error(f"Training diverged after {done} epoch(s): the loss became NaN, infinite or exploded. "
                 "The learning rate is too large for this model: try one ten times smaller.",
                 icon=":material/trending_up:")
    elif result.stopped_reason == "stopped":
        st.warning(f"Training was stopped after {done} of {result.config.epochs} epoch(s) "
                   "(the last one may be partial). The results below are for the model as it was then.",
                   icon=":material/stop_circle:")


def show_job_error(error: BaseException, *, failed: str, stopped: str | None = None) -> None:
    """How every page reports a background job that ended with an exception: a stop (TrainingStopped)
    as information, a domain error (CnnvizError) as its student-facing message, anything else as
    `failed` with the error's type."""
    if isinstance(error, TrainingStopped):
        st.info(stopped or str(error), icon=":material/stop_circle:")
    elif isinstance(error, CnnvizError):
        st.error(str(error), icon=":material/error:")
    else:
        st.error(f"{failed}: {type(error).__name__}: {error}", icon=":material/error:")


def train_with_progress(config: training.TrainConfig, *, key: str, fresh: bool = False,
                        data: object = None) -> training.TrainResult | None:
    """Train `config` (or reuse a result), showing live progress; returns a TrainResult or None.

    `data` is the dataset the page already loaded for `config` (then nothing loads it again and
    its `source` identifies the run); without it the engine loads the data itself.

    - A finished result for this config (trained by anyone on this server, or found in the disk
      cache) comes back at once. Up to `TRAINING_CACHE_ENTRIES` results stay in memory.
    - Otherwise training runs in a background thread while this call shows a progress bar,
      epoch/batch, images per second, live loss/accuracy curves and a Stop button
      (`key + "_stop"`), and returns when it ends. Reruns (a Stop click, any widget) re-attach to
      the same running job instead of starting again.
    - A stopped or diverged run is NOT cached for others: this session keeps it (and gets it back
      on reruns, with a message) until `fresh=True` (pass the Train button's value) trains anew.
    - Bad settings (a `CnnvizError`, e.g. a batch larger than the training set) show its message
      with `st.error` and return None; a stop while waiting for a slot shows `st.info`.

    Call it on every rerun once the user asked to train this config, e.g. remember the request
    in `st.session_state` from the Train button's `on_click`.
    """

    config_key = config.key()
    store = _unfinished_key(key)
    kept = st.session_state.get(store)
    if kept is not None and (fresh or kept[0] != config_key):
        del st.session_state[store]
        kept = None
    if kept is not None:
        _show_unfinished(kept[1])
        return kept[1]

    # The data source is resolved once per request and handed along to the job and the engine.
    source = training.data_source(config, data)
    job_key = _job_key(config, source)
    job = _training_job(job_key, config, data, source)
    if fresh and job.done and not job.finished:
        # A stopped, diverged or failed run left over in the shared cache: train again.
        _training_job.clear(job_key, None, None, None)
        job = _training_job(job_key, config, data, source)

    if not job.done:
        panel = st.empty()
        with panel.container(border=True):
            status = st.empty()
            bar = st.progress(0.0)
            chart = st.empty()
            st.button("Stop training", key=f"{key}_stop", on_click=job.request_stop,
                      icon=":material/stop_circle:",
                      help="Stops after the current few batches; the model keeps what it learned so far.")
        shown_points, shown_epochs, drawn, last_drawn = -1, -1, 0, 0.0
        shown_text, shown_fraction = None, None
        while not job.wait(0.3):
            progress = job.latest
            text = _describe_progress(progress)
            if text != shown_text:
                status.markdown(text)
                shown_text = text
            if progress is not None and progress.phase != "waiting" and progress.fraction != shown_fraction:
                bar.progress(progress.fraction)
                shown_fraction = progress.fraction
            now = time.monotonic()
            points = len(job.live_points)
            epochs_done = len(progress.history_so_far["loss"]) if progress is not None else 0
            if (points != shown_points or epochs_done != shown_epochs) and now - last_drawn >= 1.0 \
                    and progress is not None and progress.phase == "train":

                figure = live_training_figure(progress.history_so_far, list(job.live_points),
                                              epochs=progress.epochs)
                with chart:
                    plotly_chart(figure, key=f"{key}_live_{drawn}")
                shown_points, shown_epochs, drawn, last_drawn = points, epochs_done, drawn + 1, now
        panel.empty()

    if job.error is not None:
        _training_job.clear(job_key, None, None, None)
        show_job_error(job.error, failed="Training failed unexpectedly")
        return None
    result = job.result
    if result is None:
        return None
    if job.live_points:
        _remember_live_points(config_key, job.live_points)
    if result.stopped_reason != "finished":
        # Not worth sharing: drop it from the shared cache, keep it for this session only.
        _training_job.clear(job_key, None, None, None)
        st.session_state[store] = (config_key, result)
        _show_unfinished(result)
    return result


# --------------------------------------------------------------------------------------------
# Replay training: a finished run's live curves re-drawn at a chosen speed
# --------------------------------------------------------------------------------------------

_LIVE_POINTS_KEY = "_replay_live_points"
# Enough for every run of the multi-run pages (six comparison models, a few variants or transfer runs).
_LIVE_POINTS_KEPT = 16


def _remember_live_points(config_key: str, points) -> None:
    """Keep a run's within-epoch points (this session, the last few runs) for its replay."""
    kept = st.session_state.setdefault(_LIVE_POINTS_KEY, {})
    kept.pop(config_key, None)
    kept[config_key] = tuple(points)
    while len(kept) > _LIVE_POINTS_KEPT:
        kept.pop(next(iter(kept)))


def replay_training(result, *, key: str) -> None:
    """The run's loss/accuracy curves, with "Replay training": the same live figure grows again.

    The replay follows the recorded clock (1x = as fast as it trained, from the per-epoch seconds),
    faster, or instantly; within-epoch points are replayed when this session saw the run train.
    Widgets: `key + "_speed"` (select slider) and `key + "_button"`. Any other click ends a replay
    early (Streamlit reruns the page), and Train still starts a real live run.
    The chart is the page's key figure (see `key_figure`); `replay_runs` draws in place instead.
    """

    history, points, epochs = _replay_parts(result)
    speed, clicked = _replay_controls(key, replay.recorded_seconds(history))
    with key_figure():
        chart = st.empty()
    _replay_one(history, points, epochs, key=key, chart=chart, speed=speed, clicked=clicked,
                chart_key=f"{key}_chart")


def replay_runs(runs, *, key: str, together=None, together_label: str = "All runs together",
                chart_key: str | None = None) -> None:
    """Replay the curves of one of several finished runs, or of all of them together, at a chosen speed.

    `runs` maps a label to a TrainResult (its within-epoch points replay too when this session saw
    it train) or to a bare per-epoch history (all a run loaded from the disk cache keeps). With
    several runs a select box (`key + "_run"`) chooses what to replay; when `together(histories)`
    (label -> history, returns a Plotly figure) is given, its first choice is `together_label`:
    every run starts at 0 on its own recorded clock, so the one that trained faster finishes first.
    Widgets as in `replay_training` (`key + "_speed"`, `key + "_button"`); the chart is drawn here
    (not in the key-figure slot), with `chart_key` (default `key + "_chart"`) when not replaying.
    """

    if not runs:
        return
    parts = {label: _replay_parts(run) for label, run in runs.items()}
    options = ([together_label] if together is not None and len(parts) > 1 else []) + list(parts)
    choice = options[0]
    if len(options) > 1:
        if st.session_state.get(f"{key}_run") not in options:
            st.session_state.pop(f"{key}_run", None)  # The runs changed (e.g. other settings).
        choice = st.selectbox("Replay", options, key=f"{key}_run",
                              help="One run's live curves, or every run at once: they all start together "
                                   "and each grows as fast as it trained.")
    chart_key = chart_key or f"{key}_chart"
    if choice == together_label and choice not in parts:
        histories = {label: history for label, (history, _, _) in parts.items()}
        seconds = max(replay.recorded_seconds(history) for history in histories.values())
        speed, clicked = _replay_controls(key, seconds)
        chart = st.empty()
        _replay_together(histories, max(epochs for _, _, epochs in parts.values()), together, key=key,
                         chart=chart, speed=speed, clicked=clicked, chart_key=chart_key)
        return
    history, points, epochs = parts[choice]
    speed, clicked = _replay_controls(key, replay.recorded_seconds(history))
    chart = st.empty()
    _replay_one(history, points, epochs, key=key, chart=chart, speed=speed, clicked=clicked, chart_key=chart_key)


def _replay_parts(run) -> tuple[dict, tuple, int]:
    """(per-epoch history, within-epoch points seen by this session, planned epochs) of a run."""
    from collections.abc import Mapping

    if isinstance(run, Mapping):
        return dict(run), (), len(run.get("loss", ()))
    points = st.session_state.get(_LIVE_POINTS_KEY, {}).get(run.config.key(), ())
    return run.history, points, run.config.epochs


def _replay_controls(key: str, seconds: float) -> tuple[str, bool]:
    """The speed slider and the Replay button; returns (speed, clicked)."""

    left, right = st.columns([3, 1], vertical_alignment="bottom")
    speed = left.select_slider(
        "Replay speed", options=list(replay.SPEEDS), value=replay.DEFAULT_SPEED, key=f"{key}_speed",
        help=f"1x replays the curves as fast as they grew while training ({seconds:.1f} s); "
             "0.25x is four times slower; instant shows the end at once.")
    clicked = right.button("Replay training", key=f"{key}_button", icon=":material/replay:",
                           help="Watch the curves grow again, without training.")
    return speed, clicked


def _play(frames, draw, *, key: str, chart) -> None:
    """Draw `draw(frame)` for each frame in `chart`, each at its `at_seconds` after the start."""
    start = time.monotonic()
    for number, frame in enumerate(frames):
        delay = frame.at_seconds - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
        with chart:
            plotly_chart(draw(frame), key=f"{key}_frame_{number}")


def _replay_one(history, points, epochs: int, *, key: str, chart, speed: str, clicked: bool,
                chart_key: str) -> None:

    if not clicked:
        with chart:
            plotly_chart(live_training_figure(history, points, epochs=epochs), key=chart_key)
        return
    # The loss axis is fixed to the whole run's range, so the curves grow without the axis jumping.
    loss_top = replay.loss_axis_top(history, points)

    def draw(frame):
        figure = live_training_figure(frame.history, frame.live_points, epochs=epochs)
        figure.update_yaxes(range=[0, loss_top], row=1, col=1)
        return figure

    _play(replay.replay_frames(history, points, speed=speed), draw, key=key, chart=chart)


def _replay_together(histories: dict, epochs: int, together, *, key: str, chart, speed: str, clicked: bool,
                     chart_key: str) -> None:

    def draw(run_histories):
        figure = together(run_histories)
        # Every epoch axis spans the whole run from the first frame on (the page fixes its y axes).
        figure.update_xaxes(range=[0.5, max(1, epochs) + 0.5])
        return figure

    if not clicked:
        with chart:
            plotly_chart(draw(histories), key=chart_key)
        return
    frames = replay.replay_frames_together(histories, speed=speed)
    _play(frames, lambda frame: draw(frame.histories), key=key, chart=chart)


# --------------------------------------------------------------------------------------------
# Layer stacks (shared by the calculator and the training page's custom stacks)
# --------------------------------------------------------------------------------------------

# One column per Keras argument, as the layer registry lists them (cnnviz.architecture.layers).
STACK_COLUMNS = ("type",) + tuple(argument.name for argument in EDITOR_ARGUMENTS)
_PAIR_COLUMNS = tuple(argument.name for argument in EDITOR_ARGUMENTS if argument.kind == "pair")


def _stack_table(layers):
    """A stack as a table: one row per layer, one column per Keras argument (blank = not used)."""
    import pandas as pd

    rows = []
    for layer in layers:
        row = {column: None for column in STACK_COLUMNS}
        # Show the Keras defaults that a blank cell would otherwise hide.
        defaults = LAYERS[layer["type"]].arguments if layer.get("type") in LAYER_TYPES else {}
        for argument in EDITOR_ARGUMENTS:
            if argument.show_default and argument.name in defaults:
                row[argument.name] = defaults[argument.name]
        for key, value in dict(layer).items():
            if key not in row:
                continue
            if key in _PAIR_COLUMNS and value is not None:
                value = "x".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
            row[key] = value
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(STACK_COLUMNS))
    for argument in EDITOR_ARGUMENTS:
        column = argument.name
        if argument.kind == "count":
            table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
        elif argument.kind == "fraction":
            table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
        elif argument.kind == "flag":
            table[column] = table[column].astype("boolean")
    for column in ("type",) + tuple(argument.name for argument in EDITOR_ARGUMENTS
                                    if argument.kind in ("pair", "padding", "activation")):
        # Blank text cells read better than "None".
        table[column] = table[column].astype("object").where(table[column].notna(), "")
    # Number layers from 1, as the results tables and error messages do.
    table.index = pd.RangeIndex(1, len(table) + 1)
    return table


def _table_stack(table):
    """Rows of an edited table back to layer dicts; cells a layer type does not use are ignored."""
    import pandas as pd


    kinds = {argument.name: argument.kind for argument in EDITOR_ARGUMENTS}
    layers = []
    for record in table.to_dict("records"):
        layer_type = record.get("type")
        if layer_type is None or (isinstance(layer_type, float) and pd.isna(layer_type)) or not str(layer_type).strip():
            continue  # A freshly added row without a type yet.
        layer = {"type": str(layer_type).strip()}
        for key in (LAYERS[layer["type"]].arguments if layer["type"] in LAYER_TYPES else {}):
            value = record.get(key)
            if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
                continue
            if isinstance(value, str) and not value.strip():
                continue
            if kinds.get(key) == "count":
                value = int(value)
            elif kinds.get(key) == "fraction":
                value = float(value)
            elif kinds.get(key) == "flag":
                value = bool(value)
            layer[key] = value
        layers.append(layer)
    return layers


def _argument_column(argument):
    """The table column for one Keras argument (a `cnnviz.architecture.Argument`)."""
    if argument.kind == "count":
        return st.column_config.NumberColumn(argument.name, min_value=1, step=1, format="%d", help=argument.help)
    if argument.kind == "fraction":
        return st.column_config.NumberColumn(argument.name, min_value=0.0, max_value=0.99, step=0.05,
                                             help=argument.help)
    if argument.kind == "flag":
        return st.column_config.CheckboxColumn(argument.name, help=argument.help)
    if argument.options:
        return st.column_config.SelectboxColumn(argument.name, options=list(argument.options), help=argument.help)
    return st.column_config.TextColumn(argument.name, help=argument.help)


def layer_stack_editor(key: str, layers, input_shape=None) -> list[dict]:
    """Edit a layer stack as a table (rows can be added and removed); returns the edited stack.

    `layers` is the stack to start from. Edits are kept while `layers` stays the same; when the
    caller passes a different stack (a preset was loaded, or the caller feeds the edited stack
    back), the table starts afresh from it. The returned dicts are not validated: pass them to
    `architecture.summarize` and show any `ArchitectureError` with `show_architecture_error`.
    `input_shape` (height, width, channels), when given, is shown above the table.
    """
    import json


    fingerprint = json.dumps([dict(layer) for layer in layers], sort_keys=True, default=str)
    base_key, version_key = f"_{key}_base", f"_{key}_version"
    if st.session_state.get(base_key) != fingerprint:
        st.session_state[base_key] = fingerprint
        st.session_state[version_key] = st.session_state.get(version_key, -1) + 1
    editor_key = f"{key}_v{st.session_state[version_key]}"
    if input_shape is not None:
        st.caption(f"Input: {' × '.join(str(size) for size in input_shape)} (height × width × channels). "
                   "Each row is one layer, first to last; cells a layer type does not use are ignored.")
    edited = st.data_editor(
        _stack_table(layers),
        key=editor_key,
        num_rows="dynamic",
        width="stretch",
        hide_index=False,
        column_config={
            "type": st.column_config.SelectboxColumn("type", options=list(LAYER_TYPES), required=True,
                                                     help="The kind of layer."),
            **{argument.name: _argument_column(argument) for argument in EDITOR_ARGUMENTS},
        },
    )
    return _table_stack(edited)


def show_architecture_error(error) -> None:
    """An impossible stack explained in the page (never a traceback)."""
    st.error(str(error), icon=":material/error:")


def lesson_link(lesson) -> None:
    """A link to a lesson page (a `cnnviz.lessons.Lesson`).

    Inside the app's navigation it is a `st.page_link`; when a page script runs on its own
    (AppTest, or `streamlit run app_pages/home.py`) there is no navigation to link into, so it
    falls back to a plain link to the page's URL path.
    """
    try:
        st.page_link(lesson.file, label=f"Open {lesson.title}", icon=lesson.icon)
    except StreamlitAPIException:
        st.markdown(f"[Open {lesson.title}](./{lesson.url_path})")
