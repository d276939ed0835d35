"""Regularisation, measured: exact dropout and batch-norm demos, and the overfitting variants.

- `dropout_demo`: which units the real `keras.layers.Dropout` drops for a seed in training
  mode, the 1/(1-p) scaling of the kept units (inverted dropout), and the untouched output at
  inference, with the mean of the output in both modes.
- `batchnorm_demo`: the real `keras.layers.BatchNormalization` trained for a few steps on small
  batches: the batch mean/variance it normalises with in training, its moving statistics after
  each step (exponential moving averages with `momentum`) and the inference output that uses them.
  The tests compare every number with its closed form in NumPy.
- `overfitting_variants`: the same small CNN trained on ~1,000 images plain, with augmentation,
  with dropout and with batch normalisation, as `cnnviz.training.TrainConfig`s for the engine;
  `variant_outcome` turns a trained result into the train–test gap. Every variant trains with
  several seeds (`train_variant_seeds`, through `cnnviz.training.train_seeds`); `seed_measurement`
  collects a variant's per-seed outcomes, and `regularisation_verdicts` judges each cure against
  the baseline (gap and test accuracy) with `cnnviz.verdicts.compare`. `run_default_experiment`
  is the page's default comparison for `python -m cnnviz experiment augmentation`. The variants
  train on any dataset `data.spec` knows, a student's class folders included: the head gets its
  classes, the stacks are checked on its image shape, `training_image_choices` and
  `measured_test_images` stop at the images it has, and the augmentation flips only where the
  dataset's advice says mirroring keeps the class (`unflipped_reason`).

TensorFlow/Keras are imported lazily inside functions: importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz import architecture, data, training, verdicts
from cnnviz.errors import SettingsError, TrainingStopped
from cnnviz.training import TrainConfig, augmenter

# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------


def example_activations(units: int = 10, *, seed: int = 0) -> np.ndarray:
    """A small vector of positive activations (like ReLU outputs), one decimal, float32 (units,)."""
    if not 2 <= int(units) <= 64:
        raise ValueError("Use between 2 and 64 units.")
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(0.1, 2.0, size=int(units)), 1).astype(np.float32)


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate < 1.0:  # Also rejects NaN.
        raise ValueError("The dropout rate is the fraction of units dropped: choose it in [0, 1) "
                         "(a rate of 1 would drop everything).")
    return rate


@dataclass(frozen=True)
class DropoutDemo:
    """One call of `keras.layers.Dropout(rate, seed=seed)` on a vector, in both modes.

    `kept[i]` is True when unit i survived in training mode. `training_output` and
    `inference_output` are what the Keras layer returned with `training=True` / `False`.
    `mean_over_draws` is the mean training-mode output over `draws` independent masks (the
    Keras layer on a (draws, units) batch): inverted dropout keeps the expected mean unchanged.
    """

    inputs: np.ndarray  # (units,) float32
    rate: float
    seed: int
    kept: np.ndarray  # (units,) bool
    training_output: np.ndarray  # (units,) float32, from Keras
    inference_output: np.ndarray  # (units,) float32, from Keras
    mean_over_draws: float
    draws: int

    @property
    def scale(self) -> float:
        """The factor 1 / (1 - rate) applied to the kept units in training."""
        return 1.0 / (1.0 - self.rate)

    @property
    def dropped(self) -> np.ndarray:
        return ~self.kept

    @property
    def training_closed_form(self) -> np.ndarray:
        """inputs · mask / (1 - rate): what inverted dropout computes by definition."""
        return (self.inputs * self.kept * self.scale).astype(np.float32)

    @property
    def mean_training(self) -> float:
        return float(np.mean(self.training_output))

    @property
    def mean_inference(self) -> float:
        return float(np.mean(self.inference_output))


def dropout_demo(inputs: Sequence[float] | np.ndarray, rate: float = 0.5, *, seed: int = 0,
                 draws: int = 10_000) -> DropoutDemo:
    """Run the real Keras Dropout layer on `inputs` (a 1-D vector) in training and inference mode.

    The mask is read from a fresh layer with the same seed applied to a vector of ones (a
    dropped unit gives 0, a kept one 1/(1-rate)), so it is right even where an input is 0;
    the training output comes from another fresh layer with that seed, which draws the same mask.
    """
    import keras

    x = np.asarray(inputs, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("Give the dropout demo a non-empty 1-D vector of activations.")
    if not np.all(np.isfinite(x)):
        raise ValueError("The activations must be finite numbers.")
    rate = _check_rate(rate)
    seed = int(seed)
    if not 1 <= int(draws) <= 100_000:
        raise ValueError("Average over between 1 and 100,000 draws.")

    batch = x[None]  # (1, units): Keras layers work on batches.
    ones = np.ones_like(batch)
    mask_probe = np.asarray(keras.layers.Dropout(rate, seed=seed)(ones, training=True))[0]
    training_output = np.asarray(keras.layers.Dropout(rate, seed=seed)(batch, training=True))[0]
    inference_output = np.asarray(keras.layers.Dropout(rate, seed=seed)(batch, training=False))[0]
    many = np.asarray(keras.layers.Dropout(rate, seed=seed + 1)(np.repeat(batch, int(draws), axis=0),
                                                                 training=True))  # (draws, units)
    return DropoutDemo(inputs=x, rate=rate, seed=seed, kept=mask_probe != 0,
                       training_output=training_output.astype(np.float32),
                       inference_output=inference_output.astype(np.float32),
                       mean_over_draws=float(many.mean()), draws=int(draws))


# --------------------------------------------------------------------------------------------
# Batch normalisation
# --------------------------------------------------------------------------------------------

# Raw activations of three features on very different scales (mean, standard deviation).
EXAMPLE_FEATURES = ((5.0, 2.0), (-2.0, 0.5), (0.5, 1.0))
KERAS_BATCHNORM_MOMENTUM = 0.99  # Keras' default.
KERAS_BATCHNORM_EPSILON = 1e-3  # Keras' default.


def example_batches(steps: int = 5, batch_size: int = 6, *, seed: int = 0,
                    features: Sequence[tuple[float, float]] = EXAMPLE_FEATURES) -> np.ndarray:
    """`steps` mini-batches of `batch_size` samples, float32 (steps, batch_size, features), 1 decimal."""
    if not 1 <= int(steps) <= 200:
        raise ValueError("Use between 1 and 200 training steps.")
    if not 2 <= int(batch_size) <= 256:
        raise ValueError("A batch needs between 2 and 256 samples (one sample has no variance).")
    rng = np.random.default_rng(seed)
    means = np.array([m for m, _ in features], dtype=np.float64)
    stds = np.array([s for _, s in features], dtype=np.float64)
    raw = rng.normal(means, stds, size=(int(steps), int(batch_size), len(features)))
    return np.round(raw, 1).astype(np.float32)


@dataclass(frozen=True)
class BatchNormDemo:
    """`keras.layers.BatchNormalization(momentum, epsilon)` called in training mode once per batch.

    Shapes: `batches` (steps, batch, features); `moving_mean_history` and
    `moving_variance_history` (steps + 1, features) with row 0 the initial values (0 and 1) and
    row k the layer's moving statistics after k training steps. For the LAST batch:
    `batch_mean`/`batch_variance` (features,) are the statistics training mode normalises with
    (computed by Keras' own `ops.moments`, the biased variance), `training_output` is the layer's
    training-mode output and `inference_output` its inference-mode output (moving statistics),
    both (batch, features). gamma = 1 and beta = 0 (their initial values; they are learned by
    gradient descent, which this demo does not run).
    """

    batches: np.ndarray
    momentum: float
    epsilon: float
    batch_mean: np.ndarray
    batch_variance: np.ndarray
    training_output: np.ndarray
    inference_output: np.ndarray
    moving_mean_history: np.ndarray
    moving_variance_history: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.batches.shape[0])

    @property
    def last_batch(self) -> np.ndarray:
        return self.batches[-1]

    @property
    def moving_mean(self) -> np.ndarray:
        return self.moving_mean_history[-1]

    @property
    def moving_variance(self) -> np.ndarray:
        return self.moving_variance_history[-1]


def batchnorm_demo(batches: np.ndarray, *, momentum: float = KERAS_BATCHNORM_MOMENTUM,
                   epsilon: float = KERAS_BATCHNORM_EPSILON) -> BatchNormDemo:
    """Train a fresh Keras BatchNormalization layer on `batches` (steps, batch, features), one call each."""
    import keras
    from keras import ops

    x = np.asarray(batches, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 2 or x.shape[2] < 1:
        raise ValueError("Give batch normalisation batches shaped (steps, batch of at least 2, features).")
    if not np.all(np.isfinite(x)):
        raise ValueError("The activations must be finite numbers.")
    momentum, epsilon = float(momentum), float(epsilon)
    if not 0.0 <= momentum < 1.0:
        raise ValueError("The momentum must be in [0, 1): the weight kept by the old moving average.")
    if not epsilon > 0.0:
        raise ValueError("Epsilon must be a small positive number (it avoids dividing by zero).")

    layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    layer.build((None, x.shape[2]))
    means = [np.asarray(layer.moving_mean, dtype=np.float64)]
    variances = [np.asarray(layer.moving_variance, dtype=np.float64)]
    training_output: np.ndarray  # Set by the loop: x holds at least one batch (checked above).
    for batch in x:
        training_output = np.asarray(layer(batch, training=True))
        means.append(np.asarray(layer.moving_mean, dtype=np.float64))
        variances.append(np.asarray(layer.moving_variance, dtype=np.float64))
    last = x[-1]
    batch_mean, batch_variance = ops.moments(last, axes=[0])
    inference_output = np.asarray(layer(last, training=False))
    return BatchNormDemo(batches=x, momentum=momentum, epsilon=epsilon,
                         batch_mean=np.asarray(batch_mean, dtype=np.float64),
                         batch_variance=np.asarray(batch_variance, dtype=np.float64),
                         training_output=training_output, inference_output=inference_output,
                         moving_mean_history=np.array(means), moving_variance_history=np.array(variances))


def steps_to_reach(momentum: float, fraction: float = 0.95) -> int:
    """Steps until a moving average started at 0 holds `fraction` of a constant statistic: 1 − m^k ≥ f."""
    momentum = float(momentum)
    if momentum <= 0.0:
        return 1
    return int(np.ceil(np.log(1.0 - fraction) / np.log(momentum)))


# --------------------------------------------------------------------------------------------
# Overfitting and its cures
# --------------------------------------------------------------------------------------------

OVERFIT_LIMIT_TRAIN = 1000
OVERFIT_LIMIT_TEST = 2000  # Test sampling: +-0.9 points (one standard error) at 80 %, so the seeds decide.
OVERFIT_EPOCHS = 15
OVERFIT_BATCH_SIZE = 16  # Small batches: many updates per epoch, so the baseline overfits within 15 epochs.
OVERFIT_LEARNING_RATE = 0.003
VARIANT_KEYS = ("baseline", "augmentation", "dropout", "batchnorm", "all")
DEFAULT_VARIANTS = ("baseline", "augmentation", "dropout", "batchnorm")
TRAINING_IMAGE_CHOICES = (200, 500, 1_000, 2_000)  # Few images make overfitting easy to see.
VARIANT_ROTATION_DEGREES = 10.0
VARIANT_SHIFT_PERCENT = 5.0


def small_cnn_stack(*, num_classes: int = 10, dropout: bool = False, batchnorm: bool = False) -> list[dict]:
    """The small CNN every variant shares: two conv/pool blocks and a 128-unit Dense layer.

    Dropout adds `Dropout(0.25)` after the convolutions and `Dropout(0.5)` after the Dense layer;
    batch normalisation adds a `BatchNormalization` after each convolution.
    """
    def conv(filters: int) -> dict:
        return {"type": "conv2d", "filters": filters, "kernel_size": 3, "activation": "relu"}

    bn = [{"type": "batchnorm"}] if batchnorm else []
    stack: list[dict] = [conv(16), *bn, {"type": "maxpool2d", "pool_size": 2},
                         conv(32), *bn, {"type": "maxpool2d", "pool_size": 2}, {"type": "flatten"}]
    if dropout:
        stack.append({"type": "dropout", "rate": 0.25})
    stack.append({"type": "dense", "units": 128, "activation": "relu"})
    if dropout:
        stack.append({"type": "dropout", "rate": 0.5})
    stack.append({"type": "dense", "units": int(num_classes), "activation": "softmax"})
    return stack


def variant_augmentation(dataset: str) -> augmenter.Spec:
    """A mild augmentation that suits the dataset: small rotations and shifts, and left–right flips only
    where the dataset's advice says mirroring keeps the class (not for digits, nor for a class-folder
    dataset, whose classes nothing is known about: `unflipped_reason`)."""
    return augmenter.spec_from_settings(
        flip_horizontal=unflipped_reason(dataset) is None, rotation_degrees=VARIANT_ROTATION_DEGREES,
        translation_percent=VARIANT_SHIFT_PERCENT)


def unflipped_reason(dataset: str) -> str | None:
    """Why the augmentation variant does not flip left–right on `dataset` (its spec's advice), or None."""
    return data.spec(dataset).augmentation.horizontal_flip


def augmentation_change(spec: augmenter.Spec) -> str:
    """What the augmentation variant changes, in one phrase, from its spec."""
    on = dict(augmenter.active(spec))
    parts = (["horizontal flips"] if "flip_horizontal" in on else []) + [
        f"rotations (±{VARIANT_ROTATION_DEGREES:g}°)", f"shifts (±{VARIANT_SHIFT_PERCENT:g} %)"]
    return f"random {', '.join(parts[:-1])} and {parts[-1]}"


def training_image_choices(available: int | None = None) -> tuple[int, ...]:
    """The training-set sizes offered for a dataset with `available` training images (None: plenty):
    `TRAINING_IMAGE_CHOICES` up to what it has, and then all of its images."""
    if available is None or available >= TRAINING_IMAGE_CHOICES[-1]:
        return TRAINING_IMAGE_CHOICES
    if available < 1:
        raise SettingsError("This dataset has no training images.")
    return tuple(n for n in TRAINING_IMAGE_CHOICES if n < available) + (int(available),)


def measured_test_images(available: int | None = None) -> int:
    """The test images the variants are measured on: `OVERFIT_LIMIT_TEST`, or all a smaller dataset has."""
    return OVERFIT_LIMIT_TEST if available is None else max(1, min(OVERFIT_LIMIT_TEST, int(available)))


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    change: str  # What differs from the baseline, in one phrase.
    config: Any  # cnnviz.training.TrainConfig


def overfitting_variants(dataset: str = "fashion_mnist", *, keys: Sequence[str] = DEFAULT_VARIANTS,
                         limit_train: int = OVERFIT_LIMIT_TRAIN, limit_test: int = OVERFIT_LIMIT_TEST,
                         epochs: int = OVERFIT_EPOCHS, batch_size: int = OVERFIT_BATCH_SIZE,
                         learning_rate: float = OVERFIT_LEARNING_RATE, seed: int = 0,
                         num_classes: int | None = None) -> tuple[Variant, ...]:
    """The variants as TrainConfigs: identical data, optimiser, epochs and seed; only the cure differs.

    `dataset` is any dataset `data.spec` knows, a class-folder one included: the stacks get its class
    count (`num_classes` None) and are checked on its image shape (`ArchitectureError` when the small
    CNN cannot work on it).
    """

    unknown = [k for k in keys if k not in VARIANT_KEYS]
    if unknown:
        raise ValueError(f"Unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANT_KEYS)}.")
    if not keys:
        raise SettingsError("Choose at least one variant to train.")
    dataset_spec = data.spec(dataset)
    num_classes = dataset_spec.num_classes if num_classes is None else int(num_classes)
    augment = variant_augmentation(dataset)
    definitions = {
        "baseline": ("No regularisation", "nothing: the plain CNN", dict(), ()),
        "augmentation": ("Augmentation", augmentation_change(augment), dict(), augment),
        "dropout": ("Dropout", "Dropout(0.25) after the convolutions, Dropout(0.5) after Dense(128)",
                    dict(dropout=True), ()),
        "batchnorm": ("Batch norm", "BatchNormalization after each convolution", dict(batchnorm=True), ()),
        "all": ("All three", "augmentation + dropout + batch norm", dict(dropout=True, batchnorm=True), augment),
    }
    variants = []
    for key in keys:
        title, change, stack_options, spec = definitions[key]
        stack = small_cnn_stack(num_classes=num_classes, **stack_options)
        architecture.summarize(dataset_spec.image_shape, stack)  # Raises when it cannot work on these images.
        config = TrainConfig.from_stack(
            stack, dataset=dataset,
            limit_train=limit_train, limit_test=limit_test, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, optimizer="adam", seed=seed, augmentation=spec)
        config.validate()
        variants.append(Variant(key=key, title=title, change=change, config=config))
    return tuple(variants)


@dataclass(frozen=True)
class VariantOutcome:
    """The final numbers of one trained variant (accuracies are fractions in [0, 1]).

    `train_accuracy` is measured after training in inference mode on the clean training images
    (no augmentation, no dropout, moving batch-norm statistics), so it is comparable across
    variants; `train_accuracy_during` is the last epoch's running accuracy on the augmented /
    dropped-out batches. `gap` = train_accuracy − test_accuracy: the overfitting.
    """

    key: str
    title: str
    train_accuracy: float
    train_accuracy_during: float
    test_accuracy: float
    best_test_accuracy: float
    best_epoch: int
    epochs: int
    seconds: float
    stopped_reason: str

    @property
    def gap(self) -> float:
        return self.train_accuracy - self.test_accuracy


def variant_outcome(variant: Variant, result: Any, x_train: np.ndarray, y_train: np.ndarray) -> VariantOutcome:
    """Summarise a `TrainResult` of a variant; `x_train`/`y_train` are its (clean) training images."""
    y = np.asarray(y_train).ravel()
    predicted = np.argmax(result.predict(x_train), axis=1)
    val = list(result.history.get("val_accuracy", []))
    during = list(result.history.get("accuracy", []))
    best = int(np.argmax(val)) if val else 0
    return VariantOutcome(
        key=variant.key, title=variant.title,
        train_accuracy=float(np.mean(predicted == y)) if len(y) else float("nan"),
        train_accuracy_during=float(during[-1]) if during else float("nan"),
        test_accuracy=float(result.test_accuracy),
        best_test_accuracy=float(val[best]) if val else float("nan"), best_epoch=best + 1,
        epochs=len(during), seconds=float(sum(result.history.get("seconds", [])) or result.seconds),
        stopped_reason=str(result.stopped_reason))


def _subset(config: Any) -> data.Dataset:
    return data.load(config.dataset, limit_train=config.limit_train, limit_test=config.limit_test,
                     seed=config.seed)


def training_images(config: Any) -> tuple[np.ndarray, np.ndarray]:
    """The exact training subset the engine trains `config` on (same loader, limits and seed)."""
    dataset = _subset(config)
    return dataset.x_train, dataset.y_train


def variant_parameters(variant: Variant) -> int:
    """How many weights a variant's network has (on its dataset's image shape)."""
    shape = data.spec(variant.config.dataset).image_shape
    return sum(row.params for row in architecture.summarize(shape, variant.config.stack()))


# --------------------------------------------------------------------------------------------
# Several seeds per variant, and the verdicts
# --------------------------------------------------------------------------------------------

DEFAULT_SEEDS: tuple[int, ...] = training.DEFAULT_SEEDS
BASELINE = "baseline"


def seed_variant(variant: Variant, seed: int) -> Variant:
    """The same variant with another seed (its own initial weights, data subset, order and augmentation)."""
    return dataclasses.replace(variant, config=variant.config.replace(seed=int(seed)))


def weight_updates(config: Any, num_images: int) -> int:
    """The weight updates of one run on `num_images` training images: epochs x batches per epoch."""
    return int(config.epochs * math.ceil(num_images / config.batch_size))


@dataclass(frozen=True)
class SeedMeasurement:
    """One variant trained with several seeds: each seed's outcome and history, in the seeds' order."""

    variant: Variant
    seeds: tuple[int, ...]
    outcomes: tuple[VariantOutcome, ...]
    histories: tuple[dict, ...]
    updates: int  # Weight updates per seed (the budget).
    test_images: int

    @property
    def test_accuracies(self) -> tuple[float, ...]:
        return tuple(o.test_accuracy for o in self.outcomes)

    @property
    def train_accuracies(self) -> tuple[float, ...]:
        return tuple(o.train_accuracy for o in self.outcomes)

    @property
    def gaps(self) -> tuple[float, ...]:
        return tuple(o.gap for o in self.outcomes)

    @property
    def accuracy_spread(self) -> verdicts.Spread:
        return verdicts.spread(self.test_accuracies, test_images=self.test_images)

    @property
    def gap_spread(self) -> verdicts.Spread:
        return verdicts.spread(self.gaps, test_images=self.test_images)

    @property
    def seconds(self) -> float:
        return float(sum(o.seconds for o in self.outcomes))


def seed_measurement(variant: Variant, seeds: Sequence[int], results: Sequence[Any]) -> SeedMeasurement:
    """Summarise one `TrainResult` per seed of `variant` (in the order of `seeds`)."""
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) != len(results) or not seeds:
        raise ValueError("Give one training result per seed.")
    outcomes, histories, updates, test_images = [], [], 0, 0
    for seed, result in zip(seeds, results):
        seeded = seed_variant(variant, seed)
        subset = _subset(seeded.config)
        outcomes.append(variant_outcome(seeded, result, subset.x_train, subset.y_train))
        histories.append(dict(result.history))
        updates = weight_updates(seeded.config, len(subset.x_train))
        test_images = len(subset.x_test)
    return SeedMeasurement(variant=variant, seeds=seeds, outcomes=tuple(outcomes), histories=tuple(histories),
                           updates=updates, test_images=test_images)


SeedProgress = Callable[[training.Progress], object]


def train_variant_seeds(variant: Variant, seeds: Sequence[int] = DEFAULT_SEEDS,
                        on_progress: SeedProgress | None = None) -> SeedMeasurement:
    """Train `variant` with every seed through `cnnviz.training.train_seeds` and measure each seed.

    Raises `TrainingStopped` when a seed did not finish (stopped by `on_progress`, or diverged).
    """
    seeds = training.seed_list(seeds)
    results = training.train_seeds(variant.config, seeds, on_progress)
    if len(results) < len(seeds) or any(r.stopped_reason != "finished" for r in results):
        reason = results[-1].stopped_reason if results else "stopped"
        raise TrainingStopped(f"{variant.title}: a seed's training ended early ({reason}).")
    return seed_measurement(variant, seeds, results)


def regularisation_verdicts(measured: Sequence[SeedMeasurement]) -> list[verdicts.Verdict]:
    """Each cure against the baseline, from the seeds' numbers (`cnnviz.verdicts.compare`).

    Per cure two verdicts: its train–test gap (factor = the variant key, e.g. "augmentation";
    a smaller gap is "better") and its test accuracy (factor "<key> accuracy"; higher is better).
    Without the baseline among `measured` there is nothing to compare against: no verdicts.
    """
    by_key = {m.variant.key: m for m in measured}
    base = by_key.get(BASELINE)
    if base is None:
        return []
    found = []
    for m in measured:
        if m.variant.key == BASELINE:
            continue
        test_images = min(m.test_images, base.test_images) or None
        found.append(verdicts.compare(
            m.variant.key, f"{m.variant.title} (train–test gap)", m.gaps,
            f"{base.variant.title} (train–test gap)", base.gaps, test_images=test_images,
            higher_is_better=False))
        found.append(verdicts.compare(
            f"{m.variant.key} accuracy", f"{m.variant.title} (test accuracy)", m.test_accuracies,
            f"{base.variant.title} (test accuracy)", base.test_accuracies, test_images=test_images))
    return found


def experiment_report(measured: Sequence[SeedMeasurement]) -> verdicts.ExperimentReport:
    """The measured variants and their verdicts, as the CLI prints them."""
    variants = tuple(verdicts.VariantResult(
        name=m.variant.key, seeds=m.seeds, test_accuracy=m.test_accuracies, updates=m.updates,
        test_images=m.test_images,
        extra={"train_accuracy": list(m.train_accuracies), "gap": list(m.gaps)}) for m in measured)
    return verdicts.ExperimentReport(name="augmentation", variants=variants,
                                     verdicts=tuple(regularisation_verdicts(measured)))


def run_default_experiment(seeds: Sequence[int], *,
                           on_progress: SeedProgress | None = None) -> verdicts.ExperimentReport:
    """The page's default overfitting comparison with `seeds` (`python -m cnnviz experiment augmentation`).

    `on_progress` sees every seed's `Progress`, with `metrics["variant_index"]` (from 0) and
    `metrics["variants"]` added to those of `train_seeds` (`seed_index`, `seeds`).
    """
    variants = overfitting_variants()
    measured = []
    for index, variant in enumerate(variants):
        report = None
        if on_progress is not None:
            def report(progress: training.Progress, index: int = index) -> object:
                metrics = {**progress.metrics, "variant_index": float(index), "variants": float(len(variants))}
                return on_progress(dataclasses.replace(progress, metrics=metrics))
        measured.append(train_variant_seeds(variant, seeds, report))
    return experiment_report(measured)


def _superscript(number: int) -> str:
    return str(number).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def batchnorm_reading(demo: BatchNormDemo) -> str:
    """What the moving statistics of a batch-norm demo mean for inference, in one paragraph."""
    momentum = demo.momentum
    if momentum <= 0:
        return ("With momentum 0 the moving statistics are simply the last batch's, so inference "
                "reproduces the training output of that batch.")
    held = 1 - momentum ** demo.steps
    return (f"Starting from mean 0 and variance 1, after {demo.steps} step(s) the moving mean holds "
            f"only {held:.1%} of the batch means (1 − {momentum:g}{_superscript(demo.steps)}); it needs about "
            f"**{steps_to_reach(momentum)} steps** to get within 5 %. Until then the moving statistics differ "
            "from the batch statistics, and so the inference output differs from the training output "
            "(compare the two tables above).")


@dataclass(frozen=True)
class PreviewWarning:
    """Advice on one augmentation for the chosen data (e.g. a vertical flip of a digit)."""

    label: str  # e.g. "Vertical flip"
    severity: str  # "warning" or "note"
    message: str


@dataclass(frozen=True)
class AugmentationPreview:
    """One image through the real Keras augmentation layers `n` times, with what the settings mean."""

    grid: np.ndarray  # (n, H, W, C) uint8
    warnings: tuple[PreviewWarning, ...]
    descriptions: tuple[str, ...]  # One sentence per augmentation switched on.
    code: str  # The same pipeline as Keras code.


def augmentation_preview(image: np.ndarray, dataset: str | None, spec: augmenter.Spec, seed: int, *,
                         n: int = 16) -> AugmentationPreview:
    """The preview tab: `n` augmented copies of `image` (`dataset` None: an upload) and their explanation."""
    return AugmentationPreview(
        grid=augmenter.augmented_grid(image, spec, n=n, seed=seed),
        warnings=tuple(PreviewWarning(augmenter.AUGMENTATION_LABELS[w.augmentation], w.severity, w.message)
                       for w in augmenter.warnings_for(dataset, spec)),
        descriptions=tuple(augmenter.describe(name, strength) for name, strength in spec),
        code=augmenter.keras_code(spec, seed=seed))
