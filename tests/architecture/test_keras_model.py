"""The Keras builder's companions: the one input-scaling rule, the logits/softmax rules, and the one
output-size formula checked against Keras' own shape arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import keras

from cnnviz import architecture as arch
from cnnviz import convolution
from cnnviz.errors import KernelError

# ---------------------------------------------------------------------------------------------
# Input scaling.


def test_uint8_pixels_become_float32_between_0_and_1():
    images = np.array([[0, 51], [204, 255]], dtype=np.uint8)
    scaled = arch.scale_images(images)
    assert scaled.dtype == np.float32 and scaled.shape == images.shape
    np.testing.assert_array_equal(scaled, np.array([[0, 0.2], [0.8, 1]], dtype=np.float32))
    assert arch.input_scale(images) == pytest.approx(1 / 255)


def test_float_images_are_taken_as_already_scaled():
    images = np.array([0.0, 0.5, 1.0], dtype=np.float64)
    np.testing.assert_array_equal(arch.scale_images(images), images.astype(np.float32))
    assert arch.scale_images(images).dtype == np.float32
    assert arch.input_scale(images) == 1.0


def test_the_in_graph_factor_agrees_with_scale_images():
    images = np.arange(256, dtype=np.uint8)
    in_graph = (images.astype(np.float32) * np.float32(arch.input_scale(images)))
    np.testing.assert_allclose(in_graph, arch.scale_images(images), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Logits and softmax.


def test_softmax_rows_sum_to_one_even_for_large_logits():
    logits = np.array([[1000.0, 1000.0, 0.0], [1.0, 2.0, 3.0]])
    probabilities = arch.softmax(logits)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities[0], [0.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(probabilities[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


@pytest.mark.parametrize("activation, logits", [(None, True), ("linear", True), ("softmax", False)])
def test_outputs_logits_reads_the_stack_and_the_built_model_alike(activation, logits):
    stack = [{"type": "flatten"}, {"type": "dense", "units": 3}]
    if activation is not None:
        stack[-1]["activation"] = activation
    assert arch.outputs_logits(stack) is logits
    assert arch.outputs_logits(arch.build_keras_model((4, 4, 1), stack)) is logits
    assert activation in arch.OUTPUT_ACTIVATIONS


# ---------------------------------------------------------------------------------------------
# The one output-size rule (cnnviz.convolution.output_size) against Keras.


def keras_output_length(n, kernel, stride, padding, dilation):
    layer = keras.layers.Conv2D(1, (kernel, 1), strides=(stride, 1), padding=padding, dilation_rate=(dilation, 1))
    return layer.compute_output_shape((None, n, 1, 1))[1]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(1, 7), st.integers(1, 4), st.sampled_from(["valid", "same"]),
       st.integers(1, 4))
def test_output_size_is_keras_own_length(n, kernel, stride, padding, dilation):
    if stride > 1 and dilation > 1:
        stride = 1  # Keras refuses the two together.
    try:
        expected = keras_output_length(n, kernel, stride, padding, dilation)
    except ValueError:
        with pytest.raises(KernelError):
            convolution.output_size(n, kernel, stride, padding, dilation)
        return
    assert convolution.output_size(n, kernel, stride, padding, dilation) == expected
