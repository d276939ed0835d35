"""What the network looks at: the views of the explain lesson, computed on a trained `TrainResult`.

Each view is one call that the page makes (`grad_cam_view`, `saliency_view`, `occlusion_view`,
`feature_view`, `training_record`; the vanishing-gradients demonstration `run_vanishing_demo`:
per-layer gradient norms at initialisation and after training, on the same fixed images, and the
accuracy each variant reaches under one budget of weight updates, judged by `verdicts.compare`),
returning plain arrays for `cnnviz.figures.explain`. The maths is in
`cnnviz.explain`; images are uint8 H x W x C as the dataset gives them. The default model is the
Train page's default run (`default_config`, pre-trained by `python -m cnnviz warmup`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cnnviz import explain, training, verdicts
from cnnviz.architecture import build_keras_model, summarize, totals
from cnnviz.lessons import train as train_lesson
from cnnviz.training import Progress, TrainConfig, TrainResult, diagnostics, inputs, warmup
from cnnviz.training.diagnostics import TrainingRecord

SMOOTH_SAMPLES = 16
SMOOTH_NOISE = 0.15
FEATURE_FILTERS = 8  # Filters drawn by the feature visualisation.
FEATURE_STEPS = explain.DEFAULT_STEPS
TOP_IMAGES = 3  # The most exciting test images shown beside each filter's picture.


def default_config() -> TrainConfig:
    """The model the page opens on: the Train page's default run (`cnnviz.lessons.train.default_config`)."""
    return train_lesson.default_config()


# The other lessons whose default models (seed 0) can be explained here once they are trained.
OTHER_LESSON_PAGES = ("lenet_vs_relu", "augmentation")


def other_lesson_models(*, tiny: bool = False) -> list[tuple[str, TrainConfig]]:
    """(label, config) of the other lessons' default models (seed 0) that are in the disk cache now:
    trained on their pages or by `python -m cnnviz warmup`. Nothing is loaded or trained here."""
    models = []
    for page in OTHER_LESSON_PAGES:
        for item in warmup.page_items(page, tiny=tiny):
            if item.config.seed == 0 and training.is_cached(item.config):
                models.append((f"{warmup.PAGE_TITLES[page]}: {item.label.removesuffix(', seed 0')}", item.config))
    return models


def conv_layer_names(result: TrainResult) -> list[str]:
    """The conv layers Grad-CAM can look at, in forward order."""
    return explain.conv_layer_names(result.model)


def upsample(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map at a layer's resolution stretched (bilinear, corners aligned) to an image's height x width."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape == tuple(shape):
        return values.astype(np.float32)
    zoom = (shape[0] / values.shape[0], shape[1] / values.shape[1])
    return np.clip(ndimage.zoom(values, zoom, order=1, grid_mode=False), 0.0, None).astype(np.float32)


def probabilities(result: TrainResult, image: np.ndarray) -> np.ndarray:
    """Class probabilities (K,) of one image, under the result's lock."""
    return result.predict(image)[0]


@dataclass(frozen=True)
class GradCamView:
    """Grad-CAM of the chosen class beside the predicted class's, for one image."""

    layer_name: str
    layer_names: tuple[str, ...]  # The conv layers a student can choose.
    probabilities: np.ndarray  # (K,)
    predicted: int
    chosen: int
    chosen_map: np.ndarray  # (h, w) at the layer's resolution, in [0, 1]
    predicted_map: np.ndarray
    chosen_overlay: np.ndarray  # the same maps stretched to the image's H x W
    predicted_overlay: np.ndarray


def grad_cam_view(result: TrainResult, image: np.ndarray, class_index: int, layer_name: str | None = None) -> GradCamView:
    """Grad-CAM maps for `class_index` and for the predicted class (ExplainError without a conv layer)."""
    model = result.model
    names = tuple(explain.conv_layer_names(model))
    chosen_map = explain.grad_cam(model, image, class_index, layer_name)
    layer = layer_name or names[-1]
    probs = probabilities(result, image)
    predicted = int(np.argmax(probs))
    predicted_map = chosen_map if predicted == class_index else explain.grad_cam(model, image, predicted, layer)
    size = image.shape[:2]
    return GradCamView(layer, names, probs, predicted, int(class_index), chosen_map, predicted_map,
                       upsample(chosen_map, size), upsample(predicted_map, size))


@dataclass(frozen=True)
class SaliencyView:
    plain: np.ndarray  # (H, W) in [0, 1]
    smooth: np.ndarray  # SmoothGrad, (H, W) in [0, 1]
    samples: int
    noise: float


def saliency_view(result: TrainResult, image: np.ndarray, class_index: int, *, seed: int = 0) -> SaliencyView:
    model = result.model
    return SaliencyView(explain.saliency(model, image, class_index),
                        explain.smooth_saliency(model, image, class_index, samples=SMOOTH_SAMPLES,
                                                noise=SMOOTH_NOISE, seed=seed),
                        SMOOTH_SAMPLES, SMOOTH_NOISE)


@dataclass(frozen=True)
class OcclusionView:
    drops: np.ndarray  # (rows, columns): probability on the image minus with the patch covered
    patch: int
    stride: int
    base_probability: float
    worst: tuple[int, int]  # (top, left) pixel of the patch whose cover drops the class most

    @property
    def largest_drop(self) -> float:
        return float(self.drops.max())


def occlusion_view(result: TrainResult, image: np.ndarray, class_index: int, *, patch: int = 4,
                   stride: int = 2) -> OcclusionView:
    drops = explain.occlusion(result.model, image, class_index, patch=patch, stride=stride)
    i, j = np.unravel_index(int(np.argmax(drops)), drops.shape)
    return OcclusionView(drops, patch, stride, float(probabilities(result, image)[class_index]),
                         (int(i) * stride, int(j) * stride))


def paint_over(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The image with a black size x size square at (top, left) (clipped to the image): the challenge's paint."""
    painted = np.array(image, copy=True)
    painted[max(0, top):max(0, top + size), max(0, left):max(0, left + size)] = 0
    return painted


@dataclass(frozen=True)
class BreakView:
    """The "break the model" challenge: the image with a black square painted over it, before and after."""

    painted: np.ndarray  # (H, W, C) uint8
    before: np.ndarray  # (K,) probabilities on the image
    after: np.ndarray  # (K,) on the painted image
    size: int

    @property
    def predicted_before(self) -> int:
        return int(np.argmax(self.before))

    @property
    def predicted_after(self) -> int:
        return int(np.argmax(self.after))

    @property
    def broken(self) -> bool:
        return self.predicted_after != self.predicted_before



def break_view(result: TrainResult, image: np.ndarray, top: int, left: int, size: int) -> BreakView:
    """Paint a black `size` x `size` square at (top, left) and predict again."""
    painted = paint_over(image, top, left, size)
    return BreakView(painted, probabilities(result, image), probabilities(result, painted), int(size))


@dataclass(frozen=True)
class FeatureView:
    layer_name: str
    filters: tuple[int, ...]
    pictures: np.ndarray  # (F, H, W, C) uint8: the input that excites each filter most
    picture_activation: np.ndarray  # (F,) the mean activation each picture gives its filter
    top_images: np.ndarray  # (F, TOP_IMAGES, H, W, C) the test images that excite each filter most
    top_activation: np.ndarray  # (F, TOP_IMAGES)


def feature_view(result: TrainResult, layer_name: str, *, filters: int = FEATURE_FILTERS,
                 steps: int = FEATURE_STEPS, seed: int = 0) -> FeatureView:
    """For the first `filters` filters of a layer: the gradient-ascent picture and the most exciting test images."""
    model = result.model
    chosen = tuple(range(min(filters, explain.filter_count(model, layer_name))))
    images, _ = result.test_data()
    on_test = explain.mean_activations(model, layer_name, images)
    pictures = np.stack([explain.maximize_activation(model, layer_name, f, steps=steps, seed=seed) for f in chosen])
    on_pictures = explain.mean_activations(model, layer_name, pictures)
    order = np.argsort(-on_test[:, list(chosen)], axis=0, kind="stable")[:TOP_IMAGES].T  # (F, TOP)
    return FeatureView(layer_name, chosen, pictures, on_pictures[np.arange(len(chosen)), list(chosen)],
                       images[order], np.take_along_axis(on_test[:, list(chosen)].T, order, axis=1))


# --------------------------------------------------------------------------------------------
# Explain training: the Train page's recorded gradients and weights, and vanishing gradients
# --------------------------------------------------------------------------------------------

def training_record(result: TrainResult | None) -> TrainingRecord | None:
    """The gradient norms and weight histograms recorded while `result` trained (None: not recorded)."""
    return None if result is None else result.training_record


DEPTH_VARIANTS: dict[str, str] = {
    "tanh": "plain, tanh",
    "relu": "plain, ReLU",
    "relu_bn": "plain, ReLU + batch norm",
    "residual": "residual blocks",
}
BASELINE = "tanh"  # The verdicts compare each other variant with this one.


@dataclass(frozen=True)
class VanishingSettings:
    """The vanishing-gradients demonstration: `depth` conv layers of `filters` 3x3 "same" filters
    (residual: depth / 2 residual blocks, i.e. the same number of 3x3 convolutions, plus the first
    block's 1x1 projection; see `depth_stack`), global average pooling and a dense softmax. Every
    variant and seed makes `updates` weight updates (`epochs` passes over `limit_train` images in
    batches of `batch_size`, Adam at `learning_rate`); test accuracy on `limit_test` images. The
    gradient norms are measured on the first `init_images` training images, at initialisation and
    after training."""

    depth: int = 8
    filters: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)
    limit_train: int = 2400
    limit_test: int = 1000
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.003
    init_images: int = 128
    dataset: str = "fashion_mnist"

    @property
    def updates(self) -> int:
        """Weight updates per seed and variant (the last batch of an epoch may be partial)."""
        return self.epochs * math.ceil(self.limit_train / self.batch_size)

    @classmethod
    def tiny(cls) -> VanishingSettings:
        """A few seconds' worth, for tests and `python -m cnnviz warmup --tiny`."""
        return cls(depth=2, filters=2, seeds=(0, 1), limit_train=128, limit_test=64, epochs=1, batch_size=32,
                   init_images=16)


# The default demonstration (`VanishingSettings()`, every variant, 3 seeds) from an empty cache on
# 2 idle cores, in seconds. bench/vanishing_demo.py on 2026-12-01, machine shared (no idle run):
# load 7-10: 264 s wall, RATIO 22.5 to its reference epoch, 73.5 CPU-seconds; load 4-5: 90 s wall,
# RATIO 49.7, 65.7 CPU-seconds. At the reference's idle 1.1-1.6 s the ratios give 25-81 s; the CPU
# time bounds the idle wall time between 33 and 74 s. The residual variant's seeds train one after
# another (seed_stack has no residual blocks): about 43 % of it. Re-measure when idle. Other
# settings scale it by their work (`estimated_seconds`).
MEASURED_DEFAULT_SECONDS = 60.0


FIRST_STRIDES = 2  # The first 3x3 convolution (or residual block) steps 2 pixels: 28 x 28 -> 14 x 14.
POOL_AFTER = (2, 4)  # 2x2 max pooling after these 3x3 convolutions (counted from the input), in every variant.


def depth_stack(kind: str, depth: int = 8, filters: int = 8) -> list[dict[str, object]]:
    """The layer stack of one variant of `DEPTH_VARIANTS`: `depth` 3x3 convolutions of `filters`
    (the first with strides `FIRST_STRIDES`, 2x2 max pooling after those in `POOL_AFTER`), global
    average pooling and a dense softmax. Residual: `depth // 2` blocks of two such convolutions
    (the first block's 1x1 projection adds one kernel layer), pooled after the same convolutions."""
    conv: dict[str, object] = {"type": "conv2d", "filters": filters, "kernel_size": 3, "padding": "same"}
    pool: dict[str, object] = {"type": "maxpool2d", "pool_size": 2}
    body: list[dict[str, object]] = []
    if kind == "residual":
        for block in range(max(1, depth // 2)):
            body.append({"type": "residual_block", "filters": filters, "kernel_size": 3,
                         "strides": FIRST_STRIDES if block == 0 else 1})
            if 2 * (block + 1) in POOL_AFTER:
                body.append(dict(pool))
    elif kind in ("tanh", "relu", "relu_bn"):
        activation = "tanh" if kind == "tanh" else "relu"
        for index in range(1, depth + 1):
            body.append(dict(conv, activation=activation, **({"strides": FIRST_STRIDES} if index == 1 else {})))
            if kind == "relu_bn":
                body.append({"type": "batchnorm"})
            if index in POOL_AFTER:
                body.append(dict(pool))
    else:
        raise ValueError(f"Unknown variant {kind!r}; choose one of {', '.join(DEPTH_VARIANTS)}.")
    return body + [{"type": "globalavgpool2d"}, {"type": "dense", "units": 10, "activation": "softmax"}]


def depth_config(kind: str, settings: VanishingSettings) -> TrainConfig:
    """The training config of one variant (seed 0; `train_seeds` sets the others). Gradients are not
    recorded while training, so that the seeds of the plain stacks train together (`seed_stack`)."""
    return TrainConfig.from_stack(depth_stack(kind, settings.depth, settings.filters), dataset=settings.dataset,
                                  limit_train=settings.limit_train, limit_test=settings.limit_test,
                                  epochs=settings.epochs, batch_size=settings.batch_size,
                                  learning_rate=settings.learning_rate, validate_every_epoch=False)


@dataclass(frozen=True)
class LayerNorms:
    """Per-layer gradient norms of one variant: `norms[s, j]` for seed `seeds[s]`, kernel layer `layers[j]`."""

    layers: tuple[str, ...]
    seeds: tuple[int, ...]
    norms: np.ndarray


InitialNorms = LayerNorms  # The name the page and tests used before norms after training existed.


def norm_batch(kind: str, settings: VanishingSettings) -> tuple[np.ndarray, np.ndarray]:
    """The fixed images (and labels) every norm of the demonstration is measured on: the first
    `init_images` training images of the variant's prepared data (the same for every seed)."""
    prepared = inputs.prepare(depth_config(kind, settings))
    return prepared.x_train[:settings.init_images], prepared.y_train[:settings.init_images]


# Norms at initialisation depend only on the variant and the settings: measured once per process.
_INITIAL_NORMS: dict[tuple[str, VanishingSettings], LayerNorms] = {}


def initial_gradient_norms(kind: str, settings: VanishingSettings) -> LayerNorms:
    """Build the variant untrained for each seed (as the engine builds it) and measure, on
    `norm_batch`, each kernel layer's gradient norm (no training). Kept in memory per (kind, settings)."""
    if (kind, settings) not in _INITIAL_NORMS:
        _INITIAL_NORMS[(kind, settings)] = _measure_initial_norms(kind, settings)
    return _INITIAL_NORMS[(kind, settings)]


def _measure_initial_norms(kind: str, settings: VanishingSettings) -> LayerNorms:
    import keras

    config = depth_config(kind, settings)
    images, labels = norm_batch(kind, settings)
    rows: list[list[float]] = []
    names: tuple[str, ...] = ()
    for seed in settings.seeds:
        keras.utils.set_random_seed(seed)
        model = build_keras_model(tuple(images.shape[1:]), config.replace(seed=seed).stack())
        norms = diagnostics.layer_gradient_norms(model, images, labels)
        names = tuple(norms)
        rows.append(list(norms.values()))
    return LayerNorms(names, tuple(settings.seeds), np.asarray(rows, dtype=np.float64))


def trained_gradient_norms(kind: str, settings: VanishingSettings, runs: Sequence[TrainResult]) -> LayerNorms:
    """The same measurement as `initial_gradient_norms` (same images, same loss, training-mode
    forward pass, moving statistics restored) on each seed's trained model."""
    images, labels = norm_batch(kind, settings)
    rows: list[list[float]] = []
    names: tuple[str, ...] = ()
    for run in runs:
        with run._lock:  # The model may be shared by sessions; the measurement briefly touches its statistics.
            norms = diagnostics.layer_gradient_norms(run.model, images, labels)
        names = tuple(norms)
        rows.append(list(norms.values()))
    return LayerNorms(names, tuple(run.config.seed for run in runs), np.asarray(rows, dtype=np.float64))


def demo_configs(settings: VanishingSettings, kinds: Sequence[str] | None = None) -> list[TrainConfig]:
    """Every config the demonstration trains (each variant, each seed): what the warm-up pre-trains."""
    return [config for kind in (kinds if kinds is not None else DEPTH_VARIANTS)
            for config in training.seed_configs(depth_config(kind, settings), settings.seeds)]


def is_cached(settings: VanishingSettings) -> bool:
    """Every model of the demonstration is in the disk cache (pre-trained, or run before)."""
    return all(training.is_cached(config) for config in demo_configs(settings))


def _work(settings: VanishingSettings) -> float:
    """Multiply-adds of the demonstration's training: per variant, an image's forward pass x 3
    (forward and backward) x images per update x updates x seeds."""
    total = 0.0
    for kind in DEPTH_VARIANTS:
        rows = summarize((28, 28, 1), depth_stack(kind, settings.depth, settings.filters))
        total += totals(rows).mult_adds * 3 * settings.batch_size * settings.updates * len(settings.seeds)
    return total


def estimated_seconds(settings: VanishingSettings) -> float:
    """Seconds the demonstration takes from an empty cache on 2 idle cores: `MEASURED_DEFAULT_SECONDS`
    scaled by its work against the default's (a Fashion-MNIST-sized image assumed)."""
    return MEASURED_DEFAULT_SECONDS * _work(settings) / _work(VanishingSettings())


@dataclass
class VanishingDemo:
    """The demonstration's measurements, per variant: the norms at initialisation, the trained
    seeds, and the norms after training (on the same images)."""

    settings: VanishingSettings
    initial: dict[str, LayerNorms] = field(default_factory=dict)
    runs: dict[str, list[TrainResult]] = field(default_factory=dict)
    trained: dict[str, LayerNorms] = field(default_factory=dict)

    def accuracies(self, kind: str) -> list[float]:
        return [float(run.test_accuracy) for run in self.runs.get(kind, [])]

    def verdicts(self) -> list[verdicts.Verdict]:
        """Each variant's test accuracy against the tanh stack's, as `verdicts.compare` words it."""
        if BASELINE not in self.runs:
            return []
        test_images = len(self.runs[BASELINE][0].test_data()[1])
        return [verdicts.compare("architecture", DEPTH_VARIANTS[kind], self.accuracies(kind),
                                 DEPTH_VARIANTS[BASELINE], self.accuracies(BASELINE), test_images=test_images)
                for kind in DEPTH_VARIANTS if kind != BASELINE and kind in self.runs]


def run_vanishing_demo(settings: VanishingSettings, *, kinds: Sequence[str] | None = None,
                       on_progress: Callable[[str, Progress], object] | None = None) -> VanishingDemo:
    """Measure every variant: gradient norms at initialisation, `train_seeds` (cached per seed;
    the seeds of one variant train together), then the norms after training on the same images.

    `on_progress(variant, progress)` as `ui.train_seeds_with_progress` gives it; a variant whose
    seeds did not all finish (Stop) ends the run, and is left out of `runs` and `trained`.
    """
    demo = VanishingDemo(settings)
    for kind in kinds if kinds is not None else DEPTH_VARIANTS:
        demo.initial[kind] = initial_gradient_norms(kind, settings)
        report = None
        if on_progress is not None:
            def report(progress: Progress, kind: str = kind) -> object:
                return on_progress(kind, progress)
        runs = training.train_seeds(depth_config(kind, settings), settings.seeds, report)
        if len(runs) < len(settings.seeds) or any(run.stopped_reason != "finished" for run in runs):
            break
        demo.runs[kind] = runs
        demo.trained[kind] = trained_gradient_norms(kind, settings, runs)
    return demo
