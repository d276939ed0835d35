"""The class leaderboard (issue 18): the lecturer's budget, the one check of an entry, and the
training of one entry through the project's engine.

- `LeaderboardBudget` is the class's budget (`ClassroomStore.set_budget` keeps it as a mapping):
  at most `max_parameters` parameters (counted as Keras counts them: `architecture.summarize`)
  and `max_epochs` epochs, on one dataset, a fixed number of training images and a fixed test set
  (`test_images` None: the whole test split, the same images for every entry and seed), and
  `seeds` seeds per entry (3 gives the board a spread).
- An entry's configuration (`entry_config`) is the student's network and hyper-parameters plus
  the budget's data fields, as JSON: entries with identical configurations have the same
  `Entry.config_key`, so they train once (`train_entry` hands a trained twin's result to the
  others), and the disk cache (keyed by the `TrainConfig`) makes a configuration train once
  across sessions and servers sharing a cache folder.
- `check_entry(config, budget)` is the one check (the page calls it before submitting; the
  trainer again before training): beyond the budget, or beyond the server's resource budget
  (`cnnviz.architecture.budget`, through `TrainConfig.validate` / `check_budget`), it raises a
  `cnnviz.errors` error whose message a student can act on.
- `train_entry(store, code, entry_id)` trains one entry (the local trainer calls it in a
  background job, an RQ worker in its own process) and reports through `update_entry`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cnnviz import architecture, data, parsing, training, verdicts
from cnnviz.classroom.model import Entry, rank_entries
from cnnviz.classroom.store import ClassroomStore
from cnnviz.errors import ArchitectureError, ClassroomInputError, CnnvizError
from cnnviz.training.config import OPTIMIZERS, TrainConfig
from cnnviz.training.results import Progress, TrainResult

logger = logging.getLogger("cnnviz.classroom.leaderboard")

OnEntryProgress = Callable[[Progress], bool]

DEFAULT_MAX_PARAMETERS = 50_000
DEFAULT_MAX_EPOCHS = 3
DEFAULT_TRAIN_IMAGES = 5_000
SEED_CHOICES = (1, 3, 5)
# The bounds a lecturer may set (the server's resource budget still refuses a run too big for it).
MAX_PARAMETERS_LIMIT = 5_000_000
MAX_EPOCHS_LIMIT = 20
TRAIN_IMAGES_RANGE = (50, 60_000)  # As the Train page's "Training images".
TEST_IMAGES_RANGE = (50, 10_000)   # As its "Test images".
# An entry's own fields (the student's choices) and the ones its budget fixes.
CHOICE_FIELDS = ("layers", "optimizer", "learning_rate", "batch_size", "epochs")
BUDGET_FIELDS = ("dataset", "train_images", "test_images", "seeds")
FAILED_UNEXPECTEDLY = "Training failed unexpectedly on the server. Press Retry; if it fails again, tell the lecturer."


def _whole(value: Any, what: str, low: int, high: int) -> int:
    """A whole number within [low, high]; the project's one number check first (`parsing.check_number`:
    no bool, no text, nothing infinite, NaN or too large reaches `int()`)."""
    number = parsing.check_number(value, what=what, error=ClassroomInputError)
    if not number.is_integer() or not low <= number <= high:
        raise ClassroomInputError(f"{what} is a whole number from {low:,} to {high:,} (not {value!r}).")
    return int(number)


@dataclass(frozen=True)
class LeaderboardBudget:
    """What the lecturer allows and fixes for every entry (see the module's docstring)."""

    max_parameters: int = DEFAULT_MAX_PARAMETERS
    max_epochs: int = DEFAULT_MAX_EPOCHS
    dataset: str = "fashion_mnist"
    train_images: int = DEFAULT_TRAIN_IMAGES
    test_images: int | None = None  # None: the dataset's whole test split.
    seeds: int = 1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_parameters", _whole(self.max_parameters, "The most parameters", 1, MAX_PARAMETERS_LIMIT))
        set_(self, "max_epochs", _whole(self.max_epochs, "The most epochs", 1, MAX_EPOCHS_LIMIT))
        if self.dataset not in data.DATASETS:
            raise ClassroomInputError(f"The leaderboard's dataset is one of {', '.join(data.DATASETS)}.")
        set_(self, "train_images", _whole(self.train_images, "The number of training images", *TRAIN_IMAGES_RANGE))
        if self.test_images is not None:
            set_(self, "test_images", _whole(self.test_images, "The number of test images", *TEST_IMAGES_RANGE))
        if self.seeds not in SEED_CHOICES or isinstance(self.seeds, bool):
            raise ClassroomInputError(f"Seeds per entry is one of {', '.join(map(str, SEED_CHOICES))}.")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> LeaderboardBudget:
        """The budget a class keeps (`ClassInfo.budget`); missing fields take their defaults."""
        values = dict(mapping or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ClassroomInputError(f"The leaderboard budget has no setting {unknown[0]!r}.")
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """What `ClassroomStore.set_budget` stores."""
        return asdict(self)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return data.spec(self.dataset).image_shape

    @property
    def num_classes(self) -> int:
        return data.spec(self.dataset).num_classes

    def describe(self) -> str:
        """One line for the page, e.g. "at most 50,000 parameters and 3 epochs; Fashion-MNIST, ..."."""
        test = "the whole test split" if self.test_images is None else f"{self.test_images:,} test images"
        seeds = "1 seed" if self.seeds == 1 else f"{self.seeds} seeds (mean ± 95 % interval)"
        return (f"at most {self.max_parameters:,} parameters and {self.max_epochs} epoch"
                f"{'s' if self.max_epochs != 1 else ''}; {data.spec(self.dataset).title}, "
                f"{self.train_images:,} training images, {test}; {seeds} per entry")


def entry_config(layers: Sequence[Mapping[str, Any]], budget: LeaderboardBudget, *, optimizer: str = "adam",
                 learning_rate: float = 0.003, batch_size: int = 128, epochs: int | None = None) -> dict[str, Any]:
    """A leaderboard entry's configuration (what `submit_entry` stores): the stack in its compact
    form (Keras defaults left out, so equal stacks give equal keys), the hyper-parameters, and the
    budget's data fields. `epochs` defaults to the budget's most."""
    try:
        stack = [architecture.compact_layer(layer) for layer in layers]
    except ArchitectureError as error:
        raise ClassroomInputError(f"This network cannot be entered: {error}") from None
    return {"layers": stack, "optimizer": str(optimizer).lower(), "learning_rate": float(learning_rate),
            "batch_size": int(batch_size), "epochs": int(budget.max_epochs if epochs is None else epochs),
            "dataset": budget.dataset, "train_images": budget.train_images, "test_images": budget.test_images,
            "seeds": budget.seeds}


def entry_config_from_train(config: TrainConfig, budget: LeaderboardBudget) -> dict[str, Any]:
    """The entry of a Train-page configuration: its network and hyper-parameters (its data, seed
    and engine switches are the budget's: every entry trains on the same images)."""
    return entry_config(config.stack(), budget, optimizer=config.optimizer, learning_rate=config.learning_rate,
                        batch_size=config.batch_size, epochs=config.epochs)


def preset_entry_config(preset_key: str, budget: LeaderboardBudget) -> dict[str, Any]:
    """The entry of an architecture preset re-targeted to the budget's dataset, with the Train
    page's default hyper-parameters and the budget's most epochs."""
    try:
        layers = architecture.stack_for(preset_key, budget.image_shape, budget.num_classes)
    except (KeyError, ArchitectureError) as error:
        raise ClassroomInputError(f"This preset cannot be entered: {error}") from None
    return entry_config(layers, budget)


def preset_choices(budget: LeaderboardBudget) -> list[tuple[str, int]]:
    """The presets that work on the budget's dataset, with their parameter counts (those over
    the budget included: the page says which)."""
    choices = []
    for key in architecture.PRESETS:
        try:
            rows = architecture.summarize(budget.image_shape,
                                          architecture.stack_for(key, budget.image_shape, budget.num_classes))
        except ArchitectureError:
            continue
        if architecture.classifier_head_problem(rows, budget.num_classes) is None:
            choices.append((key, architecture.totals(rows).params))
    return choices


def _config_fields(config: Mapping[str, Any]) -> None:
    if not isinstance(config, Mapping):
        raise ClassroomInputError("A leaderboard entry is a mapping of settings.")
    unknown = sorted(set(config) - set(CHOICE_FIELDS) - set(BUDGET_FIELDS))
    if unknown:
        raise ClassroomInputError(f"A leaderboard entry has no setting {unknown[0]!r}.")
    missing = [name for name in CHOICE_FIELDS if name not in config]
    if missing:
        raise ClassroomInputError(f"A leaderboard entry needs its {missing[0].replace('_', ' ')}.")
    layers = config["layers"]
    if not isinstance(layers, list | tuple) or not all(isinstance(layer, Mapping) for layer in layers):
        raise ClassroomInputError("A leaderboard entry's network is a list of layers.")
    if config["optimizer"] not in OPTIMIZERS:
        raise ClassroomInputError(f"The optimizer is one of {', '.join(OPTIMIZERS)}.")
    rate = config["learning_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not (math.isfinite(rate) and rate > 0):
        raise ClassroomInputError("The learning rate is a positive number.")
    _whole(config["batch_size"], "The batch size", 1, 4096)
    _whole(config["epochs"], "The number of epochs", 1, MAX_EPOCHS_LIMIT)


def entry_train_config(config: Mapping[str, Any], budget: LeaderboardBudget) -> TrainConfig:
    """The `TrainConfig` (the Train page's config type) that trains the entry's first seed: the
    budget's dataset and image counts, the fast engine, the test set measured once at the end."""
    _config_fields(config)
    return TrainConfig.from_stack(
        [dict(layer) for layer in config["layers"]], dataset=budget.dataset, limit_train=budget.train_images,
        limit_test=budget.test_images, optimizer=config["optimizer"], learning_rate=float(config["learning_rate"]),
        batch_size=int(config["batch_size"]), epochs=int(config["epochs"]), seed=0, fast=True,
        validate_every_epoch=False)


def check_entry(config: Mapping[str, Any], budget: LeaderboardBudget) -> int:
    """The entry's parameter count if it fits the budget, else a `cnnviz.errors` error
    (`ClassroomInputError` for the lecturer's budget, `SettingsError` / `BudgetError` for
    settings that cannot train or a run too big for the server)."""
    _config_fields(config)
    changed = [name for name in BUDGET_FIELDS if name in config and config[name] != getattr(budget, name)]
    if changed:
        raise ClassroomInputError("This entry was made for another budget (the lecturer changed the "
                                  f"{changed[0].replace('_', ' ')}): submit it again.")
    train_config = entry_train_config(config, budget)
    spec = data.spec(budget.dataset)
    try:
        rows = architecture.summarize(spec.image_shape, train_config.stack())
    except ArchitectureError as error:
        raise ClassroomInputError(f"This network cannot work on {spec.title} images "
                                  f"({'×'.join(map(str, spec.image_shape))}): {error}") from None
    problem = architecture.classifier_head_problem(rows, spec.num_classes, spec.title)
    if problem:
        raise ClassroomInputError(problem)
    parameters = architecture.totals(rows).params
    if parameters > budget.max_parameters:
        raise ClassroomInputError(f"This network has {parameters:,} parameters; this class's leaderboard allows at "
                                  f"most {budget.max_parameters:,}. Use fewer filters or units, or pool before "
                                  "the first Dense layer.")
    if train_config.epochs > budget.max_epochs:
        raise ClassroomInputError(f"This entry trains for {train_config.epochs} epochs; this class's leaderboard "
                                  f"allows at most {budget.max_epochs}. Lower the epochs (on the Train page).")
    test_images = budget.test_images
    train_config.validate(train_images=budget.train_images, test_images=test_images)
    if budget.seeds > 1:
        train_config.check_budget(spec.image_shape, budget.train_images, test_images, seeds=budget.seeds)
    return parameters


def describe_stack(config: Mapping[str, Any]) -> str:
    """The entry's network in one line, e.g. "Conv2D 8, 3×3, relu → MaxPool 2×2 → ..."."""
    layers = config.get("layers") if isinstance(config, Mapping) else None
    if not isinstance(layers, list | tuple):
        return "?"
    parts = []
    for layer in layers:
        try:
            parts.append(architecture.describe_layer(architecture.normalize_layer(layer)))
        except (ArchitectureError, TypeError, ValueError):
            parts.append("?")
    return " → ".join(parts)


def describe_settings(config: Mapping[str, Any]) -> str:
    """The entry's hyper-parameters in a few words, e.g. "adam, lr 0.003, batch 128, 3 epochs"."""
    try:
        return (f"{config['optimizer']}, lr {float(config['learning_rate']):g}, batch {int(config['batch_size'])}, "
                f"{int(config['epochs'])} epoch{'s' if int(config['epochs']) != 1 else ''}")
    except (KeyError, TypeError, ValueError):
        return "?"


# --- training -----------------------------------------------------------------------------------

def done_twin(store: ClassroomStore, code: str, entry: Entry) -> Entry | None:
    """A trained ("done") entry of this class with the same configuration, or None."""
    return next((other for other in store.entries(code)
                 if other.config_key == entry.config_key and other.status == "done"
                 and other.entry_id != entry.entry_id), None)


def _bounded(store: ClassroomStore, message: str) -> str:
    limit = store.limits.max_message_chars
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def seed_spread(accuracies: Sequence[float]) -> float | None:
    """The ± of the board: half the 95 % interval of the mean over seeds (`verdicts.spread`),
    None for a single seed."""
    if len(accuracies) < verdicts.MIN_SEEDS:
        return None
    interval = verdicts.spread(accuracies)
    return min(1.0, max(0.0, interval.high - interval.mean))


def _unfinished_message(results: Sequence[TrainResult], seeds: int) -> str | None:
    for result in results:
        if result.stopped_reason == "diverged":
            return ("Training diverged: the loss exploded (NaN or far above guessing). The learning rate is too "
                    "large for this network: submit it again with one ten times smaller.")
        if result.stopped_reason != "finished":
            return "Training was stopped before it finished. Press Retry."
    if len(results) < seeds:
        return "Training ended before every seed finished. Press Retry."
    return None


def train_entry(store: ClassroomStore, code: str, entry_id: int, *,
                on_progress: OnEntryProgress | None = None) -> Entry:
    """Train one leaderboard entry and report it through the store; returns the updated entry.

    An entry already "done" is returned as it is; an entry whose identical configuration (same
    `config_key`) is done gets that result without training. Otherwise the entry and its queued
    twins are marked "training", the entry is checked against the class's budget (`check_entry`)
    and trained through `training.train_seeds` (the engine, its disk cache and its training
    queue), and every twin still waiting gets the result: "done" with the mean test accuracy
    over the seeds, the seed spread (`seed_spread`) and the parameter count, or "failed" with a
    message a student can act on (never an exception for a training that failed; a store that
    cannot be reached raises its own `ClassroomError`).
    """
    entry = store.entry(code, entry_id)
    if entry.status == "done":
        return entry
    twin = done_twin(store, code, entry)
    if twin is not None:
        return store.update_entry(code, entry_id, status="done", accuracy=twin.accuracy, spread=twin.spread,
                                  parameters=twin.parameters, message=twin.message)
    waiting = [other.entry_id for other in store.entries(code)
               if other.config_key == entry.config_key and other.entry_id != entry_id and other.status == "queued"]
    for other_id in (entry_id, *waiting):
        store.update_entry(code, other_id, status="training")
    parameters: int | None = None
    try:
        budget = LeaderboardBudget.from_mapping(store.class_info(code).budget)
        parameters = check_entry(entry.config, budget)
        config = entry_train_config(entry.config, budget)
        results = training.train_seeds(config, budget.seeds, on_progress, use_cache=True)
        problem = _unfinished_message(results, budget.seeds)
        if problem is None:
            accuracies = [float(result.test_accuracy) for result in results]
            outcome: dict[str, Any] = {"status": "done", "accuracy": sum(accuracies) / len(accuracies),
                                       "spread": seed_spread(accuracies), "parameters": parameters}
        else:
            outcome = {"status": "failed", "parameters": parameters, "message": _bounded(store, problem)}
    except CnnvizError as error:
        outcome = {"status": "failed", "parameters": parameters, "message": _bounded(store, str(error))}
    except Exception:  # noqa: BLE001 - the student gets a retry, the server's log the traceback.
        logger.exception("leaderboard entry %s of class %s failed", entry_id, code[:4])
        outcome = {"status": "failed", "parameters": parameters, "message": FAILED_UNEXPECTEDLY}
    updated = store.update_entry(code, entry_id, **outcome)
    for other in store.entries(code):
        if other.config_key == entry.config_key and other.entry_id != entry_id \
                and (other.entry_id in waiting or other.status == "queued"):
            store.update_entry(code, other.entry_id, **outcome)
    return updated


# --- the board ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoardRow:
    """One row of the board as a page shows it (`name` raw: show it as text)."""

    entry_id: int
    rank: int | None
    name: str
    stack: str
    settings: str
    parameters: int | None
    accuracy: float | None
    spread: float | None
    status: str
    message: str
    student_id: str

    @property
    def accuracy_text(self) -> str:
        if self.accuracy is None:
            return ""
        return f"{self.accuracy:.1%}" + ("" if self.spread is None else f" ± {self.spread:.1%}")


def board(entries: Sequence[Entry]) -> list[BoardRow]:
    """The trained entries ranked (ties share a rank), then the others in submission order."""
    ranked = rank_entries(list(entries))
    ranks = {row.entry.entry_id: row.rank for row in ranked}
    ordered = [row.entry for row in ranked] + [e for e in entries if e.entry_id not in ranks]
    return [BoardRow(e.entry_id, ranks.get(e.entry_id), e.name, describe_stack(e.config), describe_settings(e.config),
                     e.parameters, e.accuracy, e.spread, e.status, e.message, e.student_id) for e in ordered]
