"""Image augmentation: a spec of named strengths -> Keras preprocessing layers, previews, warnings.

An augmentation *spec* is what `cnnviz.training.TrainConfig.augmentation` holds: a tuple of
`(name, strength)` pairs (a dict is accepted too), names from `AUGMENTATIONS`, strengths in
[0, 1]. A strength of 0 switches that augmentation off. The strengths map onto the Keras layers
like this (`augmentation_layers` is the one place that does it):

| name              | Keras layer                                   | what a strength `s` means                     |
|-------------------|-----------------------------------------------|-----------------------------------------------|
| `flip_horizontal` | `RandomFlip("horizontal")`                    | on when `s > 0`: half the images are mirrored  |
| `flip_vertical`   | `RandomFlip("vertical")`                      | on when `s > 0`: half are turned upside down   |
| `rotation`        | `RandomRotation(factor=s / 2)`                | factor = fraction of a full turn: ±`s`·180°    |
| `zoom`            | `RandomZoom(height_factor=s / 2)`             | zoom in or out by up to ±`s`·50 %              |
| `translation`     | `RandomTranslation(s / 2, s / 2)`             | shift by up to ±`s`·50 % of height and width   |
| `contrast`        | `RandomContrast(factor=(s, s))`               | contrast multiplied by a factor in [1-s, 1+s]  |

Geometric layers fill uncovered pixels with 0 (black), like the Fashion-MNIST/MNIST background.
Layer `i` of the spec gets the seed `seed * 101 + i`, so a spec and a seed define the random
draws completely. The training engine applies the spec during training only; it should build the
layers with `augmentation_model(spec, seed=config.seed)` (or mirror this table exactly, which
`tests/test_augmentation.py` checks), so the preview on the augmentation page shows what the model
is trained on.

TensorFlow/Keras are imported lazily inside functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz import data
from cnnviz.architecture import scale_images
from cnnviz.errors import SettingsError

AUGMENTATIONS = ("flip_horizontal", "flip_vertical", "rotation", "zoom", "translation", "contrast")

# Human-readable names for the UI and for messages.
AUGMENTATION_LABELS = {
    "flip_horizontal": "Horizontal flip",
    "flip_vertical": "Vertical flip",
    "rotation": "Rotation",
    "zoom": "Zoom",
    "translation": "Shift (translation)",
    "contrast": "Contrast",
}

# Above these limits a transformation starts to change what an image shows (see `warnings_for`;
# rotation limits depend on the dataset: its spec's `augmentation`).
SHIFT_LIMIT_PERCENT = 25.0
ZOOM_LIMIT_PERCENT = 30.0

Spec = tuple[tuple[str, float], ...]


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------

def normalize_spec(spec: Mapping[str, float] | Iterable[tuple[str, float]] | None) -> Spec:
    """The canonical tuple-of-pairs form of a spec, validated (ValueError with a readable message)."""
    if spec is None:
        return ()
    pairs = spec.items() if isinstance(spec, Mapping) else spec
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for pair in pairs:
        try:
            name, strength = pair
        except (TypeError, ValueError):
            raise ValueError(f"An augmentation is a (name, strength) pair such as ('rotation', 0.1); got {pair!r}.") from None
        name = str(name)
        if name not in AUGMENTATIONS:
            raise ValueError(f"Unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}.")
        if name in seen:
            raise ValueError(f"The augmentation {name!r} is listed twice.")
        seen.add(name)
        try:
            strength = float(strength)
        except (TypeError, ValueError):
            raise SettingsError(f"The strength of {name} must be a number between 0 and 1.") from None
        if not 0.0 <= strength <= 1.0:  # Also rejects NaN.
            raise SettingsError(f"The strength of {name} must be between 0 and 1, not {strength}.")
        out.append((name, strength))
    return tuple(out)


def active(spec: Any) -> Spec:
    """Only the pairs that are switched on (strength > 0)."""
    return tuple((name, s) for name, s in normalize_spec(spec) if s > 0)


def spec_from_settings(*, flip_horizontal: bool = False, flip_vertical: bool = False,
                       rotation_degrees: float = 0.0, zoom_percent: float = 0.0,
                       translation_percent: float = 0.0, contrast: float = 0.0) -> Spec:
    """A spec from the units a student sets: degrees, percentages, a contrast factor.

    `rotation_degrees` is the largest rotation either way (0-180), `zoom_percent` and
    `translation_percent` the largest zoom/shift either way (0-50 %), `contrast` in [0, 1].
    Only augmentations that are switched on appear in the spec.
    """
    for value, limit, what in ((rotation_degrees, 180.0, "The rotation"), (zoom_percent, 50.0, "The zoom"),
                               (translation_percent, 50.0, "The shift"), (contrast, 1.0, "The contrast change")):
        if not 0.0 <= float(value) <= limit:
            raise SettingsError(f"{what} must be between 0 and {limit:g}, not {value}.")
    strengths = {
        "flip_horizontal": 1.0 if flip_horizontal else 0.0,
        "flip_vertical": 1.0 if flip_vertical else 0.0,
        "rotation": float(rotation_degrees) / 180.0,
        "zoom": float(zoom_percent) / 50.0,
        "translation": float(translation_percent) / 50.0,
        "contrast": float(contrast),
    }
    return tuple((name, round(strengths[name], 6)) for name in AUGMENTATIONS if strengths[name] > 0)


def rotation_degrees(strength: float) -> float:
    """The largest rotation (either way, in degrees) of a rotation strength."""
    return float(strength) * 180.0


def keras_arguments(name: str, strength: float) -> dict[str, Any]:
    """The Keras layer class name and arguments (without seed) for one augmentation."""
    s = float(strength)
    if name == "flip_horizontal":
        return {"layer": "RandomFlip", "mode": "horizontal"}
    if name == "flip_vertical":
        return {"layer": "RandomFlip", "mode": "vertical"}
    if name == "rotation":
        return {"layer": "RandomRotation", "factor": s * 0.5, "fill_mode": "constant"}
    if name == "zoom":
        return {"layer": "RandomZoom", "height_factor": s * 0.5, "fill_mode": "constant"}
    if name == "translation":
        return {"layer": "RandomTranslation", "height_factor": s * 0.5, "width_factor": s * 0.5,
                "fill_mode": "constant"}
    if name == "contrast":
        # A pair, not a float: Keras 3 turns a float factor f into the range [1, 1 + f] (it only
        # ever raises the contrast), while the pair (f, f) gives the documented [1 - f, 1 + f].
        return {"layer": "RandomContrast", "factor": (s, s)}
    raise ValueError(f"Unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}.")


def describe(name: str, strength: float) -> str:
    """One line saying what an augmentation does at a strength, in degrees/percent and in Keras terms."""
    s = float(strength)
    if name == "flip_horizontal":
        return "Mirror left-right with probability ½ — `RandomFlip(\"horizontal\")`"
    if name == "flip_vertical":
        return "Turn upside down with probability ½ — `RandomFlip(\"vertical\")`"
    if name == "rotation":
        return f"Rotate by a random angle in ±{s * 180:.0f}° — `RandomRotation(factor={s * 0.5:.3g})`"
    if name == "zoom":
        return f"Zoom in or out by up to {s * 50:.0f} % — `RandomZoom({s * 0.5:.3g})`"
    if name == "translation":
        return (f"Shift by up to {s * 50:.0f} % of the height and width — "
                f"`RandomTranslation({s * 0.5:.3g}, {s * 0.5:.3g})`")
    if name == "contrast":
        return f"Scale the contrast by a factor in [{1 - s:.2g}, {1 + s:.2g}] — `RandomContrast(({s:.3g}, {s:.3g}))`"
    raise ValueError(f"Unknown augmentation {name!r}.")


# --------------------------------------------------------------------------------------------
# Keras layers
# --------------------------------------------------------------------------------------------

def layer_seed(seed: int, index: int) -> int:
    """The seed of the `index`-th pair of a spec (index counts switched-off pairs too)."""
    return int(seed) * 101 + int(index)


def augmentation_layers(spec: Any, *, seed: int = 0) -> list:
    """Fresh Keras random preprocessing layers for a spec, in spec order (switched-off ones left out).

    They are random only when called with `training=True`; at inference they pass images through.
    Inputs are float images in [0, 1], shape (batch, H, W, C).
    """
    from keras import layers

    built = []
    for index, (name, strength) in enumerate(normalize_spec(spec)):
        if strength <= 0:
            continue
        arguments = keras_arguments(name, strength)
        layer_class = getattr(layers, arguments.pop("layer"))
        built.append(layer_class(**arguments, seed=layer_seed(seed, index)))
    return built


def keras_code(spec: Any, *, seed: int = 0) -> str:
    """Runnable Keras code that builds the same augmentation pipeline (for students to copy)."""
    lines = ["import keras", "from keras import layers", "", "augmentation = keras.Sequential(["]
    for index, (name, strength) in enumerate(normalize_spec(spec)):
        if strength <= 0:
            continue
        arguments = keras_arguments(name, strength)
        layer = arguments.pop("layer")
        parts = []
        for key, value in arguments.items():
            if isinstance(value, float):
                value = round(value, 6)
            elif isinstance(value, tuple):
                value = tuple(round(v, 6) for v in value)
            parts.append(repr(value) if key == "mode" else f"{key}={value!r}")
        parts.append(f"seed={layer_seed(seed, index)}")
        lines.append(f"    layers.{layer}({', '.join(parts)}),")
    lines.append("])")
    lines.append("# Random only while training: augmentation(images, training=True).")
    return "\n".join(lines)


def augmentation_model(spec: Any, *, seed: int = 0):
    """The layers of `augmentation_layers` as one `keras.Sequential` named "augmentation", or None."""
    import keras

    parts = augmentation_layers(spec, seed=seed)
    return keras.Sequential(parts, name="augmentation") if parts else None


def _to_unit_float(image: np.ndarray) -> np.ndarray:
    """An image as float32 (H, W, C) in [0, 1]; accepts uint8 or float, (H, W) or (H, W, C)."""
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 3):
        raise ValueError(f"Expected one image of shape (H, W), (H, W, 1) or (H, W, 3); got {x.shape}.")
    if x.dtype == np.uint8:
        return scale_images(x)
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)) or x.min(initial=0.0) < 0.0 or x.max(initial=0.0) > 1.0:
        raise ValueError("A float image must hold values between 0 and 1.")
    return x


def augmented_grid(image: np.ndarray, spec: Any, n: int = 16, seed: int = 0) -> np.ndarray:
    """`n` augmented versions of one image, float32 (n, H, W, C) in [0, 1]; the same for the same seed.

    The layers are built fresh from `seed` (see `augmentation_layers`) and applied in training
    mode to a batch of `n` copies, so every copy gets its own random draw. With nothing switched
    on, the copies equal the image.
    """
    if not 1 <= int(n) <= 256:
        raise ValueError("Show between 1 and 256 augmented versions.")
    x = _to_unit_float(image)
    batch = np.repeat(x[None], int(n), axis=0)  # (n, H, W, C)
    parts = augmentation_layers(spec, seed=seed)
    if not parts:
        return batch
    out = batch
    for layer in parts:
        out = layer(out, training=True)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Dataset-aware warnings
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentationWarning:
    """A reason an enabled augmentation may hurt on a dataset; `severity` is "warning" or "note"."""

    augmentation: str
    severity: str
    message: str


def warnings_for(dataset: str | None, spec: Any) -> list[AugmentationWarning]:
    """Why the switched-on augmentations may create images that do not belong to their class.

    `dataset` is a cnnviz dataset name ("fashion_mnist", "mnist", "cifar10", or a class-folder
    dataset's) or None (an upload: only the dataset-independent checks apply). The dataset-specific
    advice is its spec's `augmentation` (`cnnviz.data.dataset_spec.AugmentationAdvice`).
    """
    on = dict(active(spec))
    found: list[AugmentationWarning] = []
    advice = None if dataset is None else data.spec(dataset).augmentation

    def add(name: str, severity: str, message: str) -> None:
        found.append(AugmentationWarning(name, severity, message))

    if advice is not None and "flip_vertical" in on:
        add("flip_vertical", "warning", advice.vertical_flip)
    if advice is not None and "flip_horizontal" in on and advice.horizontal_flip is not None:
        add("flip_horizontal", "warning", advice.horizontal_flip)
    if advice is not None and "rotation" in on:
        degrees = rotation_degrees(on["rotation"])
        if degrees > advice.rotation_limit_degrees:
            add("rotation", advice.rotation_severity,
                advice.rotation.format(degrees=degrees, limit=advice.rotation_limit_degrees))
    if "translation" in on and on["translation"] * 50.0 > SHIFT_LIMIT_PERCENT:
        add("translation", "note",
            f"Shifts of up to {on['translation'] * 50:.0f} % can push part of the object out of the "
            "frame (the uncovered border is filled with black).")
    if "zoom" in on and on["zoom"] * 50.0 > ZOOM_LIMIT_PERCENT:
        add("zoom", "note",
            f"Zooming in by up to {on['zoom'] * 50:.0f} % can crop away the parts that identify the "
            "class (a sleeve, a heel, the loop of a 9).")
    return found
