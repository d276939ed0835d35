"""One filter, by hand: a kernel slid over an image, pooling, and the output-size formula.

Everything here is plain NumPy (and SciPy-compatible by construction), so the convolution lab
never needs TensorFlow. The conventions are Keras' own, so that what a student sees here is
exactly what a `Conv2D` or `MaxPooling2D` layer computes:

- images are (H, W) or (H, W, C) arrays, channels last;
- `flip=False` is cross-correlation (what Keras' Conv2D computes), `flip=True` true convolution;
- `padding="same"` follows Keras/TensorFlow: the output has `ceil(n / stride)` rows, and when
  the total padding is odd the extra zero row (column) goes at the bottom (right).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from cnnviz.errors import KernelError
from cnnviz.parsing import MAX_NUMBER_CHARACTERS, parse_float

Padding = str | int  # "valid", "same" or a non-negative number of zeros per side.

MAX_KERNEL_SIDE = 15
# The largest kernel weight (in size): sums of weights times pixels then stay far from overflow.
MAX_KERNEL_WEIGHT = 1e6
MAX_KERNEL_TEXT = 20_000  # Characters of a typed kernel (15×15 numbers with room to spare).


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------

def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


def _check_padding(padding: Padding) -> Padding:
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f'padding must be "valid", "same" or a number of zeros, not {padding!r}.')
        return padding
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be \"valid\", \"same\" or a non-negative whole number, not {padding!r}.")
    return int(padding)


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints, as Keras accepts for kernel and pool sizes."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one number or a pair of numbers, not {value!r}.")
        return _check_positive_int(value[0], name), _check_positive_int(value[1], name)
    size = _check_positive_int(value, name)
    return size, size


def validate_kernel(kernel) -> np.ndarray:
    """The kernel as a float array, or a `KernelError` a student can act on.

    A kernel is (kh, kw) or (kh, kw, C); every entry must be a finite number no larger than
    `MAX_KERNEL_WEIGHT` in size.
    """
    try:
        array = np.asarray(kernel, dtype=float)
    except OverflowError:  # A Python int too large for a float (e.g. 400 digits).
        raise KernelError(f"Kernel weights must lie between -{MAX_KERNEL_WEIGHT:,.0f} and "
                          f"{MAX_KERNEL_WEIGHT:,.0f}; one of these numbers is far larger.") from None
    except (TypeError, ValueError) as error:
        raise KernelError(f"The kernel must contain only numbers ({error}).") from None
    if array.ndim not in (2, 3):
        raise KernelError(f"A kernel is a 2-D grid (or 3-D for colour), not an array of shape {array.shape}.")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise KernelError("The kernel is empty.")
    if max(array.shape[:2]) > MAX_KERNEL_SIDE:
        raise KernelError(f"Kernels larger than {MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE} are not supported here.")
    if not np.all(np.isfinite(array)):
        bad = [tuple(int(i) for i in index) for index in np.argwhere(~np.isfinite(array))]
        where = ", ".join(f"row {index[0] + 1}, column {index[1] + 1}" for index in bad[:3])
        raise KernelError(f"Every kernel entry must be a finite number; found NaN or infinity at {where}.")
    if np.any(np.abs(array) > MAX_KERNEL_WEIGHT):
        index = tuple(int(i) for i in np.argwhere(np.abs(array) > MAX_KERNEL_WEIGHT)[0])
        raise KernelError(f"Kernel weights must lie between -{MAX_KERNEL_WEIGHT:,.0f} and {MAX_KERNEL_WEIGHT:,.0f}; "
                          f"the weight at row {index[0] + 1}, column {index[1] + 1} is {array[index]:g}.")
    return array


def _as_image(image) -> np.ndarray:
    """The image as a float (H, W, C) array (a 2-D image gets C = 1)."""
    array = np.asarray(image, dtype=float)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"An image is (height, width) or (height, width, channels), not shape {array.shape}.")
    if array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"The image is empty (shape {array.shape}).")
    if not np.all(np.isfinite(array)):
        raise ValueError("The image contains NaN or infinite values.")
    return array


# ----------------------------------------------------------------------------------------------
# Output size: the formula (W - F + 2P) / S + 1
# ----------------------------------------------------------------------------------------------

def padding_amounts(n: int, kernel: int, stride: int, padding: Padding) -> tuple[int, int]:
    """Zeros added before and after one axis of length `n`, as Keras does.

    "valid" adds none; an int `p` adds `p` on each side; "same" adds just enough for
    `ceil(n / stride)` outputs, with the odd one (if any) after, like TensorFlow.
    """
    n = _check_positive_int(n, "The input size")
    kernel = _check_positive_int(kernel, "The kernel size")
    stride = _check_positive_int(stride, "The stride")
    padding = _check_padding(padding)
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        return total // 2, total - total // 2
    return int(padding), int(padding)


def output_size(n: int, kernel: int, stride: int = 1, padding: Padding = "valid", dilation: int = 1) -> int:
    """Length of the output along one axis: floor((n - k_eff + P_total) / stride) + 1, as Keras.

    ``k_eff = dilation * (kernel - 1) + 1`` is the dilated kernel's extent; "same" padding gives
    ``ceil(n / stride)`` whatever the kernel. This is the one output-size rule: the architecture
    calculator uses it for every convolution and pooling layer. Raises `KernelError` when the
    kernel does not fit in the (padded) input, where Keras refuses a zero or negative size.
    """
    dilation = _check_positive_int(dilation, "The dilation rate")
    effective = dilation * (_check_positive_int(kernel, "The kernel size") - 1) + 1
    before, after = padding_amounts(n, effective, stride, padding)
    span = n + before + after - effective
    if span < 0:
        raise KernelError(
            f"A {kernel}-wide kernel"
            + (f" (dilated to {effective})" if dilation > 1 else "")
            + f" does not fit in an input of size {n}"
            + (f" padded to {n + before + after}" if before + after else "")
            + ": use a smaller kernel, more padding or \"same\" padding."
        )
    return span // stride + 1


@dataclass(frozen=True)
class OutputSizeExplanation:
    """The output-size formula for one axis, in symbols and with the numbers substituted."""

    size: int
    general: str  # The formula in symbols.
    substituted: str  # The same formula with this layer's numbers and the result.
    note: str  # What the padding setting means here (empty when there is nothing to add).


def _number(value: float) -> str:
    return f"{value:g}"


def explain_output_size(n: int, kernel: int, stride: int = 1, padding: Padding = "valid") -> OutputSizeExplanation:
    """`output_size` plus the formula written out, for display next to the output shape."""
    size = output_size(n, kernel, stride, padding)
    before, after = padding_amounts(n, kernel, stride, padding)
    general = "(W − F + 2P) / S + 1"
    if before == after:
        padding_term = f"2×{before}"
    else:
        padding_term = f"{before}+{after}"
    quotient = (n - kernel + before + after) / stride
    if quotient.is_integer():
        middle = f"{_number(quotient)} + 1"
    else:
        middle = f"⌊{_number(round(quotient, 3))}⌋ + 1 = {math.floor(quotient)} + 1"
    substituted = f"({n} − {kernel} + {padding_term}) / {stride} + 1 = {middle} = {size}"
    if padding == "same":
        note = (f'"same" padding adds {before + after} zero(s) here ({before} before, {after} after) '
                f"so that the output is ⌈{n} / {stride}⌉ = {size} long.")
    elif padding == "valid":
        note = '"valid" means no padding: the kernel only visits places where it fits entirely.'
    else:
        note = f"{before} zero(s) are added on every side."
    if not quotient.is_integer():
        note += " The stride does not divide evenly, so the last positions that would not fit are dropped."
    return OutputSizeExplanation(size=size, general=general, substituted=substituted, note=note)


# ----------------------------------------------------------------------------------------------
# The convolution itself
# ----------------------------------------------------------------------------------------------

def pad_image(image, kernel_shape: tuple[int, int], stride: int = 1, padding: Padding = "valid",
              *, fill: float = 0.0) -> tuple[np.ndarray, tuple[int, int]]:
    """The (H, W, C) image with Keras-style padding, and the (top, left) padding added."""
    array = _as_image(image)
    kh, kw = kernel_shape
    top, bottom = padding_amounts(array.shape[0], kh, stride, padding)
    left, right = padding_amounts(array.shape[1], kw, stride, padding)
    if top or bottom or left or right:
        array = np.pad(array, ((top, bottom), (left, right), (0, 0)), constant_values=fill)
    return array, (top, left)


def apply_kernel(image, kernel, *, stride: int = 1, padding: Padding = "valid", flip: bool = False) -> np.ndarray:
    """Slide `kernel` over `image` and return the feature map(s).

    - `image` (H, W) with a (kh, kw) kernel gives an (H', W') map.
    - `image` (H, W, C) with a (kh, kw) kernel applies it to each channel: (H', W', C).
    - `image` (H, W, C) with a (kh, kw, C) kernel sums the C channel results into one (H', W')
      map, which is what one Conv2D filter does.

    With `flip=False` this is cross-correlation (Keras' Conv2D, `scipy.signal.correlate2d`);
    with `flip=True` the kernel is turned by 180 degrees first (`scipy.signal.convolve2d`).
    H' and W' follow `output_size`.
    """
    stride = _check_positive_int(stride, "The stride")
    padding = _check_padding(padding)
    kernel = validate_kernel(kernel)
    source = np.asarray(image)
    array = _as_image(source)
    if flip:
        kernel = kernel[::-1, ::-1]
    kh, kw = kernel.shape[:2]
    if kernel.ndim == 3 and kernel.shape[2] != array.shape[2]:
        raise ValueError(f"A {kh}x{kw}x{kernel.shape[2]} kernel needs an image with {kernel.shape[2]} "
                         f"channels; this one has {array.shape[2]}.")
    out_h = output_size(array.shape[0], kh, stride, padding)
    out_w = output_size(array.shape[1], kw, stride, padding)
    padded, _ = pad_image(array, (kh, kw), stride, padding)

    # One shifted, strided view of the padded image per kernel entry: adding kh*kw of them
    # (each the size of the output) is fast and needs no (H', W', kh, kw) window copy.
    last_row = (out_h - 1) * stride + 1
    last_col = (out_w - 1) * stride + 1
    if kernel.ndim == 3:
        result = np.zeros((out_h, out_w), dtype=float)  # (H', W'): channels are summed.
        for i in range(kh):
            for j in range(kw):
                window = padded[i:i + last_row:stride, j:j + last_col:stride, :]  # (H', W', C)
                result += window @ kernel[i, j]
        return result
    result = np.zeros((out_h, out_w, array.shape[2]), dtype=float)  # (H', W', C).
    for i in range(kh):
        for j in range(kw):
            weight = kernel[i, j]
            if weight != 0.0:
                result += weight * padded[i:i + last_row:stride, j:j + last_col:stride, :]
    return result[:, :, 0] if source.ndim == 2 else result


def relu(x) -> np.ndarray:
    """max(x, 0), elementwise."""
    return np.maximum(np.asarray(x, dtype=float), 0.0)


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------

def pool(x, size=2, *, stride=None, kind: str = "max", padding: str = "valid") -> np.ndarray:
    """Max or average pooling, matching Keras' `MaxPooling2D` / `AveragePooling2D`.

    `x` is (H, W) or (H, W, C); each channel is pooled on its own. `stride` defaults to the pool
    size, as in Keras. With "same" padding the padded cells never win a max and are not counted
    in an average (TensorFlow's rule).
    """
    if kind not in ("max", "avg"):
        raise ValueError(f'kind must be "max" or "avg", not {kind!r}.')
    if padding not in ("valid", "same"):
        raise ValueError(f'Pooling padding must be "valid" or "same", not {padding!r}.')
    ph, pw = _pair(size, "The pool size")
    sh, sw = _pair(stride if stride is not None else (ph, pw), "The pool stride")
    source = np.asarray(x)
    array = _as_image(source)
    height, width = array.shape[:2]
    out_h = output_size(height, ph, sh, padding)
    out_w = output_size(width, pw, sw, padding)
    top, bottom = padding_amounts(height, ph, sh, padding)
    left, right = padding_amounts(width, pw, sw, padding)
    fill = -np.inf if kind == "max" else 0.0
    padded = np.pad(array, ((top, bottom), (left, right), (0, 0)), constant_values=fill)
    valid = np.pad(np.ones((height, width)), ((top, bottom), (left, right)))

    last_row = (out_h - 1) * sh + 1
    last_col = (out_w - 1) * sw + 1
    if kind == "max":
        result = np.full((out_h, out_w, array.shape[2]), -np.inf)
    else:
        result = np.zeros((out_h, out_w, array.shape[2]))
        counts = np.zeros((out_h, out_w, 1))
    for i in range(ph):
        for j in range(pw):
            window = padded[i:i + last_row:sh, j:j + last_col:sw, :]  # (H', W', C)
            if kind == "max":
                np.maximum(result, window, out=result)
            else:
                result += window
                counts[:, :, 0] += valid[i:i + last_row:sh, j:j + last_col:sw]
    if kind == "avg":
        result = result / counts
    return result[:, :, 0] if source.ndim == 2 else result


# ----------------------------------------------------------------------------------------------
# One output position, written out
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WindowDetail:
    """Everything needed to write out one output value as a sum of products."""

    row: int  # Output position.
    col: int
    top: int  # Top-left input coordinate of the window (negative when it starts in the padding).
    left: int
    window: np.ndarray  # (kh, kw) or (kh, kw, C) input values under the kernel (zeros in the padding).
    kernel: np.ndarray  # The kernel as applied (already turned by 180 degrees when flip=True).
    products: np.ndarray  # window * kernel, elementwise.
    total: float  # Sum of the products: the output value at (row, col).

    @property
    def bottom(self) -> int:
        return self.top + self.window.shape[0] - 1

    @property
    def right(self) -> int:
        return self.left + self.window.shape[1] - 1

    def equation(self, *, max_terms: int = 49, digits: int = 3) -> str:
        """"a×b + c×d + … = total", with negative numbers in brackets.

        At most `max_terms` products are written; the rest are summarised as "+ … (n more)".
        """
        windows = self.window.reshape(-1)
        weights = self.kernel.reshape(-1)
        terms = [f"{_term(value, digits)}×{_term(weight, digits)}" for value, weight in zip(windows, weights)]
        hidden = len(terms) - max_terms
        if hidden > 0:
            terms = terms[:max_terms] + [f"… ({hidden} more)"]
        return " + ".join(terms) + f" = {_format(self.total, digits)}"


def _format(value: float, digits: int) -> str:
    value = float(value)
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.{digits}g}"


def _term(value: float, digits: int) -> str:
    text = _format(value, digits)
    return f"({text})" if text.startswith("-") else text


def window_detail(image, kernel, row: int, col: int, *, stride: int = 1, padding: Padding = "valid",
                  flip: bool = False) -> WindowDetail:
    """The input window, elementwise products and their sum behind output value (row, col).

    The arguments mean what they mean in `apply_kernel`; `total` equals
    `apply_kernel(...)[row, col]` (summed over channels for a (kh, kw, C) kernel, otherwise
    per channel, in which case `total` is only defined for a 2-D image and a 2-D kernel).
    """
    stride = _check_positive_int(stride, "The stride")
    kernel = validate_kernel(kernel)
    array = _as_image(image)
    if flip:
        kernel = kernel[::-1, ::-1]
    kh, kw = kernel.shape[:2]
    out_h = output_size(array.shape[0], kh, stride, padding)
    out_w = output_size(array.shape[1], kw, stride, padding)
    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ValueError(f"Output position ({row}, {col}) is outside the {out_h}x{out_w} output.")
    padded, (pad_top, pad_left) = pad_image(array, (kh, kw), stride, padding)
    r0, c0 = row * stride, col * stride
    window = padded[r0:r0 + kh, c0:c0 + kw, :]  # (kh, kw, C)
    if kernel.ndim == 2:
        if array.shape[2] != 1:
            raise ValueError("For a colour image with a 2-D kernel, pick one channel first.")
        window = window[:, :, 0]
    elif kernel.shape[2] != array.shape[2]:
        raise ValueError(f"The kernel has {kernel.shape[2]} channels but the image has {array.shape[2]}.")
    products = window * kernel
    return WindowDetail(row=row, col=col, top=r0 - pad_top, left=c0 - pad_left, window=window.copy(),
                        kernel=kernel.copy(), products=products, total=float(products.sum()))


def next_position(row: int, col: int, out_h: int, out_w: int, step: int = 1) -> tuple[int, int] | None:
    """The next output position of a raster sweep that visits every `step`-th row and column.

    Returns None after the last position, so a play loop knows when to stop.
    """
    step = _check_positive_int(step, "The step")
    col += step
    if col < out_w:
        return row, col
    row += step
    if row < out_h:
        return row, 0
    return None


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelPreset:
    """A named kernel and one sentence on what it does."""

    name: str
    kernel: np.ndarray  # (3, 3)
    description: str


def _preset(name: str, rows, description: str) -> KernelPreset:
    kernel = np.array(rows, dtype=float)
    kernel.setflags(write=False)
    return KernelPreset(name, kernel, description)


def glorot_limit(size: int, channels: int = 1, filters: int = 1) -> float:
    """The Glorot-uniform limit of a Conv2D layer of `filters` `size` x `size` filters on `channels` channels.

    Keras' default kernel initialiser draws from U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)),
    fan_in = size*size*channels (the inputs one output sees) and fan_out = size*size*filters.
    """
    size = _check_positive_int(size, "The kernel size")
    channels = _check_positive_int(channels, "The number of channels")
    filters = _check_positive_int(filters, "The number of filters")
    return math.sqrt(6.0 / (size * size * channels + size * size * filters))


def random_kernel(size: int = 3, *, seed: int = 0, channels: int | None = None, filters: int = 1) -> np.ndarray:
    """One random filter drawn like Keras' default Glorot-uniform initialiser in a Conv2D layer.

    The layer has `filters` filters (the scale depends on it, see `glorot_limit`) on `channels`
    channels (None: a 2-D kernel for a gray image), so the values are small and centred on zero,
    as in an untrained Conv2D layer of that size.
    """
    size = _check_positive_int(size, "The kernel size")
    depth = 1 if channels is None else _check_positive_int(channels, "The number of channels")
    limit = glorot_limit(size, depth, filters)
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels is None else (size, size, channels)
    return np.round(rng.uniform(-limit, limit, size=shape), 3)


def gaussian_kernel(size: int = 3, sigma: float | None = None) -> np.ndarray:
    """A normalised Gaussian blur kernel (sums to 1)."""
    size = _check_positive_int(size, "The kernel size")
    sigma = sigma if sigma is not None else max(size / 4.0, 0.5)
    axis = np.arange(size) - (size - 1) / 2
    bell = np.exp(-(axis ** 2) / (2 * sigma ** 2))
    kernel = np.outer(bell, bell)
    return kernel / kernel.sum()


KERNEL_PRESETS: dict[str, KernelPreset] = {
    preset.name: preset
    for preset in (
        _preset("identity", [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                "Copies the image: only the centre weight is 1."),
        _preset("box blur", np.full((3, 3), 1 / 9),
                "Replaces each pixel by the average of its 3x3 neighbourhood."),
        _preset("Gaussian blur", [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
                "A softer blur: near neighbours count more than far ones."),
        _preset("sharpen", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
                "Boosts a pixel against its neighbours, so edges look crisper."),
        _preset("Laplacian edge", [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
                "Zero on flat areas, large where a pixel differs from its surroundings: edges."),
        _preset("Sobel x", [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                "Responds to left-to-right brightness changes (vertical edges)."),
        _preset("Sobel y", [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
                "Responds to top-to-bottom brightness changes (horizontal edges)."),
        _preset("Prewitt x", [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
                "Like Sobel x with equal weights on the three rows."),
        _preset("emboss", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
                "Lights one side of every edge and shades the other, like a relief."),
        _preset("outline", [[-1, -1, -1], [-1, 9, -1], [-1, -1, -1]],
                "The edge kernel plus the image itself: outlines on top of the picture."),
        _preset("random (seeded)", random_kernel(3, seed=0),
                "Small random weights, like an untrained Conv2D filter."),
    )
}
DEFAULT_PRESET = "Laplacian edge"


def make_kernel(preset: str, size: int = 3, *, seed: int = 0) -> np.ndarray:
    """A preset at `size` x `size` (odd, 3 to 7).

    Blurs and the random kernel are rebuilt at that size; the other 3x3 presets are placed in
    the centre of a zero kernel, which computes the same thing on a wider window.
    """
    if preset not in KERNEL_PRESETS:
        raise ValueError(f"Unknown kernel preset {preset!r}; choose one of {', '.join(KERNEL_PRESETS)}.")
    size = _check_positive_int(size, "The kernel size")
    if size < 3 or size % 2 == 0:
        raise ValueError(f"Preset kernels come in odd sizes of 3 or more, not {size}.")
    if preset == "box blur":
        return np.full((size, size), 1.0 / (size * size))
    if preset == "Gaussian blur":
        return np.round(gaussian_kernel(size), 4) if size > 3 else KERNEL_PRESETS[preset].kernel.copy()
    if preset == "random (seeded)":
        return random_kernel(size, seed=seed)
    kernel = np.zeros((size, size))
    offset = (size - 3) // 2
    kernel[offset:offset + 3, offset:offset + 3] = KERNEL_PRESETS[preset].kernel
    return kernel


def normalise_kernel(kernel) -> np.ndarray:
    """Scale a kernel so that it keeps the image's brightness.

    Divides by the sum of the weights (blurs then average); a kernel whose weights sum to zero
    (edge detectors) is divided by the sum of absolute values instead, so its output stays in
    the input's range. An all-zero kernel is returned unchanged.
    """
    kernel = validate_kernel(kernel)
    total = kernel.sum()
    scale = abs(total) if abs(total) > 1e-12 else np.abs(kernel).sum()
    if scale <= 1e-12:
        return kernel.copy()
    return kernel / scale


_SEPARATORS = re.compile(r"[,\s]+")


def parse_kernel_text(text: str) -> np.ndarray:
    """A kernel typed as rows of numbers (rows on new lines or separated by ';').

    Raises `KernelError` for anything that is not a rectangular grid of finite numbers.
    """
    if len(text or "") > MAX_KERNEL_TEXT:
        raise KernelError(f"That is {len(text):,} characters; a kernel of at most {MAX_KERNEL_SIDE}×{MAX_KERNEL_SIDE} "
                          f"numbers needs far fewer (at most {MAX_KERNEL_TEXT:,}).")
    rows = [line.strip() for line in re.split(r"[;\n]", text or "") if line.strip()]
    if not rows:
        raise KernelError("Type at least one row of numbers, e.g. `-1 0 1`.")
    grid = []
    for number, line in enumerate(rows, start=1):
        cells = [cell for cell in _SEPARATORS.split(line.strip("[] ")) if cell]
        values = []
        for cell in cells:
            cell = cell.strip("[]")
            if cell.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                values.append(float(cell))  # validate_kernel names where the non-finite entry is.
                continue
            if not re.fullmatch(r"[-+0-9.eE]+", cell):
                raise KernelError(f"Row {number}: {cell[:MAX_NUMBER_CHARACTERS]!r} is not a number.")
            # The one bounded parser: no 400-digit number or 1e400 reaches float().
            values.append(parse_float(cell, what=f"Row {number}: the entry {cell[:MAX_NUMBER_CHARACTERS]!r}",
                                      minimum=-MAX_KERNEL_WEIGHT, maximum=MAX_KERNEL_WEIGHT, error=KernelError))
        grid.append(values)
    widths = {len(row) for row in grid}
    if len(widths) != 1:
        raise KernelError(f"Every row needs the same number of entries; got row lengths {[len(r) for r in grid]}.")
    return validate_kernel(np.array(grid))
