"""Pre-trained backbones (keras.applications VGG16, MobileNetV2) as a layer type, and their weights.

The oracle is Keras itself: `keras.applications.<X>(include_top=False, weights=None)` built
straight from Keras (not through cnnviz) gives the counts, shapes and multiply-adds, and
`keras.applications.<x>.preprocess_input` the input convention. Nothing here downloads anything.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from keras_oracle import keras, keras_rows, our_rows

from cnnviz import architecture as arch
from cnnviz.architecture import ArchitectureError, backbones
from cnnviz.data import sources
from cnnviz.errors import WeightsUnavailable

APPLICATIONS = {"vgg16": keras.applications.VGG16, "mobilenet_v2": keras.applications.MobileNetV2}


def _stack(name, *, trainable=False, weights=None, head=10):
    return [{"type": "pretrained_backbone", "backbone": name, "weights": weights, "trainable": trainable},
            {"type": "globalavgpool2d"}, {"type": "dense", "units": head, "activation": "softmax"}]


def _oracle(name, side_h, side_w, trainable):
    base = APPLICATIONS[name](include_top=False, weights=None, input_shape=(side_h, side_w, 3))
    base.trainable = trainable
    trainable_count = sum(int(np.prod(w.shape)) for w in base.trainable_weights)
    mult_adds = 0
    for layer in base.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D"):
            out_h, out_w = layer.output.shape[1:3]
            kh, kw = layer.kernel_size
            channels_in = layer.input.shape[-1]
            per_position = kh * kw * channels_in * (layer.filters if kind == "Conv2D" else 1)
            mult_adds += out_h * out_w * per_position
    return base, trainable_count, mult_adds


@pytest.mark.parametrize("name, shape, trainable", [
    ("mobilenet_v2", (37, 45, 1), True),  # odd sizes exercise Keras' asymmetric padding
    ("vgg16", (48, 40, 3), False),
])
def test_counts_shapes_and_mult_adds_equal_keras(name, shape, trainable):
    base, oracle_trainable, oracle_mult_adds = _oracle(name, shape[0], shape[1], trainable)
    row = arch.summarize(shape, _stack(name, trainable=trainable))[0]
    assert row.params == base.count_params()
    assert row.trainable_params == oracle_trainable
    assert row.non_trainable_params == base.count_params() - oracle_trainable
    assert row.output_shape == tuple(base.output.shape[1:])
    assert row.mult_adds == oracle_mult_adds
    # The model cnnviz builds has the same counts, row for row, as the calculator says.
    model = arch.build_keras_model(shape, _stack(name, trainable=trainable))
    assert keras_rows(model) == our_rows(arch.summarize(shape, _stack(name, trainable=trainable)))
    assert model.count_params() == sum(r.params for r in arch.summarize(shape, _stack(name, trainable=trainable)))


def test_the_well_known_totals():
    # Published counts of the bases without their top (Keras' documentation).
    assert arch.summarize((32, 32, 3), _stack("vgg16"))[0].params == 14_714_688
    assert arch.summarize((32, 32, 3), _stack("mobilenet_v2"))[0].params == 2_257_984
    frozen = arch.totals(arch.summarize((32, 32, 3), _stack("vgg16")))
    assert (frozen.trainable_params, frozen.non_trainable_params) == (512 * 10 + 10, 14_714_688)
    assert arch.summarize((32, 32, 3), _stack("vgg16"))[0].receptive_field == (212, 212)  # VGG16's, published


@pytest.mark.parametrize("name, channels", [("vgg16", 1), ("mobilenet_v2", 3)])
def test_inside_the_block_the_input_follows_the_backbones_preprocess_input(name, channels):
    model = arch.build_keras_model((32, 32, channels), _stack(name))
    block = model.get_layer("pretrained_backbone")
    preprocessed = keras.Model(block.input, block.get_layer("pretrained_backbone_preprocess").output)
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, channels), dtype=np.uint8)
    ours = preprocessed(arch.scale_images(pixels)).numpy()  # the network's input: pixel / 255
    rgb = np.repeat(pixels, 3, axis=-1) if channels == 1 else pixels
    module = getattr(keras.applications, name)
    expected = np.asarray(module.preprocess_input(rgb.astype(np.float32)))
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_a_saved_model_reloads_with_the_same_outputs(tmp_path):
    model = arch.build_keras_model((32, 32, 3), _stack("vgg16"))
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras", compile=False)
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())


def test_exported_code_builds_the_same_model():
    stack = _stack("vgg16")
    namespace: dict = {}
    exec(arch.keras_code((32, 32, 3), stack).replace("model.summary()", ""), namespace)  # noqa: S102
    assert namespace["model"].count_params() == arch.build_keras_model((32, 32, 3), stack).count_params()


@pytest.mark.parametrize("shape, layer, message", [
    ((28, 28, 1), {}, "at least 32×32"),
    ((32, 32, 4), {}, "not 4 channels"),
    ((32, 32, 3), {"backbone": "resnet50"}, "unknown backbone"),
    ((32, 32, 3), {"weights": "cifar"}, "must be 'imagenet'"),
])
def test_impossible_backbones_are_explained(shape, layer, message):
    spec = {"type": "pretrained_backbone", "backbone": "mobilenet_v2", **layer}
    with pytest.raises(ArchitectureError, match=message):
        arch.summarize(shape, [spec, {"type": "flatten"}, {"type": "dense", "units": 2}])


def test_backbone_must_come_before_flatten():
    with pytest.raises(ArchitectureError, match="image-shaped input"):
        arch.summarize((32, 32, 3), [{"type": "flatten"}, {"type": "pretrained_backbone", "backbone": "vgg16"}])


# ---------------------------------------------------------------------------------------------
# Weights: the Keras cache, the download check, the message.


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("CNNVIZ_OFFLINE", raising=False)
    return tmp_path / "keras"


def test_weights_found_in_the_keras_cache_under_keras_home(keras_home, monkeypatch):
    monkeypatch.setattr(sources, "host_reachable", lambda host: pytest.fail("no network check for a cached file"))
    path = keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    status = backbones.weights_status("mobilenet_v2", (32, 32, 3))
    assert (status.available, status.where, status.path) == (True, "cache", path)
    assert backbones.weights_file_for_keras("mobilenet_v2", (32, 32, 3), "imagenet") == str(path)
    # MobileNetV2 has weights of its own at 96 px: another file, not in the cache.
    assert backbones.weights_file("mobilenet_v2", (96, 96, 3)).endswith("_1.0_96_no_top.h5")


def test_without_internet_the_option_explains_itself(keras_home, monkeypatch):
    monkeypatch.setattr(sources, "host_reachable", lambda host: False)
    status = backbones.weights_status("vgg16", (32, 32, 3))
    assert not status.available
    assert "not available" in status.message and "no internet" in status.message
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in status.message
    with pytest.raises(WeightsUnavailable, match="no internet"):
        arch.build_keras_model((32, 32, 3), _stack("vgg16", weights="imagenet"))
    assert not keras_home.exists()  # nothing was written


def test_downloadable_when_the_host_answers_and_the_cache_can_be_written(keras_home, monkeypatch):
    monkeypatch.setattr(sources, "host_reachable", lambda host: host == backbones.WEIGHTS_HOST)
    status = backbones.weights_status("vgg16", (32, 32, 3))
    assert (status.available, status.where) == (True, "download")
    assert status.path == keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_no_download_outside_the_keras_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))  # cannot be created
    monkeypatch.delenv("CNNVIZ_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "host_reachable", lambda host: True)
    status = backbones.weights_status("vgg16", (32, 32, 3))
    assert not status.available and "cannot be written" in status.message


def test_offline_switch_and_random_weights(keras_home, monkeypatch):
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    assert "switched off" in backbones.weights_status("vgg16", (32, 32, 3)).message
    random = backbones.weights_status("vgg16", (32, 32, 3), None)
    assert (random.available, random.where) == (True, "none")


def test_the_real_reachability_check_is_short():
    start = time.perf_counter()
    assert not sources.host_reachable("cnnviz-weights-test.invalid")
    assert time.perf_counter() - start < sources.REACH_TIMEOUT_SECONDS + 0.5


def test_imagenet_weights_are_loaded_from_the_keras_cache(keras_home, monkeypatch):
    """A weights file in the Keras cache (here: seeded random weights written in the legacy .h5
    layout keras.applications ships) is what the built backbone holds; nothing is downloaded."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    monkeypatch.setattr(sources, "host_reachable", lambda host: pytest.fail("a cached file needs no network"))
    keras.utils.set_random_seed(7)
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = keras_home / "models" / backbones.weights_file("vgg16", (32, 32, 3))
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, source)
    keras.utils.set_random_seed(8)  # Other random weights, unless the file is loaded.
    model = arch.build_keras_model((32, 32, 3), _stack("vgg16", weights="imagenet"))
    base = model.get_layer("pretrained_backbone").layers[-1]
    for ours, theirs in zip(base.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
