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

Everything here is plain Python and NumPy on histories, tables and arrays, plus two functions that
touch a Keras model (`first_layer_activations`, `predicted_labels`), which import Keras lazily.
Training goes through `cnnviz.training`; stacks come from `cnnviz.architecture`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cnnviz import architecture, data, training
from cnnviz.training import TrainConfig, TrainResult

RELU_CNN_PRESET = "fashion_relu_cnn"
LENET_PRESET = "lenet5_tanh"

# The default comparison: small enough that all six models train in well under 30 s on 2 cores.
DEFAULT_TRAIN_IMAGES = 3000
DEFAULT_TEST_IMAGES = 1000
DEFAULT_EPOCHS = 3

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
    "optimizer": "SGD/128 → Adam/32",
}
FACTOR_PHRASES: dict[str, str] = {
    "activation": "swapping tanh for ReLU",
    "pooling": "swapping average for max pooling",
    "optimizer": "swapping SGD with batch 128 for Adam with batch 32",
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
    """The shared conditions of every model in one comparison: same data, seed and epochs.

    `limit_train`/`limit_test` of None mean the whole split ("full data, as in the seeds").
    `fast` is passed to the training engine and is False by default: the engine's fast mode keeps
    the optimiser and batch size but replaces the constant learning rate by a warm-up and cosine
    decay, which is not how the seeds train. The comparison is about the seeds' recipes, so each
    model trains with plain `model.fit` semantics: its optimiser at a constant learning rate.
    """

    dataset: str = "fashion_mnist"
    limit_train: int | None = DEFAULT_TRAIN_IMAGES
    limit_test: int | None = DEFAULT_TEST_IMAGES
    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    fast: bool = False

    def __post_init__(self) -> None:
        data.spec(self.dataset)  # An unknown dataset is a ValueError.
        if self.epochs < 1:
            raise ValueError("Train for at least one epoch.")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and value < 10:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be at least 10 images (or the full set).")

    @classmethod
    def as_in_the_seeds(cls, dataset: str = "fashion_mnist", *, seed: int = 0, fast: bool = False) -> ComparisonSettings:
        """The seeds' runs: every training and test image, 10 epochs."""
        return cls(dataset=dataset, limit_train=None, limit_test=None, epochs=SEED_EPOCHS, seed=seed, fast=fast)


def variant_config(variant_or_key: Variant | str, settings: ComparisonSettings) -> TrainConfig:
    """The `TrainConfig` that trains one variant under the shared settings."""

    chosen = variant(variant_or_key) if isinstance(variant_or_key, str) else variant_or_key
    spec = data.spec(settings.dataset)
    return TrainConfig.from_stack(
        variant_stack(chosen, spec.image_shape, spec.num_classes),
        dataset=settings.dataset,
        limit_train=settings.limit_train,
        limit_test=settings.limit_test,
        optimizer=chosen.settings.optimizer,
        learning_rate=chosen.settings.learning_rate,
        batch_size=chosen.settings.batch_size,
        epochs=settings.epochs,
        seed=settings.seed,
        fast=settings.fast,
    )


def comparison_configs(settings: ComparisonSettings, keys: Sequence[str] | None = None) -> dict[str, TrainConfig]:
    """`{variant key: TrainConfig}` for the chosen variants (all of them by default), in teaching order."""
    chosen = [variant(key) for key in keys] if keys is not None else list(VARIANTS)
    return {item.key: variant_config(item, settings) for item in chosen}


# --------------------------------------------------------------------------------------------
# Reading training histories
# --------------------------------------------------------------------------------------------

def epochs_to_reach(history: Mapping[str, Sequence[float]], target: float, *,
                    metric: str = "val_accuracy") -> int | None:
    """The first epoch (counted from 1) at whose end `metric` is at least `target`; None if never."""
    for epoch, value in enumerate(history.get(metric, ()), start=1):
        if value is not None and not math.isnan(value) and value >= target:
            return epoch
    return None


def seconds_per_epoch(history: Mapping[str, Sequence[float]]) -> float:
    """Median wall-clock seconds of one epoch (validation included). The engine records each epoch's
    duration in `history["seconds"]`; the first also builds the graph, and the median ignores that
    set-up cost once there are three or more epochs. NaN when no epoch finished."""
    durations = [float(value) for value in history.get("seconds", ()) if value is not None]
    return float(np.median(durations)) if durations else float("nan")


# --------------------------------------------------------------------------------------------
# The comparison table
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComparisonRow:
    """One trained model's line in the table."""

    key: str
    label: str
    changes: tuple[str, ...]
    params: int
    seconds_per_epoch: float
    test_accuracy: float
    epochs_to_target: int | None
    epochs_trained: int
    stopped_reason: str = "finished"


@dataclass(frozen=True)
class ComparisonTable:
    """The measured rows of one comparison, plus what they were measured against.

    `target_accuracy` is the validation accuracy whose first crossing `epochs_to_target` records;
    `test_images` is the size of the test set the accuracies come from (it sets their noise).
    """

    rows: tuple[ComparisonRow, ...]
    target_accuracy: float
    test_images: int
    epochs: int
    dataset: str = "fashion_mnist"

    def row(self, key: str) -> ComparisonRow | None:
        for row in self.rows:
            if row.key == key:
                return row
        return None

    def seed_rows(self) -> tuple[ComparisonRow, ComparisonRow]:
        """The rows of the two seed models, (ReLU CNN, tanh LeNet); a clear error when one is missing."""
        relu, lenet = self.row(RELU_CNN), self.row(LENET)
        if relu is None or lenet is None:
            raise ValueError("The table needs both seed models (the ReLU CNN and the tanh LeNet).")
        return relu, lenet

    def records(self) -> list[dict]:
        """The rows as plain dicts with readable column names (for a dataframe).

        The epochs-to-target column holds text ("3" or "not in 5") so that the column has one type.
        """
        records = []
        for row in self.rows:
            changed = ", ".join(FACTOR_LABELS[factor] for factor in row.changes) if row.key != RELU_CNN else "other architecture"
            records.append({
                "Model": row.label,
                "Changed from LeNet": changed or "—",
                "Parameters": row.params,
                "Seconds per epoch": round(row.seconds_per_epoch, 2),
                "Test accuracy (%)": round(100 * row.test_accuracy, 1),
                f"Epochs to {100 * self.target_accuracy:.0f}%": (
                    str(row.epochs_to_target) if row.epochs_to_target is not None else f"not in {row.epochs_trained}"),
            })
        return records


def row_from_result(variant_or_key: Variant | str, result: TrainResult, target_accuracy: float) -> ComparisonRow:
    """A table row from a `cnnviz.training.TrainResult` (its model, history and test accuracy)."""
    chosen = variant(variant_or_key) if isinstance(variant_or_key, str) else variant_or_key
    history = result.history
    return ComparisonRow(
        key=chosen.key,
        label=chosen.label,
        changes=chosen.changes,
        params=int(result.model.count_params()),
        seconds_per_epoch=seconds_per_epoch(history),
        test_accuracy=float(result.test_accuracy),
        epochs_to_target=epochs_to_reach(history, target_accuracy),
        epochs_trained=len(history.get("val_accuracy", history.get("accuracy", ()))),
        stopped_reason=str(getattr(result, "stopped_reason", "finished")),
    )


def build_table(results: Mapping[str, TrainResult], *, target_accuracy: float, test_images: int,
                epochs: int, dataset: str = "fashion_mnist") -> ComparisonTable:
    """The comparison table from `{variant key: TrainResult}`, rows in teaching order."""
    rows = tuple(row_from_result(item, results[item.key], target_accuracy)
                 for item in VARIANTS if item.key in results)
    return ComparisonTable(rows=rows, target_accuracy=target_accuracy, test_images=test_images,
                           epochs=epochs, dataset=dataset)


# --------------------------------------------------------------------------------------------
# Noise and the generated conclusion
# --------------------------------------------------------------------------------------------

def noise_margin(accuracy_a: float, accuracy_b: float, test_images: int) -> float:
    """Half-width of a ~95 % interval for the difference of two accuracies on `test_images` images.

    Each accuracy is a fraction of n images, so it wobbles by about sqrt(p(1-p)/n) from one test set
    to another; the difference of two wobbles by sqrt of the sum of squares. Differences smaller than
    this margin are not evidence that one model is better.
    """
    if test_images <= 0:
        return float("inf")
    variance = (accuracy_a * (1 - accuracy_a) + accuracy_b * (1 - accuracy_b)) / test_images
    return 1.96 * math.sqrt(max(variance, 0.0))


def _points(fraction: float) -> str:
    """A difference of accuracies in percentage points, with its sign: +3.2 / −1.5."""
    value = 100 * fraction
    sign = "+" if value >= 0 else "−"
    return f"{sign}{abs(value):.1f}"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _join(factors: Sequence[str]) -> str:
    """Factor phrases joined as English: "a", "a and b", "a, b and c"."""
    phrases = [FACTOR_PHRASES[factor] for factor in factors]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _sentence_start(text: str) -> str:
    """Capitalise the first letter only (so "ReLU" keeps its capitals)."""
    return text[:1].upper() + text[1:]


def head_to_head_winner(table: ComparisonTable) -> str | None:
    """RELU_CNN or LENET when one is ahead by more than the noise margin, else None (a tie)."""
    relu, lenet = table.seed_rows()
    difference = relu.test_accuracy - lenet.test_accuracy
    if abs(difference) <= noise_margin(relu.test_accuracy, lenet.test_accuracy, table.test_images):
        return None
    return RELU_CNN if difference > 0 else LENET


def factor_gains(table: ComparisonTable) -> dict[str, float]:
    """`{factor: test accuracy of the single-factor variant − test accuracy of the LeNet}` for the
    single-factor variants present in the table, largest gain first."""
    lenet = table.row(LENET)
    if lenet is None:
        return {}
    gains = {}
    for factor in FACTORS:
        row = table.row(f"lenet_{factor}")
        if row is not None:
            gains[factor] = row.test_accuracy - lenet.test_accuracy
    return dict(sorted(gains.items(), key=lambda item: -item[1]))


def factor_verdicts(table: ComparisonTable) -> dict[str, str]:
    """`{factor: "helps" | "within noise" | "hurts"}`: each single change against the LeNet, judged
    by the noise margin of the two accuracies on this table's test set (largest gain first)."""
    lenet = table.row(LENET)
    if lenet is None:
        return {}  # No baseline: factor_gains has nothing to judge either.
    verdicts = {}
    for factor, gain in factor_gains(table).items():
        margin = noise_margin(lenet.test_accuracy + gain, lenet.test_accuracy, table.test_images)
        verdicts[factor] = "helps" if gain > margin else "hurts" if gain < -margin else "within noise"
    return verdicts


def _head_to_head_text(table: ComparisonTable) -> list[str]:
    winner = head_to_head_winner(table)  # Raises a clear error when a seed model is missing.
    relu, lenet = table.seed_rows()
    difference = relu.test_accuracy - lenet.test_accuracy
    margin = noise_margin(relu.test_accuracy, lenet.test_accuracy, table.test_images)
    setting = (f"On the same {table.test_images:,} test images after {_plural(table.epochs, 'epoch')}, "
               f"the ReLU CNN scored **{_percent(relu.test_accuracy)}** and the tanh LeNet "
               f"**{_percent(lenet.test_accuracy)}**")
    if winner is None:
        verdict = (f"{setting}: a difference of {abs(100 * difference):.1f} points, within the "
                   f"±{100 * margin:.1f}-point noise of a test set this size, so on this run **neither "
                   f"model is clearly better**.")
    else:
        ahead, behind = (relu, lenet) if winner == RELU_CNN else (lenet, relu)
        name = "the ReLU CNN" if winner == RELU_CNN else "the tanh LeNet"
        verdict = (f"{setting}: **{name} is better by {abs(100 * difference):.1f} percentage points**, more "
                   f"than the ±{100 * margin:.1f}-point noise of a test set this size.")
        if ahead.params < behind.params:
            verdict += f" It wins with fewer parameters ({ahead.params:,} against {behind.params:,})."
        elif ahead.params > behind.params:
            verdict += f" It also has more parameters ({ahead.params:,} against {behind.params:,})."
    paragraphs = [verdict]

    if not (math.isnan(relu.seconds_per_epoch) or math.isnan(lenet.seconds_per_epoch)):
        faster, slower = (relu, lenet) if relu.seconds_per_epoch <= lenet.seconds_per_epoch else (lenet, relu)
        faster_name = "ReLU CNN" if faster.key == RELU_CNN else "tanh LeNet"
        paragraphs.append(
            f"The {faster_name} was faster per epoch ({faster.seconds_per_epoch:.2f} s against "
            f"{slower.seconds_per_epoch:.2f} s)."
        )

    target = f"{100 * table.target_accuracy:.0f}%"
    seeds = {RELU_CNN: relu, LENET: lenet}
    reached = {key: row.epochs_to_target for key, row in seeds.items()}
    names = {RELU_CNN: "the ReLU CNN", LENET: "the tanh LeNet"}
    parts = []
    if reached[RELU_CNN] is None and reached[LENET] is None:
        paragraphs.append(f"Neither model reached {target} validation accuracy in "
                          f"{_plural(relu.epochs_trained, 'epoch')}.")
        return paragraphs
    for key in (RELU_CNN, LENET):
        epochs = reached[key]
        if epochs is None:
            parts.append(f"{names[key]} never got there in {_plural(seeds[key].epochs_trained, 'epoch')}")
        else:
            parts.append(f"{names[key]} got there after {_plural(epochs, 'epoch')}")
    paragraphs.append(f"To reach {target} validation accuracy, {parts[0]}; {parts[1]}.")
    return paragraphs


def _why_text(table: ComparisonTable) -> list[str]:
    gains = factor_gains(table)
    if not gains:
        return []
    relu, lenet = table.seed_rows()  # Gains exist, so the LeNet does; conclusion() checked both already.
    paragraphs = []
    # Each single-factor variant is compared with the LeNet on the same test images; its own noise
    # margin decides whether its gain counts.
    margins = {factor: noise_margin(lenet.test_accuracy + gain, lenet.test_accuracy, table.test_images)
               for factor, gain in gains.items()}
    listed = "; ".join(f"{FACTOR_PHRASES[factor]}: **{_points(gain)}** points" for factor, gain in gains.items())
    paragraphs.append(f"Changing one factor at a time, starting from the tanh LeNet "
                      f"({_percent(lenet.test_accuracy)}): {listed}.")

    verdicts = factor_verdicts(table)
    helping = [factor for factor, verdict in verdicts.items() if verdict == "helps"]
    within = [factor for factor, verdict in verdicts.items() if verdict == "within noise"]
    hurting = [factor for factor, verdict in verdicts.items() if verdict == "hurts"]
    sentences = []
    if helping:
        best = helping[0]
        # "Helps most" only when the largest gain is also beyond its noise; otherwise the clearest.
        lead = "helps most" if best == next(iter(gains)) else "helps most clearly"
        sentences.append(f"The single change that {lead} is **{FACTOR_PHRASES[best]}** "
                         f"({_points(gains[best])} points).")
        if len(helping) > 1:
            also = ", ".join(f"{FACTOR_PHRASES[factor]} ({_points(gains[factor])})" for factor in helping[1:])
            sentences.append(f"Also clearly helpful: {also}.")
    else:
        sentences.append("No single change improves the LeNet by more than the noise of "
                         f"{table.test_images:,} test images.")
    if within:
        widest = max(margins[factor] for factor in within)
        verb = "on its own changes" if len(within) == 1 else "each change"
        sentences.append(f"{_sentence_start(_join(within))} {verb} accuracy by less than the "
                         f"±{100 * widest:.1f}-point noise.")
    if hurting:
        verb = "on its own makes" if len(hurting) == 1 else "each make"
        sentences.append(f"{_sentence_start(_join(hurting))} {verb} the LeNet worse.")
    paragraphs.append(" ".join(sentences))

    combined = table.row(ALL_THREE)
    if combined is not None and len(gains) == len(FACTORS):
        combined_gain = combined.test_accuracy - lenet.test_accuracy
        total_single = sum(gains.values())
        text = (f"All three changes together give {_percent(combined.test_accuracy)} "
                f"({_points(combined_gain)} points), ")
        noise = noise_margin(combined.test_accuracy, lenet.test_accuracy, table.test_images)
        if abs(combined_gain - total_single) <= noise:
            text += f"about the sum of the single gains ({_points(total_single)}): the factors roughly add up."
        elif combined_gain > total_single:
            text += f"more than the sum of the single gains ({_points(total_single)}): the factors reinforce each other."
        else:
            text += f"less than the sum of the single gains ({_points(total_single)}): the factors overlap."
        paragraphs.append(text)

        gap = relu.test_accuracy - lenet.test_accuracy
        rest = relu.test_accuracy - combined.test_accuracy
        gap_noise = noise_margin(relu.test_accuracy, lenet.test_accuracy, table.test_images)
        rest_noise = noise_margin(relu.test_accuracy, combined.test_accuracy, table.test_images)
        if gap > gap_noise:
            share = combined_gain / gap
            if abs(rest) <= rest_noise:
                paragraphs.append(
                    f"That brings the LeNet level with the ReLU CNN ({_percent(relu.test_accuracy)}, difference "
                    f"{_points(-rest)} points, within noise): on this run the activation, pooling and optimiser "
                    f"explain the whole gap; the architecture itself makes no measurable difference."
                )
            elif rest > 0 and share <= 0:
                paragraphs.append(
                    f"Together they do not close any of the {100 * gap:.1f}-point gap between the two seed models: "
                    f"the all-three LeNet is still {100 * rest:.1f} points behind the ReLU CNN, although it is "
                    f"trained exactly like it, so the difference lies in the architecture itself (layer sizes and depth)."
                )
            elif rest > 0:
                paragraphs.append(
                    f"Those three factors close about {100 * share:.0f}% of the {100 * gap:.1f}-point gap between "
                    f"the two seed models; the remaining {100 * rest:.1f} points come from the architecture itself "
                    f"(layer sizes and depth), since the all-three LeNet is trained exactly like the ReLU CNN."
                )
            else:
                paragraphs.append(
                    f"That even beats the ReLU CNN ({_percent(relu.test_accuracy)}) by {100 * -rest:.1f} points: "
                    f"the LeNet architecture was not what held it back; its training recipe was."
                )
        elif gap < -gap_noise:
            paragraphs.append(
                f"Here the tanh LeNet already beats the ReLU CNN, so there is no gap for the factors to explain; "
                f"the all-three LeNet scores {_percent(combined.test_accuracy)} against the ReLU CNN's "
                f"{_percent(relu.test_accuracy)}."
            )
        else:
            paragraphs.append(
                "The two seed models are within noise of each other on this run, so there is no gap to explain; "
                "train on more data or for more epochs to separate them."
            )
    return paragraphs


def conclusion(table: ComparisonTable) -> str:
    """The conclusion of a comparison in words, generated from the table's numbers only (Markdown).

    Every claim (who is better, by how much, which factor matters most, how much of the gap the
    factors close) is computed from the rows here, so a run that comes out differently produces
    different words, never words that contradict its numbers.
    """
    paragraphs = _head_to_head_text(table) + _why_text(table)
    incomplete = [row.label for row in table.rows if row.stopped_reason != "finished"]
    if incomplete:
        paragraphs.append(f"Note: {', '.join(incomplete)} did not finish normally (stopped or diverged); "
                          f"read their numbers with care.")
    return "\n\n".join(paragraphs)


def relu_alone_hurts_note(table: ComparisonTable) -> str | None:
    """Why ReLU alone can make the LeNet worse (Markdown), or None when this run does not show that.

    Shown only when the activation factor's verdict is "hurts". The sentence about Adam is measured,
    not assumed: *LeNet + all three* (ReLU trained with Adam/32) is compared with *LeNet + Adam/32*
    within the noise of this table's test set, and the words follow the comparison (or are left out
    when either row is missing). More data or epochs is offered as something to try, not a fact.
    """
    if factor_verdicts(table).get("activation") != "hurts":
        return None
    sentences = [
        "**Why can ReLU alone make the LeNet worse?** A likely reason: Keras starts every layer with weights "
        "scaled for units that pass their whole input on (Glorot initialisation). A ReLU passes on only the "
        "positive half, so after four ReLU layers the starting signal, and the gradients, are smaller, and "
        "plain SGD with its fixed small steps needs many more of them to get going."
    ]
    combined, adam = table.row(ALL_THREE), table.row("lenet_optimizer")
    if combined is not None and adam is not None:
        difference = combined.test_accuracy - adam.test_accuracy
        margin = noise_margin(combined.test_accuracy, adam.test_accuracy, table.test_images)
        pair = (f"*LeNet + all three* (ReLU trained with Adam/32, {_percent(combined.test_accuracy)}) "
                f"{{}} *LeNet + Adam/32* ({_percent(adam.test_accuracy)})")
        if difference >= -margin:
            relation = ("is level with" if difference <= margin else
                        f"is {100 * difference:.1f} points ahead of")
            sentences.append("Adam scales each weight's step by its own gradient history, which can make up "
                             f"for the small start: on this run {pair.format(relation)}.")
        else:
            sentences.append("Adam scales each weight's step by its own gradient history, but on this run that "
                             f"does not make up for it: {pair.format(f'stays {100 * -difference:.1f} points below')}"
                             f", more than the ±{100 * margin:.1f}-point noise.")
    sentences.append("To test the explanation, try more training images or epochs (more steps): if a slow start "
                     "is the cause, the gap between *LeNet + ReLU* and the tanh LeNet should narrow.")
    return " ".join(sentences)


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


def predicted_labels(model, images: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
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


def settings_from_widgets(dataset: str, *, full: bool, train_images: int, test_images: int,
                          epochs: int) -> ComparisonSettings:
    """The comparison the page's widgets describe (the full-data switch overrides size and epochs)."""
    if full:
        return ComparisonSettings.as_in_the_seeds(dataset)
    return ComparisonSettings(dataset=dataset, limit_train=int(train_images), limit_test=int(test_images),
                              epochs=int(epochs))


def comparison_cached(settings: ComparisonSettings) -> bool:
    """Whether every model of the comparison is already in the training cache (e.g. `python -m cnnviz warmup`)."""
    return all(training.is_cached(config) for config in comparison_configs(settings).values())


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
