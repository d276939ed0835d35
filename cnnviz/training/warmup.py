"""Warm-up: pre-train the default run of every training page into the disk cache.

A lecturer runs `python -m cnnviz warmup` once before class (or on deployment). Every page that
trains asks the engine for its default configurations; the engine finds them in the disk cache
(`cnnviz.training.load_cached`) and the results appear at once instead of after a minute of
training on a cold free-tier server.

The default configurations come from the same functions the pages call, one place per page:

- train page: `cnnviz.lessons.train.default_config()` (the page reads its widget defaults there);
- LeNet vs ReLU page: `lenet_vs_relu.comparison_configs(ComparisonSettings())`, all six models,
  each seed of `ComparisonSettings().seeds` (`training.seed_configs`);
- transfer page: `transfer.pretrain_config` for each default seed, `transfer.transfer_config` at
  the default freeze depth and `transfer.strategy_config` of `transfer.strategies_for` the split's
  similarity over the default size ladder and seeds, for the default split;
- augmentation lab: `augmentation.overfitting_variants()`, the four default variants, each with
  the lab's default seeds (`augmentation.DEFAULT_SEEDS`);
- explain page: the vanishing-gradients demonstration, `explain.demo_configs(VanishingSettings())`
  (four variants x its seeds; its default model is the train page's).

`tiny=True` swaps every page's sizes for tiny ones (a few hundred images, one epoch) that the
page's widgets can also select: for tests and CI smoke runs.
TensorFlow is imported only when something trains (inside `cnnviz.training`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cnnviz import data, training
from cnnviz.lessons import augmentation, lenet_vs_relu, transfer
from cnnviz.lessons import explain as explain_lesson
from cnnviz.lessons import train as train_lesson
from cnnviz.lessons.lenet_vs_relu import ComparisonSettings
from cnnviz.lessons.transfer import ExperimentSettings
from cnnviz.training import Progress, TrainConfig, TrainResult, cache

PAGES: tuple[str, ...] = ("train", "lenet_vs_relu", "transfer", "augmentation", "explain")
PAGE_TITLES = {
    "train": "Train a small CNN",
    "lenet_vs_relu": "tanh LeNet vs ReLU CNN",
    "transfer": "Transfer learning",
    "augmentation": "Augmentation & regularisation",
    "explain": "What the network looks at",
}

# Tiny sizes (selectable in each page's widgets) for tests and CI smoke runs.
TINY_TRAIN_IMAGES = 300
TINY_TEST_IMAGES = 100
TINY_EPOCHS = 1
# The comparison page's tiny run: its smallest training-set and update choices, two seeds.
TINY_LENET_TRAIN_IMAGES = 256
TINY_LENET_UPDATES = 8
TINY_LENET_SEEDS = (0, 1)


def train_page_config(*, tiny: bool = False) -> TrainConfig:
    """The train page's default run (`cnnviz.lessons.train.default_config`), tiny or not."""
    config = train_lesson.default_config()
    if tiny:
        config = config.replace(limit_train=TINY_TRAIN_IMAGES, limit_test=TINY_TEST_IMAGES, epochs=TINY_EPOCHS)
    return config


# --------------------------------------------------------------------------------------------
# Every page's default runs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WarmupItem:
    """One model to pre-train: which page asks for it, a readable label and its config."""

    page: str
    label: str
    config: TrainConfig


def lenet_vs_relu_settings(*, tiny: bool = False) -> ComparisonSettings:
    """The comparison page's default `ComparisonSettings` (tiny: 256/100 images, 8 updates, 2 seeds)."""

    if tiny:
        return ComparisonSettings(limit_train=TINY_LENET_TRAIN_IMAGES, limit_test=TINY_TEST_IMAGES,
                                  updates=TINY_LENET_UPDATES, seeds=TINY_LENET_SEEDS)
    return ComparisonSettings()


def _lenet_vs_relu_items(tiny: bool) -> list[WarmupItem]:

    settings = lenet_vs_relu_settings(tiny=tiny)
    return [WarmupItem("lenet_vs_relu", f"{lenet_vs_relu.variant(key).label}, seed {seed_config.seed}", seed_config)
            for key, config in lenet_vs_relu.comparison_configs(settings).items()
            for seed_config in training.seed_configs(config, settings.seeds)]


# Tiny transfer experiment: options the transfer page's sliders offer.
TINY_TRANSFER: dict[str, Any] = {"pretrain_per_class": 20, "test_per_class": 10, "pretrain_epochs": 1,
                 "transfer_per_class": 10, "transfer_epochs": 1, "min_transfer_updates": 8}
TINY_TRANSFER_LADDER: dict[str, int] = {"largest": 30, "smallest": 6, "steps": 2}


def transfer_settings(*, tiny: bool = False) -> ExperimentSettings:
    """The transfer page's default `ExperimentSettings` (tiny: a few images per class, one epoch)."""

    return ExperimentSettings(**TINY_TRANSFER) if tiny else ExperimentSettings()


def transfer_default_split() -> transfer.ClassSplit:
    """The transfer page's default class split (the seeds' three held-back classes)."""

    return transfer.make_split(transfer.DEFAULT_PRETRAIN_CLASSES, transfer.DEFAULT_TRANSFER_CLASSES,
                               data.spec("fashion_mnist").class_names)


def _transfer_full_per_class(split: transfer.ClassSplit, settings: ExperimentSettings) -> int:
    """Training images of the rarest transfer class in the data the page loads (no limit)."""
    dataset = data.load(settings.dataset, seed=settings.seed)
    counts = np.bincount(np.asarray(dataset.y_train), minlength=len(split.class_names))
    return int(min(counts[c] for c in split.transfer))


def transfer_sizes(split: transfer.ClassSplit, settings: ExperimentSettings, *, tiny: bool = False,
                   full_per_class: int | None = None) -> tuple[int, ...]:
    """The strategy comparison's default transfer-set sizes, as the page computes them."""

    k = len(split.transfer)
    if full_per_class is None:
        full_per_class = _transfer_full_per_class(split, settings)
    if not tiny:
        return transfer.default_sizes(k, full_per_class)
    largest = min(TINY_TRANSFER_LADDER["largest"], full_per_class * k)
    return transfer.size_ladder(largest, k, smallest=min(TINY_TRANSFER_LADDER["smallest"], largest),
                                steps=TINY_TRANSFER_LADDER["steps"])


def _transfer_items(tiny: bool, full_per_class: int | None = None) -> list[WarmupItem]:

    split, settings = transfer_default_split(), transfer_settings(tiny=tiny)
    k = len(split.transfer)
    stack = transfer.bottleneck_stack(settings.input_shape, k)
    seeds = training.DEFAULT_SEEDS  # The page's default seed count: seeds 0..2.
    items = [WarmupItem("transfer", f"pre-training (bottleneck CNN, seen classes), seed {seed}",
                        transfer.pretrain_config(split, replace(settings, seed=seed))) for seed in seeds]
    items.append(WarmupItem("transfer", "transfer at the default freeze depth",
                            transfer.transfer_config(split, settings, freeze_layers=transfer.conv_block_depth(stack),
                                                     per_class=settings.transfer_per_class)))
    similarity = transfer.judge_similarity(split, data.spec(settings.dataset).class_families).verdict
    for size in transfer_sizes(split, settings, tiny=tiny, full_per_class=full_per_class):
        for strategy in transfer.strategies_for(similarity):
            for seed in seeds:
                items.append(WarmupItem(
                    "transfer", f"strategy {transfer.STRATEGY_LABELS[strategy].lower()}, {size} images, seed {seed}",
                    transfer.strategy_config(strategy, split, replace(settings, seed=seed), size // k,
                                             num_images=size)))
    return items


# Tiny overfitting runs: the lab's smallest image choice and its shortest run.
TINY_OVERFIT: dict[str, Any] = {"limit_train": 200, "epochs": 2}


def _augmentation_items(tiny: bool) -> list[WarmupItem]:

    variants = augmentation.overfitting_variants(**(TINY_OVERFIT if tiny else {}))
    return [WarmupItem("augmentation", f"{variant.title}, seed {seed}", variant.config.replace(seed=seed))
            for variant in variants for seed in augmentation.DEFAULT_SEEDS]


def _explain_items(tiny: bool) -> list[WarmupItem]:

    settings = explain_lesson.VanishingSettings.tiny() if tiny else explain_lesson.VanishingSettings()
    return [WarmupItem("explain", f"vanishing gradients: {explain_lesson.DEPTH_VARIANTS[kind]}, seed {config.seed}",
                       config)
            for kind in explain_lesson.DEPTH_VARIANTS for config in explain_lesson.demo_configs(settings, [kind])]


def page_items(page: str, *, tiny: bool = False) -> list[WarmupItem]:
    """The default runs of one page (see `PAGES`), in the order the page trains them."""
    if page == "train":
        return [WarmupItem("train", "default network (ReLU CNN)", train_page_config(tiny=tiny))]
    if page == "lenet_vs_relu":
        return _lenet_vs_relu_items(tiny)
    if page == "transfer":
        return _transfer_items(tiny)
    if page == "augmentation":
        return _augmentation_items(tiny)
    if page == "explain":
        return _explain_items(tiny)
    raise ValueError(f"Unknown page {page!r}; choose one of {', '.join(PAGES)}.")


def warmup_plan(only: Sequence[str] | None = None, *, tiny: bool = False) -> list[WarmupItem]:
    """Every page's default runs (or only those of `only`), each config once."""
    pages = list(PAGES) if not only else list(only)
    plan, seen = [], set()
    for page in pages:
        for item in page_items(page, tiny=tiny):
            key = item.config.key()
            if key not in seen:
                seen.add(key)
                plan.append(item)
    return plan


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WarmupRecord:
    """What pre-training one item did: seconds taken, whether it was already cached, how it ended."""

    item: WarmupItem
    seconds: float
    from_cache: bool
    stopped_reason: str
    test_accuracy: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.stopped_reason == "finished"


def _progress_printer(out: Callable[[str], Any], prefix: str) -> Callable[[Progress], bool]:
    """An `on_progress` that prints one line per finished epoch, and once when the run waits for a
    training slot or first trains the model it copies weights from (not when that one is cached)."""
    epochs_printed, phase_printed = 0, ""

    def on_progress(progress: Progress) -> bool:
        nonlocal epochs_printed, phase_printed
        done = len(progress.history_so_far.get("loss", []))
        announce = progress.phase == "waiting" or (progress.phase == "warm start" and "loss" in progress.metrics)
        if announce and progress.phase != phase_printed:
            what = "waiting for a training slot" if progress.phase == "waiting" else \
                "first training the model to copy weights from"
            out(f"{prefix}   {what}")
            phase_printed = progress.phase
        if progress.phase == "train":
            phase_printed = "train"
        if progress.phase == "train" and done > epochs_printed:
            epochs_printed = done
            accuracy = progress.history_so_far.get("val_accuracy", [float("nan")])[-1]
            out(f"{prefix}   epoch {done}/{progress.epochs}: validation accuracy {accuracy:.1%}")
        return True

    return on_progress


def _uncached_chain(config: TrainConfig) -> list[TrainConfig]:
    """The configs training `config` would train now: its missing warm starts (the one it copies
    from first, recursively) and itself, the deepest first, so every process locks them in one order."""
    chain = [config]
    ancestor = config.warm_start if config.warm_start_layers > 0 else None
    while ancestor is not None and not training.is_cached(ancestor):
        chain.append(ancestor)
        ancestor = ancestor.warm_start if ancestor.warm_start_layers > 0 else None
    return chain[::-1]


TrainFn = Callable[[TrainConfig, Callable[[Progress], bool] | None], TrainResult]


def _run_item(item: WarmupItem, prefix: str, out: Callable[[str], Any], train_fn: TrainFn, *,
              wait: bool) -> WarmupRecord | None:
    """Find or train one item under the locks of its entries; None when another warm-up holds one
    of them and `wait` is False (the caller comes back to it later)."""
    start = time.perf_counter()
    try:
        with contextlib.ExitStack() as locks:
            if not training.is_cached(item.config):
                for config in _uncached_chain(item.config):
                    if locks.enter_context(cache.entry_lock(config, blocking=False)):
                        continue
                    if not wait:
                        return None
                    out(f"{prefix}   waiting: another warm-up is training this model")
                    locks.enter_context(cache.entry_lock(config))
            # Another warm-up may have stored it while this one waited for the lock.
            cached = training.is_cached(item.config)
            result = train_fn(item.config, None if cached else _progress_printer(out, prefix))
    except Exception as error:  # noqa: BLE001 - one broken default must not stop the others.
        seconds = time.perf_counter() - start
        out(f"{prefix}   FAILED after {seconds:.1f} s: {type(error).__name__}: {error}")
        return WarmupRecord(item, seconds, False, "failed", float("nan"), error=f"{type(error).__name__}: {error}")
    return _checked_record(item, prefix, out, result, time.perf_counter() - start, cached)


def _checked_record(item: WarmupItem, prefix: str, out: Callable[[str], Any], result: TrainResult,
                    seconds: float, cached: bool) -> WarmupRecord:
    """The record of one item's run: ready only when it finished, is stored and is pinned."""
    record = WarmupRecord(item, seconds, cached, result.stopped_reason, float(result.test_accuracy))
    if result.stopped_reason != "finished":
        out(f"{prefix}   FAILED: the run ended early ({result.stopped_reason}) after {seconds:.1f} s; "
            "an unfinished run is not stored")
        return replace(record, error=f"the run ended early ({result.stopped_reason})")
    if not cached and not training.is_cached(item.config):
        reason = cache.unwritable_reason() or "the entry could not be written"
        out(f"{prefix}   FAILED: trained in {seconds:.1f} s but NOT stored in the disk cache: {reason}")
        return replace(record, error=f"not stored in the disk cache: {reason}")
    if not cache.pin(item.config):
        reason = cache.unwritable_reason() or "the entry is gone"
        out(f"{prefix}   FAILED: could not pin the stored model in the disk cache: {reason}")
        return replace(record, error=f"not pinned in the disk cache: {reason}")
    how = "already in the cache" if cached else "trained and stored"
    out(f"{prefix}   {how} in {seconds:.1f} s · test accuracy {result.test_accuracy:.1%}")
    return record


def run_warmup(items: Sequence[WarmupItem], *, out: Callable[[str], Any] = print,
               train_fn: TrainFn | None = None) -> list[WarmupRecord]:
    """Train (or find in the disk cache) every item, printing progress and the time per model,
    and pin each in the cache (`cache.pin`) so that student runs never prune it.

    A failing item is reported and skipped; the others still train. A model counts as ready only
    once it is stored and pinned: a run that ended early or could not be written is a failure.
    Each item trains under its entry's lock (`cache.entry_lock`): an item another warm-up is
    training is put aside and taken up again at the end (by then usually in the cache), so two
    warm-ups at once share the work and never train the same model twice.

    Consecutive items that are the seeds of one configuration (as `training.seed_configs` makes
    them) train together through `training.train_seeds`, as their page trains them: one
    vectorised model, each seed still stored under its own config. Each such item's time is
    the group's wall time divided by its number of seeds.
    """

    together = train_fn is None  # An injected train_fn trains one item at a time.
    if train_fn is None:
        train_fn = training.train
    records: dict[int, WarmupRecord] = {}
    total = len(items)
    put_aside: list[int] = []
    index = 0
    while index < total:
        group = _seed_group(items, index) if together else None
        if group is not None:
            grouped = _run_group(items, index, group, total, out)
            if grouped is not None:
                records.update(grouped)
                index += len(group[1])
                continue
        item, prefix = items[index], f"[{index + 1}/{total}]"
        out(f"{prefix} {PAGE_TITLES.get(item.page, item.page)}: {item.label} (config {item.config.key()[:8]})")
        record = _run_item(item, prefix, out, train_fn, wait=False)
        if record is None:
            out(f"{prefix}   another warm-up is training this model: coming back to it at the end")
            put_aside.append(index)
        else:
            records[index] = record
        index += 1
    for index in put_aside:
        item, prefix = items[index], f"[{index + 1}/{total}]"
        out(f"{prefix} back to {PAGE_TITLES.get(item.page, item.page)}: {item.label} "
            f"(config {item.config.key()[:8]})")
        record = _run_item(item, prefix, out, train_fn, wait=True)
        assert record is not None  # With wait=True every lock is taken.
        records[index] = record
    return [records[index] for index in range(total)]


def _seed_group(items: Sequence[WarmupItem], start: int) -> tuple[bool, list[int]] | None:
    """(warm_start_per_seed, seeds) when the items from `start` on (two or more) are the seeds of
    `items[start]`'s config in `training.seed_configs`' sense, else None."""
    first = items[start].config
    for per_seed in (False, True):
        seeds: list[int] = []
        for item in items[start:]:
            seed = item.config.seed
            if seed in seeds or item.page != items[start].page:
                break
            expected = training.seed_configs(first, [seed], warm_start_per_seed=per_seed)[0]
            if expected.key() != item.config.key():
                break
            seeds.append(seed)
        if len(seeds) >= 2:
            return per_seed, seeds
    return None


def _run_group(items: Sequence[WarmupItem], start: int, group: tuple[bool, list[int]], total: int,
               out: Callable[[str], Any]) -> dict[int, WarmupRecord] | None:
    """Train the seeds of one config together; None (nothing done) when another warm-up holds the
    lock of one of their entries: the caller then takes them one at a time."""
    per_seed, seeds = group
    indices = list(range(start, start + len(seeds)))
    first = items[start]
    prefix = f"[{start + 1}-{indices[-1] + 1}/{total}]"
    started = time.perf_counter()
    with contextlib.ExitStack() as locks:
        try:
            cached = {index: training.is_cached(items[index].config) for index in indices}
            for index in indices:
                if cached[index]:
                    continue
                for config in _uncached_chain(items[index].config):
                    if not locks.enter_context(cache.entry_lock(config, blocking=False)):
                        return None
        except OSError:
            return None  # A lock file that cannot be made: one item at a time reports it as FAILED.
        out(f"{prefix} {PAGE_TITLES.get(first.page, first.page)}: {first.label} and the other seeds "
            f"{', '.join(map(str, seeds[1:]))}, trained together (config {first.config.key()[:8]})")
        try:
            results = training.train_seeds(first.config, seeds, None if all(cached.values())
                                           else _progress_printer(out, prefix), warm_start_per_seed=per_seed)
        except Exception as error:  # noqa: BLE001 - one broken default must not stop the others.
            seconds = time.perf_counter() - started
            out(f"{prefix}   FAILED after {seconds:.1f} s: {type(error).__name__}: {error}")
            return {index: WarmupRecord(items[index], seconds / len(seeds), False, "failed", float("nan"),
                                        error=f"{type(error).__name__}: {error}") for index in indices}
    share = (time.perf_counter() - started) / len(seeds)
    records: dict[int, WarmupRecord] = {}
    for position, index in enumerate(indices):
        item, item_prefix = items[index], f"[{index + 1}/{total}]"
        if position >= len(results):  # train_seeds stops at the first seed that did not finish.
            out(f"{item_prefix}   FAILED: {item.label} was not trained (an earlier seed ended early)")
            records[index] = WarmupRecord(item, share, False, "stopped", float("nan"),
                                          error="not trained: an earlier seed of its group ended early")
            continue
        out(f"{item_prefix}   {item.label}:")
        records[index] = _checked_record(item, item_prefix, out, results[position], share, cached[index])
    return records


def summary(records: Sequence[WarmupRecord]) -> str:
    """One closing line: how many models are ready, how many failed, the total time."""
    ready = sum(record.ok for record in records)
    failed = len(records) - ready
    trained = sum(record.ok and not record.from_cache for record in records)
    seconds = sum(record.seconds for record in records)
    return (f"{ready} of {len(records)} models ready ({trained} trained now, {ready - trained} already cached), "
            f"{failed} failed, {seconds:.1f} s in all.")
