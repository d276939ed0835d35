"""Transfer learning by class split: pre-train on some classes, transfer to classes never seen.

The experiment (after the seeds' Fashion-MNIST notebook): a CNN whose first Dense layer is a
2-unit bottleneck is pre-trained on classes 3-9; classes 0-2 (T-shirt/top, Trouser, Pullover)
are held out as the transfer set. Seen through the pre-trained network the unseen classes fall
onto similar seen classes; after retraining the dense layers on the transfer set (convolutions
frozen), they get clusters of their own.

This module holds the plain logic of that experiment: validating a split and remapping its labels,
the transfer-set sizes, the `TrainConfig`s of every run (all training goes through
`cnnviz.training`), the 2-D bottleneck features, the "predicted as which seen class" table,
the comparison of three strategies over transfer-set sizes, and the four textbook cases
(small/large data x similar/different data) with a reading of a measured comparison against them.
TensorFlow and Keras are imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cnnviz import data, training
from cnnviz.architecture import scale_images, stack_for, summarize
from cnnviz.errors import SettingsError, SplitError, TrainingStopped
from cnnviz.training import TrainConfig, TrainResult

# The seeds' split of Fashion-MNIST: classes 3-9 pre-train, classes 0-2 are the transfer set.
DEFAULT_PRETRAIN_CLASSES: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 9)
DEFAULT_TRANSFER_CLASSES: tuple[int, ...] = (0, 1, 2)

# The architecture preset of the experiment: three convolutions, a 2-unit Dense bottleneck and a
# softmax head (see cnnviz.architecture.PRESETS).
BOTTLENECK_PRESET = "bottleneck_cnn"

# Smallest transfer set the size ladder offers: about ten images per class of a 3-class transfer.
SMALLEST_TRANSFER_SIZE = 30


# --------------------------------------------------------------------------------------------
# The split and its label remap
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RemapRow:
    """One class of the split: its original label, name, role and the label the network sees."""

    original_label: int
    class_name: str
    role: str  # "pre-train" or "transfer"
    new_label: int


@dataclass(frozen=True)
class ClassSplit:
    """Two disjoint, sorted sets of original class labels and the names of all classes.

    The training engine remaps the labels of each set to 0..k-1 in the order given here, so the
    pre-trained network's output unit `i` means class `pretrain[i]`, and after transfer the new
    head's unit `j` means class `transfer[j]`.
    """

    pretrain: tuple[int, ...]
    transfer: tuple[int, ...]
    class_names: tuple[str, ...]

    @property
    def pretrain_names(self) -> tuple[str, ...]:
        return tuple(self.class_names[label] for label in self.pretrain)

    @property
    def unused(self) -> tuple[int, ...]:
        """Classes in neither set (left out of the experiment)."""
        used = set(self.pretrain) | set(self.transfer)
        return tuple(label for label in range(len(self.class_names)) if label not in used)

    def remap_table(self) -> list[RemapRow]:
        """Every class of both sets with the label it gets in its own training run."""
        rows = [RemapRow(label, self.class_names[label], "pre-train", new)
                for new, label in enumerate(self.pretrain)]
        rows += [RemapRow(label, self.class_names[label], "transfer", new)
                 for new, label in enumerate(self.transfer)]
        return rows

    def remap(self, labels: np.ndarray, role: str) -> np.ndarray:
        """Original labels (all inside the set named by `role`) -> labels 0..k-1 of that set."""
        classes = self._classes(role)
        labels = np.asarray(labels, dtype=np.int64).ravel()
        inside, remapped = data.filter_classes(labels, classes)
        if not inside.all():
            outside = sorted({int(v) for v in labels[~inside]})
            raise SplitError(f"Labels {outside} are not in the {role} set {list(classes)}.")
        return remapped

    def _classes(self, role: str) -> tuple[int, ...]:
        if role == "pre-train":
            return self.pretrain
        if role == "transfer":
            return self.transfer
        raise ValueError(f"role must be 'pre-train' or 'transfer', not {role!r}")


def make_split(pretrain: Iterable[int], transfer: Iterable[int],
               class_names: Sequence[str]) -> ClassSplit:
    """Validate a pre-train/transfer split of a dataset's classes and return it sorted.

    Raises `SplitError` (a `ValueError`) when a set is empty or has a single class (a classifier
    needs at least two classes to tell apart), when a label does not exist, or when the two sets
    share a class (then the "unseen" classes would not be unseen).
    """
    class_names = tuple(class_names)
    pretrain = [int(label) for label in pretrain]
    transfer = [int(label) for label in transfer]
    for role, labels in (("pre-training", pretrain), ("transfer", transfer)):
        if not labels:
            raise SplitError(f"Choose at least two {role} classes: the {role} set is empty.")
        unknown = [label for label in labels if not 0 <= label < len(class_names)]
        if unknown:
            raise SplitError(f"The {role} set names labels {unknown} that this dataset does not have "
                             f"(it has labels 0-{len(class_names) - 1}).")
        if len(set(labels)) < 2:
            raise SplitError(f"Choose at least two {role} classes: a classifier needs two or more "
                             f"classes to tell apart, and the {role} set has only "
                             f"{class_names[labels[0]]}.")
    shared = sorted(set(pretrain) & set(transfer))
    if shared:
        names = ", ".join(class_names[label] for label in shared)
        raise SplitError(f"The pre-training and transfer sets must not share classes, but both contain "
                         f"{names}. The transfer classes have to be unseen during pre-training.")
    return ClassSplit(tuple(sorted(set(pretrain))), tuple(sorted(set(transfer))), class_names)


# --------------------------------------------------------------------------------------------
# Transfer-set sizes (stratified: the same number of images per transfer class)
# --------------------------------------------------------------------------------------------

def size_ladder(full_size: int, num_classes: int, *, smallest: int = SMALLEST_TRANSFER_SIZE,
                steps: int = 5) -> tuple[int, ...]:
    """Transfer-set sizes from about `smallest` images up to `full_size`, roughly evenly on a log scale.

    Every size is a multiple of `num_classes` (the same number of images per class) and the last
    one is the full set (rounded down to a multiple of `num_classes`).
    """
    if steps < 1:
        raise SettingsError("Ask for at least one transfer-set size.")
    per_class_full = full_size // num_classes
    if per_class_full < 1:
        raise SettingsError(f"A transfer set of {full_size} images cannot cover {num_classes} classes.")
    per_class_small = min(per_class_full, max(1, math.ceil(smallest / num_classes)))
    per_class: Iterable[float]
    if steps == 1 or per_class_small == per_class_full:
        per_class = [per_class_full]
    else:
        per_class = np.geomspace(per_class_small, per_class_full, steps)
    sizes = sorted({int(round(value)) * num_classes for value in per_class})
    return tuple(sizes)


# --------------------------------------------------------------------------------------------
# The four textbook cases (small/large data x similar/different data)
# --------------------------------------------------------------------------------------------

STRATEGIES: tuple[str, ...] = ("frozen", "fine_tune", "scratch")
STRATEGY_LABELS = {
    "frozen": "Frozen convolutions + new dense layers",
    "fine_tune": "Fine-tune everything",
    "scratch": "Train from scratch",
}


@dataclass(frozen=True)
class TransferCase:
    """One of the four cases: what to keep of the pre-trained network, what to freeze, and why."""

    key: str
    data_size: str  # "small" or "large"
    similarity: str  # "similar" or "different"
    keep: str
    freeze: str
    train: str
    why: str
    strategy: str  # the measured strategy (one of STRATEGIES) that carries this recommendation out

    @property
    def title(self) -> str:
        return f"{self.data_size.capitalize()} data, {self.similarity} to the pre-training data"


FOUR_CASES: tuple[TransferCase, ...] = (
    TransferCase(
        key="small_similar", data_size="small", similarity="similar",
        keep="All pre-trained layers; only the output layer is replaced by a new one sized to the new classes.",
        freeze="Every pre-trained layer.",
        train="Only the new, randomly initialised fully connected layer.",
        why="Few images would overfit a retrained network, and since the images are alike the high-level "
            "features the network already computes are still useful.",
        strategy="frozen",
    ),
    TransferCase(
        key="small_different", data_size="small", similarity="different",
        keep="Only the early layers (edges, blobs, textures); the later, task-specific layers are cut off.",
        freeze="The kept early layers.",
        train="A new fully connected layer on top of the kept early layers.",
        why="Few images still call for frozen weights, but the high-level features of the old task do not "
            "describe the new images; low-level features still do.",
        strategy="frozen",
    ),
    TransferCase(
        key="large_similar", data_size="large", similarity="similar",
        keep="All layers; the output layer is replaced by a new one sized to the new classes.",
        freeze="Nothing: the pre-trained weights are the starting point.",
        train="The whole network (fine-tuning), starting from the pre-trained weights.",
        why="With many images overfitting is less of a worry, so every weight may adapt; the shared "
            "features make the pre-trained weights a good start.",
        strategy="fine_tune",
    ),
    TransferCase(
        key="large_different", data_size="large", similarity="different",
        keep="The architecture; the weights only as a starting point, or not at all.",
        freeze="Nothing.",
        train="The whole network, from scratch (or fine-tuned from the pre-trained weights if that trains faster).",
        why="Enough data to learn every weight, and features from the old task may not help; starting "
            "from pre-trained weights can still speed training up.",
        strategy="scratch",
    ),
)


def case_for(data_size: str, similarity: str) -> TransferCase:
    """The case for a data size ("small"/"large") and similarity ("similar"/"different")."""
    for case in FOUR_CASES:
        if case.data_size == data_size and case.similarity == similarity:
            return case
    raise ValueError(f"No case for data size {data_size!r} and similarity {similarity!r}: use "
                     f"'small'/'large' and 'similar'/'different'.")


@dataclass(frozen=True)
class Similarity:
    """Whether the transfer classes resemble the pre-training classes, and the evidence."""

    verdict: str  # "similar" or "different"
    related: tuple[int, ...]  # transfer classes with a relative among the pre-training classes
    unrelated: tuple[int, ...]
    reason: str


def judge_similarity(split: ClassSplit, families: Mapping[int, str]) -> Similarity:
    """Similar when at least half of the transfer classes share a family with a pre-training class.

    `families` maps each label to a coarse family name: the dataset's
    ``data.spec(name).class_families`` (for Fashion-MNIST, its garment families).
    """
    seen_families = {families.get(label) for label in split.pretrain}
    related = tuple(label for label in split.transfer if families.get(label) in seen_families)
    unrelated = tuple(label for label in split.transfer if label not in related)
    verdict = "similar" if 2 * len(related) >= len(split.transfer) else "different"
    names = split.class_names
    if related:
        reason = (f"{', '.join(names[label] for label in related)} "
                  f"{'has' if len(related) == 1 else 'have'} relatives among the pre-training classes")
    else:
        reason = "no transfer class has a relative among the pre-training classes"
    if unrelated:
        reason += (f"; {', '.join(names[label] for label in unrelated)} "
                   f"{'does' if len(unrelated) == 1 else 'do'} not")
    return Similarity(verdict, related, unrelated, reason + ".")


@dataclass(frozen=True)
class StrategyComparison:
    """Measured test accuracy of each strategy at each transfer-set size (same test images for all)."""

    sizes: tuple[int, ...]
    accuracy: dict[str, tuple[float, ...]]  # strategy -> one accuracy per size, aligned with `sizes`
    seconds: dict[str, tuple[float, ...]] = field(default_factory=dict)
    test_images: int = 0
    # strategy -> one per-epoch history (`loss`, `accuracy`, `val_*`, `seconds`) per size, for replays
    histories: dict[str, tuple[dict, ...]] = field(default_factory=dict)

    def __post_init__(self):
        for strategy, values in self.accuracy.items():
            if strategy not in STRATEGIES:
                raise ValueError(f"Unknown strategy {strategy!r}; expected one of {STRATEGIES}.")
            if len(values) != len(self.sizes):
                raise ValueError(f"Strategy {strategy!r} has {len(values)} accuracies for "
                                 f"{len(self.sizes)} sizes.")

    def best_at(self, index: int, *, tolerance: float = 0.0) -> str:
        """The best strategy at size `index`; within `tolerance` of the best, the cheaper one wins
        (frozen is cheapest, then fine-tuning, then training from scratch)."""
        top = max(values[index] for values in self.accuracy.values())
        for strategy in STRATEGIES:
            if strategy in self.accuracy and self.accuracy[strategy][index] >= top - tolerance:
                return strategy
        raise ValueError("The comparison holds no strategy.")


@dataclass(frozen=True)
class SizeReading:
    """What one measured size says: its best strategy and the case that recommends it."""

    size: int
    best: str
    accuracy: dict[str, float]
    case: TransferCase  # the case (at the given similarity) whose recommendation the winner carries out


@dataclass(frozen=True)
class CasesReading:
    """A measured strategy curve related to the four cases."""

    similarity: str
    readings: tuple[SizeReading, ...]
    small_below: int | None  # the first size from which freezing stops being the best choice
    agrees_with_cases: bool  # frozen wins at the smallest size, and not at the largest one
    summary: tuple[str, ...]  # sentences for students
    # Per size: accuracy of the better pre-trained strategy minus training from scratch (None when
    # the comparison lacks those strategies).
    transfer_gain: tuple[float | None, ...] = ()


def relate_to_cases(comparison: StrategyComparison, similarity: str = "similar",
                    *, tolerance: float = 0.01) -> CasesReading:
    """Relate a measured accuracy-versus-size curve to the four cases.

    Each size is read as "small" while keeping the pre-trained network frozen is (within
    `tolerance`) the best strategy, and "large" once training more weights pays off. The cases say
    freezing should win on small data and fine-tuning (similar data) or training from scratch
    (different data) on large data; `agrees_with_cases` reports whether the measurement shows that.
    """
    if similarity not in ("similar", "different"):
        raise ValueError(f"similarity must be 'similar' or 'different', not {similarity!r}")
    if not comparison.sizes:
        raise ValueError("The comparison has no transfer-set sizes to read.")
    readings = []
    for index, size in enumerate(comparison.sizes):
        best = comparison.best_at(index, tolerance=tolerance)
        data_size = "small" if best == "frozen" else "large"
        readings.append(SizeReading(
            size=size, best=best,
            accuracy={strategy: values[index] for strategy, values in comparison.accuracy.items()},
            case=case_for(data_size, similarity)))
    small_below = next((reading.size for reading in readings if reading.best != "frozen"), None)
    agrees = readings[0].best == "frozen" and (len(readings) == 1 or readings[-1].best != "frozen")

    summary = []
    first, last = readings[0], readings[-1]
    summary.append(_best_sentence(first, tolerance, lead=f"With {first.size:,} transfer images"))
    if len(readings) > 1:
        summary.append(_best_sentence(last, tolerance, lead=f"With {last.size:,} images"))
    if small_below is None:
        summary.append("Freezing the pre-trained layers wins at every size measured: for this network "
                       f"even the full transfer set is *small*, the case '{case_for('small', similarity).title}'.")
    elif small_below == first.size and first.best == "fine_tune":
        summary.append("Freezing does not win even at the smallest size: this network is small enough to "
                       "fine-tune on a few dozen images without overfitting, and keeping the pre-trained "
                       "weights as a starting point beats freezing them.")
    elif small_below == first.size:
        summary.append("Freezing does not win even at the smallest size: the pre-trained features help "
                       "little here, or the frozen network needs more epochs.")
    else:
        summary.append(f"Freezing wins below about {small_below:,} images (the *small* data cases) and "
                       f"training more weights wins from there on (the *large* data cases).")
    gains = tuple(_transfer_gain(comparison, index) for index in range(len(comparison.sizes)))
    if gains and gains[0] is not None:
        sentence = (f"Starting from the pre-trained network instead of random weights is worth "
                    f"{100 * gains[0]:+.1f} points with {first.size:,} images")
        if len(gains) > 1 and gains[-1] is not None:
            sentence += f" and {100 * gains[-1]:+.1f} points with {last.size:,} images"
            if gains[0] > gains[-1]:
                sentence += ": the head start matters most when data is scarce, as the cases say"
        summary.append(sentence + ".")
    summary.append("This matches the four cases." if agrees else
                    "This does not follow the four cases exactly; they are rules of thumb, and tiny "
                    "runs are noisy: try more epochs or the full data.")
    return CasesReading(similarity, tuple(readings), small_below, agrees, tuple(summary), gains)


def _best_sentence(reading: SizeReading, tolerance: float, *, lead: str) -> str:
    """One size's winner, or the strategies tied with it (within `tolerance`), in words."""
    top = max(reading.accuracy.values())
    tied = [s for s in STRATEGIES if s in reading.accuracy and reading.accuracy[s] >= top - tolerance]
    if len(tied) == 1:
        return (f"{lead} the best strategy is **{STRATEGY_LABELS[reading.best].lower()}** "
                f"({100 * reading.accuracy[reading.best]:.1f}% test accuracy).")
    names = " and ".join(f"**{STRATEGY_LABELS[s].lower()}**" for s in tied)
    return (f"{lead} {names} are within {100 * tolerance:.0f} point of each other (a tie, up to "
            f"{100 * top:.1f}%); the cheaper, {STRATEGY_LABELS[reading.best].lower()}, is counted.")


def _transfer_gain(comparison: StrategyComparison, index: int) -> float | None:
    """Best pre-trained strategy minus training from scratch at one size (None if not measured)."""
    pretrained = [comparison.accuracy[s][index] for s in ("frozen", "fine_tune") if s in comparison.accuracy]
    if not pretrained or "scratch" not in comparison.accuracy:
        return None
    return max(pretrained) - comparison.accuracy["scratch"][index]


# --------------------------------------------------------------------------------------------
# Feature space and "predicted as which seen class"
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureSpace:
    """Images seen through a network's 2-unit bottleneck: one 2-D point per image."""

    points: np.ndarray  # (N, 2) bottleneck activations
    labels: np.ndarray  # (N,) ORIGINAL class labels of the images
    class_names: tuple[str, ...]  # names of all classes of the dataset, indexed by original label
    title: str = ""
    # Optional background: images of other classes (e.g. the seen classes), drawn faintly.
    context_points: np.ndarray | None = None  # (M, 2)
    context_labels: np.ndarray | None = None  # (M,) original labels


@dataclass(frozen=True)
class PredictedAsTable:
    """How the pre-trained network classifies images of classes it never saw.

    `percent[i, j]` is the percentage of test images of transfer class `rows[i]` that the
    pre-trained network predicts as seen class `columns[j]`; every row sums to 100.
    """

    rows: tuple[int, ...]  # transfer classes (original labels)
    columns: tuple[int, ...]  # pre-training classes (original labels), in the head's unit order
    counts: np.ndarray  # (len(rows), len(columns)) image counts
    class_names: tuple[str, ...]

    @property
    def percent(self) -> np.ndarray:
        totals = self.counts.sum(axis=1, keepdims=True)
        return 100.0 * self.counts / np.maximum(totals, 1)

    def most_predicted(self) -> dict[int, tuple[int, float]]:
        """For each transfer class: the seen class it is most often taken for, and how often (%)."""
        percent = self.percent
        return {row: (self.columns[int(np.argmax(percent[i]))], float(percent[i].max()))
                for i, row in enumerate(self.rows)}

    def as_records(self) -> list[dict[str, object]]:
        """One record per transfer class, with one column of percentages per seen class."""
        percent = self.percent
        records = []
        for i, row in enumerate(self.rows):
            record: dict[str, object] = {"Unseen class": self.class_names[row],
                                         "Images": int(self.counts[i].sum())}
            for j, column in enumerate(self.columns):
                record[self.class_names[column]] = round(float(percent[i, j]), 1)
            records.append(record)
        return records


def predicted_as_table(predicted_units: np.ndarray, true_labels: np.ndarray,
                       split: ClassSplit) -> PredictedAsTable:
    """Tabulate which seen class the pre-trained network predicts for each unseen image.

    `predicted_units` (N,) are argmax indices of the pre-trained head (0..len(pretrain)-1, unit
    `i` meaning class `split.pretrain[i]`); `true_labels` (N,) are the images' original labels, all
    in `split.transfer`.
    """
    predicted_units = np.asarray(predicted_units, dtype=np.int64)
    true_rows = split.remap(np.asarray(true_labels), "transfer")
    if predicted_units.shape != true_rows.shape:
        raise ValueError(f"{len(predicted_units)} predictions for {len(true_rows)} labels.")
    if len(predicted_units) and not (0 <= predicted_units.min() and predicted_units.max() < len(split.pretrain)):
        raise ValueError(f"Predicted units must lie in 0..{len(split.pretrain) - 1} "
                         f"(one per pre-training class).")
    counts = np.zeros((len(split.transfer), len(split.pretrain)), dtype=np.int64)
    np.add.at(counts, (true_rows, predicted_units), 1)
    return PredictedAsTable(split.transfer, split.pretrain, counts, split.class_names)


# --------------------------------------------------------------------------------------------
# The network: the bottleneck preset, its convolutional block, its bottleneck, and layer roles
# --------------------------------------------------------------------------------------------

def bottleneck_stack(input_shape: Sequence[int], num_classes: int) -> list[dict]:
    """The `bottleneck_cnn` preset with its head sized to `num_classes`."""

    return stack_for(BOTTLENECK_PRESET, tuple(input_shape), num_classes)


def conv_block_depth(stack: Sequence[dict]) -> int:
    """How many leading layers form the convolutional feature extractor (everything before the
    first Dense layer: convolutions, pooling and the Flatten)."""
    for index, layer in enumerate(stack):
        if layer.get("type") == "dense":
            return index
    return len(stack)


def bottleneck_index(stack: Sequence[dict], units: int = 2) -> int:
    """Position in the stack of the last Dense layer with `units` outputs before the head."""
    for index in range(len(stack) - 2, -1, -1):
        layer = stack[index]
        if layer.get("type") == "dense" and int(layer.get("units", -1)) == units:
            return index
    raise ValueError(f"This network has no {units}-unit Dense layer before its output, so it has no "
                     f"2-D feature space to draw.")


LAYER_ROLES = ("frozen", "fine-tuned", "new")


@dataclass(frozen=True)
class LayerPlanRow:
    """One layer of a transfer run: copied and frozen, copied and retrained, or new (random)."""

    index: int
    name: str
    kind: str  # the Keras class, e.g. "Conv2D"
    output_shape: tuple[int, ...]
    params: int
    role: str  # one of LAYER_ROLES


@dataclass(frozen=True)
class LayerPlan:
    """The layers of a transfer run with their roles, and the parameter counts per role."""

    rows: tuple[LayerPlanRow, ...]

    def params(self, role: str) -> int:
        return sum(row.params for row in self.rows if row.role == role)

    @property
    def frozen_params(self) -> int:
        return self.params("frozen")

    @property
    def trainable_params(self) -> int:
        return self.params("fine-tuned") + self.params("new")

    def as_records(self) -> list[dict[str, object]]:
        return [{"Layer": row.name, "Type": row.kind, "Output shape": str(row.output_shape),
                 "Parameters": row.params, "Role": row.role} for row in self.rows]


def layer_plan(input_shape: Sequence[int], stack: Sequence[dict], *, copy_layers: int,
               freeze_layers: int) -> LayerPlan:
    """Roles of the layers when the first `copy_layers` are copied from the pre-trained network and
    the first `freeze_layers` of those are frozen (not trained). Only copied layers can be frozen."""

    rows = summarize(tuple(input_shape), list(stack))
    if not 0 <= copy_layers <= len(rows):
        raise ValueError(f"Can copy between 0 and {len(rows)} layers, not {copy_layers}.")
    if not 0 <= freeze_layers <= copy_layers:
        raise ValueError(f"Only copied layers can be frozen: freeze at most {copy_layers} layers, "
                         f"not {freeze_layers} (a frozen random layer would never learn).")
    plan = []
    for row in rows:
        role = "frozen" if row.index < freeze_layers else "fine-tuned" if row.index < copy_layers else "new"
        plan.append(LayerPlanRow(row.index, row.name, row.keras_class, tuple(row.output_shape),
                                 int(row.params), role))
    return LayerPlan(tuple(plan))


# --------------------------------------------------------------------------------------------
# Training configurations (all training goes through cnnviz.training)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExperimentSettings:
    """The shared conditions of every run of one experiment.

    Sizes are in images PER CLASS (None = every image of the split). The dataset loader draws
    the same number of images from every class, so a limit of `per_class * num_dataset_classes`
    images leaves `per_class` images of each chosen class after the class filter. Every run uses
    the same test images of its classes (the same `test_per_class` and seed).
    """

    dataset: str = "fashion_mnist"
    pretrain_per_class: int | None = 1000
    test_per_class: int | None = 200
    pretrain_epochs: int = 8
    pretrain_batch_size: int = 64
    transfer_per_class: int | None = 300
    transfer_epochs: int = 5
    learning_rate: float = 0.003
    seed: int = 0
    fast: bool = True

    def __post_init__(self):
        for name in ("pretrain_per_class", "test_per_class", "transfer_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be at least 1 image "
                                 f"(or every image).")
        for name in ("pretrain_epochs", "transfer_epochs"):
            if getattr(self, name) < 1:
                raise ValueError("Train for at least one epoch.")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return data.spec(self.dataset).image_shape

    @property
    def num_dataset_classes(self) -> int:
        return data.spec(self.dataset).num_classes

    def limit(self, per_class: int | None) -> int | None:
        """The dataset-wide image limit that leaves `per_class` images of every class."""
        return None if per_class is None else int(per_class) * self.num_dataset_classes


# The default ladder of the strategy comparison: about 30 to 900 transfer images in 4 sizes
# (12 training runs; each run has a fixed cost of about half a second for building and compiling).
DEFAULT_LARGEST_TRANSFER_SIZE = 900
DEFAULT_SIZE_STEPS = 4


def default_sizes(num_classes: int, full_per_class: int) -> tuple[int, ...]:
    """The comparison's default transfer-set sizes (capped by the images each class has)."""
    largest = min(DEFAULT_LARGEST_TRANSFER_SIZE, full_per_class * num_classes)
    return size_ladder(largest, num_classes, smallest=min(SMALLEST_TRANSFER_SIZE, largest),
                       steps=DEFAULT_SIZE_STEPS)


def transfer_schedule(num_images: int, epochs: int) -> tuple[int, int]:
    """(batch_size, epochs) for a transfer run on `num_images` images.

    Small sets get small batches (about eight steps per epoch) and, when needed, more epochs, so
    that even 30 images see a useful number of weight updates: at least ~48 steps in total.
    Each epoch costs a fixed overhead (a validation pass), so steps are added per epoch first.
    """
    batch_size = int(min(64, max(4, num_images // 8), max(1, num_images)))
    steps_per_epoch = math.ceil(num_images / batch_size)
    return batch_size, int(max(epochs, min(4 * epochs, math.ceil(48 / steps_per_epoch))))


def pretrain_config(split: ClassSplit, settings: ExperimentSettings) -> TrainConfig:
    """The run that pre-trains the bottleneck CNN on the pre-training classes."""

    return TrainConfig.from_stack(
        bottleneck_stack(settings.input_shape, len(split.pretrain)),
        dataset=settings.dataset, classes=split.pretrain,
        limit_train=settings.limit(settings.pretrain_per_class),
        limit_test=settings.limit(settings.test_per_class),
        epochs=settings.pretrain_epochs, batch_size=settings.pretrain_batch_size,
        learning_rate=settings.learning_rate, seed=settings.seed, fast=settings.fast)


def transfer_config(split: ClassSplit, settings: ExperimentSettings, *, freeze_layers: int,
                    copy_layers: int | None = None, per_class: int | None | Literal["settings"] = "settings",
                    num_images: int | None = None) -> TrainConfig:
    """A run on the transfer classes that starts from the pre-trained network.

    The first `copy_layers` layers (default: all but the head, whose size differs) are copied
    from the pre-trained model; the first `freeze_layers` of them stay frozen. `per_class` is the
    number of transfer images per class (default: the settings'; None = all of them);
    `num_images` (the resulting set size, when known) sets batch size and epochs.
    """

    pretrain = pretrain_config(split, settings)
    stack = bottleneck_stack(settings.input_shape, len(split.transfer))
    copy_layers = len(stack) - 1 if copy_layers is None else int(copy_layers)
    layer_plan(settings.input_shape, stack, copy_layers=copy_layers, freeze_layers=freeze_layers)
    images_per_class = settings.transfer_per_class if per_class == "settings" else per_class
    if num_images is None:
        # Unknown size ("every image"): a large set, which gets the standard batch size and epochs.
        num_images = (images_per_class or 100_000) * len(split.transfer)
    batch_size, epochs = transfer_schedule(num_images, settings.transfer_epochs)
    return TrainConfig.from_stack(
        stack, dataset=settings.dataset, classes=split.transfer,
        limit_train=settings.limit(images_per_class), limit_test=settings.limit(settings.test_per_class),
        epochs=epochs, batch_size=batch_size, learning_rate=settings.learning_rate,
        seed=settings.seed, fast=settings.fast,
        warm_start=pretrain if copy_layers else None, warm_start_layers=copy_layers,
        freeze_layers=freeze_layers)


def strategy_copy_and_freeze(strategy: str, stack: Sequence[dict]) -> tuple[int, int]:
    """(layers copied from the pre-trained network, layers frozen) for one strategy.

    - "frozen": the convolutional block is copied and frozen; the dense layers are new.
    - "fine_tune": every layer but the head is copied, and nothing is frozen.
    - "scratch": nothing is copied; every weight starts random.
    """
    if strategy == "frozen":
        depth = conv_block_depth(stack)
        return depth, depth
    if strategy == "fine_tune":
        return len(stack) - 1, 0
    if strategy == "scratch":
        return 0, 0
    raise ValueError(f"Unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}.")


def strategy_config(strategy: str, split: ClassSplit, settings: ExperimentSettings, per_class: int | None,
                    *, num_images: int | None = None) -> TrainConfig:
    """The run of one strategy with `per_class` transfer images per class (None = all)."""
    stack = bottleneck_stack(settings.input_shape, len(split.transfer))
    copy_layers, freeze_layers = strategy_copy_and_freeze(strategy, stack)
    return transfer_config(split, settings, freeze_layers=freeze_layers, copy_layers=copy_layers,
                           per_class=per_class, num_images=num_images)


@dataclass(frozen=True)
class RunProgress:
    """Where a strategy comparison is: run `run` (from 1) of `runs`, and that run's progress (0-1).

    `phase` is the engine's ("waiting" for a free training slot, "warm start", "train",
    "evaluate"); while waiting, `queue_position` is the run's 1-based place in the queue (else 0).
    """

    run: int
    runs: int
    strategy: str
    size: int
    fraction: float
    phase: str = "train"
    queue_position: int = 0

    @property
    def overall(self) -> float:
        return min(1.0, max(0.0, (self.run - 1 + self.fraction) / max(1, self.runs)))


def describe_run_progress(progress: RunProgress) -> str:
    """The comparison's status line: which run, and its place in the training queue while it waits."""
    text = (f"Run {progress.run} of {progress.runs}: **{STRATEGY_LABELS[progress.strategy]}** "
            f"on {progress.size:,} images")
    if progress.phase == "waiting":
        return (f"{text} · waiting for a free training slot (place {progress.queue_position} in the queue): "
                "other students are training right now.")
    if progress.phase == "warm start":
        return f"{text} · pre-training the network to copy weights from first"
    return text


class ComparisonStopped(TrainingStopped):
    """The strategy comparison was stopped before every run finished."""


def compare_strategies(split: ClassSplit, settings: ExperimentSettings, sizes: Sequence[int], *,
                       strategies: Sequence[str] = STRATEGIES,
                       on_progress: Callable[[RunProgress], object] | None = None,
                       train_fn: Callable | None = None) -> StrategyComparison:
    """Train every strategy at every transfer-set size and measure its test accuracy.

    `sizes` are total transfer-set sizes (multiples of the number of transfer classes; see
    `size_ladder`). All runs are evaluated on the same test images of the transfer classes. Every
    run goes through the training engine (`train_fn`, default `cnnviz.training.train`) and its
    disk cache, so repeating a comparison is fast. `on_progress` returning False stops the
    comparison (raises `ComparisonStopped`).
    """
    if train_fn is None:
        train_fn = training.train
    k = len(split.transfer)
    for size in sizes:
        if size < k or size % k:
            raise ValueError(f"A transfer-set size must be a positive multiple of the {k} transfer "
                             f"classes (the same number of images per class), not {size}.")
    runs = [(strategy, size) for size in sizes for strategy in strategies]
    accuracy: dict[str, list[float]] = {strategy: [] for strategy in strategies}
    seconds: dict[str, list[float]] = {strategy: [] for strategy in strategies}
    histories: dict[str, list[dict]] = {strategy: [] for strategy in strategies}
    test_images = 0
    for number, (strategy, size) in enumerate(runs, start=1):
        config = strategy_config(strategy, split, settings, size // k, num_images=size)
        callback = None
        if on_progress is not None:
            if on_progress(RunProgress(number, len(runs), strategy, size, 0.0)) is False:
                raise ComparisonStopped("The comparison was stopped.")

            def callback(progress, number=number, strategy=strategy, size=size):
                fraction = progress.fraction if progress.phase == "train" else 0.0
                waiting = progress.phase == "waiting"
                position = int(progress.metrics.get("queue_position", 0)) if waiting else 0
                return on_progress(RunProgress(number, len(runs), strategy, size, fraction,
                                               phase=progress.phase, queue_position=position))

        result = train_fn(config, callback)
        if result.stopped_reason == "stopped":
            raise ComparisonStopped("The comparison was stopped.")
        accuracy[strategy].append(float(result.test_accuracy))
        seconds[strategy].append(float(result.seconds))
        histories[strategy].append({name: list(values) for name, values in result.history.items()})
        if not test_images:
            test_images = _count_test_images(result)
    return StrategyComparison(tuple(sizes), {s: tuple(v) for s, v in accuracy.items()},
                              {s: tuple(v) for s, v in seconds.items()}, test_images,
                              {s: tuple(v) for s, v in histories.items()})


def _count_test_images(result: TrainResult) -> int:
    try:
        return int(len(result.test_data()[1]))
    except Exception:  # noqa: BLE001 - the count is only shown as a caption.
        return 0


# --------------------------------------------------------------------------------------------
# Looking through a trained network
# --------------------------------------------------------------------------------------------

def _model_layers(model) -> list:
    """The model's layers in stack order (without an InputLayer)."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def bottleneck_features(model, images: np.ndarray, stack: Sequence[dict], *,
                        batch_size: int = 1024) -> np.ndarray:
    """The 2-D bottleneck activations (N, 2) of uint8 images (N, H, W, C) through `model`.

    A sub-model shares the trained layers from the input to the 2-unit Dense layer; the images are
    scaled to [0, 1] exactly as the training engine scales them.
    """
    import keras

    layer = _model_layers(model)[bottleneck_index(stack)]
    submodel = keras.Model(inputs=model.inputs[0], outputs=layer.output)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    points = []
    for start in range(0, len(images), batch_size):
        batch = scale_images(images[start:start + batch_size])
        points.append(np.asarray(submodel(batch, training=False)))
    return np.concatenate(points, axis=0) if points else np.zeros((0, 2), dtype=np.float32)


def predicted_units(model, images: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """The argmax output unit (N,) of `model` for uint8 images (N, H, W, C)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    units = []
    for start in range(0, len(images), batch_size):
        batch = scale_images(images[start:start + batch_size])
        units.append(np.argmax(np.asarray(model(batch, training=False)), axis=1))
    return np.concatenate(units) if units else np.zeros(0, dtype=np.int64)


def frozen_layers_unchanged(pretrained_model, transferred_model, freeze_layers: int) -> bool:
    """True when the first `freeze_layers` layers of both models hold bit-identical weights."""
    before, after = _model_layers(pretrained_model), _model_layers(transferred_model)
    for index in range(freeze_layers):
        old, new = before[index].get_weights(), after[index].get_weights()
        if len(old) != len(new) or not all(np.array_equal(a, b) for a, b in zip(old, new)):
            return False
    return True


def comparison_job(split: ClassSplit, settings: ExperimentSettings, sizes: Sequence[int], *,
                   train_fn: Callable | None = None) -> training.Job[RunProgress, StrategyComparison]:
    """`compare_strategies` as a (not yet started) background `training.Job`, watched by any number
    of page runs: pages poll `latest` (a RunProgress) and call `request_stop()`; when it ends,
    `result` (a StrategyComparison) or `error` is set and `done` is True."""
    sizes = tuple(sizes)

    def work(on_progress: Callable[[RunProgress], bool]) -> StrategyComparison:
        return compare_strategies(split, settings, sizes, on_progress=on_progress, train_fn=train_fn)

    return training.Job(work, name="cnnviz-transfer-comparison")


# --------------------------------------------------------------------------------------------
# What the page shows, from its widgets and results
# --------------------------------------------------------------------------------------------

STRATEGY_TEXTS = {
    "frozen": "copy the convolutions and freeze them; the dense layers start random and train.",
    "fine_tune": "copy every layer but the head and let all weights train.",
    "scratch": "the same network with random weights, trained on the transfer set only.",
}


def freeze_choices(settings: ExperimentSettings, split: ClassSplit | None = None) -> tuple[int, int]:
    """(the deepest freeze offered, the default freeze depth): all but the head, and the convolution block.

    The bottleneck net has the same number of layers whatever the class count.
    """
    stack = bottleneck_stack(settings.input_shape, len(split.transfer) if split else len(DEFAULT_TRANSFER_CLASSES))
    return len(stack) - 1, conv_block_depth(stack)


def freeze_plan(split: ClassSplit, settings: ExperimentSettings, freeze_layers: int = 0) -> LayerPlan:
    """The transfer network's layers (every layer but the head copied), the first `freeze_layers` frozen."""
    stack = bottleneck_stack(settings.input_shape, len(split.transfer))
    return layer_plan(settings.input_shape, stack, copy_layers=len(stack) - 1, freeze_layers=freeze_layers)


def predicted_as_text(table: PredictedAsTable) -> str:
    """One sentence per unseen class: the seen class it is mostly taken for."""
    return "; ".join(f"**{table.class_names[row]}** is mostly taken for **{table.class_names[seen]}** ({share:.0f}%)"
                     for row, (seen, share) in table.most_predicted().items()) + "."


def transfer_capacity(train_labels: np.ndarray, split: ClassSplit) -> int:
    """Training images per class available to a transfer set: the rarest transfer class's count."""
    counts = np.bincount(np.asarray(train_labels), minlength=max(split.transfer) + 1)
    return int(min(counts[c] for c in split.transfer))


def comparison_sizes(split: ClassSplit, full_per_class: int, *, smallest: int, largest: int | None,
                     steps: int) -> tuple[int, ...]:
    """The transfer-set sizes the comparison trains on (`largest` None: every image); `SettingsError` if none fit."""
    k = len(split.transfer)
    full_size = full_per_class * k
    largest_size = full_size if largest is None else min(int(largest), full_size)
    return tuple(size_ladder(largest_size, k, smallest=min(int(smallest), largest_size), steps=steps))


def comparison_cached(split: ClassSplit, settings: ExperimentSettings, sizes: Sequence[int]) -> bool:
    """Whether every run of the strategy comparison is already in the training cache."""
    k = len(split.transfer)
    return all(training.is_cached(strategy_config(strategy, split, settings, size // k, num_images=size))
               for size in sizes for strategy in STRATEGIES)
