"""tanh LeNet vs ReLU CNN: both seed models on the same data, then the factors that separate them.

The page reads top to bottom: the settings make one `ComparisonSettings`; the Run button asks for
it; every model of the comparison trains through the shared engine (`ui.train_with_progress`,
cached, with live progress), the two seed models first so the head-to-head appears while the
variants train. All words of the conclusion come from `lenet_vs_relu.conclusion(table)`, computed
from the measured table, so they can never contradict the numbers shown beside them.
"""

from __future__ import annotations

import streamlit as st

from cnnviz import data
from cnnviz.figures import lenet_vs_relu as lenet_vs_relu_figures
from cnnviz.lessons import lenet_vs_relu
from cnnviz.lessons.lenet_vs_relu import LENET, RELU_CNN, ComparisonSettings
from cnnviz.shareable import Param
from cnnviz.training import replay
from widgets import ui

TRAIN_SIZES = (300, 1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 30_000, 60_000)
TEST_SIZES = (100, 500, 1_000, 2_000, 5_000, 10_000)
EPOCH_CHOICES = (1, 10)
DEFAULT_TARGET = 75  # Percent of validation accuracy whose first crossing the table counts.
ACTIVATION_IMAGES = 256  # Test images whose first-layer activations are summarised.
REQUEST_KEY = "lvr_requested"

WIDGET_DEFAULTS = {
    "lvr_dataset": "fashion_mnist",
    "lvr_full": False,
    "lvr_train_images": lenet_vs_relu.DEFAULT_TRAIN_IMAGES,
    "lvr_test_images": lenet_vs_relu.DEFAULT_TEST_IMAGES,
    "lvr_epochs": lenet_vs_relu.DEFAULT_EPOCHS,
    "lvr_target": DEFAULT_TARGET,
}
VIEW_PARAMS = [
    Param("lvr_dataset", "choice", choices=data.DATASETS),
    Param("lvr_full", "bool"),
    Param("lvr_train_images", "choice", choices=TRAIN_SIZES),
    Param("lvr_test_images", "choice", choices=TEST_SIZES),
    Param("lvr_epochs", "int", minimum=EPOCH_CHOICES[0], maximum=EPOCH_CHOICES[1]),
    Param("lvr_target", "int", minimum=10, maximum=99),
]
LABELS = {item.key: item.label for item in lenet_vs_relu.VARIANTS}


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------

def _initialise_widgets() -> None:
    """Widget values: the last run's (a revisit shows what was trained), else the defaults."""
    last = st.session_state.get(REQUEST_KEY)
    remembered = last["widgets"] if last else {}
    for key, default in WIDGET_DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = remembered.get(key, default)


def settings_from_widgets(values: dict) -> ComparisonSettings:
    """The comparison the widgets describe."""
    return lenet_vs_relu.settings_from_widgets(values["lvr_dataset"], full=values["lvr_full"],
                                               train_images=values["lvr_train_images"],
                                               test_images=values["lvr_test_images"], epochs=values["lvr_epochs"])


def _widget_values() -> dict:
    return {key: st.session_state.get(key, default) for key, default in WIDGET_DEFAULTS.items()}


def settings_ui() -> tuple[ComparisonSettings, float]:
    """Data, subset, epochs and the target accuracy; returns (settings, target as a fraction)."""
    full = bool(st.session_state.get("lvr_full", False))
    with st.container(border=True):
        left, middle, right = st.columns([1.2, 1.4, 1.2])
        with left:
            ui.dataset_selectbox("lvr_dataset")
            st.slider("Epochs", *EPOCH_CHOICES, key="lvr_epochs", disabled=full)
        with middle:
            st.select_slider("Training images", TRAIN_SIZES, key="lvr_train_images", disabled=full,
                             format_func=lambda n: f"{n:,}",
                             help="A stratified subset: every class equally represented.")
            st.select_slider("Test images", TEST_SIZES, key="lvr_test_images", disabled=full,
                             format_func=lambda n: f"{n:,}",
                             help="Validation after every epoch and the final test accuracy. "
                                  "More test images make small differences measurable.")
        with right:
            target = st.slider("Target accuracy (%)", 10, 99, key="lvr_target",
                               help="The table counts the epochs each model needs to reach this validation "
                                    "accuracy. Changing it re-reads the histories; nothing retrains.")
        st.toggle("Full data, as in the seeds: every training and test image, 10 epochs", key="lvr_full",
                  help="Six models × 10 epochs × 60,000 images: roughly ten minutes on 2 CPU cores "
                       "(estimated from the default run, not measured), with live progress for each model.")
    return settings_from_widgets(_widget_values()), target / 100


def _request() -> None:
    """The Run button's callback: remember what to train, read from the widgets as they are now."""
    values = _widget_values()
    st.session_state[REQUEST_KEY] = {"settings": settings_from_widgets(values), "widgets": values}


def run_button() -> bool:
    """The Run button; True on the rerun its click caused."""
    return st.button("Run the comparison", type="primary", icon=":material/play_arrow:", key="lvr_run",
                     on_click=_request)


def requested_settings(settings: ComparisonSettings) -> ComparisonSettings | None:
    """The settings of the last run (None before the first), with a note when the widgets moved on."""
    request = st.session_state.get(REQUEST_KEY)
    if request is None:
        # Every model of these settings already on disk (`python -m cnnviz warmup`, or an earlier
        # run on this server): show the results at once instead of asking for a run.
        return settings if lenet_vs_relu.comparison_cached(settings) else None
    if request["settings"] != settings:
        st.info("The settings changed since the last run: press **Run the comparison** to train with them. "
                "Below are the results of the last run.", icon=":material/info:")
    return request["settings"]


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

def train_models(settings: ComparisonSettings, keys: list[str], *, fresh: bool, first: int) -> dict:
    """Train (or fetch from the cache) the models `keys`; returns {key: TrainResult}.

    Stops the page with the engine's message when a model cannot train, and with a notice when
    the user pressed Stop (the rest of the comparison would not be fair without it).
    """
    configs = lenet_vs_relu.comparison_configs(settings, keys)
    results = {}
    label = st.empty()
    for offset, (key, config) in enumerate(configs.items()):
        item = lenet_vs_relu.variant(key)
        label.caption(f"Model {first + offset} of {len(lenet_vs_relu.VARIANTS)}: **{item.label}**: {item.description}")
        result = ui.train_with_progress(config, key=f"lvr_train_{key}", fresh=fresh)
        if result is None:
            st.stop()
        if result.stopped_reason == "stopped":
            label.empty()
            st.warning(f"Training of {item.label} was stopped, so the comparison is incomplete. Press "
                       "**Run the comparison** to train again.", icon=":material/stop_circle:")
            st.stop()
        results[key] = result
    label.empty()
    return results


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

def show_table(records: list[dict]) -> None:
    """A small static table indexed by model name (legible on a projector, no scrolling)."""
    import pandas as pd

    frame = pd.DataFrame.from_records(records).set_index("Model")
    formats = {"Parameters": "{:,}", "Seconds per epoch": "{:.2f}", "Test accuracy (%)": "{:.1f}",
               "Saturated |a| > 0.95 (%)": "{:.1f}", "Exactly zero (%)": "{:.1f}", "Mean": "{:.3f}"}
    st.table(frame.style.format({column: rule for column, rule in formats.items() if column in frame.columns}))


def head_to_head_ui(results: dict, table: lenet_vs_relu.ComparisonTable, settings: ComparisonSettings) -> None:
    st.header("Head to head")
    relu, lenet = table.row(RELU_CNN), table.row(LENET)
    left, middle, right = st.columns([1, 1, 2])
    left.metric("ReLU CNN, test accuracy", f"{relu.test_accuracy:.1%}",
                delta=f"{100 * (relu.test_accuracy - lenet.test_accuracy):+.1f} points vs LeNet")
    middle.metric("tanh LeNet, test accuracy", f"{lenet.test_accuracy:.1%}")
    with right:
        st.caption(f"{relu.params:,} parameters against {lenet.params:,}; "
                   f"{relu.seconds_per_epoch:.2f} s against {lenet.seconds_per_epoch:.2f} s per epoch "
                   "(ReLU CNN first).")
        reference = lenet_vs_relu.seed_reference(settings)
        if reference:
            st.caption(reference)

    histories = {key: results[key].history for key in (LENET, RELU_CNN)}
    with ui.key_figure():
        ui.plotly_chart(lenet_vs_relu_figures.overlaid_curves(histories, LABELS, epochs=settings.epochs),
                        key="lvr_curves")
    st.caption("Solid: training; dashed: validation (the test split, as in the seeds). "
               "The ReLU CNN takes 4× more optimisation steps per epoch: batches of 32 instead of 128.")
    show_table([record for record, row in zip(table.records(), table.rows) if row.key in (LENET, RELU_CNN)])

    st.subheader("Which classes each model gets right")
    relu_confusion = results[RELU_CNN].confusion_matrix()
    lenet_confusion = results[LENET].confusion_matrix()
    difference = lenet_vs_relu.confusion_difference(relu_confusion, lenet_confusion)
    class_names = results[RELU_CNN].class_names
    left, right = st.columns([3, 2])
    with left:
        ui.plotly_chart(lenet_vs_relu_figures.confusion_difference_figure(difference, class_names),
                        key="lvr_confusion_difference")
    with right:
        st.markdown("Each cell: the ReLU CNN's share of the true class (row) minus the LeNet's, in "
                    "percentage points. **On the diagonal**, red means the ReLU CNN recognises that class "
                    "more often. **Off the diagonal**, red means the ReLU CNN makes that mistake more often.")
        st.markdown(lenet_vs_relu.class_differences_text(difference, class_names))


def replay_ui(results: dict, epochs: int) -> None:
    """Replay every model's training curves: all six together (a race on each run's own clock) or one."""

    st.subheader("Replay training")
    st.caption("Watch the curves grow again, without training: all models start together and each grows "
               "as fast as it trained on this server, so the one with the fastest epochs finishes first. "
               "Or pick one model to replay its live curves.")
    histories = {key: results[key].history for key in LABELS if key in results}
    loss_top = replay.group_loss_axis_top(histories)

    def together(shown: dict):
        figure = lenet_vs_relu_figures.overlaid_curves({key: shown[LABELS[key]] for key in histories}, LABELS,
                                                    epochs=epochs)
        figure.update_yaxes(range=[0, loss_top], row=1, col=1)
        return figure

    ui.replay_runs({LABELS[key]: results[key] for key in histories}, key="lvr_replay", together=together,
                   together_label=f"All {len(histories)} models together")


def why_ui(table: lenet_vs_relu.ComparisonTable) -> None:
    st.header("Why")
    st.markdown(
        "The two recipes differ in three factors, and in the architecture itself. Starting from the tanh LeNet, "
        "each variant below changes **one** factor to the ReLU CNN's choice, with everything else (data, seed, "
        "epochs, architecture) fixed: "
        "**activation** (tanh → ReLU), **pooling** (average → max) and **optimiser with batch size** "
        "(SGD at 0.01 on batches of 128 → Adam at 0.001 on batches of 32). One more variant changes all three "
        "at once: it is the LeNet architecture trained exactly like the ReLU CNN, so what separates it from the "
        "ReLU CNN is the architecture alone. (One factor at a time rather than a cumulative chain: a chain's "
        "steps depend on the order in which the changes are stacked.)"
    )
    ui.plotly_chart(lenet_vs_relu_figures.variant_accuracy_figure(table), key="lvr_variants")
    show_table(table.records())
    with st.container(border=True):
        st.markdown("#### What the numbers say")
        st.markdown(lenet_vs_relu.conclusion(table))
        st.caption("These sentences are generated from the table above: another run, dataset or subset size "
                   "gives other words. Differences are compared with the noise of a test set of this size "
                   "(a 95% interval for the difference of two accuracies).")
    # Only when ReLU alone hurts on this run; its Adam sentence follows the measured rows.
    relu_note = lenet_vs_relu.relu_alone_hurts_note(table)
    if relu_note:
        st.markdown(relu_note)


def inside_ui(results: dict) -> None:
    st.header("Inside: the first layer's activations")
    images, _ = results[RELU_CNN].test_data()
    report = lenet_vs_relu.activation_report(results, images[:ACTIVATION_IMAGES])
    ui.plotly_chart(lenet_vs_relu_figures.activation_histograms(report.values, report.names, LABELS),
                    key="lvr_activations")
    show_table(report.records)
    if report.reading:
        st.markdown(report.reading)
    st.markdown(
        f"Measured on {report.images} test images. Where tanh is **saturated** (|a| > 0.95) its slope "
        "1 − a² is below 0.1, so the gradient that flows back through that unit is cut by ten or more. "
        "A ReLU output of **exactly zero** passes no gradient at all for that image, but where it is "
        "positive it passes the gradient unchanged, and the zeros make the features sparse. A filter "
        "that is zero on every image gets no gradient at all: it is *dead* for this data."
    )


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

ui.page_header("tanh LeNet vs ReLU CNN",
               "The seeds ask which is better. Train both on the same data, then change one factor at a time "
               "to find out why.")
ui.restore_view(VIEW_PARAMS)  # First: a link, or the values from before a page switch.
_initialise_widgets()
settings, target = settings_ui()
ui.load_dataset_or_stop(settings.dataset, limit_train=settings.limit_train,
                        limit_test=settings.limit_test, seed=settings.seed)
with st.container(horizontal=True, vertical_alignment="center"):
    clicked = run_button()
    ui.publish_view(VIEW_PARAMS)
requested = requested_settings(settings)
st.caption(
    "Each model keeps its seed recipe: the LeNet trains with plain SGD (learning rate 0.01) on batches of 128, "
    "the ReLU CNN with Adam (0.001) on batches of 32, both at a constant learning rate with Keras' plain "
    "`fit` (the engine's fast mode is off here: it would add a warm-up and a decaying learning rate that the "
    "seeds do not use). Same data subset, seed and number of epochs for every model; results are cached."
)

if requested is None:
    st.info("Press **Run the comparison**. The default (six small models on a subset) took 17 s on two CPU "
            "cores (bench/comparison_defaults.py), plus a few seconds to load TensorFlow the first time; "
            "a second visit is instant.", icon=":material/compare_arrows:")
    st.stop()

seeds = train_models(requested, [LENET, RELU_CNN], fresh=clicked, first=1)
test_images = len(seeds[RELU_CNN].test_data()[1])
head_table = lenet_vs_relu.build_table(seeds, target_accuracy=target, test_images=test_images,
                                    epochs=requested.epochs, dataset=requested.dataset)
head_to_head_ui(seeds, head_table, requested)

variant_keys = [item.key for item in lenet_vs_relu.VARIANTS if item.key not in seeds]
results = {**seeds, **train_models(requested, variant_keys, fresh=clicked, first=len(seeds) + 1)}
table = lenet_vs_relu.build_table(results, target_accuracy=target, test_images=test_images,
                               epochs=requested.epochs, dataset=requested.dataset)
why_ui(table)
replay_ui(results, requested.epochs)
inside_ui(results)
