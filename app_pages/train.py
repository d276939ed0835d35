"""Train a small CNN: choose data, a network and hyper-parameters, watch it learn, then look inside.

The page reads top to bottom: the settings (data, architecture, hyper-parameters) make one
`TrainConfig`; the Train button hands it to the shared engine through `ui.train_with_progress`
(live curves, Stop); the last result stays in session state so that exploring it (a confusion
cell, a test image, an upload) never retrains. TensorFlow is only loaded once training or the
analysis of a trained model needs it (inside `cnnviz.training` and `cnnviz.lessons.train`).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import streamlit as st

from cnnviz import architecture, data, parsing, training
from cnnviz.architecture.layers import shape_text
from cnnviz.errors import CnnvizError
from cnnviz.figures import explain as explain_figures
from cnnviz.figures import train as train_figures
from cnnviz.figures.style import PRESENTER_FONT_SIZE
from cnnviz.lessons import explain as explain_lesson
from cnnviz.lessons import train as train_lesson
from cnnviz.shareable import Param
from cnnviz.training import OPTIMIZERS, TrainConfig
from widgets import ui

# Presets offered for training: the seeds' networks, the 2-unit bottleneck net and a small ResNet. Each is
# re-targeted by `architecture.stack_for` to the chosen dataset's image shape and class count.
TRAINABLE_PRESETS = ("fashion_relu_cnn", "lenet5_tanh", "cifar10_cnn", "bottleneck_cnn", "small_resnet")
CUSTOM = "custom"
# The default run (subset sizes, hyper-parameters; the preset is the dataset spec's) lives in one
# place that `python -m cnnviz warmup` also pre-trains: `cnnviz.lessons.train.default_config`.
GRID_MODES = {"random": "a random sample", "first": "the first test images", "errors": "mistakes only"}
CELL_IMAGES_SHOWN = 40
RESULT_KEY = "train_result"
REQUEST_KEY = "train_requested"
CLICKED_AT_KEY = "train_clicked_at"  # time.monotonic() of the last Train click (set by its on_click).
WAITED_KEY = "train_waited"  # {"config": key, "clicked_at": monotonic time, "seconds": the wait, once known}.
# On the first training of a server process only: time for the server to send the "Loading
# TensorFlow…" notice before the import starts (it holds Python's lock for up to ~1 s at a time).
NOTICE_FLUSH_SECONDS = 0.25

CUSTOM_STACK_KEY = "train_custom_stack"  # The last valid custom stack (plain state, shared in links).


def _is_layer_list(value) -> bool:
    return (isinstance(value, list) and 0 < len(value) <= 60
            and all(isinstance(layer, dict) and layer.get("type") in architecture.LAYER_TYPES for layer in value))


SHARED_PARAMS = [
    Param("train_dataset", "choice", choices=data.DATASETS + (ui.CLASS_FOLDERS,)),
    Param("train_full_data", "bool"),
    Param("train_limit_train", "int", minimum=50, maximum=60_000),
    Param("train_limit_test", "int", minimum=50, maximum=10_000),
    Param("train_preset", "choice", choices=TRAINABLE_PRESETS + (CUSTOM,)),
    Param(CUSTOM_STACK_KEY, "json", validate=lambda value: _is_layer_list(value)),
    Param("train_optimizer", "choice", choices=OPTIMIZERS),
    Param("train_learning_rate", "float", minimum=1e-6, maximum=100.0),
    Param("train_batch_size", "int", minimum=1, maximum=4096),
    Param("train_epochs", "int", minimum=0, maximum=100),
    Param("train_seed", "int", minimum=0, maximum=2**31 - 1),
    Param("train_fast", "bool"),
    Param("train_record_gradients", "bool"),
    Param("train_grid_mode", "choice", choices=tuple(GRID_MODES)),
    Param("train_image_index", "int", minimum=0, maximum=10_000),
]


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------

def data_settings_ui():
    """Dataset and subset sizes; returns (dataset, limit_train, limit_test) after loading the data."""
    st.subheader("1 · Data")
    left, middle, right = st.columns([2, 1, 1])
    with left:
        name = ui.dataset_selectbox("train_dataset", class_folders=True)
    if name == ui.CLASS_FOLDERS:  # The student's own images: all of them, split as the zip says or as chosen.
        dataset = ui.class_folder_dataset_or_stop("train_folders")
        ui.small_data_defaults(dataset, train_lesson.DEFAULT_HYPERPARAMETERS,
                               {"batch_size": "train_batch_size", "epochs": "train_epochs"})
        return dataset, None, None
    with left:
        full = st.checkbox("Use all the data", key="train_full_data",
                           help="Every training and test image of the dataset: slower, a little more accurate.")
    with middle:
        limit_train = st.number_input("Training images", min_value=50, max_value=60_000, value=train_lesson.DEFAULT_TRAIN_IMAGES,
                                      step=1_000, key="train_limit_train", disabled=full,
                                      help="A stratified subset: every class equally represented.")
    with right:
        limit_test = st.number_input("Test images", min_value=50, max_value=10_000, value=train_lesson.DEFAULT_TEST_IMAGES,
                                     step=500, key="train_limit_test", disabled=full,
                                     help="Held-out images for validation after every epoch and for the analysis.")
    if full:
        limit_train = limit_test = None
    seed = int(st.session_state.get("train_seed", 0))
    dataset = ui.load_dataset_or_stop(name, limit_train=limit_train, limit_test=limit_test, seed=seed)
    return dataset, limit_train, limit_test


def architecture_ui(dataset) -> list[dict] | None:
    """Preset or custom stack; shows the layer table and parameter count. None when the stack is impossible."""
    st.subheader("2 · Architecture")
    options = TRAINABLE_PRESETS + (CUSTOM,)
    if "train_preset" not in st.session_state:
        st.session_state["train_preset"] = data.spec(dataset.name).default_preset
    choice = st.selectbox(
        "Network", options, key="train_preset",
        format_func=lambda key: "Custom stack" if key == CUSTOM else architecture.PRESETS[key].title,
        help="Presets are re-targeted to the dataset: same layers, the dataset's image size and classes.")
    try:
        if choice == CUSTOM:
            stack = custom_stack_ui(dataset)
            if stack is None:
                return None
            rows = architecture.summarize(dataset.image_shape, stack)
            # The canonical form (Keras defaults left out) so equal stacks give equal cache keys.
            stack = [architecture.compact_layer(row.config) for row in rows]
            st.session_state[CUSTOM_STACK_KEY] = stack
        else:
            st.session_state["_train_last_preset"] = choice
            st.session_state.pop(CUSTOM_STACK_KEY, None)  # "Custom stack" will start from this preset.
            st.caption(architecture.PRESETS[choice].description)
            stack = architecture.stack_for(choice, dataset.image_shape, dataset.num_classes)
            rows = architecture.summarize(dataset.image_shape, stack)
    except CnnvizError as error:
        ui.show_error(error, prefix=f"This stack cannot work on {shape_text(dataset.image_shape)} images: ")
        return None
    problem = architecture.classifier_head_problem(rows, dataset.num_classes, data.spec(dataset.name).title)
    if problem:
        ui.show_message("error", problem, icon=":material/error:")
        return None
    total = architecture.totals(rows)
    st.markdown(f"**{total.params:,} parameters** in {len(rows)} layers, input {shape_text(dataset.image_shape)}.")
    with st.expander("Layer by layer"):
        st.dataframe(
            [{"layer": row.name, "what": row.description, "output shape": shape_text(row.output_shape),
              "parameters": row.params, "how": row.formula} for row in rows],
            hide_index=True, width="stretch")
    return stack


def custom_stack_ui(dataset) -> list[dict] | None:
    """A custom layer stack, edited as a table as in the calculator (or pasted as JSON); None while invalid."""
    with st.expander("Start from a stack pasted as JSON (for example exported from the calculator)"):
        text = st.text_area("Layer stack as JSON", key="train_stack_json", height=140,
                            placeholder='{"input_shape": [28, 28, 1], "layers": [{"type": "conv2d", ...}, ...]}',
                            help="A list of layers, or the calculator's export with input_shape and layers. "
                                 "The input shape is always the dataset's.")
    # The table starts from the preset chosen before switching to "Custom stack".
    base = st.session_state.get("_train_last_preset", data.spec(dataset.name).default_preset)
    try:
        start = architecture.stack_for(base, dataset.image_shape, dataset.num_classes)
    except CnnvizError:
        start = architecture.stack_for(data.spec(dataset.name).default_preset, dataset.image_shape, dataset.num_classes)
    if _is_layer_list(st.session_state.get(CUSTOM_STACK_KEY)):
        # The stack from a shared link, or the last valid edit (fed back so that it survives a page switch).
        start = st.session_state[CUSTOM_STACK_KEY]
    if text.strip():
        try:
            document = parsing.parse_json(text, what="The pasted stack")
        except CnnvizError as error:
            ui.show_error(error)
            return None
        layers = document.get("layers") if isinstance(document, dict) else document
        if not isinstance(layers, list) or not layers or not all(isinstance(layer, dict) for layer in layers):
            st.error('Paste a list of layers such as [{"type": "flatten"}, {"type": "dense", "units": 10, '
                     '"activation": "softmax"}], or an object with a "layers" list.', icon=":material/error:")
            return None
        start = layers
    stack = ui.layer_stack_editor("train_stack", start, input_shape=dataset.image_shape)
    if not stack:
        st.error("The stack is empty: add at least a Flatten and a Dense output layer.", icon=":material/error:")
        return None
    return stack


def hyperparameters_ui():
    """Optimizer, learning rate, batch size, epochs, seed and the engine's speed switch."""
    st.subheader("3 · Hyper-parameters")
    # The learning rate's column is the widest: "0.0030" and its +/- buttons fit at 1280 px.
    columns = st.columns([1, 1.3, 1, 0.9, 0.9])
    optimizer = columns[0].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(train_lesson.DEFAULT_HYPERPARAMETERS["optimizer"]),
                                     key="train_optimizer",
                                     format_func={"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}.get)
    learning_rate = columns[1].number_input(
        "Learning rate", min_value=1e-6, max_value=100.0, value=train_lesson.DEFAULT_HYPERPARAMETERS["learning_rate"], step=0.001, format="%.4f",
        key="train_learning_rate", help="Step size of each update. Try 10 to see training blow up.")
    batch_size = columns[2].number_input("Batch size", min_value=1, max_value=4096, value=train_lesson.DEFAULT_HYPERPARAMETERS["batch_size"], step=32,
                                         key="train_batch_size", help="Images per weight update.")
    epochs = columns[3].number_input("Epochs", min_value=0, max_value=100, value=train_lesson.DEFAULT_HYPERPARAMETERS["epochs"], step=1, key="train_epochs",
                                     help="Passes over the training images.")
    seed = columns[4].number_input("Seed", min_value=0, max_value=2**31 - 1, value=train_lesson.DEFAULT_HYPERPARAMETERS["seed"], step=1, key="train_seed",
                                   help="Same seed and settings: the same curves again.")
    fast = st.toggle("Fast engine", value=train_lesson.DEFAULT_HYPERPARAMETERS["fast"], key="train_fast",
                     help="Several batches per graph call and a warm-up + cosine learning-rate schedule "
                          "(the learning rate above is the peak). Off: plain model.fit at a constant rate.")
    record = st.checkbox("Record gradients and weights (explain training)", value=False, key="train_record_gradients",
                         help="At the start and after every epoch, each layer's gradient norm and a histogram of its "
                              "weights, measured on one fixed batch; the page *What the network looks at* plots them.")
    return {"optimizer": optimizer, "learning_rate": float(learning_rate), "batch_size": int(batch_size),
            "epochs": int(epochs), "seed": int(seed), "fast": bool(fast), "record_gradients": bool(record)}


def _caption_font() -> int:
    """Caption size of image grids: presenter mode enlarges figure text, so grids leave room for it."""
    return PRESENTER_FONT_SIZE - 2 if ui.presenter_mode() else 11


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

def training_ui(config: TrainConfig | None, dataset):
    """The Train button and the run; returns (result or None, whether the engine showed its messages).

    The settings are checked by `TrainConfig.validate` on the loaded training set (its message is
    shown as it is), and a request carries the dataset loaded for it, so nothing loads it again.
    """
    ready = config is not None
    if config is not None:
        try:
            config.validate(train_images=len(dataset.x_train), test_images=len(dataset.x_test))
        except CnnvizError as error:
            ui.show_error(error)
            ready = False
    clicked = st.button("Train", type="primary", icon=":material/play_arrow:", key="train_start",
                        disabled=not ready, on_click=_note_click_time)
    if clicked:
        # The request of THIS run: a value typed just before the click is already in its config (an
        # `on_click` callback would get the config of the previous run).
        st.session_state[REQUEST_KEY] = (config, dataset)
        if "tensorflow" not in sys.modules:
            # Nothing else moves on screen until TensorFlow has loaded (several seconds, the first time).
            st.toast("Loading TensorFlow… the first training on this server takes a few seconds to start.",
                     icon=":material/hourglass_top:", duration="long")
            time.sleep(NOTICE_FLUSH_SECONDS)
    request = st.session_state.get(REQUEST_KEY)
    stored = st.session_state.get(RESULT_KEY)
    if request is None and stored is None and ready and training.is_cached(config, data=dataset):
        # Pre-trained (`python -m cnnviz warmup`) or trained earlier on this server: shown at once.
        request = (config, dataset)
    if request is None:
        return stored, False
    requested, requested_data = request
    if not clicked and stored is not None and stored.config.key() == requested.key():
        return stored, False
    result = ui.train_with_progress(requested, key="train_run", fresh=clicked, data=requested_data)
    clicked_at = st.session_state.pop(CLICKED_AT_KEY, None)
    if result is None:
        # The engine explained the problem; do not start it again on the next rerun.
        st.session_state[REQUEST_KEY] = None
        return stored, True
    st.session_state[RESULT_KEY] = result
    if clicked_at is not None:
        st.session_state[WAITED_KEY] = {"config": result.config.key(), "clicked_at": clicked_at, "seconds": None}
    return result, True


def _note_click_time() -> None:
    """The Train button's on_click: runs before the script reruns, so the wait is counted from the click."""
    st.session_state[CLICKED_AT_KEY] = time.monotonic()


def wait_ui(slot, result) -> None:
    """Next to the training time: how long the student waited from the Train click until the results
    were drawn (measured once, when the run that got the result reaches this call; kept after)."""
    wait = st.session_state.get(WAITED_KEY)
    if wait is None or wait["config"] != result.config.key():
        return
    if wait["seconds"] is None:
        wait["seconds"] = time.monotonic() - wait["clicked_at"]
    slot.caption(f"You waited {wait['seconds']:.1f} s from the click to these results (TensorFlow, the data "
                 "and the model are prepared first).")


def outcome_messages(result, *, engine_spoke: bool) -> bool:
    """Say how training ended; returns False when the model is not worth analysing (it diverged)."""
    done = result.epochs_completed
    chance = 1.0 / max(1, result.num_classes)
    if result.stopped_reason == "diverged":
        if not engine_spoke:
            st.error(f"Training diverged after {done} epoch(s): the loss became NaN, infinite or exploded. "
                     f"A learning rate of {result.config.learning_rate:g} is too large: try one ten times smaller.",
                     icon=":material/trending_up:")
        return False
    if result.stopped_reason == "stopped" and not engine_spoke:
        st.warning(f"Training was stopped after {done} of {result.config.epochs} epoch(s); the analysis "
                   "below is for the model as it was then.", icon=":material/stop_circle:")
    if math.isfinite(result.test_accuracy) and result.test_accuracy <= 1.5 * chance and done:
        rate = result.config.learning_rate
        if rate >= 0.05:
            advice = f"With a learning rate of {rate:g} the updates overshoot; try 0.001 to 0.003."
        elif rate <= 1e-4:
            advice = f"A learning rate of {rate:g} takes tiny steps; try 0.001 to 0.003, or train for longer."
        else:
            advice = "Train for more epochs or on more images, or check the network."
        st.warning(f"Test accuracy {result.test_accuracy:.1%} is hardly better than guessing ({chance:.0%} for "
                   f"{result.num_classes} classes): the network learned (almost) nothing. {advice}",
                   icon=":material/warning:")
    return True


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

def _analysis(result) -> train_lesson.ResultAnalysis:
    """The result's test predictions and errors (computed once per result, kept for this session)."""
    cached = st.session_state.get("train_analysis")
    if cached is not None and cached[0] is result:
        return cached[1]
    analysis = train_lesson.analyse(result)
    st.session_state["train_analysis"] = (result, analysis)
    return analysis


def summary_ui(result):
    """The headline numbers and the replay; returns the slot beside the training time for `wait_ui`."""
    st.subheader("Training")
    history = result.history
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{result.test_accuracy:.1%}" if math.isfinite(result.test_accuracy) else "—")
    columns[1].metric("Epochs", f"{result.epochs_completed} / {result.config.epochs}")
    columns[2].metric("Training time", f"{sum(history.get('seconds', [])):.1f} s",
                      help="Wall-clock time of the epochs: training, then measuring on the test images "
                           "(the first epoch includes building the compiled model).")
    wait_slot = columns[2].empty()
    losses = history.get("loss", [])
    columns[3].metric("Final training loss", f"{losses[-1]:.3f}" if losses and math.isfinite(losses[-1]) else "—")
    ui.replay_training(result, key="train_replay")
    if result.from_cache:
        st.caption("This exact configuration was trained before on this server: the stored model is reused.")
    return wait_slot


def _apply_cell_click() -> None:
    """Plotly selection on the confusion matrix -> the pair of cell selectboxes."""
    event = st.session_state.get("train_confusion_chart")
    points = event.selection.points if event is not None else []
    if points:
        st.session_state["train_cell_true"] = int(round(points[0]["y"]))
        st.session_state["train_cell_predicted"] = int(round(points[0]["x"]))


def errors_ui(result, analysis: train_lesson.ResultAnalysis) -> None:
    names = result.class_names
    classes = range(len(names))
    confusion, pairs = analysis.confusion, analysis.pairs
    # A newly trained model opens on its most-confused pair; later choices are the student's.
    fresh_model = st.session_state.get("_train_cell_model") != result.config.key()
    if fresh_model or st.session_state.get("train_cell_true") not in classes:
        st.session_state["_train_cell_model"] = result.config.key()
        st.session_state["train_cell_true"], st.session_state["train_cell_predicted"] = analysis.first_cell
    if st.session_state.get("train_cell_predicted") not in classes:
        st.session_state["train_cell_predicted"] = 0
    true_class = st.session_state["train_cell_true"]
    predicted_class = st.session_state["train_cell_predicted"]

    st.subheader("Where the network goes wrong")
    st.markdown("**Confusion matrix**: rows are the true class, columns the predicted class; the number is a "
                "count of test images, the colour its share of the true class. **Click a cell** to see its images.")
    figure = train_figures.confusion_matrix_figure(confusion, names, selected=(true_class, predicted_class))
    ui.plotly_chart(figure, key="train_confusion_chart", on_select=_apply_cell_click, selection_mode="points")

    left, right = st.columns(2)
    with left:
        st.markdown("**Accuracy per class**")
        ui.plotly_chart(train_figures.per_class_accuracy_figure(
            analysis.per_class_accuracy, names, overall=analysis.accuracy), key="train_per_class_chart")
    with right:
        st.markdown("**Most-confused pairs**")
        if pairs:
            st.dataframe([{"true class": names[p.true_class], "predicted as": names[p.predicted_class],
                           "images": p.count, "% of class": f"{p.share_of_true_class:.0%}"}
                          for p in pairs], hide_index=True, width="stretch", key="train_pairs_table")
        else:
            st.success("No test image is misclassified.")

    pick_true, pick_predicted = st.columns(2)
    pick_true.selectbox("True class", list(classes), format_func=lambda i: names[i], key="train_cell_true")
    pick_predicted.selectbox("Predicted as", list(classes), format_func=lambda i: names[i],
                             key="train_cell_predicted")
    indices = analysis.cell(true_class, predicted_class)
    kind = "correctly classified" if true_class == predicted_class else "misclassified"
    st.markdown(f"**{len(indices)} {names[true_class]} test image(s) predicted as {names[predicted_class]}** "
                f"({kind}{'; the first ' + str(CELL_IMAGES_SHOWN) + ' shown' if len(indices) > CELL_IMAGES_SHOWN else ''}).")
    if len(indices):
        shown = indices[:CELL_IMAGES_SHOWN]
        confidence = analysis.probabilities[shown, predicted_class]
        titles = [f"#{index}<br>{value:.0%}" for index, value in zip(shown, confidence)]
        ui.plotly_chart(train_figures.image_grid_figure(
            analysis.images[shown], titles, errors=[true_class != predicted_class] * len(shown),
            columns=6 if ui.presenter_mode() else 10,
            tile_pixels=64, caption_font_pixels=_caption_font()), key="train_cell_images")


def prediction_grid_ui(result, analysis: train_lesson.ResultAnalysis) -> None:
    st.subheader("Test predictions")
    st.session_state.setdefault("train_grid_mode", "random")  # Not `default=`: a link may set it.
    mode = st.segmented_control("Show", list(GRID_MODES), format_func=GRID_MODES.get,
                                key="train_grid_mode") or "random"
    grid = train_lesson.prediction_grid(analysis.images, analysis.labels, analysis.probabilities,
                                      count=24, mode=mode, seed=result.config.seed)
    titles = train_figures.prediction_titles(grid.true_labels, grid.predicted_labels, result.class_names,
                                                grid.confidence)
    st.caption("Above each image: the predicted class and its probability. A mistake is framed and reads "
               "*true class → predicted class ✗*.")
    ui.plotly_chart(train_figures.image_grid_figure(grid.images, titles, errors=~grid.correct,
                                                       columns=4 if ui.presenter_mode() else 8,
                                                       tile_pixels=80, caption_font_pixels=_caption_font()),
                    key="train_grid_chart")


def filters_ui(result) -> None:
    st.subheader("What the first layer looks for")
    try:
        filters = train_lesson.first_layer_filters(result.model)
    except CnnvizError as error:
        ui.show_error(error, kind="info", icon=None)
        return
    count, height, width, channels = filters.weights.shape
    if filters.is_rgb:
        explanation = "each filter's three input channels shown as a colour picture (scaled per filter)"
    else:
        explanation = "red = positive weight, blue = negative; a filter fires where the image matches its pattern"
    st.caption(f"The {count} kernels of **{filters.layer_name}**, {height}×{width}×{channels} each: {explanation}.")
    ui.plotly_chart(train_figures.filters_figure(filters.weights), key="train_filters_chart")


def activations_ui(result, analysis: train_lesson.ResultAnalysis) -> None:
    st.subheader("Activation maps")
    layers = train_lesson.conv_layers(result.model)
    if not layers:
        st.info("This network has no convolution layer, so there are no activation maps to show.")
        return
    count = len(analysis.images)
    if st.session_state.get("train_image_index", 0) > count - 1:
        # A newer model may have fewer test images than the index chosen for the previous one.
        st.session_state["train_image_index"] = count - 1
    left, right = st.columns([1, 3])
    with left:
        if st.session_state.get("train_image_index", 0) > count - 1:  # A link made for a larger test set.
            st.session_state["train_image_index"] = 0
        index = int(st.number_input("Test image", min_value=0, max_value=count - 1, step=1,
                                    key="train_image_index", help=f"0 to {count - 1}"))
        image = analysis.images[index]
        names = result.class_names
        true, predicted = int(analysis.labels[index]), int(analysis.predicted[index])
        verdict = "✓" if true == predicted else "✗"
        st.image(image if image.shape[-1] == 3 else image[..., 0], width=140, clamp=True)
        st.markdown(f"true **{names[true]}**, predicted **{names[predicted]}** {verdict} "
                    f"({analysis.probabilities[index, predicted]:.0%})")
    with right:
        st.caption("What every convolution layer outputs for this image, after its activation: bright = "
                   "strong response. Deeper layers are smaller and more abstract. Dark channels did not fire.")
        for maps in train_lesson.feature_maps(result.model, image):
            ui.plotly_chart(train_figures.activation_maps_figure(maps.maps, layer_name=maps.layer_name),
                            key=f"train_maps_{maps.layer_name}")


def feature_space_ui(result, analysis: train_lesson.ResultAnalysis) -> None:
    st.subheader("2-D feature space")
    layer = train_lesson.bottleneck_layer(result.model)
    if layer is None:
        st.info("Only a network with a 2-unit Dense bottleneck has a feature space you can draw: choose "
                "*CNN with a 2-unit bottleneck* and train it.", icon=":material/scatter_plot:")
        return
    points = train_lesson.feature_space(result.model, analysis.images)
    st.caption(f"Each test image is squeezed to two numbers by **{layer.name}**; the softmax head classifies "
               "from them alone. Classes the network confuses overlap here.")
    if result.test_accuracy < 0.75:
        st.caption("The clusters sharpen with training: try 10 to 15 epochs for this network.")
    ui.plotly_chart(train_figures.feature_space_figure(points, analysis.labels, result.class_names),
                    key="train_feature_space_chart")


def upload_ui(result) -> None:
    st.subheader("Try your own image")
    upload_tab, draw_tab = st.tabs(["Upload a picture", "Draw one"])
    with upload_tab:
        _upload_part(result)
    with draw_tab:
        draw_ui(result)


def _upload_part(result) -> None:
    dataset = result.config.dataset
    dark = data.spec(dataset).dark_background
    upload = st.file_uploader("A PNG or JPEG picture", type=["png", "jpg", "jpeg", "webp", "bmp"],
                              key="train_upload")
    invert_choice = "auto"
    if dark:
        invert_choice = st.radio(
            "Invert colours", ["auto", "invert", "keep"], horizontal=True, key="train_upload_invert",
            format_func={"auto": "automatic (from the background)", "invert": "invert", "keep": "keep"}.get,
            help="The training images show a light object on a black background. A photo usually has a "
                 "light background, so it is inverted to look like the training data.")
    if upload is None:
        st.info("Upload a picture to see what the trained network makes of it.", icon=":material/upload:")
        return
    try:
        prepared = train_lesson.prepare_upload(upload.getvalue(), dataset,
                                             invert={"auto": None, "invert": True, "keep": False}[invert_choice])
    except CnnvizError as error:
        ui.show_error(error, icon=":material/broken_image:")
        return
    prediction_ui(result, prepared, key="train_upload_probabilities", picture="your picture")


def prediction_ui(result, prepared: train_lesson.PreparedUpload, *, key: str, picture: str) -> int:
    """A prepared picture (an upload or a drawing) beside the network's prediction; returns the predicted class."""
    probabilities = result.predict(prepared.image)[0]  # (num_classes,), under the model's lock
    left, right = st.columns([1, 2])
    with left:
        original, seen = st.columns(2)
        # The decoded uint8 picture, not the file: a 16-bit PNG or a CMYK JPEG is shown as the network gets it.
        original.image(prepared.original if prepared.original is not None else prepared.image[..., 0], width=110,
                       clamp=True, caption=picture)
        image = prepared.image
        seen.image(image if image.shape[-1] == 3 else image[..., 0], width=110, clamp=True,
                   caption="what the network sees")
        st.caption("Steps: " + ("; ".join(prepared.steps) or "none needed") + ".")
        for note in prepared.notes:
            st.caption(note)
    with right:
        best = int(np.argmax(probabilities))
        # Shown as text: a class folder's name is whatever its author typed.
        st.markdown(f"Prediction: **{ui.markdown_text(result.class_names[best])}** ({probabilities[best]:.0%})")
        ui.plotly_chart(train_figures.probabilities_figure(probabilities, result.class_names), key=key)
    return best


@st.fragment  # A stroke reruns only this part of the page.
def draw_ui(result) -> None:
    """Draw an input: the prediction with its probabilities, and Grad-CAM of the predicted class."""
    with ui.page_errors():  # A fragment rerun runs outside app.py's catch-all.
        _draw_part(result)


def _draw_part(result) -> None:
    st.caption("Draw with the mouse or a finger; the bin button above the pad clears it. The drawing is cropped, "
               "scaled and centred the way MNIST's digits were (its longer side 20/28 of the image, its centre of "
               "mass at the centre).")
    canvas = ui.drawing_pad("train_drawing")
    if canvas is None:
        st.info("Draw something on the pad to see what the trained network makes of it.", icon=":material/draw:")
        return
    try:
        prepared = train_lesson.prepare_drawing(canvas, result.config.dataset)
    except CnnvizError as error:
        ui.show_error(error, kind="info", icon=":material/draw:")
        return
    predicted = prediction_ui(result, prepared, key="train_draw_probabilities", picture="your drawing")
    if not explain_lesson.conv_layer_names(result):
        st.caption("This network has no convolution layer, so there is no Grad-CAM to show.")
        return
    try:
        view = explain_lesson.grad_cam_view(result, prepared.image, predicted)
    except CnnvizError as error:
        ui.show_error(error)
        return
    name = result.class_names[predicted]
    shown = ui.markdown_text(name)
    st.markdown(f"**Grad-CAM of {shown}** in {view.layer_name}: bright where the evidence for *{shown}* lies "
                "(the page *What the network looks at* explains more).")
    ui.plotly_chart(explain_figures.grad_cam_figure(prepared.image, [view.predicted_overlay], [f"why {name}?"]),
                    key="train_draw_gradcam")


def downloads_ui(result) -> None:
    st.subheader("Downloads")
    left, right = st.columns(2)
    stem = f"cnnviz-{result.config.dataset}-{result.config.key()[:8]}"
    left.download_button("Model (.keras)", data=result.model_bytes, file_name=f"{stem}.keras",
                         mime="application/octet-stream", icon=":material/download:", key="train_download_model",
                         on_click="ignore")
    right.download_button("History (CSV)", data=result.history_csv(), file_name=f"{stem}-history.csv",
                          mime="text/csv", icon=":material/download:", key="train_download_history",
                          on_click="ignore")


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

ui.page_header("Train a small CNN",
               "Pick data, a network and hyper-parameters; watch the curves grow; then open the trained "
               "model up: errors, filters, activation maps and a 2-D feature space.")
ui.restore_view(SHARED_PARAMS)

dataset, limit_train, limit_test = data_settings_ui()
stack = architecture_ui(dataset)
hyper = hyperparameters_ui()
ui.publish_view(SHARED_PARAMS)

config = None
if stack is not None:
    config = TrainConfig.from_stack(stack, dataset=dataset.name, limit_train=limit_train, limit_test=limit_test,
                                    **hyper)
ui.remember_train_config(config)  # The class page submits it to the leaderboard.

st.divider()
result, engine_spoke = training_ui(config, dataset)
if result is None:
    st.info("Press **Train** to train this network. The defaults take well under a minute.",
            icon=":material/model_training:")
    st.stop()

if config is not None and result.config.key() != config.key():
    st.caption(":material/history: The results below are for the last network you trained; press Train "
               "to train the current settings.")
worth_analysing = outcome_messages(result, engine_spoke=engine_spoke)
wait_slot = summary_ui(result)
if not worth_analysing:
    wait_ui(wait_slot, result)
    st.stop()

analysis = _analysis(result)
errors_ui(result, analysis)
prediction_grid_ui(result, analysis)
filters_ui(result)
activations_ui(result, analysis)
feature_space_ui(result, analysis)
upload_ui(result)
downloads_ui(result)
wait_ui(wait_slot, result)  # Last: the wait ends when the whole page is drawn.
