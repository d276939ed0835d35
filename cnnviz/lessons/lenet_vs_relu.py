"""tanh LeNet vs ReLU CNN: the two seed models on the same data, and the factors that separate them.

The seeds train two networks on Fashion-MNIST and ask which is better:

- the ReLU CNN (`fashion_relu_cnn`: Conv 8@3x3, max pooling, Dense 28, Dense 10), Adam with
  Keras' default learning rate 0.001 and `model.fit`'s default batch size 32;
- the LeNet-5 variant (`lenet5_tanh`: tanh, average pooling, Conv 6@3x3 "same", Conv 16@5x5,
  Conv 120@5x5, Dense 84, Dense 10), plain SGD with Keras' default learning rate 0.01 and batch 128.

They differ in three factors (activation, pooling, optimiser with batch size) and in the
architecture itself. To see which factor matters, this module defines *variants* of the LeNet that
change one factor at a time, plus one that changes all three at once:

- one factor at a time answers "what does this change do on its own?" with the LeNet as the fixed
  reference, so each bar is independent of any ordering;
- the all-three variant is the LeNet architecture trained exactly like the ReLU CNN (same activation,
  pooling, optimiser and batch size). Comparing it with the ReLU CNN isolates what is left: the
  architecture (layer sizes and depth). Comparing it with the sum of the single-factor gains shows
  whether the factors add up or interact.
A cumulative chain (ReLU, then + max pooling, then + Adam) was not chosen: its bars depend on the
order in which the changes are stacked, which invites students to read an arbitrary order as a ranking.

Budgets and seeds: by default every variant makes the same number of weight updates of the same
batch size (`ComparisonSettings.updates`, `variant_recipe`) on the same images, with an SGD learning
rate at which no SGD variant is judged in its start-up regime, and every model is measured on the
whole test split; "the seeds' settings" reproduces the seeds' own runs (SGD 0.01 on batches of 128,
Adam 0.001 on batches of 32, 10 epochs). Every
variant trains once per seed (`cnnviz.training.train_seeds`), and every verdict ("A beats B",
"no measurable difference", "undecided") is `cnnviz.verdicts.compare` on the per-seed test
accuracies (`experiment_report`); the module writes no sentence of its own about a measurement.

Everything here is plain Python and NumPy on histories, tables and arrays, plus two functions that
touch a Keras model (`first_layer_activations`, `predicted_labels`), which import Keras lazily.
Training goes through `cnnviz.training`; stacks come from `cnnviz.architecture`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cnnviz import architecture, data, training, verdicts
from cnnviz.errors import SettingsError
from cnnviz.training import Progress, TrainConfig, TrainResult
from cnnviz.training.progress import OnProgress

RELU_CNN_PRESET = "fashion_relu_cnn"
LENET_PRESET = "lenet5_tanh"

# The default comparison (equal updates): every variant makes DEFAULT_UPDATES weight updates of
# EQUAL_BATCH images on the same DEFAULT_TRAIN_IMAGES images (3 epochs), 3 seeds each, measured on
# DEFAULT_TEST_IMAGES test images (bench/comparison_defaults.py times it; the page's budget is 45 s).
# With one batch size for all, the optimiser factor is the optimiser alone, and every variant sees
# the same images. Measured (seeds 0-2, 480 updates of 32): at SGD's Keras default 0.01 the SGD
# LeNets are still starting up ("LeNet + ReLU" 50.1-61.2 % depending on the seed); at
# EQUAL_BUDGET_SGD_LR = 0.05 each SGD variant's seeds lay within 1.5 points of each other. At the
# default 360 updates "LeNet + ReLU" scored 71.7-73.9 % (seeds 0-2) and 72.3-73.7 % (seeds 3-5).
# The test set is the whole test split (10,000 images; the same images for every seed and model),
# measured once after the last update: 2,000 images gave every variant's mean a test-sampling error
# of about ±1.9 points, larger than the seeds' own spread, and measuring 10,000 after every epoch
# would cost more than the training.
DEFAULT_TRAIN_IMAGES = 3840
DEFAULT_TEST_IMAGES = 10_000
# The test splits of Fashion-MNIST, MNIST and CIFAR-10 hold 10,000 images: asking for that many (or
# more) means the whole split in its file order, so that image j is the same image for every seed
# (`ComparisonSettings` stores None; the paired test-sampling error compares models image by image).
WHOLE_TEST_SPLIT = 10_000
DEFAULT_UPDATES = 360
EQUAL_BATCH = 32
EQUAL_BUDGET_SGD_LR = 0.05

# The seeds' full runs: all 60,000 (CIFAR-10: 50,000) training images, the whole test set, 10 epochs.
SEED_EPOCHS = 10

# Fraction of |activation| above which a tanh unit counts as saturated (its slope is below 0.1 there).
SATURATION_THRESHOLD = 0.95


@dataclass(frozen=True)
class TrainSettings:
    """How a model is trained: optimiser, its learning rate and the mini-batch size."""

    optimizer: str
    learning_rate: float
    batch_size: int


# The seeds' settings, spelled out: the seeds pass `optimizer='adam'` / `optimizer='sgd'` (Keras
# default learning rates 0.001 and 0.01) and batch sizes 32 (the `fit` default) and 128.
RELU_CNN_SETTINGS = TrainSettings("adam", 0.001, 32)
LENET_SETTINGS = TrainSettings("sgd", 0.01, 128)

# The three factors in which the two seed models' recipes differ, with a short label each.
FACTORS: tuple[str, ...] = ("activation", "pooling", "optimizer")
FACTOR_LABELS: dict[str, str] = {
    "activation": "tanh → ReLU",
    "pooling": "average → max pooling",
    "optimizer": "SGD → Adam (the seeds also change the batch, 128 → 32)",
}


@dataclass(frozen=True)
class Variant:
    """One model of the comparison: a preset plus the factors changed from the LeNet recipe.

    `changes` lists the factors (from `FACTORS`) that differ from the tanh LeNet. The ReLU CNN is a
    different architecture altogether; its `changes` name all three factors but `preset` differs.
    """

    key: str
    label: str
    preset: str
    changes: tuple[str, ...]
    settings: TrainSettings
    description: str


LENET = "lenet"
RELU_CNN = "relu_cnn"
ALL_THREE = "lenet_all_three"


def _lenet_variant(changes: tuple[str, ...], label: str, description: str) -> Variant:
    """A LeNet with the given factors switched to the ReLU CNN's choice."""
    key = ALL_THREE if changes == FACTORS else f"lenet_{changes[0]}"
    settings = RELU_CNN_SETTINGS if "optimizer" in changes else LENET_SETTINGS
    return Variant(key, label, LENET_PRESET, changes, settings, description)


VARIANTS: tuple[Variant, ...] = (
    Variant(LENET, "tanh LeNet (seed)", LENET_PRESET, (), LENET_SETTINGS,
            "The seeds' LeNet-5: tanh, average pooling, SGD (lr 0.01), batch 128."),
    _lenet_variant(("activation",), "LeNet + ReLU", "LeNet with ReLU instead of tanh; everything else unchanged."),
    _lenet_variant(("pooling",), "LeNet + max pooling",
                   "LeNet with max instead of average pooling; everything else unchanged."),
    _lenet_variant(("optimizer",), "LeNet + Adam/32",
                   "LeNet trained with Adam (lr 0.001) on batches of 32; architecture unchanged."),
    _lenet_variant(FACTORS, "LeNet + all three",
                   "LeNet with ReLU, max pooling and Adam/32: the LeNet architecture trained like the ReLU CNN."),
    Variant(RELU_CNN, "ReLU CNN (seed)", RELU_CNN_PRESET, FACTORS, RELU_CNN_SETTINGS,
            "The seeds' small CNN: Conv 8@3x3 ReLU, max pooling, Dense 28, Adam (lr 0.001), batch 32."),
)
VARIANTS_BY_KEY: dict[str, Variant] = {variant.key: variant for variant in VARIANTS}
SINGLE_FACTOR_KEYS: tuple[str, ...] = tuple(f"lenet_{factor}" for factor in FACTORS)


def variant(key: str) -> Variant:
    """The variant with this key; a clear error for an unknown one."""
    try:
        return VARIANTS_BY_KEY[key]
    except KeyError:
        raise ValueError(f"Unknown model {key!r}; choose one of {', '.join(VARIANTS_BY_KEY)}.") from None


# --------------------------------------------------------------------------------------------
# Stacks and training configurations
# --------------------------------------------------------------------------------------------

def with_activation(layers: Sequence[Mapping], old: str, new: str) -> list[dict]:
    """A copy of a stack in which every hidden layer using activation `old` uses `new` instead.

    The output layer keeps its activation (softmax), even if it happened to equal `old`.
    """
    result = [dict(layer) for layer in layers]
    for layer in result[:-1]:
        if layer.get("activation") == old:
            layer["activation"] = new
    return result


def with_pooling(layers: Sequence[Mapping], kind: str) -> list[dict]:
    """A copy of a stack in which every 2-D pooling layer is of `kind` ("max" or "avg").

    Pool size and strides stay as they were, so shapes and parameter counts do not change.
    """
    if kind not in ("max", "avg"):
        raise ValueError(f"Pooling must be 'max' or 'avg', not {kind!r}.")
    result = [dict(layer) for layer in layers]
    for layer in result:
        if layer.get("type") in ("maxpool2d", "avgpool2d"):
            layer["type"] = f"{kind}pool2d"
    return result


def variant_stack(variant_or_key: Variant | str, input_shape: Sequence[int], num_classes: int) -> list[dict]:
    """The layer stack of a variant, re-targeted to an input shape and a number of classes."""

    chosen = variant(variant_or_key) if isinstance(variant_or_key, str) else variant_or_key
    layers = architecture.stack_for(chosen.preset, tuple(input_shape), num_classes)
    if chosen.preset == LENET_PRESET:
        if "activation" in chosen.changes:
            layers = with_activation(layers, "tanh", "relu")
        if "pooling" in chosen.changes:
            layers = with_pooling(layers, "max")
    return [dict(layer) for layer in layers]


@dataclass(frozen=True)
class ComparisonSettings:
    """The shared conditions of every model in one comparison: same data, seeds and budget.

    Two budgets:

    - equal updates (`updates` set, the default): every variant makes the same number of weight
      updates (mini-batch steps) of `EQUAL_BATCH` images on the same `limit_train` images, SGD at
      `EQUAL_BUDGET_SGD_LR` (`variant_recipe`); `epochs` is ignored. Every variant uses the
      engine's fast loop (`fast=True`): the same schedule for all, its learning rate warming up
      briefly then decaying along a cosine, and the seeds of a variant train together. The test
      split is measured once, after the last update (`validate_every_epoch=False`);
    - the seeds' settings (`updates=None`, `as_in_the_seeds`): every training and test image,
      `epochs` epochs (10), each recipe with plain `model.fit` at a constant learning rate
      (`fast=False`), as the seeds train; the batch-32 recipes then make 4x as many updates.

    `limit_train`/`limit_test` of None mean the whole split. Every variant trains once per seed in
    `seeds` (`cnnviz.training.train_seeds`).
    """

    dataset: str = "fashion_mnist"
    limit_train: int | None = DEFAULT_TRAIN_IMAGES
    limit_test: int | None = DEFAULT_TEST_IMAGES
    updates: int | None = DEFAULT_UPDATES
    epochs: int = SEED_EPOCHS
    seeds: tuple[int, ...] = training.DEFAULT_SEEDS
    fast: bool = True
    validate_every_epoch: bool = False

    def __post_init__(self) -> None:
        data.spec(self.dataset)  # An unknown dataset is a ValueError.
        if self.limit_test is not None and self.limit_test >= WHOLE_TEST_SPLIT:
            object.__setattr__(self, "limit_test", None)
        object.__setattr__(self, "seeds", training.seed_list(self.seeds))
        if self.epochs < 1:
            raise SettingsError("Train for at least one epoch.")
        if self.updates is not None:
            if self.updates < 1:
                raise SettingsError("Train for at least one weight update.")
            if self.limit_train is None:
                raise SettingsError("An equal-updates budget needs a training-set size; the full data "
                                    "is the seeds' settings.")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and value < 10:
                raise SettingsError(f"{name.replace('_', ' ').capitalize()} must be at least 10 images (or the full set).")

    @classmethod
    def as_in_the_seeds(cls, dataset: str = "fashion_mnist", *,
                        seeds: Sequence[int] = training.DEFAULT_SEEDS) -> ComparisonSettings:
        """The seeds' runs: every training and test image, 10 epochs, plain `model.fit`."""
        return cls(dataset=dataset, limit_train=None, limit_test=None, updates=None, epochs=SEED_EPOCHS,
                   seeds=tuple(seeds), fast=False, validate_every_epoch=True)

    @property
    def equal_updates(self) -> bool:
        return self.updates is not None


def variant_recipe(variant_or_key: Variant | str, settings: ComparisonSettings) -> TrainSettings:
    """The optimiser, learning rate and batch size a variant trains with under these settings.

    The seeds' settings keep each recipe as the seeds wrote it (`Variant.settings`). The equal-updates
    budget gives every variant batches of `EQUAL_BATCH` and SGD the learning rate
    `EQUAL_BUDGET_SGD_LR` (Adam keeps 0.001), so that no SGD variant is judged in its start-up regime.
    """
    chosen = variant(variant_or_key) if isinstance(variant_or_key, str) else variant_or_key
    if not settings.equal_updates:
        return chosen.settings
    learning_rate = EQUAL_BUDGET_SGD_LR if chosen.settings.optimizer == "sgd" else chosen.settings.learning_rate
    return TrainSettings(chosen.settings.optimizer, learning_rate, EQUAL_BATCH)


def recipe_text(settings: ComparisonSettings) -> str:
    """The recipes of these settings in one sentence (the page's caption above the results)."""
    sgd = variant_recipe(LENET, settings)
    adam = variant_recipe(RELU_CNN, settings)
    if settings.equal_updates:
        return (f"Every model makes the same number of weight updates ({settings.updates:,} per seed) of "
                f"{EQUAL_BATCH} images on the same {settings.limit_train:,} training images. The SGD models use "
                f"learning rate {sgd.learning_rate:g} (the seeds use {LENET_SETTINGS.learning_rate:g}, which at this "
                f"budget leaves them still starting up), the Adam models {adam.learning_rate:g}; all share the "
                "engine's schedule (a short warm-up, then a cosine decay). Results are cached per seed.")
    return (f"The seeds' settings: the SGD models train with learning rate {sgd.learning_rate:g} on batches of "
            f"{sgd.batch_size}, the Adam models with {adam.learning_rate:g} on batches of {adam.batch_size}, "
            f"{settings.epochs} epochs each with plain `model.fit` at a constant learning rate, so the "
            f"batch-{adam.batch_size} models make {sgd.batch_size // adam.batch_size}x as many updates. "
            "Results are cached per seed.")


def steps_per_epoch(variant_or_key: Variant | str, settings: ComparisonSettings, train_images: int) -> int:
    """Weight updates in one epoch of `train_images` images at the variant's batch size (last batch partial)."""
    return math.ceil(train_images / variant_recipe(variant_or_key, settings).batch_size)


def variant_epochs(variant_or_key: Variant | str, settings: ComparisonSettings) -> int:
    """Epochs of one variant: enough for `settings.updates` updates, or `settings.epochs` (the seeds' settings)."""
    if settings.updates is None or settings.limit_train is None:
        return settings.epochs
    return math.ceil(settings.updates / steps_per_epoch(variant_or_key, settings, settings.limit_train))


def variant_updates(variant_or_key: Variant | str, settings: ComparisonSettings, train_images: int | None = None) -> int:
    """Weight updates per seed of one variant (the budget the page states)."""
    images = settings.limit_train if settings.limit_train is not None else train_images
    if images is None:
        images = len(data.load(settings.dataset).y_train)
    return variant_epochs(variant_or_key, settings) * steps_per_epoch(variant_or_key, settings, images)


def variant_config(variant_or_key: Variant | str, settings: ComparisonSettings) -> TrainConfig:
    """The `TrainConfig` that trains one variant under the shared settings (first seed; `train_seeds`
    makes the others)."""

    chosen = variant(variant_or_key) if isinstance(variant_or_key, str) else variant_or_key
    spec = data.spec(settings.dataset)
    recipe = variant_recipe(chosen, settings)
    return TrainConfig.from_stack(
        variant_stack(chosen, spec.image_shape, spec.num_classes),
        dataset=settings.dataset,
        limit_train=settings.limit_train,
        limit_test=settings.limit_test,
        optimizer=recipe.optimizer,
        learning_rate=recipe.learning_rate,
        batch_size=recipe.batch_size,
        epochs=variant_epochs(chosen, settings),
        seed=settings.seeds[0],
        fast=settings.fast,
        validate_every_epoch=settings.validate_every_epoch or not settings.fast,
    )


def comparison_configs(settings: ComparisonSettings, keys: Sequence[str] | None = None) -> dict[str, TrainConfig]:
    """`{variant key: TrainConfig}` for the chosen variants (all of them by default), in teaching order."""
    chosen = [variant(key) for key in keys] if keys is not None else list(VARIANTS)
    return {item.key: variant_config(item, settings) for item in chosen}


# --------------------------------------------------------------------------------------------
# Training every variant with several seeds
# --------------------------------------------------------------------------------------------

def seconds_per_epoch(history: Mapping[str, Sequence[float]]) -> float:
    """Median wall-clock seconds of one epoch (validation included). The engine records each epoch's
    duration in `history["seconds"]`; the first also builds the graph, and the median ignores that
    set-up cost once there are three or more epochs. NaN when no epoch finished."""
    durations = [float(value) for value in history.get("seconds", ()) if value is not None]
    return float(np.median(durations)) if durations else float("nan")


# `on_progress(variant key, progress)`: False stops the comparison (see `run_comparison`).
VariantProgress = Callable[[str, Progress], object]


def run_comparison(settings: ComparisonSettings, keys: Sequence[str] | None = None,
                   on_progress: VariantProgress | None = None) -> dict[str, list[TrainResult]]:
    """Train every chosen variant (all by default) once per seed of `settings`, through `train_seeds`.

    Returns `{variant key: [TrainResult per seed]}` in teaching order. Seeds already in the disk
    cache are read from it. A variant whose seeds did not all finish (Stop) ends the comparison:
    the variants after it are not trained and it is left out of the returned dict.
    """
    results: dict[str, list[TrainResult]] = {}
    for key, config in comparison_configs(settings, keys).items():
        report: OnProgress | None = None
        if on_progress is not None:
            def report(progress: Progress, key: str = key) -> object:
                return on_progress(key, progress)
        runs = training.train_seeds(config, settings.seeds, report)
        if len(runs) < len(settings.seeds) or any(run.stopped_reason != "finished" for run in runs):
            break
        results[key] = runs
    return results


def comparison_cached(settings: ComparisonSettings) -> bool:
    """Whether every seed of every model is already in the training cache (e.g. `python -m cnnviz warmup`)."""
    return all(training.is_cached(seed_config) for config in comparison_configs(settings).values()
               for seed_config in training.seed_configs(config, settings.seeds))


def variant_result(key: str, runs: Sequence[TrainResult], settings: ComparisonSettings) -> verdicts.VariantResult:
    """One variant's seeds as a `VariantResult`: test accuracy per seed, the budget in updates, and in
    `extra` its label, parameters, epochs and seconds per epoch per seed."""
    chosen = variant(key)
    test_images = len(runs[0].test_data()[1])
    return verdicts.VariantResult(
        name=chosen.label, seeds=tuple(int(run.config.seed) for run in runs),
        test_accuracy=tuple(float(run.test_accuracy) for run in runs),
        updates=variant_updates(chosen, settings), test_images=test_images,
        extra={"key": key, "params": int(runs[0].model.count_params()), "epochs": variant_epochs(chosen, settings),
               "batch_size": variant_recipe(chosen, settings).batch_size,
               "optimizer": variant_recipe(chosen, settings).optimizer,
               "seconds_per_epoch": [seconds_per_epoch(run.history) for run in runs]})


# The verdicts of the experiment: (factor, A, B). A one-factor variant is compared with the tanh
# LeNet; the all-three LeNet (trained like the ReLU CNN) with the ReLU CNN isolates the architecture.
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("seed_models", RELU_CNN, LENET),
    ("activation", "lenet_activation", LENET),
    ("pooling", "lenet_pooling", LENET),
    ("optimizer", "lenet_optimizer", LENET),
    ("all_three", ALL_THREE, LENET),
    ("architecture", RELU_CNN, ALL_THREE),
)
COMPARISON_TITLES: dict[str, str] = {
    "seed_models": "The two seed models",
    "activation": f"One factor: {FACTOR_LABELS['activation']}",
    "pooling": f"One factor: {FACTOR_LABELS['pooling']}",
    "optimizer": f"One factor: {FACTOR_LABELS['optimizer']}",
    "all_three": "All three factors at once",
    "architecture": "Same recipe, other architecture",
}
SPEED_MARGIN = 0.10  # A per-epoch time within 10 % of the slower one is "no measurable difference".


def experiment_report(settings: ComparisonSettings, results: Mapping[str, Sequence[TrainResult]]) -> verdicts.ExperimentReport:
    """The variants' spreads and every verdict of `COMPARISONS` whose two variants were trained.

    Every verdict comes from `verdicts.compare` on the per-seed test accuracies, with the test
    set's sampling error; nothing else is said about them. The seeds are blocks: seed s of every
    variant trains on the same images in the same order (the LeNet variants, whose weights have the
    same shapes, also from the same initial weights) and every model is measured on the same test
    images, so the verdicts use the block design's residual spread
    (`verdicts.block_residual_variance`) and the paired test-sampling error
    (`verdicts.paired_test_variance`, from each run's per-image `test_hits`). Without those (a
    single variant, seeds that differ, a run without hits) `compare` falls back to its
    independent, more conservative defaults.
    """
    variants = {key: variant_result(key, runs, settings) for key, runs in results.items()}
    seed_variance = None
    if len(variants) >= 2 and len({item.seeds for item in variants.values()}) == 1 \
            and len(next(iter(variants.values())).seeds) >= 2:
        seed_variance = verdicts.block_residual_variance([item.test_accuracy for item in variants.values()])
    found = []
    for factor, a, b in COMPARISONS:
        if a in variants and b in variants:
            found.append(verdicts.compare(factor, variants[a].name, variants[a].test_accuracy,
                                          variants[b].name, variants[b].test_accuracy,
                                          test_images=min(variants[a].test_images, variants[b].test_images),
                                          seed_variance=seed_variance,
                                          test_variance=_paired_test_variance(results[a], results[b])))
    return verdicts.ExperimentReport(name="lenet-vs-relu", variants=tuple(variants.values()), verdicts=tuple(found))


def _paired_test_variance(runs_a: Sequence[TrainResult], runs_b: Sequence[TrainResult]) -> float | None:
    """`verdicts.paired_test_variance` from the runs' per-image hits, or None when a run has none
    (or their test sets differ)."""
    runs = (*runs_a, *runs_b)
    labels = runs[0].test_data()[1]
    if not all(np.array_equal(run.test_data()[1], labels) for run in runs[1:]):
        return None  # test subsets drawn per seed: image j is not the same image for every run
    return verdicts.paired_test_variance_of([run.test_hits for run in runs_a], [run.test_hits for run in runs_b])


def speed_verdict(report: verdicts.ExperimentReport, a: str = RELU_CNN, b: str = LENET) -> verdicts.Verdict | None:
    """Seconds per epoch of A against B (each seed's median epoch), judged by `compare` with a margin of
    `SPEED_MARGIN` of the slower one. None when either variant is missing."""
    by_key = {str(item.extra.get("key")): item for item in report.variants}
    if a not in by_key or b not in by_key:
        return None
    times_a = [float(t) for t in by_key[a].extra["seconds_per_epoch"]]  # type: ignore[attr-defined]
    times_b = [float(t) for t in by_key[b].extra["seconds_per_epoch"]]  # type: ignore[attr-defined]
    slower = max(float(np.mean(times_a)), float(np.mean(times_b)))
    return verdicts.compare("seconds_per_epoch", by_key[a].name, times_a, by_key[b].name, times_b,
                            margin=SPEED_MARGIN * slower, higher_is_better=False, unit="seconds")


def report_records(report: verdicts.ExperimentReport) -> list[dict]:
    """One table row per variant (for a dataframe): budget, mean, interval and every seed's accuracy."""
    records = []
    for item in report.variants:
        chosen = variant(str(item.extra["key"]))
        spread = item.spread
        changed = ", ".join(FACTOR_LABELS[f] for f in chosen.changes) if chosen.key != RELU_CNN else "other architecture"
        times = [float(t) for t in item.extra["seconds_per_epoch"]]  # type: ignore[attr-defined]
        records.append({
            "Model": item.name,
            "Changed from LeNet": changed or "—",
            "Parameters": int(item.extra["params"]),  # type: ignore[call-overload]
            "Updates per seed": item.updates,
            "Epochs": int(item.extra["epochs"]),  # type: ignore[call-overload]
            "Seconds per epoch": round(float(np.median(times)), 2),
            "Mean test accuracy (%)": round(100 * spread.mean, 1),
            "95% interval (%)": f"{100 * spread.low:.1f} to {100 * spread.high:.1f}",
            "Per seed (%)": ", ".join(f"{100 * value:.1f}" for value in item.test_accuracy),
        })
    return records


def budget_text(report: verdicts.ExperimentReport, settings: ComparisonSettings) -> str:
    """The budget in words: updates per seed of every variant, data, seeds (Markdown)."""
    updates = sorted({item.updates for item in report.variants})
    seeds = ", ".join(str(seed) for seed in settings.seeds)
    images = f"{settings.limit_train:,}" if settings.limit_train is not None else "all"
    if len(updates) == 1:
        budget = f"every model made **{updates[0]:,} weight updates** per seed"
    else:
        budget = "the models made " + ", ".join(f"{item.name}: {item.updates:,}" for item in report.variants) + \
            " weight updates per seed"
    return (f"Budget: {budget}, on {images} training images, measured on "
            f"{report.variants[0].test_images:,} test images; seeds {seeds}.")


def run_default_experiment(seeds: Sequence[int], *, on_progress: VariantProgress | None = None) -> verdicts.ExperimentReport:
    """The page's default comparison with these seeds (what `python -m cnnviz experiment lenet-vs-relu` prints)."""
    settings = ComparisonSettings(seeds=tuple(seeds))
    return experiment_report(settings, run_comparison(settings, on_progress=on_progress))


# --------------------------------------------------------------------------------------------
# Confusion matrices
# --------------------------------------------------------------------------------------------

def row_normalized(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total: entry [t, p] is the share of class t predicted as p.

    Rows of classes without test images stay zero.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)


def confusion_difference(confusion_a: np.ndarray, confusion_b: np.ndarray) -> np.ndarray:
    """Row-normalised confusion of model A minus that of model B, (K, K) in [-1, 1].

    Positive diagonal: A gets that class right more often. Positive off-diagonal: A makes that
    particular mistake more often. Normalising per row makes the matrices comparable even when
    test sets differ in size.
    """
    confusion_a, confusion_b = np.asarray(confusion_a), np.asarray(confusion_b)
    if confusion_a.shape != confusion_b.shape:
        raise ValueError(f"Confusion matrices of different shapes: {confusion_a.shape} and {confusion_b.shape}.")
    return row_normalized(confusion_a) - row_normalized(confusion_b)


def class_accuracy_differences(difference: np.ndarray, class_names: Sequence[str]) -> list[tuple[str, float]]:
    """(class name, per-class accuracy of A minus B) from a confusion difference, largest first."""
    diagonal = np.diag(np.asarray(difference))
    order = np.argsort(-diagonal, kind="stable")
    return [(class_names[index], float(diagonal[index])) for index in order]


def predicted_labels(model, images: np.ndarray, *, batch_size: int = architecture.EVAL_BATCH) -> np.ndarray:
    """Predicted class (N,) for uint8 images (N, H, W, C), scaled to [0, 1] as the engine does."""
    outputs = [np.asarray(model(architecture.scale_images(images[start:start + batch_size]), training=False))
               for start in range(0, len(images), batch_size)]
    if not outputs:
        return np.zeros((0,), dtype=np.int64)
    return np.concatenate(outputs).argmax(axis=1)


# --------------------------------------------------------------------------------------------
# First-layer activations
# --------------------------------------------------------------------------------------------

def first_layer_activations(model, images: np.ndarray) -> np.ndarray:
    """Outputs of the model's first layer, after its activation, for uint8 images (N, H, W, C).

    For the seed models that is the first convolution: (N, 26, 26, 8) for the ReLU CNN and
    (N, 28, 28, 6) for the LeNet on 28x28 images.
    """
    import keras

    first = model.layers[0]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs=inputs, outputs=first.output)
    return np.asarray(probe(architecture.scale_images(images), training=False))


@dataclass(frozen=True)
class ActivationStats:
    """How the values coming out of an activation function are distributed."""

    activation: str
    count: int
    saturated_fraction: float  # share with |a| > SATURATION_THRESHOLD (tanh's flat tails)
    zero_fraction: float  # share exactly 0 (ReLU's dead zone: no gradient flows back)
    mean: float
    std: float

def activation_statistics(values: np.ndarray, activation: str) -> ActivationStats:
    """Saturation and zero fractions, mean and spread of a batch of activations (any shape)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("No activations to summarise: the batch of images is empty.")
    return ActivationStats(
        activation=activation,
        count=int(values.size),
        saturated_fraction=float(np.mean(np.abs(values) > SATURATION_THRESHOLD)),
        zero_fraction=float(np.mean(values == 0.0)),
        mean=float(values.mean()),
        std=float(values.std()),
    )


def first_layer_activation_name(layers: Sequence[Mapping]) -> str:
    """The activation of the first layer of a stack ("linear" when it has none)."""
    return str(layers[0].get("activation") or "linear") if layers else "linear"


def silent_channels(values: np.ndarray) -> int:
    """How many channels (last axis) are exactly zero for every position of every image.

    For ReLU these filters passed no signal and so got no gradient on this batch: "dead" for it.
    `values` is (N, H, W, C) as returned by `first_layer_activations`.
    """
    values = np.asarray(values)
    if values.ndim < 2:
        raise ValueError(f"Expected activations shaped (N, H, W, C), got shape {values.shape}.")
    flat = values.reshape(-1, values.shape[-1])
    return int(np.sum(np.all(flat == 0.0, axis=0)))


# --------------------------------------------------------------------------------------------
# What the page shows, from its widgets and results
# --------------------------------------------------------------------------------------------

SEED_TEST_ACCURACY = {RELU_CNN: 0.877, LENET: 0.817}  # The seeds' figures after 10 epochs on all data.
ACTIVATION_MODELS = (LENET, "lenet_activation", RELU_CNN)  # Whose first-layer activations are compared.


def settings_from_widgets(dataset: str, *, seeds_settings: bool, train_images: int, test_images: int,
                          updates: int, seeds: int) -> ComparisonSettings:
    """The comparison the page's widgets describe (the seeds'-settings switch overrides data and budget)."""
    chosen = tuple(range(int(seeds)))
    if seeds_settings:
        return ComparisonSettings.as_in_the_seeds(dataset, seeds=chosen)
    return ComparisonSettings(dataset=dataset, limit_train=int(train_images), limit_test=int(test_images),
                              updates=int(updates), seeds=chosen)


def seed_reference(settings: ComparisonSettings) -> str | None:
    """The seeds' own accuracies, quoted only when these settings are the seeds' (all of Fashion-MNIST)."""
    if settings.dataset != "fashion_mnist" or settings.limit_train is not None:
        return None
    return (f"For reference, the seeds report {SEED_TEST_ACCURACY[RELU_CNN]:.1%} (ReLU CNN) and "
            f"{SEED_TEST_ACCURACY[LENET]:.1%} (LeNet) after 10 epochs on all of Fashion-MNIST.")


def class_differences_text(difference: np.ndarray, class_names: Sequence[str], *, top: int = 3) -> str:
    """The classes each model recognises more often, from `confusion_difference(relu, lenet)`."""
    ranked = class_accuracy_differences(difference, class_names)
    better = [f"{name} ({100 * value:+.0f})" for name, value in ranked if value > 0][:top]
    worse = [f"{name} ({100 * value:+.0f})" for name, value in reversed(ranked) if value < 0][:top]
    return ("ReLU CNN better on: " + (", ".join(better) or "no class") + "  \n"
            "tanh LeNet better on: " + (", ".join(worse) or "no class"))


@dataclass(frozen=True)
class ActivationReport:
    """The first-layer activations of `ACTIVATION_MODELS` on the same test images, summarised."""

    values: dict[str, np.ndarray]  # key -> (N, H, W, C)
    names: dict[str, str]  # key -> activation function ("tanh", "relu"…)
    images: int
    records: list[dict]  # One table row per model.
    reading: str | None  # One sentence on the LeNet's saturation and the ReLU CNN's zeros (tanh LeNet only).


def activation_report(results: Mapping[str, TrainResult], images: np.ndarray) -> ActivationReport:
    """First-layer activations of the compared models (TrainResults by key) on `images`, with their table."""
    values = {key: first_layer_activations(results[key].model, images) for key in ACTIVATION_MODELS}
    names = {key: first_layer_activation_name(results[key].config.stack()) for key in ACTIVATION_MODELS}
    stats = {key: activation_statistics(values[key], names[key]) for key in ACTIVATION_MODELS}
    records = [{
        "Model": variant(key).label,
        "Activation": names[key],
        "Saturated |a| > 0.95 (%)": round(100 * stats[key].saturated_fraction, 1),
        "Exactly zero (%)": round(100 * stats[key].zero_fraction, 1),
        "Filters silent on every image": f"{silent_channels(values[key])} of {values[key].shape[-1]}",
        "Mean": round(stats[key].mean, 3),
    } for key in ACTIVATION_MODELS]
    reading = None
    if names[LENET] == "tanh":
        tanh, relu = stats[LENET], stats[RELU_CNN]
        how = ("hardly ever saturate: they work in tanh's near-linear middle"
               if tanh.saturated_fraction < 0.01 else "are saturated")
        reading = (f"On this run {tanh.saturated_fraction:.1%} of the LeNet's first-layer outputs "
                   f"{how}, and {relu.zero_fraction:.1%} of the ReLU CNN's are exactly zero.")
    return ActivationReport(values=values, names=names, images=len(images), records=records, reading=reading)
