"""Regularisation core: the dropout and batch-norm demos against Keras and closed forms, the variants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnnviz import training, verdicts
from cnnviz.lessons import augmentation as reg

# ---- dropout ----------------------------------------------------------------------------------

def test_dropout_demo_matches_a_fresh_keras_layer_and_the_closed_form():
    import keras

    x = reg.example_activations(12, seed=1)
    demo = reg.dropout_demo(x, 0.4, seed=11)
    # The oracle: the Keras layer itself, called independently here with the same seed.
    expected = np.asarray(keras.layers.Dropout(0.4, seed=11)(x[None], training=True))[0]
    np.testing.assert_array_equal(demo.training_output, expected)
    # Inverted dropout by definition: kept units scaled by 1/(1-p), dropped ones 0.
    np.testing.assert_allclose(demo.training_output, x * demo.kept / 0.6, rtol=1e-6)
    np.testing.assert_allclose(demo.training_closed_form, demo.training_output, rtol=1e-6)
    assert demo.scale == pytest.approx(1 / 0.6)
    assert np.array_equal(demo.kept, expected != 0)
    # Inference: the layer passes the input through unchanged.
    np.testing.assert_array_equal(demo.inference_output, x)
    assert demo.mean_inference == pytest.approx(float(x.mean()))
    assert demo.mean_training == pytest.approx(float(np.mean(x * demo.kept / 0.6)), rel=1e-6)
    assert demo.dropped.sum() + demo.kept.sum() == 12


def test_dropout_mask_is_right_even_where_the_input_is_zero_and_repeats_for_a_seed():
    x = reg.example_activations(10, seed=0)
    demo = reg.dropout_demo(x, 0.5, seed=3)
    zeroed = x.copy()
    zeroed[demo.kept.argmax()] = 0.0  # A kept unit whose input is 0 is still "kept".
    again = reg.dropout_demo(zeroed, 0.5, seed=3)
    np.testing.assert_array_equal(again.kept, demo.kept)
    masks = {tuple(reg.dropout_demo(x, 0.5, seed=s).kept) for s in range(6)}
    assert len(masks) > 1  # Different seeds drop different units.


def test_dropout_keeps_the_expected_mean_over_many_draws():
    x = reg.example_activations(8, seed=2)
    demo = reg.dropout_demo(x, 0.5, seed=0, draws=20_000)
    # Each output is x/(1-p) with probability 1-p: the mean over draws converges to mean(x).
    # Standard error of the mean here is below 0.005; allow 4 of them.
    assert demo.mean_over_draws == pytest.approx(float(x.mean()), abs=0.02)


def test_dropout_rate_zero_keeps_everything_and_bad_rates_are_refused():
    x = reg.example_activations(5)
    demo = reg.dropout_demo(x, 0.0, seed=0)
    assert demo.kept.all()
    np.testing.assert_array_equal(demo.training_output, x)
    for rate in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            reg.dropout_demo(x, rate)
    with pytest.raises(ValueError, match="1-D"):
        reg.dropout_demo(np.ones((2, 2)), 0.5)


# ---- batch normalisation ----------------------------------------------------------------------

def moving_history_closed_form(demo) -> tuple[np.ndarray, np.ndarray]:
    """moving ← momentum · moving + (1 − momentum) · batch statistic, from mean 0 and variance 1 (float64)."""
    features = demo.batches.shape[2]
    mean, variance = np.zeros(features), np.ones(features)
    means, variances = [mean.copy()], [variance.copy()]
    for batch in demo.batches.astype(np.float64):
        mean = demo.momentum * mean + (1 - demo.momentum) * batch.mean(axis=0)
        variance = demo.momentum * variance + (1 - demo.momentum) * batch.var(axis=0)  # Biased, as BN uses.
        means.append(mean.copy())
        variances.append(variance.copy())
    return np.array(means), np.array(variances)


def training_output_closed_form(demo) -> np.ndarray:
    x = demo.last_batch.astype(np.float64)
    return (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + demo.epsilon)


def inference_output_closed_form(demo) -> np.ndarray:
    means, variances = moving_history_closed_form(demo)
    return (demo.last_batch.astype(np.float64) - means[-1]) / np.sqrt(variances[-1] + demo.epsilon)


def test_batchnorm_demo_matches_keras_and_the_closed_forms():
    import keras

    batches = reg.example_batches(steps=4, batch_size=6, seed=5)
    demo = reg.batchnorm_demo(batches, momentum=0.9)
    # Batch statistics: mean and biased variance of the last batch (what training mode uses).
    np.testing.assert_allclose(demo.batch_mean, batches[-1].astype(np.float64).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(demo.batch_variance, batches[-1].astype(np.float64).var(axis=0), rtol=1e-5)
    np.testing.assert_allclose(demo.training_output, training_output_closed_form(demo), atol=1e-5)
    means, variances = moving_history_closed_form(demo)
    np.testing.assert_allclose(demo.moving_mean_history, means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(demo.moving_variance_history, variances, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(demo.inference_output, inference_output_closed_form(demo), atol=1e-5)
    assert demo.moving_mean_history.shape == (5, 3)
    np.testing.assert_array_equal(demo.moving_mean_history[0], 0.0)
    np.testing.assert_array_equal(demo.moving_variance_history[0], 1.0)

    # An independent Keras layer fed the same batches gives the same numbers.
    layer = keras.layers.BatchNormalization(momentum=0.9)
    for batch in batches:
        out = np.asarray(layer(batch, training=True))
    np.testing.assert_allclose(demo.training_output, out, rtol=1e-6)
    np.testing.assert_allclose(demo.moving_mean, np.asarray(layer.moving_mean), rtol=1e-6)
    np.testing.assert_allclose(demo.moving_variance, np.asarray(layer.moving_variance), rtol=1e-6)
    np.testing.assert_allclose(demo.inference_output, np.asarray(layer(batches[-1], training=False)), rtol=1e-6)


def test_training_output_is_standardised_and_inference_differs_after_few_steps():
    demo = reg.batchnorm_demo(reg.example_batches(steps=3, batch_size=8, seed=0))  # Keras' momentum 0.99.
    # Training mode: each feature of the batch has mean 0 and variance var/(var+eps) ~ 1.
    np.testing.assert_allclose(demo.training_output.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(demo.training_output.var(axis=0),
                               demo.batch_variance / (demo.batch_variance + demo.epsilon), rtol=1e-4)
    # After 3 steps with momentum 0.99 the moving mean holds only 1 - 0.99^3 of the batch means.
    assert np.abs(demo.moving_mean).max() < 0.05 * np.abs(demo.batch_mean).max() + 0.5
    assert not np.allclose(demo.inference_output, demo.training_output, atol=0.1)


def test_momentum_zero_makes_inference_use_the_last_batch_statistics():
    demo = reg.batchnorm_demo(reg.example_batches(steps=2, batch_size=5, seed=1), momentum=0.0)
    np.testing.assert_allclose(demo.moving_mean, demo.batch_mean, rtol=1e-5)
    np.testing.assert_allclose(demo.inference_output, demo.training_output, atol=1e-5)


def test_batchnorm_refuses_impossible_inputs():
    with pytest.raises(ValueError, match="momentum"):
        reg.batchnorm_demo(reg.example_batches(2, 4), momentum=1.0)
    with pytest.raises(ValueError, match="batch"):
        reg.batchnorm_demo(np.zeros((2, 1, 3), np.float32))
    with pytest.raises(ValueError, match="one sample"):
        reg.example_batches(2, 1)


def test_steps_to_reach():
    k = reg.steps_to_reach(0.99, 0.95)
    assert 1 - 0.99 ** k >= 0.95 > 1 - 0.99 ** (k - 1)
    assert reg.steps_to_reach(0.0) == 1


# ---- overfitting variants ---------------------------------------------------------------------

def test_variants_differ_only_in_the_cure():
    variants = reg.overfitting_variants("fashion_mnist", keys=reg.VARIANT_KEYS)
    assert [v.key for v in variants] == list(reg.VARIANT_KEYS)
    assert len({v.config.key() for v in variants}) == len(variants)
    base = variants[0].config
    for v in variants:
        same = dataclasses.replace(v.config, layers=base.layers, augmentation=base.augmentation)
        assert same == base
    by_key = {v.key: v.config for v in variants}
    types = {k: [dict(layer)["type"] for layer in c.layers] for k, c in by_key.items()}
    assert "dropout" not in types["baseline"] and "batchnorm" not in types["baseline"]
    assert types["dropout"].count("dropout") == 2 and types["batchnorm"].count("batchnorm") == 2
    assert by_key["augmentation"].augmentation and not by_key["dropout"].augmentation
    assert base.limit_train == reg.OVERFIT_LIMIT_TRAIN == 1000
    assert [dict(layer)["type"] for layer in by_key["all"].layers] == [
        "conv2d", "batchnorm", "maxpool2d", "conv2d", "batchnorm", "maxpool2d", "flatten", "dropout", "dense",
        "dropout", "dense"]
    with pytest.raises(ValueError, match="Unknown variant"):
        reg.overfitting_variants(keys=("weight_decay",))


def test_the_variant_stacks_build_in_keras_with_matching_parameter_counts():
    from cnnviz.architecture import build_keras_model, summarize

    for input_shape in ((28, 28, 1), (32, 32, 3)):
        for key in ("baseline", "all"):
            stack = reg.small_cnn_stack(dropout=key == "all", batchnorm=key == "all")
            model = build_keras_model(input_shape, stack)
            assert model.count_params() == sum(row.params for row in summarize(input_shape, stack))
            assert model.output_shape == (None, 10)


def test_variants_table_from_actual_training_on_a_tiny_subset():
    """Train two variants for real (200 images, 2 epochs) and check every number of the table."""
    from cnnviz.training import train

    variants = reg.overfitting_variants("fashion_mnist", keys=("baseline", "dropout"), limit_train=200,
                                        limit_test=100, epochs=2, batch_size=32)
    for variant in variants:
        result = train(variant.config)
        x_train, y_train = reg.training_images(variant.config)
        assert len(x_train) == 200
        outcome = reg.variant_outcome(variant, result, x_train, y_train)
        # Clean training accuracy: the model in inference mode on the training images.
        probabilities = np.asarray(result.model(x_train.astype(np.float32) / 255.0, training=False))
        assert outcome.train_accuracy == pytest.approx(float(np.mean(probabilities.argmax(1) == y_train)))
        assert outcome.test_accuracy == pytest.approx(result.test_accuracy)
        assert outcome.gap == pytest.approx(outcome.train_accuracy - outcome.test_accuracy)
        assert outcome.train_accuracy_during == pytest.approx(result.history["accuracy"][-1])
        assert outcome.epochs == 2 and outcome.stopped_reason == "finished"
        assert 1 <= outcome.best_epoch <= 2
        assert 0.0 <= outcome.test_accuracy <= 1.0 and outcome.seconds > 0


def test_train_variant_seeds_measures_every_seed_through_train_seeds(monkeypatch):
    """Two variants, three seeds each, for real (200 images, 2 epochs): per-seed numbers and verdicts."""
    calls = []
    real = training.train_seeds

    def spy(config, seeds, on_progress=None, **kwargs):
        calls.append((config.key(), tuple(seeds)))
        return real(config, seeds, on_progress, **kwargs)

    monkeypatch.setattr(training, "train_seeds", spy)
    variants = reg.overfitting_variants("fashion_mnist", keys=("baseline", "dropout"), limit_train=200,
                                        limit_test=100, epochs=2, batch_size=32)
    measured = [reg.train_variant_seeds(v, (0, 1, 2)) for v in variants]
    assert calls == [(v.config.key(), (0, 1, 2)) for v in variants]
    for m in measured:
        assert m.seeds == (0, 1, 2) and len(m.outcomes) == 3 and m.test_images == 100
        assert m.updates == 2 * 7  # 200 images at batch 32: 7 batches per epoch.
        assert m.gaps == tuple(o.train_accuracy - o.test_accuracy for o in m.outcomes)
        assert m.accuracy_spread.low <= m.accuracy_spread.mean <= m.accuracy_spread.high
    # Each seed's outcome is that of the seed's own run (its own data subset and initial weights).
    one = training.train(variants[0].config.replace(seed=1))
    assert measured[0].outcomes[1].test_accuracy == pytest.approx(one.test_accuracy, abs=1e-6)
    found = reg.regularisation_verdicts(measured)
    assert [v.factor for v in found] == ["dropout", "dropout accuracy"]
    report = reg.experiment_report(measured)
    row = report.to_json()["variants"][1]
    assert row["name"] == "dropout" and row["seeds"] == [0, 1, 2] and len(row["gap"]) == 3
    assert row["train_accuracy"] == list(measured[1].train_accuracies)


# ---- Verdicts ----------------------------------------------------------------------------------

def _measured(key: str, gaps: list[float], tests: list[float]) -> reg.SeedMeasurement:
    variant = reg.overfitting_variants(keys=(key,))[0]
    outcomes = tuple(_outcome(key, test + gap, test) for gap, test in zip(gaps, tests))
    return reg.SeedMeasurement(variant=variant, seeds=tuple(range(len(gaps))), outcomes=outcomes,
                               histories=tuple({} for _ in gaps), updates=100, test_images=500)


def test_verdicts_come_from_compare_and_follow_the_numbers():
    base = _measured("baseline", [0.20, 0.21, 0.19], [0.78, 0.79, 0.78])
    narrower = _measured("augmentation", [0.05, 0.06, 0.04], [0.80, 0.79, 0.81])
    noisy = _measured("dropout", [0.10, 0.30, 0.18], [0.70, 0.85, 0.78])
    found = {v.factor: v for v in reg.regularisation_verdicts([base, narrower, noisy])}
    assert set(found) == {"augmentation", "augmentation accuracy", "dropout", "dropout accuracy"}
    assert found["augmentation"].kind == "better"  # The gap is smaller: better.
    assert found["augmentation"].difference == pytest.approx(-0.15)
    assert found["dropout"].kind == "undecided" and "more seeds" in found["dropout"].text
    expected = verdicts.compare("augmentation", "Augmentation (train–test gap)", narrower.gaps,
                                "No regularisation (train–test gap)", base.gaps, test_images=500,
                                higher_is_better=False)
    assert found["augmentation"] == expected
    # No baseline, nothing to compare with.
    assert reg.regularisation_verdicts([narrower, noisy]) == []
    # One seed: never decided.
    single = reg.regularisation_verdicts([_measured("baseline", [0.2], [0.8]), _measured("dropout", [0.0], [0.9])])
    assert {v.kind for v in single} == {"undecided"}


# ---- What the page says --------------------------------------------------------------------------

def _outcome(key: str, train: float, test: float, during: float | None = None) -> reg.VariantOutcome:
    return reg.VariantOutcome(key=key, title=key.capitalize(), train_accuracy=train,
                              train_accuracy_during=train if during is None else during, test_accuracy=test,
                              best_test_accuracy=test, best_epoch=1, epochs=1, seconds=1.0, stopped_reason="finished")


def test_the_batchnorm_reading_counts_the_steps_to_catch_up():
    demo = reg.batchnorm_demo(reg.example_batches(steps=2, batch_size=4, seed=0), momentum=0.9)
    text = reg.batchnorm_reading(demo)
    assert "holds only 19.0% of the batch means (1 − 0.9²)" in text
    assert f"**{reg.steps_to_reach(0.9)} steps**" in text
    assert "reason" not in text and "worse" not in text  # What the numbers show, no cause.
    still = reg.batchnorm_demo(reg.example_batches(steps=2, batch_size=4, seed=0), momentum=0.0)
    assert reg.batchnorm_reading(still).startswith("With momentum 0")


def test_variant_parameters_count_the_variants_weights():
    plain, dropout = reg.overfitting_variants(keys=("baseline", "dropout"))
    assert reg.variant_parameters(plain) == reg.variant_parameters(dropout) > 10_000


def test_the_preview_augments_and_explains_the_settings():
    from cnnviz.training import augmenter

    image = np.zeros((28, 28, 1), dtype=np.uint8)
    image[5:20, 8:12] = 255
    spec = augmenter.spec_from_settings(flip_vertical=True, rotation_degrees=10)
    preview = reg.augmentation_preview(image, "mnist", spec, seed=3, n=4)
    assert preview.grid.shape == (4, 28, 28, 1)
    assert len(preview.descriptions) == 2 and "RandomRotation" in preview.code
    assert any(warning.label == augmenter.AUGMENTATION_LABELS["flip_vertical"] for warning in preview.warnings)
