"""Transfer learning: pre-train on some Fashion-MNIST classes, then transfer to classes never seen.

The page reads top to bottom: the class split; pre-training the 2-unit bottleneck CNN; the unseen
classes seen through the pre-trained network (feature space and "predicted as" table); retraining
with a chosen freeze depth (feature space before/after on the same scale, frozen weights checked
bit for bit); and the strategy comparison over transfer-set sizes with several seeds: the four
cases are fixed by the data (images per class, class families), each measured with the strategy it
prescribes, and every verdict comes from `cnnviz.verdicts.compare`.
The second part puts a frozen keras.applications backbone (MobileNetV2, VGG16) under a new head,
trained on CIFAR-10 or on the session's class-folder dataset (the train page's zip, read here at
32 px or more).
All training goes through the shared engine (`ui.train_with_progress`, or `training.train_seeds` inside
a cached background job for the comparison); TensorFlow loads only once something trains.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnviz import data, training
from cnnviz.architecture import backbones
from cnnviz.errors import CnnvizError
from cnnviz.figures import lenet_vs_relu as lenet_vs_relu_figures
from cnnviz.figures import transfer as transfer_figures
from cnnviz.lessons import transfer
from cnnviz.lessons.transfer import STRATEGY_LABELS
from cnnviz.shareable import Param
from cnnviz.training import replay
from widgets import ui

DATASET = "fashion_mnist"
ALL = "all"
PRETRAIN_PER_CLASS_OPTIONS = (20, 100, 300, 600, 1000, 2000, ALL)
TEST_PER_CLASS_OPTIONS = (10, 50, 100, 200, 500, ALL)
TRANSFER_PER_CLASS_OPTIONS = (10, 30, 100, 300, 1000, ALL)
LARGEST_OPTIONS = (30, 90, 300, 900, 3000, ALL)
SMALLEST_OPTIONS = (6, 15, 30, 60, 90)
# The budget of every transfer run, in weight updates (at least; the same for every strategy at one size).
MIN_UPDATES_OPTIONS = (8, 30, 60, 120, 240, 480, 960)
# At most this many test images of the seen classes are drawn behind the unseen ones.
MAX_SEEN_POINTS = 1400
# The default runs from an empty cache on 2 CPU cores, as bench/transfer_defaults.py measured them
# (one run, full Fashion-MNIST, 2026-12-01, nearly idle machine, load average 3.3 to 2.0; wall-clock
# seconds): pre-training one seed 6.8 s, one retraining run 9.3 s, the 3-seed comparison
# (1 pre-training + 6 transfer runs, each with its 3 seeds together, the test split scored once
# per run) 32 s.
# Every size slider's last option ("all") uses the full data instead (minutes).
MEASURED_PRETRAIN_SECONDS = 6.8
MEASURED_RETRAIN_SECONDS = 9.3
MEASURED_COMPARE_SECONDS = 32
_DEFAULT = transfer.ExperimentSettings()
DEFAULTS = dict(pretrain_per_class=_DEFAULT.pretrain_per_class, test_per_class=_DEFAULT.test_per_class,
                pretrain_epochs=_DEFAULT.pretrain_epochs, transfer_per_class=_DEFAULT.transfer_per_class,
                transfer_epochs=_DEFAULT.transfer_epochs, min_updates=_DEFAULT.min_transfer_updates,
                largest=transfer.DEFAULT_LARGEST_TRANSFER_SIZE,
                smallest=transfer.default_smallest_size(len(transfer.DEFAULT_TRANSFER_CLASSES)),
                steps=transfer.DEFAULT_SIZE_STEPS)


# The page's two experiments: the class split (sections 1-5) and the ImageNet backbone.
PART_CLASS_SPLIT = "Class split (Fashion-MNIST)"
PART_BACKBONE = "ImageNet backbone (CIFAR-10 or your images)"
PARTS = (PART_CLASS_SPLIT, PART_BACKBONE)
WEIGHT_OPTIONS = ("imagenet", "random")
BACKBONE_PER_CLASS_OPTIONS = (10, 50, 100, 200, 500, 1000)

# The freeze slider offers 0 (nothing frozen) up to all but the head.
_DEEPEST_FREEZE, _DEFAULT_FREEZE = transfer.freeze_choices(_DEFAULT)
WIDGET_DEFAULTS = {
    "transfer_pretrain_classes": list(transfer.DEFAULT_PRETRAIN_CLASSES),
    "transfer_transfer_classes": list(transfer.DEFAULT_TRANSFER_CLASSES),
    "transfer_pretrain_per_class": ALL if DEFAULTS["pretrain_per_class"] is None else DEFAULTS["pretrain_per_class"],
    "transfer_pretrain_epochs": DEFAULTS["pretrain_epochs"],
    "transfer_test_per_class": ALL if DEFAULTS["test_per_class"] is None else DEFAULTS["test_per_class"],
    "transfer_epochs": DEFAULTS["transfer_epochs"],
    "transfer_min_updates": DEFAULTS["min_updates"],
    "transfer_freeze": _DEFAULT_FREEZE,
    "transfer_transfer_per_class": DEFAULTS["transfer_per_class"],
    "transfer_smallest": DEFAULTS["smallest"],
    "transfer_largest": DEFAULTS["largest"],
    "transfer_size_steps": DEFAULTS["steps"],
    "transfer_seeds": len(training.DEFAULT_SEEDS),
    "transfer_part": PART_CLASS_SPLIT,
    "transfer_backbone": "mobilenet_v2",
    "transfer_backbone_weights": "imagenet",
    "transfer_backbone_per_class": transfer.BackboneSettings().per_class,
    "transfer_backbone_epochs": transfer.BackboneSettings().epochs,
}


def _class_list(value) -> bool:
    return (isinstance(value, list) and len(set(value)) == len(value)
            and all(isinstance(label, int) and 0 <= label < data.spec(DATASET).num_classes for label in value))


# Every control of the page, as it appears in a shared link.
VIEW_PARAMS = [
    Param("transfer_pretrain_classes", "json", validate=_class_list),
    Param("transfer_transfer_classes", "json", validate=_class_list),
    Param("transfer_pretrain_per_class", "choice", choices=PRETRAIN_PER_CLASS_OPTIONS),
    Param("transfer_pretrain_epochs", "int", minimum=1, maximum=30),
    Param("transfer_test_per_class", "choice", choices=TEST_PER_CLASS_OPTIONS),
    Param("transfer_epochs", "int", minimum=1, maximum=30),
    Param("transfer_min_updates", "choice", choices=MIN_UPDATES_OPTIONS),
    Param("transfer_freeze", "int", minimum=0, maximum=_DEEPEST_FREEZE),
    Param("transfer_transfer_per_class", "choice", choices=TRANSFER_PER_CLASS_OPTIONS),
    Param("transfer_smallest", "choice", choices=SMALLEST_OPTIONS),
    Param("transfer_largest", "choice", choices=LARGEST_OPTIONS),
    Param("transfer_size_steps", "int", minimum=2, maximum=6),
    Param("transfer_seeds", "int", minimum=1, maximum=training.seeds.MAX_SEEDS),
    Param("transfer_part", "choice", choices=PARTS),
    Param("transfer_backbone", "choice", choices=backbones.BACKBONE_NAMES),
    Param("transfer_backbone_weights", "choice", choices=WEIGHT_OPTIONS),
    Param("transfer_backbone_per_class", "choice", choices=BACKBONE_PER_CLASS_OPTIONS),
    Param("transfer_backbone_epochs", "int", minimum=1, maximum=10),
    Param("transfer_backbone_dataset", "choice", choices=(transfer.BACKBONE_DATASET, ui.CLASS_FOLDERS)),
]


def _initialise_widgets() -> None:
    """Give every control its default once, so that widgets take their value from the session
    (and from a shared link) rather than from a `value=` argument."""
    for key, default in WIDGET_DEFAULTS.items():
        st.session_state.setdefault(key, default)


def _per_class(value) -> int | None:
    return None if value == ALL else int(value)


def _images_label(value) -> str:
    return "all" if value == ALL else f"{value:,}"


# --------------------------------------------------------------------------------------------
# Cached helpers (models are passed as `_model` and keyed by their config key)
# --------------------------------------------------------------------------------------------

@st.cache_data(max_entries=8, show_spinner=False)
def transfer_test_images(dataset: str, limit_test: int | None, seed: int,
                         classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The test images of `classes` that every run of the experiment is scored on, with their
    ORIGINAL labels: the same subset and order the training engine uses."""
    loaded = data.load(dataset, limit_test=limit_test, seed=seed)
    keep = np.isin(loaded.y_test, classes)
    return np.asarray(loaded.x_test[keep]), np.asarray(loaded.y_test[keep]).astype(np.int64)


@st.cache_data(max_entries=16, show_spinner="Passing the images through the network…")
def bottleneck_points(model_key: str, images_key: str, _model, _stack, _images) -> np.ndarray:
    """2-D bottleneck coordinates of the images under one trained model."""
    return transfer.bottleneck_features(_model, _images, _stack)


@st.cache_data(max_entries=16, show_spinner=False)
def predicted_head_units(model_key: str, images_key: str, _model, _images) -> np.ndarray:
    return transfer.predicted_units(_model, _images)


@st.cache_data(max_entries=16, show_spinner=False)
def frozen_check(pretrained_key: str, transferred_key: str, freeze_layers: int, _pretrained, _transferred) -> bool:
    return transfer.frozen_layers_unchanged(_pretrained, _transferred, freeze_layers)


def _comparison_key(job_key: str) -> str:
    return f"transfer-compare:{job_key}"


def comparison_job(job_key: str, split, settings, sizes, seeds) -> training.Job:
    """The shared background job comparing the strategies (started on a miss, kept when done)."""
    return ui.shared_job(_comparison_key(job_key),
                         lambda: transfer.comparison_job(split, settings, sizes, seeds=seeds).start(),
                         slot="transfer_compare")


def _requested(flag: str, config, clicked: bool) -> bool:
    """Train when the button was pressed for this config, or when a finished run is on disk."""
    if clicked:
        st.session_state[flag] = config.key()
    return st.session_state.get(flag) == config.key() or training.is_cached(config)


# --------------------------------------------------------------------------------------------
# Page sections
# --------------------------------------------------------------------------------------------

def split_ui(class_names: tuple[str, ...]) -> transfer.ClassSplit:
    """Section 1: the two class sets, validated, with their label remap."""
    st.header("1 · Split the classes")
    st.write("The network is pre-trained on some classes only; the others are kept back as the "
             "*transfer set*, classes it has never seen. The seeds keep back T-shirt/top, Trouser and "
             "Pullover.")
    labels = list(range(len(class_names)))
    left, right = st.columns(2)
    pretrain = left.multiselect("Pre-training classes", labels,
                                format_func=lambda label: f"{label} · {class_names[label]}",
                                key="transfer_pretrain_classes")
    transfer_classes = right.multiselect("Transfer classes (unseen in pre-training)", labels,
                                         format_func=lambda label: f"{label} · {class_names[label]}",
                                         key="transfer_transfer_classes")
    try:
        split = transfer.make_split(pretrain, transfer_classes, class_names)
    except transfer.SplitError as error:
        ui.show_error(error, icon=":material/call_split:")
        st.stop()
    with st.expander("Labels as the networks see them", expanded=False):
        st.caption("Each training run only knows its own classes, numbered from 0 in label order: the "
                   "pre-trained network's output unit *i* means the *i*-th pre-training class.")
        st.dataframe([{"Original label": row.original_label, "Class": row.class_name, "Used for": row.role,
                       "Label in its run": row.new_label} for row in split.remap_table()],
                     hide_index=True, width="stretch")
        if split.unused:
            st.caption("Left out of the experiment: " + ", ".join(class_names[c] for c in split.unused) + ".")
    return split


def settings_ui() -> transfer.ExperimentSettings:
    """Experiment sizes and epochs (defaults: seconds per run, see MEASURED_*; 'all' = the full data)."""
    with st.expander("Experiment size (images, epochs)", expanded=False):
        st.caption("The defaults pre-train on every training image of the seen classes (the same images "
                   "for every seed) and score every run on the whole test split of its classes, so that seeds "
                   "differ only in how they train; smaller choices train faster and spread more.")
        left, right = st.columns(2)
        pretrain_per_class = left.select_slider("Pre-training images per class", PRETRAIN_PER_CLASS_OPTIONS,
                                                format_func=_images_label,
                                                key="transfer_pretrain_per_class")
        pretrain_epochs = left.slider("Pre-training epochs", 1, 30,
                                      key="transfer_pretrain_epochs")
        test_per_class = right.select_slider("Test images per class", TEST_PER_CLASS_OPTIONS,
                                             format_func=_images_label,
                                             key="transfer_test_per_class",
                                             help="'all': every seed and strategy is scored on the same "
                                                  "test images (the whole test split); with a limit, each "
                                                  "seed draws its own subset.")
        transfer_epochs = right.slider("Transfer epochs (more for small sets)", 1, 30,
                                       key="transfer_epochs",
                                       help="Small sets also get smaller batches and extra epochs, so that "
                                            "every run makes at least the updates chosen below.")
        min_updates = right.select_slider("Weight updates per transfer run (at least)", MIN_UPDATES_OPTIONS,
                                          key="transfer_min_updates",
                                          help="The budget of every transfer run, the same for every strategy "
                                               "at one size: too few and a run is still near its random start.")
    return transfer.ExperimentSettings(
        dataset=DATASET, pretrain_per_class=_per_class(pretrain_per_class),
        test_per_class=_per_class(test_per_class), pretrain_epochs=int(pretrain_epochs),
        transfer_epochs=int(transfer_epochs), min_transfer_updates=int(min_updates))


def pretrain_ui(split, settings):
    """Section 2: pre-train the bottleneck CNN on the pre-training classes (cached)."""
    st.header("2 · Pre-train on the seen classes")
    config = transfer.pretrain_config(split, settings)
    names = ", ".join(split.pretrain_names)
    st.write(f"The **CNN with a 2-unit bottleneck** (three convolutions, a Dense layer of only two units, "
             f"a softmax head with {len(split.pretrain)} outputs) learns {names}.")
    clicked = st.button("Pre-train the network", type="primary", icon=":material/play_arrow:",
                        key="transfer_pretrain_button")
    if not _requested("transfer_pretrain_for", config, clicked):
        st.info(f"Press **Pre-train the network** to start (about {MEASURED_PRETRAIN_SECONDS:g} s with the default "
                "sizes on two CPU cores).",
                icon=":material/info:")
        st.stop()
    result = ui.train_with_progress(config, key="transfer_pretrain", fresh=clicked)
    if result is None:
        st.stop()
    if result.stopped_reason != "finished":
        st.info("The next steps copy the pre-trained weights: let pre-training finish first.")
        st.stop()
    st.metric(f"Test accuracy on the {len(split.pretrain)} seen classes", f"{result.test_accuracy:.1%}",
              help=f"Chance level is {1 / len(split.pretrain):.1%}. A 2-unit bottleneck limits accuracy: "
                   "every image must be told apart from a point in a plane.")
    with st.expander("Pre-training curves (replay training)"):
        ui.replay_runs({"Pre-training": result}, key="transfer_pretrain_replay")
    return config, result


def before_ui(split, settings, pretrained):
    """Section 3: the unseen classes through the pre-trained network."""
    st.header("3 · The unseen classes through the pre-trained network")
    images, labels = transfer_test_images(settings.dataset, settings.limit(settings.test_per_class),
                                          settings.seed, split.transfer)
    images_key = f"{settings.dataset}:{settings.test_per_class}:{settings.seed}:{split.transfer}"
    stack = pretrained.config.stack()
    points = bottleneck_points(pretrained.config.key(), images_key, pretrained.model, stack, images)
    before = transfer.FeatureSpace(points, labels, split.class_names, "Before: pre-trained network")
    seen_images, seen_labels = pretrained.test_data()
    seen_images, seen_labels = seen_images[:MAX_SEEN_POINTS], seen_labels[:MAX_SEEN_POINTS]
    seen_points = bottleneck_points(pretrained.config.key(), f"seen:{len(seen_images)}", pretrained.model,
                                    stack, seen_images)
    with_seen = transfer.FeatureSpace(points, labels, split.class_names,
                                      "Unseen classes (bold) among the seen classes (faint)",
                                      context_points=seen_points,
                                      context_labels=np.asarray(split.pretrain)[seen_labels])
    with ui.key_figure():
        ui.plotly_chart(transfer_figures.feature_space_pair(with_seen), key="transfer_before_chart")
    st.caption("The bottleneck squeezes every image into two numbers. The pre-trained network arranged the "
               "seen classes in this plane; images of classes it never saw land on or between the clusters "
               "of the seen classes they resemble.")
    units = predicted_head_units(pretrained.config.key(), images_key, pretrained.model, images)
    table = transfer.predicted_as_table(units, labels, split)
    st.write(f"The {len(images):,} test images of the transfer classes go through the pre-trained network. "
             "It has no output for them, so each is predicted as one of the classes it knows:")
    st.dataframe(table.as_records(), hide_index=True, width="stretch",
                 column_config={split.class_names[c]: st.column_config.NumberColumn(format="%.1f%%")
                                for c in split.pretrain})
    st.markdown(transfer.predicted_as_text(table))
    return images, labels, images_key, before


def freeze_ui(split, settings):
    """The freeze-depth slider and transfer-set size; returns (freeze_layers, transfer config, plan)."""
    names = [row.name for row in transfer.freeze_plan(split, settings).rows]

    def describe(depth: int) -> str:
        return "nothing frozen" if depth == 0 else f"freeze up to {names[depth - 1]}"

    left, right = st.columns([3, 2])
    freeze_layers = left.select_slider("Freeze the first layers", list(range(len(names))),
                                       format_func=describe, key="transfer_freeze",
                                       help="The last layer (the head) is new: it has one output per transfer "
                                            "class, so it always trains.")
    per_class = right.select_slider("Transfer images per class", TRANSFER_PER_CLASS_OPTIONS,
                                    format_func=_images_label,
                                    key="transfer_transfer_per_class")
    plan = transfer.freeze_plan(split, settings, freeze_layers)
    ui.plotly_chart(transfer_figures.layer_roles_figure([r.name for r in plan.rows], [r.kind for r in plan.rows],
                                                        [r.params for r in plan.rows], [r.role for r in plan.rows]),
                    key="transfer_roles_chart")
    a, b, c = st.columns(3)
    a.metric("Frozen parameters", f"{plan.frozen_params:,}")
    b.metric("Trainable parameters", f"{plan.trainable_params:,}")
    c.metric("…of which new (random)", f"{plan.params('new'):,}")
    config = transfer.transfer_config(split, settings, freeze_layers=freeze_layers, per_class=_per_class(per_class))
    return freeze_layers, config


def transfer_ui(split, settings, pretrain_config, pretrained, images, labels, images_key, before):
    """Section 4: retrain with the chosen freeze depth; feature space before/after; frozen check."""
    st.header("4 · Transfer: retrain the unfrozen layers on the unseen classes")
    st.write("Every layer but the head is copied from the pre-trained network. Frozen layers keep their "
             "weights; the others (and the new head) are retrained on the transfer classes.")
    freeze_layers, config = freeze_ui(split, settings)
    clicked = st.button("Retrain on the transfer set", type="primary", icon=":material/play_arrow:",
                        key="transfer_retrain_button")
    if not _requested("transfer_retrain_for", config, clicked):
        st.info("Press **Retrain on the transfer set** to see the feature space after transfer (measured "
                f"{MEASURED_RETRAIN_SECONDS:g} s with the default sizes: only the dense layers learn).",
                icon=":material/info:")
        return None
    result = ui.train_with_progress(config, key="transfer_retrain", fresh=clicked)
    if result is None:
        return None
    points = bottleneck_points(config.key(), images_key, result.model, config.stack(), images)
    after = transfer.FeatureSpace(points, labels, split.class_names, "After: retrained on the transfer set")
    ui.plotly_chart(transfer_figures.feature_space_pair(before, after), key="transfer_pair_chart")
    st.caption("Both panels share the same axes. Each point is a test image of a transfer class, placed "
               "by the two bottleneck units and coloured by its true class.")
    left, right = st.columns(2)
    left.metric(f"Test accuracy on the {len(split.transfer)} transfer classes", f"{result.test_accuracy:.1%}",
                help=f"Chance level is {1 / len(split.transfer):.1%}.")
    if freeze_layers:
        unchanged = frozen_check(pretrain_config.key(), config.key(), freeze_layers, pretrained.model, result.model)
        if unchanged:
            right.success(f"The {freeze_layers} frozen layers hold exactly the pre-trained weights "
                          "(compared bit for bit with `np.array_equal`).", icon=":material/lock:")
        else:
            right.error("A frozen layer changed during retraining: its weights differ from the pre-trained ones.")
    else:
        right.info("Nothing is frozen: every copied weight was free to change (fine-tuning).")
    with st.expander("Retraining curves (replay training)"):
        ui.replay_runs({"Retraining": result}, key="transfer_retrain_replay")
    return result


def comparison_ui(split, settings, full_per_class: int, similarity):
    """Section 5: the prescribed strategies over transfer-set sizes, several seeds each; the four cases."""
    st.header("5 · How much data do you need?")
    k = len(split.transfer)
    small_case = transfer.case_for("small", similarity.verdict)
    strategies = transfer.strategies_for(similarity.verdict)
    st.write(f"The cases are fixed by the data before anything trains: a transfer set of at most "
             f"**{transfer.SMALL_PER_CLASS} images per class** ({transfer.SMALL_PER_CLASS * k:,} images for "
             f"{k} classes) counts as *small*, a larger one as *large*; your transfer classes count as "
             f"**{similarity.verdict}** (by the dataset's class families). Each case is measured with the "
             "strategy it prescribes:")
    st.markdown("\n".join(f"- **{STRATEGY_LABELS[s]}**: {transfer.STRATEGY_TEXTS[s]} {_learning_rate_text(s, settings)}"
                          for s in strategies))
    st.caption(f"*{small_case.title}* is measured with *{STRATEGY_LABELS[small_case.strategy].lower()}*; the "
               "large cases with *fine-tune everything*, against *train from scratch*. Every strategy trains "
               "at every size, so the curves can be compared.")
    left, middle, right, last = st.columns(4)
    smallest = left.select_slider("Smallest transfer set", SMALLEST_OPTIONS,
                                  key="transfer_smallest")
    largest = middle.select_slider("Largest transfer set", LARGEST_OPTIONS,
                                   format_func=_images_label, key="transfer_largest",
                                   help="'all' uses every training image of the transfer classes.")
    steps = right.slider("Sizes", 2, 6, key="transfer_size_steps")
    seed_count = last.slider("Seeds per strategy", 1, training.seeds.MAX_SEEDS, key="transfer_seeds",
                             help="Each seed pre-trains its own network and transfers from it, so the "
                                  "spread covers pre-training and transfer. At least 2 seeds are needed for "
                                  "a verdict.")
    seeds = tuple(range(int(seed_count)))
    try:
        sizes = transfer.comparison_sizes(split, full_per_class, smallest=int(smallest), largest=_per_class(largest),
                                          steps=steps)
    except CnnvizError as error:
        ui.show_error(error, icon=None)
        return
    runs = len(sizes) * len(strategies)
    st.caption(f"Transfer-set sizes: {', '.join(f'{s:,} ({transfer.data_size_of(s // k)})' for s in sizes)} "
               f"images; {runs} transfer runs and one pre-training run, each training the {len(seeds)} "
               f"seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}) together.")
    job_key = repr((split, settings, sizes, seeds))
    clicked = st.button("Compare the strategies", type="primary", icon=":material/play_arrow:",
                        key="transfer_compare_button")
    if clicked:
        st.session_state["transfer_compare_for"] = job_key
    if (st.session_state.get("transfer_compare_for") != job_key
            and not transfer.comparison_cached(split, settings, sizes, seeds)):
        st.info(f"Press **Compare the strategies** to train them all (about {MEASURED_COMPARE_SECONDS:g} s with the "
                "default sizes and 3 seeds on two CPU cores, pre-training of every seed included).",
                icon=":material/info:")
        _four_cases_table(similarity.verdict, ())
        return
    try:
        job = comparison_job(job_key, split, settings, sizes, seeds)
    except CnnvizError as error:
        ui.show_error(error)
        return
    if not job.done:
        panel = st.empty()
        with panel.container(border=True):
            status = st.empty()
            bar = st.progress(0.0)
            st.button("Stop", key="transfer_compare_stop", on_click=job.request_stop, icon=":material/stop_circle:")
        shown = None
        while not job.wait(0.3):
            progress = job.latest
            if progress is not None and progress != shown:
                # While a run waits for a free training slot, its place in the queue shows here.
                status.markdown(transfer.describe_run_progress(progress))
                bar.progress(progress.overall)
                shown = progress
        panel.empty()
    if job.error is not None:
        ui.job_registry().forget(_comparison_key(job_key))
        st.session_state.pop("transfer_compare_for", None)
        ui.show_job_error(job.error, failed="The comparison failed",
                          stopped="The comparison was stopped. Runs that finished are cached and will not train again.")
        return
    comparison = job.result
    assert comparison is not None  # A finished job without an error has its result.
    ui.plotly_chart(transfer_figures.accuracy_curves(comparison, chance=1 / k), key="transfer_curves_chart")
    st.caption("Each small point is one seed; the line is the mean over seeds and the band its 95 % interval "
               f"(seed-to-seed spread and the sampling of {comparison.test_images:,} test images"
               + (", the same for every seed and strategy)." if settings.test_per_class is None else
                  "; each seed draws its own test subset)."))
    st.dataframe(transfer.comparison_records(comparison), hide_index=True, width="stretch")
    st.caption(f"Budget: each seed's pre-training makes {comparison.pretrain_updates:,} weight updates "
               f"(mean test accuracy on the seen classes {100 * np.mean(comparison.pretrain_accuracy):.1f}%); "
               "the Updates column gives each transfer run's, the same for every strategy at one size "
               f"(at least {settings.min_transfer_updates}).")
    strategy_replay_ui(comparison)
    measured = transfer.case_measurements(comparison)
    st.subheader("What the measurements show")
    st.caption("Every seed trains every strategy (its own pre-trained network and transfer images), so each "
               "verdict compares the strategies within the seeds: what a seed does to every strategy alike "
               "cancels, what it does to one alone counts as spread"
               + (", and the test error is that of the per-image differences on the shared test images."
                  if settings.test_per_class is None else "."))
    if not measured:
        st.info("No size falls in a case: choose sizes on both sides of the threshold.")
    for case_measurement in measured:
        st.markdown(f"**{case_measurement.case.title}**, measured at {case_measurement.size:,} images:")
        for verdict in case_measurement.verdicts:
            st.markdown(f"- {VERDICT_BADGES[verdict.kind]} `{verdict.factor}`: {verdict.text}")
    _four_cases_table(similarity.verdict, measured)


def _learning_rate_text(strategy: str, settings) -> str:
    """The strategy's peak learning rate, and how it relates to the shared one."""
    rate, shared = transfer.strategy_learning_rate(strategy, settings), settings.learning_rate
    if rate == shared:
        return f"Peak learning rate {rate:g}."
    return (f"Peak learning rate {rate:g} ({rate / shared:g}x the others': only the new output layer's few "
            "weights train, in the same number of updates).")


def strategy_replay_ui(comparison) -> None:
    """Replay the strategies' training curves at one transfer-set size: all three together, or one."""

    if not comparison.histories:
        return
    st.subheader("Replay training")
    sizes = list(comparison.sizes)
    if st.session_state.get("transfer_replay_size") not in sizes:
        st.session_state.pop("transfer_replay_size", None)  # Other sizes than last time.
    size = st.selectbox("Transfer-set size to replay", sizes, key="transfer_replay_size",
                        format_func=lambda n: f"{n:,} images")
    index = sizes.index(size)
    labels = {s: STRATEGY_LABELS[s] for s in comparison.strategies if comparison.histories.get(s)}
    histories = {labels[s]: comparison.histories[s][index] for s in labels}
    colours = {labels[s]: transfer_figures.STRATEGY_COLOURS[s] for s in labels}
    epochs = max(len(history.get("loss", ())) for history in histories.values())
    loss_top = replay.group_loss_axis_top(histories)

    def together(shown: dict):
        figure = lenet_vs_relu_figures.overlaid_curves(shown, {}, epochs=epochs, colours=colours)
        figure.update_yaxes(range=[0, loss_top], row=1, col=1)
        return figure

    st.caption(f"The curves of each strategy's run on this transfer set with seed {comparison.seeds[0]}, growing "
               "again at the chosen speed (per epoch: these runs trained in the background). All three start together and each grows "
               "as fast as it trained, so the replay also shows which strategy trains fastest.")
    ui.replay_runs(histories, key="transfer_compare_replay", together=together,
                   together_label="All three strategies together")


VERDICT_BADGES = {"better": ":green-badge[better]", "worse": ":red-badge[worse]",
                  "no measurable difference": ":gray-badge[no measurable difference]",
                  "undecided": ":orange-badge[undecided]"}


def _four_cases_table(similarity: str, measured) -> None:
    """The four cases as a 2x2 grid (data size x similarity), marking the ones measured here."""
    measured_keys = {m.case.key: m for m in measured}
    st.subheader("The four cases")
    st.markdown(f"How much of a pre-trained network to keep depends on how much data you have and how "
                f"similar it is to the pre-training data (rules of thumb). Here the transfer classes count as "
                f"**{similarity}**; a transfer set is small up to {transfer.SMALL_PER_CLASS} images per class.")
    header = st.columns([1, 3, 3])
    header[1].markdown("**Similar data**")
    header[2].markdown("**Different data**")
    for data_size in ("small", "large"):
        row = st.columns([1, 3, 3])
        row[0].markdown(f"**{data_size.capitalize()} data**")
        for column, case_similarity in zip(row[1:], ("similar", "different")):
            case = transfer.case_for(data_size, case_similarity)
            with column.container(border=True):
                if case.key in measured_keys:
                    kinds = ", ".join(v.kind for v in measured_keys[case.key].verdicts)
                    st.markdown(f":green-badge[:material/check: measured here] {kinds}")
                elif case_similarity == similarity:
                    st.markdown(":blue-badge[your split]")
                st.markdown(f"**Keep:** {case.keep}  \n**Freeze:** {case.freeze}  \n**Train:** {case.train}")
                others = " and ".join(f"*{STRATEGY_LABELS[o].lower()}*" for o in case.compared_with)
                st.caption(f"The rule of thumb's reason: {case.why} Measured as "
                           f"*{STRATEGY_LABELS[case.strategy].lower()}* against {others}.")


# --------------------------------------------------------------------------------------------
# A backbone pre-trained on ImageNet (seed 001's VGG16), frozen under a new head, on CIFAR-10 or
# the session's own class-folder dataset
# --------------------------------------------------------------------------------------------

WEIGHT_LABELS = {"imagenet": "ImageNet (pre-trained)", "random": "Random (weights=None, a baseline)"}
BACKBONE_TEST_PER_CLASS = 100  # Test images per class (1,000 CIFAR-10 images; 10 with the smallest run).
# The student's own images: the session's class-folder dataset, the one the train page reads.
BACKBONE_FOLDERS_KEY = "train_folders"
# Measured (one run, 2026-12-01, 2 CPU cores shared with other work, load average about 8, random weights,
# 2,000 training + 1,000 test images at 32×32, batch 64): seconds of the first epoch (which also traces the
# graph) and of each later one. An idle server is faster (MobileNetV2's forward pass alone ran at
# ~1,700 images/s, VGG16's at ~100, on a less busy machine); the ratio VGG16 / MobileNetV2 is ~25-30.
MEASURED_BACKBONE_SECONDS = {"mobilenet_v2": (28.0, 3.4), "vgg16": (115.0, 106.0)}
MEASURED_BACKBONE_IMAGES = 2_000
MEASURED_BACKBONE_SIDE = 32


def _backbone_label(name: str) -> str:
    spec = backbones.backbone(name)
    return f"{spec.label} ({'light' if spec.light else 'heavy'})"


def backbone_data_ui() -> data.Dataset | None:
    """The backbone's data: CIFAR-10 (None: loaded when it trains), or the session's class-folder
    dataset (read here at a size the backbones accept; the script stops while there is none)."""
    name = ui.dataset_selectbox("transfer_backbone_dataset", label="Data", default=transfer.BACKBONE_DATASET,
                                options=(transfer.BACKBONE_DATASET,), class_folders=True)
    if name != ui.CLASS_FOLDERS:
        return None
    smallest = transfer.backbone_min_side()
    st.caption(f":material/photo_size_select_large: Both backbones need images of at least {smallest}×{smallest} "
               f"pixels, so the image sizes offered start at {smallest}; grey-scale images are repeated into "
               "three channels.")
    dataset = ui.class_folder_dataset(BACKBONE_FOLDERS_KEY, min_size=smallest)
    if dataset is None:
        st.stop()
    return dataset


def backbone_ui() -> None:
    """The option: a frozen keras.applications base under a new head, trained on CIFAR-10 or the
    student's own images."""
    st.header("A backbone pre-trained on ImageNet")
    folder_dataset = backbone_data_ui()
    title = data.spec(transfer.BACKBONE_DATASET if folder_dataset is None else folder_dataset.name).title
    what = "CIFAR-10's 32×32 photos" if folder_dataset is None else f"**{ui.markdown_text(title)}**"
    st.write("Instead of pre-training a network yourself, take the convolutional base of a network "
             "trained on the 1.3 million photos of ImageNet (VGG16, as in the seeds' notebook, or the "
             f"lighter MobileNetV2), freeze it, and train only a new head on {what}.")
    left, right = st.columns(2)
    name = left.radio("Backbone", backbones.BACKBONE_NAMES, format_func=_backbone_label,
                      key="transfer_backbone", horizontal=True)
    weights = right.radio("Weights", WEIGHT_OPTIONS, format_func=WEIGHT_LABELS.get,
                          key="transfer_backbone_weights", horizontal=True,
                          help="Random weights train the same head on an untrained, frozen base: what the "
                               "ImageNet features are measured against.")
    with st.expander("Run size (images, epochs)", expanded=False):
        size_left, size_right = st.columns(2)
        per_class = size_left.select_slider("Training images per class", BACKBONE_PER_CLASS_OPTIONS,
                                            key="transfer_backbone_per_class")
        epochs = size_right.slider("Epochs", 1, 10, key="transfer_backbone_epochs")
    settings = transfer.BackboneSettings(
        backbone=name, weights=None if weights == "random" else backbones.IMAGENET,
        per_class=int(per_class), test_per_class=min(BACKBONE_TEST_PER_CLASS, int(per_class)), epochs=int(epochs))
    if folder_dataset is not None:
        try:
            settings = transfer.fit_backbone_settings(settings, folder_dataset)
        except CnnvizError as error:
            ui.show_error(error, icon=":material/photo_size_select_small:")
            return
    train_images, test_images = transfer.backbone_images(settings, folder_dataset)
    smaller_batch = settings.batch_size < transfer.BackboneSettings().batch_size
    st.caption(f":material/database: Trains on **{train_images:,}** training images of {ui.markdown_text(title)}"
               + (" (every one it has)" if settings.per_class is None else "")
               + f", {len(data.spec(settings.dataset).class_names)} classes, and scores on **{test_images:,}** "
               + ("test images (its whole test split)" if settings.test_per_class is None else "test images")
               + (f"; batches of {settings.batch_size}." if smaller_batch else "."))
    status = transfer.backbone_weights_status(settings)
    if status.available:
        st.caption(":material/download_done: " + ui.markdown_text(status.message))
    else:
        ui.show_message("warning", status.message, icon=":material/cloud_off:")
    counts = transfer.backbone_counts(settings)
    frozen, trainable, total = st.columns(3)
    frozen.metric("Frozen parameters", f"{counts.frozen:,}", help="Copied from the base, never updated.")
    trainable.metric("Trainable parameters", f"{counts.trainable:,}", help=f"The new head, trained on {title}.")
    total.metric("Total", f"{counts.total:,}", help="Keras' model.count_params().")
    ui.plotly_chart(transfer_figures.layer_roles_figure(*transfer.backbone_layer_roles(counts)),
                    key="transfer_backbone_roles_chart")
    with st.expander("Layers and parameters", expanded=False):
        st.dataframe(transfer.backbone_rows(counts), hide_index=True, width="stretch")
        st.caption(ui.markdown_text(f"{counts.rows[0].formula}. {counts.rows[0].note}"))
    source = data.source_status(settings.dataset)
    if source.source is None:
        ui.show_message("warning", source.note, icon=":material/cloud_off:")
    config = transfer.backbone_config(settings)
    clicked = st.button("Train the new head", type="primary", icon=":material/play_arrow:",
                        key="transfer_backbone_button", disabled=not status.available or source.source is None)
    if not status.available or not _requested("transfer_backbone_for", config, clicked):
        first, later = MEASURED_BACKBONE_SECONDS[name]
        share = train_images / MEASURED_BACKBONE_IMAGES
        height, width = data.spec(settings.dataset).image_shape[:2]
        pixels = height * width / MEASURED_BACKBONE_SIDE ** 2
        st.info(f"Press **Train the new head** to train it. Measured with {MEASURED_BACKBONE_IMAGES:,} training "
                f"images of {MEASURED_BACKBONE_SIDE}×{MEASURED_BACKBONE_SIDE} pixels on two busy CPU cores: "
                f"{backbones.backbone(name).label} took {first:g} s for the first epoch (building the graph "
                f"included) and {later:g} s for each later one; these settings train {share:.2g}x as many images"
                + (f", each with {pixels:.2g}x the pixels." if pixels != 1 else "."), icon=":material/info:")
        return
    result = ui.train_with_progress(config, key="transfer_backbone_train", fresh=clicked)
    if result is None:
        return
    st.metric(f"Test accuracy on {title}", f"{result.test_accuracy:.1%}",
              help=f"{len(result.class_names)} classes ({ui.markdown_text(', '.join(result.class_names))}): chance level is "
                   f"{1 / len(result.class_names):.1%}.")
    with st.expander("Training curves (replay training)"):
        ui.replay_runs({"New head": result}, key="transfer_backbone_replay")


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

ui.page_header("Transfer learning",
               "Reusing features: pre-train on some classes, freeze the convolutions, and transfer to unseen classes.")
ui.restore_view(VIEW_PARAMS)  # First: a link, or the values from before a page switch.
_initialise_widgets()
ui.publish_view(VIEW_PARAMS)
part = st.radio("Experiment", PARTS, key="transfer_part", horizontal=True, label_visibility="collapsed")
if part == PART_BACKBONE:
    backbone_ui()
    st.stop()
dataset = ui.load_dataset_or_stop(DATASET)
split = split_ui(dataset.class_names)
similarity = transfer.judge_similarity(split, data.spec(DATASET).class_families)
st.caption(f":material/compare: Similarity: **{similarity.verdict}**: {similarity.reason}")
settings = settings_ui()
full_per_class = transfer.transfer_capacity(dataset.y_train, split)

pretrain_config, pretrained = pretrain_ui(split, settings)
images, labels, images_key, before = before_ui(split, settings, pretrained)
transfer_ui(split, settings, pretrain_config, pretrained, images, labels, images_key, before)
comparison_ui(split, settings, full_per_class, similarity)
