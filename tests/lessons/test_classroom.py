"""The class page's lesson logic: the lessons' questions as polls (answers checked against a brute-force
convolution and a hand count of weights), join links and class codes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnviz import architecture as arch
from cnnviz import convolution as conv
from cnnviz.classroom import InProcessStore
from cnnviz.errors import ArchitectureError, ClassroomInputError
from cnnviz.lessons import classroom as lesson


def _brute_force_output(height: int, width: int, kernel: int, stride: int, padding) -> tuple[int, int]:
    """Slide a window by hand over a zero-padded image and count where it fits (no formula)."""
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":  # Keras: out = ceil(n / stride), the padding split with the extra after.
        pads = []
        for n in (height, width):
            total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
            pads.append((total // 2, total - total // 2))
    else:
        pads = [(padding, padding)] * 2
    image = np.zeros((height + sum(pads[0]), width + sum(pads[1])))
    rows = [top for top in range(0, image.shape[0], stride) if top + kernel <= image.shape[0]]
    cols = [left for left in range(0, image.shape[1], stride) if left + kernel <= image.shape[1]]
    return len(rows), len(cols)


@pytest.mark.parametrize("height, width, kernel, stride, padding", [
    (28, 28, 3, 1, "valid"), (32, 24, 5, 2, "same"), (28, 28, 3, 2, 1), (7, 7, 7, 1, "valid"),
    (13, 9, 3, 3, 2), (5, 5, 1, 4, "same")])
def test_the_output_shape_question_has_the_brute_force_answer_and_distinct_wrong_options(
        height, width, kernel, stride, padding):
    question = lesson.output_shape_question(height, width, kernel, stride, padding)
    rows, cols = _brute_force_output(height, width, kernel, stride, padding)
    assert question.options[question.answer] == f"{rows} × {cols}"
    assert len(question.options) == lesson.N_OPTIONS == len(set(question.options))
    sizes = [tuple(int(part) for part in option.split(" × ")) for option in question.options]
    assert sizes == sorted(sizes) and all(min(size) > 0 for size in sizes)  # The order gives nothing away.
    assert f"{height} × {width}" in question.question and f"stride {stride}" in question.question


def test_the_shape_question_offers_the_classic_mistakes():
    question = lesson.output_shape_question(28, 28, 3, 2, 1)
    # (28 - 3 + 2) // 2 + 1 = 14; forgetting the + 1 gives 13, forgetting the stride 28.
    assert question.options[question.answer] == "14 × 14"
    assert {"13 × 13", "28 × 28"} <= set(question.options)


def _hand_count(layer: dict, depth: int) -> int:
    if layer["type"] == "conv2d":
        return (layer["kernel_size"] ** 2 * depth + 1) * layer["filters"]
    return (depth + 1) * layer["units"]


def test_the_parameter_question_counts_weights_and_biases_like_a_hand_count():
    preset = arch.PRESETS["fashion_relu_cnn"]
    depths = {0: 1, 3: 13 * 13 * 8, 4: 28}  # Conv2D on 28x28x1; Dense on the flattened 13x13x8; Dense on 28.
    assert lesson.parameter_layers(preset.input_shape, preset.layers) == sorted(depths)
    for index, depth in depths.items():
        question = lesson.parameters_question(preset.input_shape, preset.layers, index)
        assert question.options[question.answer] == f"{_hand_count(preset.layers[index], depth):,}"
        assert len(set(question.options)) == lesson.N_OPTIONS
        values = [int(option.replace(",", "")) for option in question.options]
        assert values == sorted(values)
    # The conv layer's wrong options: no biases (72), input channels forgotten is the same here, so
    # one filter only (10) comes in.
    conv_question = lesson.parameters_question(preset.input_shape, preset.layers)
    assert {"72", "10"} <= set(conv_question.options)
    with pytest.raises(ArchitectureError, match="no weights"):
        lesson.parameters_question(preset.input_shape, preset.layers, 1)  # The pooling layer.


def test_every_question_is_one_the_store_accepts():
    store = InProcessStore()
    new = store.create_class("t")
    preset = arch.PRESETS["vgg16"]
    questions = [lesson.output_shape_question(h, h, k, s, p)
                 for h, k, s, p in itertools.product((5, 28, 224), (1, 3, 7), (1, 4), ("valid", "same", 3)) if k <= h]
    questions += [lesson.parameters_question(preset.input_shape, preset.layers, i)
                  for i in lesson.parameter_layers(preset.input_shape, preset.layers)]
    for question in questions[:store.limits.max_polls]:
        poll = store.send_poll(new.code, new.lecturer_secret, question.question, question.options,
                               answer=question.answer)
        assert store.poll(new.code, poll.poll_id, new.lecturer_secret).answer == question.answer


def test_the_question_stack_is_the_calculator_one_when_it_works():
    mine = [{"type": "conv2d", "filters": 4, "kernel_size": 5}, {"type": "flatten"}, {"type": "dense", "units": 3}]
    assert lesson.question_stack((10, 10, 3), mine) == ((10, 10, 3), mine)
    default = arch.PRESETS["fashion_relu_cnn"]
    for shape, layers in (((10, 10, 3), None), (None, mine), ((2, 2, 1), mine), ((10, 10, 3), [{"type": "flatten"}])):
        assert lesson.question_stack(shape, layers) == (tuple(default.input_shape), [dict(x) for x in default.layers])


def test_join_links_and_codes():
    code = "ABCDEFGHJKMN"
    assert lesson.join_link("https://cnnviz.example/classroom?presenter=1#x", code) == \
        "https://cnnviz.example/classroom?class=ABCDEFGHJKMN"
    assert lesson.join_link(None, code, host="localhost:8501") == "http://localhost:8501/classroom?class=ABCDEFGHJKMN"
    assert lesson.join_link("", code, host="evil.example/<script>") == "/classroom?class=ABCDEFGHJKMN"
    assert lesson.code_from_link(" abcd-efgh-jkmn ") == code
    assert lesson.shown_code(code) == "ABCD-EFGH-JKMN"
    for garbage in ("", "ABC", "<script>alert(1)</script>", "ABCDEFGHJKM0", "x" * 10_000):
        with pytest.raises(ClassroomInputError, match="not a class code"):
            lesson.code_from_link(garbage)
    with pytest.raises(ClassroomInputError):
        lesson.join_link("https://x", "nope")
    assert conv.output_size(28, 3) == 26  # The lab's own helper agrees with the brute force above.
    assert _brute_force_output(28, 28, 3, 1, "valid") == (26, 26)
