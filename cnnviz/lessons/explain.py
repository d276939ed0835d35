"""What the network looks at: the views of the explain lesson, computed on a trained `TrainResult`.

Each view is one call that the page makes (`grad_cam_view`, `saliency_view`, `occlusion_view`,
`feature_view`), returning plain arrays for `cnnviz.figures.explain`. The maths is in
`cnnviz.explain`; images are uint8 H x W x C as the dataset gives them. The default model is the
Train page's default run (`default_config`, pre-trained by `python -m cnnviz warmup`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cnnviz import explain, training
from cnnviz.lessons import train as train_lesson
from cnnviz.training import TrainConfig, TrainResult, warmup

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
