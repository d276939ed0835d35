"""What cnnviz knows about one dataset, written once: the `DatasetSpec`.

Every per-dataset fact (its name in the interface, image shape, class names, where its files
may lie, how an upload is prepared for it, which augmentations mislead on it, the network the
train page starts with) is a field of its spec, and every caller reads the spec
(``data.spec(name).image_shape``). A dataset is one module beside this one (see `registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The project's assets/ folder (bundled samples live there).
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"

# The file layouts `cnnviz.data.sources` can find and read (see `Layout`).
LAYOUT_FORMATS: tuple[str, ...] = ("idx", "cifar_pickle", "class_folders", "npz")


@dataclass(frozen=True)
class Layout:
    """One way a dataset's files may be laid out, relative to a base folder.

    `path` is relative to ``CNNVIZ_DATA_DIR`` (in `DatasetSpec.local`) or to Keras'
    ``datasets/`` folder (in `DatasetSpec.keras_cache`). `format` names the reader:
    "idx" (a folder of the four standard IDX files), "cifar_pickle" (a folder of the pickled
    CIFAR batches), "class_folders" (``train/<class>/`` and ``test/<class>/`` image folders) or
    "npz" (one Keras-style .npz file with x_train, y_train, x_test, y_test).
    """

    path: str
    format: str

    def __post_init__(self) -> None:
        if self.format not in LAYOUT_FORMATS:
            raise ValueError(f"Unknown layout format {self.format!r}; choose one of {', '.join(LAYOUT_FORMATS)}.")


_TILTED_PICTURES = ("Rotations up to {degrees:.0f}° produce tilted pictures that the upright, centred "
                    "test images never show; small angles (10–20°) usually help more.")


@dataclass(frozen=True)
class AugmentationAdvice:
    """Which augmentations create images that no longer belong to their class on this dataset.

    Read by `cnnviz.training.augmenter.warnings_for`. The rotation message may use
    ``{degrees}`` (the chosen maximum) and ``{limit}`` (`rotation_limit_degrees`).
    """

    vertical_flip: str  # Why an upside-down image misleads (shown as a warning).
    horizontal_flip: str | None = None  # Why a mirrored image misleads; None: mirroring keeps the class.
    rotation_limit_degrees: float = 30.0  # Beyond this a rotated image stops looking like its class.
    rotation_severity: str = "note"  # "warning" or "note"
    rotation: str = _TILTED_PICTURES


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """Everything cnnviz knows about a dataset before loading it.

    `label` names the dataset in sentences ("MNIST is not available: ..."), `title` in menus,
    tables and captions ("MNIST digits"). `image_shape` is (height, width, channels) of one
    image. `dark_background` is True when objects are light on black (an uploaded photo is then
    inverted). `default_preset` is the architecture preset the train page starts with.
    `class_families` maps labels to coarse families (used to judge whether transfer classes
    resemble the pre-training ones); empty when none are defined.
    `local` and `keras_cache` list the file layouts tried, in order, in ``CNNVIZ_DATA_DIR`` and
    in Keras' download cache; `keras_dataset` is the ``keras.datasets`` module that downloads
    it (None: no download) and `download_host` the server it downloads from (checked, without
    downloading, before a status promises a download); `bundled_sample` is a .npz shipped with
    cnnviz (None: none). `class_folders` is True for a student's dataset read by
    `cnnviz.data.load_image_folder` (registered for the process, read back from the disk cache
    by `cnnviz.data.load`), False for the built-in datasets.
    """

    name: str
    label: str
    title: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    dark_background: bool
    default_preset: str
    augmentation: AugmentationAdvice
    local: tuple[Layout, ...]
    keras_cache: tuple[Layout, ...] = ()
    keras_dataset: str | None = None
    download_host: str | None = None
    bundled_sample: Path | None = None
    class_families: Mapping[int, str] = field(default_factory=dict)
    class_folders: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of one image."""
        return self.image_shape[0], self.image_shape[1]

    @property
    def channels(self) -> int:
        return self.image_shape[2]
