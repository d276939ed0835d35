"""Regression corpus of issue 14, points 1 and 2: the resource budget of a training run and the
bounded-memory upload decoder.

Each refused case asserts the student's message and that nothing was built or decoded: the
checks run in a child process whose peak memory (``VmHWM``) and imported modules are
measured. The estimate's oracle is Keras itself (`count_params()` of the built presets) and the
real peak memory of a training run in a fresh process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from cnnviz import architecture, data, images
from cnnviz.architecture import budget
from cnnviz.errors import BudgetError, ImageDecodeError, SettingsError
from cnnviz.lessons import augmentation, lenet_vs_relu
from cnnviz.lessons import train as train_lesson
from cnnviz.training import TrainConfig, warmup

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

# The issue's stacks: a Dense layer of a million units, a Conv2D of 20,000 filters.
DENSE_MILLION = [{"type": "flatten"}, {"type": "dense", "units": 1_000_000, "activation": "relu"},
                 {"type": "dense", "units": 10, "activation": "softmax"}]
CONV_20000 = [{"type": "conv2d", "filters": 20_000, "kernel_size": 3, "activation": "relu"}, {"type": "flatten"},
              {"type": "dense", "units": 10, "activation": "softmax"}]
# Counted by hand: (784 + 1)·1,000,000 + (1,000,000 + 1)·10, and (3·3·1 + 1)·20,000 + (26·26·20,000 + 1)·10.
DENSE_MILLION_PARAMS = 785 * 1_000_000 + 1_000_001 * 10
CONV_20000_PARAMS = 10 * 20_000 + (26 * 26 * 20_000 + 1) * 10


# The peak memory of the child's own process image. (`ru_maxrss` would not do: after fork and exec
# it still holds the parent's peak, here pytest's, which hides anything smaller.)
PEAK = """
def peak_bytes():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
"""


def _child(script: str, timeout: float = 300, args: tuple[str, ...] = ()) -> dict:
    """Run `script` in a fresh interpreter (the project on its path, `peak_bytes()` defined, `args`
    in `sys.argv[1:]`); its last line is JSON."""
    script = PEAK + textwrap.dedent(script)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run([sys.executable, "-c", script, *args], cwd=PROJECT_ROOT, env=env,
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Point 1: the budget
# --------------------------------------------------------------------------------------------

def test_the_issue_stacks_are_refused_with_numbers_before_anything_is_built():
    """Validation and the Keras builder refuse both stacks; Keras is never imported, memory stays flat."""
    result = _child(f"""
        import json, sys, time
        from cnnviz.architecture import build_keras_model
        from cnnviz.errors import BudgetError
        from cnnviz.training import TrainConfig
        messages, start = {{}}, time.perf_counter()
        before = peak_bytes()
        for name, stack in (("dense", {DENSE_MILLION!r}), ("conv", {CONV_20000!r})):
            for where in ("validate", "build"):
                try:
                    if where == "validate":
                        TrainConfig.from_stack(stack).validate(train_images=60_000, test_images=10_000)
                    else:
                        build_keras_model((28, 28, 1), stack)
                except BudgetError as error:
                    messages[name + " " + where] = str(error)
        print(json.dumps({{"messages": messages, "seconds": time.perf_counter() - start,
                          "keras": "keras" in sys.modules or "tensorflow" in sys.modules,
                          "grew_mb": (peak_bytes() - before) / 2**20, "peak_mb": peak_bytes() / 2**20}}))
    """)
    assert set(result["messages"]) == {"dense validate", "dense build", "conv validate", "conv build"}
    assert result["keras"] is False  # Refused before Keras (and TensorFlow) was even imported.
    assert result["grew_mb"] < 20 and result["peak_mb"] < 150 and result["seconds"] < 5, result
    dense, conv = result["messages"]["dense validate"], result["messages"]["conv validate"]
    assert f"{DENSE_MILLION_PARAMS:,} parameters" in dense and f"{CONV_20000_PARAMS:,} parameters" in conv
    # Activations per batch of 128: every layer's output plus the input, counted by hand.
    assert f"{(784 + 784 + 1_000_000 + 10) * 128:,} activation values per batch of 128 images" in dense
    assert f"{(784 + 26 * 26 * 20_000 + 26 * 26 * 20_000 + 10) * 128:,} activation values" in conv
    for message in result["messages"].values():
        assert "too big to train on this server" in message and f"at most {budget.DEFAULT_MEMORY_MB} MB" in message
        assert "calculator still counts" in message
    assert "layer 2, dense" in dense and "layer 1, conv2d" in conv  # The layer to change.
    assert "weights, gradients and the optimizer's state 17.8 GB" in dense  # 795 M × 6 copies × 4 bytes.


def test_a_100_epoch_run_at_batch_1_on_the_full_data_is_refused():
    config = TrainConfig(batch_size=1, epochs=100)
    with pytest.raises(BudgetError) as error:
        config.validate(train_images=60_000, test_images=10_000)
    message = str(error.value)
    assert "100 epochs × 60,000 batches" in message and "6,000,000 weight updates" in message
    assert f"at most {budget.MAX_TRAINING_STEPS:,}" in message
    assert "batches of at least 240 images" in message  # 60,000 × 100 / 25,000.
    # Without a known training-set size, validation leaves the run length to the engine...
    config.validate()
    # ...which checks it on the prepared images (the same rule).
    with pytest.raises(BudgetError, match="6,000,000 weight updates"):
        config.check_budget((28, 28, 1), 60_000, 10_000)
    # The limit itself is exact: 25,000 updates pass, one more batch does not.
    assert budget.steps_problem(10, 2_500 * 128, 128) is None
    assert budget.steps_problem(10, 2_500 * 128 + 1, 128) is not None


def test_the_budget_is_a_settings_error_and_one_environment_variable_sets_it(monkeypatch):
    assert issubclass(BudgetError, SettingsError)
    config = train_lesson.default_config()
    config.validate(train_images=10_000)
    monkeypatch.setenv(budget.MEMORY_ENV, "100")
    with pytest.raises(BudgetError, match="at most 100 MB"):
        config.validate(train_images=10_000)
    monkeypatch.setenv(budget.MEMORY_ENV, "lots")
    with pytest.raises(BudgetError, match=budget.MEMORY_ENV):  # Loud, never silently the default.
        config.validate()
    monkeypatch.delenv(budget.MEMORY_ENV)
    assert budget.memory_budget_bytes() == budget.DEFAULT_MEMORY_MB * MB


TRAIN_PAGE_PRESETS = ("fashion_relu_cnn", "lenet5_tanh", "cifar10_cnn", "bottleneck_cnn")  # app_pages/train.py


@pytest.mark.parametrize("dataset", data.DATASETS)
@pytest.mark.parametrize("preset", TRAIN_PAGE_PRESETS)
def test_every_train_page_preset_fits_at_the_defaults_and_on_all_the_data(dataset, preset):
    spec = data.spec(dataset)
    stack = architecture.stack_for(preset, spec.image_shape, spec.num_classes)
    full_train = 50_000 if dataset == "cifar10" else 60_000
    config = TrainConfig.from_stack(stack, dataset=dataset, **train_lesson.DEFAULT_HYPERPARAMETERS)
    config.validate(train_images=train_lesson.DEFAULT_TRAIN_IMAGES, test_images=train_lesson.DEFAULT_TEST_IMAGES)
    config.validate(train_images=full_train, test_images=10_000)
    for epochs in (10, 50):  # The page's epochs at batch 128 on all the data.
        config.replace(epochs=epochs).validate(train_images=full_train, test_images=10_000)


def test_the_warmup_set_and_the_page_defaults_fit_with_their_seeds_together():
    plan = warmup.warmup_plan() + warmup.warmup_plan(tiny=True)
    assert {item.page for item in plan} == set(warmup.PAGES)
    for item in plan:
        item.config.validate()
        # The pages train their seeds together (cnnviz.training.seed_stack): three models side by side,
        # on at most all of the data.
        config = item.config
        config.check_budget(train_images=config.limit_train or 60_000, test_images=config.limit_test or 10_000,
                            seeds=3)
    for variant in augmentation.overfitting_variants():
        variant.config.check_budget(seeds=len(augmentation.DEFAULT_SEEDS))


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_the_seeds_settings_full_data_and_10_epochs_fit(dataset):
    settings = lenet_vs_relu.ComparisonSettings.as_in_the_seeds(dataset)
    for config in lenet_vs_relu.comparison_configs(settings).values():
        assert config.limit_train is None and config.epochs == 10
        config.validate(train_images=60_000, test_images=10_000)  # ReLU CNN: 10 × 1,875 = 18,750 updates.


def test_a_run_whose_images_dominate_gets_advice_about_the_images():
    """The seeds' plain `model.fit` on all of CIFAR-10 keeps 50,000 images as float32 (measured: 1.9 GB)."""
    settings = lenet_vs_relu.ComparisonSettings.as_in_the_seeds("cifar10")
    config = lenet_vs_relu.comparison_configs(settings)[lenet_vs_relu.RELU_CNN]
    with pytest.raises(BudgetError) as error:
        config.validate(train_images=50_000, test_images=10_000)
    message = str(error.value)
    assert message.startswith("This run needs more memory than this server allows")
    assert "copies of the images 1.7 GB" in message and "fast engine" in message
    config.replace(fast=True).validate(train_images=50_000, test_images=10_000)  # The fast engine fits.


def _values_held(layer) -> int:
    """The values per image a layer's forward pass keeps for the backward pass: its output, or, for
    a nested model (a residual block), every inner layer's output (its branches and the sum)."""
    import keras

    if isinstance(layer, keras.layers.InputLayer):
        return 0  # a Functional model's input (counted once, below, as the input image)
    if isinstance(layer, keras.Model):
        return sum(_values_held(inner) for inner in layer.layers)
    return int(np.prod(layer.output.shape[1:]))


def test_the_estimate_counts_what_keras_counts_for_every_buildable_preset():
    """The oracle: Keras' own parameter count of each built model, and the byte arithmetic."""
    pytest.importorskip("keras")
    for key, preset in architecture.PRESETS.items():
        if key in ("alexnet_style", "vgg16"):
            # 62 M and 138 M parameters: counted (the calculator shows them), never built.
            with pytest.raises(BudgetError, match=f"{preset.total_params:,} parameters"):
                architecture.build_keras_model(preset.input_shape, preset.layers)
            continue
        estimate = budget.estimate(preset.input_shape, preset.layers, batch_size=32, optimizer="adam")
        model = architecture.build_keras_model(preset.input_shape, preset.layers)
        assert estimate.params == model.count_params() == preset.total_params
        assert estimate.parameter_bytes == model.count_params() * budget.STATE_COPIES["adam"] * 4
        outputs = sum(_values_held(layer) for layer in model.layers)
        assert estimate.activations_per_image == outputs + int(np.prod(preset.input_shape))
        assert estimate.activation_bytes == estimate.activations_per_image * 32 * budget.ACTIVATION_COPIES * 4


MEASURE_RUN = """
    import json, sys
    from types import SimpleNamespace
    import numpy as np
    import keras  # noqa: F401 - loaded before the baseline, as on a server that has trained before.
    from cnnviz import training
    from cnnviz.architecture import budget
    spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {spec!r}
    shape, n_train, n_test = tuple(spec["shape"]), spec["train"], spec["test"]
    rng = np.random.default_rng(0)
    data = SimpleNamespace(x_train=rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
                           y_train=rng.integers(0, 10, n_train), x_test=rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
                           y_test=rng.integers(0, 10, n_test), class_names=tuple("0123456789"), source="injected")
    config = training.TrainConfig.from_stack(spec["layers"], batch_size=spec["batch"], epochs=1)
    before = peak_bytes()
    training.train(config, data=data, use_cache=False)
    after = peak_bytes()
    estimate = budget.estimate(shape, spec["layers"], batch_size=spec["batch"], optimizer="adam",
                               train_images=n_train, test_images=n_test)
    print(json.dumps({{"measured": after - before, "estimated": estimate.total_bytes}}))
"""


@pytest.mark.slow
def test_the_memory_estimate_covers_a_real_training_run():
    """The estimate against the real peak memory of a run whose weights dominate (5.8 M parameters)."""
    spec = {"shape": [28, 28, 1], "train": 4_000, "test": 1_000, "batch": 128,
            "layers": [{"type": "flatten"}, {"type": "dense", "units": 2048, "activation": "relu"},
                       {"type": "dense", "units": 2048, "activation": "relu"},
                       {"type": "dense", "units": 10, "activation": "softmax"}]}
    result = _child(MEASURE_RUN.format(spec=spec), timeout=600)
    measured, estimated = result["measured"], result["estimated"]
    # Measured here: 289 MB and, on a busier machine, 351 MB of peak growth against an estimate of
    # 239 MB (the allocator's peak varies with threading); the bound catches an estimate that is
    # off by a factor of two, which is what the budget must not be.
    assert 0.6 * estimated <= measured <= 1.8 * estimated, (measured / MB, estimated / MB)


def test_the_default_budget_leaves_a_fresh_server_under_its_process_limit():
    """The arithmetic the process guarantee rests on: baseline + the default run limit fit, and the
    fast engine's images count once, one byte per uint8 value (no float or tensor copies)."""
    assert budget.BASELINE_BYTES + budget.DEFAULT_MEMORY_MB * MB <= budget.PROCESS_LIMIT_BYTES
    cifar_cnn = architecture.PRESETS["cifar10_cnn"]
    fast = budget.estimate(cifar_cnn.input_shape, cifar_cnn.layers, batch_size=128, optimizer="adam",
                           train_images=50_000, test_images=10_000)
    assert fast.data_bytes == 60_000 * 32 * 32 * 3
    assert fast.process_bytes == budget.BASELINE_BYTES + fast.total_bytes
    plain = budget.estimate(cifar_cnn.input_shape, cifar_cnn.layers, batch_size=128, optimizer="adam",
                            train_images=50_000, test_images=10_000, fast=False)
    assert plain.data_bytes == 32 * 32 * 3 * (50_000 * 10 + 10_000 * 9)


PREPARED_DATA_DIR = os.environ.get("CNNVIZ_DATA_DIR", "")
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

LARGEST_RUN = """
    import json, sys
    from cnnviz import architecture, data, training
    from cnnviz.architecture import budget
    from cnnviz.errors import BudgetError
    name, stop_after = sys.argv[1], int(sys.argv[2])
    dataset = data.load(name)  # All of it ("Use all the data"), decoded here if the disk cache is cold.
    spec = data.spec(name)
    stack = architecture.stack_for(spec.default_preset, spec.image_shape, spec.num_classes)
    config = training.TrainConfig.from_stack(stack, dataset=name, epochs=1, optimizer="adam", fast=True)
    n_train, n_test = len(dataset.x_train), len(dataset.x_test)

    def fits(batch):
        try:
            config.replace(batch_size=batch).check_budget(spec.image_shape, n_train, n_test)
        except BudgetError:
            return False
        return True

    low, high = 1, n_train  # The largest batch the budget accepts (memory grows with the batch).
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    config = config.replace(batch_size=low)
    # Stop after a few graph calls of weight updates (their peak is every call's) unless told
    # otherwise: the stop then evaluates the final model on the whole test split.
    result = training.train(config, lambda p: not stop_after or p.phase != "train" or p.batch < stop_after,
                            data=dataset, use_cache=False)
    estimate = budget.estimate(spec.image_shape, stack, batch_size=low, optimizer="adam",
                               train_images=n_train, test_images=n_test)
    print(json.dumps({"peak": peak_bytes(), "batch": low, "images": n_train, "estimate": estimate.process_bytes,
                      "stopped": result.stopped_reason}))
"""


def _largest_dataset() -> tuple[str, str]:
    """(dataset, data folder): CIFAR-10 when `CNNVIZ_DATA_DIR` holds its class folders (CI unpacks
    them there), else the full Fashion-MNIST of the shared offline folder; a skip without either."""
    prepared = Path(PREPARED_DATA_DIR) if PREPARED_DATA_DIR else None
    if prepared and (prepared / "cifar10" / "train").is_dir() and (prepared / "cifar10" / "test").is_dir():
        return "cifar10", str(prepared)
    if (SHARED_DATA / "fashion-mnist").is_dir():
        return "fashion_mnist", str(SHARED_DATA)
    pytest.skip("neither CIFAR-10 class folders in CNNVIZ_DATA_DIR nor ../shared/data/fashion-mnist")


@pytest.mark.slow
def test_the_largest_run_the_default_budget_allows_stays_under_the_limit_on_a_fresh_server(monkeypatch):
    """Issue 14's done-when: a fresh process (Python, TensorFlow, the dataset loaded or decoded)
    trains the largest run the default budget accepts on every image of the largest dataset (the
    page's CNN, the largest batch) and its peak resident memory (VmHWM) stays under 1.5 GB; the
    budget's estimate of the whole process is honest: never below the peak, at most 25 % above it.

    Measured (sizes in MB of 2**20 bytes, on a machine loaded by other test runs): all of CIFAR-10 at
    batch 863 (the budget's largest), stopped after 8 updates, 1,218 against an estimate of 1,400;
    all of Fashion-MNIST at batch 5,837, 1,200 / 1,400. Before the engine stopped copying the images,
    the page's batch of 128 alone peaked at 1,522 for CIFAR-10. The test took 92 s on that loaded
    machine with CIFAR-10 already in the disk cache (decoding it first adds about 30 s).
    """
    name, folder = _largest_dataset()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", folder)
    monkeypatch.delenv(budget.MEMORY_ENV, raising=False)  # The default budget.
    result = _child(LARGEST_RUN, timeout=900, args=(name, "8"))
    assert result["stopped"] == "stopped" and result["batch"] > 128, result
    assert result["peak"] < budget.PROCESS_LIMIT_BYTES, (result["peak"] / MB, result)
    assert result["peak"] <= result["estimate"] <= 1.25 * result["peak"], (result["peak"] / MB, result["estimate"] / MB)


# --------------------------------------------------------------------------------------------
# Point 1 on the Train page
# --------------------------------------------------------------------------------------------

def test_the_train_page_shows_the_budget_message_for_a_huge_stack_from_a_link():
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "train.py"), default_timeout=120)
    at.query_params["train_preset"] = "custom"
    at.query_params["train_custom_stack"] = json.dumps(DENSE_MILLION, separators=(",", ":"))
    at.run()
    assert not at.exception
    # The calculator's count is still shown...
    assert any(f"{DENSE_MILLION_PARAMS:,} parameters" in element.value for element in at.markdown)
    # ...but the run is refused with the budget's message, and Train is disabled.
    errors = " ".join(str(element.value) for element in at.error)
    assert "too big to train on this server" in errors and f"{DENSE_MILLION_PARAMS:,} parameters" in errors
    assert at.button(key="train_start").disabled
    assert "train_result" not in at.session_state


def test_the_train_page_refuses_a_run_too_long_for_the_server():
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "train.py"), default_timeout=120).run()
    at.number_input(key="train_batch_size").set_value(1)
    at.number_input(key="train_epochs").set_value(100).run()
    assert not at.exception
    errors = " ".join(str(element.value) for element in at.error)
    assert "1,000,000 weight updates" in errors  # 100 epochs × 10,000 batches of 1 image.
    assert at.button(key="train_start").disabled


# --------------------------------------------------------------------------------------------
# Point 2: uploads decoded with bounded memory
# --------------------------------------------------------------------------------------------

def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def transparent_6300(tmp_path_factory) -> Path:
    """The issue's upload: a 6300 × 6300 transparent PNG of under 200 kB (39.7 megapixels)."""
    image = Image.new("RGBA", (6300, 6300), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([600, 600, 5700, 5700], fill=(200, 30, 30, 255))
    draw.rectangle([2000, 2000, 4300, 4300], fill=(30, 30, 200, 128))
    path = tmp_path_factory.mktemp("uploads") / "transparent-6300.png"
    path.write_bytes(_png(image))
    return path


DECODE_IN_CHILD = """
    import json, sys
    from pathlib import Path
    from cnnviz import images
    data = Path({path!r}).read_bytes()
    before = peak_bytes()
    outcome = {{}}
    for _ in range(2):  # Two decodes of one upload (a page rerun): the second comes from the cache.
        try:
            decoded = images.decode_image(data, max_side={max_side})
            outcome = {{"shape": list(decoded.pixels.shape), "dtype": str(decoded.pixels.dtype)}}
        except images.ImageDecodeError as error:
            outcome = {{"error": str(error)}}
    after = peak_bytes()
    print(json.dumps({{**outcome, "grew": after - before, "peak": after}}))
"""


def test_the_6300_pixel_transparent_png_is_refused_before_decoding(transparent_6300):
    assert len(transparent_6300.read_bytes()) < 200_000 and 6300 * 6300 <= images.MAX_PIXELS
    result = _child(DECODE_IN_CHILD.format(path=str(transparent_6300), max_side=256))
    assert "6,300 × 6,300 pixels with transparency" in result["error"]
    assert f"{images.working_bytes('RGBA', 6300, 6300) / MB:,.0f} MB" in result["error"]  # 303 MB.
    assert "Shrink the image" in result["error"]
    # Nothing was decoded: the child's peak memory did not grow by even one full-size plane.
    assert result["grew"] < 6300 * 6300, result


def test_a_large_accepted_upload_stays_within_its_working_size_and_ends_uint8(tmp_path):
    """4000 × 3000 with transparency (92 MB working size) decodes; the real peak stays within it.

    The float64 decoder of the issue needed 12 M × 4 × 8 bytes = 384 MB for the alpha alone.
    """
    width, height = 4000, 3000
    alpha = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    rgba = np.dstack([np.full((height, width), 10, np.uint8), np.full((height, width), 120, np.uint8),
                      np.full((height, width), 240, np.uint8), alpha])
    path = tmp_path / "large.png"
    path.write_bytes(_png(Image.fromarray(rgba, "RGBA")))
    working = images.working_bytes("RGBA", width, height)
    assert working <= images.MAX_WORKING_BYTES
    result = _child(DECODE_IN_CHILD.format(path=str(path), max_side=128))
    assert result["shape"] == [96, 128, 3] and result["dtype"] == "uint8", result
    assert result["grew"] <= working + 16 * MB, (result["grew"] / MB, working / MB)
    assert result["peak"] < 400 * MB


def test_16_bit_pictures_decode_into_uint8_at_any_size():
    # Large: shrunk in 16 bits (no full-size float copy), scaled on the small copy.
    level = 40_000
    big = Image.fromarray(np.full((1500, 3000), level, dtype=np.uint16))
    decoded = images.decode_image(_png(big))
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == (128, 256)
    assert np.all(decoded.pixels == round(level / 65535 * 255))
    assert "16-bit grayscale was scaled to 8 bits." in decoded.notes
    # A horizontal 16-bit ramp keeps its order and its ends after shrinking.
    ramp = Image.fromarray(np.tile(np.linspace(0, 65535, 2000).astype(np.uint16), (50, 1)))
    pixels = images.decode_image(_png(ramp)).pixels.astype(int)
    assert pixels[:, 0].max() <= 2 and pixels[:, -1].min() >= 253
    assert np.all(np.diff(pixels[3]) >= -1)


@pytest.mark.parametrize("size", [(100_000, 1), (1, 100_000)])
def test_a_100000_by_1_strip_decodes_into_a_small_uint8_strip(size):
    width, height = size
    values = (np.arange(width * height) // 1000 % 2 * 255).astype(np.uint8).reshape(height, width)
    decoded = images.decode_image(_png(Image.fromarray(values)))
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.shape == ((1, 256) if width > height else (256, 1))
    assert decoded.original_size == size and decoded.was_resized
    # 100 alternating black/white runs of 1,000 pixels: about as many runs remain after shrinking.
    line = decoded.pixels.ravel().astype(int)
    assert line.min() < 30 and line.max() > 225


def test_one_upload_is_decoded_once_and_the_cache_is_bounded(monkeypatch):
    images.clear_cache()
    calls = []
    real_decode = images._decode
    monkeypatch.setattr(images, "_decode", lambda data, side: calls.append(side) or real_decode(data, side))
    picture = _png(Image.new("RGB", (600, 300), (10, 200, 30)))
    first = images.decode_image(picture)
    first.pixels[:] = 0  # A page scribbling on its copy does not change what the cache returns.
    again = images.decode_image(picture)
    assert calls == [256] and int(again.pixels[0, 0, 1]) > 190
    images.decode_image(picture, max_side=128)  # Another working size is another decode.
    assert calls == [256, 128]
    noise = _png(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    refused = noise[:len(noise) // 2]
    for _ in range(2):
        with pytest.raises(ImageDecodeError, match="damaged or truncated"):
            images.decode_image(refused)
    assert calls == [256, 128, 256]  # A refusal is remembered too.
    for value in range(images.CACHE_ENTRIES + 5):
        images.decode_image(_png(Image.new("L", (3, 3), value)))
    assert len(images._cache) == images.CACHE_ENTRIES
    images.clear_cache()


def test_every_page_uses_the_one_decoder_with_one_set_of_limits(transparent_6300):
    data_6300 = transparent_6300.read_bytes()
    messages = set()
    for decode in (lambda: images.decode_image(data_6300), lambda: images.decode_image(data_6300, max_side=128),
                   lambda: train_lesson.prepare_upload(data_6300, "mnist")):
        with pytest.raises(ImageDecodeError) as error:
            decode()
        messages.add(str(error.value))
    assert len(messages) == 1
