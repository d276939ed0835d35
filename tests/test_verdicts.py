"""cnnviz.verdicts: spreads and verdicts against independent oracles.

Oracles: scipy.stats' own t intervals (a mean's, Welch's and the pooled two-sample one) computed
from the raw values, a Monte Carlo simulation of the coverage, and hand-made data whose answer is
obvious (a large clear difference, a tiny one measured precisely, a single seed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cnnviz import verdicts
from cnnviz.verdicts import ExperimentReport, VariantResult, compare, spread

A = [0.812, 0.795, 0.823, 0.801]
B = [0.781, 0.770, 0.799]


def test_spread_without_test_images_is_the_t_interval_of_the_mean():
    result = spread(A)
    low, high = stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=stats.sem(A))
    assert result.mean == pytest.approx(np.mean(A))
    assert (result.low, result.high) == pytest.approx((low, high))
    assert result.seeds == 4


def test_compare_without_test_images_is_welchs_interval():
    verdict = compare("x", "A", A, "B", B)
    interval = stats.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert verdict.difference == pytest.approx(np.mean(A) - np.mean(B))
    assert (verdict.low, verdict.high) == pytest.approx((interval.low, interval.high))


def test_with_equal_seed_counts_and_equal_spreads_it_is_the_pooled_interval():
    a, b = [0.80, 0.82, 0.81], [0.76, 0.78, 0.77]  # Same sample variance: Welch = pooled.
    verdict = compare("x", "A", a, "B", b)
    interval = stats.ttest_ind(a, b, equal_var=True).confidence_interval(0.95)
    assert (verdict.low, verdict.high) == pytest.approx((interval.low, interval.high))


def test_test_sampling_widens_the_interval_by_the_binomial_variance():
    n = 2_000
    one = spread(A, test_images=n)
    p = np.mean(A)
    assert one.standard_error == pytest.approx(math.sqrt(np.var(A, ddof=1) / len(A) + p * (1 - p) / n))
    verdict = compare("x", "A", A, "B", B, test_images=n)
    plain = compare("x", "A", A, "B", B)
    assert verdict.low < plain.low and verdict.high > plain.high
    # Many test images: the binomial part vanishes and Welch's interval is back.
    huge = compare("x", "A", A, "B", B, test_images=10**12)
    assert (huge.low, huge.high) == pytest.approx((plain.low, plain.high), abs=1e-6)


def test_identical_seeds_leave_only_test_sampling_with_the_normal_quantile():
    result = spread([0.8, 0.8, 0.8], test_images=1_000)
    half = stats.norm.ppf(0.975) * math.sqrt(0.8 * 0.2 / 1_000)
    assert (result.low, result.high) == pytest.approx((0.8 - half, 0.8 + half))


def test_a_large_clear_difference_is_better_and_the_other_way_worse():
    high, low = [0.86, 0.87, 0.85], [0.70, 0.72, 0.71]
    verdict = compare("optimizer", "Adam", high, "SGD", low, test_images=1_000)
    assert verdict.kind == "better" and verdict.low > 0
    assert verdict.text.startswith("Adam beats SGD") and "+15.0 points" in verdict.text
    assert compare("optimizer", "SGD", low, "Adam", high, test_images=1_000).kind == "worse"


def test_a_tiny_difference_with_many_seeds_and_test_images_is_no_measurable_difference():
    rng = np.random.default_rng(0)
    a = list(0.850 + 0.002 * rng.standard_normal(10))
    b = list(0.848 + 0.002 * rng.standard_normal(10))
    verdict = compare("pooling", "max", a, "avg", b, test_images=100_000)
    assert verdict.kind == "no measurable difference"
    assert -0.02 <= verdict.low and verdict.high <= 0.02
    assert "No measurable difference" in verdict.text


def test_a_small_but_precise_difference_within_the_margin_is_not_a_win():
    # 0.47 s against 0.48 s per epoch, every run the same: precise, but below the threshold.
    verdict = compare("speed", "A", [0.47] * 3, "B", [0.48] * 3, margin=0.05, higher_is_better=False,
                      unit="seconds")
    assert verdict.kind == "no measurable difference"
    faster = compare("speed", "A", [0.20, 0.21, 0.22], "B", [0.50, 0.51, 0.49], margin=0.05,
                     higher_is_better=False, unit="seconds")
    assert faster.kind == "better" and "0.21 s against" in faster.text


def test_one_seed_is_undecided_and_says_what_would_settle_it():
    verdict = compare("activation", "ReLU", [0.9], "tanh", [0.5], test_images=10_000)
    assert verdict.kind == "undecided"
    assert "at least 2 seeds" in verdict.text


def test_overlapping_results_are_undecided_with_what_would_settle_it():
    verdict = compare("activation", "ReLU", [0.78, 0.83, 0.80], "tanh", [0.79, 0.76, 0.82], test_images=1_000)
    assert verdict.kind == "undecided" and verdict.low < 0 < verdict.high
    assert "more seeds (now 3), more test images (now 1,000)" in verdict.text


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """Monte Carlo oracle: seeds with a true spread, each measured on its own binomial test set."""
    rng = np.random.default_rng(1)
    true_a, true_b, seed_sd, n_test, seeds = 0.82, 0.80, 0.01, 2_000, 4
    covered = 0
    trials = 2_000
    for _ in range(trials):
        a = rng.binomial(n_test, np.clip(true_a + seed_sd * rng.standard_normal(seeds), 0, 1)) / n_test
        b = rng.binomial(n_test, np.clip(true_b + seed_sd * rng.standard_normal(seeds), 0, 1)) / n_test
        verdict = compare("x", "A", a, "B", b, test_images=n_test)
        covered += verdict.low <= true_a - true_b <= verdict.high
    # Conservative by design (the binomial part is counted twice: once inside the seeds' spread).
    assert 0.93 <= covered / trials <= 0.999


def test_every_kind_is_listed_and_the_json_has_the_stable_fields():
    verdict = compare("pooling", "max", [0.8, 0.81], "avg", [0.7, 0.71], test_images=1_000)
    assert verdict.kind in verdicts.VERDICT_KINDS
    data = verdict.to_json()
    assert {"factor", "kind", "text"} <= set(data) and data["factor"] == "pooling"
    assert data["interval"] == [verdict.low, verdict.high]


def test_an_experiment_report_prints_every_seed_and_every_verdict():
    a = VariantResult("A", (0, 1, 2), (0.80, 0.81, 0.82), updates=360, test_images=1_000, extra={"key": "a"})
    b = VariantResult("B", (0, 1, 2), (0.70, 0.71, 0.72), updates=360, test_images=1_000)
    verdict = compare("x", a.name, a.test_accuracy, b.name, b.test_accuracy, test_images=1_000)
    report = ExperimentReport("demo", (a, b), (verdict,))
    data = report.to_json()
    assert data["variants"][0] == {"name": "A", "seeds": [0, 1, 2], "test_accuracy": [0.80, 0.81, 0.82],
                                   "updates": 360, "test_images": 1_000, "key": "a"}
    assert data["verdicts"][0]["kind"] == "better"
    text = report.table_text()
    assert "80.0 81.0 82.0" in text and "[x] better" in text and "360" in text


def test_block_residual_variance_is_the_two_way_anova_residual():
    """Oracle: the residual mean square of a two-way ANOVA without interaction, computed as the
    total sum of squares minus the variant and seed sums of squares (a different formula)."""
    rng = np.random.default_rng(3)
    table = rng.normal(0.75, 0.02, (6, 3)) + rng.normal(0, 0.03, 3)[None, :]  # seed effects shared
    variance, degrees = verdicts.block_residual_variance(table.tolist())
    grand = table.mean()
    total = ((table - grand) ** 2).sum()
    between_variants = 3 * ((table.mean(axis=1) - grand) ** 2).sum()
    between_seeds = 6 * ((table.mean(axis=0) - grand) ** 2).sum()
    assert degrees == 5 * 2
    assert variance == pytest.approx((total - between_variants - between_seeds) / 10, rel=1e-9)
    # A seed effect common to every variant does not change it.
    shifted = table + np.array([0.05, -0.02, 0.01])[None, :]
    assert verdicts.block_residual_variance(shifted.tolist())[0] == pytest.approx(variance, rel=1e-9)
    with pytest.raises(ValueError):
        verdicts.block_residual_variance([[0.1, 0.2]])


def test_paired_test_variance_counts_only_the_images_the_variants_disagree_on():
    """Oracle: by hand from the counts. One seed each; A right where B is wrong on 30 of 1,000
    images, B right where A is wrong on 10: d is +1 on 30, -1 on 10, 0 elsewhere."""
    a = np.zeros(1000, bool)
    b = np.zeros(1000, bool)
    a[:700], b[:700] = True, True  # both right on 700
    a[700:730] = True  # only A right on 30
    b[730:740] = True  # only B right on 10
    d = np.concatenate([np.zeros(700), np.ones(30), -np.ones(10), np.zeros(260)])
    expected = float(np.var(d, ddof=1) / 1000)
    assert verdicts.paired_test_variance([a], [b]) == pytest.approx(expected, rel=1e-12)
    independent = 0.73 * 0.27 / 1000 + 0.71 * 0.29 / 1000
    assert verdicts.paired_test_variance([a], [b]) < independent / 5
    # Identical models carry no test-sampling error in their difference.
    assert verdicts.paired_test_variance([a, a], [a, a]) == 0.0


def test_blocked_seeds_give_the_block_designs_t_interval():
    a, b = [0.760, 0.772, 0.781], [0.741, 0.750, 0.762]
    variance, degrees = 0.004 ** 2, 10
    verdict = compare("pooling", "A", a, "B", b, test_images=10_000, seed_variance=(variance, degrees),
                      test_variance=0.0025 ** 2)
    total = variance * (2 / 3) + 0.0025 ** 2
    # Satterthwaite: only the seed part spends degrees of freedom.
    df = total ** 2 / ((variance * 2 / 3) ** 2 / degrees)
    half = stats.t.ppf(0.975, df) * math.sqrt(total)
    difference = np.mean(a) - np.mean(b)
    assert (verdict.low, verdict.high) == pytest.approx((difference - half, difference + half), rel=1e-9)
    assert verdict.kind == "better"
    # Without the block information the same numbers use the independent defaults: wider.
    plain = compare("pooling", "A", a, "B", b, test_images=10_000)
    assert plain.high - plain.low > verdict.high - verdict.low


def test_the_block_design_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """Monte Carlo oracle: 6 variants x 3 seeds, each seed shifting every variant alike (its block
    effect, larger than the noise), the same test set for all (no test-sampling error here)."""
    rng = np.random.default_rng(2)
    means = np.array([0.74, 0.73, 0.76, 0.77, 0.77, 0.80])
    covered = decided_wrongly = 0
    trials = 2_000
    for _ in range(trials):
        table = means[:, None] + rng.normal(0, 0.02, 3)[None, :] + rng.normal(0, 0.006, (6, 3))
        blocks = verdicts.block_residual_variance(table.tolist())
        verdict = compare("x", "A", table[2], "B", table[0], seed_variance=blocks, test_variance=0.0)
        covered += verdict.low <= means[2] - means[0] <= verdict.high
        decided_wrongly += verdict.kind == "worse"
    assert 0.93 <= covered / trials <= 0.97
    assert decided_wrongly == 0


def test_paired_test_variance_of_runs_falls_back_when_hits_are_missing_or_differ_in_size():
    a, b = np.array([True, False, True, True]), np.array([True, True, False, True])
    assert verdicts.paired_test_variance_of([a, a], [b, b]) == verdicts.paired_test_variance([a, a], [b, b])
    assert verdicts.paired_test_variance_of([a, None], [b, b]) is None
    assert verdicts.paired_test_variance_of([a], [b[:3]]) is None
    assert verdicts.paired_test_variance_of([], [b]) is None
