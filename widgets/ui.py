"""The one module of shared Streamlit widgets for cnnviz pages.

Pages import it as `from widgets import ui`. The core (`cnnviz/`) never imports Streamlit;
this module is the bridge: widgets in, a core call, figures out. It must not import
TensorFlow at module level (the home page, convolution lab and calculator never load it).
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np
import streamlit as st
import streamlit.components.v2
from streamlit import runtime
from streamlit.errors import StreamlitAPIException
from streamlit.runtime.scriptrunner import get_script_run_ctx, script_runner

from cnnviz import data, settings, training
from cnnviz.architecture import EDITOR_ARGUMENTS, LAYER_TYPES, LAYERS
from cnnviz.classroom import ClassroomStore, open_store
from cnnviz.classroom.trainers import EntryTrainer, open_trainer
from cnnviz.data import example, folders
from cnnviz.errors import CnnvizError, TrainingStopped
from cnnviz.figures.style import PRESENTER_CSS, style_figure
from cnnviz.figures.training_curves import live_training_figure
from cnnviz.shareable import Param, read_params, write_params
from cnnviz.training import replay

# --------------------------------------------------------------------------------------------
# Keras' global state survives a rerun
# --------------------------------------------------------------------------------------------


def keep_keras_state_between_reruns() -> None:
    """Turn off Streamlit's `keras.backend.clear_session()` after every script run.

    Once Keras is imported, Streamlit's script runner calls it at the end of every rerun of every
    session (`script_runner._clean_problem_modules`). That resets Keras' global state for all
    threads, so a training building its model in a background job at that moment loses its layer
    names' counters, clears TensorFlow's kernel cache (the next steps compile their kernels again)
    and runs a full `gc.collect()`: 0.7-1.3 s per rerun measured on a loaded 2-core machine. cnnviz
    keeps no model in Keras' global state (every model is built by `build_keras_model` and held by
    its cache), so nothing needs clearing. Matplotlib, the other module it cleans, is not used.
    Called when this module is imported, so every page (and its AppTest) runs this way.
    """
    script_runner._clean_problem_modules = _no_cleaning  # type: ignore[attr-defined]


def _no_cleaning() -> None:
    """What runs instead of Streamlit's end-of-rerun Keras clean-up: nothing."""


keep_keras_state_between_reruns()

# --------------------------------------------------------------------------------------------
# Text a student typed or a link carried: shown as text, never as markdown or HTML
# --------------------------------------------------------------------------------------------

_log = logging.getLogger("cnnviz")
if not _log.handlers:
    # The server's log (stderr) gets cnnviz's own lines: error ids, jobs started and stopped.
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)

# Markdown's inline syntax (links, images, emphasis, code, HTML, tables, maths, Streamlit's
# :color[...] directives, entities) and GFM's autolinks; every one is backslash-escaped, which
# CommonMark defines for any ASCII punctuation, so the text reads the same but is never markup.
_MARKDOWN_CHARACTERS = re.compile(r"([\\`*_\[\]<>#~$|&@])")
# The browser's renderer (remark-gfm) finds autolinks, http://… www.… and a@b.c, in the text AFTER
# the escapes are undone, so a backslash does not stop them: an invisible WORD JOINER (U+2060)
# inside "://", "www." and before "@" does, and the text still reads the same.
WORD_JOINER = "\u2060"
_AUTOLINKS = re.compile(r"(?i)(:)(//)|(www)(\.)|(\\@)")
_LINE_INDENT = re.compile(r"(?m)^[ \t]+")
_LINE_STARTS = re.compile(r"(?m)^(?:([-+=])|(\d+)([.)]))")


def _escape_autolink(match: re.Match) -> str:
    if match.group(1):
        return f"\\:{WORD_JOINER}{match.group(2)}"
    if match.group(3):
        return f"{match.group(3)}{WORD_JOINER}\\."
    return f"{WORD_JOINER}\\@"


def _escape_line_start(match: re.Match) -> str:
    return f"\\{match.group(1)}" if match.group(1) else f"{match.group(2)}\\{match.group(3)}"


def markdown_text(text: object) -> str:
    """`text` escaped so that Streamlit's markdown (st.error, st.caption, ...) shows it literally.

    A `[link](http://evil)`, `![image](http://x)`, `<b>html</b>`, `http://site` or `www.site`
    in a student's input or a link parameter stays text: no link, no image, no request.
    """
    escaped = _AUTOLINKS.sub(_escape_autolink, _MARKDOWN_CHARACTERS.sub(r"\\\1", str(text)))
    # Lists, headings and indented code start a line: no layout from the input either.
    return _LINE_STARTS.sub(_escape_line_start, _LINE_INDENT.sub("", escaped))


def show_message(kind: str, text: object, *, icon: str | None = None, prefix: str = "") -> None:
    """`st.error` / `st.warning` / `st.info` / `st.success` with `text` shown literally (escaped).

    `prefix` is the page's own sentence (markdown allowed); `text` is anything that may hold a
    student's or a link's value, e.g. a `CnnvizError` message.
    """
    show = {"error": st.error, "warning": st.warning, "info": st.info, "success": st.success}[kind]
    show(prefix + markdown_text(text), icon=icon)


def show_error(error: BaseException, *, prefix: str = "", icon: str | None = ":material/error:",
               kind: str = "error") -> None:
    """A domain error (`CnnvizError`) in the page: its student-facing message, as text."""
    show_message(kind, error, icon=icon, prefix=prefix)


def show_unexpected_error(error: BaseException, *, what: str = "Something went wrong on this page") -> str:
    """What a page shows for an error nobody expected: a short apology and an id, never a traceback.

    The traceback goes to the server's log under the same id (so a teacher can find it);
    returns the id. `what` is the page's own words for what failed.
    """
    error_id = uuid.uuid4().hex[:8]
    _log.error("Unexpected error %s (%s)", error_id, what, exc_info=error)
    st.error(f"Sorry: {what} (error id {error_id}). Try again, or change a setting; if it keeps "
             "happening, tell your teacher this id.", icon=":material/sentiment_sad:")
    return error_id


@contextmanager
def page_errors():
    """The one catch-all around a page run (app.py): domain errors as their message, anything else
    as `show_unexpected_error`. Streamlit's own control flow (st.rerun, st.stop) passes through:
    it derives from BaseException, not Exception."""
    try:
        yield
    except CnnvizError as error:
        show_error(error)
    except Exception as error:  # noqa: BLE001 - the last line of defence: no traceback on any page.
        show_unexpected_error(error)


def page_header(title: str, teaches: str) -> None:
    """Title and a one-line statement of what the page teaches.

    In presenter mode it also reserves the slot under the title where `key_figure()` puts the
    page's key figure, so that it is on the projector without scrolling.
    """
    st.title(title)
    st.caption(teaches)
    st.session_state[_KEY_FIGURE_SLOT] = st.container(key="key_figure") if presenter_mode() else None


_KEY_FIGURE_SLOT = "_key_figure_slot"
SECONDARY_KEY_PREFIX = "secondary_"  # Containers of `secondary()`: class st-key-secondary_<name>.


@contextmanager
def key_figure():
    """Where a page draws its key figure: in presenter mode, the slot just under the title (filled
    later in the script, shown first); otherwise right here, in the page's normal reading order."""
    slot = st.session_state.get(_KEY_FIGURE_SLOT) if presenter_mode() else None
    with slot if slot is not None else st.container():
        yield


@contextmanager
def secondary(name: str):
    """Text a student reads at a desk but a projector does not need (how to read a figure, caveats):
    drawn in a container that presenter mode hides (the `st-key-secondary_` rule of `PRESENTER_CSS`)."""
    with st.container(key=f"{SECONDARY_KEY_PREFIX}{name}"):
        yield


# The picker's choice for a student's own images (a zip of class folders), beside the dataset names.
CLASS_FOLDERS = "class_folders"
CLASS_FOLDERS_TITLE = "Your own images (zip of class folders)"
FOLDER_IMAGE_SIZES = (28, 96)  # The image sizes offered for class-folder datasets, in pixels.
FOLDER_UPLOAD_MB = folders.MAX_ZIP_BYTES // 2**20  # This uploader's own limit (the server's maxUploadSize).
# A small class-folder dataset trains on these instead of the page defaults (128 images per batch
# would give a few hundred images only two or three weight updates per epoch).
SMALL_DATA_IMAGES = 2_000
SMALL_DATA_HYPERPARAMETERS = {"batch_size": 32, "epochs": 10}


def dataset_title(name: str) -> str:
    """A dataset's title in menus, including the picker's "your own images" choice."""
    return CLASS_FOLDERS_TITLE if name == CLASS_FOLDERS else data.spec(name).title


def dataset_selectbox(key: str, *, label: str = "Dataset", default: str = "fashion_mnist",
                      options: tuple[str, ...] = data.DATASETS, class_folders: bool = False) -> str:
    """Choose one of the datasets that can be loaded here; returns its name (e.g. "fashion_mnist").

    A dataset that no source has (offline, no copy in CNNVIZ_DATA_DIR: `data.source_status`) is
    not offered: a caption under the picker names it with the reason, so nothing fails after the
    choice. A link's choice of such a dataset falls back to the default, with a warning. With
    `class_folders`, the last choice is `CLASS_FOLDERS`, the student's own images (then read them
    with `class_folder_dataset_or_stop`).
    """
    statuses = {name: data.source_status(name) for name in options}
    offered = tuple(name for name in options if statuses[name].source is not None) or options
    missing = [name for name in options if name not in offered]
    if class_folders:
        offered += (CLASS_FOLDERS,)
    asked = st.session_state.get(key)
    if asked is not None and asked not in offered:
        del st.session_state[key]
        if asked in missing:
            show_message("warning", statuses[asked].note, icon=":material/cloud_off:",
                         prefix=f"The link chose **{markdown_text(data.spec(asked).title)}**, which cannot be "
                                "loaded on this server, so another dataset is shown. ")
    name = st.selectbox(label, offered, index=offered.index(default) if default in offered else 0,
                        format_func=dataset_title, key=key)
    if missing:
        titles = " and ".join(data.spec(choice).title for choice in missing)
        st.caption(f":material/cloud_off: **Not offered on this server:** {markdown_text(titles)}. "
                   + " ".join(markdown_text(statuses[choice].note) for choice in missing))
    return name


@st.cache_data(show_spinner=False)
def _example_zip() -> bytes:
    return example.example_zip_bytes()


def class_folder_dataset_or_stop(key: str, *, seed: int = 0) -> data.Dataset:
    """`class_folder_dataset`, and the script stops (after its message) while there is none."""
    dataset = class_folder_dataset(key, seed=seed)
    if dataset is None:
        st.stop()
    return dataset


def class_folder_dataset(key: str, *, seed: int = 0, min_size: int | None = None) -> data.Dataset | None:
    """A student's own dataset: a zip of class folders (uploaded, or the bundled example), read with
    the chosen image size, colour and validation split (`data.load_image_folder`); its report is
    shown. None (the page says why) until there is a zip, or when it cannot be used. `min_size`
    (pixels) raises the smallest image size offered, for a network that needs larger images.

    The dataset is kept in this session per upload and options; its arrays are the disk cache's
    memory-mapped copy, and its name comes from the content, so a re-upload trains nothing again.
    """
    st.markdown("Upload a **.zip with one folder per class** (e.g. `cats/`, `dogs/`), each holding .png, "
                ".jpg, .webp or .bmp pictures, optionally inside `train/` and `test/` folders (the layout "
                "of Keras' `image_dataset_from_directory`).")
    upload = st.file_uploader(f"Zip of class folders (up to {FOLDER_UPLOAD_MB} MB)", type=["zip"],
                              key=f"{key}_upload", max_upload_size=FOLDER_UPLOAD_MB)
    left, right = st.columns(2)
    if left.button("Use the example (drawn shapes)", key=f"{key}_use_example", icon=":material/category:"):
        st.session_state[f"{key}_example"] = True
    right.download_button("Download the example (.zip)", data=_example_zip(), file_name=example.EXAMPLE_ZIP.name,
                          mime="application/zip", icon=":material/download:", key=f"{key}_download_example",
                          on_click="ignore", help=example.LICENCE)
    held = st.session_state.get(f"{key}_loaded")
    if held is not None:  # Back from another page (widget state was dropped): the options last read.
        for option, value in zip(("size", "colour", "split"), held[0][-4:-1]):
            st.session_state.setdefault(f"{key}_{option}", value)
    smallest = max(FOLDER_IMAGE_SIZES[0], min_size or 0)
    if st.session_state.get(f"{key}_size", smallest) < smallest:
        st.session_state[f"{key}_size"] = smallest  # Read before at a size this caller cannot use.
    size_column, colour_column, split_column = st.columns(3)
    image_size = int(size_column.slider("Image size (pixels)", smallest, FOLDER_IMAGE_SIZES[1],
                                        value=max(32, smallest), step=4,
                                        key=f"{key}_size",
                                        help="Every picture is resized to this square: larger keeps more "
                                             "detail and trains more slowly."))
    colour = colour_column.radio("Colours", ["rgb", "grayscale"], key=f"{key}_colour", horizontal=True,
                                 format_func={"rgb": "colour", "grayscale": "grey-scale"}.get)
    split = int(split_column.slider("Test images (%)", 10, 50, value=20, step=5, key=f"{key}_split",
                                    help="Held out from every class (stratified, seeded) when the zip has no "
                                         "train/ and test/ folders."))
    source: Any
    token: tuple[Any, ...]
    on_server = folders.server_folders()
    folder = None
    if on_server:
        choice = st.selectbox("…or a folder of class folders on this server (CNNVIZ_DATA_DIR)",
                              ["none"] + [path.name for path in on_server], key=f"{key}_server_folder")
        folder = next((path for path in on_server if path.name == choice), None)
    if upload is not None:
        source, token, label = upload, ("upload", upload.file_id), upload.name
    elif folder is not None:
        source, token, label = folder, ("folder", str(folder)), folder.name
    elif st.session_state.get(f"{key}_example"):
        source, token, label = io.BytesIO(_example_zip()), ("example",), example.EXAMPLE_ZIP.name
        source.name = label  # Named in the report, like an upload.
    elif held is not None and held[0][-4:] == (image_size, colour, split, seed):
        source, token, label = None, held[0][:-4], held[1].report.what  # The zip read earlier in this session.
    else:
        st.info("Upload a zip of class folders, or press **Use the example** to try the bundled drawn shapes."
                + (" (Upload the zip again to read it with these settings.)" if held is not None else ""),
                icon=":material/upload:")
        return None
    token = (*token, image_size, colour, split, seed)
    if held is not None and held[0] == token:
        dataset = held[1]
    else:
        try:
            with st.spinner(f"Reading {markdown_text(label)}…"):
                if hasattr(source, "seek"):
                    source.seek(0)  # An earlier run may have read it.
                dataset = data.load_image_folder(source, image_size=image_size, color_mode=colour,
                                                 validation_fraction=split / 100, seed=seed)
        except CnnvizError as error:
            show_error(error, icon=":material/folder_off:")
            return None
        st.session_state[f"{key}_loaded"] = (token, dataset)
    show_folder_report(dataset)
    show_dataset_source(dataset)
    return dataset


def session_class_folder_dataset(key: str = "train_folders") -> data.Dataset | None:
    """The class-folder dataset this session last read with `class_folder_dataset_or_stop(key)`
    (the train page's is "train_folders"), or None; other pages offer its image shape."""
    held = st.session_state.get(f"{key}_loaded")
    return None if held is None else held[1]


def show_folder_report(dataset: data.Dataset) -> None:
    """What `data.load_image_folder` read: images per class, the split, skipped files and why, warnings."""
    report = dataset.report
    if report is None:
        return
    st.dataframe([{"class": name, "training images": train, "test images": test}
                  for name, train, test in zip(report.class_names, report.train_counts, report.test_counts)],
                 hide_index=True)
    st.caption(f"{len(report.class_names)} classes, {report.images:,} images; test images: "
               f"{markdown_text(report.split)}.")
    for warning in report.warnings:
        show_message("warning", warning, icon=":material/balance:")
    if report.skipped_count:
        with st.expander(f"{report.skipped_count:,} file(s) skipped"):
            st.dataframe([{"file": name, "why": why} for name, why in report.skipped], hide_index=True)
            if report.skipped_count > len(report.skipped):
                st.caption(f"…and {report.skipped_count - len(report.skipped):,} more.")


def small_data_defaults(dataset: data.Dataset, hyperparameters: Mapping[str, Any], keys: Mapping[str, str]) -> None:
    """For a small class-folder dataset, once per dataset: the training widgets (`keys`: setting ->
    widget key) still at the page's defaults (`hyperparameters`) move to `SMALL_DATA_HYPERPARAMETERS`,
    and a caption says so. Call before those widgets are drawn."""
    if dataset.report is None or len(dataset.x_train) > SMALL_DATA_IMAGES:
        return
    if st.session_state.get("_small_data_defaults") == dataset.name:
        return
    st.session_state["_small_data_defaults"] = dataset.name
    changed = []
    for setting, value in SMALL_DATA_HYPERPARAMETERS.items():
        key = keys[setting]
        if st.session_state.get(key, hyperparameters[setting]) == hyperparameters[setting]:
            st.session_state[key] = value
            changed.append(f"{setting.replace('_', ' ')} {value}")
    if changed:
        st.caption(f":material/tune: A small dataset ({len(dataset.x_train):,} training images): "
                   f"{' and '.join(changed)} are set below, so that every epoch makes enough weight updates.")


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
        show_error(error, icon=":material/cloud_off:")
        st.stop()
    show_dataset_source(dataset)
    return dataset


def show_dataset_source(dataset: data.Dataset) -> None:
    """A one-line caption naming the source of the data in use and why it was chosen."""
    label = markdown_text(data.spec(dataset.name).title)
    st.caption(f":material/database: **{label}** from **{dataset.source}** — {markdown_text(dataset.note)} "
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


# A map chart: a figure of heatmaps and RGB images (from `cnnviz.figures`) drawn on a canvas in
# the browser by widgets/map_chart.js (a Streamlit v2 component, in the page's own DOM: no
# iframe). The convolution lab redraws its maps on every slider move: the browser drew the
# step-through's three maps in 63 ms after their data arrived, against 221 ms as Plotly charts
# (bench/interaction.py, one idle run, Streamlit's own rendering included).
MAP_CHART_CSS = """
.cnnviz-map { position: relative; width: 100%; }
.cnnviz-map canvas { display: block; }
.cnnviz-map-tip { display: none; position: absolute; pointer-events: none; z-index: 5; padding: 4px 8px;
  border-radius: 4px; background: rgba(38, 39, 48, 0.92); color: #fff; font-size: 14px; white-space: nowrap; }
"""

MAP_CHART_JS = Path(__file__).parent / "map_chart.js"
_map_chart_component = st.components.v2.component(
    "cnnviz_map_chart", js=MAP_CHART_JS.read_text(encoding="utf-8"), css=MAP_CHART_CSS, isolate_styles=False)


def map_chart_data(figure) -> dict:
    """What map_chart.js draws: the figure's dictionary without Plotly's theme (nothing the canvas
    draws uses it); only heatmap and image traces."""
    spec = figure.to_dict()
    spec["layout"].pop("template", None)
    unsupported = {trace.get("type") for trace in spec["data"]} - {"heatmap", "image"}
    if unsupported:
        raise ValueError(f"map_chart draws heatmap and image traces only, not {sorted(unsupported)}")
    json.dumps(spec)  # Raises here if anything is not JSON (Streamlit would send its str() instead).
    return spec


def map_chart(figure, *, key: str) -> None:
    """Draw a figure of heatmap or RGB image traces (cell values, outlines, titles, colour bar and
    hover as in `plotly_chart`) on a canvas: fast to redraw. Presenter-mode styling applies too.
    The chart sits in a container keyed `key` (`.st-key-<key>` in the page)."""
    style_figure(figure, presenter=presenter_mode())
    spec = map_chart_data(figure)
    with st.container(key=key):
        _map_chart_component(key=f"{key}_canvas", data=spec, height=int(spec["layout"].get("height") or 340))


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
        # The page's own parameter names are named (as code: literal text); a name the page does not
        # know is only counted, never echoed: a link cannot put its words on the page.
        known = {param.key for param in params}
        named = [f"`{name}`" for name in sorted(set(rejected) & known)]
        unknown = len(set(rejected) - known)
        if unknown:
            named.append(f"{unknown} unknown parameter{'s' if unknown > 1 else ''}")
        st.caption(f":material/link_off: Ignored link parameters that this page does not understand: "
                   f"{', '.join(named)}.")


def mirror_view(params: list[Param]) -> dict[str, str]:
    """Mirror the page's controls into the URL (no element drawn: a fragment rerun may call it); the query."""
    query = write_params(params, st.session_state)
    # A plain (non-widget) copy survives a switch to another page and back (see restore_view).
    st.session_state[_saved_view_key(params)] = {
        param.key: st.session_state[param.key] for param in params if param.key in st.session_state}
    if presenter_mode():
        query["presenter"] = "1"
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    return query


def publish_view(params: list[Param]) -> None:
    """Mirror the page's controls into the URL and offer a link to this exact view."""
    query = mirror_view(params)
    base = (st.context.url or "").split("?")[0]
    link = f"{base}?{urlencode(query)}" if query else base
    with st.popover("Copy link to this view", icon=":material/link:"):
        st.caption("Opens this page with every control as it is now.")
        st.code(link, language=None, wrap_lines=True)


# --------------------------------------------------------------------------------------------
# Training with live progress (shared by the train, comparison, transfer and augmentation pages)
# --------------------------------------------------------------------------------------------

def _session_alive(session: str) -> bool:
    """The Streamlit runtime's word on whether a browser session is connected (always True
    outside a real server, e.g. under AppTest, where there is no runtime to ask)."""
    return not runtime.exists() or runtime.get_instance().is_active_session(session)


@st.cache_resource(show_spinner=False)
def job_registry() -> training.JobRegistry:
    """The server's one `training.JobRegistry`: every page's background jobs, shared by every
    session. A job belongs to the sessions that asked for it and stops once all of them have
    closed (`training.jobs.ORPHAN_GRACE_SECONDS` after); `job_registry.clear()` starts empty (tests)."""
    return training.JobRegistry(is_alive=_session_alive)


def _session_id() -> str:
    """This browser session's id. Without a server (AppTest, whose sessions all share one id),
    each AppTest's own session state tells its sessions apart."""
    context = get_script_run_ctx()
    if context is None:
        return "no-session"
    if runtime.exists():
        return context.session_id
    return f"{context.session_id}-{id(getattr(context.session_state, '_state', context.session_state))}"


def shared_job(job_key: str, start: Callable[[], training.Job], *, slot: str) -> training.Job:
    """The server-wide job of `job_key`, held by this session's `slot` (one place on a page that
    trains); `start()` makes and starts it when there is none. Raises `JobLimitError` (a
    `CnnvizError`) when this session already has its most running or waiting jobs."""
    return job_registry().attach(job_key, start, session=_session_id(), slot=slot)


def _training_job(job_key: str, config: training.TrainConfig, data: object = None, source: str | None = None, *,
                  slot: str) -> training.Job[training.Progress, training.TrainResult]:
    """The shared background job for one configuration on one data source (started on a miss, kept
    when finished; the data is not compared: `job_key` names it)."""
    return shared_job(job_key, lambda: training.training_job(config, data=data, use_cache=True, source=source).start(),
                      slot=slot)


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
        show_message("info", stopped or str(error), icon=":material/stop_circle:")
    elif isinstance(error, CnnvizError):
        show_error(error)
    else:  # Not a student's mistake: an apology and an id (the traceback is in the server's log).
        show_unexpected_error(error, what=failed)


def train_with_progress(config: training.TrainConfig, *, key: str, fresh: bool = False,
                        data: object = None) -> training.TrainResult | None:
    """Train `config` (or reuse a result), showing live progress; returns a TrainResult or None.

    `data` is the dataset the page already loaded for `config` (then nothing loads it again and
    its `source` identifies the run); without it the engine loads the data itself.

    - A finished result for this config (trained by anyone on this server, or found in the disk
      cache) comes back at once. Identical requests share one job (`job_registry`), which this
      session holds under `key` until it asks for another config there; a job nobody holds
      any more, or whose sessions all closed, stops within seconds.
    - Otherwise training runs in a background thread while this call shows a progress bar,
      epoch/batch, images per second, live loss/accuracy curves and a Stop button
      (`key + "_stop"`), and returns when it ends. Reruns (a Stop click, any widget) re-attach to
      the same running job instead of starting again.
    - A stopped or diverged run is NOT cached for others: this session keeps it (and gets it back
      on reruns, with a message) until `fresh=True` (pass the Train button's value) trains anew.
    - Bad settings (a `CnnvizError`, e.g. a batch larger than the training set, or one training
      too many for this session) show its message with `st.error` and return None; a stop while
      waiting for a slot shows `st.info`.

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
    registry = job_registry()
    try:
        job = _training_job(job_key, config, data, source, slot=key)
        if fresh and job.done and not job.finished:
            # A stopped, diverged or failed run left over in the shared cache: train again.
            registry.forget(job_key)
            job = _training_job(job_key, config, data, source, slot=key)
    except CnnvizError as error:
        show_error(error)
        return None

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
        registry.forget(job_key)
        show_job_error(job.error, failed="Training failed unexpectedly")
        return None
    result = job.result
    if result is None:
        return None
    if job.live_points:
        _remember_live_points(config_key, job.live_points)
    if result.stopped_reason != "finished":
        # Not worth sharing: drop it from the shared jobs, keep it for this session only.
        registry.forget(job_key)
        st.session_state[store] = (config_key, result)
        _show_unfinished(result)
    return result


# --------------------------------------------------------------------------------------------
# Several variants x several seeds with live progress and Stop (the comparison, augmentation and
# transfer pages)
# --------------------------------------------------------------------------------------------

# `report(variant key, progress)` -> False stops the work: what `train_seeds_with_progress` hands its `work`
# (the shape of `lenet_vs_relu.run_comparison`'s `on_progress`).
VariantReport = Callable[[str, training.Progress], object]


@dataclass(frozen=True)
class SeedsProgress:
    """What the reports of a several-seeds run said so far (a snapshot, replaced on every report).

    `order`: the variants that reported, in order (the last one trains now); `done`: per variant,
    the indices (into its seeds) of the seeds known finished; `training`: the indices of the last
    variant's seeds training now (one, or a group trained together); `seeds`: how many seeds that
    variant has; `latest`: its last `Progress`.
    """

    order: tuple[str, ...] = ()
    done: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    training: tuple[int, ...] = ()
    seeds: int = 0
    latest: training.Progress | None = None


def _seeds_progress(state: SeedsProgress, key: str, progress: training.Progress) -> SeedsProgress:
    """The snapshot after one more report (`metrics["seed_index"]`, `["seeds"]`, `["seeds_together"]`
    of `training.train_seeds`). Work moves on only from what finished: a variant whose reports stop
    because the next one reports finished every seed; a seed trained alone finished when the next
    seed of its variant reports."""
    done = dict(state.done)
    order, training_now, count = state.order, state.training, state.seeds
    if not order or order[-1] != key:
        if order:
            done[order[-1]] = tuple(range(max(count, 1)))
        order, training_now = order + (key,), ()
    count = int(progress.metrics.get("seeds", 1))
    index = int(progress.metrics.get("seed_index", 0))
    finished = set(done.get(key, ()))
    if training_now and index not in training_now and not (state.latest and state.latest.phase == "warm start"):
        finished.update(training_now)  # (a warm start's pre-training moving on finishes no seed)
    together = int(progress.metrics.get("seeds_together", 1))
    if progress.phase == "train" and progress.batch > 0 and "loss" not in progress.metrics:
        # The one report of a seed read from the disk cache (`engine.train`): finished already.
        finished.add(index)
        training_now = ()
    elif together > 1:
        # The group: its first seed and the next seeds that did not come from the cache before it.
        training_now = tuple([i for i in range(index, count) if i not in finished][:together])
    else:
        training_now = (index,)
    done[key] = tuple(sorted(finished))
    return SeedsProgress(order=order, done=done, training=training_now, seeds=count, latest=progress)


class _SeedsTracker:
    """Keeps the `SeedsProgress` of one job (written by its thread, read by any page run)."""

    def __init__(self) -> None:
        self.state = SeedsProgress()
        self.ended_at: float | None = None

    def wrap(self, work: Callable[[VariantReport], Any]) -> Callable[[Callable[[tuple], bool]], Any]:
        """`work` as the `training.Job` work: every report updates the snapshot, then reaches the job."""

        def run(on_progress: Callable[[tuple], bool]) -> Any:
            def report(key: str, progress: training.Progress) -> bool:
                self.state = _seeds_progress(self.state, key, progress)
                return on_progress((key, progress))
            try:
                return work(report)
            finally:
                self.ended_at = time.time()
        return run


def _seeds_job(job_key: str, work: Callable[[VariantReport], Any], *, slot: str) -> tuple[training.Job, _SeedsTracker]:
    """The shared background job of one several-seeds run (started on a miss, kept when complete),
    found by `job_key` alone (`work` is not compared), with its progress tracker."""

    def start() -> training.Job:
        tracker = _SeedsTracker()
        job = training.Job(tracker.wrap(work), name=f"cnnviz-seeds-{abs(hash(job_key)) % 10**8}")
        job.details = tracker
        return job.start()

    job = shared_job(job_key, start, slot=slot)
    return job, job.details


@dataclass(frozen=True)
class SeedsRun:
    """How a `train_seeds_with_progress` run ended.

    `result` is what the work returned (None when it raised, e.g. stopped while waiting for a
    training slot); `finished` the variant keys whose every seed finished (`done_before`
    included), in the order of `variants`; `complete` says every variant finished; `stopped` that
    the student pressed Stop; `summary` is the message shown when it is not complete.
    """

    result: Any
    finished: tuple[str, ...]
    complete: bool
    stopped: bool
    summary: str


def seeds_text(seeds: Sequence[int]) -> str:
    """"seed 0", "seeds 0 and 1", "seeds 0, 1 and 2"."""
    values = [str(seed) for seed in seeds]
    if len(values) == 1:
        return f"seed {values[0]}"
    return f"seeds {', '.join(values[:-1])} and {values[-1]}"


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _variant_seeds(seeds: Sequence[int] | Mapping[str, Sequence[int]], key: str) -> tuple[int, ...]:
    return tuple(seeds[key]) if isinstance(seeds, Mapping) else tuple(seeds)


def _all_finished(runs: Any) -> bool:
    """False when a returned variant holds a run (`TrainResult`) that did not finish."""
    runs = runs if isinstance(runs, Sequence) else [runs]
    return all(getattr(run, "stopped_reason", "finished") == "finished" for run in runs)


def _finished_variants(state: SeedsProgress, variants: Mapping[str, str], done_before: Collection[str],
                       train: Collection[str], job: training.Job) -> tuple[str, ...]:
    """The variants whose every seed finished (`done_before` included), in the order of `variants`.

    While running, or when the work raised: those it moved on from. When it returned a mapping
    (e.g. `run_comparison`'s {variant key: results}), its keys; any other return value means the
    work completed every variant of `train` (works raise `TrainingStopped` or return a mapping otherwise).
    """
    if job.done and job.error is None:
        if isinstance(job.result, Mapping):
            known = set(done_before) | {key for key, runs in job.result.items() if _all_finished(runs)}
        else:
            known = set(done_before) | set(train)
    else:
        known = set(done_before) | set(state.order[:-1])
    return tuple(key for key in variants if key in known)


def _current_seeds_text(state: SeedsProgress, seeds: tuple[int, ...], *, running: bool, where: str = "") -> str:
    """Which seeds of the last variant train (or were training, `where`) and which finished."""
    named = [seeds[i] for i in state.training if i < len(seeds)]
    finished = [seeds[i] for i in state.done.get(state.order[-1], ()) if i < len(seeds)] if state.order else []
    if not named:
        return f"{seeds_text(finished)} finished" if finished else ""
    if len(named) > 1:
        text = f"{seeds_text(named)} {'training' if running else 'were training'} together"
    elif running:
        text = f"{seeds_text(named)} ({seeds.index(named[0]) + 1} of {len(seeds)})"
    else:
        text = f"{seeds_text(named)} was training"
    text += where
    if finished:
        text += f"; {seeds_text(finished)} finished"
    return text


def _seeds_summary(state: SeedsProgress, variants: Mapping[str, str],
                   seeds: Sequence[int] | Mapping[str, Sequence[int]], finished: tuple[str, ...], *,
                   stopped: bool, seconds: float, unit: str, again: str) -> str:
    """What finished and what did not, after a run that did not complete."""
    how = f"Stopped after {_elapsed(seconds)}." if stopped else \
        f"The run ended early after {_elapsed(seconds)}: a training diverged or ended before its last epoch."
    lines = [how]
    if finished:
        lines.append(f"**Finished** (every seed; cached, so they will not train again): "
                     f"{', '.join(variants[key] for key in finished)}.")
    else:
        lines.append(f"No {unit} finished.")
    current = next((key for key in reversed(state.order) if key in variants and key not in finished), None)
    if current is not None:
        latest = state.latest
        where = ""
        if latest is not None and latest.phase == "train":
            where = f", in epoch {latest.epoch} of {latest.epochs}"
        elif latest is not None and latest.phase == "waiting":
            where = ", waiting for a free training slot"
        detail = _current_seeds_text(state, _variant_seeds(seeds, current), running=False, where=where)
        lines.append(f"**Not finished**: {variants[current]}" + (f" ({detail})" if detail else "") + ".")
    rest = [label for key, label in variants.items() if key not in finished and key != current]
    if rest:
        lines.append(f"**Not trained**: {', '.join(rest)}.")
    lines.append(f"{again}: what finished comes from the cache, the rest trains.")
    return "  \n".join(lines)


def _seeds_status(state: SeedsProgress, variants: Mapping[str, str],
                  seeds: Sequence[int] | Mapping[str, Sequence[int]], finished: tuple[str, ...], *,
                  unit: str) -> tuple[str, float, str]:
    """(status markdown, overall fraction, bar text) of a running several-seeds job."""
    total = len(variants)
    current = state.order[-1] if state.order else None
    if current is None or current not in variants:
        return "Preparing the data and building the models…", len(finished) / max(1, total), \
            f"{len(finished)} of {total} {unit}s done"
    number = len(finished) + 1 if current not in finished else len(finished)
    chosen = _variant_seeds(seeds, current)
    line = f"**{unit.capitalize()} {number} of {total}: {variants[current]}**"
    detail = _current_seeds_text(state, chosen, running=True)
    if detail:
        line += f" · {detail}"
    text = f"{line}  \n{_describe_progress(state.latest)}"
    waiting = [label for key, label in variants.items() if key not in finished and key != current]
    if finished:
        text += f"  \nFinished: {', '.join(variants[key] for key in finished)}"
    if waiting:
        text += f"  \nStill to train: {', '.join(waiting)}"
    within = 0.0
    latest = state.latest
    if latest is not None and latest.phase == "train" and state.seeds:
        done_seeds = len(state.done.get(current, ()))
        within = min(1.0, (done_seeds + latest.fraction * len(state.training)) / state.seeds)
    fraction = min(1.0, (len(finished) + within) / max(1, total))
    return text, fraction, f"{len(finished)} of {total} {unit}s done"


def train_seeds_with_progress(work: Callable[[VariantReport], Any], *, key: str, job_key: str,
                              variants: Mapping[str, str], seeds: Sequence[int] | Mapping[str, Sequence[int]],
                              train: Collection[str] | None = None, done_before: Collection[str] = (),
                              fresh: bool = False, unit: str = "variant", again: str = "Run again") -> SeedsRun | None:
    """Run `work(report)` (several variants, each with several seeds) in a background job, with a
    live panel and a Stop button; returns how it ended (a `SeedsRun`), or None after an error.

    `work` trains the variants, calling `report(variant key, progress)` with the `Progress` of
    `training.train_seeds` (its `metrics["seed_index"]`, `["seeds"]`, `["seeds_together"]`);
    `report` returns False once Stop is pressed, which stops `train_seeds`. It returns a mapping
    {variant key: results} of the variants that finished (as `lenet_vs_relu.run_comparison`
    does), or anything else when every variant finished; it may raise `TrainingStopped`.
    `variants` maps every variant key of the whole experiment to its label, in teaching order (the
    panel numbers them "<unit> 3 of 6"); `train` are the keys this work trains (default: all),
    `done_before` those the page finished earlier (listed as finished); `seeds` are each
    variant's seeds (one sequence for all, or {key: seeds}; `seed_index` counts in them).
    `job_key` names the work (its settings): the job is shared by every session and every rerun
    (a Stop click's rerun reaches the running job) and kept in memory when complete.

    While it runs the panel shows the variant and the seeds training (together as one group, or
    seed i of n), the epoch and running metrics, the variants done, the elapsed time and
    "Stop" (`key + "_stop"`). A run that did not complete is dropped from the shared jobs: this
    session keeps its `SeedsRun` (shown again, with its message, on reruns) until `fresh=True`
    (pass the Run button's value) or another `job_key` starts anew; its finished seeds are in the
    disk cache. `again` names the button in the message ("Press **Run** again").
    """

    store = f"{key}__incomplete"
    kept = st.session_state.get(store)
    if kept is not None and (fresh or kept[0] != job_key):
        del st.session_state[store]
        kept = None
    if kept is not None:
        st.warning(kept[1].summary, icon=":material/stop_circle:")
        return kept[1]

    train = tuple(variants) if train is None else tuple(train)
    shared_key = f"{key}:{job_key}"
    registry = job_registry()
    try:
        job, tracker = _seeds_job(shared_key, work, slot=key)
        if fresh and job.done and (job.error is not None or job.stop_requested):
            registry.forget(shared_key)
            job, tracker = _seeds_job(shared_key, work, slot=key)
    except CnnvizError as error:
        show_error(error)
        return None

    if not job.done:
        panel = st.empty()
        with panel.container(border=True):
            status = st.empty()
            bar = st.progress(0.0)
            st.button("Stop", key=f"{key}_stop", on_click=job.request_stop, icon=":material/stop_circle:",
                      help="Stops the seeds training now (within about a second). Seeds and variants that "
                           "finished stay in the cache.")
        shown_text, shown_bar = None, None
        while not job.wait(0.3):
            state = tracker.state
            finished_now = _finished_variants(state, variants, done_before, train, job)
            text, fraction, bar_text = _seeds_status(state, variants, seeds, finished_now, unit=unit)
            if job.stop_requested:
                text = "Stopping…  \n" + text
            bar_text = f"{bar_text} · {_elapsed(time.time() - job.started_at)} elapsed"
            if text != shown_text:
                status.markdown(text)
                shown_text = text
            if (fraction, bar_text) != shown_bar:
                bar.progress(fraction, text=bar_text)
                shown_bar = (fraction, bar_text)
        panel.empty()

    if job.error is not None and not isinstance(job.error, TrainingStopped):
        registry.forget(shared_key)
        show_job_error(job.error, failed="Training failed unexpectedly")
        return None
    state = tracker.state
    finished = _finished_variants(state, variants, done_before, train, job)
    complete = job.error is None and set(train) <= set(finished)
    seconds = (tracker.ended_at or time.time()) - job.started_at
    summary = "" if complete else _seeds_summary(state, variants, seeds, finished, stopped=job.stop_requested,
                                                 seconds=seconds, unit=unit, again=again)
    run = SeedsRun(result=job.result, finished=finished, complete=complete, stopped=job.stop_requested,
                   summary=summary)
    if not complete:
        registry.forget(shared_key)
        st.session_state[store] = (job_key, run)
        st.warning(summary, icon=":material/stop_circle:")
    return run


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


# --------------------------------------------------------------------------------------------
# The drawing pad (the Train page's "Draw" and the explain page's "a drawing"): the only canvas
# --------------------------------------------------------------------------------------------

DRAWING_PAD_PIXELS = 280  # On screen: ten screen pixels per pixel of a 28 x 28 image.
DRAWING_STROKE_PIXELS = 22  # About 2 pixels once the drawing is scaled into its 20-pixel box.


def drawing_pad(key: str, *, side: int = DRAWING_PAD_PIXELS, stroke_width: int = DRAWING_STROKE_PIXELS
                ) -> np.ndarray | None:
    """A square pad to draw on with the mouse or a finger; the drawing as uint8 RGBA (H, W, 4), or None
    while nothing is drawn (also after the pad's bin button has cleared it).

    White strokes on black: what the student draws looks like the MNIST-family images (a bright
    object on black), and it reads well on a projector. `cnnviz.lessons.train.prepare_drawing`
    turns the result into a dataset image. The pad is `streamlit-drawable-canvas` (a components-v2
    component, Fabric.js bundled: nothing is fetched at run time); each finished stroke reruns the
    script (or the fragment around the pad). Its value is the component's state in
    `st.session_state[key]`, ``{"drawing": {"raw": Fabric.js JSON with "objects", "data": a PNG data
    URL}}``: AppTest, which cannot drive a component, sets a drawing there.
    """
    # Imported here: the package declares its component when imported, which needs a running
    # Streamlit (a server or AppTest), not a plain `import widgets.ui`.
    from streamlit_drawable_canvas import st_canvas

    st.space("medium")  # Room for the pad's toolbar (send, undo, redo, edit, clear), shown above it.
    canvas = st_canvas(stroke_width=stroke_width, stroke_color="#FFFFFF", background_color="#000000",
                       width=side, height=side, drawing_mode="freedraw", return_image_data=True, key=key)
    if not (canvas.json_data or {}).get("objects"):
        return None
    return canvas.image_data


def show_architecture_error(error) -> None:
    """An impossible stack explained in the page (never a traceback), shown as text."""
    show_error(error)


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


def show_settings_problems() -> None:
    """On every page (app.py): the server's invalid `CNNVIZ_*` settings (`cnnviz.settings`), each
    also written once to the server log. The values are shown as plain text."""
    for message in settings.report_once():
        show_message("error", message, icon=":material/settings_alert:",
                     prefix="**A server setting is invalid** (the person who runs this server should fix it): ")


# --------------------------------------------------------------------------------------------
# Class sessions (issue 18): the server's one store, "Students follow me", a student's follow mode
# --------------------------------------------------------------------------------------------

# The lecturer's {"code", "secret"} and a student's {"code", "student_id", "name"}: kept in this
# browser's session only (never in a URL, never in the store: the store keeps the secret's hash).
LECTURER_KEY = "classroom_lecturer"
STUDENT_KEY = "classroom_student"
# A student's choice to follow, in a plain key: a page switch by `st.switch_page` drops every
# widget's state (also the sidebar's), so the switch (`_FOLLOW_TOGGLE_KEY`) is set from it on each run.
FOLLOWING_KEY = "classroom_following"
_FOLLOW_TOGGLE_KEY = "classroom_follow_toggle"
FOLLOWED_VERSION_KEY = "classroom_followed_version"  # The last pushed view this student moved to.
FOLLOW_SECONDS = 1.0  # How often a following student's page asks for the lecturer's view.


@st.cache_resource(show_spinner=False, max_entries=2)
def _classroom_store(redis_url: str) -> ClassroomStore:
    return open_store(redis_url or None)


def classroom_store() -> ClassroomStore:
    """The server's one classroom store, shared by every session: in-process by default, the Redis
    of `CNNVIZ_REDIS_URL` when it is set (`cnnviz.settings.redis_url`; shared by several servers)."""
    return _classroom_store(settings.redis_url() or "")


@st.cache_resource(show_spinner=False, max_entries=2)
def _entry_trainer(redis_url: str, store_id: int, _store: ClassroomStore) -> EntryTrainer:
    return open_trainer(_store, redis_url=redis_url or None)


def entry_trainer() -> EntryTrainer:
    """The server's one trainer of leaderboard entries (`cnnviz.classroom.trainers`), for the
    server's store: in this process by default, RQ workers when `CNNVIZ_REDIS_URL` is set."""
    store = classroom_store()
    return _entry_trainer(settings.redis_url() or "", id(store), store)


# The Train page's current `TrainConfig` (None while its settings cannot train), in a plain key so
# that it survives a switch to the class page, which submits it to the leaderboard.
TRAIN_CONFIG_KEY = "train_page_config"


def remember_train_config(config: training.TrainConfig | None) -> None:
    st.session_state[TRAIN_CONFIG_KEY] = config


def train_page_config() -> training.TrainConfig | None:
    """The settings this session has on the Train page (None: not visited, or not valid now)."""
    value = st.session_state.get(TRAIN_CONFIG_KEY)
    return value if isinstance(value, training.TrainConfig) else None


def lecturer_of() -> dict[str, str] | None:
    """This session's class as its lecturer ({"code", "secret"}), or None."""
    return st.session_state.get(LECTURER_KEY)


def student_of() -> dict[str, str] | None:
    """This session's class as a student ({"code", "student_id", "name"}), or None."""
    return st.session_state.get(STUDENT_KEY)


def classroom_sidebar(current: Any, pages: Mapping[str, Any]) -> None:
    """On every page (app.py): a lecturer's "Students follow me" button, or a student's follow mode.

    `current` is the page running now (its `url_path`), `pages` every page of the navigation by
    url path (where a follower may be sent). Nothing is drawn for anyone else.
    """
    lecturer, student = lecturer_of(), student_of()
    if lecturer:
        _follow_me_button(lecturer, current.url_path)
    elif student:
        _follow_mode(student["code"], pages)


def _follow_me_button(lecturer: Mapping[str, str], url_path: str) -> None:
    with st.sidebar:
        if st.button("Students follow me", key="classroom_follow_me", icon=":material/groups:",
                     help="Students who follow you move to this page, with its controls as they are now."):
            query = {name: value for name, value in st.query_params.to_dict().items() if name not in APP_WIDE_PARAMS}
            try:
                state = classroom_store().set_follow(lecturer["code"], lecturer["secret"], url_path, urlencode(query))
            except CnnvizError as error:
                show_error(error)
            else:
                st.caption(f"Followers are moving to this view (push {state.version}).")


def _forget_restored_views() -> None:
    """Let the next page apply its link again (`restore_view` applies a link once per page)."""
    for key in [key for key in st.session_state if str(key).startswith(("_view_restored:", "_view_saved:"))]:
        del st.session_state[key]


def _follow_switched() -> None:
    following = bool(st.session_state.get(_FOLLOW_TOGGLE_KEY))
    st.session_state[FOLLOWING_KEY] = following
    if following:
        st.session_state[FOLLOWED_VERSION_KEY] = 0  # Move to the lecturer's latest view at once.


def _follow_mode(code: str, pages: Mapping[str, Any]) -> None:
    following = bool(st.session_state.get(FOLLOWING_KEY, False))
    if st.session_state.get(_FOLLOW_TOGGLE_KEY) != following:
        st.session_state[_FOLLOW_TOGGLE_KEY] = following
    with st.sidebar:
        st.toggle("Follow the lecturer", key=_FOLLOW_TOGGLE_KEY, on_change=_follow_switched,
                  help="Your page moves to the one the lecturer shows. Switch off to leave follow mode.")
        if following:
            # Only while following: one small read of the store per second, a page switch when it changed.
            st.fragment(_follow_lecturer, run_every=FOLLOW_SECONDS)(code, pages)


def _follow_lecturer(code: str, pages: Mapping[str, Any]) -> None:
    try:
        state = classroom_store().follow_state(code)
    except CnnvizError as error:
        show_error(error, kind="warning", icon=":material/sync_problem:")
        return
    if state.version <= st.session_state.get(FOLLOWED_VERSION_KEY, 0):
        st.caption(":material/sync: Following the lecturer." if state.version else
                   ":material/sync: Following the lecturer: waiting for the first page.")
        return
    st.session_state[FOLLOWED_VERSION_KEY] = state.version
    page = pages.get(state.page)
    if page is None:
        st.caption("The lecturer is on a page this app does not have.")
        return
    _forget_restored_views()
    st.switch_page(page, query_params=parse_qsl(state.query, keep_blank_values=True))


def send_to_class(question: Any, *, key: str) -> None:
    """Beside a lesson's own question: "Send to the class" (a `cnnviz.lessons.classroom.PollQuestion`,
    with its computed answer), shown only to a lecturer; students answer on the class page."""
    lecturer = lecturer_of()
    if not lecturer:
        return
    if st.button("Send to the class", key=key, icon=":material/send:",
                 help="Your class gets this question on the class page; its live histogram is there too."):
        try:
            poll = classroom_store().send_poll(lecturer["code"], lecturer["secret"], question.question,
                                               question.options, answer=question.answer)
        except CnnvizError as error:
            show_error(error)
        else:
            st.caption(f"Sent as question {poll.poll_id}: the answers come in on the class page.")

