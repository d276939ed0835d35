"""The layer & parameter calculator's lesson: a stack's table, totals, quiz and edits, from its widgets.

`calculator_view(input_shape, layers)` is the page's one call per rerun: every row that works,
the error of the first layer that does not, and the totals. The rest are the small rules behind
the page's buttons (move, insert, import) and its "predict first" quiz. All arithmetic is
`cnnviz.architecture`'s; nothing here imports TensorFlow or Streamlit.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnviz import architecture as arch
from cnnviz.architecture.layers import shape_text
from cnnviz.errors import ArchitectureError, InputError
from cnnviz.parsing import parse_int

DEFAULT_PRESET = "fashion_relu_cnn"
MAX_IMPORT_BYTES = 200_000
QUIZ_WHAT = ("output shape", "parameters")

# Sensible settings for a layer inserted from the menu (Keras defaults for the rest).
NEW_LAYER: dict[str, dict[str, Any]] = {
    "conv2d": {"filters": 16, "kernel_size": 3, "activation": "relu"},
    "maxpool2d": {"pool_size": 2},
    "avgpool2d": {"pool_size": 2},
    "dense": {"units": 32, "activation": "relu"},
    "dropout": {"rate": 0.25},
    "residual_block": {"filters": 16, "kernel_size": 3},
    "pretrained_backbone": {"backbone": "mobilenet_v2"},
}

Shape = tuple[int, int, int]


# ---------------------------------------------------------------------------------------------
# Numbers as the page writes them.


def bytes_text(count: int) -> str:
    for unit, size in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count:,} bytes"


def big_number(count: int) -> str:
    for unit, size in (("billion", 10 ** 9), ("million", 10 ** 6)):
        if count >= size:
            return f"{count / size:,.2f} {unit}"
    return f"{count:,}"


# ---------------------------------------------------------------------------------------------
# The stack, summarised.


@dataclass(frozen=True)
class FailedLayer:
    """The first layer that cannot work, for the table's ✖ row."""

    index: int
    name: str
    what: str
    error: ArchitectureError


@dataclass(frozen=True)
class CalculatorView:
    """What the calculator shows for one input shape and layer stack."""

    input_shape: Shape
    layers: tuple[dict, ...]
    rows: tuple[arch.LayerRow, ...]  # Every layer that works (all of them when `error` is None).
    error: ArchitectureError | None
    failed: FailedLayer | None  # The layer the error is about, when it names one.

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def names(self) -> list[str]:
        """Every layer's Keras name, e.g. "conv2d_1" (also for layers after the error)."""
        return arch.layer_names(self.layers)

    def keras_code(self) -> str:
        """The stack as a Keras script (only for a valid stack)."""
        return arch.keras_code(self.input_shape, self.layers)

    def json_text(self) -> str:
        """The stack as JSON, for download and import (only for a valid stack)."""
        return arch.stack_to_json(self.input_shape, self.layers)

    @property
    def totals(self) -> arch.Totals | None:
        return arch.totals(self.rows) if self.valid and self.rows else None

    @property
    def shared_view(self) -> dict | None:
        """The stack as compact JSON for a link; None when invalid or when it is a preset unchanged
        (then the link carries the preset's name, `shared_preset`, or nothing for the default)."""
        if not self.valid or matching_preset(self.input_shape, self.layers) is not None:
            return None
        return _compact(self.input_shape, self.layers)

    @property
    def shared_preset(self) -> str | None:
        """The name of the preset this stack is, unchanged, for a short link; None for the default
        preset (a clean URL) and for any other stack (shared by `shared_view`)."""
        name = matching_preset(self.input_shape, self.layers) if self.valid else None
        return None if name == DEFAULT_PRESET else name


def _compact(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> dict:
    """The stack in the one compact JSON form of links, so that equal stacks compare equal."""
    return json.loads(arch.stack_to_json(tuple(input_shape), list(layers), compact=True))


def matching_preset(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> str | None:
    """The preset whose input shape and layers this stack has exactly (every setting), or None."""
    try:
        view = _compact(input_shape, layers)
    except ArchitectureError:
        return None
    return next((name for name, preset_view in _preset_views() if view == preset_view), None)


@functools.cache
def _preset_views() -> tuple[tuple[str, dict], ...]:
    """Every preset's compact form, computed once (the presets are constants)."""
    return tuple((name, _compact(preset.input_shape, preset.layers)) for name, preset in arch.PRESETS.items())


def calculator_view(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> CalculatorView:
    """The rows of the layers that work, and the error of the first that does not (never raises it)."""
    shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    stack = tuple(dict(layer) for layer in layers)
    try:
        return CalculatorView(shape, stack, tuple(arch.summarize(shape, stack)), None, None)
    except ArchitectureError as error:
        rows: list[arch.LayerRow] = []
        if error.index:
            try:
                rows = arch.summarize(shape, stack[:error.index])
            except ArchitectureError:
                rows = []
        return CalculatorView(shape, stack, tuple(rows), error, _failed_layer(stack, error))


def _failed_layer(layers: Sequence[Mapping[str, Any]], error: ArchitectureError) -> FailedLayer | None:
    if error.index is None or error.index >= len(layers):
        return None
    names = arch.layer_names(layers)
    try:
        what = arch.describe_layer(arch.normalize_layer(layers[error.index]))
    except ArchitectureError:
        what = str(layers[error.index].get("type", "?"))
    return FailedLayer(error.index, names[error.index], what, error)


def stack_from_view(value: Any) -> tuple[Shape, list[dict]]:
    """(input shape, layers) of a stack read back from a link (`CalculatorView.shared_view`), or `ArchitectureError`."""
    return arch.stack_from_json(json.dumps(value))


def is_valid_view(value: Any) -> bool:
    """A shared link's stack is applied only when it describes a possible network."""
    try:
        stack_from_view(value)
    except (ArchitectureError, RecursionError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Editing the stack (the page's buttons).


def move_layer(layers: Sequence[Mapping[str, Any]], index: int, step: int) -> tuple[list[dict], int] | None:
    """The stack with layer `index` moved `step` places (and its new index); None when it cannot move."""
    moved = [dict(layer) for layer in layers]
    target = index + step
    if not (0 <= index < len(moved) and 0 <= target < len(moved)):
        return None
    moved[index], moved[target] = moved[target], moved[index]
    return moved, target


def insert_layer(layers: Sequence[Mapping[str, Any]], after: int, layer_type: str) -> tuple[list[dict], int]:
    """The stack with a new `layer_type` layer (see NEW_LAYER) after layer `after`, and its index."""
    inserted = [dict(layer) for layer in layers]
    position = min(after + 1, len(inserted))
    inserted.insert(position, {"type": layer_type, **NEW_LAYER.get(layer_type, {})})
    return inserted, position


def import_stack(file_bytes: bytes | None, text: str) -> tuple[Shape, list[dict]]:
    """(input shape, layers) from an uploaded .json file (preferred) or pasted text; `ArchitectureError` if not."""
    if file_bytes is not None:
        if len(file_bytes) > MAX_IMPORT_BYTES:
            raise ArchitectureError(f"The file is {len(file_bytes):,} bytes; a layer stack in JSON is "
                                    f"far smaller (at most {MAX_IMPORT_BYTES:,} bytes accepted).")
        return arch.stack_from_json(file_bytes)
    if text.strip():
        return arch.stack_from_json(text)
    raise ArchitectureError("Paste JSON into the box or choose a .json file first.")


# ---------------------------------------------------------------------------------------------
# "Predict first": one hidden number.


GUESS_LIMIT = 10**30  # Larger than any count a stack here can have.


def parse_guess(text: str) -> list[int] | None:
    """Numbers in a guess such as "13x13x8", "(13, 13, 8)" or "37,884" (commas inside a number).

    Each number goes through the one bounded parser: one with more than
    `parsing.MAX_NUMBER_CHARACTERS` digits raises `InputError` before any conversion.
    """
    cleaned = text.strip()
    if not cleaned:
        return None
    if re.fullmatch(r"\d{1,3}(,\d{3})+", cleaned):
        cleaned = cleaned.replace(",", "")
    parts = re.findall(r"\d+", cleaned)
    return [parse_int(part, what="A number in your guess", maximum=GUESS_LIMIT) for part in parts] if parts else None


def quiz_key(row: arch.LayerRow, what: str) -> tuple:
    """What a revealed answer is for: this layer's hidden number (another stack asks again)."""
    return (row.name, what, shape_text(row.output_shape), row.params)


@dataclass(frozen=True)
class GuessVerdict:
    """The answer to one guess: `right` is None when the guess held no number."""

    right: bool | None
    message: str


def check_guess(row: arch.LayerRow, what: str, guess: str) -> GuessVerdict:
    """Compare a student's guess of a layer's output shape or parameter count with the truth."""
    try:
        numbers = parse_guess(guess)
    except InputError as error:
        return GuessVerdict(None, str(error))
    if numbers is None:
        return GuessVerdict(None, "Type a number (or a shape such as 13x13x8) first.")
    shape = what == "output shape"
    answer = shape_text(row.output_shape) if shape else f"{row.params:,}"
    if numbers == (list(row.output_shape) if shape else [row.params]):
        return GuessVerdict(True, f"Right: {row.name} has {what} {answer}.")
    return GuessVerdict(False, f"Not quite: the {what} of {row.name} is {answer}. "
                        + (f"Its input was {shape_text(row.input_shape)}." if shape else f"Formula: {row.formula}."))
