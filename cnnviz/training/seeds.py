"""Several seeds of one configuration: `train_seeds(config, seeds)` -> one `TrainResult` per seed.

Seed s trains `config.replace(seed=s)`: its own initial weights, data order and augmentation. A
seed already in the disk cache is read from it; the others train together in one vectorised
model (`seed_stack`) when the configuration allows it, else one after another through the engine. Every
experiment that states a verdict trains its variants through this function, so that the spread
across seeds can be shown and judged (`cnnviz.verdicts`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cnnviz.errors import SettingsError
from cnnviz.training import cache, engine, inputs, seed_stack
from cnnviz.training.config import TrainConfig
from cnnviz.training.progress import OnProgress
from cnnviz.training.results import Progress, TrainResult

DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
MAX_SEEDS = 10


def seed_list(seeds: Sequence[int] | int) -> tuple[int, ...]:
    """Seeds as a tuple of distinct non-negative integers; an int n means seeds 0..n-1."""
    chosen = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    if not chosen:
        raise SettingsError("Choose at least one seed.")
    if len(chosen) > MAX_SEEDS:
        raise SettingsError(f"At most {MAX_SEEDS} seeds can train at once, not {len(chosen)}.")
    if len(set(chosen)) != len(chosen) or min(chosen) < 0:
        raise SettingsError(f"Seeds must be distinct whole numbers of at least 0, not {list(chosen)}.")
    return chosen


def seed_configs(config: TrainConfig, seeds: Sequence[int] | int, *,
                 warm_start_per_seed: bool = False) -> list[TrainConfig]:
    """The configuration of each seed. The warm start, if any, keeps its own seed, or with
    `warm_start_per_seed` takes the seed too (seed s copies from the model pre-trained with seed s)."""
    if warm_start_per_seed and config.warm_start is not None:
        warm = config.warm_start
        return [config.replace(seed=seed, warm_start=warm.replace(seed=seed)) for seed in seed_list(seeds)]
    return [config.replace(seed=seed) for seed in seed_list(seeds)]


def train_seeds(config: TrainConfig, seeds: Sequence[int] | int = DEFAULT_SEEDS,
                on_progress: OnProgress | None = None, *, data: Any = None, use_cache: bool | None = None,
                source: str | None = None, warm_start_per_seed: bool = False,
                warm_results: Sequence[TrainResult] = ()) -> list[TrainResult]:
    """Train `config` once per seed and return the results in the seeds' order.

    Seeds found in the disk cache are read from it (`use_cache`, `data` and `source` as for
    `engine.train`). Two or more seeds left to train train together in one vectorised model
    (`cnnviz.training.seed_stack`: one training slot, one compiled program); each still ends as
    the `TrainResult` that `engine.train(config.replace(seed=s))` gives (to float tolerance) and
    is cached under its own config (its `seconds` and `history["seconds"]` are the group's wall
    time: the seeds shared it). Configurations the vectorised model does not cover
    (`seed_stack.unsupported_reason`: fast=False, augmentation, ...) train one seed after another
    through `engine.train`.

    A warm start (`config.warm_start`) is trained first, through this function and the cache:
    with `warm_start_per_seed` once per seed (seed s copies from its own pre-trained model, and
    those train together too), else once, shared by every seed. Frozen layers stay out of the
    trainable variables, as in `engine.train`. `warm_results` are finished results the caller
    already holds (say the pre-trainings it has just trained, on the same data): when every
    warm start that is needed is among them (by config), its model is copied from directly
    instead of being read from the disk cache again (a Keras load per seed and run).

    `on_progress` sees each seed's progress with `metrics["seed_index"]` and `metrics["seeds"]`
    added; seeds training together report as one group whose `seed_index` is its first seed's
    and whose `metrics["seeds_together"]` counts its seeds (running metrics are their means).
    Returning False stops the seeds that are training (their results say "stopped"). The list
    ends at the first seed that did not finish: the seeds after it are not trained one by one,
    and those that finished in its group are only stored in the cache.
    """
    configs = seed_configs(config, seeds, warm_start_per_seed=warm_start_per_seed)
    if use_cache is None:
        use_cache = data is None
    results: dict[int, TrainResult] = {}
    pending = list(range(len(configs)))
    if len(configs) > 1 and _may_train_together(config):
        if use_cache:
            if source is None:
                source = inputs.data_source(config, data)
            for index in list(pending):
                if cache.is_cached(configs[index], data=data, source=source):
                    results[index] = engine.train(configs[index], _seed_reporter(on_progress, index, len(configs)),
                                                  data=data, use_cache=True, source=source)
                    pending.remove(index)
        group = _together(configs, pending, data)
        if group is not None:
            warm_models = _warm_models([configs[i] for i in pending], on_progress, data, use_cache, source,
                                       warm_results)
            together: list[TrainResult] = []
            if warm_models is None or len(warm_models) == len(pending):  # else the warm start was stopped
                together = seed_stack.train_together(
                    [configs[i] for i in pending], [prepared for prepared, _ in group],
                    _seed_reporter(on_progress, pending[0], len(configs)), warm_models=warm_models)
            for index, result, (_, images) in zip(pending, together, group):
                result.data_source = inputs.data_source(configs[index], images)
                if use_cache and result.stopped_reason == "finished":
                    cache.store_cached(result)
                results[index] = result
            pending = []
    for index in pending:
        if any(r.stopped_reason != "finished" for r in results.values()):
            break
        results[index] = engine.train(configs[index], _seed_reporter(on_progress, index, len(configs)),
                                      data=data, use_cache=use_cache, source=source)
    ordered: list[TrainResult] = []
    for index in range(len(configs)):
        if index not in results:
            break
        ordered.append(results[index])
        if results[index].stopped_reason != "finished":
            break
    return ordered


def _seed_reporter(on_progress: OnProgress | None, index: int, count: int) -> OnProgress | None:
    """`on_progress` with `metrics["seed_index"]` and `metrics["seeds"]` added."""
    if on_progress is None:
        return None

    def report(progress: Progress) -> Any:
        metrics = {**progress.metrics, "seed_index": float(index), "seeds": float(count)}
        return on_progress(dataclasses.replace(progress, metrics=metrics))
    return report


def _may_train_together(config: TrainConfig) -> bool:
    """The settings-only part of `seed_stack.unsupported_reason` (no data needed)."""
    return (config.fast and not config.record_gradients
            and not any(strength > 0 for _, strength in config.augmentation))


def _warm_models(configs: Sequence[TrainConfig], on_progress: OnProgress | None, data: Any,
                 use_cache: bool, source: str | None, held: Sequence[TrainResult] = ()) -> list[Any] | None:
    """Each config's pre-trained Keras model to copy from (None without a warm start): taken from
    `held` (finished results the caller holds) when every warm start is among them; else the warm
    starts that differ only in their seed train together (through the cache), as one call of
    `train_seeds`; a shared warm start trains once. Fewer models than configs: it was stopped."""
    first = configs[0]
    if first.warm_start is None or not first.warm_start_layers:
        return None
    held_models = {result.config.key(): result.model for result in held if result.stopped_reason == "finished"}
    if held_models and all(c.warm_start is not None and c.warm_start.key() in held_models for c in configs):
        return [held_models[c.warm_start.key()] for c in configs if c.warm_start is not None]
    warm_progress: OnProgress | None = None
    if on_progress is not None:
        report = on_progress

        def warm_progress(p: Progress) -> Any:
            # A wait for a training slot stays "waiting", so its queue position still shows.
            return report(p if p.phase == "waiting" else dataclasses.replace(p, phase="warm start"))
    warm = [c.warm_start for c in configs if c.warm_start is not None]
    same_source = data is not None or first.warm_start.dataset == first.dataset
    warm_source = source if same_source else None
    if all(w == warm[0] for w in warm):
        result = engine.train(warm[0], warm_progress, data=data, use_cache=use_cache, source=warm_source)
        results = [result] * len(configs) if result.stopped_reason == "finished" else []
    elif all(w == warm[0].replace(seed=w.seed) for w in warm):
        results = train_seeds(warm[0], [w.seed for w in warm], warm_progress, data=data, use_cache=use_cache,
                              source=warm_source)
    else:
        results = [engine.train(w, warm_progress, data=data, use_cache=use_cache, source=warm_source) for w in warm]
    finished = []
    for result in results:
        if result.stopped_reason != "finished":
            break
        finished.append(result.model)
    return finished


def _together(configs: Sequence[TrainConfig], pending: Sequence[int],
              data: Any) -> list[tuple[inputs.Prepared, Any]] | None:
    """Each pending seed's (prepared data, images) when they can train together, else None."""
    if len(pending) < 2:
        return None
    if data is not None:
        shared = inputs.prepare(configs[pending[0]], data)
        group = [(shared, data) for _ in pending]
    else:
        group = []
        by_images: dict[int, inputs.Prepared] = {}  # whole splits are the same object for every seed
        for index in pending:
            images = inputs.load_dataset(configs[index])
            if id(images) not in by_images:
                by_images[id(images)] = inputs.prepare(configs[index], images)
            group.append((by_images[id(images)], images))
    first = group[0][0]
    if seed_stack.unsupported_reason(configs[pending[0]], first.image_shape) is not None:
        return None
    if any(p.x_train.shape != first.x_train.shape or p.x_test.shape != first.x_test.shape for p, _ in group):
        return None  # a class filter left the seeds' subsets with different sizes
    return group
