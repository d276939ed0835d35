"""What the network looks at: Grad-CAM, saliency and occlusion on a trained CNN, for one image.

The model is the one trained on the Train page in this session, or the default model (the Train
page's default run, pre-trained by `python -m cnnviz warmup`; otherwise a "Train it" button).
The image is a test image, an upload (the one decoder, via `cnnviz.lessons.train.prepare_upload`) or a
drawing (`ui.drawing_pad`, centred the MNIST way by `cnnviz.lessons.train.prepare_drawing`).
Explain training: the gradient norms and weight histograms the Train page recorded (its "Record
gradients and weights" checkbox), and a vanishing-gradients demonstration run as a background job
(shown at once when every network of it is in the disk cache, e.g. after `python -m cnnviz warmup`).
Each view: widgets -> one `cnnviz.lessons.explain` call -> a `cnnviz.figures.explain` figure.
TensorFlow loads only once a model is there to explain.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnviz import training
from cnnviz.errors import CnnvizError
from cnnviz.figures import explain as explain_figures
from cnnviz.figures import train as train_figures
from cnnviz.lessons import explain as explain_lesson
from cnnviz.lessons import train as train_lesson
from cnnviz.shareable import Param
from widgets import ui

TRAIN_PAGE_RESULT_KEY = "train_result"  # Where the Train page keeps its last result (app_pages/train.py).
DEFAULT_SLOT = "explain_default"
TRAIN_REQUESTED_KEY = "explain_train_requested"
OTHER_SLOT = "explain_other"
TRAINED, DEFAULT, OTHER = "trained", "default", "other"


def model_ui() -> training.TrainResult | None:
    """The model to explain: the Train page's result of this session, or the default model."""
    st.subheader("1 · The model")
    trained = st.session_state.get(TRAIN_PAGE_RESULT_KEY)
    usable = trained is not None and trained.stopped_reason != "diverged"
    others = explain_lesson.other_lesson_models()
    options = ((TRAINED,) if usable else ()) + (DEFAULT,) + ((OTHER,) if others else ())
    labels = {TRAINED: "the network you trained on the Train page",
              DEFAULT: "the default network (ReLU CNN on Fashion-MNIST)",
              OTHER: "a network from another lesson"}
    choice = st.radio("Explain", options, format_func=labels.get, key="explain_model", horizontal=True)
    if not usable:
        st.caption("Train a network on the *Train a small CNN* page to explain it here.")
    if choice == TRAINED and usable:
        return trained
    if choice == OTHER and others:
        names = [label for label, _ in others]
        label = st.selectbox("Network", names, key="explain_other_model")
        # In the disk cache (that is why it is offered): comes back at once.
        return ui.train_with_progress(dict(others)[label], key=OTHER_SLOT)
    config = explain_lesson.default_config()
    clicked = False
    if not st.session_state.get(TRAIN_REQUESTED_KEY) and not training.is_cached(config):
        st.info("The default network is not trained on this server yet (`python -m cnnviz warmup` pre-trains it).",
                icon=":material/model_training:")
        clicked = st.button("Train it", type="primary", icon=":material/play_arrow:", key="explain_train_default")
        if not clicked:
            return None
        st.session_state[TRAIN_REQUESTED_KEY] = True
    return ui.train_with_progress(config, key=DEFAULT_SLOT, fresh=clicked)


IMAGE_SOURCES = {"test": "a test image", "upload": "your own picture", "draw": "a drawing"}


def image_ui(result: training.TrainResult) -> tuple[np.ndarray, int | None]:
    """A test image (with its true class), an upload or a drawing (no true class)."""
    st.subheader("2 · The image")
    source = st.radio("Image", list(IMAGE_SOURCES), horizontal=True, key="explain_source",
                      format_func=IMAGE_SOURCES.get)
    if source == "draw":
        canvas = ui.drawing_pad("explain_drawing")
        if canvas is None:
            st.info("Draw on the pad with the mouse or a finger (white on black, like the training images), "
                    "or explain a test image meanwhile.", icon=":material/draw:")
        else:
            try:
                prepared = train_lesson.prepare_drawing(canvas, result.config.dataset)
            except CnnvizError as error:
                ui.show_error(error, kind="info", icon=":material/draw:")
            else:
                st.caption("Steps: " + "; ".join(prepared.steps) + ".")
                return prepared.image, None
    if source == "upload":
        upload = st.file_uploader("A PNG or JPEG picture", type=["png", "jpg", "jpeg", "webp", "bmp"],
                                  key="explain_upload")
        if upload is not None:
            try:
                prepared = train_lesson.prepare_upload(upload.getvalue(), result.config.dataset)
            except CnnvizError as error:
                ui.show_error(error, icon=":material/broken_image:")
                st.stop()
            st.caption("Steps: " + ("; ".join(prepared.steps) or "none needed") + ".")
            return prepared.image, None
        st.info("Upload a picture, or explain a test image meanwhile.", icon=":material/upload:")
    images, labels = result.test_data()
    count = len(images)
    if st.session_state.get("explain_index", 0) > count - 1:
        st.session_state["explain_index"] = 0
    index = int(st.slider("Test image", 0, count - 1, 0, key="explain_index"))
    return images[index], int(labels[index])


def grad_cam_ui(result, image, true_class: int | None) -> None:
    st.subheader("Grad-CAM: where the evidence for a class lies")
    layers = list(explain_lesson.conv_layer_names(result))
    if not layers:
        st.info("This network has no convolution layer, so Grad-CAM is unavailable; saliency and occlusion "
                "below still work.", icon=":material/info:")
        return
    names = result.class_names
    left, right = st.columns(2)
    default_class = true_class if true_class is not None else 0
    class_index = left.selectbox("Class to explain", list(range(len(names))), index=default_class,
                                 format_func=names.__getitem__, key="explain_class")
    layer = right.selectbox("Convolution layer", layers, index=len(layers) - 1, key="explain_layer",
                            help="Deeper layers see more of the image but at a coarser resolution.")
    try:
        view = explain_lesson.grad_cam_view(result, image, int(class_index), layer)
    except CnnvizError as error:
        ui.show_error(error)
        return
    predicted = view.predicted
    truth = f"true class **{names[true_class]}**, " if true_class is not None else ""
    st.markdown(f"{truth}predicted **{names[predicted]}** ({view.probabilities[predicted]:.0%}); "
                f"explaining **{names[view.chosen]}** ({view.probabilities[view.chosen]:.0%}).")
    titles = [f"why {names[view.chosen]}?", f"predicted: why {names[predicted]}?"]
    with ui.secondary("gradcam_reading"):
        st.caption(f"Bright = the parts of {view.layer_name}'s maps whose increase would raise that class's score "
                   "(before the softmax). Compare the two: what makes it one class and not the other?")
    with ui.key_figure():  # In presenter mode: under the title, on the first screen.
        ui.plotly_chart(explain_figures.grad_cam_figure(image, [view.chosen_overlay, view.predicted_overlay], titles),
                        key="explain_gradcam_chart")


def saliency_ui(result, image, class_index: int) -> None:
    st.subheader("Saliency: which pixels the score is sensitive to")
    try:
        view = explain_lesson.saliency_view(result, image, class_index)
    except CnnvizError as error:
        ui.show_error(error)
        return
    with ui.secondary("saliency_reading"):
        st.caption(f"How much the score of **{result.class_names[class_index]}** would change if one pixel changed "
                   "a little (bright = sensitive): it shows where the network looks, not whether that pixel "
                   f"argues for or against the class. SmoothGrad averages {view.samples} copies with noise, so "
                   "the speckle fades and the shape stays.")
    ui.plotly_chart(explain_figures.saliency_figure(image, view.plain, view.smooth), key="explain_saliency_chart")


def occlusion_ui(result, image, class_index: int) -> None:
    st.subheader("Occlusion: cover a patch, watch the probability")
    side = min(image.shape[:2])
    left, right = st.columns(2)
    patch = int(left.slider("Patch size (pixels)", 2, max(2, side // 2), min(4, side // 2), key="explain_patch"))
    stride = int(right.slider("Stride (pixels)", 1, 8, 2, key="explain_stride"))
    try:
        view = explain_lesson.occlusion_view(result, image, class_index, patch=patch, stride=stride)
    except CnnvizError as error:
        ui.show_error(error)
        return
    top, left_px = view.worst
    st.markdown(f"**{result.class_names[class_index]}**: {view.base_probability:.0%} on the whole image. "
                f"Covering the {patch}×{patch} patch at row {top}, column {left_px} drops it the most, "
                f"by {view.largest_drop:.0%}.")
    st.caption("Red: covering that patch (black) lowers the class probability; blue: covering it raises it.")
    ui.plotly_chart(explain_figures.occlusion_figure(image, view.drops, patch, stride), key="explain_occlusion_chart")


def break_ui(result, image) -> None:
    st.subheader("Break the model: paint over part of the image")
    height, width = image.shape[:2]
    st.caption("Paint a black square over the image and watch the prediction. Can you change its mind with a "
               "small square? The occlusion map above shows where to aim.")
    columns = st.columns(3)
    size = int(columns[0].slider("Square size (pixels)", 1, max(1, min(height, width) // 2), min(6, height // 2),
                                 key="explain_paint_size"))
    # Fixed ranges (a square near the edge is clipped), so changing the size never resets the position.
    top = int(columns[1].slider("Row", 0, height - 1, height // 3, key="explain_paint_top"))
    left = int(columns[2].slider("Column", 0, width - 1, width // 3, key="explain_paint_left"))
    view = explain_lesson.break_view(result, image, top, left, size)
    names = result.class_names
    before, after = view.predicted_before, view.predicted_after
    picture, verdict = st.columns([1, 3])
    picture.image(view.painted if view.painted.shape[-1] == 3 else view.painted[..., 0], width=140, clamp=True,
                  caption="painted")
    if view.broken:
        verdict.markdown(f"**Broken!** It now says **{names[after]}** ({view.after[after]:.0%}) instead of "
                         f"**{names[before]}** (now {view.after[before]:.0%}, was {view.before[before]:.0%}), "
                         f"with a {size}×{size} square.")
    else:
        verdict.markdown(f"Still **{names[before]}**: {view.before[before]:.0%} before, {view.after[before]:.0%} "
                         "with the square.")


def features_ui(result) -> None:
    st.subheader("Feature visualisation: what excites each filter")
    layers = list(explain_lesson.conv_layer_names(result))
    if not layers:
        st.info("This network has no convolution layer, so it has no filters to visualise.", icon=":material/info:")
        return
    layer = st.selectbox("Convolution layer", layers, key="explain_feature_layer")
    st.caption(f"For the first {explain_lesson.FEATURE_FILTERS} filters: a picture grown by gradient ascent from "
               "faint noise to make the filter's mean activation as large as possible (lightly smoothed), beside the "
               f"{explain_lesson.TOP_IMAGES} test images that excite it most. The number is the mean activation.")
    store = st.session_state.get("explain_features")
    wanted = (result.config.key(), id(result.model), layer)
    if st.button("Visualise the filters", icon=":material/auto_awesome:", key="explain_features_button"):
        with st.spinner("Growing one picture per filter…"):
            try:
                store = (wanted, explain_lesson.feature_view(result, layer))
            except CnnvizError as error:
                ui.show_error(error)
                return
        st.session_state["explain_features"] = store
    if store is None or store[0] != wanted:
        return
    view = store[1]
    tiles, titles = [], []
    for row, filter_index in enumerate(view.filters):
        tiles.append(view.pictures[row])
        titles.append(f"filter {filter_index}<br>{view.picture_activation[row]:.2f}")
        for rank in range(view.top_images.shape[1]):
            tiles.append(view.top_images[row, rank])
            titles.append(f"test #{rank + 1}<br>{view.top_activation[row, rank]:.2f}")
    ui.plotly_chart(train_figures.image_grid_figure(np.stack(tiles), titles, columns=2 * (1 + view.top_images.shape[1]),
                                                    tile_pixels=72), key="explain_features_chart")


def training_view_ui(result) -> None:
    """The gradient norms and weight histograms recorded while the Train page's model (or this one) trained."""
    st.subheader("Explain training: gradients and weights, epoch by epoch")
    chosen = result if explain_lesson.training_record(result) is not None else st.session_state.get(TRAIN_PAGE_RESULT_KEY)
    record = explain_lesson.training_record(chosen)
    if record is None or not record.gradient_norms:
        st.caption("Tick *Record gradients and weights (explain training)* on the *Train a small CNN* page and "
                   "train: each layer's gradient norm and weight histogram, per epoch, appear here.")
        return
    st.caption("Measured on one fixed batch of training images: at initialisation (epoch 0) and after each epoch. "
               "The gradient norm is ‖∂ mean loss / ∂ kernel‖ of each layer with weights (log scale).")
    ui.plotly_chart(explain_figures.gradient_norms_figure(record.layers, record.gradient_norms),
                    key="explain_gradient_norms")
    last = len(record.histograms) - 1
    epoch = st.slider("Weights after epoch (0 = at initialisation)", 0, last, last, key="explain_histogram_epoch") \
        if last > 0 else 0
    ui.plotly_chart(explain_figures.weight_histograms_figure(record.layers, record.histograms[epoch]),
                    key="explain_weight_histograms")


VANISHING_SETTINGS_KEY = "explain_vanishing_settings"  # A `VanishingSettings` (tests set tiny ones).
VANISHING_REQUESTED_KEY = "explain_vanishing_requested"


def vanishing_ui() -> None:
    """The built-in demonstration: deep plain stacks (tanh, ReLU, ReLU + batch norm) against residual blocks."""
    st.subheader("Vanishing gradients: a deep stack with and without help")
    settings = st.session_state.get(VANISHING_SETTINGS_KEY) or explain_lesson.VanishingSettings()
    st.caption(f"{settings.depth} convolution layers of {settings.filters} 3×3 filters (the first with stride "
               f"{explain_lesson.FIRST_STRIDES}, 2×2 max pooling after layers "
               f"{' and '.join(map(str, explain_lesson.POOL_AFTER))}), global average pooling and a dense softmax, "
               f"four ways ({', '.join(explain_lesson.DEPTH_VARIANTS.values())}; the residual stack has "
               f"{settings.depth // 2} blocks of two convolutions). For each of {len(settings.seeds)} seeds: the "
               f"gradient norm of every layer with weights at initialisation, then {settings.updates:,} weight "
               f"updates of {settings.batch_size} images ({settings.epochs} epochs of {settings.limit_train:,} "
               f"images, Adam at {settings.learning_rate:g}; the same budget for every variant), then the gradient "
               f"norms again and the accuracy on {settings.limit_test:,} test images.")
    cached = explain_lesson.is_cached(settings)
    if cached:
        st.caption("Every network of this demonstration is already trained on this server: it shows at once.")
    else:
        st.caption(f"Training them takes about {explain_lesson.estimated_seconds(settings):.0f} s on two idle "
                   "cores (longer when the server is busy); the results are kept for the next visitor.")
    clicked = st.button("Run the demonstration", icon=":material/play_arrow:", key="explain_vanishing_button")
    if clicked:
        st.session_state[VANISHING_REQUESTED_KEY] = True
    if not (cached or st.session_state.get(VANISHING_REQUESTED_KEY)):
        return
    kinds = tuple(explain_lesson.DEPTH_VARIANTS)

    def work(report):
        demo = explain_lesson.run_vanishing_demo(settings, kinds=kinds, on_progress=report)
        return demo if set(demo.runs) == set(kinds) else demo.runs

    run = ui.train_seeds_with_progress(work, key="explain_vanishing", job_key=repr(settings),
                                       variants=explain_lesson.DEPTH_VARIANTS, seeds=settings.seeds, fresh=clicked,
                                       unit="network", again="Press **Run the demonstration**")
    if run is None or not run.complete:
        return
    demo = run.result
    ui.plotly_chart(explain_figures.vanishing_norms_figure(
        {kind: (label, demo.initial[kind].layers, demo.initial[kind].seeds, demo.initial[kind].norms,
                demo.trained[kind].norms if kind in demo.trained else None)
         for kind, label in explain_lesson.DEPTH_VARIANTS.items()}),
        key="explain_vanishing_norms")
    st.caption(f"Each point is one seed's ‖∂ mean loss / ∂ kernel‖ for one layer, measured on the same "
               f"{settings.init_images} training images before training (open circles, dotted line: the seeds' mean) "
               f"and after the {settings.updates:,} updates (diamonds, solid line); log scale.")
    ui.plotly_chart(explain_figures.accuracy_points_figure(
        {kind: (label, demo.accuracies(kind)) for kind, label in explain_lesson.DEPTH_VARIANTS.items()}),
        key="explain_vanishing_accuracy")
    for verdict in demo.verdicts():
        st.markdown(verdict.text)


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

# The controls a shared link carries (the model, class and layer depend on what this server trained).
VIEW_PARAMS = [
    Param("explain_source", "choice", choices=tuple(IMAGE_SOURCES)),
    Param("explain_index", "int", minimum=0, maximum=10_000),
    Param("explain_patch", "int", minimum=2, maximum=14),
    Param("explain_stride", "int", minimum=1, maximum=8),
]

ui.restore_view(VIEW_PARAMS)  # First: a link, or the values from before a page switch.
ui.page_header("What the network looks at",
               "Which pixels made it say “shirt”? Grad-CAM, saliency and occlusion on a trained CNN.")
result = model_ui()
if result is None:
    ui.mirror_view(VIEW_PARAMS)
    st.stop()
if result.stopped_reason == "diverged":
    st.error("This training run diverged: there is nothing sensible to explain. Train it again with a smaller "
             "learning rate.", icon=":material/trending_up:")
    st.stop()
st.caption(f"Test accuracy {result.test_accuracy:.1%}, {len(result.class_names)} classes.")
image, true_class = image_ui(result)
left, right = st.columns([1, 3])
left.image(image if image.shape[-1] == 3 else image[..., 0], width=140, clamp=True, caption="the image")
with right:
    probs = explain_lesson.probabilities(result, image)
    ui.plotly_chart(train_figures.probabilities_figure(probs, result.class_names), key="explain_probabilities")
grad_cam_ui(result, image, true_class)
explained = int(st.session_state.get("explain_class", true_class if true_class is not None else int(np.argmax(probs))))
saliency_ui(result, image, explained)
occlusion_ui(result, image, explained)
break_ui(result, image)
features_ui(result)
training_view_ui(result)
vanishing_ui()
ui.publish_view(VIEW_PARAMS)
