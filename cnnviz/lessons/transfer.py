"""Transfer learning by class split: pre-train on some classes, transfer to classes never seen.

The experiment (after the seeds' Fashion-MNIST notebook): a CNN whose first Dense layer is a
2-unit bottleneck is pre-trained on classes 3-9; classes 0-2 (T-shirt/top, Trouser, Pullover)
are held out as the transfer set. Seen through the pre-trained network the unseen classes fall
onto similar seen classes; after retraining the dense layers on the transfer set (convolutions
frozen), they get clusters of their own.

This module holds the plain logic of that experiment: validating a split and remapping its labels,
the transfer-set sizes, the `TrainConfig`s of every run (all training goes through
`cnnviz.training`), the 2-D bottleneck features, the "predicted as which seen class" table, and
the strategy comparison over transfer-set sizes with several seeds. The four textbook cases are
defined up front by the data: "small"/"large" by the images per class of the transfer set
(`SMALL_PER_CLASS`), "similar"/"different" by the dataset's class families; each case is measured
with the strategy it prescribes, and every verdict between strategies comes from
`cnnviz.verdicts.compare`. Every seed trains every strategy (its own pre-trained network, its own
transfer images and order; the seeds of one run train together) and, by default, every run is
scored on the same whole test split, so the verdicts treat each seed as a block
(`verdicts.block_residual_variance`) and use the paired per-image test error. `run_default_experiment` is the page's default comparison for
`python -m cnnviz experiment transfer`.
TensorFlow and Keras are imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cnnviz import data, training, verdicts
from cnnviz.architecture import EVAL_BATCH, LayerRow, backbones, scale_images, stack_for, summarize
from cnnviz.errors import SettingsError, SplitError, TrainingStopped, WeightsUnavailable
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
# The four textbook cases, defined by the data before anything trains
# --------------------------------------------------------------------------------------------

# A transfer set with at most this many images per class counts as "small"; above it, "large".
SMALL_PER_CLASS = 30

STRATEGIES: tuple[str, ...] = ("frozen_features", "early_features", "fine_tune", "scratch")
STRATEGY_LABELS = {
    "frozen_features": "Frozen features, new output layer only",
    "early_features": "Frozen early convolution, new head",
    "fine_tune": "Fine-tune everything",
    "scratch": "Train from scratch",
}
STRATEGY_TEXTS = {
    "frozen_features": "copy every layer but the output layer and freeze them all; only a new output "
                       "layer (random) trains.",
    "early_features": "copy only the first convolution and its pooling, frozen; every later layer is "
                      "new (random) and trains.",
    "fine_tune": "copy every layer but the output layer; every weight trains from there.",
    "scratch": "the same network with random weights, trained on the transfer set only.",
}


@dataclass(frozen=True)
class TransferCase:
    """One of the four cases: what to keep of the pre-trained network, what to freeze, and the
    rule of thumb's reason (the lesson's claim, tested by the measurement, not a measured fact)."""

    key: str
    data_size: str  # "small" or "large"
    similarity: str  # "similar" or "different"
    keep: str
    freeze: str
    train: str
    why: str
    strategy: str  # the strategy (one of STRATEGIES) that carries this recommendation out
    compared_with: tuple[str, ...]  # the strategies it is measured against

    @property
    def title(self) -> str:
        return f"{self.data_size.capitalize()} data, {self.similarity} to the pre-training data"


FOUR_CASES: tuple[TransferCase, ...] = (
    TransferCase(
        key="small_similar", data_size="small", similarity="similar",
        keep="All pre-trained layers; only the output layer is replaced by a new one sized to the new classes.",
        freeze="Every pre-trained layer.",
        train="Only the new, randomly initialised output layer.",
        why="few images would overfit a retrained network, and the features of similar images still apply.",
        strategy="frozen_features", compared_with=("fine_tune", "scratch"),
    ),
    TransferCase(
        key="small_different", data_size="small", similarity="different",
        keep="Only the early layers (edges, blobs, textures); the later, task-specific layers are cut off.",
        freeze="The kept early layers.",
        train="A new head (every later layer, random) on top of the kept early layers.",
        why="few images call for frozen weights, but only the low-level features carry over to different images.",
        strategy="early_features", compared_with=("fine_tune", "scratch"),
    ),
    TransferCase(
        key="large_similar", data_size="large", similarity="similar",
        keep="All layers; the output layer is replaced by a new one sized to the new classes.",
        freeze="Nothing: the pre-trained weights are the starting point.",
        train="The whole network (fine-tuning), starting from the pre-trained weights.",
        why="with many images every weight may adapt, and the pre-trained weights are a good start.",
        strategy="fine_tune", compared_with=("scratch",),
    ),
    TransferCase(
        key="large_different", data_size="large", similarity="different",
        keep="The architecture; the weights only as a starting point, or not at all.",
        freeze="Nothing.",
        train="The whole network: fine-tuned from the pre-trained weights, or from scratch.",
        why="there is enough data to learn every weight, so the old features may or may not help.",
        strategy="fine_tune", compared_with=("scratch",),
    ),
)


def case_for(data_size: str, similarity: str) -> TransferCase:
    """The case for a data size ("small"/"large") and similarity ("similar"/"different")."""
    for case in FOUR_CASES:
        if case.data_size == data_size and case.similarity == similarity:
            return case
    raise ValueError(f"No case for data size {data_size!r} and similarity {similarity!r}: use "
                     f"'small'/'large' and 'similar'/'different'.")


def data_size_of(per_class: int) -> str:
    """"small" for at most SMALL_PER_CLASS transfer images per class, else "large" (fixed up front)."""
    return "small" if int(per_class) <= SMALL_PER_CLASS else "large"


def strategies_for(similarity: str) -> tuple[str, ...]:
    """The strategies the comparison trains for a split: the small case's prescription, then the
    large cases' (fine-tuning) and training from scratch for comparison."""
    small = case_for("small", similarity).strategy
    return (small, "fine_tune", "scratch")


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
    """Every strategy's test accuracy at every transfer-set size, one value per seed.

    Every run is scored on `test_images` test images of the transfer classes: by default (no test
    limit) the whole test split, the same images for every seed and strategy; with a test limit
    the runs of one seed share the subset that seed draws. Seed s pre-trains its own
    network (seed s, its own training subset) and transfers from it with seed s, so the spread
    covers pre-training as well as transfer randomness.
    """

    sizes: tuple[int, ...]  # total transfer-set sizes (the same number of images per class)
    num_classes: int
    similarity: str  # "similar" or "different" (from the dataset's class families)
    seeds: tuple[int, ...]
    accuracy: dict[str, tuple[tuple[float, ...], ...]]  # strategy -> per size -> per seed
    updates: dict[str, tuple[int, ...]] = field(default_factory=dict)  # strategy -> per size (one seed)
    test_images: int = 0
    # strategy -> the first seed's per-epoch history (`loss`, `accuracy`, `val_*`, `seconds`) per size
    histories: dict[str, tuple[dict, ...]] = field(default_factory=dict)
    pretrain_accuracy: tuple[float, ...] = ()  # per seed, on the seen classes' test images
    pretrain_updates: int = 0
    pretrain_test_images: int = 0
    # strategy -> per size -> per seed: which test images the run classified correctly (None: unknown)
    hits: dict[str, tuple[tuple[np.ndarray | None, ...], ...]] = field(default_factory=dict, repr=False)
    # True when every run of every seed was scored on the same test images (no test limit)
    shared_test_set: bool = False

    def __post_init__(self):
        for strategy, per_size in self.accuracy.items():
            if strategy not in STRATEGIES:
                raise ValueError(f"Unknown strategy {strategy!r}; expected one of {STRATEGIES}.")
            if len(per_size) != len(self.sizes):
                raise ValueError(f"Strategy {strategy!r} has {len(per_size)} sizes' accuracies for "
                                 f"{len(self.sizes)} sizes.")

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(self.accuracy)

    def per_class(self, index: int) -> int:
        return self.sizes[index] // self.num_classes

    def data_size(self, index: int) -> str:
        return data_size_of(self.per_class(index))

    def spread(self, strategy: str, index: int) -> verdicts.Spread:
        return verdicts.spread(self.accuracy[strategy][index], test_images=self.test_images or None)


@dataclass(frozen=True)
class CaseMeasurement:
    """One of the four cases as measured: the size it is measured at and `compare`'s verdicts."""

    case: TransferCase
    size: int
    per_class: int
    verdicts: tuple[verdicts.Verdict, ...]


def pair_factor(a: str, b: str) -> str:
    """The stable factor name of a verdict between two strategies, e.g. "frozen_features vs fine_tune"."""
    return f"{a} vs {b}"


def case_measurements(comparison: StrategyComparison) -> tuple[CaseMeasurement, ...]:
    """The split's small case (at the smallest size) and large case (at the largest size), each
    measured with its prescribed strategy against the others; every verdict from `verdicts.compare`.

    A case is missing when no size falls in it (e.g. every size is small).
    """
    measured = []
    indices = range(len(comparison.sizes))
    small = [i for i in indices if comparison.data_size(i) == "small"]
    large = [i for i in indices if comparison.data_size(i) == "large"]
    for data_size, chosen in (("small", small[:1]), ("large", large[-1:])):
        if not chosen:
            continue
        index = chosen[0]
        case = case_for(data_size, comparison.similarity)
        if case.strategy not in comparison.accuracy:
            continue
        size, per_class = comparison.sizes[index], comparison.per_class(index)
        lead = f"With {size:,} transfer images ({per_class} per class, {data_size}): "
        found = []
        seed_variance = _block_seed_variance(comparison, index)
        for other in case.compared_with:
            if other not in comparison.accuracy:
                continue
            verdict = verdicts.compare(
                pair_factor(case.strategy, other), STRATEGY_LABELS[case.strategy],
                comparison.accuracy[case.strategy][index], STRATEGY_LABELS[other],
                comparison.accuracy[other][index], test_images=comparison.test_images or None,
                seed_variance=seed_variance, test_variance=_paired_test_variance(comparison, case.strategy,
                                                                                 other, index))
            found.append(dataclasses.replace(verdict, text=lead + verdict.text))
        measured.append(CaseMeasurement(case, size, per_class, tuple(found)))
    return tuple(measured)


def _block_seed_variance(comparison: StrategyComparison, index: int) -> tuple[float, int] | None:
    """The seed part of the verdicts at one size: every seed trains every strategy (on its own
    transfer images, in its own order, copying from its own pre-trained network), so a seed is a
    block and what it does to every strategy alike cancels: the two-way analysis of the whole
    strategies x seeds table at that size (`verdicts.block_residual_variance`, pooled over every
    strategy, as the LeNet-vs-ReLU lesson pools its variants). None with fewer than two seeds or
    strategies (then `compare` uses each side's own spread)."""
    table = [comparison.accuracy[strategy][index] for strategy in comparison.strategies]
    if len(table) < 2 or len(comparison.seeds) < 2 or any(len(row) != len(comparison.seeds) for row in table):
        return None
    return verdicts.block_residual_variance(table)


def _paired_test_variance(comparison: StrategyComparison, a: str, b: str, index: int) -> float | None:
    """`verdicts.paired_test_variance` of two strategies at one size, when every run was scored on the
    same test images and knows its per-image hits; else None (`compare`'s independent default)."""
    if not comparison.shared_test_set:
        return None
    hits = [comparison.hits.get(strategy, ())[index] if len(comparison.hits.get(strategy, ())) > index else ()
            for strategy in (a, b)]
    return verdicts.paired_test_variance_of(list(hits[0]), list(hits[1]))

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
    images leaves `per_class` images of each chosen class after the class filter. Every run of one
    seed uses the same test images of its classes (the same `test_per_class` and seed); without a
    test limit (the default) every seed uses the whole test split, so seeds differ only in training.
    """

    dataset: str = "fashion_mnist"
    # None: every training image of the pre-training classes (6,000 per class in Fashion-MNIST), the
    # same for every seed. Measured with seeds 3-5 at 90 transfer images: pre-trained on a drawn
    # 1,000 per class (16 epochs), frozen features scored 56-77 % by seed; on every image (2 epochs)
    # 68-75 %: the pre-training subset each seed drew was the largest source of their spread. One
    # epoch of every image keeps the default comparison within its time budget.
    pretrain_per_class: int | None = None
    # None: the whole test split (1,000 images per class), the same images for every seed and run.
    test_per_class: int | None = None
    pretrain_epochs: int = 1
    pretrain_batch_size: int = 64
    transfer_per_class: int | None = 300
    transfer_epochs: int = 5
    # Every transfer run makes at least this many weight updates (see `transfer_schedule`).
    min_transfer_updates: int = 240
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
        if self.min_transfer_updates < 1:
            raise ValueError("Make at least one weight update per transfer run.")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return data.spec(self.dataset).image_shape

    @property
    def num_dataset_classes(self) -> int:
        return data.spec(self.dataset).num_classes

    def limit(self, per_class: int | None) -> int | None:
        """The dataset-wide image limit that leaves `per_class` images of every class."""
        return None if per_class is None else int(per_class) * self.num_dataset_classes


# The default ladder of the strategy comparison: two sizes, the largest "small" set (SMALL_PER_CLASS
# = 30 images per class: 90 for the 3 default transfer classes) and a "large" one (900 images, 300
# per class), so each of the split's two cases is measured once. With 3 seeds that is 6 transfer
# runs and 1 pre-training, each training its 3 seeds together (see bench/transfer_defaults.py).
# Measured with seeds 3-5: at 10 images per class the draw of the transfer set alone moved
# training from scratch between 64 and 87 %; at 30 per class between 92 and 94 %.
DEFAULT_LARGEST_TRANSFER_SIZE = 900
DEFAULT_SIZE_STEPS = 2
# Every transfer run makes at least this many weight updates by default (small sets get more
# epochs), so that every strategy leaves its start-up regime (measured with 3 seeds: at 48-75
# updates a new output layer on frozen features was still near its random start, 25-52 % at 30
# images). `ExperimentSettings.min_transfer_updates` is the setting.
MIN_TRANSFER_UPDATES = ExperimentSettings.min_transfer_updates


def default_sizes(num_classes: int, full_per_class: int) -> tuple[int, ...]:
    """The comparison's default transfer-set sizes (capped by the images each class has)."""
    largest = min(DEFAULT_LARGEST_TRANSFER_SIZE, full_per_class * num_classes)
    return size_ladder(largest, num_classes, smallest=min(default_smallest_size(num_classes), largest),
                       steps=DEFAULT_SIZE_STEPS)


def default_smallest_size(num_classes: int) -> int:
    """The comparison's default smallest transfer set: the largest "small" one (SMALL_PER_CLASS per class)."""
    return SMALL_PER_CLASS * int(num_classes)


def transfer_schedule(num_images: int, epochs: int,
                      min_updates: int = MIN_TRANSFER_UPDATES) -> tuple[int, int]:
    """(batch_size, epochs) for a transfer run on `num_images` images.

    The batch size spreads the `min_updates` weight updates over `epochs` epochs (between 4 and 64
    images a batch); sets too small for that get more epochs, so that every run makes at least
    `min_updates` updates (the budget is stated in updates). Every run is scored on the test split
    after each epoch, so fewer, longer epochs cost less. Every strategy at one size gets the same
    schedule, so the same number of updates.
    """
    batch_size = int(min(64, max(4, (num_images * epochs) // max(1, min_updates)), max(1, num_images)))
    steps_per_epoch = math.ceil(num_images / batch_size)
    return batch_size, int(max(epochs, math.ceil(min_updates / steps_per_epoch)))


def weight_updates(num_images: int, config: TrainConfig) -> int:
    """The weight updates of one run on `num_images` training images: epochs x batches per epoch."""
    return int(config.epochs * math.ceil(num_images / config.batch_size))


def pretrain_config(split: ClassSplit, settings: ExperimentSettings) -> TrainConfig:
    """The run that pre-trains the bottleneck CNN on the pre-training classes (with `settings.seed`)."""

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
    """A run on the transfer classes that starts from the pre-trained network (of the same seed).

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
    batch_size, epochs = transfer_schedule(num_images, settings.transfer_epochs, settings.min_transfer_updates)
    return TrainConfig.from_stack(
        stack, dataset=settings.dataset, classes=split.transfer,
        limit_train=settings.limit(images_per_class), limit_test=settings.limit(settings.test_per_class),
        epochs=epochs, batch_size=batch_size, learning_rate=settings.learning_rate,
        seed=settings.seed, fast=settings.fast,
        warm_start=pretrain if copy_layers else None, warm_start_layers=copy_layers,
        freeze_layers=freeze_layers)


def early_block_depth(stack: Sequence[dict]) -> int:
    """The early layers "small, different" keeps: up to and including the first pooling layer
    (the first convolution and its pooling)."""
    for index, layer in enumerate(stack):
        if layer.get("type") in ("maxpool2d", "avgpool2d"):
            return index + 1
    return 1


def strategy_copy_and_freeze(strategy: str, stack: Sequence[dict]) -> tuple[int, int]:
    """(layers copied from the pre-trained network, layers frozen) for one strategy.

    - "frozen_features": every layer but the output layer is copied and frozen; a new output layer trains.
    - "early_features": only the early layers (first convolution and pooling) are copied and frozen.
    - "fine_tune": every layer but the output layer is copied, and nothing is frozen.
    - "scratch": nothing is copied; every weight starts random.
    """
    if strategy == "frozen_features":
        return len(stack) - 1, len(stack) - 1
    if strategy == "early_features":
        depth = early_block_depth(stack)
        return depth, depth
    if strategy == "fine_tune":
        return len(stack) - 1, 0
    if strategy == "scratch":
        return 0, 0
    raise ValueError(f"Unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}.")


def strategy_config(strategy: str, split: ClassSplit, settings: ExperimentSettings, per_class: int | None,
                    *, num_images: int | None = None) -> TrainConfig:
    """The run of one strategy with `per_class` transfer images per class (None = all), seed `settings.seed`."""
    stack = bottleneck_stack(settings.input_shape, len(split.transfer))
    copy_layers, freeze_layers = strategy_copy_and_freeze(strategy, stack)
    config = transfer_config(split, settings, freeze_layers=freeze_layers, copy_layers=copy_layers,
                             per_class=per_class, num_images=num_images)
    rate = strategy_learning_rate(strategy, settings)
    # The comparison needs each run's test accuracy after its last update, not after every epoch:
    # the fast engine then scores the test split once (a small set's 11 epochs spent more time on
    # 11 scorings of the 3,000 test images than on training; the results are the same).
    return config.replace(learning_rate=rate, validate_every_epoch=not settings.fast)


def strategy_learning_rate(strategy: str, settings: ExperimentSettings) -> float:
    """The peak learning rate of a strategy's runs: the settings' rate, times
    `HEAD_ONLY_LEARNING_RATE_FACTOR` for a strategy that trains only a new output layer."""
    return float(settings.learning_rate * HEAD_ONLY_LEARNING_RATE_FACTOR.get(strategy, 1.0))


PRETRAIN_RUN = "pretrain"
# Strategies that train only a new output layer (a handful of weights on frozen features) use a
# larger peak learning rate, so that the head leaves its random start within the same number of
# updates as the others (measured with 3 seeds at 30 images: at 10x the shared rate, 160 updates
# left it at 48-82 %, and it needed about 960 to settle).
HEAD_ONLY_LEARNING_RATE_FACTOR = {"frozen_features": 30.0}


@dataclass(frozen=True)
class RunProgress:
    """Where a strategy comparison is: run `run` (from 1) of `runs`, and that run's progress (0-1).

    Run 1 pre-trains every seed's network (`strategy` PRETRAIN_RUN, `size` 0); each later run is
    one strategy at one size with every seed (trained together). `phase` is the engine's ("waiting" for a free
    training slot, "warm start", "train", "evaluate"); while waiting, `queue_position` is the
    run's 1-based place in the queue (else 0).
    """

    run: int
    runs: int
    strategy: str
    size: int
    fraction: float
    phase: str = "train"
    queue_position: int = 0
    seeds: tuple[int, ...] = ()  # the seeds this run trains (together, when they can)

    @property
    def overall(self) -> float:
        return min(1.0, max(0.0, (self.run - 1 + self.fraction) / max(1, self.runs)))


def describe_run_progress(progress: RunProgress) -> str:
    """The comparison's status line: which run, and its place in the training queue while it waits."""
    if progress.strategy == PRETRAIN_RUN:
        text = f"Run {progress.run} of {progress.runs}: **pre-training** one network per seed"
    else:
        text = (f"Run {progress.run} of {progress.runs}: **{STRATEGY_LABELS[progress.strategy]}** "
                f"on {progress.size:,} images")
        if progress.seeds:
            text += f", seed{'s' if len(progress.seeds) > 1 else ''} {', '.join(str(s) for s in progress.seeds)}"
    if progress.phase == "waiting":
        return (f"{text} · waiting for a free training slot (place {progress.queue_position} in the queue): "
                "other students are training right now.")
    if progress.phase == "warm start":
        return f"{text} · pre-training the network to copy weights from first"
    return text


class ComparisonStopped(TrainingStopped):
    """The strategy comparison was stopped before every run finished."""


def compare_strategies(split: ClassSplit, settings: ExperimentSettings, sizes: Sequence[int], *,
                       seeds: Sequence[int] | int = training.DEFAULT_SEEDS,
                       strategies: Sequence[str] | None = None,
                       on_progress: Callable[[RunProgress], object] | None = None,
                       train_fn: Callable | None = None) -> StrategyComparison:
    """Train every strategy at every transfer-set size with every seed and measure its test accuracy.

    `sizes` are total transfer-set sizes (multiples of the number of transfer classes; see
    `size_ladder`). `strategies` default to `strategies_for` the split's similarity (from the
    dataset's class families). Seed s first pre-trains its own network (one `train_seeds` call for
    all seeds), then each strategy of seed s copies from that network. Every run goes through
    `train_fn` (default `cnnviz.training.train_seeds`, signature `(config, seeds, on_progress)`)
    and its disk cache, so repeating a comparison is fast. All runs are evaluated on the same
    test images of the transfer classes. `on_progress` returning False stops the comparison
    (raises `ComparisonStopped`).
    """
    own_training = train_fn is None
    if train_fn is None:
        train_fn = train_strategy_seeds
    seeds = training.seed_list(seeds)
    k = len(split.transfer)
    for size in sizes:
        if size < k or size % k:
            raise ValueError(f"A transfer-set size must be a positive multiple of the {k} transfer "
                             f"classes (the same number of images per class), not {size}.")
    similarity = judge_similarity(split, data.spec(settings.dataset).class_families).verdict
    strategies = tuple(strategies) if strategies is not None else strategies_for(similarity)
    runs = [(strategy, size) for size in sizes for strategy in strategies]
    total = len(runs) + 1
    first_seed = dataclasses.replace(settings, seed=seeds[0])

    def run_callback(number: int, strategy: str, size: int):
        if on_progress is None:
            return None
        if on_progress(RunProgress(number, total, strategy, size, 0.0, seeds=seeds)) is False:
            raise ComparisonStopped("The comparison was stopped.")

        def callback(progress):
            fraction = progress.fraction if progress.phase == "train" else 0.0
            together = int(progress.metrics.get("seeds_together", 1.0))
            if progress.phase == "train" and together < len(seeds):  # seeds one after another
                index, count = progress.metrics.get("seed_index", 0.0), progress.metrics.get("seeds", 1.0)
                fraction = (index + progress.fraction) / max(1.0, count)
            waiting = progress.phase == "waiting"
            position = int(progress.metrics.get("queue_position", 0)) if waiting else 0
            return on_progress(RunProgress(number, total, strategy, size, fraction, phase=progress.phase,
                                           queue_position=position, seeds=seeds))
        return callback

    def finished(results: Sequence[TrainResult], expected: int) -> Sequence[TrainResult]:
        if len(results) < expected or any(r.stopped_reason == "stopped" for r in results):
            raise ComparisonStopped("The comparison was stopped.")
        return results

    # Run 1: every seed's pre-trained network (the transfer runs' warm starts).
    pretrain = pretrain_config(split, first_seed)
    pretrained = finished(train_fn(pretrain, seeds, run_callback(1, PRETRAIN_RUN, 0)), len(seeds))
    if own_training:  # the transfer runs copy from these models, not from the cache's copies of them
        train_fn = functools.partial(train_strategy_seeds, warm_results=pretrained)
    accuracy: dict[str, list[tuple[float, ...]]] = {s: [() for _ in sizes] for s in strategies}
    updates: dict[str, list[int]] = {s: [0] * len(sizes) for s in strategies}
    histories: dict[str, list[dict]] = {s: [{} for _ in sizes] for s in strategies}
    hits: dict[str, list[tuple[np.ndarray | None, ...]]] = {s: [() for _ in sizes] for s in strategies}
    test_images = 0
    for number, (strategy, size) in enumerate(runs, start=2):
        index = list(sizes).index(size)
        # Seed s of this run copies from the network pre-trained with seed s (`train_strategy_seeds`).
        config = strategy_config(strategy, split, first_seed, size // k, num_images=size)
        results = finished(train_fn(config, seeds, run_callback(number, strategy, size)), len(seeds))
        accuracy[strategy][index] = tuple(float(result.test_accuracy) for result in results)
        updates[strategy][index] = weight_updates(size, config)
        histories[strategy][index] = {name: list(values) for name, values in results[0].history.items()}
        hits[strategy][index] = tuple(_hits_of(result) for result in results)
        if not test_images:
            test_images = _count_test_images(results[0])
    pretrain_images = (settings.pretrain_per_class * len(split.pretrain) if settings.pretrain_per_class
                       else _count_train_images(settings, split.pretrain))
    return StrategyComparison(
        tuple(sizes), k, similarity, seeds,
        {s: tuple(per_size) for s, per_size in accuracy.items()},
        {s: tuple(v) for s, v in updates.items()}, test_images,
        {s: tuple(v) for s, v in histories.items()},
        pretrain_accuracy=tuple(float(r.test_accuracy) for r in pretrained),
        pretrain_updates=weight_updates(pretrain_images, pretrain),
        pretrain_test_images=_count_test_images(pretrained[0]),
        hits={s: tuple(v) for s, v in hits.items()},
        # No test limit: every seed loads the whole test split, so image j is the same for every run.
        shared_test_set=settings.test_per_class is None)


def _hits_of(result: TrainResult) -> np.ndarray | None:
    """Which test images the run classified correctly (kept by the engine and the cache), or None."""
    hits = getattr(result, "test_hits", None)
    return None if hits is None else np.asarray(hits, dtype=bool)


def train_strategy_seeds(config: TrainConfig, seeds: Sequence[int], on_progress: Callable | None = None,
                         *, warm_results: Sequence[TrainResult] = ()) -> list[TrainResult]:
    """`training.train_seeds` for the comparison: seed s trains `config` with seed s and, for a
    warm start, copies from the network pre-trained with seed s (the seeds train together; from
    `warm_results`, the pre-trainings the comparison holds, when they are among them)."""
    return training.train_seeds(config, seeds, on_progress, warm_start_per_seed=True, warm_results=warm_results)


def _count_test_images(result: TrainResult) -> int:
    try:
        return int(len(result.test_data()[1]))
    except Exception:  # noqa: BLE001 - the count is only shown as a caption.
        return 0


def _count_train_images(settings: ExperimentSettings, classes: tuple[int, ...]) -> int:
    """Training images of `classes` without a per-class limit (every image the dataset has of them)."""
    try:
        loaded = data.load(settings.dataset, seed=settings.seed)
        return int(np.isin(loaded.y_train, classes).sum())
    except Exception:  # noqa: BLE001 - the count is only shown as the budget.
        return 0

# --------------------------------------------------------------------------------------------
# Looking through a trained network
# --------------------------------------------------------------------------------------------

def _model_layers(model) -> list:
    """The model's layers in stack order (without an InputLayer)."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def bottleneck_features(model, images: np.ndarray, stack: Sequence[dict], *,
                        batch_size: int = EVAL_BATCH) -> np.ndarray:
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


def predicted_units(model, images: np.ndarray, *, batch_size: int = EVAL_BATCH) -> np.ndarray:
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
                   seeds: Sequence[int] | int = training.DEFAULT_SEEDS,
                   train_fn: Callable | None = None) -> training.Job[RunProgress, StrategyComparison]:
    """`compare_strategies` as a (not yet started) background `training.Job`, watched by any number
    of page runs: pages poll `latest` (a RunProgress) and call `request_stop()`; when it ends,
    `result` (a StrategyComparison) or `error` is set and `done` is True."""
    sizes, seeds = tuple(sizes), training.seed_list(seeds)

    def work(on_progress: Callable[[RunProgress], bool]) -> StrategyComparison:
        return compare_strategies(split, settings, sizes, seeds=seeds, on_progress=on_progress,
                                  train_fn=train_fn)

    return training.Job(work, name="cnnviz-transfer-comparison")

# --------------------------------------------------------------------------------------------
# What the page shows, from its widgets and results
# --------------------------------------------------------------------------------------------

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


def comparison_cached(split: ClassSplit, settings: ExperimentSettings, sizes: Sequence[int],
                      seeds: Sequence[int] | int = training.DEFAULT_SEEDS) -> bool:
    """Whether every run of the strategy comparison (every seed) is already in the training cache."""
    k = len(split.transfer)
    similarity = judge_similarity(split, data.spec(settings.dataset).class_families).verdict
    return all(training.is_cached(strategy_config(strategy, split, dataclasses.replace(settings, seed=seed),
                                                  size // k, num_images=size))
               for size in sizes for strategy in strategies_for(similarity)
               for seed in training.seed_list(seeds))


def experiment_report(comparison: StrategyComparison) -> verdicts.ExperimentReport:
    """The comparison as an `ExperimentReport`: one variant per strategy and size (plus the
    pre-training), and the four cases' verdicts."""
    variants = [verdicts.VariantResult(
        name=PRETRAIN_RUN, seeds=comparison.seeds, test_accuracy=comparison.pretrain_accuracy,
        updates=comparison.pretrain_updates, test_images=comparison.pretrain_test_images,
        extra={"role": "pre-training on the seen classes"})] if comparison.pretrain_accuracy else []
    for index, size in enumerate(comparison.sizes):
        for strategy in comparison.strategies:
            variants.append(verdicts.VariantResult(
                name=f"{strategy} @ {size}", seeds=comparison.seeds,
                test_accuracy=comparison.accuracy[strategy][index],
                updates=comparison.updates.get(strategy, (0,) * len(comparison.sizes))[index],
                test_images=comparison.test_images,
                extra={"strategy": strategy, "transfer_images": size, "images_per_class": comparison.per_class(index),
                       "data_size": comparison.data_size(index), "similarity": comparison.similarity}))
    found = tuple(v for measured in case_measurements(comparison) for v in measured.verdicts)
    return verdicts.ExperimentReport("transfer", tuple(variants), found)


def comparison_records(comparison: StrategyComparison) -> list[dict[str, object]]:
    """One row per size and strategy: the case's data size, the budget, mean, interval and every seed."""
    records: list[dict[str, object]] = []
    for index, size in enumerate(comparison.sizes):
        for strategy in comparison.strategies:
            spread = comparison.spread(strategy, index)
            records.append({
                "Transfer images": size, "Per class": comparison.per_class(index),
                "Data": comparison.data_size(index), "Strategy": STRATEGY_LABELS[strategy],
                "Updates": comparison.updates.get(strategy, (0,) * len(comparison.sizes))[index],
                "Mean %": round(100 * spread.mean, 1),
                "95 % interval": f"{100 * spread.low:.1f} to {100 * spread.high:.1f}",
                "Per seed %": " ".join(f"{100 * v:.1f}" for v in comparison.accuracy[strategy][index])})
    return records


def default_split() -> ClassSplit:
    """The page's default split: the seeds' three held-back Fashion-MNIST classes."""
    return make_split(DEFAULT_PRETRAIN_CLASSES, DEFAULT_TRANSFER_CLASSES, data.spec("fashion_mnist").class_names)


def default_comparison_sizes(split: ClassSplit, settings: ExperimentSettings) -> tuple[int, ...]:
    """The page's default sizes: `default_sizes`, capped by the rarest transfer class's images."""
    loaded = data.load(settings.dataset, seed=settings.seed)
    return default_sizes(len(split.transfer), transfer_capacity(loaded.y_train, split))


def run_default_experiment(seeds: Sequence[int], *,
                           on_progress: Callable[[RunProgress], object] | None = None) -> verdicts.ExperimentReport:
    """The transfer page's default strategy comparison with `seeds`, as an `ExperimentReport`
    (`python -m cnnviz experiment transfer`)."""
    split, settings = default_split(), ExperimentSettings()
    comparison = compare_strategies(split, settings, default_comparison_sizes(split, settings), seeds=seeds,
                                    on_progress=on_progress)
    return experiment_report(comparison)


# --------------------------------------------------------------------------------------------
# A backbone pre-trained on ImageNet (seed 001's VGG16), frozen under a new head
# --------------------------------------------------------------------------------------------

BACKBONE_DATASET = "cifar10"
# The new head under the frozen base: pool the base's feature map, one hidden layer, the classes.
BACKBONE_HEAD: tuple[dict, ...] = (
    {"type": "globalavgpool2d"},
    {"type": "dense", "units": 128, "activation": "relu"},
    {"type": "dropout", "rate": 0.3},
)
BACKBONE_WEIGHT_CHOICES: tuple[str | None, ...] = (backbones.IMAGENET, None)


@dataclass(frozen=True)
class BackboneSettings:
    """One run of a frozen `keras.applications` base under a new head (the page's choices).

    The data is CIFAR-10 or a class-folder dataset (`cnnviz.data.load_image_folder`, named
    ``images-<hash>``; `fit_backbone_settings` bounds the settings by what it holds). CIFAR-10
    stays at its 32×32 pixels, the smallest input both bases accept: on two CPU cores the frozen
    base's forward pass is most of every epoch (bench numbers in the report of issue 17:
    MobileNetV2 ~1,700 images/s at 32 px against ~110 at 96 px; VGG16 ~100 at 32 px), so resizing
    up would make a run of a few minutes one of an hour."""

    backbone: str = "mobilenet_v2"
    weights: str | None = backbones.IMAGENET
    dataset: str = BACKBONE_DATASET
    per_class: int | None = 200  # Training images per class (None: every training image).
    test_per_class: int | None = 100  # None: the whole test split.
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.001
    seed: int = 0


def backbone_min_side() -> int:
    """The smallest image side (pixels) every backbone accepts (32: `backbones.Backbone.min_side`)."""
    return max(spec.min_side for spec in backbones.BACKBONES.values())


def _per_class_bound(requested: int | None, counts: np.ndarray) -> int | None:
    """`requested` images per class, or None (every image) when no class has more than that."""
    return None if requested is None or int(requested) >= int(counts.max(initial=0)) else int(requested)


def fit_backbone_settings(settings: BackboneSettings, dataset: data.Dataset) -> BackboneSettings:
    """`settings` for a run on `dataset` (a loaded `cnnviz.data.Dataset`, e.g. a class-folder one):
    its name, its images per class bounded by what each split holds (a limit no class exceeds
    becomes None, every image), and the batch no larger than the training images. Raises
    `SettingsError` when its images are smaller than the backbones accept."""
    height, width = (int(side) for side in np.asarray(dataset.x_train).shape[1:3])
    smallest = backbone_min_side()
    if min(height, width) < smallest:
        raise SettingsError(f"The backbones need images of at least {smallest}×{smallest} pixels, and these are "
                            f"{height}×{width}: read the images again with an image size of {smallest} pixels "
                            f"or more.")
    k = len(dataset.class_names)
    train_counts = np.bincount(np.asarray(dataset.y_train, dtype=np.int64).ravel(), minlength=k)
    test_counts = np.bincount(np.asarray(dataset.y_test, dtype=np.int64).ravel(), minlength=k)
    fitted = dataclasses.replace(settings, dataset=dataset.name,
                                 per_class=_per_class_bound(settings.per_class, train_counts),
                                 test_per_class=_per_class_bound(settings.test_per_class, test_counts))
    train_images, _ = backbone_images(fitted, dataset)
    return dataclasses.replace(fitted, batch_size=max(1, min(settings.batch_size, train_images)))


def backbone_images(settings: BackboneSettings, dataset: data.Dataset | None = None) -> tuple[int, int]:
    """(training, test) images a run uses: its limits, capped by `dataset`'s splits when given
    (a limit of None needs `dataset`: every image of that split)."""
    k = data.spec(settings.dataset).num_classes
    counts = []
    for per_class, labels in ((settings.per_class, None if dataset is None else dataset.y_train),
                              (settings.test_per_class, None if dataset is None else dataset.y_test)):
        if labels is None:
            if per_class is None:
                raise ValueError("Every image of a split: pass the dataset to count them.")
            counts.append(int(per_class) * k)
        else:
            available = len(labels)
            counts.append(available if per_class is None else min(int(per_class) * k, available))
    return counts[0], counts[1]


def backbone_stack(backbone: str, weights: str | None, num_classes: int) -> list[dict]:
    """The frozen base, the new head (`BACKBONE_HEAD`) and a softmax layer of `num_classes` units."""
    return ([{"type": "pretrained_backbone", "backbone": backbone, "weights": weights, "trainable": False}]
            + [dict(layer) for layer in BACKBONE_HEAD]
            + [{"type": "dense", "units": int(num_classes), "activation": "softmax"}])


def backbone_config(settings: BackboneSettings) -> TrainConfig:
    """The `TrainConfig` of one backbone run: its key names the backbone and its weights (the stack)
    and the dataset (`TrainConfig.dataset`); the head has one unit per class of the dataset."""
    num_classes = data.spec(settings.dataset).num_classes
    return TrainConfig.from_stack(
        backbone_stack(settings.backbone, settings.weights, num_classes), dataset=settings.dataset,
        limit_train=None if settings.per_class is None else settings.per_class * num_classes,
        limit_test=None if settings.test_per_class is None else settings.test_per_class * num_classes,
        epochs=settings.epochs, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
        seed=settings.seed)


@dataclass(frozen=True)
class ParameterCounts:
    """The weights of a backbone run: frozen (copied, never updated) and trainable (the new head)."""

    frozen: int
    trainable: int
    rows: tuple[LayerRow, ...]

    @property
    def total(self) -> int:
        return self.frozen + self.trainable


def backbone_counts(settings: BackboneSettings) -> ParameterCounts:
    """Frozen and trainable parameters of the run's model, from the calculator's rows (no Keras)."""
    config = backbone_config(settings)
    rows = tuple(summarize(data.spec(settings.dataset).image_shape, config.stack()))
    return ParameterCounts(frozen=sum(row.non_trainable_params for row in rows),
                           trainable=sum(row.trainable_params for row in rows), rows=rows)


def backbone_rows(counts: ParameterCounts) -> list[dict[str, object]]:
    """The run's layers as table records: layer, output shape, parameters, trainable, frozen."""
    return [{"Layer": row.name, "What": row.description, "Output": "×".join(map(str, row.output_shape)),
             "Parameters": row.params, "Trainable": row.trainable_params, "Frozen": row.non_trainable_params}
            for row in counts.rows]


def backbone_weights_status(settings: BackboneSettings) -> backbones.WeightsStatus:
    """Whether the run's weights can be had here (Keras cache or download; instant for random ones)."""
    return backbones.weights_status(settings.backbone, data.spec(settings.dataset).image_shape, settings.weights)


def train_backbone(settings: BackboneSettings, on_progress: Callable[[training.Progress], object] | None = None,
                   *, data: object = None, use_cache: bool | None = None) -> TrainResult:
    """Train the new head on the frozen base (through the engine and its cache). Raises
    `WeightsUnavailable` before anything loads when ImageNet weights cannot be had."""
    status = backbone_weights_status(settings)
    if not status.available:
        raise WeightsUnavailable(status.message)
    return training.train(backbone_config(settings), on_progress, data=data, use_cache=use_cache)


def backbone_layer_roles(counts: ParameterCounts) -> tuple[list[str], list[str], list[int], list[str]]:
    """(names, descriptions, parameters, roles) per layer for `figures.transfer.layer_roles_figure`:
    the base "frozen" (or "fine-tuned" when trainable), the head "new"."""
    roles = ["new" if row.type != "pretrained_backbone" else "fine-tuned" if row.trainable_params else "frozen"
             for row in counts.rows]
    return ([row.name for row in counts.rows], [row.description for row in counts.rows],
            [row.params for row in counts.rows], roles)
