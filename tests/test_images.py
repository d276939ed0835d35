"""cnnviz.images: every kind of bad or unusual upload, the synthetic images and channel helpers."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnviz import images
from cnnviz.lessons import train as train_lesson


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width x height (a decompression-bomb shape)."""
    data = bytearray(encode(Image.new("L", (8, 8), 128), "PNG"))
    ihdr_start = 8  # After the PNG signature: length (4), b"IHDR" (4), then the 13 header bytes.
    body = bytes(data[ihdr_start + 4: ihdr_start + 8 + 13])
    body = body[:4] + struct.pack(">II", width, height) + body[12:]
    data[ihdr_start + 4: ihdr_start + 8 + 13] = body
    data[ihdr_start + 8 + 13: ihdr_start + 8 + 13 + 4] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(data)


# ---- Ordinary images ---------------------------------------------------------------------------

def test_rgb_png_roundtrips_exactly():
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    decoded = images.decode_image(encode(Image.fromarray(pixels), "PNG"))
    np.testing.assert_array_equal(decoded.pixels, pixels)
    assert decoded.is_color and not decoded.was_resized and decoded.notes == ()
    assert decoded.format == "PNG" and decoded.original_size == (30, 20)


def test_grayscale_stays_2d():
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    decoded = images.decode_image(encode(Image.fromarray(pixels), "PNG"))
    assert decoded.pixels.shape == (8, 8) and not decoded.is_color
    np.testing.assert_array_equal(decoded.pixels, pixels)


def test_large_image_is_downscaled_to_256_and_says_so():
    image = Image.new("RGB", (1000, 500), (10, 200, 30))
    decoded = images.decode_image(encode(image, "JPEG", quality=90))
    assert decoded.pixels.shape == (128, 256, 3)
    assert decoded.was_resized and decoded.original_size == (1000, 500)
    assert "Downscaled from 1000 × 500 to 256 × 128" in decoded.notes[0]
    assert abs(int(decoded.pixels[64, 128, 1]) - 200) < 8


def test_max_side_is_respected_for_tall_images():
    decoded = images.decode_image(encode(Image.new("L", (40, 900), 0), "PNG"), max_side=100)
    assert decoded.pixels.shape == (100, 4)


# ---- Bad uploads -------------------------------------------------------------------------------

def test_empty_upload():
    with pytest.raises(images.ImageDecodeError, match="empty"):
        images.decode_image(b"")


def test_not_an_image():
    with pytest.raises(images.ImageDecodeError, match="not an image"):
        images.decode_image(b"%PDF-1.4 this is a document, not a picture" * 10)
    with pytest.raises(images.ImageDecodeError, match="not an image"):
        images.decode_image(b"x,y\n1,2\n")


def test_corrupt_or_truncated_image():
    whole = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(images.ImageDecodeError, match="damaged or truncated"):
        images.decode_image(whole[: len(whole) // 2])
    jpeg = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    garbled = jpeg[:20] + bytes(200) + jpeg[220:]
    try:
        result = images.decode_image(garbled)
    except images.ImageDecodeError as error:
        assert "damaged" in str(error) or "not an image" in str(error)
    else:  # JPEG decoders may recover a garbled body; then the result must still be a valid image.
        assert result.pixels.dtype == np.uint8 and result.pixels.shape[:2] == (64, 64)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(images.ImageDecodeError, match="decompression bomb"):
        images.decode_image(png_with_declared_size(100_000, 100_000))


def test_giant_dimensions_below_pillows_own_limit_are_refused_too():
    with pytest.raises(images.ImageDecodeError, match="megapixels"):
        images.decode_image(png_with_declared_size(8_000, 6_000))


def test_too_many_bytes(monkeypatch):
    monkeypatch.setattr(images, "MAX_BYTES", 100)
    with pytest.raises(images.ImageDecodeError, match="MB"):
        images.decode_image(b"\x89PNG" + bytes(200))


def test_a_page_picks_only_its_working_size_up_to_max_side():
    with pytest.raises(ValueError, match="max_side"):
        images.decode_image(encode(Image.new("L", (8, 8)), "PNG"), max_side=images.MAX_SIDE + 1)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("L", (16, 16), value) for value in (30, 200, 90)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = images.decode_image(buffer.getvalue())
    assert any("first one" in note and "3 frames" in note for note in decoded.notes)
    assert decoded.pixels.shape[:2] == (16, 16)
    assert abs(int(np.asarray(decoded.pixels).mean()) - 30) <= 2


def test_16_bit_grayscale_is_scaled_to_8_bits():
    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)  # 0 .. 65535
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = images.decode_image(data)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == (16, 16)
    np.testing.assert_array_equal(decoded.pixels, np.arange(256).reshape(16, 16))
    assert any("16-bit" in note for note in decoded.notes)


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (24, 24), (0, 255, 255, 0))  # Pure red in CMYK.
    decoded = images.decode_image(encode(cmyk, "JPEG", quality=95))
    assert decoded.pixels.shape == (24, 24, 3)
    red, green, blue = decoded.pixels[12, 12].astype(int)
    assert red > 200 and green < 60 and blue < 60
    assert any("CMYK" in note for note in decoded.notes)


def test_palette_image_is_expanded():
    palette_image = Image.new("RGB", (10, 10), (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    decoded = images.decode_image(encode(palette_image, "PNG"))
    assert decoded.pixels.shape == (10, 10, 3)
    assert tuple(decoded.pixels[5, 5]) == (0, 0, 255)
    assert any("Palette" in note for note in decoded.notes)


def test_palette_gif_with_transparency_goes_on_white():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    image.putpixel((0, 0), 1)
    data = encode(image, "GIF", transparency=0)
    decoded = images.decode_image(data)
    assert tuple(decoded.pixels[4, 4]) == (255, 255, 255)  # Transparent black became white.
    assert tuple(decoded.pixels[0, 0]) == (255, 0, 0)


def test_rgba_alpha_is_composited_on_white():
    rgba = np.zeros((6, 6, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # Red ...
    rgba[:3, :, 3] = 255  # ... opaque in the top half, transparent below.
    decoded = images.decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(decoded.pixels[0, 0]) == (255, 0, 0)
    assert tuple(decoded.pixels[5, 5]) == (255, 255, 255)
    assert any("Transparent" in note for note in decoded.notes)


def test_grayscale_with_alpha_stays_grayscale():
    la = Image.new("LA", (4, 4), (0, 0))
    decoded = images.decode_image(encode(la, "PNG"))
    assert decoded.pixels.shape == (4, 4)
    assert decoded.pixels.max() == 255  # Fully transparent black is white on white.


def test_one_bit_and_bmp_and_webp_decode():
    bits = Image.new("1", (9, 9), 1)
    assert images.decode_image(encode(bits, "PNG")).pixels.max() == 255
    assert images.decode_image(encode(Image.new("RGB", (5, 5), (9, 9, 9)), "BMP")).pixels.shape == (5, 5, 3)
    assert images.decode_image(encode(Image.new("RGB", (5, 5), (9, 9, 9)), "WEBP", lossless=True)).is_color


# ---- Channels ----------------------------------------------------------------------------------

def test_to_grayscale_matches_pillow_luma():
    pixels = np.random.default_rng(2).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).convert("L"), dtype=int)
    assert np.abs(images.to_grayscale(pixels).astype(int) - expected).max() <= 1
    floats = images.to_grayscale(pixels / 255.0)
    assert floats.dtype == np.float64 and floats.max() <= 1.0


def test_channel_helpers():
    rgb = images.color_shapes(48)
    names = [name for name, _ in images.split_channels(rgb)]
    assert names == ["red", "green", "blue"]
    assert not images.is_effectively_gray(rgb)
    gray = images.to_grayscale(rgb)
    assert images.is_effectively_gray(images.to_rgb(gray))
    assert images.to_rgb(gray).shape == (48, 48, 3)
    assert images.split_channels(gray)[0][0] == "gray"
    np.testing.assert_allclose(images.to_unit_float(np.array([0, 255], dtype=np.uint8)), [0.0, 1.0])


# ---- Synthetic images --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(images.SYNTHETIC_IMAGES))
@pytest.mark.parametrize("size", [16, 64])
def test_synthetic_images_have_the_size_and_contrast(name, size):
    pixels = images.synthetic(name, size)
    assert pixels.dtype == np.uint8 and pixels.shape[:2] == (size, size)
    assert pixels.min() < 60 and pixels.max() > 200


def test_checkerboard_alternates():
    board = images.checkerboard(8, squares=4)
    np.testing.assert_array_equal(board[0, :4], [0, 0, 255, 255])
    assert board[0, 0] != board[2, 0]


def test_circle_is_symmetric_and_stripes_have_the_period():
    disc = images.circle(33)
    np.testing.assert_array_equal(disc, disc[::-1, :])
    np.testing.assert_array_equal(disc, disc.T)
    bars = images.stripes(16, period=4)
    np.testing.assert_array_equal(bars[0], [0, 0, 255, 255] * 4)
    assert (images.stripes(16, period=4, direction="horizontal") == bars.T).all()


def test_letter_is_drawn_and_differs_between_characters():
    a = images.letter(32, "A")
    assert 0.05 < (a > 127).mean() < 0.6
    assert not np.array_equal(a, images.letter(32, "T"))


@pytest.mark.parametrize("call", [
    lambda: images.synthetic("mandelbrot"),
    lambda: images.checkerboard(2),
    lambda: images.stripes(16, direction="sideways"),
    lambda: images.letter(32, "AB"),
])
def test_synthetic_bad_arguments_raise_value_errors(call):
    with pytest.raises(ValueError):
        call()


# ---- Fuzz: whatever the bytes, the result is an image or an ImageDecodeError --------------------


_VALID = {
    "png": encode(Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 24, 3), dtype=np.uint8)), "PNG"),
    "jpeg": encode(Image.new("RGB", (24, 24), (10, 120, 200)), "JPEG"),
    "gif": encode(Image.new("P", (24, 24), 3), "GIF"),
    "bmp": encode(Image.new("L", (24, 24), 77), "BMP"),
}


def _decodes_or_explains(data: bytes) -> None:
    try:
        decoded = images.decode_image(data)
    except images.ImageDecodeError as error:
        assert str(error)
    else:
        assert decoded.pixels.dtype == np.uint8 and decoded.pixels.ndim in (2, 3)
        assert max(decoded.pixels.shape[:2]) <= images.MAX_SIDE


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise_anything_else(data):
    _decodes_or_explains(data)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(_VALID)), st.data())
def test_corrupted_images_never_raise_anything_else(kind, data):
    original = bytearray(_VALID[kind])
    cut = data.draw(st.integers(0, len(original)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), max_size=8))
    for position, value in flips:
        original[position] = value
    _decodes_or_explains(bytes(original[:cut]))


# ---- One decoder for every page ----------------------------------------------------------------
# The convolution lab decodes at MAX_SIDE, the augmentation page at its own working size (128 px)
# and the train page prepares the decoded picture for the network: the same file must give the same
# pixels, notes and messages on all three.

def _page_paths():
    return {
        "convolution": lambda data: images.decode_image(data),
        "augmentation": lambda data: images.decode_image(data, max_side=128),
        "train": lambda data: train_lesson.prepare_upload(data, "mnist", invert=False),
    }


def test_a_16_bit_png_is_scaled_the_same_way_on_every_page():
    ramp = np.arange(400, dtype=np.uint16).reshape(20, 20) * 150  # 0 .. 59,850 of 65,535
    png = encode(Image.fromarray(ramp), "PNG")
    results = {page: path(png) for page, path in _page_paths().items()}
    lab, augmentation, train = results["convolution"], results["augmentation"], results["train"]
    np.testing.assert_array_equal(lab.pixels, np.round(ramp / 65535 * 255).astype(np.uint8))
    np.testing.assert_array_equal(augmentation.pixels, lab.pixels)
    assert lab.notes == augmentation.notes == train.notes == ("16-bit grayscale was scaled to 8 bits.",)
    # The train page prepares exactly the lab's pixels (not a clipped, all-white 8-bit version).
    expected = train_lesson.preprocess_upload(lab.pixels, "mnist", invert=False)
    np.testing.assert_array_equal(train.image, expected.image)
    assert train.image.min() < 20 and 200 < train.image.max() < 255


def test_an_oversized_png_is_refused_with_the_same_message_on_every_page():
    png = png_with_declared_size(8_000, 6_000)
    messages = {}
    for page, path in _page_paths().items():
        with pytest.raises(images.ImageDecodeError, match="megapixels") as error:
            path(png)
        messages[page] = str(error.value)
    assert len(set(messages.values())) == 1, messages


def test_an_exif_rotated_photo_is_upright_on_every_page():
    picture = Image.new("L", (40, 20), 0)
    picture.paste(255, (0, 0, 10, 20))  # A white band on the left of a landscape picture.
    exif = Image.Exif()
    exif[0x0112] = 6  # "Rotate 90° clockwise to display."
    jpeg = encode(picture, "JPEG", exif=exif.tobytes(), quality=95)
    lab = images.decode_image(jpeg)
    assert lab.pixels.shape == (40, 20)  # Portrait, as a viewer shows it.
    assert lab.pixels[:10].mean() > 200  # The band is now at the top.
    train = train_lesson.prepare_upload(jpeg, "mnist", invert=False)
    np.testing.assert_array_equal(train.image, train_lesson.preprocess_upload(lab.pixels, "mnist",
                                                                              invert=False).image)
