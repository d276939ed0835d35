"""tanh LeNet vs ReLU CNN: both seed models on the same data, then the factors that separate them.

The page reads top to bottom: the settings make one `ComparisonSettings` (data, budget in weight
updates, number of seeds); the Run button asks for it; every variant trains once per seed through
`lenet_vs_relu.run_comparison` (`train_seeds`, cached), the two seed models first so the head to
head appears while the variants train. Every verdict on the page is the text of a
`cnnviz.verdicts.compare` verdict (`lenet_vs_relu.experiment_report`); the page adds none of its own.
"""

from __future__ import annotations

import streamlit as st

from cnnviz import data
from cnnviz.figures import lenet_vs_relu as lenet_vs_relu_figures
from cnnviz.lessons import lenet_vs_relu
from cnnviz.lessons.lenet_vs_relu import LENET, RELU_CNN, ComparisonSettings
from cnnviz.shareable import Param
from cnnviz.training import replay
from cnnviz.verdicts import ExperimentReport
from widgets import ui

TRAIN_SIZES = (256, 1_280, 3_840, 6_400, 12_800, 25_600, 60_000)  # Multiples of 128 (and of 32).
TEST_SIZES = (100, 500, 1_000, 2_000, 5_000, 10_000)
UPDATE_CHOICES = (8, 30, 60, 120, 240, 360, 600, 1_080, 2_400, 4_800)
SEED_COUNTS = (1, 5)
ACTIVATION_IMAGES = 256  # Test images whose first-layer activations are summarised.
REQUEST_KEY = "lvr_requested"

WIDGET_DEFAULTS = {
    "lvr_dataset": "fashion_mnist",
    "lvr_seeds_settings": False,
    "lvr_train_images": lenet_vs_relu.DEFAULT_TRAIN_IMAGES,
    "lvr_test_images": lenet_vs_relu.DEFAULT_TEST_IMAGES,
    "lvr_updates": lenet_vs_relu.DEFAULT_UPDATES,
    "lvr_seeds": len(lenet_vs_relu.ComparisonSettings().seeds),
}
VIEW_PARAMS = [
    Param("lvr_dataset", "choice", choices=data.DATASETS),
    Param("lvr_seeds_settings", "bool"),
    Param("lvr_train_images", "choice", choices=TRAIN_SIZES),
    Param("lvr_test_images", "choice", choices=TEST_SIZES),
    Param("lvr_updates", "choice", choices=UPDATE_CHOICES),
    Param("lvr_seeds", "int", minimum=SEED_COUNTS[0], maximum=SEED_COUNTS[1]),
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
    return lenet_vs_relu.settings_from_widgets(
        values["lvr_dataset"], seeds_settings=values["lvr_seeds_settings"], train_images=values["lvr_train_images"],
        test_images=values["lvr_test_images"], updates=values["lvr_updates"], seeds=values["lvr_seeds"])


def _widget_values() -> dict:
    return {key: st.session_state.get(key, default) for key, default in WIDGET_DEFAULTS.items()}


def settings_ui() -> ComparisonSettings:
    """Data, subset, budget in updates and the number of seeds."""
    seeds_settings = bool(st.session_state.get("lvr_seeds_settings", False))
    with st.container(border=True):
        left, middle, right = st.columns([1.2, 1.4, 1.2])
        with left:
            ui.dataset_selectbox("lvr_dataset")
            st.slider("Seeds per model", *SEED_COUNTS, key="lvr_seeds",
                      help="Each model trains once per seed (its own initial weights and data order). "
                           "More seeds show more of the spread and make smaller differences decidable.")
        with middle:
            st.select_slider("Training images", TRAIN_SIZES, key="lvr_train_images", disabled=seeds_settings,
                             format_func=lambda n: f"{n:,}",
                             help="A stratified subset: every class equally represented.")
            st.select_slider("Test images", TEST_SIZES, key="lvr_test_images", disabled=seeds_settings,
                             format_func=lambda n: f"{n:,}",
                             help="Validation after every epoch and the final test accuracy. "
                                  "More test images make small differences measurable.")
        with right:
            st.select_slider("Weight updates per model", UPDATE_CHOICES, key="lvr_updates", disabled=seeds_settings,
                             format_func=lambda n: f"{n:,}",
                             help="Every model makes this many mini-batch updates: a model with batches of 128 "
                                  "trains 4x as many epochs as one with batches of 32.")
        st.toggle("The seeds' settings: every training and test image, 10 epochs, plain model.fit", key="lvr_seeds_settings",
                  help="The seeds' own runs (the batch-32 models then make 4x as many updates). Six models × "
                       "the seeds × 10 epochs × 60,000 images: many minutes on 2 CPU cores.")
    return settings_from_widgets(_widget_values())


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

def train_models(settings: ComparisonSettings, keys: list[str], *, key: str, done_before: tuple[str, ...] = (),
                 fresh: bool = False) -> dict:
    """Train (or fetch from the cache) every seed of the models `keys`; returns {key: [TrainResult]}.

    The shared seeds panel (`ui.train_seeds_with_progress`) shows which model and seeds train and
    has the Stop button. When a model did not finish, the panel's message says what finished and
    the page stops there (the comparison would not be fair).
    """
    run = ui.train_seeds_with_progress(
        lambda report: lenet_vs_relu.run_comparison(settings, keys, on_progress=report),
        key=key, job_key=repr((settings, tuple(keys))), variants=LABELS, seeds=settings.seeds,
        train=keys, done_before=done_before, fresh=fresh, unit="model", again="Press **Run the comparison**")
    if run is None or not run.complete:
        st.stop()
    return dict(run.result)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

def show_table(records: list[dict]) -> None:
    """A small static table indexed by model name (legible on a projector, no scrolling)."""
    import pandas as pd

    frame = pd.DataFrame.from_records(records).set_index("Model")
    formats = {"Parameters": "{:,}", "Updates per seed": "{:,}", "Seconds per epoch": "{:.2f}",
               "Mean test accuracy (%)": "{:.1f}", "Saturated |a| > 0.95 (%)": "{:.1f}",
               "Exactly zero (%)": "{:.1f}", "Mean": "{:.3f}"}
    st.table(frame.style.format({column: rule for column, rule in formats.items() if column in frame.columns}))


def show_verdicts(report: ExperimentReport, factors: tuple[str, ...]) -> None:
    """The verdicts of `factors`, each under its title, as `verdicts.compare` wrote them."""
    for verdict in report.verdicts:
        if verdict.factor in factors:
            st.markdown(f"**{lenet_vs_relu.COMPARISON_TITLES[verdict.factor]}** ({verdict.kind}): {verdict.text}")


def head_to_head_ui(results: dict, report: ExperimentReport, settings: ComparisonSettings) -> None:
    st.header("Head to head")
    by_key = {str(item.extra["key"]): item for item in report.variants}
    relu, lenet = by_key[RELU_CNN], by_key[LENET]
    left, middle, right = st.columns([1, 1, 2])
    for column, item in ((left, relu), (middle, lenet)):
        spread = item.spread
        # The model's name alone fits the narrow column at 1280 px; what the number is goes under it.
        column.metric(item.name, f"{spread.mean:.1%}",
                      help=f"Mean test accuracy: {len(item.seeds)} seeds; 95% interval {spread.low:.1%} to {spread.high:.1%}")
        column.caption("Mean test accuracy. Per seed: " + ", ".join(f"{value:.1%}" for value in item.test_accuracy))
    with right:
        st.caption(lenet_vs_relu.budget_text(report, settings))
        reference = lenet_vs_relu.seed_reference(settings)
        if reference:
            st.caption(reference)
    show_verdicts(report, ("seed_models",))
    speed = lenet_vs_relu.speed_verdict(report)
    if speed is not None:
        st.markdown(f"**Seconds per epoch** ({speed.kind}): {speed.text}")

    first = {key: results[key][0] for key in (LENET, RELU_CNN)}
    histories = {key: run.history for key, run in first.items()}
    steps = ({key: lenet_vs_relu.steps_per_epoch(key, settings, settings.limit_train) for key in histories}
             if settings.limit_train is not None else None)
    with ui.key_figure():
        ui.plotly_chart(lenet_vs_relu_figures.overlaid_curves(histories, LABELS, steps_per_epoch=steps),
                        key="lvr_curves")
    measured = ("after every epoch, as in the seeds" if settings.validate_every_epoch or not settings.fast
                else "once, after the last update")
    st.caption(f"Seed {settings.seeds[0]} of each model. Solid: training; dashed: validation (the test split, "
               f"measured {measured})." + (" The x-axis counts weight updates." if steps else ""))

    st.subheader("Which classes each model gets right")
    relu_confusion = first[RELU_CNN].confusion_matrix()
    lenet_confusion = first[LENET].confusion_matrix()
    difference = lenet_vs_relu.confusion_difference(relu_confusion, lenet_confusion)
    class_names = first[RELU_CNN].class_names
    left, right = st.columns([3, 2])
    with left:
        ui.plotly_chart(lenet_vs_relu_figures.confusion_difference_figure(difference, class_names),
                        key="lvr_confusion_difference")
    with right:
        st.markdown(f"Seed {settings.seeds[0]} of each model. Each cell: the ReLU CNN's share of the true class "
                    "(row) minus the LeNet's, in percentage points. **On the diagonal**, red means the ReLU CNN "
                    "recognises that class more often. **Off the diagonal**, red means the ReLU CNN makes that "
                    "mistake more often.")
        st.markdown(lenet_vs_relu.class_differences_text(difference, class_names))


def replay_ui(results: dict) -> None:
    """Replay every model's training curves (first seed): all six together (a race on each run's own clock) or one."""

    st.subheader("Replay training")
    st.caption("Watch the curves of the first seed grow again, without training: all models start together and "
               "each grows as fast as it trained on this server. Or pick one model to replay its live curves.")
    runs = {key: results[key][0] for key in LABELS if key in results}
    histories = {key: run.history for key, run in runs.items()}
    loss_top = replay.group_loss_axis_top(histories)

    def together(shown: dict):
        figure = lenet_vs_relu_figures.overlaid_curves({key: shown[LABELS[key]] for key in histories}, LABELS)
        figure.update_yaxes(range=[0, loss_top], row=1, col=1)
        return figure

    ui.replay_runs({LABELS[key]: run for key, run in runs.items()}, key="lvr_replay", together=together,
                   together_label=f"All {len(histories)} models together")


def why_ui(report: ExperimentReport) -> None:
    st.header("Why")
    st.markdown(
        "The two recipes differ in three factors, and in the architecture itself. Starting from the tanh LeNet, "
        "each variant below changes **one** factor to the ReLU CNN's choice, with everything else (data, seeds, "
        "budget, architecture) fixed: "
        "**activation** (tanh → ReLU), **pooling** (average → max) and **optimiser with batch size** "
        "(SGD at 0.01 on batches of 128 → Adam at 0.001 on batches of 32). One more variant changes all three "
        "at once: it is the LeNet architecture trained like the ReLU CNN, and comparing it with the ReLU CNN "
        "compares the two architectures under one recipe."
    )
    ui.plotly_chart(lenet_vs_relu_figures.variant_spread_figure(report), key="lvr_variants")
    show_table(lenet_vs_relu.report_records(report))
    with st.container(border=True):
        st.markdown("#### What the numbers say")
        show_verdicts(report, tuple(factor for factor, _, _ in lenet_vs_relu.COMPARISONS if factor != "seed_models"))
        st.caption("Each verdict compares the two models' mean test accuracy over the seeds. Its 95% interval "
                   "combines the spread across seeds with the sampling error of the test set: **better** / "
                   "**worse** when the whole interval lies on one side of zero, **no measurable difference** "
                   "when it lies within ±2 points, **undecided** otherwise.")


def inside_ui(results: dict, seed: int) -> None:
    st.header("Inside: the first layer's activations")
    first = {key: runs[0] for key, runs in results.items()}
    images, _ = first[RELU_CNN].test_data()
    report = lenet_vs_relu.activation_report(first, images[:ACTIVATION_IMAGES])
    ui.plotly_chart(lenet_vs_relu_figures.activation_histograms(report.values, report.names, LABELS),
                    key="lvr_activations")
    show_table(report.records)
    if report.reading:
        st.markdown(report.reading)
    st.markdown(
        f"Measured on {report.images} test images, seed {seed}. Where tanh is **saturated** (|a| > 0.95) its "
        "slope 1 − a² is below 0.1, so the gradient that flows back through that unit is cut by ten or more. "
        "A ReLU output of **exactly zero** passes no gradient at all for that image, but where it is "
        "positive it passes the gradient unchanged. A filter that is zero on every image gets no gradient at "
        "all: it is *dead* for this data."
    )


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

ui.page_header("tanh LeNet vs ReLU CNN",
               "The seeds ask which is better. Train both on the same data with several seeds, then change one "
               "factor at a time and see what the numbers show.")
ui.restore_view(VIEW_PARAMS)  # First: a link, or the values from before a page switch.
_initialise_widgets()
settings = settings_ui()
ui.load_dataset_or_stop(settings.dataset, limit_train=settings.limit_train,
                        limit_test=settings.limit_test, seed=settings.seeds[0])
with st.container(horizontal=True, vertical_alignment="center"):
    run_clicked = run_button()
    ui.publish_view(VIEW_PARAMS)
requested = requested_settings(settings)
st.caption(lenet_vs_relu.recipe_text(settings))

if requested is None:
    st.info("Press **Run the comparison**. The default trains six models × 3 seeds on a subset "
            "(bench/comparison_defaults.py times it), plus a few seconds to load TensorFlow the first time; "
            "a second visit is instant.", icon=":material/compare_arrows:")
    st.stop()

seed_results = train_models(requested, [LENET, RELU_CNN], key="lvr_seed_models", fresh=run_clicked)
head_to_head_ui(seed_results, lenet_vs_relu.experiment_report(requested, seed_results), requested)

variant_keys = [item.key for item in lenet_vs_relu.VARIANTS if item.key not in seed_results]
results = {**seed_results, **train_models(requested, variant_keys, key="lvr_variants",
                                              done_before=tuple(seed_results), fresh=run_clicked)}
results = {item.key: results[item.key] for item in lenet_vs_relu.VARIANTS}
why_ui(lenet_vs_relu.experiment_report(requested, results))
replay_ui(results)
inside_ui(results, requested.seeds[0])
