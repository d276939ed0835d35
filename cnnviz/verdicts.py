"""Verdicts that survive a change of seed: the spread of several seeds, and what a difference says.

Every experiment page that compares two things ("A beats B", "no measurable difference") calls
`compare`, so one rule decides when the numbers support a verdict. The uncertainty of a measured
accuracy has two parts:

- training randomness: the spread of the accuracy across seeds (initial weights, data order,
  augmentation), estimated from the seeds' sample variance s²; the mean of n seeds varies by s²/n;
- test sampling: a finite test set of N images measures an accuracy p with a binomial variance
  p (1 - p) / N. Every seed is measured on the same test set, so this part does not shrink with
  more seeds; it is treated as known (no degrees of freedom are spent on it).

The rule, for one variant (`spread`) and for a difference of two (`compare`):

- variance of a mean: v = s²/n + p (1 - p)/N (the second term only when `test_images` is given);
- variance of a difference: v_A + v_B. The two test-sampling terms are added as if A and B had
  been measured on independent test sets. When they share one, their errors are positively
  correlated and the true variance is smaller, so the verdicts are conservative, never bolder;
- blocked seeds (`seed_variance`, `test_variance`): when every seed trains every variant of an
  experiment (on the same images, in the same order, from the same initial weights where the
  shapes agree) and all are measured on one shared test set, a seed is a block of a randomized
  complete block design. The seed part of a difference is then σ²(1/n_A + 1/n_B), σ² the residual
  variance of the two-way table variants × seeds (`block_residual_variance`, (V - 1)(n - 1)
  degrees of freedom: what a seed does to all variants alike cancels), and the test-sampling part
  is the paired one, var over images of the per-image difference in hits / N
  (`paired_test_variance`): images that both variants get right, or both wrong, carry no error;
- the 95 % interval is mean ± t·sqrt(v), with t from Student's t at the Welch-Satterthwaite degrees
  of freedom of the seed parts, (Σ s²/n)² / Σ ((s²/n)² / (n - 1)) (the known test-sampling part
  adds to the numerator only). Without `test_images` this is exactly Welch's t interval (and for
  one variant the usual t interval of a mean); when the seeds agree exactly, the normal quantile;
- with fewer than 2 seeds on either side the seed spread is unknown and the verdict is "undecided".

The verdict is, in this order,
- "no measurable difference" when the whole interval lies within ±`margin`: whatever the
  difference is, it is too small to matter for the lesson (this comes first, so that a tiny but
  precisely measured difference, such as 0.47 s against 0.48 s per epoch, is not a "win");
- "better" / "worse" when the whole interval lies above / below zero (for times, with
  `higher_is_better=False`, below zero is "better");
- "undecided" otherwise, with what would settle it (more seeds, more test images, a longer budget).

The text states only what the numbers show; no cause is attached to a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

VerdictKind = Literal["better", "worse", "no measurable difference", "undecided"]
VERDICT_KINDS: tuple[VerdictKind, ...] = ("better", "worse", "no measurable difference", "undecided")

CONFIDENCE = 0.95
ACCURACY_MARGIN = 0.02  # Two percentage points: smaller differences do not change what a lesson teaches.
MIN_SEEDS = 2  # A spread needs at least two seeds.


@dataclass(frozen=True)
class Spread:
    """Several seeds' results for one variant: each value, their mean and a 95 % interval of the mean."""

    values: tuple[float, ...]
    mean: float
    low: float
    high: float
    standard_error: float

    @property
    def seeds(self) -> int:
        return len(self.values)


def _test_sampling_variance(mean: float, test_images: int | None) -> float:
    if not test_images:
        return 0.0
    p = min(max(mean, 0.0), 1.0)
    return p * (1.0 - p) / test_images


def _seed_variance(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / (n - 1)


def _seed_part(values: Sequence[float]) -> tuple[float, float]:
    """(s²/n, its Satterthwaite weight (s²/n)²/(n - 1)) of one side; (0, 0) for a single seed."""
    n = len(values)
    variance = _seed_variance(values)
    if math.isnan(variance):
        return 0.0, 0.0
    part = variance / n
    return part, part * part / (n - 1)


def _quantile(variance: float, satterthwaite: float) -> float:
    """The two-sided 95 % quantile: Student's t at the Welch-Satterthwaite degrees of freedom."""
    from scipy import stats  # Here, not at import: scipy.stats costs more to import than Streamlit.

    level = 0.5 + CONFIDENCE / 2
    if satterthwaite <= 0.0 or variance <= 0.0:
        return float(stats.norm.ppf(level))
    return float(stats.t.ppf(level, variance * variance / satterthwaite))


def spread(values: Sequence[float], *, test_images: int | None = None) -> Spread:
    """The mean of `values` (one per seed) with a 95 % interval combining seed spread and test sampling.

    With a single seed only test sampling is known, so the interval is that of one test set (and
    `compare` will not decide anything from it).
    """
    if len(values) == 0:  # `not values` fails for a NumPy array.
        raise ValueError("A spread needs at least one value.")
    clean = tuple(float(v) for v in values)
    mean = sum(clean) / len(clean)
    seed_part, weight = _seed_part(clean)
    test_part = _test_sampling_variance(mean, test_images)
    variance = seed_part + test_part
    se = math.sqrt(variance)
    t = _quantile(variance, weight)
    return Spread(values=clean, mean=mean, low=mean - t * se, high=mean + t * se, standard_error=se)


@dataclass(frozen=True)
class Verdict:
    """What the numbers say about A against B, for one factor."""

    factor: str  # What was compared (a stable name: "activation", "pooling", "optimizer", ...).
    a: str
    b: str
    kind: VerdictKind  # About A: "better" means A beats B.
    difference: float  # mean(A) - mean(B), in the values' units (accuracy as a fraction).
    low: float  # 95 % interval of the difference.
    high: float
    seeds: tuple[int, int]
    text: str

    def to_json(self) -> dict[str, object]:
        return {"factor": self.factor, "kind": self.kind, "text": self.text, "a": self.a, "b": self.b,
                "difference": self.difference, "interval": [self.low, self.high], "seeds": list(self.seeds)}


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def compare(factor: str, a: str, a_values: Sequence[float], b: str, b_values: Sequence[float], *,
            test_images: int | None = None, margin: float = ACCURACY_MARGIN,
            higher_is_better: bool = True, unit: Literal["points", "seconds"] = "points",
            seed_variance: tuple[float, int] | None = None, test_variance: float | None = None) -> Verdict:
    """The verdict on A against B from each side's per-seed values (accuracies, or seconds).

    `test_images` (for accuracies) adds the test set's sampling error; `margin` is the size of a
    difference that does not matter; for times pass `higher_is_better=False, unit="seconds"` and a
    margin in seconds. For an experiment in which every seed trains every variant (see the module
    docstring, "blocked seeds"): `seed_variance` = (variance of one seed's value, its degrees of
    freedom) from `block_residual_variance`, and `test_variance` = the test-sampling variance of
    this difference on the shared test set from `paired_test_variance`; each replaces its default.
    """
    sa, sb = spread(a_values, test_images=test_images), spread(b_values, test_images=test_images)
    difference = sa.mean - sb.mean
    n_a, n_b = len(sa.values), len(sb.values)
    if min(n_a, n_b) < MIN_SEEDS:
        kind: VerdictKind = "undecided"
        low = high = difference
        settle = f"train each with at least {MIN_SEEDS} seeds to measure the spread"
    else:
        if seed_variance is not None:
            variance_of_one, degrees = seed_variance
            seed_part = variance_of_one * (1.0 / n_a + 1.0 / n_b)
            weight = seed_part * seed_part / degrees if degrees > 0 else 0.0
        else:
            (part_a, weight_a), (part_b, weight_b) = _seed_part(sa.values), _seed_part(sb.values)
            seed_part, weight = part_a + part_b, weight_a + weight_b
        if test_variance is None:
            test_variance = (_test_sampling_variance(sa.mean, test_images)
                             + _test_sampling_variance(sb.mean, test_images))
        variance = seed_part + test_variance
        half = _quantile(variance, weight) * math.sqrt(variance)
        low, high = difference - half, difference + half
        if -margin <= low and high <= margin:
            kind = "no measurable difference"
        elif low > 0:
            kind = "better" if higher_is_better else "worse"
        elif high < 0:
            kind = "worse" if higher_is_better else "better"
        else:
            kind = "undecided"
        settle = (f"more seeds (now {min(n_a, n_b)}), more test images (now {test_images:,}) or a longer budget "
                  "would settle it" if test_images else f"more seeds (now {min(n_a, n_b)}) would settle it")
    if unit == "points":
        measured = (f"{a} {100 * sa.mean:.1f} % against {b} {100 * sb.mean:.1f} % "
                    f"(difference {_points(difference)} points, 95 % interval {_points(low)} to {_points(high)}; "
                    f"{n_a} and {n_b} seeds)")
        small = f"{100 * margin:.0f} points"
    else:
        measured = (f"{a} {sa.mean:.2f} s against {b} {sb.mean:.2f} s (difference {difference:+.2f} s, "
                    f"95 % interval {low:+.2f} to {high:+.2f} s; {n_a} and {n_b} runs)")
        small = f"{margin:g} s"
    if kind == "better":
        text = f"{a} beats {b}: {measured}."
    elif kind == "worse":
        text = f"{a} does worse than {b}: {measured}."
    elif kind == "no measurable difference":
        text = f"No measurable difference between {a} and {b} (the interval lies within ±{small}): {measured}."
    else:
        text = f"Undecided: {measured}. The difference is within the spread; {settle}."
    return Verdict(factor=factor, a=a, b=b, kind=kind, difference=difference, low=low, high=high,
                   seeds=(n_a, n_b), text=text)


def block_residual_variance(table: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(variance of one seed's value, degrees of freedom) when every seed trained every variant.

    `table[v][i]` is variant v's value for seed i (the same seeds, in the same order, for every
    variant). Each seed is a block: what seed i does to every variant alike (its training images
    and their order, its initial weights) is its block effect, and what remains after the variant
    means and the seed effects is the residual, pooled over all variants: the two-way analysis of a
    randomized complete block design, with (V - 1)(n - 1) degrees of freedom.
    """
    rows = [[float(v) for v in row] for row in table]
    variants, seeds = len(rows), len(rows[0]) if rows else 0
    if variants < 2 or seeds < 2 or any(len(row) != seeds for row in rows):
        raise ValueError("A block analysis needs at least two variants with the same two or more seeds each.")
    grand = sum(map(sum, rows)) / (variants * seeds)
    variant_means = [sum(row) / seeds for row in rows]
    seed_means = [sum(row[i] for row in rows) / variants for i in range(seeds)]
    residual = sum((rows[v][i] - variant_means[v] - seed_means[i] + grand) ** 2
                   for v in range(variants) for i in range(seeds))
    degrees = (variants - 1) * (seeds - 1)
    return residual / degrees, degrees


def paired_test_variance(hits_a: npt.ArrayLike, hits_b: npt.ArrayLike) -> float:
    """The test-sampling variance of mean accuracy A minus mean accuracy B on one shared test set.

    `hits_a[i][j]`: whether seed i's model A classified test image j correctly (the same N images
    for every seed and both variants). Per image, d_j = (share of A's seeds right) - (share of B's
    seeds right); the mean difference is the mean of d over the images, whose sampling variance is
    var(d) / N. Images both get right (or both wrong) add nothing: this is the paired form of the
    binomial error, smaller than the independent p(1 - p)/N + q(1 - q)/N whenever A and B agree.
    """
    a = np.asarray(hits_a, dtype=np.float64).mean(axis=0)
    b = np.asarray(hits_b, dtype=np.float64).mean(axis=0)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("Both variants need the same test images (two or more).")
    return float(np.var(a - b, ddof=1) / a.size)


def paired_test_variance_of(hits_a: Sequence[npt.ArrayLike | None],
                            hits_b: Sequence[npt.ArrayLike | None]) -> float | None:
    """`paired_test_variance` of two variants' runs (one hits array per seed), or None when a run has
    no hits or the runs were scored on test sets of different sizes: the caller then leaves
    `compare` its independent default. (Whether the runs saw the *same* images is the caller's
    to know.)"""
    runs = [*hits_a, *hits_b]
    if not hits_a or not hits_b or any(h is None for h in runs):
        return None
    arrays = [np.asarray(h) for h in runs]
    if len({a.shape for a in arrays}) != 1:
        return None
    return paired_test_variance(np.stack(arrays[:len(hits_a)]), np.stack(arrays[len(hits_a):]))


@dataclass(frozen=True)
class VariantResult:
    """One variant of an experiment: its per-seed test accuracies and its training budget."""

    name: str
    seeds: tuple[int, ...]
    test_accuracy: tuple[float, ...]
    updates: int  # Weight updates per seed (the budget, stated on the page).
    test_images: int
    extra: dict[str, object] = field(default_factory=dict)  # e.g. {"seconds_per_epoch": [...]}.

    @property
    def spread(self) -> Spread:
        return spread(self.test_accuracy, test_images=self.test_images)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "seeds": list(self.seeds), "test_accuracy": list(self.test_accuracy),
                "updates": self.updates, "test_images": self.test_images, **self.extra}


@dataclass(frozen=True)
class ExperimentReport:
    """What `run_default_experiment` returns and `python -m cnnviz experiment NAME` prints."""

    name: str
    variants: tuple[VariantResult, ...]
    verdicts: tuple[Verdict, ...]

    def to_json(self) -> dict[str, object]:
        return {"experiment": self.name, "variants": [v.to_json() for v in self.variants],
                "verdicts": [v.to_json() for v in self.verdicts]}

    def table_text(self) -> str:
        """The variants (mean and interval over seeds) and the verdicts, for a terminal."""
        width = max([len(v.name) for v in self.variants] + [7])
        lines = [f"{'variant':<{width}}  seeds  updates  mean %  95 % interval    per seed %"]
        for v in self.variants:
            s = v.spread
            per_seed = " ".join(f"{100 * a:.1f}" for a in v.test_accuracy)
            lines.append(f"{v.name:<{width}}  {len(v.seeds):>5}  {v.updates:>7}  {100 * s.mean:6.1f}  "
                         f"{100 * s.low:5.1f} to {100 * s.high:5.1f}    {per_seed}")
        lines.append("")
        lines += [f"[{v.factor}] {v.kind}: {v.text}" for v in self.verdicts]
        return "\n".join(lines)
