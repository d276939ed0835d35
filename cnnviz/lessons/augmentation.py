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
  `variant_outcome` turns a trained result into the train–test gap.

TensorFlow/Keras are imported lazily inside functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz import architecture, data
from cnnviz.errors import SettingsError
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
OVERFIT_LIMIT_TEST = 500
OVERFIT_EPOCHS = 15
OVERFIT_BATCH_SIZE = 16  # Small batches: many updates per epoch, so the baseline overfits within 15 epochs.
OVERFIT_LEARNING_RATE = 0.003
VARIANT_KEYS = ("baseline", "augmentation", "dropout", "batchnorm", "all")
DEFAULT_VARIANTS = ("baseline", "augmentation", "dropout", "batchnorm")


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
    """A mild augmentation that suits the dataset: no flips for digits, small rotations and shifts."""
    return augmenter.spec_from_settings(
        flip_horizontal=data.spec(dataset).augmentation.horizontal_flip is None,  # Mirroring keeps the class.
        rotation_degrees=10.0, translation_percent=5.0)


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
                         num_classes: int = 10) -> tuple[Variant, ...]:
    """The variants as TrainConfigs: identical data, optimiser, epochs and seed; only the cure differs."""

    unknown = [k for k in keys if k not in VARIANT_KEYS]
    if unknown:
        raise ValueError(f"Unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANT_KEYS)}.")
    if not keys:
        raise SettingsError("Choose at least one variant to train.")
    augment = variant_augmentation(dataset)
    definitions = {
        "baseline": ("No regularisation", "nothing: the plain CNN", dict(), ()),
        "augmentation": ("Augmentation", "random flips, rotations (±10°) and shifts (±5 %)", dict(), augment),
        "dropout": ("Dropout", "Dropout(0.25) after the convolutions, Dropout(0.5) after Dense(128)",
                    dict(dropout=True), ()),
        "batchnorm": ("Batch norm", "BatchNormalization after each convolution", dict(batchnorm=True), ()),
        "all": ("All three", "augmentation + dropout + batch norm", dict(dropout=True, batchnorm=True), augment),
    }
    variants = []
    for key in keys:
        title, change, stack_options, spec = definitions[key]
        config = TrainConfig.from_stack(
            small_cnn_stack(num_classes=num_classes, **stack_options), dataset=dataset,
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


def batchnorm_lag(history: dict, reference: dict | None = None) -> tuple[int, float, float] | None:
    """The epoch where a batch-norm model's test accuracy trailed most, if it trailed noticeably.

    Returns (epoch, test accuracy, training accuracy) of the epoch with the largest
    training − test gap when that gap exceeds 30 points and, given a `reference` history (the
    baseline), the test accuracy there is at least 20 points below the reference's; else None.
    Such a dip is the moving statistics lagging behind the weights, not memorisation.
    """
    train = list(history.get("accuracy", []))
    test = list(history.get("val_accuracy", []))
    n = min(len(train), len(test))
    if n == 0:
        return None
    gaps = [train[i] - test[i] for i in range(n)]
    worst = int(np.argmax(gaps))
    if gaps[worst] <= 0.30:
        return None
    if reference is not None:
        ref = list(reference.get("val_accuracy", []))
        if worst < len(ref) and ref[worst] - test[worst] < 0.20:
            return None
    return worst + 1, float(test[worst]), float(train[worst])


def training_images(config: Any) -> tuple[np.ndarray, np.ndarray]:
    """The exact training subset the engine trains `config` on (same loader, limits and seed)."""

    dataset = data.load(config.dataset, limit_train=config.limit_train, limit_test=config.limit_test,
                        seed=config.seed)
    return dataset.x_train, dataset.y_train


def variant_parameters(variant: Variant) -> int:
    """How many weights a variant's network has (on its dataset's image shape)."""
    shape = data.spec(variant.config.dataset).image_shape
    return sum(row.params for row in architecture.summarize(shape, variant.config.stack()))


def conclusion(outcomes: Sequence[VariantOutcome], histories: Mapping[str, dict]) -> list[str]:
    """What the measured variants say, as sentences generated from their numbers (so they cannot
    contradict the table). `histories` maps variant keys to the engine's per-epoch histories."""
    lines = []
    by_key = {o.key: o for o in outcomes}
    smallest = min(outcomes, key=lambda o: o.gap)
    best = max(outcomes, key=lambda o: o.test_accuracy)
    lines.append(f"Smallest train–test gap: **{smallest.title}** ({smallest.gap * 100:+.1f} points); "
                 f"best test accuracy: **{best.title}** ({best.test_accuracy:.1%}).")
    base = by_key.get("baseline")
    if base is not None:
        for o in outcomes:
            if o.key == "baseline":
                continue
            verb = "narrows" if o.gap < base.gap else "does not narrow"
            lines.append(f"{o.title} {verb} the gap ({base.gap * 100:+.1f} → {o.gap * 100:+.1f} points) and "
                         f"changes test accuracy by {(o.test_accuracy - base.test_accuracy) * 100:+.1f} points.")
    for o in outcomes:
        lag = batchnorm_lag(histories[o.key], histories.get("baseline")) if o.key in ("batchnorm", "all") else None
        if lag is not None:
            epoch, test, train = lag
            lines.append(f"{o.title}: at epoch {epoch} the training batches scored {train:.0%} but the test images "
                         f"only {test:.0%}. That dip is not memorisation: at test time batch norm uses its moving "
                         "averages (Keras' momentum 0.99 needs about 300 steps to catch up), which trail weights "
                         "that are still changing fast — see the batch-norm tab.")
        if o.key in ("batchnorm", "all") and o.train_accuracy_during - o.train_accuracy > 0.05:
            lines.append(f"{o.title}: {o.train_accuracy_during:.0%} on the training batches while training, but "
                         f"{o.train_accuracy:.0%} on the same images at inference. In training, batch norm uses "
                         "each batch's own statistics; at inference it uses the moving averages, which lag "
                         "behind weights that are still changing fast (see the batch-norm tab).")
    return lines


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
            f"**{steps_to_reach(momentum)} steps** to get within 5 %. Until then the inference output differs from "
            "the training output — one reason a model with batch norm can look worse at test time early "
            "in training.")


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
