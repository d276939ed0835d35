"""Augmentation & regularisation: flips, shifts, zooms, dropout and batch norm, measured.

Four tabs, each reading top to bottom (widgets, one core call, figures):
1. the augmentation preview: one image through the real Keras preprocessing layers, 16 times;
2. overfitting and its cures: the same small CNN on ~1,000 images, plain / augmented / with
   dropout / with batch norm, each with several seeds (seed s is `config.replace(seed=s)`, the run
   `training.train_seeds` makes), trained through the shared seeds panel (`ui.train_seeds_with_progress`);
   every seed's point, the mean and interval, and verdicts from `cnnviz.verdicts.compare`; on a
   built-in dataset or the student's class folders (one reader for the page, `FolderReader`);
3. dropout, exactly: the real `keras.layers.Dropout` on a small vector, in both modes;
4. batch norm, exactly: the real `keras.layers.BatchNormalization` over a few training steps.
Every number on the page comes from `cnnviz.training.augmenter` / `cnnviz.lessons.augmentation`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from cnnviz import data, images, training
from cnnviz.architecture.layers import shape_text
from cnnviz.errors import CnnvizError
from cnnviz.figures import augmentation as augmentation_figures
from cnnviz.lessons import augmentation
from cnnviz.lessons.augmentation import DEFAULT_VARIANTS, VARIANT_KEYS
from cnnviz.shareable import Param
from cnnviz.training import augmenter
from widgets import ui

SAMPLE_IMAGES = 200  # Test images offered as samples in the preview.
GRID_SIZE = 16
GRID_COLUMNS_PRESENTER = 8  # Two rows across the full width: the whole grid fits at 1280x720.
UPLOAD_MAX_SIDE = 128  # Uploads are shrunk to this longest side: 16 copies stay fast.
FIT_IMAGE_CHOICES = augmentation.TRAINING_IMAGE_CHOICES
FIT_FOLDER_IMAGES_KEY = "aug_fit_folder_images"  # The training images of a class-folder dataset (its own choices).
FIT_REQUEST_KEY = "aug_fit_requested"
FOLDERS_KEY = "train_folders"  # The class-folder reader's key: the train page's, so its zip is found here too.
# The default four variants x 3 seeds (1,000 images, 15 epochs) from an empty cache, measured with
# bench/augmentation_defaults.py on 2 nearly idle CPU cores (one run, 2026-12-01, load average 0.6):
# 91 s, RATIO 52.9 against one reference epoch of the ReLU CNN (1.72 s) in the same run; the seeds of
# the variants without augmentation train together.
MEASURED_RUN_SECONDS = 91
VARIANT_TITLES = {v.key: v.title for v in augmentation.overfitting_variants(keys=VARIANT_KEYS)}

def _variant_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(key, str) and key in VARIANT_KEYS for key in value)


# Every control of the page, as it appears in a shared link (an upload itself cannot travel).
VIEW_PARAMS = [
    Param("aug_source", "choice", choices=("sample", "upload")),
    Param("aug_dataset", "choice", choices=data.DATASETS + (ui.CLASS_FOLDERS,)),
    Param("aug_sample", "int", minimum=0, maximum=SAMPLE_IMAGES - 1),
    Param("aug_flip_h", "bool"),
    Param("aug_flip_v", "bool"),
    Param("aug_rotation", "int", minimum=0, maximum=180),
    Param("aug_zoom", "int", minimum=0, maximum=50),
    Param("aug_shift", "int", minimum=0, maximum=50),
    Param("aug_contrast", "float", minimum=0.0, maximum=1.0),
    Param("aug_seed", "int", minimum=0, maximum=1_000_000),
    Param("aug_fit_dataset", "choice", choices=data.DATASETS + (ui.CLASS_FOLDERS,)),
    Param("aug_fit_images", "choice", choices=FIT_IMAGE_CHOICES),
    Param("aug_fit_epochs", "int", minimum=2, maximum=40),
    Param("aug_fit_seeds", "int", minimum=1, maximum=training.seeds.MAX_SEEDS),
    Param("aug_fit_variants", "json", validate=_variant_list),
    Param("aug_drop_units", "int", minimum=4, maximum=16),
    Param("aug_drop_rate", "float", minimum=0.0, maximum=0.9),
    Param("aug_drop_seed", "int", minimum=0, maximum=1_000_000),
    Param("aug_bn_batch", "int", minimum=2, maximum=16),
    Param("aug_bn_steps", "int", minimum=1, maximum=50),
    Param("aug_bn_momentum", "choice", choices=(0.0, 0.5, 0.9, 0.99)),
    Param("aug_bn_seed", "int", minimum=0, maximum=1_000_000),
]


# --------------------------------------------------------------------------------------------
# Cached helpers
# --------------------------------------------------------------------------------------------

@st.cache_resource(max_entries=3, show_spinner="Loading sample images…")
def sample_images(name: str) -> data.Dataset:
    """A small stratified set of test images to pick preview samples from (shared, read-only)."""
    return data.load(name, limit_train=10, limit_test=SAMPLE_IMAGES, seed=0)


@st.cache_data(max_entries=8, show_spinner="Augmenting…")  # An upload grid is ~3 MB.
def cached_preview(image: np.ndarray, dataset: str | None, spec: tuple, seed: int) -> augmentation.AugmentationPreview:
    return augmentation.augmentation_preview(image, dataset, spec, seed, n=GRID_SIZE)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_dropout(inputs: tuple[float, ...], rate: float, seed: int) -> augmentation.DropoutDemo:
    return augmentation.dropout_demo(np.array(inputs, dtype=np.float32), rate, seed=seed)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_batchnorm(steps: int, batch_size: int, momentum: float, seed: int) -> augmentation.BatchNormDemo:
    batches = augmentation.example_batches(steps, batch_size, seed=seed)
    return augmentation.batchnorm_demo(batches, momentum=momentum)


def train_variants(variants, seeds: tuple[int, ...], report: ui.VariantReport) -> dict:
    """{variant key: SeedMeasurement}: every seed of each variant, in order (`train_variant_seeds`, which
    raises `TrainingStopped` at the first variant that did not finish); `report(key, progress)`."""
    return {variant.key: augmentation.train_variant_seeds(variant, seeds, functools.partial(report, variant.key))
            for variant in variants}


@dataclass
class FolderReader:
    """The page's one reader of the student's class folders (`ui.class_folder_dataset(FOLDERS_KEY)`, the
    zip read on the train page or here): drawn once per run, in the first tab whose picker chooses
    "your own images"; a later tab uses what it read."""

    drawn_in: str | None = None  # The tab that drew it in this run.
    dataset: data.Dataset | None = None

    def read(self, tab: str) -> data.Dataset | None:
        if self.drawn_in is None:
            self.drawn_in = tab
            self.dataset = ui.class_folder_dataset(FOLDERS_KEY)
        elif self.dataset is None:
            st.info(f"Read your zip of class folders in the **{self.drawn_in}** tab (above its images).",
                    icon=":material/upload:")
        else:
            st.caption(f"Your images as read in the **{self.drawn_in}** tab.")
        return self.dataset


def _reroll() -> None:
    st.session_state["aug_seed"] = int(st.session_state.get("aug_seed", 0)) + 1


# --------------------------------------------------------------------------------------------
# 1 · Augmentation preview
# --------------------------------------------------------------------------------------------

def preview_image_ui(folders: FolderReader) -> tuple[np.ndarray, str | None, str] | None:
    """The image to augment: (uint8 pixels, dataset name or None for an upload, caption), or None."""
    source = st.radio("Image", ["sample", "upload"], horizontal=True, key="aug_source",
                      format_func={"sample": "a dataset sample", "upload": "my own picture"}.get)
    if source == "upload":
        upload = st.file_uploader("A PNG, JPEG, GIF, BMP or WebP picture",
                                  type=["png", "jpg", "jpeg", "gif", "bmp", "webp"], key="aug_upload")
        if upload is None:
            st.info("Upload a picture to augment it, or switch to a dataset sample.", icon=":material/upload:")
            return None
        try:
            decoded = images.check_proportions(images.decode_image(upload.getvalue(), max_side=UPLOAD_MAX_SIDE))
        except images.ImageDecodeError as error:
            ui.show_error(error, icon=":material/broken_image:")
            return None
        for note in decoded.notes:
            st.caption(note)
        return decoded.pixels, None, f"your picture ({decoded.pixels.shape[1]} × {decoded.pixels.shape[0]} px)"

    left, right = st.columns([2, 1])
    with left:
        name = ui.dataset_selectbox("aug_dataset", class_folders=True)
    if name == ui.CLASS_FOLDERS:  # The student's own images (the zip read on the train page, or another).
        dataset = folders.read("Augmentation preview")
        if dataset is None:
            return None
        name = dataset.name
    else:
        try:
            dataset = sample_images(name)
        except data.DatasetUnavailable as error:
            ui.show_error(error, icon=":material/cloud_off:")
            return None
    with right:
        index = st.number_input("Sample number", 0, len(dataset.x_test) - 1, step=1, key="aug_sample")
    label = dataset.class_names[int(dataset.y_test[index])]
    return dataset.x_test[index], name, f"{data.spec(name).title} sample {index}: {label}"


def strength_ui() -> tuple:
    """The augmentation settings in a student's units; returns the spec."""
    flip_h = st.checkbox("Flip left–right (horizontal flip)", key="aug_flip_h")
    flip_v = st.checkbox("Flip upside down (vertical flip)", key="aug_flip_v")
    rotation = st.slider("Rotation: largest angle either way (°)", 0, 180, step=5, key="aug_rotation")
    zoom = st.slider("Zoom: largest zoom in or out (%)", 0, 50, step=5, key="aug_zoom")
    shift = st.slider("Shift: largest move, share of the width/height (%)", 0, 50, step=5, key="aug_shift")
    contrast = st.slider("Contrast: largest change of the contrast factor", 0.0, 1.0, step=0.05,
                         key="aug_contrast")
    return augmenter.spec_from_settings(flip_horizontal=flip_h, flip_vertical=flip_v, rotation_degrees=rotation,
                                           zoom_percent=zoom, translation_percent=shift, contrast=contrast)


def preview_section(folders: FolderReader) -> None:
    st.markdown("Augmentation turns one training image into many plausible ones, so a small dataset "
                "looks larger. Each version below is a fresh random draw of the real Keras "
                "preprocessing layers — exactly what the training engine applies to every batch.")
    settings, shown = st.columns([2, 3], gap="large")
    with settings:
        picked = preview_image_ui(folders)
        spec = strength_ui()
    if picked is None:
        return
    image, dataset_name, caption = picked
    seed = int(st.session_state.get("aug_seed", 0))
    try:
        preview = cached_preview(np.ascontiguousarray(image), dataset_name, spec, seed)
    except CnnvizError as error:
        with shown:
            ui.show_error(error)
        return
    with settings:
        for warning in preview.warnings:
            if warning.severity == "warning":
                st.warning(f"**{warning.label}:** {warning.message}", icon=":material/warning:")
            else:
                st.info(f"**{warning.label}:** {warning.message}", icon=":material/info:")
    with shown:
        top = st.columns([1, 3])
        top[0].image(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image,
                     caption="original", width=110, clamp=True)
        with top[1]:
            st.button("Re-roll", key="aug_reroll", on_click=_reroll, icon=":material/casino:",
                      help="Draw 16 new random versions (a new seed).")
            st.caption(f"{caption} · seed {seed} · the same seed always gives the same 16 images.")
        if not spec:
            st.info("Every augmentation is off, so all 16 copies equal the original. Switch one on.",
                    icon=":material/toggle_off:")
        # The page's key figure. In presenter mode it goes to the slot under the title, full width
        # in two rows of eight, so that it is on the projector without scrolling.
        with ui.key_figure():
            ui.plotly_chart(augmentation_figures.augmented_grid_figure(
                preview.grid, columns=GRID_COLUMNS_PRESENTER if ui.presenter_mode() else 4), key="aug_grid")
        if spec:
            st.markdown("\n".join(f"- {description}" for description in preview.descriptions))
            with st.expander("The same pipeline in Keras code"):
                st.code(preview.code, language="python")


# --------------------------------------------------------------------------------------------
# 2 · Overfitting and its cures
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FitData:
    """The data the variants train on: a dataset's name and the images taken from it."""

    name: str
    limit_train: int
    limit_test: int
    what: str  # Which dataset, for the student (Markdown).


def fit_data_ui(folders: FolderReader) -> FitData | None:
    """The variants' dataset and how many of its images they use; None while the student's own images
    are chosen but not read (the reader says why)."""
    picker, images_column = st.columns([1, 2])
    with picker:
        name = ui.dataset_selectbox("aug_fit_dataset", label="Dataset", class_folders=True)
    if name != ui.CLASS_FOLDERS:
        with images_column:
            limit_train = st.select_slider("Training images", FIT_IMAGE_CHOICES, key="aug_fit_images",
                                           format_func=lambda n: f"{n:,}",
                                           help="Few images make overfitting easy to see.")
        spec = data.spec(name)
        return FitData(name, int(limit_train), augmentation.measured_test_images(),
                       f"**{spec.title}** ({shape_text(spec.image_shape)} images)")
    dataset = folders.read("Overfitting and its cures")  # Full width, under the picker.
    if dataset is None:
        return None
    available = len(dataset.x_train)
    choices = augmentation.training_image_choices(available)  # Up to the images it has.
    if st.session_state.get(FIT_FOLDER_IMAGES_KEY) not in choices:  # Another dataset's, or none yet.
        st.session_state[FIT_FOLDER_IMAGES_KEY] = max(
            (n for n in choices if n <= augmentation.OVERFIT_LIMIT_TRAIN), default=choices[0])
    with images_column:
        if len(choices) == 1:
            limit_train = available
            st.markdown(f"Training images: all {available:,}.")
        else:
            limit_train = st.select_slider("Training images", choices, key=FIT_FOLDER_IMAGES_KEY,
                                           format_func=lambda n: f"all {n:,}" if n == available else f"{n:,}",
                                           help="Few images make overfitting easy to see.")
    source = f" from {ui.markdown_text(dataset.report.what)}" if dataset.report is not None else ""
    return FitData(dataset.name, int(limit_train), augmentation.measured_test_images(len(dataset.x_test)),
                   f"**{ui.markdown_text(data.spec(dataset.name).title)}**{source}")


def fit_settings_ui(folders: FolderReader):
    """(FitData, epochs, seeds, variant keys), or None while there is no data to train on."""
    fit_data = fit_data_ui(folders)
    if fit_data is None:
        return None
    columns = st.columns(3)
    with columns[0]:
        epochs = st.slider("Epochs", 2, 40, key="aug_fit_epochs")
    with columns[1]:
        seeds = st.number_input("Seeds per variant", 1, training.seeds.MAX_SEEDS, step=1, key="aug_fit_seeds",
                                help="Each seed is one more training run of every variant: its own initial "
                                     "weights, training subset, data order and augmentation. More seeds "
                                     "narrow the intervals; with one seed no verdict can be made.")
    with columns[2]:
        chosen = st.multiselect("Variants", VARIANT_KEYS, key="aug_fit_variants", format_func=VARIANT_TITLES.get)
    return fit_data, int(epochs), int(seeds), tuple(k for k in VARIANT_KEYS if k in chosen)


def fit_curves_ui(histories: dict) -> None:
    """The variants' accuracy and gap curves ({title: per-epoch history}), replayable: all variants
    together (each on its own recorded clock) or one variant's curves, at a chosen speed, without
    training again."""
    gaps = [train - test for history in histories.values()
            for train, test in zip(history.get("accuracy", ()), history.get("val_accuracy", ()))
            if np.isfinite(train - test)]
    gap_range = [min(0.0, *gaps) - 0.05, max(0.0, *gaps) + 0.05] if gaps else None

    def together(shown: dict):
        figure = augmentation_figures.overfitting_curves_figure(shown)
        # Fixed axes, so that a replay's curves grow without the axes jumping.
        figure.update_yaxes(range=[0, 1.02], row=1, col=1)
        if gap_range is not None:
            figure.update_yaxes(range=gap_range, row=1, col=2)
        return figure

    ui.replay_runs(histories, key="aug_fit_replay", together=together,
                   together_label="All variants together", chart_key="aug_fit_curves")


def _interval(spread) -> str:
    return f"{spread.mean:.1%} ({spread.low:.1%} to {spread.high:.1%})"


def _points_interval(spread) -> str:
    return f"{100 * spread.mean:+.1f} ({100 * spread.low:+.1f} to {100 * spread.high:+.1f})"


def fit_results_ui(measured: list) -> None:
    """Curves of the first seed, the per-variant spread table and figure, and the verdicts."""
    fit_curves_ui({m.variant.title: m.histories[0] for m in measured})
    st.caption(f"The curves are those of seed {measured[0].seeds[0]}; the table, the figure and the verdicts "
               f"below use every seed ({len(measured[0].seeds)}).")
    table = pd.DataFrame([{
        "variant": m.variant.title,
        "seeds": len(m.seeds),
        "weight updates per seed": m.updates,
        "test accuracy: mean (95 % interval)": _interval(m.accuracy_spread),
        "gap in points: mean (95 % interval)": _points_interval(m.gap_spread),
        "test accuracy per seed": " · ".join(f"{a:.1%}" for a in m.test_accuracies),
        "gap per seed (points)": " · ".join(f"{100 * g:+.1f}" for g in m.gaps),
    } for m in measured])
    st.dataframe(table, hide_index=True, key="aug_fit_table")
    with st.expander("Every seed's numbers"):
        seeds_table = pd.DataFrame([{
            "variant": m.variant.title, "seed": seed,
            "train accuracy (clean)": o.train_accuracy,
            "test accuracy": o.test_accuracy,
            "gap (points)": o.gap * 100,
            "train accuracy while training": o.train_accuracy_during,
            "best test accuracy": o.best_test_accuracy,
            "best epoch": o.best_epoch,
            "seconds": o.seconds,
        } for m in measured for seed, o in zip(m.seeds, m.outcomes)])
        st.dataframe(seeds_table, hide_index=True, key="aug_fit_seed_table", column_config={
            "train accuracy (clean)": st.column_config.NumberColumn(format="percent"),
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "gap (points)": st.column_config.NumberColumn(format="%+.1f"),
            "train accuracy while training": st.column_config.NumberColumn(format="percent"),
            "best test accuracy": st.column_config.NumberColumn(format="percent"),
            "seconds": st.column_config.NumberColumn(format="%.1f"),
        })
    st.caption("Clean train accuracy: the trained model in inference mode on the unaugmented training images "
               "(dropout off, batch norm on its moving averages), so the gap compares like with like. "
               "Intervals: 95 %, from the spread across seeds and the sampling error of "
               f"{measured[0].test_images:,} test images. Training took "
               f"{sum(m.seconds for m in measured):.0f} s in total.")
    ui.plotly_chart(augmentation_figures.seed_spread_figure(measured), key="aug_fit_spread")
    found = augmentation.regularisation_verdicts(measured)
    if found:
        st.markdown("**What the numbers show**, each variant against no regularisation (a smaller gap counts "
                    "as better):")
        st.markdown("\n".join(f"- {verdict.text}" for verdict in found))
    else:
        st.info("Add **No regularisation** to the variants to compare each cure against it.",
                icon=":material/compare_arrows:")


def overfitting_section(folders: FolderReader) -> None:
    st.markdown(f"A CNN with about a hundred thousand weights and only ~1,000 training images can memorise "
                "them: training accuracy climbs to nearly 100 % while test accuracy stalls. Train the same "
                "small CNN with each cure, with several seeds each, and compare the **gap**. The default runs "
                f"({len(DEFAULT_VARIANTS)} variants × {len(augmentation.DEFAULT_SEEDS)} seeds) took "
                f"{MEASURED_RUN_SECONDS} s in all on 2 CPU cores; finished runs are cached, so a revisit "
                "shows them at once.")
    settings = fit_settings_ui(folders)
    if settings is None:
        return
    fit_data, epochs, seed_count, keys = settings
    limit_train = fit_data.limit_train
    if not keys:
        st.info("Choose at least one variant to train.", icon=":material/checklist:")
        return
    try:
        variants = augmentation.overfitting_variants(fit_data.name, keys=keys, limit_train=limit_train,
                                                       limit_test=fit_data.limit_test, epochs=epochs)
        seeds = training.seed_list(seed_count)
    except CnnvizError as error:
        ui.show_error(error)
        return
    config = variants[0].config
    updates = augmentation.weight_updates(config, limit_train)
    st.caption(f"Data: {fit_data.what}; {limit_train:,} training and {config.limit_test:,} test images.")
    unflipped = augmentation.unflipped_reason(fit_data.name)
    with st.expander("What each variant changes, and the budget"):
        for variant in variants:
            st.markdown(f"- **{variant.title}**: {variant.change} "
                        f"({augmentation.variant_parameters(variant):,} parameters)")
        if unflipped is not None and any(variant.config.augmentation for variant in variants):
            st.caption(f"No left–right flips in the augmentation: {unflipped}")
        st.caption(f"All: the same CNN (conv 16 → pool → conv 32 → pool → Dense 128 → softmax), Adam, "
                   f"batch {config.batch_size}, {limit_train:,} training and {config.limit_test:,} test images, "
                   f"seeds {', '.join(str(s) for s in seeds)}. Budget: {epochs} epochs of "
                   f"{updates // epochs} batches = {updates:,} weight updates per seed, the same for every "
                   "variant.")
    runs = [(variant, augmentation.seed_variant(variant, seed)) for variant in variants for seed in seeds]
    request = "|".join(seeded.config.key() for _, seeded in runs)
    clicked = st.button("Train the variants", type="primary", key="aug_fit_train", icon=":material/play_arrow:")
    if clicked:
        st.session_state[FIT_REQUEST_KEY] = request
    if (st.session_state.get(FIT_REQUEST_KEY) != request
            and not all(training.is_cached(seeded.config) for _, seeded in runs)):
        st.info("Press **Train the variants** to train them one after another, every seed "
                "(results are cached).", icon=":material/model_training:")
        return

    # Every seed of every variant through `training.train_seeds` (seeds that can train together do),
    # with the shared seeds panel and its Stop button; seeds that finished are cached.
    run = ui.train_seeds_with_progress(
        functools.partial(train_variants, variants, seeds), key="aug_fit_training", job_key=request,
        variants={variant.key: variant.title for variant in variants}, seeds=seeds, fresh=clicked,
        again="Press **Train the variants**")
    if run is None or not run.complete:
        return
    measured = [run.result[variant.key] for variant in variants]
    fit_results_ui(measured)


# --------------------------------------------------------------------------------------------
# 3 · Dropout, exactly
# --------------------------------------------------------------------------------------------

def dropout_section() -> None:
    st.markdown("During training, `Dropout(p)` sets each unit to 0 with probability *p* and multiplies the "
                "survivors by 1/(1 − p) (*inverted dropout*), so the expected output stays the same. At "
                "inference it does nothing at all. Below, the real Keras layer on one vector of activations.")
    columns = st.columns(3)
    units = columns[0].slider("Units", 4, 16, key="aug_drop_units")
    rate = columns[1].slider("Dropout rate p", 0.0, 0.9, step=0.05, key="aug_drop_rate")
    seed = columns[2].number_input("Seed", 0, 1_000_000, step=1, key="aug_drop_seed",
                                   help="The seed decides which units are dropped.")
    inputs = augmentation.example_activations(int(units))
    demo = cached_dropout(tuple(float(v) for v in inputs), float(rate), int(seed))
    metrics = st.columns(4)
    metrics[0].metric("Dropped units", f"{int(demo.dropped.sum())} of {len(inputs)}")
    metrics[1].metric("Scale of kept units", f"× {demo.scale:.3g}", help="1 / (1 − p)")
    metrics[2].metric("Mean, training", f"{demo.mean_training:.3f}")
    metrics[3].metric("Mean, inference", f"{demo.mean_inference:.3f}")
    ui.plotly_chart(augmentation_figures.dropout_figure(demo), key="aug_drop_figure")
    table = pd.DataFrame({
        "unit": np.arange(len(inputs)),
        "input": demo.inputs,
        "kept": demo.kept,
        "training output (Keras)": demo.training_output,
        "input × kept / (1 − p)": demo.training_closed_form,
        "inference output (Keras)": demo.inference_output,
    })
    st.dataframe(table, hide_index=True, key="aug_drop_table", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in table.columns if c not in ("unit", "kept")})
    st.markdown(f"With this seed the training mean is **{demo.mean_training:.3f}** against "
                f"**{demo.mean_inference:.3f}** at inference. One draw can land either side; averaged over "
                f"{demo.draws:,} random masks the training mean is **{demo.mean_over_draws:.3f}** — the "
                "1/(1 − p) scaling keeps the expectation equal to the inference output, so nothing needs "
                "rescaling when the model is deployed.")


# --------------------------------------------------------------------------------------------
# 4 · Batch norm, exactly
# --------------------------------------------------------------------------------------------

def _feature_table(values: np.ndarray, names: list[str], index_name: str = "sample") -> pd.DataFrame:
    table = pd.DataFrame(np.asarray(values, dtype=np.float64), columns=names)
    table.insert(0, index_name, np.arange(len(table)))
    return table


def batchnorm_section() -> None:
    st.markdown("`BatchNormalization` standardises each feature. **In training** it uses the mean and variance "
                "of the current batch and updates moving averages: moving ← momentum · moving + "
                "(1 − momentum) · batch statistic. **At inference** it uses those moving averages instead. "
                "Below, the real Keras layer is called in training mode once per batch "
                "(γ = 1 and β = 0, their starting values).")
    columns = st.columns(4)
    batch_size = columns[0].slider("Batch size", 2, 16, key="aug_bn_batch")
    steps = columns[1].slider("Training steps", 1, 50, key="aug_bn_steps")
    momentum = columns[2].select_slider("Momentum", (0.0, 0.5, 0.9, 0.99), key="aug_bn_momentum",
                                        help="Keras' default is 0.99.")
    seed = columns[3].number_input("Data seed", 0, 1_000_000, step=1, key="aug_bn_seed")
    demo = cached_batchnorm(int(steps), int(batch_size), float(momentum), int(seed))
    names = [f"feature {j} (≈ N({m:g}, {s:g}²))" for j, (m, s) in enumerate(augmentation.EXAMPLE_FEATURES)]
    short = [f"feature {j}" for j in range(len(names))]

    st.markdown(f"**The last batch** (step {demo.steps}), raw activations:")
    st.dataframe(_feature_table(demo.last_batch, names), hide_index=True, key="aug_bn_batch_table")
    stats = pd.DataFrame({
        "statistic": ["batch mean (training uses)", "batch variance (training uses)",
                      f"moving mean after {demo.steps} steps (inference uses)",
                      f"moving variance after {demo.steps} steps (inference uses)"],
        **{n: [demo.batch_mean[j], demo.batch_variance[j], demo.moving_mean[j], demo.moving_variance[j]]
           for j, n in enumerate(short)},
    })
    st.dataframe(stats, hide_index=True, key="aug_bn_stats", column_config={
        n: st.column_config.NumberColumn(format="%.4f") for n in short})
    outputs = st.columns(2)
    with outputs[0]:
        st.markdown("**Training output** `layer(x, training=True)`: (x − batch mean) / √(batch var + ε)")
        st.dataframe(_feature_table(demo.training_output, short), hide_index=True, key="aug_bn_train_out",
                     column_config={n: st.column_config.NumberColumn(format="%.3f") for n in short})
    with outputs[1]:
        st.markdown("**Inference output** `layer(x, training=False)`: (x − moving mean) / √(moving var + ε)")
        st.dataframe(_feature_table(demo.inference_output, short), hide_index=True, key="aug_bn_infer_out",
                     column_config={n: st.column_config.NumberColumn(format="%.3f") for n in short})
    ui.plotly_chart(augmentation_figures.batchnorm_moving_figure(demo, short), key="aug_bn_figure")
    st.markdown(augmentation.batchnorm_reading(demo))


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

WIDGET_DEFAULTS = {
    "aug_source": "sample", "aug_dataset": "fashion_mnist", "aug_sample": 0,
    "aug_flip_h": True, "aug_flip_v": False, "aug_rotation": 10, "aug_zoom": 10, "aug_shift": 10,
    "aug_contrast": 0.2, "aug_seed": 0,
    "aug_fit_dataset": "fashion_mnist", "aug_fit_images": augmentation.OVERFIT_LIMIT_TRAIN,
    "aug_fit_epochs": augmentation.OVERFIT_EPOCHS, "aug_fit_variants": list(DEFAULT_VARIANTS),
    "aug_fit_seeds": len(augmentation.DEFAULT_SEEDS),
    "aug_drop_units": 10, "aug_drop_rate": 0.5, "aug_drop_seed": 0,
    "aug_bn_batch": 6, "aug_bn_steps": 5, "aug_bn_momentum": 0.9, "aug_bn_seed": 0,
}

ui.page_header("Augmentation & regularisation",
               "Fighting overfitting on small data: augmentation, dropout and batch normalisation, measured.")
ui.restore_view(VIEW_PARAMS)  # First: a link, or the values from before a page switch.
for _key, _default in WIDGET_DEFAULTS.items():
    if _key not in st.session_state:
        st.session_state[_key] = _default

preview_tab, fit_tab, dropout_tab, batchnorm_tab = st.tabs(
    ["Augmentation preview", "Overfitting and its cures", "Dropout, exactly", "Batch norm, exactly"])
folder_reader = FolderReader()
with preview_tab:
    preview_section(folder_reader)
with dropout_tab:
    dropout_section()
with batchnorm_tab:
    batchnorm_section()
with fit_tab:
    overfitting_section(folder_reader)
ui.publish_view(VIEW_PARAMS)
