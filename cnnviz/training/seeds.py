"""Several seeds of one configuration: `train_seeds(config, seeds)` -> one `TrainResult` per seed.

Seed s trains `config.replace(seed=s)`: its own initial weights, data order and augmentation. A
seed already in the disk cache is read from it; the others train through the engine. Every
experiment that states a verdict trains its variants through this function, so that the spread
across seeds can be shown and judged (`cnnviz.verdicts`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cnnviz.errors import SettingsError
from cnnviz.training import engine
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


def seed_configs(config: TrainConfig, seeds: Sequence[int] | int) -> list[TrainConfig]:
    """The configuration of each seed (the warm start, if any, keeps its own seed)."""
    return [config.replace(seed=seed) for seed in seed_list(seeds)]


def train_seeds(config: TrainConfig, seeds: Sequence[int] | int = DEFAULT_SEEDS,
                on_progress: OnProgress | None = None, *, data: Any = None, use_cache: bool | None = None,
                source: str | None = None) -> list[TrainResult]:
    """Train `config` once per seed and return the results in the seeds' order.

    `on_progress` sees each seed's progress with `metrics["seed_index"]` and `metrics["seeds"]`
    added; returning False stops the seed that is training (its result says "stopped") and the
    seeds after it are not trained.
    """
    configs = seed_configs(config, seeds)
    results: list[TrainResult] = []
    for index, seed_config in enumerate(configs):
        report: OnProgress | None = None
        if on_progress is not None:
            def report(progress: Progress, index: int = index) -> Any:
                metrics = {**progress.metrics, "seed_index": float(index), "seeds": float(len(configs))}
                return on_progress(dataclasses.replace(progress, metrics=metrics))
        result = engine.train(seed_config, report, data=data, use_cache=use_cache, source=source)
        results.append(result)
        if result.stopped_reason != "finished":
            break
    return results
