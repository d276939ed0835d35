"""The ONE decoder of uploaded pictures (every page), plus the convolution lab's test images and channel helpers.

`decode_image` is the only place in cnnviz that opens an uploaded file, with one set of limits
for every page: `MAX_BYTES` read, `MAX_PIXELS` declared in the header, `MAX_WORKING_BYTES` of
memory the decode may take (the decoded buffer in its own pixel format, plus the one full-size
copy the shrinking needs: see `working_bytes`), and `MAX_SIDE` kept after decoding; a page only
picks its working size (`max_side`, at most `MAX_SIDE`). Both size checks read the header, so a
refused file costs nothing to decode.

Memory stays bounded: the full-size picture is only ever held by Pillow in its own format (uint8
for ordinary pictures, 16 bits for 16-bit grayscale), shrunk to the working size there, and only
the small working copy becomes a NumPy array (converted to uint8: alpha placed on white, 16-bit
scaled, palettes expanded). A decode is done once per upload: the results of the last
`CACHE_ENTRIES` decodes are kept by content hash (`hashlib.sha256`), so a page that reruns on
every slider move gets the same small image back without decoding again.

Every image it hands to the rest of cnnviz is a uint8 array, (H, W) for grayscale or (H, W, 3)
for RGB. Anything a student might upload (not an image, empty, truncated, a decompression bomb,
an animated GIF, 16-bit, CMYK, palette, alpha, an EXIF rotation, a 100000 × 1 strip) either
decodes into that form, with a note saying what was converted, or raises `ImageDecodeError`
with a message that says what went wrong.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from cnnviz.architecture.keras_model import PIXEL_MAX, scale_images
from cnnviz.errors import ImageDecodeError, SettingsError

MAX_SIDE = 256  # Longest side after downscaling, in pixels (the largest working size a page may ask for).
MAX_BYTES = 10 * 1024 * 1024  # The largest upload we read (matches server.maxUploadSize).
MAX_PIXELS = 40_000_000  # Refuse anything larger before decoding it (a 40-megapixel photo is fine).
# The most memory one decode may take (see `working_bytes`): 4000 × 3000 with transparency (96 MB)
# or a 40-megapixel grayscale scan fits; two students uploading at once stay far below 1 GB.
MAX_WORKING_BYTES = 192 * 1024 * 1024
CACHE_ENTRIES = 32  # Decoded uploads kept (each at most MAX_SIDE² × 3 bytes = 192 kB).

# ITU-R BT.601 luma weights, the ones Pillow's "L" conversion uses.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
CHANNEL_NAMES = ("red", "green", "blue")

# Bytes per pixel of Pillow's own buffer for a mode (it stores RGB, RGBA, LA, CMYK... as 32 bits).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Modes converted at full size before shrinking, and the bytes per pixel of that copy: Pillow
# shrinks transparent pictures premultiplied (RGBa, La), palettes and 1-bit pictures only with
# nearest-neighbour, so those become RGB(A) or L first; 16-bit may need 32-bit integers.
_FULL_SIZE_COPY = {"RGBA": 4, "LA": 4, "PA": 4, "P": 4, "1": 1, "I;16": 4, "I;16L": 4, "I;16B": 4, "I;16N": 4}
# EXIF orientation -> the transpose that shows the picture upright (as `ImageOps.exif_transpose`).
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


@dataclass(frozen=True)
class DecodedImage:
    """A decoded upload, ready for any page."""

    pixels: np.ndarray  # uint8, (H, W) grayscale or (H, W, 3) RGB.
    original_size: tuple[int, int]  # (width, height) as stored in the file.
    format: str  # Pillow's name for the file format, e.g. "PNG".
    notes: tuple[str, ...]  # What was converted on the way (resized, first frame, CMYK, ...).

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3

    @property
    def was_resized(self) -> bool:
        height, width = self.pixels.shape[:2]
        return (width, height) != tuple(self.original_size)


def working_bytes(mode: str, width: int, height: int) -> int:
    """The memory decoding a `width` × `height` picture of Pillow `mode` takes at its peak.

    Pillow's decoded buffer (1 byte per pixel for grayscale and palettes, 2 for 16-bit
    grayscale, 4 for everything else) plus the one full-size copy shrinking needs for
    transparent, palette, 1-bit and 16-bit pictures (see `_FULL_SIZE_COPY`).
    """
    return width * height * (_STORED_BYTES.get(mode, 4) + _FULL_SIZE_COPY.get(mode, 0))


_cache: OrderedDict[tuple[str, int], DecodedImage | str] = OrderedDict()
_cache_lock = threading.Lock()


def decode_image(data: bytes, *, max_side: int = MAX_SIDE) -> DecodedImage:
    """Decode uploaded bytes into a small uint8 image, or raise `ImageDecodeError`.

    The longest side is scaled down to the page's working size `max_side` (never up; at most
    `MAX_SIDE`). The image size and the memory its decode needs are checked from the header
    before any pixels are decoded, so a decompression bomb costs nothing. The same bytes at the
    same `max_side` are decoded once: later calls return a copy of the first result (or raise
    its error again).
    """
    if not 1 <= max_side <= MAX_SIDE:
        raise ValueError(f"max_side must be 1 to {MAX_SIDE} pixels, not {max_side}.")
    if data is None or len(data) == 0:
        raise ImageDecodeError("The uploaded file is empty (0 bytes). Pick an image file such as a PNG or JPEG.")
    if len(data) > MAX_BYTES:
        raise ImageDecodeError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB. "
                               "Save a smaller version of the image and upload that.")
    key = (hashlib.sha256(data).hexdigest(), max_side)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is None:
        try:
            cached = _decode(data, max_side)
        except ImageDecodeError as error:
            cached = str(error)
        with _cache_lock:
            _cache[key] = cached
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    if isinstance(cached, str):
        raise ImageDecodeError(cached)
    return replace(cached, pixels=cached.pixels.copy())


def clear_cache() -> None:
    """Forget every decoded upload (tests; a server never needs to: the cache is small)."""
    with _cache_lock:
        _cache.clear()


def _decode(data: bytes, max_side: int) -> DecodedImage:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Pillow warns (and above twice the limit raises) for huge images; we check ourselves below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageDecodeError("The image has no pixels (zero width or height).")
            if width * height > MAX_PIXELS:
                raise ImageDecodeError(
                    f"The image is {width:,} × {height:,} pixels ({width * height / 1e6:,.0f} megapixels); "
                    f"uploads over {MAX_PIXELS / 1e6:.0f} megapixels are refused, which protects the "
                    "server from 'decompression bombs'. Shrink the image first."
                )
            image_format = image.format or "unknown"
            if getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1:
                notes.append(f"The file has {getattr(image, 'n_frames', 'several')} frames "
                             "(an animation); only the first one is used.")
                image.seek(0)
            if image.format == "JPEG":
                # Let the JPEG decoder shrink by a power of two while decoding (fast, little memory).
                image.draft("RGB" if image.mode not in ("L", "CMYK") else image.mode, (max_side, max_side))
            _check_working_size(image)
            orientation = _orientation(image)
            image.load()
            image, conversion = _shrink(image, max_side)
            if orientation in _ORIENTATION:
                image = image.transpose(_ORIENTATION[orientation])
            pixels, small_conversion = _to_uint8(image)
            conversion = conversion or small_conversion
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError(
            "The image declares an enormous size (a possible 'decompression bomb'), so it was not decoded. "
            "Upload an ordinary photo or drawing."
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "This file is not an image cnnviz can read. Upload a PNG, JPEG, GIF, BMP, TIFF or WebP file."
        ) from None
    except MemoryError:
        raise ImageDecodeError("The server ran out of memory decoding this image. Shrink the image first.") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
        raise ImageDecodeError(
            f"The image file is damaged or truncated and could not be decoded ({error}). "
            "Try exporting it again."
        ) from None
    except Exception as error:  # noqa: BLE001 - untrusted bytes: any decoder failure is a bad file.
        raise ImageDecodeError(
            f"The image file is damaged and could not be decoded ({type(error).__name__}: {error}). "
            "Try exporting it again."
        ) from None
    if conversion:
        notes.append(conversion)
    original_size = (width, height)
    new_height, new_width = pixels.shape[:2]
    if (new_width, new_height) != original_size and sorted((new_width, new_height)) != sorted(original_size):
        shown_w, shown_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        notes.insert(0, f"Downscaled from {shown_w} × {shown_h} to {new_width} × {new_height} pixels "
                        f"(at most {max_side} px on the longest side) to keep the page fast.")
    pixels.setflags(write=False)
    return DecodedImage(pixels=pixels, original_size=original_size, format=image_format, notes=tuple(notes))


def _check_working_size(image: Image.Image) -> None:
    """Refuse, from the header alone, a picture whose decode would take over `MAX_WORKING_BYTES`."""
    width, height = image.size  # After a JPEG draft: the size the decoder will really produce.
    needed = working_bytes(image.mode, width, height)
    if needed > MAX_WORKING_BYTES:
        kind = "with transparency" if image.mode in ("RGBA", "LA", "PA") else f"in {image.mode} mode"
        per_pixel = needed // (width * height)
        raise ImageDecodeError(
            f"The image is {width:,} × {height:,} pixels {kind}: decoding it would take about "
            f"{needed / 2**20:,.0f} MB of server memory ({per_pixel} bytes per pixel), more than the "
            f"{MAX_WORKING_BYTES / 2**20:,.0f} MB one upload may use. Shrink the image (for example to "
            "2000 pixels on the longest side) and upload it again."
        )


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block only loses the rotation.
        return 1


def _shrink(image: Image.Image, max_side: int) -> tuple[Image.Image, str]:
    """The decoded picture shrunk (Lanczos, in Pillow) so that its longest side is at most `max_side`.

    Modes Pillow cannot shrink well are converted first (palettes to RGB/RGBA, 1-bit to L,
    palette transparency to RGBA); the note says so. A small picture is returned as it is.
    """
    note = ""
    width, height = image.size
    if max(width, height) <= max_side:
        return image, note
    mode = image.mode
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in image.info or (
            image.palette is not None and image.palette.mode == "RGBA")
        image = image.convert("RGBA" if has_alpha else "RGB")
        note = "Palette (indexed) colours were expanded to RGB." + (
            " Transparent areas were placed on white." if has_alpha else "")
    elif mode == "1":
        image = image.convert("L")
        note = "1-bit black and white was converted to grayscale."
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    try:
        small = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    except ValueError:  # A 16-bit variant Pillow cannot resample: as 32-bit integers.
        small = image.convert("I").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if mode.startswith("I;16"):
        small.info["cnnviz_16_bit"] = True
    return small, note


def _to_uint8(image: Image.Image) -> tuple[np.ndarray, str]:
    """Pixels of any Pillow mode as uint8 (H, W) or (H, W, 3), and a note on the conversion.

    Called on the small working copy only, so the float arithmetic here stays cheap.
    """
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        values = np.asarray(image).astype(np.float64)
        return _scale_to_uint8(values, 65535.0), "16-bit grayscale was scaled to 8 bits."
    if mode == "I":
        values = np.asarray(image, dtype=np.float64)
        sixteen = image.info.get("cnnviz_16_bit") or values.max(initial=0) > 255
        top = 65535.0 if sixteen else 255.0
        note = "16-bit grayscale was scaled to 8 bits." if sixteen else ""
        return _scale_to_uint8(values, top), note
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return np.round(scaled * 255).astype(np.uint8), "Floating-point pixels were rescaled to 0-255."
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.uint8), ("1-bit black and white was converted to grayscale."
                                                                   if mode == "1" else "")
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette is not None and image.palette.mode == "RGBA"
        converted = image.convert("RGBA" if has_alpha else "RGB")
        note = "Palette (indexed) colours were expanded to RGB."
        if has_alpha:
            return _flatten_alpha(converted), note + " Transparent areas were placed on white."
        return np.asarray(converted, dtype=np.uint8), note
    if mode in ("LA", "La", "PA"):
        flattened = _flatten_alpha(image.convert("RGBA"))
        return np.round(flattened @ LUMA_WEIGHTS).astype(np.uint8), "Transparent areas were placed on white."
    if mode in ("RGBA", "RGBa"):
        return _flatten_alpha(image.convert("RGBA")), "Transparent areas were placed on white."
    if mode == "CMYK":
        return np.asarray(image.convert("RGB"), dtype=np.uint8), "CMYK colours were converted to RGB."
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8), ""
    return np.asarray(image.convert("RGB"), dtype=np.uint8), f"The {mode} colour mode was converted to RGB."


def _scale_to_uint8(values: np.ndarray, top: float) -> np.ndarray:
    return np.round(np.clip(values, 0, top) / top * 255).astype(np.uint8)


def _flatten_alpha(rgba: Image.Image) -> np.ndarray:
    """RGBA composited over a white background, as uint8 (H, W, 3) (the small working copy only)."""
    values = np.asarray(rgba, dtype=np.float64)
    alpha = values[:, :, 3:4] / 255.0
    return np.round(values[:, :, :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)


def resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) pixels resampled to `width` x `height` (Lanczos), same dtype and channels."""
    resized = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


# ----------------------------------------------------------------------------------------------
# Channels
# ----------------------------------------------------------------------------------------------

def to_unit_float(pixels) -> np.ndarray:
    """uint8 pixels as float64 in [0, 1]: the network's input-scaling rule (`architecture.scale_images`)."""
    values = np.asarray(pixels)
    if values.dtype != np.uint8:  # Whole numbers 0..255 held in another dtype: the same rule.
        values = values.astype(np.float64) / PIXEL_MAX
    return scale_images(values, np.float64)


def to_grayscale(pixels) -> np.ndarray:
    """(H, W, 3) RGB to (H, W) luma with the BT.601 weights; (H, W) is returned as is.

    The dtype is kept: uint8 in, uint8 out (rounded); floats in, floats out.
    """
    array = np.asarray(pixels)
    if array.ndim == 2:
        return array
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"Expected an (H, W) or (H, W, 3) image, not shape {array.shape}.")
    if array.shape[2] == 1:
        return array[:, :, 0]
    gray = array.astype(np.float64) @ LUMA_WEIGHTS
    return np.round(gray).astype(np.uint8) if array.dtype == np.uint8 else gray


def to_rgb(pixels) -> np.ndarray:
    """(H, W) or (H, W, 1) grayscale repeated into three equal channels; RGB returned as is."""
    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise ValueError(f"Expected an (H, W) or (H, W, 3) image, not shape {array.shape}.")
    return np.repeat(array[:, :, None], 3, axis=2)


def split_channels(pixels) -> list[tuple[str, np.ndarray]]:
    """[(name, (H, W) plane)] for each channel: red, green, blue (or one "gray" plane)."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        return [("gray", array)]
    if array.ndim == 3 and array.shape[2] == 1:
        return [("gray", array[:, :, 0])]
    if array.ndim == 3 and array.shape[2] == 3:
        return [(name, array[:, :, index]) for index, name in enumerate(CHANNEL_NAMES)]
    raise ValueError(f"Expected an (H, W) or (H, W, 3) image, not shape {array.shape}.")


def is_effectively_gray(pixels) -> bool:
    """True for a 2-D image or an RGB image whose three channels are equal."""
    array = np.asarray(pixels)
    if array.ndim == 2 or array.shape[2] == 1:
        return True
    return bool(np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(array[:, :, 1], array[:, :, 2]))


# ----------------------------------------------------------------------------------------------
# Synthetic test images (uint8)
# ----------------------------------------------------------------------------------------------

def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 4 <= size <= MAX_SIDE:
        raise ValueError(f"A synthetic image is 4 to {MAX_SIDE} pixels wide, not {size!r}.")
    return int(size)


def checkerboard(size: int = 32, squares: int = 4) -> np.ndarray:
    """Black and white squares, `squares` per side: sharp horizontal and vertical edges."""
    size = _check_size(size)
    if squares < 1:
        raise ValueError("A checkerboard needs at least one square per side.")
    index = np.arange(size) * squares // size
    return (((index[:, None] + index[None, :]) % 2) * 255).astype(np.uint8)


def circle(size: int = 32, radius: float | None = None) -> np.ndarray:
    """A white disc on black: edges in every direction."""
    size = _check_size(size)
    radius = radius if radius is not None else size * 0.32
    centre = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size]
    return (((yy - centre) ** 2 + (xx - centre) ** 2 <= radius ** 2) * 255).astype(np.uint8)


def stripes(size: int = 32, period: int = 8, direction: str = "vertical") -> np.ndarray:
    """Bars of width period/2: "vertical", "horizontal" or "diagonal"."""
    size = _check_size(size)
    if period < 2:
        raise ValueError("Stripes need a period of at least 2 pixels.")
    yy, xx = np.mgrid[0:size, 0:size]
    position = {"vertical": xx, "horizontal": yy, "diagonal": xx + yy}.get(direction)
    if position is None:
        raise ValueError(f'direction must be "vertical", "horizontal" or "diagonal", not {direction!r}.')
    return (((position // (period // 2)) % 2) * 255).astype(np.uint8)


# A hand-made 5x7 bitmap of the letter "A": used when Pillow's default font cannot be scaled.
_LETTER_A = np.array([
    [0, 1, 1, 1, 0],
    [1, 0, 0, 0, 1],
    [1, 0, 0, 0, 1],
    [1, 1, 1, 1, 1],
    [1, 0, 0, 0, 1],
    [1, 0, 0, 0, 1],
    [1, 0, 0, 0, 1],
], dtype=np.uint8)


def letter(size: int = 32, char: str = "A") -> np.ndarray:
    """A white letter on black, drawn with Pillow's default font (a 5x7 bitmap "A" as fallback)."""
    size = _check_size(size)
    if not isinstance(char, str) or len(char) != 1 or not char.isprintable() or char.isspace():
        raise SettingsError("Choose exactly one visible character.")
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=int(size * 0.8))
        left, top, right, bottom = draw.textbbox((0, 0), char, font=font)
        draw.text(((size - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top), char, fill=255, font=font)
    except (OSError, TypeError, AttributeError):
        # Without FreeType the default font is a tiny fixed bitmap: scale our own "A" instead.
        scale = max(1, size // 9)
        bitmap = np.kron(_LETTER_A, np.ones((scale, scale), dtype=np.uint8)) * 255
        top = (size - bitmap.shape[0]) // 2
        left = (size - bitmap.shape[1]) // 2
        pixels = np.zeros((size, size), dtype=np.uint8)
        pixels[top:top + bitmap.shape[0], left:left + bitmap.shape[1]] = bitmap
        return pixels
    return np.asarray(canvas, dtype=np.uint8)


def color_shapes(size: int = 48) -> np.ndarray:
    """An RGB test card: a red disc, a green square and blue stripes on a dark background.

    Each shape lives mostly in one channel, so per-channel results differ visibly.
    """
    size = _check_size(size)
    pixels = np.full((size, size, 3), 20, dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    half = size // 2
    disc = (yy - size * 0.3) ** 2 + (xx - size * 0.3) ** 2 <= (size * 0.2) ** 2
    pixels[disc] = (230, 40, 40)
    square = (yy >= half + 2) & (yy < size - 4) & (xx >= 4) & (xx < half - 2)
    pixels[square] = (40, 200, 60)
    bars = (xx >= half + 2) & (((yy // max(2, size // 12)) % 2) == 0)
    pixels[bars] = (40, 70, 230)
    return pixels


SYNTHETIC_IMAGES: dict[str, Callable[[int], np.ndarray]] = {
    "checkerboard": checkerboard,
    "circle": circle,
    "stripes": stripes,
    "letter": letter,
    "colour shapes": color_shapes,
}


def synthetic(name: str, size: int = 32) -> np.ndarray:
    """One of `SYNTHETIC_IMAGES` at `size` x `size`."""
    if name not in SYNTHETIC_IMAGES:
        raise ValueError(f"Unknown synthetic image {name!r}; choose one of {', '.join(SYNTHETIC_IMAGES)}.")
    return SYNTHETIC_IMAGES[name](size)


MAX_ASPECT_RATIO = 20  # Longer side over shorter side of a picture a page shows and feeds to a model.


def check_proportions(decoded: DecodedImage) -> DecodedImage:
    """`decoded` when its sides are within `MAX_ASPECT_RATIO` of each other, else `ImageDecodeError`.

    A 100000 × 1 picture decodes, but shrunk to a thumbnail or a 28 × 28 model input it is a
    line of one pixel (or none): the pages that show and classify a picture (Train, augmentation
    lab) refuse it with this message instead.
    """
    width, height = decoded.original_size
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageDecodeError(
            f"The picture is {width:,} × {height:,} pixels: far too thin to show or to use here (its longer "
            f"side may be at most {MAX_ASPECT_RATIO} times its shorter side). Crop it to a squarer shape first.")
    return decoded
