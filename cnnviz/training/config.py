"""What defines a trained model: one frozen, hashable `TrainConfig` and the one validation of its settings.

`TrainConfig.key()` hashes every field (and `ENGINE_VERSION`): it names the model in the disk
cache and in the pages' shared jobs. `TrainConfig.validate()` is the one place that says, in words
a student understands, why settings cannot train (`SettingsError`); pages show its message as it is.
It includes the server's resource budget (`cnnviz.architecture.budget`: memory and run length),
so a run too big for the server is refused (`BudgetError`) before anything is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz import architecture, data
from cnnviz.architecture import budget
from cnnviz.errors import ArchitectureError, SettingsError
from cnnviz.training.augmenter import AUGMENTATIONS

# Bump this when the engine changes in a way that changes trained results, so disk-cache
# entries written by an older engine are not reused.
ENGINE_VERSION = "1"

OPTIMIZERS = ("adam", "sgd", "rmsprop")

# A layer in its hashable form: sorted (argument, value) pairs; a stack is a tuple of those.
FrozenLayer = tuple[tuple[str, Any], ...]
FrozenStack = tuple[FrozenLayer, ...]
AugmentationSpec = tuple[tuple[str, float], ...]

# The seeds' ReLU CNN for Fashion-MNIST (38,254 parameters): the default stack.
SEEDS_RELU_CNN: tuple[dict[str, Any], ...] = (
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 28, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"},
)


def _freeze(value: Any) -> Any:
    """Turn lists (and dicts) inside a layer spec into tuples so the spec is hashable."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def freeze_stack(layers: Iterable[Mapping[str, Any] | FrozenLayer]) -> FrozenStack:
    """The hashable form of a layer stack: a tuple of sorted (argument, value) tuples per layer."""
    frozen = []
    for layer in layers:
        if isinstance(layer, dict):
            frozen.append(_freeze(layer))
        elif isinstance(layer, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in layer):
            frozen.append(tuple(sorted((str(k), _freeze(v)) for k, v in layer)))
        else:
            # Code passed something that is not a layer (pages build their stacks as dicts).
            raise ValueError(f"A layer must be a dict such as {{'type': 'dense', 'units': 10}}; got {layer!r}.")
    return tuple(frozen)


def thaw_stack(layers: FrozenStack) -> list[dict[str, Any]]:
    """The list-of-dicts form of a hashable stack (tuple values stay tuples; Keras accepts them)."""
    return [dict(layer) for layer in layers]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a trained model; `key()` hashes all of it (the cache key).

    `layers` is the hashable form of a stack (see `from_stack` / `stack()`); a list of dicts
    passed here is converted automatically. With `fast=True` the learning rate is the peak of
    a short linear warm-up followed by a cosine decay to 2% of it at the last epoch; with
    `fast=False` it is constant and training is a plain `model.fit`.
    `classes` keeps only those original labels (remapped to 0..k-1 in the given order; the
    output layer needs k units). `augmentation` is a spec of `cnnviz.training.augmenter` applied
    while training only. `warm_start` + `warm_start_layers` copy the first N layers' weights from
    the model trained under that config (trained first if not cached); `freeze_layers` makes the
    first N layers untrainable. `validate_every_epoch=False` (fast mode only) measures the test split
    once, after the last epoch, instead of after every epoch: for experiments that judge the final
    accuracy on a large test set, where evaluating it every epoch would cost more than training.
    `record_gradients=True` records each kernel layer's gradient norm and weight histogram at
    initialisation and after every epoch (`cnnviz.training.diagnostics`; `TrainResult.training_record`).
    """

    dataset: str = "fashion_mnist"
    limit_train: int | None = None
    limit_test: int | None = None
    layers: FrozenStack = field(default_factory=lambda: freeze_stack(SEEDS_RELU_CNN))
    optimizer: str = "adam"
    learning_rate: float = 0.003
    batch_size: int = 128
    epochs: int = 5
    seed: int = 0
    classes: tuple[int, ...] | None = None
    augmentation: AugmentationSpec = ()
    warm_start: TrainConfig | None = None
    warm_start_layers: int = 0
    freeze_layers: int = 0
    fast: bool = True
    validate_every_epoch: bool = True
    record_gradients: bool = False

    def __post_init__(self) -> None:
        # Normalise friendly inputs (lists, dicts, numpy numbers) into the hashable canonical form,
        # so equal configurations have equal keys however they were written.
        set_ = object.__setattr__
        set_(self, "layers", freeze_stack(self.layers))
        if self.classes is not None:
            set_(self, "classes", tuple(int(c) for c in self.classes))
        augmentation: Any = self.augmentation
        if isinstance(augmentation, dict):
            augmentation = tuple(augmentation.items())
        set_(self, "augmentation", tuple((str(name), float(strength)) for name, strength in augmentation))
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, int(value))
        for name in ("batch_size", "epochs", "seed", "warm_start_layers", "freeze_layers"):
            set_(self, name, int(getattr(self, name)))
        set_(self, "learning_rate", float(self.learning_rate))
        set_(self, "fast", bool(self.fast))
        set_(self, "validate_every_epoch", bool(self.validate_every_epoch))
        set_(self, "record_gradients", bool(self.record_gradients))
        set_(self, "optimizer", str(self.optimizer).lower())

    @classmethod
    def from_stack(cls, layers: Iterable[Mapping[str, Any]], **fields: Any) -> TrainConfig:
        """A config for a stack given as a list of layer dicts, e.g. `from_stack(preset.layers, epochs=3)`."""
        return cls(layers=freeze_stack(layers), **fields)

    def stack(self) -> list[dict[str, Any]]:
        """The layer stack as a list of dicts, ready for `build_keras_model`."""
        return thaw_stack(self.layers)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description of every field (the warm-start config nested)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "warm_start":
                value = None if value is None else value.to_json()
            elif f.name == "layers":
                value = [[list(pair) for pair in layer] for layer in value]
            elif f.name == "augmentation":
                value = [list(pair) for pair in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif f.name == "validate_every_epoch" and value:
                continue  # the default is left out, so that the keys of earlier configs stay as they were
            elif f.name == "record_gradients" and not value:
                continue  # likewise (off by default)
            out[f.name] = value
        return out

    def key(self) -> str:
        """A stable hash of every field (and the engine version): the cache key."""
        text = json.dumps({"engine": ENGINE_VERSION, "config": self.to_json()}, sort_keys=True,
                          default=repr, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def validate(self, *, train_images: int | None = None, test_images: int | None = None) -> None:
        """Raise `SettingsError` with a student-readable message for settings that cannot train.

        `train_images`, when the caller knows how many training images the run will see, also
        checks that one batch fits into them (the engine checks it once the data is prepared).
        The budget (`check_budget`) is checked on the dataset's image shape, with `train_images`
        and `test_images` (or the configured limits) when known.
        """
        if not self.layers:
            raise SettingsError("The layer stack is empty: add at least an output Dense layer.")
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise SettingsError("The learning rate must be a positive number.")
        if self.epochs < 1:
            raise SettingsError("Train for at least one epoch (one pass over the training images).")
        if self.batch_size < 1:
            raise SettingsError("The batch size must be at least 1.")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{name.replace('_', ' ').capitalize()} must be at least 1 image (or no limit).")
        if self.classes is not None:
            if len(self.classes) < 2:
                raise SettingsError("Choose at least two classes to tell apart.")
            if len(set(self.classes)) != len(self.classes):
                raise SettingsError("Each class may be chosen only once.")
        for name, strength in self.augmentation:
            if name not in AUGMENTATIONS:
                raise SettingsError(f"Unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}.")
            if not (0.0 <= strength <= 1.0):
                raise SettingsError(f"The strength of {name} must be between 0 and 1.")
        n_layers = len(self.layers)
        if not 0 <= self.freeze_layers <= n_layers:
            raise SettingsError(f"Can freeze between 0 and {n_layers} layers, not {self.freeze_layers}.")
        if not 0 <= self.warm_start_layers <= n_layers:
            raise SettingsError(f"Can copy between 0 and {n_layers} layers, not {self.warm_start_layers}.")
        if self.warm_start_layers and self.warm_start is None:
            raise SettingsError("Copying pre-trained layers needs a warm-start configuration.")
        if self.warm_start is not None:
            self.warm_start.validate()
            if self.warm_start_layers > len(self.warm_start.layers):
                raise SettingsError("The pre-trained model has fewer layers than the number to copy.")
        if not self.fast and not self.validate_every_epoch:
            raise SettingsError("Plain model.fit (fast=False) validates after every epoch; "
                                "validating only after the last one needs the fast engine.")
        if train_images is not None:
            self.check_batch_fits(train_images)
        self.check_budget(train_images=train_images, test_images=test_images)

    def check_budget(self, image_shape: tuple[int, int, int] | None = None, train_images: int | None = None,
                     test_images: int | None = None, *, seeds: int = 1) -> None:
        """Raise `BudgetError` when this run needs more memory, or more weight updates, than the
        server allows (`cnnviz.architecture.budget.check_training`), before anything is built.

        Without `image_shape` the dataset's is used (an unknown dataset, or a stack that does not
        fit its images, is left to the engine, which calls this again on the prepared images);
        without `train_images` / `test_images` the configured limits (the run length is only
        checked when the number of training images is known). `seeds` models trained together
        multiply the memory.
        """
        if image_shape is None:
            try:
                image_shape = data.spec(self.dataset).image_shape
            except ValueError:
                return
        if train_images is None:
            train_images = self.limit_train
        if test_images is None:
            test_images = self.limit_test
        try:
            rows = architecture.summarize(image_shape, self.stack())
        except ArchitectureError:
            return  # Not this check's business: the engine explains an impossible stack.
        budget.check_training(image_shape, rows, batch_size=self.batch_size, optimizer=self.optimizer,
                              epochs=self.epochs, train_images=train_images, test_images=test_images,
                              fast=self.fast, seeds=seeds)

    def check_batch_fits(self, train_images: int) -> None:
        """Raise `SettingsError` when one batch is larger than the `train_images` the run trains on."""
        if self.batch_size > train_images:
            raise SettingsError(f"The batch size ({self.batch_size}) is larger than the training set "
                                f"({train_images:,} images): choose a smaller batch or more training images.")
