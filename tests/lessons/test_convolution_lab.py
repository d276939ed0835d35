"""The convolution lab lesson (cnnviz.lessons.convolution): what its page shows, from widget values."""


from __future__ import annotations

import numpy as np
import pytest

from cnnviz import convolution as conv
from cnnviz.errors import KernelError
from cnnviz.lessons import convolution as lab


def _checkerboard() -> np.ndarray:
    from cnnviz import images

    return images.synthetic("checkerboard", 16)


def test_lab_view_is_the_feature_map_and_its_formula():
    pixels = _checkerboard()
    view = lab.lab_view(pixels, conv.make_kernel("Sobel x"), per_channel=False, stride=2, padding=1, flip=False,
                         apply_relu=True, normalise=False)
    expected = conv.relu(conv.apply_kernel(pixels / 255.0, conv.make_kernel("Sobel x"), stride=2, padding=1))
    np.testing.assert_allclose(view.output, expected)
    assert view.output.shape == (view.height.size, view.width.size) == (8, 8)
    assert view.quiz_key == (16, 16, 3, 2, "1") and not view.is_color and view.channel_names == ("gray",)


def test_lab_view_normalises_and_keeps_a_gray_image_gray_even_per_channel():
    view = lab.lab_view(_checkerboard(), np.full((3, 3), 2.0), per_channel=True, stride=1, padding="valid",
                         flip=False, apply_relu=False, normalise=True)
    assert view.image.ndim == 2
    np.testing.assert_allclose(view.kernel, np.full((3, 3), 1 / 9))


def test_lab_view_refuses_a_kernel_that_does_not_fit():
    tiny = np.zeros((2, 2), dtype=np.uint8)
    with pytest.raises(KernelError, match="does not fit"):
        lab.lab_view(tiny, np.ones((3, 3)), per_channel=False, stride=1, padding="valid", flip=False,
                      apply_relu=False, normalise=False)


def test_step_view_matches_the_output_and_the_window_centre():
    view = lab.lab_view(_checkerboard(), conv.make_kernel("Sobel x"), per_channel=False, stride=1,
                         padding="valid", flip=False, apply_relu=False, normalise=False)
    step = lab.step_view(view, 3, 2)
    assert step.detail.total == pytest.approx(view.output[3, 2])
    assert step.centre == (4, 3) and step.padded.shape == (16, 16) and (step.pad_top, step.pad_left) == (0, 0)
    assert step.signed_limit == pytest.approx(np.abs(view.output).max())


def test_pool_view_pools_or_explains_why_not():
    feature_map = np.arange(16.0).reshape(4, 4)
    pooled = lab.pool_view(feature_map, 2, 2, "avg")
    np.testing.assert_allclose(pooled.pooled, [[2.5, 4.5], [10.5, 12.5]])
    assert pooled.takes == "average" and pooled.explained.size == 2
    with pytest.raises(KernelError, match=r"feature map \(1 × 1\) is smaller than a 2 × 2 pool"):
        lab.pool_view(np.zeros((1, 1)), 2, 2, "max")


def test_colour_view_adds_the_three_channel_results_and_uses_the_test_card_for_gray_images():
    colour = lab.colour_view(_checkerboard(), "red minus green", 0, apply_relu=False)
    assert colour.test_card and colour.image.shape[2] == 3
    np.testing.assert_allclose(colour.summed, sum(colour.per_channel), atol=1e-12)
    assert len(colour.random_maps) == lab.RANDOM_FILTERS
    rectified = lab.colour_view(_checkerboard(), "red minus green", 0, apply_relu=True)
    assert rectified.summed.min() >= 0 and all(values.min() >= 0 for values in rectified.random_maps)


def test_colour_filters_and_the_grid_kernel_check():
    assert lab.color_filter("edge detector in every channel").shape == (3, 3, 3)
    np.testing.assert_allclose(lab.color_filter("red minus green").sum(axis=(0, 1)), [1, -1, 0])
    with pytest.raises(KernelError):
        lab.color_filter("purple")
    assert lab.is_grid_kernel([[0, 1, 0]] * 3) and not lab.is_grid_kernel([[1, 2], [3, 4]])
    assert not lab.is_grid_kernel([[1, 2, 3]]) and not lab.is_grid_kernel("text")
    with pytest.raises(KernelError, match="yours is 2x2"):
        lab.grid_kernel([[1, 2], [3, 4]])

