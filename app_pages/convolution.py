"""Convolution lab: one kernel slid over an image by hand, step by step, then pooling and colour.

Reads top to bottom: choose an image (sidebar), choose a kernel and its settings, see input,
kernel and output, predict the output shape, step the window across the image, pool the feature
map, and finally see what one colour filter and eight random filters do. All the arithmetic is in
`cnnviz.convolution` (NumPy only; `lab_view`, `step_view`, `pool_view`, `colour_view` compute
what each section shows): this page never imports TensorFlow.

Session state: every key starts with `conv_`; the few that are not widget keys get their
starting value once (`STATE_DEFAULTS`) and are changed by the widgets' callbacks.

Speed (issue 15, measured by `bench/interaction.py`): sections 1-4 are one fragment (`kernel_lab`),
with the step-through and the pooling as fragments inside it, and the colour section is its own:
a change reruns only the part it affects. The lesson calls are cached by their inputs
(`st.cache_data`); figures are rebuilt, not cached: they are plain dictionaries
(`figures.PlainFigure`, ~0.3 ms a chart of CPU, where building, validating and deep-copying Plotly
objects cost ~3 ms), and the server skips Streamlit's full garbage collection after each run
(`runner.postScriptGC = false`: 50-200 ms a run). The maps of sections 2-4 are drawn on a canvas
in the browser (`ui.map_chart`): as Plotly charts, drawing them was most of a change's time. The
kernel's number grid is built only while its editor is open. Each part keeps the shared link in
step when it reruns alone (`part`).
A run that stops early leaves widgets undrawn, so `resend_if_hidden` puts their values back
(the upload desync of issue 15).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import numpy as np
import streamlit as st

from cnnviz import convolution as conv
from cnnviz import data, images
from cnnviz.errors import CnnvizError
from cnnviz.figures import convolution as figures
from cnnviz.lessons import convolution as lab
from cnnviz.lessons.classroom import output_shape_question as poll_question
from cnnviz.shareable import Param
from widgets import ui

KERNEL_SIZES = lab.GRID_KERNEL_SIZES
STRIDES = (1, 2, 3, 4)
PADDINGS = ("valid", "same", 1, 2, 3)
SYNTHETIC_SIZES = (16, 24, 32, 48, 64, 128, 256)
PLAY_TIMER_KEY = "_conv_play_timer"  # The step-through was last declared with its Play timer.
PLAY_INTERVAL_SECONDS = 0.18  # Play's timer (bench/interaction.py measures its frames per second).
PLAY_JUMPS = (1, 2, 4, 8)
SWEEP_FRAME_MS = 125  # The in-browser sweep: 8 positions per second.
STEP_ZOOM = 40  # The step-through shows at most this many rows and columns around the window.
DATASET_SAMPLE_LIMIT = 1000  # Training images loaded for browsing (100 per class).
SOURCES = ("Dataset sample", "Synthetic", "Upload")
COLOR_MODES = ("Grayscale", "RGB, per channel")
KERNEL_VIEW_KEY = "conv_kernel"  # The kernel weights as a list of rows, for shareable links.
QUIZ_ANSWER_KEY = "conv_quiz_answer"  # (LabView.quiz_key, (height, width) guessed, or None for "just show me").
TEXT_ERROR_KEY = "conv_kernel_text_error"  # Set by the "Use this kernel" callback, shown once.
# Starting values, given once (widgets get theirs here rather than from `value=`, so that a value
# put back by `resend_if_hidden` never meets a second default).
STATE_DEFAULTS = {"conv_preset": conv.DEFAULT_PRESET, "conv_kernel_size": 3, "conv_row": 0, "conv_col": 0,
                  "conv_playing": False, "conv_stride": 1, "conv_pool_size": 2, "conv_pool_stride": 2,
                  "conv_random_seed": 0, "conv_index": 0, "conv_synthetic_size": 32, "conv_letter": "A"}
PAGE_DRAWN_KEY = "conv_page_drawn"  # False while a run of the whole page has not drawn its lab yet.
LAB_DRAWN_KEY = "conv_lab_drawn"  # The same for the step-through and pooling of the lab fragment.

# The controls a "Copy link to this view" link carries (named like their widget keys).
VIEW_PARAMS = [
    Param("conv_source", "choice", choices=SOURCES),
    Param("conv_dataset", "choice", choices=data.DATASETS),
    Param("conv_class", "int", minimum=0, maximum=99),
    Param("conv_index", "int", minimum=0, maximum=DATASET_SAMPLE_LIMIT),
    Param("conv_synthetic", "choice", choices=tuple(images.SYNTHETIC_IMAGES)),
    Param("conv_synthetic_size", "choice", choices=SYNTHETIC_SIZES),
    Param("conv_letter", "str", validate=lambda text: len(text) <= 1 and text.isprintable()),
    Param("conv_color_mode", "choice", choices=COLOR_MODES),
    Param("conv_image_scale", "choice", choices=tuple(figures.IMAGE_SCALES)),
    Param("conv_preset", "choice", choices=tuple(conv.KERNEL_PRESETS)),
    Param("conv_kernel_size", "choice", choices=KERNEL_SIZES),
    Param(KERNEL_VIEW_KEY, "json", validate=lab.is_grid_kernel),
    Param("conv_normalise", "bool"),
    Param("conv_stride", "choice", choices=STRIDES),
    Param("conv_padding", "choice", choices=PADDINGS),
    Param("conv_flip", "bool"),
    Param("conv_relu", "bool"),
    Param("conv_quiz", "bool"),
    Param("conv_sweep", "bool"),
    Param("conv_row", "int", minimum=0, maximum=images.MAX_SIDE),
    Param("conv_col", "int", minimum=0, maximum=images.MAX_SIDE),
    Param("conv_step_channel", "int", minimum=0, maximum=2),
    Param("conv_pool_kind", "choice", choices=("max", "avg")),
    Param("conv_pool_size", "choice", choices=(2, 3, 4)),
    Param("conv_pool_stride", "choice", choices=(1, 2, 3, 4)),
    Param("conv_color_filter", "choice", choices=lab.COLOR_FILTERS),
    Param("conv_random_seed", "int", minimum=0, maximum=10_000),
    Param("conv_color_relu", "bool"),
]

ui.page_header(
    "Convolution lab",
    "What one filter does: a small kernel slides over an image, and each output pixel is a dot product.",
)
ui.restore_view(VIEW_PARAMS)
# "Copy link to this view": one placeholder, rewritten by the lab and colour fragments on every run.
link_slot = st.empty()
for _key, _default in STATE_DEFAULTS.items():
    st.session_state.setdefault(_key, _default)


# ----------------------------------------------------------------------------------------------
# State helpers
# ----------------------------------------------------------------------------------------------

def cap(key: str, highest: int) -> None:
    """Keep a stored position or index at most `highest` (the image or the output got smaller)."""
    if st.session_state.get(key, 0) > highest:
        st.session_state[key] = highest


def forget_unless(key: str, offered) -> None:
    """Drop a stored choice that is not offered here (e.g. from a link made where more was available)."""
    if key in st.session_state and st.session_state[key] not in offered:
        del st.session_state[key]


GRID_OPEN_KEY = "conv_grid_open"  # Whether the weights' editor (grid and text box) is open.


def cell_key(row: int, col: int) -> str:
    return f"conv_k_{row}_{col}"


def resend_if_hidden(flag: str, keys) -> None:
    """Put back the values of widgets that the last run of this part did not draw (call before drawing them).

    A run that stops early (no upload yet, a bad file, an error) does not draw the widgets after
    it; the browser forgets them while the server keeps their values. Drawn again, they would show
    their defaults (e.g. "identity" and a grid of zeros) over the values still computed with.
    Assigning each value again makes Streamlit send it with the widget. `mark_drawn(flag)` at the
    end of the part says it was drawn.
    """
    if st.session_state.get(flag) is False:
        for key in keys:
            if key in st.session_state:
                st.session_state[key] = st.session_state[key]
    st.session_state[flag] = False


def mark_drawn(flag: str) -> None:
    st.session_state[flag] = True


OUTERMOST_KEY = "_conv_outermost"  # The part whose run this is: "page", or the fragment rerunning alone.


@contextmanager
def part(name: str, *, nested: bool = False):
    """Draw one part of the page (the whole page, or a fragment), then keep the link in step.

    A fragment rerun does not run the rest of the script, so the part that runs alone mirrors the
    controls into the URL itself. A top-level fragment (the lab, the colour section) also rewrites
    "Copy link to this view" (`link_slot`, an `st.empty`; Streamlit lets it write there because it
    does on every run). A `nested` one (the step-through and pooling, inside the lab) may not write
    outside itself when it reruns alone (StreamlitInvalidLayoutContextError), so it updates the
    address bar only; the copied link catches up at the next change of the lab or colour section.
    """
    outermost = st.session_state.get(OUTERMOST_KEY) is None
    if outermost:
        st.session_state[OUTERMOST_KEY] = name
    try:
        yield
    finally:
        if outermost:
            st.session_state[OUTERMOST_KEY] = None
    # Not reached after an st.stop() or an interrupted run: the next run mirrors the controls.
    if nested:
        if outermost:
            ui.mirror_view(VIEW_PARAMS)
    elif name != "page":  # The whole page's link is the one its last fragment writes.
        with link_slot.container():
            ui.publish_view(VIEW_PARAMS)


GRID_KEYS = [cell_key(row, col) for row in range(max(KERNEL_SIZES)) for col in range(max(KERNEL_SIZES))]
resend_if_hidden(PAGE_DRAWN_KEY, [param.key for param in VIEW_PARAMS] + GRID_KEYS + [GRID_OPEN_KEY])


# ----------------------------------------------------------------------------------------------
# Cached lesson calls (small, hashable inputs)
# ----------------------------------------------------------------------------------------------

# Entry counts are small: a 256x256x3 float map is 1.5 MB, and the cache is shared by all sessions.
@st.cache_data(max_entries=24, show_spinner=False)
def lab_view(pixels: np.ndarray, kernel: np.ndarray, per_channel: bool, stride: int, padding, flip: bool,
             apply_relu: bool, normalise: bool) -> lab.LabView:
    return lab.lab_view(pixels, kernel, per_channel=per_channel, stride=stride, padding=padding, flip=flip,
                         apply_relu=apply_relu, normalise=normalise)


@st.cache_data(max_entries=16, show_spinner=False)
def pool_view(feature_map: np.ndarray, size: int, stride: int, kind: str) -> lab.PoolView:
    return lab.pool_view(feature_map, size, stride, kind)


@st.cache_data(max_entries=8, show_spinner=False)
def colour_view(pixels: np.ndarray, name: str, seed: int, apply_relu: bool) -> lab.ColourView:
    return lab.colour_view(pixels, name, seed, apply_relu=apply_relu)


@st.cache_data(max_entries=8, show_spinner="Decoding the image…")
def decode_upload(file_id: str, _content: bytes) -> images.DecodedImage:
    # Keyed by the upload's id: hashing the bytes on every rerun would cost more than decoding.
    return images.decode_image(_content)


@st.cache_data(max_entries=32, show_spinner=False)
def synthetic_image(name: str, size: int, char: str) -> np.ndarray:
    if name == "letter":
        return images.letter(size, char)
    return images.synthetic(name, size)


def offline_datasets() -> tuple[str, ...]:
    """Datasets that load here without a download; one with a bundled sample (Fashion-MNIST) always does.

    `source_status` only looks at files (well under a millisecond), so this is not cached and
    a dataset placed in CNNVIZ_DATA_DIR appears at once.
    """
    available = []
    for name in data.DATASETS:
        status = data.source_status(name)
        if data.spec(name).bundled_sample is not None or (status.source is not None and not status.needs_download):
            available.append(name)
    return tuple(available)


# ----------------------------------------------------------------------------------------------
# Image choice (sidebar)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChosenImage:
    """The sidebar's answer: uint8 pixels (None until an upload arrives), or why there are none."""

    pixels: np.ndarray | None
    description: str = ""
    notes: tuple[str, ...] = ()
    error: str | None = None


def dataset_image_ui() -> ChosenImage:
    options = offline_datasets()
    forget_unless("conv_dataset", options)
    name = ui.dataset_selectbox("conv_dataset", options=options)
    if len(options) < len(data.DATASETS):
        st.caption("Other datasets appear here when they are available without a download.")
    dataset = ui.load_dataset_or_stop(name, limit_train=DATASET_SAMPLE_LIMIT, limit_test=10, allow_download=False)
    forget_unless("conv_class", range(dataset.num_classes))
    label = st.selectbox("Class", range(dataset.num_classes), format_func=lambda k: dataset.class_names[k],
                         key="conv_class")
    members = np.flatnonzero(dataset.y_train == label)
    if members.size == 0:
        st.info("This subset has no image of that class; pick another class.")
        st.stop()
    cap("conv_index", int(members.size - 1))
    index = st.number_input(f"Image number (0–{members.size - 1})", min_value=0, max_value=int(members.size - 1),
                            step=1, key="conv_index")
    pixels = dataset.x_train[members[int(index)]]  # (H, W, C) uint8
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return ChosenImage(pixels, f"{data.spec(name).title} · {dataset.class_names[label]} #{index}")


def synthetic_image_ui() -> ChosenImage:
    name = st.selectbox("Pattern", list(images.SYNTHETIC_IMAGES), key="conv_synthetic")
    size = st.select_slider("Size (pixels)", SYNTHETIC_SIZES, key="conv_synthetic_size")
    char = "A"
    if name == "letter":
        char = (st.text_input("Letter", max_chars=1, key="conv_letter") or "A").strip() or "A"
    try:
        pixels = synthetic_image(name, size, char)
    except CnnvizError as error:
        ui.show_message("warning", f"{error} Showing the letter A instead.")
        pixels = synthetic_image("letter", size, "A")
    return ChosenImage(pixels, f"synthetic {name} ({size} × {size})")


def upload_image_ui() -> ChosenImage:
    uploaded = st.file_uploader("Image file (PNG, JPEG, GIF, BMP, TIFF, WebP…)", key="conv_upload")
    if uploaded is None:
        return ChosenImage(None)
    try:
        decoded = decode_upload(uploaded.file_id, uploaded.getvalue())
    except images.ImageDecodeError as error:
        # The file name and the message are the student's text: shown literally (escaped).
        return ChosenImage(None, error=f"**{ui.markdown_text(uploaded.name)}**: {ui.markdown_text(error)}")
    return ChosenImage(decoded.pixels, f"upload {ui.markdown_text(uploaded.name)}", notes=tuple(decoded.notes))


def image_source_ui() -> ChosenImage:
    """The chosen image as uint8 (H, W) or (H, W, 3), with a one-line description."""
    with st.sidebar:
        st.header("Image")
        source = st.radio("Source", SOURCES, key="conv_source")
        if source == "Dataset sample":
            return dataset_image_ui()
        if source == "Synthetic":
            return synthetic_image_ui()
        return upload_image_ui()


chosen = image_source_ui()
if chosen.error:
    st.error(chosen.error, icon=":material/broken_image:")
    st.info("Upload another file, or switch the image source in the sidebar to a dataset sample or a synthetic image.")
    st.stop()
if chosen.pixels is None:
    st.info("Upload an image in the sidebar (any format Pillow reads). Large images are downscaled to at "
            f"most {images.MAX_SIDE} px on the longest side.", icon=":material/upload:")
    st.stop()
pixels = chosen.pixels
for note in chosen.notes:
    st.info(note, icon=":material/info:")

with st.sidebar:
    is_color = not images.is_effectively_gray(pixels)
    color_mode = st.radio("Channels", COLOR_MODES, key="conv_color_mode",
                          disabled=not is_color,
                          help="A colour image can be converted to gray, or the kernel applied to R, G and B "
                               "separately.")
    if not is_color:
        st.caption("This image has a single channel, so it is used in grayscale.")
    image_scale = st.selectbox("Colour scale for gray images", tuple(figures.IMAGE_SCALES), key="conv_image_scale")


# ----------------------------------------------------------------------------------------------
# Kernel editor
# ----------------------------------------------------------------------------------------------

def write_grid(kernel: np.ndarray, digits: int | None = None) -> None:
    """Put a kernel into the grid's number inputs (before they are drawn)."""
    for (row, col), value in np.ndenumerate(kernel):
        st.session_state[cell_key(row, col)] = float(value if digits is None else round(value, digits))


def load_preset() -> None:
    """The preset and size callbacks: the chosen preset, at the chosen size, into the grid."""
    write_grid(conv.make_kernel(st.session_state.conv_preset, st.session_state.conv_kernel_size, seed=0), digits=4)


def apply_typed_kernel() -> None:
    """The "Use this kernel" callback: load the typed kernel into the grid, or remember why not."""
    try:
        kernel = lab.grid_kernel(conv.parse_kernel_text(st.session_state.get("conv_kernel_text", "")))
    except CnnvizError as error:
        st.session_state[TEXT_ERROR_KEY] = str(error)
        return
    st.session_state.conv_kernel_size = kernel.shape[0]
    write_grid(kernel)


def fill_grid_if_empty() -> None:
    """First run (or the grid was not drawn last run): the last kernel shown, e.g. from a link, or the preset."""
    size = st.session_state.conv_kernel_size
    if any(cell_key(r, c) not in st.session_state for r in range(size) for c in range(size)):
        last_kernel = st.session_state.get(KERNEL_VIEW_KEY)
        if last_kernel is not None and lab.is_grid_kernel(last_kernel) and len(last_kernel) == size:
            write_grid(np.asarray(last_kernel, dtype=float))
        else:
            load_preset()


@dataclass(frozen=True)
class Settings:
    """What section 1 chose: the kernel as typed and how it is slid."""

    kernel: np.ndarray
    kernel_size: int
    normalise: bool
    stride: int
    padding: conv.Padding
    flip: bool
    relu: bool


def kernel_settings_ui() -> Settings:
    """Section 1: preset, size, normalise, stride, padding, flip, ReLU and the editable grid."""
    fill_grid_if_empty()
    st.header("1 · Kernel and settings")
    # The same two columns at every kernel size, and the weights' grid in an expander that is only
    # built while open: a preset, size, stride or padding change then redraws only what it changes
    # (the kernel's weights are written large on its figure below). bench/interaction.py measured
    # the grid of number inputs as about a fifth of a change's time in the browser.
    settings_column, sliding_column = st.columns(2, gap="large")
    with settings_column:
        preset = st.selectbox("Preset", list(conv.KERNEL_PRESETS), key="conv_preset", on_change=load_preset)
        st.caption(conv.KERNEL_PRESETS[preset].description)
        kernel_size = st.radio("Kernel size", KERNEL_SIZES, format_func=lambda k: f"{k}×{k}", horizontal=True,
                               key="conv_kernel_size", on_change=load_preset)
        normalise = st.toggle("Normalise the kernel", key="conv_normalise",
                              help="Divide by the sum of the weights (or, if they sum to zero, by the sum of "
                                   "their absolute values) so the output stays in the input's range.")
    with sliding_column:
        stride = st.select_slider("Stride S", STRIDES, key="conv_stride")
        # One click, every choice in view (a projector shows them all): no list to open.
        st.session_state.setdefault("conv_padding", PADDINGS[0])
        padding = st.segmented_control("Padding P (zeros on each side)", PADDINGS, key="conv_padding",
                                       required=True, format_func=str)
        flip = st.toggle("Flip kernel (true convolution)", key="conv_flip",
                         help="Off: cross-correlation, which is what Keras' Conv2D computes. On: the kernel is "
                              "turned by 180° first, which is convolution in the mathematical sense.")
        apply_relu = st.toggle("ReLU after the convolution", key="conv_relu",
                               help="max(0, x): negative responses become 0, as in a Conv2D with activation='relu'.")
    editor = st.expander(f"Edit the kernel's weights ({kernel_size}×{kernel_size}), or type or paste a kernel",
                         key=GRID_OPEN_KEY, on_change="rerun", icon=":material/edit:")
    if editor.open:
        with editor:
            grid_rows = []
            for row in range(kernel_size):
                cells = st.columns(kernel_size, gap="small")
                grid_rows.append([cells[col].number_input(f"weight ({row + 1}, {col + 1})", step=0.1, format="%g",
                                                          key=cell_key(row, col), label_visibility="collapsed")
                                  for col in range(kernel_size)])
            st.text_area("Or type rows of numbers, one row per line (or separated by ';')", key="conv_kernel_text",
                         placeholder="-1 -1 -1\n-1 8 -1\n-1 -1 -1", height=110)
            st.button("Use this kernel", key="conv_kernel_apply", on_click=apply_typed_kernel)
    else:  # The grid's values as the preset, size, last edit or last kernel left them.
        grid_rows = [[st.session_state[cell_key(row, col)] for col in range(kernel_size)] for row in range(kernel_size)]
        # Assigned again as plain state: once its number inputs are gone, Streamlit drops their
        # values (the last edits) and would show the values assigned before them.
        write_grid(np.asarray(grid_rows, dtype=float))
    text_error = st.session_state.pop(TEXT_ERROR_KEY, None)  # Shown once, right after the click.
    if text_error:
        ui.show_message("error", text_error, prefix="That kernel was not used: ", icon=":material/error:")
    try:
        raw_kernel = lab.grid_kernel(grid_rows)
    except CnnvizError as error:
        ui.show_error(error, prefix="The kernel cannot be used: ")
        st.stop()
    st.session_state[KERNEL_VIEW_KEY] = raw_kernel.tolist()
    return Settings(raw_kernel, kernel_size, normalise, stride, cast(conv.Padding, padding), flip, apply_relu)


# ----------------------------------------------------------------------------------------------
# Input → kernel → output, with the shape question beside the figure
# ----------------------------------------------------------------------------------------------

def answer_quiz(quiz_key: tuple, with_guess: bool) -> None:
    """The "Check my prediction" / "Just show me" callback: remember the answer for this shape question."""
    guess = (st.session_state.get("conv_guess_h"), st.session_state.get("conv_guess_w")) if with_guess else None
    st.session_state[QUIZ_ANSWER_KEY] = (quiz_key, guess)


def quiz_box(view: lab.LabView, settings: Settings) -> None:
    """The shape question: it sits beside the figures, which stay visible."""
    image_height, image_width = view.image.shape[:2]
    with st.container(border=True):
        st.markdown(f"**Predict: how big is the output?** Input {image_height} × {image_width}, kernel "
                    f"{settings.kernel_size} × {settings.kernel_size}, stride {settings.stride}, "
                    f"padding {settings.padding}.")
        st.number_input("Output height", min_value=0, max_value=1000, value=None, step=1,
                        key="conv_guess_h", placeholder="rows")
        st.number_input("Output width", min_value=0, max_value=1000, value=None, step=1,
                        key="conv_guess_w", placeholder="columns")
        st.button("Check", key="conv_check", on_click=answer_quiz, args=(view.quiz_key, True), type="primary",
                  help="Check my prediction")
        st.button("Just show me", key="conv_reveal", on_click=answer_quiz, args=(view.quiz_key, False))
        st.caption("Hint: (W − F + 2P) / S + 1, rounded down.")
        if ui.lecturer_of():  # A lecturer in a class can send this very question to the room.
            ui.send_to_class(poll_question(image_height, image_width, settings.kernel_size, settings.stride,
                                           settings.padding), key="conv_send_to_class")


def main_figure(view: lab.LabView, settings: Settings, description: str, image_scale: str) -> None:
    """Section 2: input, kernel and output; the shape question (if on) beside them; the formula."""
    image, kernel, output = view.image, view.kernel, view.output
    image_height, image_width = image.shape[:2]
    out_height, out_width = output.shape[:2]
    st.header("2 · Input, kernel, output")
    st.caption(f"Image: {description} — {image_height} × {image_width}"
               + (" × 3 (one result per channel)" if view.is_color else ""))
    st.session_state.setdefault("conv_quiz", not ui.presenter_mode())
    quiz = st.toggle("Check yourself: predict the output shape", key="conv_quiz",
                     help="A question beside the figure; the figures stay visible.")
    answer = st.session_state.get(QUIZ_ANSWER_KEY)
    answered = answer is not None and answer[0] == view.quiz_key
    asking = quiz and not answered
    # While asking, the output's size is not written on the figure (the question is beside it).
    size_text = "" if asking else f" ({out_height} × {out_width})"
    widths = [5, 3 + (settings.kernel_size - 3) // 2, 5] + ([4] if asking else [])
    with ui.key_figure():
        columns = st.columns(widths)
    with columns[0]:
        ui.map_chart(figures.image_figure(image, title=f"Input ({image_height} × {image_width})",
                                          scale=image_scale), key="conv_input_chart")
    with columns[1]:
        kernel_title = "Kernel (normalised)" if settings.normalise else "Kernel"
        ui.map_chart(figures.kernel_figure(kernel, title=kernel_title), key="conv_kernel_chart")
    with columns[2]:
        if view.is_color:
            st.markdown(f"**Output{size_text}**: the kernel is applied to each channel separately; the three "
                        "results are below.")
        else:
            ui.map_chart(figures.signed_map_figure(output, title=f"Output{size_text}"),
                         key="conv_output_chart")
    if asking:
        with columns[3]:
            quiz_box(view, settings)
    if view.is_color:
        maps = [(f"{name} channel result", output[:, :, index]) for index, name in enumerate(view.channel_names)]
        ui.map_chart(figures.map_grid_figure(maps, columns=3, height_per_row=360), key="conv_output_chart")
    if asking:
        return
    guess = answer[1] if quiz and answer is not None and answered else None
    if guess is not None:
        if guess == (out_height, out_width):
            st.success(f"Right: the output is {out_height} × {out_width}.", icon=":material/check_circle:")
        else:
            shown = " × ".join("?" if value is None else str(int(value)) for value in guess)
            st.warning(f"Not quite: you predicted {shown}, the output is {out_height} × {out_width}. "
                       "The formula below shows where each number comes from.", icon=":material/school:")
    with st.container(border=True):
        depth = " × 3" if view.is_color else ""
        st.markdown(f"**Output shape: {out_height} × {out_width}{depth}** "
                    f"using {view.height.general} with W = input size, F = kernel size, P = padding, S = stride")
        st.markdown(f"- height: `{view.height.substituted}`\n- width: `{view.width.substituted}`")
        st.caption(view.height.note)
        st.caption(f"Output values: min {output.min():.4g}, max {output.max():.4g}, mean {output.mean():.4g}.",
                   help="Summary of the feature map shown above.")


# ----------------------------------------------------------------------------------------------
# Step through (its own fragment: a step or a Play frame reruns only this)
# ----------------------------------------------------------------------------------------------

def toggle_play() -> None:
    """The Play/Pause callback: start from the top-left position, or pause where the window is."""
    playing = not st.session_state.get("conv_playing", False)
    st.session_state.conv_playing = playing
    if playing:
        st.session_state.conv_row = st.session_state.conv_col = 0


def position_slider(label: str, count: int, key: str) -> int:
    """A slider over 0..count-1; a single position needs no slider."""
    if count == 1:
        st.session_state[key] = 0
        st.caption(f"{label}: 0 (the output has only one)")
        return 0
    cap(key, count - 1)
    return st.slider(label, 0, count - 1, key=key)


def step_through(view: lab.LabView, image_scale: str) -> None:
    """Section 3's body; while playing it runs on its own every PLAY_INTERVAL_SECONDS, advancing the window."""
    with part("step", nested=True):
        draw_step(view, image_scale)


def draw_step(view: lab.LabView, image_scale: str) -> None:
    out_height, out_width = view.output.shape[:2]
    step_size = max(1, out_width // 12)
    if not st.session_state.conv_playing and st.session_state.get(PLAY_TIMER_KEY):
        # Paused by a click whose rerun reached only this fragment (it was merged into a run of
        # the fragment's own timer): the lab, with the button's label and the timer, was not drawn
        # again. Draw it now, once, without the timer.
        st.session_state[PLAY_TIMER_KEY] = False
        st.rerun(scope="app")
    if st.session_state.conv_playing:
        position = conv.next_position(min(st.session_state.conv_row, out_height - 1),
                                      min(st.session_state.conv_col, out_width - 1), out_height, out_width,
                                      st.session_state.get("conv_play_step", step_size))
        if position is None:
            st.session_state.conv_playing = False
            st.rerun(scope="app")  # Once, at the end: the lab is declared again without its timer.
        st.session_state.conv_row, st.session_state.conv_col = position
    controls = st.columns([3, 3, 2])
    with controls[0]:
        row = position_slider("Output row", out_height, "conv_row")
    with controls[1]:
        col = position_slider("Output column", out_width, "conv_col")
    with controls[2]:
        channel = None
        if view.is_color:
            channel = st.selectbox("Channel", range(3), format_func=lambda c: view.channel_names[c],
                                   key="conv_step_channel")
        if st.session_state.get("conv_play_step") not in PLAY_JUMPS:
            st.session_state.conv_play_step = min(PLAY_JUMPS, key=lambda s: abs(s - step_size))
        st.select_slider("Play jump", PLAY_JUMPS, key="conv_play_step",
                         help="How many positions the window moves per frame.")

    step = lab.step_view(view, row, col, channel)
    detail, padded = step.detail, step.padded
    # Large images are shown zoomed around the window, so that a 3x3 window stays visible.
    top, bottom = figures.zoom_bounds(padded.shape[0], step.centre[0], STEP_ZOOM)
    left_edge, right_edge = figures.zoom_bounds(padded.shape[1], step.centre[1], STEP_ZOOM)
    zoomed = padded.shape[0] > STEP_ZOOM or padded.shape[1] > STEP_ZOOM
    out_top, out_bottom = figures.zoom_bounds(step.values.shape[0], row, STEP_ZOOM)
    out_left, out_right = figures.zoom_bounds(step.values.shape[1], col, STEP_ZOOM)
    left, middle, right = st.columns([4, 4, 5])
    with left:
        title = "Input with padding" + (" (zoomed)" if zoomed else "") + ": the window is outlined"
        ui.map_chart(figures.image_figure(padded[top:bottom, left_edge:right_edge], title=title,
                                          scale=image_scale, row0=top - step.pad_top,
                                          col0=left_edge - step.pad_left,
                                          window=(detail.top, detail.left, detail.bottom, detail.right)),
                     key="conv_step_input_chart")
    with middle:
        ui.map_chart(figures.signed_map_figure(step.values[out_top:out_bottom, out_left:out_right],
                                               title=f"Output: position ({row}, {col})", highlight=(row, col),
                                               row0=out_top, col0=out_left, signed_limit=step.signed_limit),
                     key="conv_step_output_chart")
    with right:
        ui.map_chart(figures.window_figure(detail.window, detail.kernel, detail.products),
                     key="conv_window_chart")
    st.markdown(f"**Output ({row}, {col})** = sum of the products"
                + (" (the kernel is flipped by 180° for true convolution)" if view.flip else "") + ":")
    st.code(detail.equation(), language=None, wrap_lines=True)
    if view.relu:
        st.caption(f"ReLU: max(0, {detail.total:.4g}) = {max(0.0, detail.total):.4g}")


# ----------------------------------------------------------------------------------------------
# Pooling (its own fragment)
# ----------------------------------------------------------------------------------------------

@st.fragment
def pooling_section(view: lab.LabView) -> None:
    with part("pooling", nested=True):
        draw_pooling(view)


def draw_pooling(view: lab.LabView) -> None:
    output = view.output
    out_height, out_width = output.shape[:2]
    pool_columns = st.columns([2, 5])
    with pool_columns[0]:
        pool_kind = st.radio("Pooling", ("max", "avg"), horizontal=True, key="conv_pool_kind",
                             format_func=lambda k: "max" if k == "max" else "average")
        pool_size = st.select_slider("Pool size", (2, 3, 4), key="conv_pool_size")
        pool_stride = st.select_slider("Pool stride", (1, 2, 3, 4), key="conv_pool_stride")
    with pool_columns[1]:
        try:
            pooled_view = pool_view(output, pool_size, pool_stride, pool_kind)
        except CnnvizError as error:
            ui.show_error(error, kind="warning", icon=":material/warning:")
            return
        pooled = pooled_view.pooled
        pooled_height, pooled_width = pooled.shape[:2]
        st.markdown(f"**{out_height} × {out_width} → {pooled_height} × {pooled_width}**: "
                    f"`{pooled_view.explained.substituted}` (no weights: a pool only takes the "
                    f"{pooled_view.takes} of each window).")
        if pooled.ndim == 3:
            maps = [(f"{name}, pooled", pooled[:, :, index]) for index, name in enumerate(view.channel_names)]
            ui.map_chart(figures.map_grid_figure(maps, columns=3, height_per_row=240), key="conv_pool_chart")
        else:
            ui.map_chart(figures.signed_map_figure(pooled, title=f"{pool_kind} pooled ({pooled_height} × "
                                                                   f"{pooled_width})", height=320),
                         key="conv_pool_chart")


# ----------------------------------------------------------------------------------------------
# Sections 1-4: one fragment, so that a kernel or setting change reruns only these
# ----------------------------------------------------------------------------------------------

@st.fragment
def kernel_lab(pixels: np.ndarray, description: str, per_channel: bool, image_scale: str) -> None:
    with part("lab"):
        draw_lab(pixels, description, per_channel, image_scale)


def draw_lab(pixels: np.ndarray, description: str, per_channel: bool, image_scale: str) -> None:
    resend_if_hidden(LAB_DRAWN_KEY, ["conv_row", "conv_col", "conv_step_channel", "conv_play_step",
                                     "conv_pool_kind", "conv_pool_size", "conv_pool_stride"])
    settings = kernel_settings_ui()
    try:
        view = lab_view(pixels, settings.kernel, per_channel, settings.stride, settings.padding, settings.flip,
                        settings.relu, settings.normalise)
    except CnnvizError as error:
        ui.show_error(error, prefix="These settings do not fit this image: ")
        return
    main_figure(view, settings, description, image_scale)

    st.header("3 · Step through")
    st.caption("Pick one output position: the window it reads is outlined on the (padded) input, and its "
               "value is the sum of the products of window and kernel.")
    playing = st.session_state.conv_playing
    # Play/Pause reruns this fragment, which declares the step-through again with (or without) its timer.
    st.button("Pause" if playing else "Play", key="conv_play", on_click=toggle_play,
              icon=":material/pause:" if playing else ":material/play_arrow:",
              help="Slide the window across the image, row by row.")
    if st.toggle("Sweep in the browser (fast)", key="conv_sweep",
                 help="A figure that animates the window over every output position by itself: press ▶ Sweep "
                      f"on it. The browser plays about {1000 // SWEEP_FRAME_MS} positions per second, without "
                      "the server."):
        channel = st.session_state.get("conv_step_channel") if view.is_color else None
        first = lab.step_view(view, 0, 0, channel)
        ui.plotly_chart(figures.sweep_figure(first.padded, first.values, pad_top=first.pad_top,
                                             pad_left=first.pad_left, kernel_size=view.kernel_size,
                                             stride=view.stride, scale=image_scale, frame_ms=SWEEP_FRAME_MS,
                                             signed_limit=first.signed_limit),
                        key="conv_sweep_chart")
    st.session_state[PLAY_TIMER_KEY] = playing  # Whether the step-through below runs on a timer.
    st.fragment(step_through, run_every=PLAY_INTERVAL_SECONDS if playing else None)(view, image_scale)
    st.header("4 · Pooling the feature map")
    pooling_section(view)
    mark_drawn(LAB_DRAWN_KEY)


# ----------------------------------------------------------------------------------------------
# Colour: one 3x3x3 filter, and eight random ones (its own fragment)
# ----------------------------------------------------------------------------------------------

@st.fragment
def colour_section(pixels: np.ndarray, is_color: bool, image_scale: str) -> None:
    with part("colour"):
        draw_colour(pixels, is_color, image_scale)


def draw_colour(pixels: np.ndarray, is_color: bool, image_scale: str) -> None:
    st.header("5 · Colour: one filter sees all three channels")
    if not is_color:
        st.caption("The chosen image is gray, so this section uses the built-in colour test card.")
    color_controls = st.columns([3, 2, 2])
    color_name = color_controls[0].selectbox("3×3×3 filter", lab.COLOR_FILTERS, key="conv_color_filter")
    color_seed = color_controls[1].number_input("Random seed", min_value=0, max_value=10_000, step=1,
                                                key="conv_random_seed")
    color_relu = color_controls[2].toggle("ReLU", key="conv_color_relu")
    colour = colour_view(pixels, color_name, int(color_seed), color_relu)
    st.markdown("A Conv2D filter on an RGB image has a 3 × 3 kernel **per channel** (3 × 3 × 3 = 27 weights "
                "plus one bias). Each slice is slid over its own channel, and the three results are **added** "
                "into one feature map: output = R ⋆ k_R + G ⋆ k_G + B ⋆ k_B"
                + (", then ReLU." if color_relu else "."))
    maps: list[tuple[str, np.ndarray | None]] = [
        (f"{name} channel", colour.image[:, :, index]) for index, name in enumerate(images.CHANNEL_NAMES)]
    maps.append(("the image", colour.image))
    maps += [(f"k_{name[0].upper()}", colour.kernel[:, :, index]) for index, name in enumerate(images.CHANNEL_NAMES)]
    maps.append(("", None))
    maps += [(f"{name} ⋆ k_{name[0].upper()}", colour.per_channel[index])
             for index, name in enumerate(images.CHANNEL_NAMES)]
    maps.append(("sum = one feature map", colour.summed))
    ui.plotly_chart(figures.map_grid_figure(maps, columns=4, height_per_row=230, scale=image_scale),
                    key="conv_color_chart")

    st.subheader("Eight random filters: untrained feature detectors")
    st.caption("Each map comes from a different random 3×3×3 filter drawn like Keras' default initialiser. "
               "Some happen to respond to edges, some to colours, some to almost nothing: training is what "
               "turns such random detectors into useful ones. Change the seed to draw eight more.")
    ui.plotly_chart(figures.map_grid_figure([(f"filter {index + 1}", values)
                                             for index, values in enumerate(colour.random_maps)],
                                            columns=4, height_per_row=220, shared_scale=True),
                    key="conv_random_chart")


with part("page"):
    kernel_lab(pixels, chosen.description, color_mode == COLOR_MODES[1], image_scale)
    colour_section(pixels, is_color, image_scale)
    mark_drawn(PAGE_DRAWN_KEY)
