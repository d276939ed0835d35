"""cnnviz.explain against independent oracles: Grad-CAM and saliency recomputed here with a plain
tf.GradientTape on a twin model that ends in logits, occlusion by a brute-force loop of single
predictions, and feature visualisation measured against the test images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnnviz import architecture, data, explain, training, verdicts
from cnnviz.architecture import build_keras_model
from cnnviz.errors import CnnvizError, ExplainError
from cnnviz.lessons import explain as explain_lesson
from cnnviz.training import warmup

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _small_cnn(activation: str | None) -> keras.Model:
    """Conv -> ReLU -> pool -> flatten -> dense, built with Keras directly (not by cnnviz)."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, name="conv"),
        keras.layers.ReLU(name="relu"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv_2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, activation=activation, name="out"),
    ])


@pytest.fixture(scope="module")
def dataset():
    return data.load("fashion_mnist", limit_train=1000, limit_test=200, seed=0)


@pytest.fixture(scope="module")
def models(dataset):
    """(softmax-ended model, its logits twin with the same weights), trained for one epoch."""
    keras.utils.set_random_seed(0)
    model = _small_cnn("softmax")
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
    model.fit(dataset.x_train.astype("float32") / 255.0, dataset.y_train, epochs=2, batch_size=64, verbose=0)
    twin = _small_cnn(None)
    twin.set_weights(model.get_weights())
    return model, twin


def _oracle_grad_cam(model, layer_name, image, class_index):
    """The Keras Grad-CAM example's recipe, on a model whose output IS the logits."""
    grad_model = keras.Model(model.inputs[0], [model.get_layer(layer_name).output, model.outputs[0]])
    x = tf.constant(image[None].astype("float32") / 255.0)
    with tf.GradientTape() as tape:
        maps, scores = grad_model(x)
        score = scores[:, class_index]
    grads = tape.gradient(score, maps)
    pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
    heat = tf.squeeze(maps[0] @ pooled[..., tf.newaxis]).numpy()
    heat = np.maximum(heat, 0)
    return heat / heat.max() if heat.max() > 0 else heat


def _oracle_saliency_raw(model, scaled, class_index):
    x = tf.constant(scaled[None].astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = model(x)[:, class_index]
    return np.abs(tape.gradient(score, x).numpy()[0]).max(axis=-1)


@pytest.mark.parametrize("layer_name", [None, "relu", "conv"])
def test_grad_cam_equals_the_gradient_tape_oracle_on_the_logits(models, dataset, layer_name):
    model, twin = models
    for index in range(4):
        image = dataset.x_test[index]
        predicted = int(np.argmax(model(image[None] / 255.0)))
        for class_index in {predicted, int(dataset.y_test[index]), 0}:
            got = explain.grad_cam(model, image, class_index, layer_name)
            expected = _oracle_grad_cam(twin, layer_name or "conv_2", image, class_index)
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=1e-4)
    # The last conv layer by default, at its resolution.
    assert explain.grad_cam(model, dataset.x_test[0], 0).shape == (11, 11)


def test_grad_cam_uses_the_logit_not_the_softmax_probability(models, dataset):
    model, twin = models
    # An image and class whose map is not blank (which depends on the trained weights, so on the CPU).
    image, target = next((x, c) for x in dataset.x_test[:20] for c in range(10)
                         if explain.grad_cam(model, x, c, "relu").any())
    got = explain.grad_cam(model, image, target, "relu")
    of_probability = _oracle_grad_cam(model, "relu", image, target)  # the softmax output's gradient
    assert not np.allclose(got, of_probability, atol=1e-3)
    np.testing.assert_allclose(got, _oracle_grad_cam(twin, "relu", image, target), atol=1e-4)


def test_grad_cam_of_a_blank_layer_is_all_zeros_not_nan(models, dataset):
    _, twin = models
    blank = _small_cnn(None)
    weights = twin.get_weights()
    blank.set_weights([np.zeros_like(w) for w in weights[:2]] + weights[2:])
    cam = explain.grad_cam(blank, dataset.x_test[0], 0, "conv")
    assert cam.shape == (26, 26) and not cam.any() and np.isfinite(cam).all()


def test_saliency_equals_the_oracle_on_the_scaled_input(models, dataset):
    model, twin = models
    for index in range(3):
        image = dataset.x_test[index]
        raw = _oracle_saliency_raw(twin, image / 255.0, 5)
        got = explain.saliency(model, image, 5)
        assert got.shape == (28, 28) and got.max() == pytest.approx(1.0)
        np.testing.assert_allclose(got, raw / raw.max(), atol=1e-4)


def test_smooth_saliency_is_the_mean_of_noisy_saliency_maps_and_is_seeded(models, dataset):
    model, twin = models
    image = dataset.x_test[2]
    samples, noise = 6, 0.15
    # The same draw as the documented recipe: one seeded generator, (samples, H, W, C) Gaussian noise.
    draws = np.random.default_rng(3).normal(0.0, noise, size=(samples, 28, 28, 1))
    raw = np.mean([_oracle_saliency_raw(twin, image / 255.0 + draw, 5) for draw in draws], axis=0)
    got = explain.smooth_saliency(model, image, 5, samples=samples, noise=noise, seed=3)
    np.testing.assert_allclose(got, raw / raw.max(), atol=1e-4)
    assert not np.allclose(got, explain.smooth_saliency(model, image, 5, samples=samples, seed=4), atol=1e-3)


@pytest.mark.parametrize("patch, stride, fill", [(4, 2, 0.0), (5, 3, 0.5), (28, 1, 0.0)])
def test_occlusion_equals_a_brute_force_loop(models, dataset, patch, stride, fill):
    model, _ = models
    image = dataset.x_test[0]
    class_index = int(dataset.y_test[0])
    scaled = image.astype("float32") / 255.0
    base = float(model(scaled[None])[0, class_index])
    rows = (28 - patch) // stride + 1
    expected = np.zeros((rows, rows))
    for i in range(rows):
        for j in range(rows):
            covered = scaled.copy()
            covered[i * stride:i * stride + patch, j * stride:j * stride + patch] = fill
            expected[i, j] = base - float(model(covered[None])[0, class_index])
    got = explain.occlusion(model, image, class_index, patch=patch, stride=stride, fill=fill)
    assert got.shape == (rows, rows)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_maximize_activation_excites_its_filter_more_than_test_images(models, dataset):
    model, _ = models
    activations = explain.mean_activations(model, "relu", dataset.x_test)  # (200, 8)
    alive = np.argsort(-activations.mean(axis=0))[:3]  # A dead ReLU filter (never positive) has no gradient.
    assert activations[:, alive].max(axis=0).min() > 0
    for filter_index in alive:
        image = explain.maximize_activation(model, "relu", filter_index, seed=0)
        assert image.shape == (28, 28, 1) and image.dtype == np.uint8
        excited = explain.mean_activations(model, "relu", image[None])[0, filter_index]
        assert excited > activations[:, filter_index].max(), (excited, activations[:, filter_index].max())
    again = explain.maximize_activation(model, "relu", int(alive[0]), seed=0)
    np.testing.assert_array_equal(again, explain.maximize_activation(model, "relu", int(alive[0]), seed=0))


def test_a_model_without_conv_layers_has_saliency_but_no_grad_cam(dataset):
    keras.utils.set_random_seed(1)
    dense = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ExplainError, match="no convolution layer.*Saliency"):
        explain.grad_cam(dense, dataset.x_test[0], 0)
    assert explain.saliency(dense, dataset.x_test[0], 0).shape == (28, 28)
    assert explain.occlusion(dense, dataset.x_test[0], 0).shape == (13, 13)


def test_layers_and_classes_that_do_not_exist_are_explained(models, dataset):
    model, _ = models
    image = dataset.x_test[0]
    with pytest.raises(ExplainError, match="no layer named 'nope'"):
        explain.grad_cam(model, image, 0, "nope")
    with pytest.raises(ExplainError, match="outputs maps"):
        explain.grad_cam(model, image, 0, "out")
    for bad in (10, -1):
        with pytest.raises(ExplainError, match="10 classes"):
            explain.saliency(model, image, bad)
    with pytest.raises(ExplainError, match="8 filters"):
        explain.maximize_activation(model, "relu", 8, steps=1)
    with pytest.raises(ExplainError, match="does not fit"):
        explain.occlusion(model, image, 0, patch=29)
    with pytest.raises(ExplainError, match="28x28x1"):
        explain.saliency(model, np.zeros((32, 32, 3), np.uint8), 0)
    assert issubclass(ExplainError, CnnvizError)


def test_layer_lists(models):
    model, _ = models
    assert explain.conv_layer_names(model) == ["conv", "conv_2"]
    assert explain.spatial_layer_names(model) == ["conv", "relu", "pool", "conv_2"]


def test_a_model_loaded_from_disk_is_explained_like_the_original(models, dataset, tmp_path):
    # A loaded model's layers were called several times while it was rebuilt (the disk cache's case):
    # the maps must still be taken on the model's own graph, connected to its logits.
    model, _ = models
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    image = dataset.x_test[5]
    for layer_name in (None, "relu"):
        np.testing.assert_allclose(explain.grad_cam(loaded, image, 2, layer_name),
                                   explain.grad_cam(model, image, 2, layer_name), atol=1e-5)
    np.testing.assert_allclose(explain.mean_activations(loaded, "relu", dataset.x_test[:5]),
                               explain.mean_activations(model, "relu", dataset.x_test[:5]), atol=1e-5)


def test_a_functional_model_with_a_skip_connection_is_explained_on_its_graph(dataset):
    # The shape of a residual block (what build_keras_model makes of one): conv -> conv, added to its input.
    keras.utils.set_random_seed(2)
    inputs = keras.Input((28, 28, 1))
    first = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    second = keras.layers.Conv2D(8, 3, padding="same", name="c2")(first)
    block = keras.layers.ReLU(name="block_out")(keras.layers.Add(name="add")([first, second]))
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(block)
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(pooled))
    image = dataset.x_test[3]
    for layer_name, oracle_layer in ((None, "c2"), ("block_out", "block_out"), ("c1", "c1")):
        np.testing.assert_allclose(explain.grad_cam(model, image, 4, layer_name),
                                   _oracle_grad_cam(model, oracle_layer, image, 4), atol=1e-4)
    raw = _oracle_saliency_raw(model, image / 255.0, 4)
    np.testing.assert_allclose(explain.saliency(model, image, 4), raw / raw.max(), atol=1e-4)


def test_a_filter_silent_on_grey_noise_still_gets_a_picture_that_excites_it():
    # One filter: relu(centre pixel - 0.8) is 0 on faint noise around mid-grey (no gradient there).
    conv = keras.layers.Conv2D(1, 3, activation="relu", name="picky")
    model = keras.Sequential([keras.Input((12, 12, 1)), conv, keras.layers.Flatten(), keras.layers.Dense(2)])
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 1] = 1.0
    conv.set_weights([kernel, np.array([-0.8], np.float32)])
    grey = np.full((1, 12, 12, 1), 128, np.uint8)
    assert explain.mean_activations(model, "picky", grey)[0, 0] == 0
    noise = (np.random.default_rng(1).uniform(0, 1, (50, 12, 12, 1)) * 255).astype(np.uint8)
    on_noise = explain.mean_activations(model, "picky", noise)[:, 0].mean()  # About 0.02.
    picture = explain.maximize_activation(model, "picky", 0, seed=0)
    # Far above random pictures (an all-white one gives the most: 0.2).
    assert explain.mean_activations(model, "picky", picture[None])[0, 0] > 3 * on_noise


def test_a_resnet_built_from_residual_blocks_is_explained_at_its_last_block(dataset):
    # cnnviz's own residual block (a nested model per block): the blocks are feature-map layers,
    # and Grad-CAM's default is the last block's output, as for a ResNet in the Keras example.
    from cnnviz.architecture import build_keras_model

    keras.utils.set_random_seed(3)
    stack = [{"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"},
             {"type": "residual_block", "filters": 8, "kernel_size": 3, "strides": 1},
             {"type": "residual_block", "filters": 16, "kernel_size": 3, "strides": 2},
             {"type": "globalavgpool2d"},
             {"type": "dense", "units": 10}]
    model = build_keras_model((28, 28, 1), stack)
    names = explain.conv_layer_names(model)
    blocks = [layer.name for layer in model.layers if type(layer).__name__ == "Functional"]
    assert len(blocks) == 2 and names[-2:] == blocks
    image = dataset.x_test[5]
    last = model.get_layer(blocks[-1])
    cam = explain.grad_cam(model, image, 2)
    assert cam.shape == tuple(last.output.shape[1:3]) == (13, 13)  # 26x26 after the stem, stride 2
    # The oracle: the outer model is a chain of its layers (the branches are inside the blocks), so
    # run them one by one under a GradientTape and weigh the last block's maps by hand.
    x = tf.constant(image[None].astype("float32") / 255.0)
    with tf.GradientTape() as tape:
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            x = layer(x, training=False)
            if layer.name == blocks[-1]:
                maps = x
                tape.watch(maps)
        score = x[:, 2]
    pooled = tf.reduce_mean(tape.gradient(score, maps), axis=(0, 1, 2))
    heat = np.maximum(tf.squeeze(maps[0] @ pooled[..., tf.newaxis]).numpy(), 0)
    np.testing.assert_allclose(cam, heat / heat.max(), atol=1e-4)


# ------------------------------------------------------------------------------------------
# Explain training: vanishing gradients at initialisation (a real measurement on Fashion-MNIST)
# ------------------------------------------------------------------------------------------

def test_the_tanh_stacks_first_layer_gradient_at_initialisation_is_smaller_than_relu_with_batch_norm():
    settings = explain_lesson.VanishingSettings(init_images=64, limit_train=256, limit_test=64)
    tanh = explain_lesson.initial_gradient_norms("tanh", settings)
    batch_norm = explain_lesson.initial_gradient_norms("relu_bn", settings)
    assert tanh.norms.shape == (3, settings.depth + 1) and batch_norm.norms.shape == (3, settings.depth + 1)
    assert tanh.seeds == batch_norm.seeds == (0, 1, 2)
    assert np.all(tanh.norms[:, 0] < batch_norm.norms[:, 0]), (tanh.norms[:, 0], batch_norm.norms[:, 0])
    # Oracle for the measurement itself: an independent tape on the same untrained model and batch.
    # Every seed is measured on the same images: the first training images of seed 0's order.
    config = explain_lesson.depth_config("tanh", settings).replace(seed=1)
    prepared = training.inputs.prepare(config.replace(seed=0))
    keras.utils.set_random_seed(1)
    model = build_keras_model(prepared.image_shape, config.stack())
    x = tf.constant(prepared.x_train[:64].astype(np.float32) / 255.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(prepared.y_train[:64], model(x, training=True)))
    first = model.layers[0].kernel
    np.testing.assert_allclose(tanh.norms[1, 0], float(tf.norm(tape.gradient(loss, first))), rtol=1e-4)


def test_each_variant_stack_has_the_same_depth_of_3x3_convolutions():
    for kind in explain_lesson.DEPTH_VARIANTS:
        rows = architecture.summarize((28, 28, 1), explain_lesson.depth_stack(kind, 8, 8))
        assert rows[-1].type == "dense" and rows[-2].type == "globalavgpool2d"
        convs = sum(row.type == "conv2d" for row in rows) + 2 * sum(row.type == "residual_block" for row in rows)
        assert convs == 8, kind
        assert rows[-2].input_shape == (3, 3, 8), kind  # the same downsampling in every variant
        assert [row.type for row in rows].count("maxpool2d") == len(explain_lesson.POOL_AFTER)
    with pytest.raises(ValueError):
        explain_lesson.depth_stack("sigmoid-ish")


def test_the_demos_verdicts_are_those_of_verdicts_compare():
    runs = {kind: [type("Run", (), {"test_accuracy": value, "test_data": lambda self: (None, np.zeros(500))})()
                   for value in values]
            for kind, values in {"tanh": (0.5, 0.52, 0.51), "relu_bn": (0.7, 0.72, 0.71)}.items()}
    demo = explain_lesson.VanishingDemo(explain_lesson.VanishingSettings(), runs=runs)
    (verdict,) = demo.verdicts()
    expected = verdicts.compare("architecture", "plain, ReLU + batch norm", [0.7, 0.72, 0.71], "plain, tanh",
                                [0.5, 0.52, 0.51], test_images=500)
    assert verdict == expected and verdict.kind == "better"


def _tape_norms(model, images, labels) -> dict[str, float]:
    """Independent oracle: ‖∂ mean cross-entropy / ∂ kernel‖ of every kernel variable, found by its
    path (nested blocks included), in training mode; the moving statistics it moves are put back."""
    saved = [v.numpy() for v in model.non_trainable_variables]
    x = tf.constant(images.astype(np.float32) / 255.0)
    kernels = [v for v in model.trainable_variables if v.path.endswith("/kernel")]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, model(x, training=True)))
    gradients = tape.gradient(loss, kernels)
    for variable, value in zip(model.non_trainable_variables, saved):
        variable.assign(value)
    return {v.path.split("/")[-2]: float(tf.norm(g)) for v, g in zip(kernels, gradients)}


def test_the_demos_norms_after_training_are_a_gradient_tapes_on_the_same_images(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    settings = explain_lesson.VanishingSettings.tiny()
    demo = explain_lesson.run_vanishing_demo(settings, kinds=("tanh", "residual"))
    assert set(demo.runs) == set(demo.trained) == {"tanh", "residual"}
    images, labels = explain_lesson.norm_batch("tanh", settings)
    assert len(images) == settings.init_images
    for kind in ("tanh", "residual"):
        trained, initial = demo.trained[kind], demo.initial[kind]
        assert trained.layers == initial.layers and trained.seeds == initial.seeds == settings.seeds
        assert trained.norms.shape == initial.norms.shape == (len(settings.seeds), len(initial.layers))
        assert not np.allclose(trained.norms, initial.norms)  # the models did train
        for row, run in zip(trained.norms, demo.runs[kind]):
            before = run.predict(images)
            expected = _tape_norms(run.model, images, labels)
            assert sorted(expected) == sorted(trained.layers)
            np.testing.assert_allclose(row, [expected[name] for name in trained.layers], rtol=1e-4)
            np.testing.assert_allclose(run.predict(images), before, atol=1e-6)  # measuring changed nothing
    # Every convolution inside the residual blocks is measured, not only the dense layer.
    residual_convs = [name for name in demo.trained["residual"].layers if "conv" in name]
    assert len(residual_convs) == 2 * (settings.depth // 2) + 1  # + the first block's 1x1 projection


def test_the_budget_is_stated_in_updates_and_the_estimate_scales_with_the_work():
    default = explain_lesson.VanishingSettings()
    assert default.updates == default.epochs * -(-default.limit_train // default.batch_size)
    assert explain_lesson.estimated_seconds(default) == explain_lesson.MEASURED_DEFAULT_SECONDS
    doubled = dataclasses.replace(default, epochs=2 * default.epochs)
    assert explain_lesson.estimated_seconds(doubled) == pytest.approx(2 * explain_lesson.MEASURED_DEFAULT_SECONDS)
    assert explain_lesson.estimated_seconds(explain_lesson.VanishingSettings.tiny()) < 1


def test_the_warmup_pretrains_every_network_of_the_default_demo():
    for tiny, settings in ((False, explain_lesson.VanishingSettings()), (True, explain_lesson.VanishingSettings.tiny())):
        planned = {item.config.key() for item in warmup.warmup_plan(["explain"], tiny=tiny)}
        demo = [config.key() for config in explain_lesson.demo_configs(settings)]
        assert len(demo) == len(explain_lesson.DEPTH_VARIANTS) * len(settings.seeds)
        assert set(demo) <= planned
        assert [c.seed for c in explain_lesson.demo_configs(settings, ["tanh"])] == list(settings.seeds)
