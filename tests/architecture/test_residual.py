"""Residual blocks: counted as Keras counts them, built, exported, trained, and refused when impossible.

The oracle is Keras itself: `oracle_rows` builds the ResNet basic block straight from the issue's
description with plain Keras layers (not through cnnviz), and reads every count and shape from it.
"""

from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace

import numpy as np
import pytest
from keras_oracle import keras, keras_rows, our_rows

from cnnviz import architecture as arch
from cnnviz import data, training
from cnnviz.architecture import ArchitectureError
from cnnviz.architecture.layers import BLOCK_BN_MOMENTUM
from cnnviz.figures.calculator import parameters_bar_figure, volumes_figure
from cnnviz.lessons import train as train_lesson
from cnnviz.training import TrainConfig, seed_stack

L = keras.layers


def _weights(layers) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for layer in layers for w in layer.non_trainable_weights)
    return trainable, frozen


def _oracle_block(x, filters, kernel, strides):
    """The basic block from the issue's text, in plain Keras; returns (output, its layers)."""
    made = [L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False), L.BatchNormalization(),
            L.ReLU(), L.Conv2D(filters, kernel, padding="same", use_bias=False), L.BatchNormalization()]
    main = x
    for layer in made:
        main = layer(main)
    shortcut = x
    if strides not in (1, (1, 1)) or x.shape[-1] != filters:
        projection = [L.Conv2D(filters, 1, strides=strides, use_bias=False), L.BatchNormalization()]
        for layer in projection:
            shortcut = layer(shortcut)
        made += projection
    add, relu = L.Add(), L.ReLU()
    return relu(add([main, shortcut])), made + [add, relu]


def oracle_rows(input_shape, layers):
    """Per stack layer: (output shape, params, trainable, non-trainable, multiply-adds), from Keras."""
    x = keras.Input(shape=tuple(input_shape))
    rows = []
    for layer in layers:
        arguments = {key: value for key, value in layer.items() if key != "type"}
        if layer["type"] == "residual_block":
            y, made = _oracle_block(x, arguments["filters"], arguments.get("kernel_size", 3),
                                    arguments.get("strides", 1))
        else:
            made = [getattr(L, arch.LAYERS[layer["type"]].keras_class)(**arguments)]
            y = made[0](x)
        # Multiply-adds: every output value of a convolution or Dense layer costs its kernel's fan-in.
        mult_adds = sum(int(np.prod(part.output.shape[1:])) * int(np.prod(part.kernel.shape[:-1]))
                        for part in made if isinstance(part, (L.Conv2D, L.Dense)))
        trainable, frozen = _weights(made)
        rows.append((tuple(y.shape[1:]), trainable + frozen, trainable, frozen, mult_adds))
        x = y
    return rows


def random_stack(rng: np.random.Generator) -> tuple[tuple[int, int, int], list[dict]]:
    """A random valid stack with one to three residual blocks (pairs, strides, identity and projection)."""
    shape = (int(rng.integers(4, 17)), int(rng.integers(4, 17)), int(rng.integers(1, 5)))
    layers: list[dict] = []
    channels = shape[2]
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.4:
            kind = rng.choice(["conv2d", "batchnorm", "maxpool2d"])
            if kind == "conv2d":
                channels = int(rng.integers(1, 7))
                layers.append({"type": "conv2d", "filters": channels, "kernel_size": 3,
                               "padding": "same", "activation": "relu"})
            elif kind == "maxpool2d":
                layers.append({"type": "maxpool2d", "pool_size": 2, "padding": "same"})
            else:
                layers.append({"type": "batchnorm"})
        # Half the blocks keep the channels (an identity shortcut unless strided).
        block: dict = {"type": "residual_block",
                       "filters": channels if rng.random() < 0.5 else int(rng.integers(1, 9))}
        if rng.random() < 0.7:
            block["kernel_size"] = int(rng.integers(1, 6)) if rng.random() < 0.7 else (
                int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        if rng.random() < 0.4:
            block["strides"] = int(rng.integers(1, 4)) if rng.random() < 0.7 else (
                int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        channels = block["filters"]
        layers.append(block)
    layers.append({"type": "globalavgpool2d"} if rng.random() < 0.5 else {"type": "flatten"})
    layers.append({"type": "dense", "units": int(rng.integers(2, 6)), "activation": "softmax"})
    return shape, layers


RANDOM_STACKS = [random_stack(np.random.default_rng(seed)) for seed in range(50)]


def test_random_stacks_mix_identity_and_projection_shortcuts():
    """The generator covers what the block can do (else the comparison below proves less)."""
    projections = identities = strided = 0
    for shape, layers in RANDOM_STACKS:
        for row in arch.summarize(shape, layers):
            if row.type == "residual_block":
                projecting = arch.LAYERS["residual_block"].projects(row.config, row.input_shape[-1])
                projections += projecting
                identities += not projecting
                strided += row.config["strides"] not in (1, (1, 1))
    assert projections >= 10 and identities >= 10 and strided >= 10


@pytest.mark.parametrize("index", range(len(RANDOM_STACKS)))
def test_calculator_rows_equal_keras_on_random_residual_stacks(index):
    shape, layers = RANDOM_STACKS[index]
    rows = arch.summarize(shape, layers)
    ours = [(r.output_shape, r.params, r.trainable_params, r.non_trainable_params, r.mult_adds) for r in rows]
    assert ours == oracle_rows(shape, layers)
    model = arch.build_keras_model(shape, layers)
    assert isinstance(model, keras.Model) and not isinstance(model, keras.Sequential)
    assert keras_rows(model) == our_rows(rows)  # Names too: one Keras layer per row.
    assert model.count_params() == arch.totals(rows).params


def test_block_formula_and_counts_by_hand():
    rows = arch.summarize((8, 8, 3), [{"type": "residual_block", "filters": 4, "strides": 2},
                                      {"type": "residual_block", "filters": 4}, {"type": "flatten"},
                                      {"type": "dense", "units": 2}])
    projecting, identity = rows[0], rows[1]
    # 3·3·3·4 + 3·3·4·4 + 1·1·3·4 = 108 + 144 + 12, and three batch norms of 4·4.
    assert projecting.params == 108 + 144 + 12 + 3 * 16 and projecting.non_trainable_params == 3 * 8
    assert projecting.output_shape == (4, 4, 4)
    assert projecting.formula == ("conv 3·3·3·4 + BN 4·4 + conv 3·3·4·4 + BN 4·4 + shortcut conv 1·1·3·4 + BN 4·4 "
                                  "= 312 (288 trainable, 24 non-trainable BN moving means and variances; no biases)")
    assert "1×1 convolution (stride 2 and 3→4 channels)" in projecting.note
    assert identity.params == 2 * 144 + 2 * 16 and "identity" in identity.formula
    assert identity.mult_adds == 4 * 4 * 4 * (9 * 4 + 9 * 4)
    # Receptive field: 3 + 2·2 after the strided block (jump 2), then 7 + 2·2 + 2·2 = 15.
    assert projecting.receptive_field == (7, 7) and identity.receptive_field == (15, 15)
    # The block's hidden tensors count towards the memory: 8 (projection) and 6 (identity) outputs.
    total = arch.totals(rows)
    assert total.activation_values == 8 * 8 * 3 + 64 * 9 + 64 * 7 + 64 + 2


def test_plain_stacks_stay_sequential():
    stack = arch.PRESETS["fashion_relu_cnn"].layers
    assert isinstance(arch.build_keras_model((28, 28, 1), stack), keras.Sequential)
    assert "keras.Sequential(" in arch.keras_code((28, 28, 1), stack)
    assert "residual_block" not in arch.keras_code((28, 28, 1), stack)


@pytest.mark.parametrize("index", [0, 7, 23])
def test_exported_code_runs_and_builds_the_same_model(index):
    shape, layers = RANDOM_STACKS[index]
    code = arch.keras_code(shape, layers)
    assert "def residual_block(" in code and "keras.Model(inputs, x" in code
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<exported>", "exec"), namespace)  # noqa: S102 - our own generated code.
    model = namespace["model"]
    rows = arch.summarize(shape, layers)
    assert keras_rows(model) == our_rows(rows)
    built = arch.build_keras_model(shape, layers)
    assert model.count_params() == built.count_params()
    assert _inner_layers(model) == _inner_layers(built)  # The same block, setting for setting.


def _inner_layers(model) -> list[tuple]:
    """Every layer inside the blocks: name, class and the settings that change what it computes."""
    keys = ("filters", "kernel_size", "strides", "padding", "use_bias", "momentum", "epsilon")
    return [(inner.name, type(inner).__name__, tuple(inner.get_config().get(key) for key in keys))
            for layer in model.layers if isinstance(layer, keras.Model) for inner in layer.layers]


def test_the_block_has_a_skip_connection_that_adds_its_input():
    """With the main path's last batch norm scaled to zero, an identity block is ReLU(input)."""
    model = arch.build_keras_model((6, 6, 2), [{"type": "residual_block", "filters": 2}, {"type": "flatten"},
                                               {"type": "dense", "units": 1}])
    block = model.get_layer("residual_block")
    bn2 = block.get_layer("residual_block_bn2")
    bn2.set_weights([np.zeros_like(w) if i < 2 else w for i, w in enumerate(bn2.get_weights())])
    x = np.random.default_rng(0).normal(size=(3, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(np.asarray(block(x, training=False)), np.maximum(x, 0), atol=1e-6)


def test_receptive_field_equals_the_span_of_the_input_gradient():
    """With positive weights, the input pixels that move an inner output position span the receptive field."""
    import tensorflow as tf

    layers = [{"type": "residual_block", "filters": 1, "strides": 2}, {"type": "residual_block", "filters": 1,
                                                                        "kernel_size": (3, 1)}]
    model = arch.build_keras_model((40, 40, 1), layers)
    for layer in model.layers:
        layer.set_weights([np.ones(w.shape, dtype="float32") for w in layer.weights])
    image = tf.ones((1, 40, 40, 1))
    with tf.GradientTape() as tape:
        tape.watch(image)
        output = model(image, training=False)[0, 10, 10, 0]  # Far from the zero-padded border.
    gradient = tape.gradient(output, image).numpy()[0, :, :, 0]
    rows_hit, cols_hit = np.flatnonzero(gradient.any(axis=1)), np.flatnonzero(gradient.any(axis=0))
    span = (rows_hit[-1] - rows_hit[0] + 1, cols_hit[-1] - cols_hit[0] + 1)
    assert span == arch.summarize((40, 40, 1), layers)[-1].receptive_field == (15, 7)


def test_the_blocks_batch_norms_use_the_short_memory_momentum():
    model = arch.build_keras_model((8, 8, 2), [{"type": "residual_block", "filters": 3}, {"type": "flatten"},
                                               {"type": "dense", "units": 2}])
    norms = [layer for layer in model.get_layer("residual_block").layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3 and {layer.momentum for layer in norms} == {BLOCK_BN_MOMENTUM} == {0.9}


def test_a_resnet_model_saves_and_loads_as_the_training_cache_does(tmp_path):
    preset = arch.PRESETS["small_resnet"]
    model = arch.build_keras_model(preset.input_shape, preset.layers)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    x = np.random.default_rng(0).random((2, *preset.input_shape)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert keras_rows(loaded) == keras_rows(model)


@pytest.mark.parametrize("layers, words", [
    ([{"type": "residual_block", "filters": 0}], "filters must be at least 1"),
    ([{"type": "residual_block", "filters": 4, "kernel_size": 0}], "kernel size must be at least 1"),
    ([{"type": "residual_block", "filters": 4, "strides": "two"}], "stride must be"),
    ([{"type": "residual_block", "filters": 4, "padding": "valid"}], "unknown setting 'padding'"),
    ([{"type": "residual_block"}], "'filters' is missing"),
    ([{"type": "flatten"}, {"type": "residual_block", "filters": 4}], "a residual block needs an image-shaped"),
])
def test_impossible_blocks_are_clear_architecture_errors(layers, words):
    with pytest.raises(ArchitectureError, match=words):
        arch.summarize((8, 8, 1), layers + [{"type": "dense", "units": 2}])


def test_a_kernel_larger_than_its_input_works_as_in_keras():
    """'same' padding everywhere: Keras accepts a 5×5 block on a 3×3 input, and so does the calculator."""
    layers = [{"type": "residual_block", "filters": 2, "kernel_size": 5, "strides": 2}, {"type": "flatten"},
              {"type": "dense", "units": 2}]
    rows = arch.summarize((3, 3, 1), layers)
    assert [(r.output_shape, r.params) for r in rows] == [row[:2] for row in oracle_rows((3, 3, 1), layers)]


def test_json_round_trip_and_editor_know_the_block():
    layers = [{"type": "residual_block", "filters": 8, "kernel_size": (3, 1), "strides": 2},
              {"type": "globalavgpool2d"}, {"type": "dense", "units": 3}]
    assert arch.stack_from_json(arch.stack_to_json((16, 16, 1), layers))[1][0] == {
        "type": "residual_block", "filters": 8, "kernel_size": [3, 1], "strides": 2}
    assert arch.compact_layer({"type": "residual_block", "filters": 8}) == {"type": "residual_block", "filters": 8}
    assert "residual_block" in arch.LAYER_TYPES
    editor_columns = {argument.name for argument in arch.EDITOR_ARGUMENTS}
    assert set(arch.LAYERS["residual_block"].arguments) <= editor_columns
    assert arch.describe_layer(arch.normalize_layer(layers[0])) == "Residual block 8, 3×1, stride 2"


def test_the_figures_mark_each_skip_connection():
    preset = arch.PRESETS["small_resnet"]
    rows = arch.summarize(preset.input_shape, preset.layers)
    figure = volumes_figure(preset.input_shape, rows)
    skips = [trace for trace in figure.data if trace.name == "skip connection"]
    blocks = sum(row.type == "residual_block" for row in rows)
    assert len(skips) == 1 and list(skips[0].x).count(None) == blocks == 3
    assert [a.text for a in figure.layout.annotations].count("+ skip") == blocks
    assert "Residual block" in [trace.name for trace in parameters_bar_figure(rows).data]
    plain = arch.PRESETS["fashion_relu_cnn"]
    assert not any(trace.name == "skip connection" for trace in volumes_figure(
        plain.input_shape, arch.summarize(plain.input_shape, plain.layers)).data)


# ---------------------------------------------------------------------------------------------
# The ResNet preset trains.


@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
def test_the_resnet_preset_fits_the_budget_at_the_train_pages_defaults(dataset):
    spec = data.spec(dataset)
    stack = arch.stack_for("small_resnet", spec.image_shape, spec.num_classes)
    config = TrainConfig.from_stack(stack, dataset=dataset, limit_train=train_lesson.DEFAULT_TRAIN_IMAGES,
                                    limit_test=train_lesson.DEFAULT_TEST_IMAGES,
                                    **train_lesson.DEFAULT_HYPERPARAMETERS)
    config.check_budget()  # Raises BudgetError when the server would refuse it.
    config.check_budget(train_images=60_000, test_images=10_000)


def _blocks_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 12×12 grey images of three classes: a bright top band, left band or centre block."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 80, (n, 12, 12, 1)).astype(np.uint8)
    for image, label in zip(images, labels):
        region = (slice(0, 4), slice(None)) if label == 0 else (slice(None), slice(0, 4)) if label == 1 \
            else (slice(4, 8), slice(4, 8))
        image[region] += 150
    return images, labels


@pytest.fixture(scope="module")
def blocks_data() -> SimpleNamespace:
    # 60 batches of 32: enough for the batch norms' moving statistics (momentum 0.99), which the
    # test images are evaluated with, to move most of the way from their initial values.
    x_train, y_train = _blocks_data(1920, 1)
    x_test, y_test = _blocks_data(300, 2)
    return SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                           class_names=("top", "left", "centre"))


def _resnet_config(**changes) -> TrainConfig:
    fields = dict(epochs=1, batch_size=32, learning_rate=0.003, seed=0, optimizer="adam")
    fields.update(changes)
    return TrainConfig.from_stack(arch.stack_for("small_resnet", (12, 12, 1), 3), **fields)


@pytest.mark.parametrize("fast", [True, False])
def test_the_resnet_preset_trains_through_the_engine(blocks_data, fast):
    result = training.train(_resnet_config(fast=fast), data=blocks_data)
    assert result.stopped_reason == "finished"
    assert len(result.history["loss"]) == 1
    assert result.history["accuracy"][0] > 0.8  # chance is 1/3
    assert result.test_accuracy > 0.5  # with the moving statistics, still short of the training accuracy
    assert any(layer.name.startswith("residual_block") for layer in result.model.layers)


def test_seeds_of_a_resnet_train_one_after_another_as_alone(blocks_data):
    """seed_stack cannot stack a residual block: train_seeds falls back to one seed at a time."""
    config = _resnet_config()
    assert seed_stack.unsupported_reason(config, (12, 12, 1)) == "layer type residual_block"
    together = training.train_seeds(config, (0, 1), data=blocks_data, use_cache=False)
    alone = training.train(_resnet_config(seed=1), data=blocks_data)
    assert [r.config.seed for r in together] == [0, 1]
    assert together[1].history["loss"] == pytest.approx(alone.history["loss"], rel=1e-5)
    assert together[1].test_accuracy == pytest.approx(alone.test_accuracy)
