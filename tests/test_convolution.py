"""cnnviz.convolution against independent oracles: SciPy at stride 1, Keras itself at any stride."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnviz import convolution as conv
from cnnviz.lessons import convolution as lesson

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)


finite = st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def image_and_kernel(draw, *, channels: bool = False, kernel_channels: bool = False):
    kh = draw(st.integers(1, 5))
    kw = draw(st.integers(1, 5))
    height = draw(st.integers(kh, 14))
    width = draw(st.integers(kw, 14))
    depth = draw(st.integers(1, 3)) if channels else None
    image_shape = (height, width) if depth is None else (height, width, depth)
    kernel_shape = (kh, kw, depth) if kernel_channels else (kh, kw)
    image = draw(hnp.arrays(np.float64, image_shape, elements=finite))
    kernel = draw(hnp.arrays(np.float64, kernel_shape, elements=finite))
    return image, kernel


@PROPERTY_SETTINGS
@given(image_and_kernel())
def test_stride_one_valid_equals_scipy_correlate2d(case):
    image, kernel = case
    expected = scipy.signal.correlate2d(image, kernel, mode="valid")
    np.testing.assert_allclose(conv.apply_kernel(image, kernel), expected, atol=1e-9)


@PROPERTY_SETTINGS
@given(image_and_kernel())
def test_flip_is_true_convolution_like_scipy_convolve2d(case):
    image, kernel = case
    expected = scipy.signal.convolve2d(image, kernel, mode="valid")
    np.testing.assert_allclose(conv.apply_kernel(image, kernel, flip=True), expected, atol=1e-9)


@PROPERTY_SETTINGS
@given(image_and_kernel(), st.integers(0, 3))
def test_zero_padding_equals_scipy_on_a_zero_padded_image(case, pad):
    image, kernel = case
    expected = scipy.signal.correlate2d(np.pad(image, pad), kernel, mode="valid")
    np.testing.assert_allclose(conv.apply_kernel(image, kernel, padding=pad), expected, atol=1e-9)


@PROPERTY_SETTINGS
@given(image_and_kernel(), st.booleans())
def test_same_padding_with_odd_kernel_equals_scipy_same(case, flip):
    image, kernel = case
    # Keep odd sizes only: for even kernels SciPy and Keras centre "same" differently.
    kernel = kernel[: (kernel.shape[0] - 1) // 2 * 2 + 1, : (kernel.shape[1] - 1) // 2 * 2 + 1]
    oracle = scipy.signal.convolve2d if flip else scipy.signal.correlate2d
    expected = oracle(image, kernel, mode="same")
    np.testing.assert_allclose(conv.apply_kernel(image, kernel, padding="same", flip=flip), expected, atol=1e-9)


@PROPERTY_SETTINGS
@given(image_and_kernel(channels=True))
def test_a_2d_kernel_is_applied_to_each_channel(case):
    image, kernel = case
    result = conv.apply_kernel(image, kernel)
    assert result.ndim == 3 and result.shape[2] == image.shape[2]
    for channel in range(image.shape[2]):
        expected = scipy.signal.correlate2d(image[:, :, channel], kernel, mode="valid")
        np.testing.assert_allclose(result[:, :, channel], expected, atol=1e-9)


@PROPERTY_SETTINGS
@given(image_and_kernel(channels=True, kernel_channels=True))
def test_a_3d_kernel_sums_the_channel_results_like_one_filter(case):
    image, kernel = case
    expected = sum(scipy.signal.correlate2d(image[:, :, c], kernel[:, :, c], mode="valid")
                   for c in range(image.shape[2]))
    np.testing.assert_allclose(conv.apply_kernel(image, kernel), expected, atol=1e-9)


def test_the_seed_dot_product_is_19():
    image = np.arange(9.0).reshape(3, 3)
    kernel = np.array([[0.0, 1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(conv.apply_kernel(image, kernel), [[19, 25], [37, 43]])
    detail = conv.window_detail(image, kernel, 0, 0)
    assert detail.total == 19
    assert detail.equation() == "0×0 + 1×1 + 3×2 + 4×3 = 19"


def keras_conv2d(image: np.ndarray, kernel: np.ndarray, stride: int, padding) -> np.ndarray:
    """One Keras Conv2D filter without bias, with `kernel` as its weights."""
    import keras

    if image.ndim == 2:
        image = image[:, :, None]
    if kernel.ndim == 2:
        kernel = kernel[:, :, None]
    if isinstance(padding, int):
        image = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
        padding = "valid"
    layer = keras.layers.Conv2D(1, kernel.shape[:2], strides=stride, padding=padding, use_bias=False,
                                dtype="float64")
    layer.build((1, *image.shape))
    layer.set_weights([kernel[:, :, :, None]])
    return keras.ops.convert_to_numpy(layer(image[None]))[0, :, :, 0]


paddings = st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 2))


@PROPERTY_SETTINGS
@given(image_and_kernel(channels=True, kernel_channels=True), st.integers(1, 4), paddings)
def test_any_stride_and_padding_equals_keras_conv2d(case, stride, padding):
    image, kernel = case
    expected = keras_conv2d(image, kernel, stride, padding)
    result = conv.apply_kernel(image, kernel, stride=stride, padding=padding)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, atol=1e-7)


@PROPERTY_SETTINGS
@given(image_and_kernel(), st.integers(1, 4), paddings, st.data())
def test_window_detail_total_is_the_output_value(case, stride, padding, data):
    image, kernel = case
    output = conv.apply_kernel(image, kernel, stride=stride, padding=padding)
    row = data.draw(st.integers(0, output.shape[0] - 1))
    col = data.draw(st.integers(0, output.shape[1] - 1))
    detail = conv.window_detail(image, kernel, row, col, stride=stride, padding=padding)
    assert math.isclose(detail.total, output[row, col], abs_tol=1e-9)
    np.testing.assert_allclose(detail.products, detail.window * detail.kernel)


def test_window_detail_reports_where_the_window_sits_in_the_padding():
    image = np.ones((5, 5))
    detail = conv.window_detail(image, np.ones((3, 3)), 0, 0, padding=1)
    assert (detail.top, detail.left, detail.bottom, detail.right) == (-1, -1, 1, 1)
    assert detail.total == 4  # Five of the nine cells are zero padding.
    flipped = conv.window_detail(np.eye(3), np.arange(9.0).reshape(3, 3), 0, 0, flip=True)
    np.testing.assert_array_equal(flipped.kernel, np.arange(9.0).reshape(3, 3)[::-1, ::-1])


@PROPERTY_SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.one_of(st.none(), st.integers(1, 3)),
       st.sampled_from(["max", "avg"]), st.sampled_from(["valid", "same"]), st.data())
def test_pool_equals_keras_pooling(size_h, size_w, stride, kind, padding, data):
    import keras

    height = data.draw(st.integers(size_h, 12))
    width = data.draw(st.integers(size_w, 12))
    channels = data.draw(st.integers(1, 3))
    x = data.draw(hnp.arrays(np.float64, (height, width, channels), elements=finite))
    layer_class = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    layer = layer_class(pool_size=(size_h, size_w), strides=stride, padding=padding, dtype="float64")
    expected = keras.ops.convert_to_numpy(layer(x[None]))[0]
    result = conv.pool(x, (size_h, size_w), stride=stride, kind=kind, padding=padding)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, atol=1e-7)


def test_pool_of_a_2d_map_stays_2d():
    x = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(conv.pool(x, 2), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(conv.pool(x, 2, kind="avg"), [[2.5, 4.5], [10.5, 12.5]])


@PROPERTY_SETTINGS
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4), paddings)
def test_output_size_matches_the_computed_map(n, kernel, stride, padding):
    padded = n + sum(conv.padding_amounts(n, kernel, stride, padding))
    if padded < kernel:
        with pytest.raises(ValueError, match="does not fit"):
            conv.output_size(n, kernel, stride, padding)
        return
    size = conv.output_size(n, kernel, stride, padding)
    result = conv.apply_kernel(np.zeros((n, 1)), np.ones((kernel, 1)), stride=stride, padding=padding)
    assert result.shape[0] == size
    if padding == "same":
        assert size == math.ceil(n / stride)
    if isinstance(padding, int):
        assert size == (n - kernel + 2 * padding) // stride + 1


def test_output_size_at_the_edges_where_the_two_old_formulas_differed():
    """One rule for the lab and the calculator: a dilated kernel spans d·(k − 1) + 1 pixels (the
    lab's formula ignored dilation), an int padding counts (the calculator's treated it as
    "valid"), "same" keeps ⌈n / s⌉ even for a kernel larger than the input, and a size of 0 or
    less is refused as Keras refuses it (the calculator's returned it)."""
    assert conv.output_size(7, 3, dilation=3) == 1
    with pytest.raises(ValueError, match="dilated to 7"):
        conv.output_size(6, 3, dilation=3)
    assert conv.output_size(28, 3, 1, "same", dilation=2) == 28
    assert conv.output_size(5, 3, 1, 1) == 5
    assert conv.output_size(3, 7, 2, "same") == 2
    with pytest.raises(ValueError, match="does not fit"):
        conv.output_size(5, 6, 2)  # floor(-1 / 2) + 1 = 0 rows: refused, not returned.


def test_explain_output_size_writes_the_formula_with_numbers():
    explanation = conv.explain_output_size(28, 3, 1, "valid")
    assert explanation.size == 26
    assert explanation.general == "(W − F + 2P) / S + 1"
    assert explanation.substituted == "(28 − 3 + 2×0) / 1 + 1 = 25 + 1 = 26"
    uneven = conv.explain_output_size(28, 3, 2, "valid")
    assert uneven.substituted == "(28 − 3 + 2×0) / 2 + 1 = ⌊12.5⌋ + 1 = 12 + 1 = 13"
    assert "dropped" in uneven.note
    same = conv.explain_output_size(28, 3, 2, "same")
    assert same.size == 14 and "0+1" in same.substituted and "⌈28 / 2⌉" in same.note
    assert conv.explain_output_size(32, 5, 1, 2).substituted.endswith("= 32")


def test_presets_include_the_issue_list_and_are_3x3():
    expected = {"identity", "box blur", "Gaussian blur", "sharpen", "Laplacian edge", "Sobel x",
                "Sobel y", "Prewitt x", "emboss", "outline", "random (seeded)"}
    assert expected <= set(conv.KERNEL_PRESETS)
    np.testing.assert_array_equal(conv.KERNEL_PRESETS["Laplacian edge"].kernel,
                                  [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    for preset in conv.KERNEL_PRESETS.values():
        assert preset.kernel.shape == (3, 3) and preset.description


@pytest.mark.parametrize("size", [3, 5, 7])
@pytest.mark.parametrize("name", list(conv.KERNEL_PRESETS))
def test_make_kernel_keeps_the_meaning_at_larger_sizes(name, size):
    kernel = conv.make_kernel(name, size)
    assert kernel.shape == (size, size)
    image = np.random.default_rng(3).random((12, 12))
    if name in ("box blur", "Gaussian blur"):
        assert math.isclose(kernel.sum(), 1.0, abs_tol=1e-3)
    elif name != "random (seeded)":
        # A 3x3 preset centred in zeros computes the same values on the smaller valid output.
        trim = (size - 3) // 2
        small = conv.apply_kernel(image, conv.KERNEL_PRESETS[name].kernel)
        big = conv.apply_kernel(image, kernel)
        np.testing.assert_allclose(big, small[trim:small.shape[0] - trim, trim:small.shape[1] - trim])


def test_identity_kernel_copies_the_image():
    image = np.random.default_rng(0).random((9, 7))
    np.testing.assert_allclose(conv.apply_kernel(image, conv.make_kernel("identity", 3), padding="same"), image)


def test_random_kernel_is_seeded_and_glorot_sized():
    first = conv.random_kernel(3, seed=5, channels=3)
    np.testing.assert_array_equal(first, conv.random_kernel(3, seed=5, channels=3))
    assert not np.array_equal(first, conv.random_kernel(3, seed=6, channels=3))
    # One 3x3 filter on 3 channels: fan_in 27, fan_out 9.
    assert first.shape == (3, 3, 3) and np.abs(first).max() <= math.sqrt(6 / 36) + 1e-3


def test_glorot_limit_uses_the_filters_for_fan_out():
    # 8 RGB 3x3 filters: fan_in = 3*3*3 = 27, fan_out = 3*3*8 = 72 (not 27: that was 1.35x too wide).
    assert math.isclose(conv.glorot_limit(3, 3, 8), math.sqrt(6 / (27 + 72)))
    assert math.isclose(conv.glorot_limit(3), math.sqrt(6 / 18))
    wide = np.stack([conv.random_kernel(3, seed=s, channels=3, filters=8) for s in range(50)])
    assert np.abs(wide).max() <= conv.glorot_limit(3, 3, 8) + 5e-4
    assert np.abs(wide).max() > 0.98 * conv.glorot_limit(3, 3, 8)


def test_glorot_limit_matches_keras_glorot_uniform():
    import keras

    # 10 draws of a (3, 3, 3, 8) Conv2D kernel: 2,160 values, whose largest magnitude lies within 1% of
    # Keras' limit (the chance that it does not is 0.99**2160, about 4e-10).
    draws = np.concatenate([np.asarray(keras.initializers.GlorotUniform(seed=s)((3, 3, 3, 8))).ravel()
                            for s in range(10)])
    keras_limit = float(np.abs(draws).max())
    limit = conv.glorot_limit(3, channels=3, filters=8)
    assert keras_limit <= limit + 1e-6 and keras_limit >= 0.99 * limit


def test_colour_view_random_filters_have_the_scale_of_an_8_filter_conv2d():
    pixels = np.random.default_rng(0).random((12, 12, 3))
    view = lesson.colour_view(pixels, "red minus green", 4, apply_relu=False)
    for index, values in enumerate(view.random_maps):
        kernel = conv.random_kernel(3, seed=4 + index, channels=3, filters=lesson.RANDOM_FILTERS)
        np.testing.assert_allclose(values, conv.apply_kernel(view.image, kernel))


def test_normalise_kernel():
    np.testing.assert_allclose(conv.normalise_kernel(np.ones((3, 3))), np.full((3, 3), 1 / 9))
    edge = conv.normalise_kernel(conv.KERNEL_PRESETS["Laplacian edge"].kernel)
    assert math.isclose(np.abs(edge).sum(), 1.0)
    np.testing.assert_array_equal(conv.normalise_kernel(np.zeros((3, 3))), np.zeros((3, 3)))


@pytest.mark.parametrize("bad", [[[1.0, float("nan")], [0, 0]], [[float("inf"), 1.0]], [[1.0, -float("inf")]]])
def test_a_non_finite_kernel_entry_is_refused_with_its_position(bad):
    with pytest.raises(ValueError, match="finite number.*row 1, column"):
        conv.apply_kernel(np.ones((4, 4)), bad)


@pytest.mark.parametrize("text, message", [
    ("1 2 3\n4 5 nan", "finite"),
    ("1 2; 3 4 5", "same number of entries"),
    ("1 x 3", "'x' is not a number"),
    ("1e999 0", "finite"),
    ("", "at least one row"),
])
def test_parse_kernel_text_refuses_bad_input(text, message):
    with pytest.raises(ValueError, match=message):
        conv.parse_kernel_text(text)


def test_parse_kernel_text_reads_rows():
    np.testing.assert_array_equal(conv.parse_kernel_text("[-1, 0, 1]\n[-2 0 2]; -1 0 1"),
                                  conv.KERNEL_PRESETS["Sobel x"].kernel)


@pytest.mark.parametrize("kwargs, message", [
    ({"stride": 0}, "stride"),
    ({"padding": "full"}, "padding"),
    ({"padding": -1}, "padding"),
])
def test_bad_settings_raise_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv.apply_kernel(np.ones((5, 5)), np.ones((3, 3)), **kwargs)


def test_kernel_larger_than_the_image_is_explained():
    with pytest.raises(ValueError, match="does not fit"):
        conv.apply_kernel(np.ones((2, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="channels"):
        conv.apply_kernel(np.ones((5, 5, 3)), np.ones((3, 3, 2)))


def test_next_position_sweeps_in_raster_order_and_stops():
    positions = [(0, 0)]
    while (step := conv.next_position(*positions[-1], 3, 2)) is not None:
        positions.append(step)
    assert positions == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert conv.next_position(0, 0, 5, 5, step=2) == (0, 2)
    assert conv.next_position(0, 4, 5, 5, step=2) == (2, 0)
    assert conv.next_position(4, 4, 5, 5, step=2) is None


def test_relu():
    np.testing.assert_array_equal(conv.relu([-1.0, 0.0, 2.5]), [0.0, 0.0, 2.5])


def _validated(figure):
    import plotly.graph_objects as go

    return go.Figure(figure.to_plotly_json())  # Raises ValueError on any invalid property.


def test_every_lab_figure_is_valid_plotly_and_uses_safe_scales():
    from cnnviz.figures import convolution as figures

    rng = np.random.default_rng(0)
    gray, rgb, signed = rng.random((12, 10)), rng.random((12, 10, 3)), rng.normal(size=(10, 8))
    kernel = conv.KERNEL_PRESETS["Sobel x"].kernel
    built = {
        "image": figures.image_figure(gray, window=(-1, -1, 1, 1), row0=-1, col0=-1),
        "rgb": figures.image_figure(rgb),
        "kernel": figures.kernel_figure(kernel),
        "signed": figures.signed_map_figure(signed, title="out", highlight=(2, 3)),
        "positive": figures.signed_map_figure(np.abs(signed), title="out", scale="Cividis"),
        "window": figures.window_figure(gray[:3, :3], kernel, gray[:3, :3] * kernel),
        "grid": figures.map_grid_figure([("a", gray), ("b", signed), ("c", rgb), ("", None)], columns=2,
                                        shared_scale=True),
    }
    for figure in built.values():
        _validated(figure)
    kernel_trace = built["kernel"].data[0]
    # Scales are sent as explicit colours (plotly.js would not know "gray" or "RdBu_r" by name).
    gray_scale = built["image"].to_plotly_json()["data"][0]["colorscale"]
    assert gray_scale[0] == [0.0, "rgb(0, 0, 0)"] and gray_scale[-1][0] == 1.0
    rdbu_r = kernel_trace.to_plotly_json()["colorscale"]
    assert rdbu_r[0][1] == "rgb(5,48,97)" and rdbu_r[-1][1] == "rgb(103,0,31)"  # Blue low, red high.
    assert kernel_trace.zmid == 0
    assert kernel_trace.zmin == -2 and kernel_trace.zmax == 2 and kernel_trace.texttemplate
    signed_trace = built["signed"].data[0]
    assert signed_trace.zmid == 0 and signed_trace.zmin == -signed_trace.zmax
    assert built["positive"].data[0].zmid is None  # Non-negative maps use the sequential scale.
    assert built["image"].data[0].x0 == -1 and built["image"].layout.shapes[0].x0 == -1.5
    assert built["rgb"].data[0].type == "image"
    assert len(built["grid"].data) == 3 and len(built["window"].data) == 3
    assert {built["grid"].data[0].zmax, built["grid"].data[1].zmax} == {float(np.abs(signed).max())}
    with pytest.raises(ValueError):
        figures.heatmap_trace(rgb, colorscale="gray")


def test_zoom_bounds_keep_the_centre_in_view_and_stay_inside():
    from cnnviz.figures.convolution import zoom_bounds

    assert zoom_bounds(28, 5, 40) == (0, 28)
    assert zoom_bounds(256, 0, 40) == (0, 40)
    assert zoom_bounds(256, 128, 40) == (108, 148)
    assert zoom_bounds(256, 255, 40) == (216, 256)


def _checkerboard() -> np.ndarray:
    from cnnviz import images

    return images.synthetic("checkerboard", 16)

