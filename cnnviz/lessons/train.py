"""Looking inside a trained classifier: errors, filters, activation maps and a 2-D feature space.

Everything here is plain NumPy on predictions and weights, plus a few functions that take a Keras
model (`feature_maps`, `feature_space`, `predict_probabilities`). Keras is imported lazily inside
those functions, so importing this module never loads TensorFlow.

Conventions: images are uint8 NHWC arrays, (N, 28, 28, 1) for the MNIST family or (N, 32, 32, 3)
for CIFAR-10, exactly as `cnnviz.data` delivers them; labels are 1-D integer arrays. A confusion
matrix has the TRUE class on its rows and the PREDICTED class on its columns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cnnviz import architecture, data
from cnnviz.errors import ArchitectureError, DrawingError
from cnnviz.images import check_proportions, decode_image, resize, to_grayscale, to_rgb
from cnnviz.training import TrainConfig, TrainResult

# --------------------------------------------------------------------------------------------
# The default run (the page builds its widgets' defaults from these; `python -m cnnviz warmup`
# pre-trains `default_config()`). The preset per dataset is its spec's `default_preset`.
# --------------------------------------------------------------------------------------------

DEFAULT_DATASET = "fashion_mnist"
# Subset sizes that train the default network in well under a minute on 2 CPU cores.
DEFAULT_TRAIN_IMAGES = 10_000
DEFAULT_TEST_IMAGES = 2_000
DEFAULT_HYPERPARAMETERS = {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 128, "epochs": 5,
                           "seed": 0, "fast": True}


def default_config(dataset: str = DEFAULT_DATASET) -> TrainConfig:
    """The `TrainConfig` the train page trains when no widget was touched (for `dataset`)."""
    spec = data.spec(dataset)
    stack = architecture.stack_for(spec.default_preset, spec.image_shape, spec.num_classes)
    return TrainConfig.from_stack(stack, dataset=dataset, limit_train=DEFAULT_TRAIN_IMAGES,
                                  limit_test=DEFAULT_TEST_IMAGES, **DEFAULT_HYPERPARAMETERS)


CONV_LAYER_TYPES = ("Conv2D",)


# --------------------------------------------------------------------------------------------
# Model input
# --------------------------------------------------------------------------------------------

def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C) -> the float32 network input in [0, 1], same shape.

    This is the scaling the training engine applies (`architecture.scale_images`), so predictions
    made here match the ones made while training.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.ndim != 4:
        raise ValueError(f"Expected a batch of images shaped (N, H, W, C), got shape {images.shape}.")
    return architecture.scale_images(images)


def predict_probabilities(model, images: np.ndarray, *, batch_size: int = architecture.EVAL_BATCH) -> np.ndarray:
    """Class probabilities (N, K) for uint8 images (N, H, W, C).

    A stack whose output layer has no softmax (it outputs logits) gets one applied here, so the
    result always holds probabilities.
    """
    inputs = to_model_input(images)
    outputs = []
    for start in range(0, len(inputs), batch_size):
        # Calling the model directly avoids `predict`'s per-call set-up cost on small batches.
        outputs.append(np.asarray(model(inputs[start:start + batch_size], training=False)))
    raw = np.concatenate(outputs, axis=0) if outputs else np.zeros((0, model.outputs[0].shape[-1]))
    if not architecture.outputs_logits(model):
        return raw.astype(np.float64)
    return architecture.softmax(raw)


# --------------------------------------------------------------------------------------------
# Errors: confusion matrix, per-class accuracy, most-confused pairs
# --------------------------------------------------------------------------------------------

def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Fraction of each true class predicted correctly (the diagonal over the row sums), shape (K,).

    A class with no test images gets NaN: there is nothing to be right or wrong about.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / np.where(support > 0, support, 1), np.nan)


def overall_accuracy(confusion: np.ndarray) -> float:
    """Fraction of all test images on the diagonal."""
    confusion = np.asarray(confusion)
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


@dataclass(frozen=True)
class ConfusedPair:
    """One off-diagonal cell of the confusion matrix: `count` images of `true_class` called `predicted_class`."""

    true_class: int
    predicted_class: int
    count: int
    share_of_true_class: float  # count / number of test images of the true class


def most_confused_pairs(confusion: np.ndarray, *, top: int = 5) -> list[ConfusedPair]:
    """The `top` largest off-diagonal cells, largest first (ties broken by true, then predicted class).

    Cells with a count of zero are never listed: a perfect classifier has no confused pairs.
    """
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1)
    cells = [
        (int(confusion[t, p]), t, p)
        for t in range(confusion.shape[0]) for p in range(confusion.shape[1])
        if t != p and confusion[t, p] > 0
    ]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [ConfusedPair(t, p, count, count / support[t]) for count, t, p in cells[:top]]


def cell_indices(y_true: np.ndarray, y_pred: np.ndarray, true_class: int, predicted_class: int) -> np.ndarray:
    """Indices of the test images in one confusion-matrix cell (true `true_class`, predicted `predicted_class`).

    For an off-diagonal cell these are exactly the misclassified images of that kind; for a
    diagonal cell they are the correctly classified images of that class.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    return np.flatnonzero((y_true == true_class) & (y_pred == predicted_class))


# --------------------------------------------------------------------------------------------
# Prediction grid
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PredictionGrid:
    """Data for a grid of test images with their true and predicted labels."""

    indices: np.ndarray  # (n,) positions in the test set
    images: np.ndarray  # (n, H, W, C) uint8
    true_labels: np.ndarray  # (n,)
    predicted_labels: np.ndarray  # (n,)
    confidence: np.ndarray  # (n,) probability of the predicted class

    @property
    def correct(self) -> np.ndarray:
        return self.true_labels == self.predicted_labels


def prediction_grid(images: np.ndarray, y_true: np.ndarray, probabilities: np.ndarray, *, count: int = 25,
                    mode: str = "random", seed: int = 0) -> PredictionGrid:
    """Pick `count` test images for a true-vs-predicted grid.

    `mode` is "first" (the first images of the test set), "random" (a seeded random sample) or
    "errors" (misclassified images only, most confident mistakes first).
    """
    images = np.asarray(images)
    y_true = np.asarray(y_true).ravel()
    probabilities = np.asarray(probabilities)
    if not (len(images) == len(y_true) == len(probabilities)):
        raise ValueError("images, labels and probabilities must describe the same test images.")
    if count < 0:
        raise ValueError("The grid needs a non-negative number of images.")
    y_pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    if mode == "first":
        chosen = np.arange(min(count, len(images)))
    elif mode == "random":
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(images), size=min(count, len(images)), replace=False))
    elif mode == "errors":
        wrong = np.flatnonzero(y_pred != y_true)
        chosen = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    else:
        raise ValueError(f"Unknown grid mode {mode!r}: use 'first', 'random' or 'errors'.")
    return PredictionGrid(chosen, images[chosen], y_true[chosen], y_pred[chosen], confidence[chosen])


# --------------------------------------------------------------------------------------------
# Filters and activation maps
# --------------------------------------------------------------------------------------------

def conv_layers(model) -> list:
    """The model's 2-D convolution layers, in forward order."""
    return [layer for layer in model.layers if type(layer).__name__ in CONV_LAYER_TYPES]


@dataclass(frozen=True)
class FilterImages:
    """The first convolution layer's kernels, one small image per filter."""

    layer_name: str
    weights: np.ndarray  # (filters, kh, kw, in_channels), the raw kernel values
    images: np.ndarray  # same shape, scaled to [0, 1] per filter for display
    bias: np.ndarray  # (filters,)

    @property
    def is_rgb(self) -> bool:
        return self.weights.shape[-1] == 3


def first_layer_filters(model) -> FilterImages:
    """The kernels of the first Conv2D layer as images.

    Keras stores a Conv2D kernel as (kh, kw, in_channels, filters); we move the filter axis first.
    Each filter is min-max scaled on its own, so its pattern shows whatever its overall size: for
    a grey-scale input, bright = positive weight, dark = negative; for RGB inputs the three input
    channels are shown as the colour of the filter.
    """
    layers = conv_layers(model)
    if not layers:
        raise ArchitectureError("This network has no convolution layer, so it has no filters to show.")
    layer = layers[0]
    kernel, *rest = layer.get_weights()
    bias = rest[0] if rest else np.zeros(kernel.shape[-1], dtype=kernel.dtype)
    weights = np.transpose(kernel, (3, 0, 1, 2))  # (filters, kh, kw, in_channels)
    low = weights.min(axis=(1, 2, 3), keepdims=True)
    high = weights.max(axis=(1, 2, 3), keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    images = (weights - low) / span
    return FilterImages(layer.name, weights, images, np.asarray(bias))


@dataclass(frozen=True)
class FeatureMaps:
    """What one convolution layer outputs for one image."""

    layer_name: str
    maps: np.ndarray  # (H', W', channels) activations of that layer for the image

    @property
    def channels(self) -> int:
        return self.maps.shape[-1]


def _activation_model(model, layers):
    """A Keras model from the classifier's input to the outputs of `layers` (shared weights)."""
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs=inputs, outputs=[layer.output for layer in layers])


def feature_maps(model, image: np.ndarray) -> list[FeatureMaps]:
    """Activation maps of every Conv2D layer for ONE uint8 image (H, W, C), in forward order.

    A sub-model shares the trained layers and stops at the convolution outputs, so each map is
    exactly what the classifier computed on its way to the prediction (after the layer's
    activation function, e.g. ReLU).
    """
    layers = conv_layers(model)
    if not layers:
        return []
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"feature_maps takes one image shaped (H, W, C), got shape {image.shape}.")
    outputs = _activation_model(model, layers)(to_model_input(image), training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [FeatureMaps(layer.name, np.asarray(output)[0]) for layer, output in zip(layers, outputs)]


# --------------------------------------------------------------------------------------------
# Bottleneck feature space
# --------------------------------------------------------------------------------------------

def bottleneck_layer(model, *, units: int = 2):
    """The last Dense layer with `units` outputs that is not the output layer, or None.

    In the bottleneck net every image is squeezed through a 2-unit Dense layer before the
    classifier head, so its output is a point in a plane we can draw.
    """
    candidates = [layer for layer in model.layers[:-1]
                  if type(layer).__name__ == "Dense" and getattr(layer, "units", None) == units]
    return candidates[-1] if candidates else None


def feature_space(model, images: np.ndarray, *, batch_size: int = architecture.EVAL_BATCH) -> np.ndarray:
    """The 2-D bottleneck coordinates (N, 2) of uint8 images (N, H, W, C).

    Raises ValueError when the network has no 2-unit Dense bottleneck.
    """
    layer = bottleneck_layer(model)
    if layer is None:
        raise ValueError("This network has no 2-unit Dense layer before its output, so it has no "
                         "2-D feature space to draw. Choose the bottleneck preset.")
    submodel = _activation_model(model, [layer])
    inputs = to_model_input(images)
    points = [np.asarray(submodel(inputs[start:start + batch_size], training=False))
              for start in range(0, len(inputs), batch_size)]
    return np.concatenate(points, axis=0) if points else np.zeros((0, 2), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# "Try your own image"
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreparedUpload:
    """An uploaded picture (or a drawing, `prepare_drawing`) converted to a dataset's format, with what was done to it."""

    image: np.ndarray  # (H, W, C) uint8 in the dataset's format, ready for the model
    inverted: bool
    steps: tuple[str, ...]  # human-readable description of each step, in order
    notes: tuple[str, ...] = ()  # what the decoder converted (`DecodedImage.notes`), sentences
    original: np.ndarray | None = None  # the decoded picture, uint8 (what pages show as "your picture")


def prepare_upload(data: bytes, dataset: str, *, invert: bool | None = None) -> PreparedUpload:
    """Decode an uploaded file with the one upload decoder and prepare it for `dataset`'s model.

    Raises `ImageDecodeError` (with the same message as on every other page) for a file that is
    not a usable picture. The decoder's notes (16-bit scaled, first frame, transparency, ...) are
    kept in `notes`.
    """
    decoded = check_proportions(decode_image(data))  # A 100000 × 1 picture is refused, not squashed.
    prepared = preprocess_upload(decoded.pixels, dataset, invert=invert)
    return replace(prepared, notes=decoded.notes, original=decoded.pixels)


def preprocess_upload(pixels: np.ndarray, dataset: str, *, invert: bool | None = None) -> PreparedUpload:
    """Turn a decoded uint8 picture, (H, W) grey or (H, W, 3) RGB, into the image the trained model expects.

    Steps: convert to grey-scale (MNIST family) or RGB (CIFAR-10); crop the centre square so the
    object is not squashed; resize to 28 x 28 or 32 x 32; and for the MNIST family invert
    light-background pictures. Fashion-MNIST and MNIST show a LIGHT object on a BLACK background,
    while a photo or a drawing usually has a light background: without the inversion the network
    would see a black garment on white, unlike anything it was trained on. `invert=None` decides
    automatically from the border of the picture (a bright border means a light background);
    True or False forces the choice. (Transparency, palettes, 16-bit and the like are already
    handled by the decoder, `cnnviz.images.decode_image`.)
    """
    target = data.spec(dataset)  # Its image shape and background; ValueError for an unknown dataset.
    target_height, target_width = target.image_size
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or array.ndim == 3 and array.shape[-1] == 3):
        raise ValueError(f"A decoded picture is (H, W) or (H, W, 3), got shape {array.shape}.")
    steps = []

    if target.channels == 1 and array.ndim == 3:
        array = to_grayscale(array)
        steps.append("converted to grey-scale")
    elif target.channels == 3 and array.ndim == 2:
        array = to_rgb(array)
        steps.append("converted to RGB colour")

    height, width = array.shape[:2]
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        array = array[top:top + side, left:left + side]
        steps.append(f"centre square cropped ({side} x {side} of {width} x {height})")
    if array.shape[:2] != (target_height, target_width):
        array = resize(array, target_width, target_height)
        steps.append(f"resized to {target_width} x {target_height}")

    if array.ndim == 2:
        array = array[..., np.newaxis]  # (H, W) -> (H, W, 1)

    inverted = False
    if target.dark_background:
        if invert is None:
            invert = light_background(array)
        if invert:
            array = 255 - array
            inverted = True
            steps.append("inverted (light background made black, as in the training images)")
    return PreparedUpload(array.astype(np.uint8), inverted, tuple(steps))


def light_background(pixels: np.ndarray) -> bool:
    """Whether a picture has a light background: the mean of its border pixels is above mid-grey."""
    array = np.asarray(pixels)
    border = np.concatenate([array[0].ravel(), array[-1].ravel(), array[:, 0].ravel(), array[:, -1].ravel()])
    return bool(border.mean() > 127)


# MNIST's rule (LeCun et al.): each digit's bounding box is scaled to fit 20 x 20 pixels (keeping its
# proportions), then placed in the 28 x 28 image so that its centre of mass is at the centre.
# Other image sizes keep the same proportion (23 of 32 pixels, 46 of 64).
DRAWING_BOX_FRACTION = 20 / 28
INK_LEVEL = 32  # A canvas pixel brighter than this (of 255), on the dark side, is part of a stroke.


def _centre_of_mass(values: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted mean position (the values are not all zero)."""
    weights = values.astype(np.float64)
    total = weights.sum()
    rows, columns = np.indices(weights.shape)
    return float((rows * weights).sum() / total), float((columns * weights).sum() / total)


def prepare_drawing(canvas: np.ndarray, dataset: str) -> PreparedUpload:
    """Turn a drawing-pad picture into the image `dataset`'s model expects, centred the MNIST way.

    `canvas` is the pad's uint8 picture, (H, W, 4) RGBA, (H, W, 3) RGB or (H, W) grey, at any size:
    bright strokes on a dark background (transparent pixels count as background), or dark strokes
    on a light one, which are inverted so that every result shows a bright drawing on black, as
    Fashion-MNIST and MNIST do. Steps: the strokes' bounding box is cropped, scaled (proportions
    kept) so its longer side is `DRAWING_BOX_FRACTION` of the image side (20 of 28 pixels), and
    placed so that its centre of mass is at the image's centre (moved less only where that would
    push a stroke out of the image). The grey-scale or colour conversion is the upload's own rule
    (`preprocess_upload`). A pad with nothing drawn on it raises `DrawingError`.
    """
    target = data.spec(dataset)  # ValueError for an unknown dataset.
    array = np.asarray(canvas)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if not (array.ndim == 2 or array.ndim == 3 and array.shape[-1] in (1, 3, 4)) or min(array.shape[:2]) < 1:
        raise ValueError(f"A drawing is (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}.")
    if array.ndim == 3 and array.shape[-1] == 4:
        # Composited over black: a transparent pixel is background.
        alpha = array[..., 3].astype(np.float64) / 255.0
        grey = np.round(to_grayscale(array[..., :3]).astype(np.float64) * alpha).astype(np.uint8)
    else:
        grey = to_grayscale(array)
    as_drawn = grey
    steps = []
    inverted = light_background(grey)
    if inverted:
        grey = 255 - grey
        steps.append("inverted (a light background made black, as in the training images)")
    drawn = grey > INK_LEVEL
    if not drawn.any():
        raise DrawingError("Nothing is drawn yet: draw something on the pad (the mouse or a finger) to see "
                           "what the network makes of it.")
    rows, columns = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    strokes = grey[top:bottom, left:right]
    height, width = strokes.shape
    steps.append(f"strokes cropped to their bounding box ({width} x {height} of {grey.shape[1]} x {grey.shape[0]})")

    target_height, target_width = target.image_size
    box = max(1, round(DRAWING_BOX_FRACTION * min(target_height, target_width)))
    scale = box / max(height, width)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    scaled = resize(strokes, new_width, new_height)
    if not scaled.any():  # A faint speck can vanish in the resampling: keep its brightest pixel.
        scaled = np.full((new_height, new_width), int(strokes.max()), dtype=np.uint8)
    steps.append(f"scaled to {new_width} x {new_height} (the longer side {box} pixels)")

    centre_row, centre_column = _centre_of_mass(scaled)
    place_top = int(np.clip(round((target_height - 1) / 2 - centre_row), 0, target_height - new_height))
    place_left = int(np.clip(round((target_width - 1) / 2 - centre_column), 0, target_width - new_width))
    placed = np.zeros((target_height, target_width), dtype=np.uint8)
    placed[place_top:place_top + new_height, place_left:place_left + new_width] = scaled
    steps.append(f"placed with its centre of mass at the centre of the {target_width} x {target_height} image")

    prepared = preprocess_upload(placed, dataset, invert=False)
    return replace(prepared, inverted=inverted, steps=tuple(steps) + prepared.steps, original=as_drawn)




# --------------------------------------------------------------------------------------------
# The trained model on its test images: what the results sections show
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResultAnalysis:
    """A trained result's test images, its predictions and where it goes wrong (computed once per result)."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) true classes
    probabilities: np.ndarray  # (N, K)
    predicted: np.ndarray  # (N,) predicted classes
    confusion: np.ndarray  # (K, K) counts: [true, predicted]
    pairs: list[ConfusedPair]  # The most-confused pairs, worst first.

    @property
    def per_class_accuracy(self) -> np.ndarray:
        return per_class_accuracy(self.confusion)

    @property
    def accuracy(self) -> float:
        return overall_accuracy(self.confusion)

    @property
    def first_cell(self) -> tuple[int, int]:
        """The confusion cell a newly trained model opens on: its most-confused pair, or (0, 0)."""
        return (self.pairs[0].true_class, self.pairs[0].predicted_class) if self.pairs else (0, 0)

    def cell(self, true_class: int, predicted_class: int) -> np.ndarray:
        """Indices of the test images of one confusion cell."""
        return cell_indices(self.labels, self.predicted, true_class, predicted_class)


def analyse(result: TrainResult, *, top_pairs: int = 5) -> ResultAnalysis:
    """Predict a `TrainResult`'s test images once and summarise the errors (loads TensorFlow)."""
    images, labels = result.test_data()
    probabilities = result.predict_test()
    confusion = result.confusion_matrix()
    return ResultAnalysis(images=images, labels=np.asarray(labels), probabilities=probabilities,
                        predicted=probabilities.argmax(axis=1), confusion=confusion,
                        pairs=most_confused_pairs(confusion, top=top_pairs))
