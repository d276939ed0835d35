"""The drawing pad's core: a canvas picture turned into a dataset image the MNIST way, checked
against independent oracles (scipy.ndimage's centre of mass and hand-made canvases whose
bounding box and proportions are known)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cnnviz.errors import CnnvizError, DrawingError
from cnnviz.lessons import train as train_lesson

SIDE = 280  # The pad's size in pixels.


def _canvas(*boxes, side: int = SIDE, ink: int = 255, background: int = 0, alpha: bool = True) -> np.ndarray:
    """A pad picture: filled rectangles (top, bottom, left, right) of `ink` on `background`, RGBA or RGB."""
    grey = np.full((side, side), background, dtype=np.uint8)
    for top, bottom, left, right in boxes:
        grey[top:bottom, left:right] = ink
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if not alpha:
        return rgb
    return np.concatenate([rgb, np.full((side, side, 1), 255, dtype=np.uint8)], axis=2)


def _extent(image: np.ndarray, level: int = 128) -> tuple[int, int]:
    """(height, width) of the bounding box of the pixels brighter than `level`."""
    mask = image[..., 0] > level
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(columns[-1] - columns[0] + 1)


def _distance_from_centre(image: np.ndarray) -> float:
    """How far scipy's centre of mass lies from the image's centre, in pixels."""
    height, width = image.shape[:2]
    row, column = ndimage.center_of_mass(image[..., 0].astype(np.float64))
    return float(np.hypot(row - (height - 1) / 2, column - (width - 1) / 2))


def test_a_stroke_becomes_a_28_pixel_image_with_its_longer_side_20_and_its_mass_centred():
    # A vertical bar 160 x 40 pixels, far from the pad's centre.
    prepared = train_lesson.prepare_drawing(_canvas((10, 170, 200, 240)), "fashion_mnist")
    image = prepared.image
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8
    height, width = _extent(image)
    assert abs(height - 20) <= 1  # Its longer side scaled to 20 pixels...
    assert abs(width - 5) <= 1  # ...its proportions (4 : 1) kept.
    assert _distance_from_centre(image) <= 0.75
    assert not prepared.inverted
    assert prepared.original is not None and prepared.original.shape == (SIDE, SIDE)
    assert any("centre of mass" in step for step in prepared.steps)


def test_the_centre_of_mass_not_the_bounding_box_is_centred():
    # An L: a heavy foot under a thin upright, so its centre of mass is far below the box's centre.
    canvas = _canvas((20, 260, 40, 70), (200, 260, 40, 260))
    image = train_lesson.prepare_drawing(canvas, "mnist").image
    assert _distance_from_centre(image) <= 0.75
    mask = image[..., 0] > 128
    rows = np.flatnonzero(mask.any(axis=1))
    box_centre = (rows[0] + rows[-1]) / 2
    assert box_centre < 13.5 - 1.5  # The box sits higher than the centre, as MNIST's digits do.


def test_where_and_how_big_it_is_drawn_does_not_matter():
    small_top_left = train_lesson.prepare_drawing(_canvas((10, 50, 20, 40)), "fashion_mnist").image
    large_bottom_right = train_lesson.prepare_drawing(_canvas((80, 280, 180, 280)), "fashion_mnist").image
    np.testing.assert_array_equal(small_top_left, large_bottom_right)


def test_a_wide_drawing_keeps_its_proportions():
    image = train_lesson.prepare_drawing(_canvas((100, 140, 20, 260)), "mnist").image  # 240 wide, 40 high
    height, width = _extent(image)
    assert abs(width - 20) <= 1 and abs(height - round(20 * 40 / 240)) <= 1
    assert _distance_from_centre(image) <= 0.75


@pytest.mark.parametrize("form", ["black strokes on white", "transparent background", "RGB", "grey"])
def test_every_canvas_form_gives_the_same_bright_drawing_on_black(form):
    boxes = ((30, 150, 60, 110), (120, 150, 60, 200))
    reference = train_lesson.prepare_drawing(_canvas(*boxes), "fashion_mnist")
    if form == "black strokes on white":
        canvas = _canvas(*boxes, ink=0, background=255)
    elif form == "transparent background":
        canvas = _canvas(*boxes)
        canvas[..., 3] = np.where(canvas[..., 0] > 0, 255, 0)
        canvas[..., :3] = np.where(canvas[..., 3:] > 0, 255, 17)  # The hidden colour of a transparent pixel.
    elif form == "RGB":
        canvas = _canvas(*boxes, alpha=False)
    else:
        canvas = _canvas(*boxes, alpha=False)[..., 0]
    prepared = train_lesson.prepare_drawing(canvas, "fashion_mnist")
    np.testing.assert_array_equal(prepared.image, reference.image)
    assert prepared.inverted == (form == "black strokes on white")
    assert prepared.image[0].max() == 0 and prepared.image[..., 0].max() > 200  # Bright on black.


def test_colour_datasets_get_three_equal_channels_and_a_proportional_box():
    prepared = train_lesson.prepare_drawing(_canvas((40, 240, 100, 180)), "cifar10")
    image = prepared.image
    assert image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    height, _ = _extent(image)
    assert abs(height - round(32 * 20 / 28)) <= 1  # 23 of 32 pixels, as 20 of 28.
    assert _distance_from_centre(image) <= 0.75
    assert "converted to RGB colour" in prepared.steps


def test_a_lopsided_drawing_is_moved_only_as_far_as_keeps_it_whole():
    # A long thin line with a big blob at one end: centring the mass would push the line's far end out.
    canvas = _canvas((10, 270, 138, 142), (200, 270, 100, 180))
    image = train_lesson.prepare_drawing(canvas, "mnist").image
    height, _ = _extent(image, level=40)
    assert abs(height - 20) <= 1  # Nothing cut off.
    row, _ = ndimage.center_of_mass(image[..., 0].astype(np.float64))
    assert row > 13.5  # As close to the centre as the image allows, on the blob's side.


@pytest.mark.parametrize("canvas", [
    _canvas(),  # Nothing drawn on the black pad.
    _canvas(ink=255, background=255),  # All white.
    _canvas((100, 120, 100, 120), ink=20),  # Only a faint smudge, below the ink level.
    np.zeros((SIDE, SIDE, 4), dtype=np.uint8),  # A fully transparent canvas.
])
def test_an_empty_pad_says_so(canvas):
    with pytest.raises(DrawingError, match="Nothing is drawn yet") as caught:
        train_lesson.prepare_drawing(canvas, "fashion_mnist")
    assert isinstance(caught.value, CnnvizError)


def test_a_single_dot_still_gives_an_image():
    image = train_lesson.prepare_drawing(_canvas((140, 142, 140, 142)), "mnist").image
    assert image.max() > 0 and _distance_from_centre(image) <= 0.75


def test_a_wrong_shape_is_a_programming_error():
    with pytest.raises(ValueError, match="A drawing is"):
        train_lesson.prepare_drawing(np.zeros((10, 10, 2), dtype=np.uint8), "mnist")
