"""The convolution lab lesson: what its page shows, computed from the widget values.

The page (`app_pages/convolution.py`) reads its widgets and calls `lab_view` once for the main figure,
then `step_view`, `pool_view` and `colour_view` for the sections a student opens. The arithmetic itself
lives in `cnnviz.convolution`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz import images
from cnnviz.convolution import (
    KERNEL_PRESETS,
    OutputSizeExplanation,
    Padding,
    WindowDetail,
    apply_kernel,
    explain_output_size,
    normalise_kernel,
    pad_image,
    pool,
    random_kernel,
    relu,
    validate_kernel,
    window_detail,
)
from cnnviz.errors import KernelError

GRID_KERNEL_SIZES = (3, 5, 7)  # The sizes of the lab's editable kernel grid.
COLOR_FILTERS = ("edge detector in every channel", "red minus green", "random (seeded)")
RANDOM_FILTERS = 8  # Random 3x3x3 filters shown side by side.
COLOR_TEST_CARD_SIDE = 48  # The colour section's built-in image when the chosen one is gray.


def grid_kernel(value) -> np.ndarray:
    """A square 3x3, 5x5 or 7x7 kernel for the lab's grid (e.g. typed, or read from a link), or `KernelError`."""
    kernel = validate_kernel(value)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] not in GRID_KERNEL_SIZES:
        raise KernelError(f"The grid holds square 3x3, 5x5 or 7x7 kernels; yours is "
                          f"{'x'.join(str(side) for side in kernel.shape)}.")
    return kernel


def is_grid_kernel(value) -> bool:
    """Whether `value` (e.g. a list of rows read back from a link) is a kernel the grid can hold."""
    try:
        grid_kernel(value)
    except KernelError:
        return False
    return True


@dataclass(frozen=True)
class LabView:
    """One image, one kernel and its settings, and the feature map they give (sections 1 and 2)."""

    image: np.ndarray  # Values in [0, 1]: (H, W) in grayscale, (H, W, 3) per channel.
    kernel: np.ndarray  # (k, k), as applied: normalised when asked.
    output: np.ndarray  # (H', W') or (H', W', 3), after the ReLU when asked.
    stride: int
    padding: Padding
    flip: bool
    relu: bool
    height: OutputSizeExplanation  # The output-size formula for the rows…
    width: OutputSizeExplanation  # …and for the columns.

    @property
    def is_color(self) -> bool:
        return self.image.ndim == 3

    @property
    def channel_names(self) -> tuple[str, ...]:
        return images.CHANNEL_NAMES if self.is_color else ("gray",)

    @property
    def kernel_size(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def quiz_key(self) -> tuple:
        """What the output shape depends on: a prediction is for one such combination."""
        return (self.image.shape[0], self.image.shape[1], self.kernel_size, self.stride, str(self.padding))

    def plane(self, channel: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(input plane, output plane) of one channel (None: the grayscale image)."""
        if channel is None or not self.is_color:
            return self.image, self.output
        return self.image[:, :, channel], self.output[:, :, channel]


def lab_view(pixels, kernel, *, per_channel: bool, stride: int, padding: Padding, flip: bool, apply_relu: bool,
             normalise: bool) -> LabView:
    """The lab's image (gray, or RGB per channel), kernel and feature map; `KernelError` when they do not fit.

    `pixels` is the chosen uint8 image, `kernel` the grid's weights as typed.
    """
    unit = images.to_unit_float(pixels)
    image = images.to_rgb(unit) if per_channel and not images.is_effectively_gray(pixels) else images.to_grayscale(unit)
    raw = validate_kernel(kernel)
    applied = normalise_kernel(raw) if normalise else raw
    size = applied.shape[0]
    height = explain_output_size(image.shape[0], size, stride, padding)
    width = explain_output_size(image.shape[1], size, stride, padding)
    output = apply_kernel(image, applied, stride=stride, padding=padding, flip=flip)
    if apply_relu:
        output = relu(output)
    return LabView(image=image, kernel=applied, output=output, stride=stride, padding=padding, flip=flip,
                   relu=apply_relu, height=height, width=width)


@dataclass(frozen=True)
class StepView:
    """One output position of a `LabView`, written out (section 3)."""

    detail: WindowDetail
    padded: np.ndarray  # (H + padding, W + padding): the input plane with its zeros.
    pad_top: int
    pad_left: int
    values: np.ndarray  # (H', W'): the output plane the position belongs to.
    centre: tuple[int, int]  # The window's centre, in padded coordinates.
    signed_limit: float | None  # One colour range for the whole map (None when it has no negative value).


def step_view(view: LabView, row: int, col: int, channel: int | None = None) -> StepView:
    """The window behind output (row, col) of `view` (of one channel for a colour image)."""
    plane, values = view.plane(channel)
    detail = window_detail(plane, view.kernel, row, col, stride=view.stride, padding=view.padding, flip=view.flip)
    size = view.kernel_size
    padded, (pad_top, pad_left) = pad_image(plane, (size, size), view.stride, view.padding)
    signed_limit = (float(np.abs(values).max()) or 1.0) if values.min() < 0 else None
    return StepView(detail=detail, padded=padded[:, :, 0], pad_top=pad_top, pad_left=pad_left, values=values,
                    centre=(row * view.stride + size // 2, col * view.stride + size // 2),
                    signed_limit=signed_limit)


@dataclass(frozen=True)
class PoolView:
    """A lab's feature map, pooled (section 4)."""

    pooled: np.ndarray  # (H'', W'') or (H'', W'', 3).
    kind: str  # "max" or "avg".
    explained: OutputSizeExplanation  # The output-size formula along the rows.

    @property
    def takes(self) -> str:
        return "largest value" if self.kind == "max" else "average"


def pool_view(feature_map: np.ndarray, size: int, stride: int, kind: str) -> PoolView:
    """Pool a feature map (`LabView.output`); `KernelError` when it is smaller than the pool."""
    out_height, out_width = feature_map.shape[:2]
    if out_height < size or out_width < size:
        raise KernelError(f"The feature map ({out_height} × {out_width}) is smaller than a {size} × {size} "
                          "pool; pick a smaller pool or a smaller stride above.")
    return PoolView(pooled=pool(feature_map, size, stride=stride, kind=kind), kind=kind,
                    explained=explain_output_size(out_height, size, stride, "valid"))


def color_filter(name: str, seed: int = 0) -> np.ndarray:
    """One of `COLOR_FILTERS` as a 3x3x3 kernel (rows, columns, RGB)."""
    if name == "edge detector in every channel":
        return np.repeat(KERNEL_PRESETS["Laplacian edge"].kernel[:, :, None] / 3.0, 3, axis=2)
    if name == "red minus green":
        kernel = np.zeros((3, 3, 3))
        kernel[:, :, 0] = 1 / 9
        kernel[:, :, 1] = -1 / 9
        return kernel
    if name == "random (seeded)":
        return random_kernel(3, seed=seed, channels=3)
    raise KernelError(f"Unknown colour filter {name!r}; choose one of {', '.join(COLOR_FILTERS)}.")


@dataclass(frozen=True)
class ColourView:
    """One 3x3x3 filter on an RGB image, channel by channel, and eight random filters (section 5)."""

    image: np.ndarray  # (H, W, 3) in [0, 1].
    test_card: bool  # True when the chosen image was gray and the built-in colour test card is used.
    kernel: np.ndarray  # (3, 3, 3).
    per_channel: tuple[np.ndarray, ...]  # R ⋆ k_R, G ⋆ k_G, B ⋆ k_B: (H', W') each.
    summed: np.ndarray  # Their sum (after the ReLU when asked): the filter's one feature map.
    random_maps: tuple[np.ndarray, ...]  # The feature maps of `RANDOM_FILTERS` random filters.
    relu: bool


def colour_view(pixels, filter_name: str, seed: int, *, apply_relu: bool) -> ColourView:
    """What one colour filter, and `RANDOM_FILTERS` random ones (seeds `seed`, `seed + 1`…), make of `pixels`.

    A gray image has no colour to show, so the built-in colour test card is used instead.
    """
    test_card = images.is_effectively_gray(pixels)
    source = images.color_shapes(COLOR_TEST_CARD_SIDE) if test_card else pixels
    image = images.to_rgb(images.to_unit_float(source))
    kernel = color_filter(filter_name, seed)
    per_channel = tuple(apply_kernel(image[:, :, c], kernel[:, :, c]) for c in range(3))
    summed = apply_kernel(image, kernel)
    random_maps = tuple(apply_kernel(image, random_kernel(3, seed=seed + index, channels=3,
                                                          filters=RANDOM_FILTERS))
                        for index in range(RANDOM_FILTERS))
    if apply_relu:
        summed = relu(summed)
        random_maps = tuple(relu(values) for values in random_maps)
    return ColourView(image=image, test_card=test_card, kernel=kernel, per_channel=per_channel, summed=summed,
                      random_maps=random_maps, relu=apply_relu)
