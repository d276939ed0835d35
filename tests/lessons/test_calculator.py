"""The calculator's lesson: the summarised stack, its edits, the import and the "predict first" quiz."""

from __future__ import annotations

import json

import pytest

from cnnviz import architecture as arch
from cnnviz.errors import ArchitectureError
from cnnviz.lessons import calculator

SMALL = [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "flatten"},
         {"type": "dense", "units": 10, "activation": "softmax"}]


def test_a_working_stack_has_rows_totals_and_a_shared_view():
    view = calculator.calculator_view((28, 28, 1), SMALL)
    assert view.valid and view.failed is None and len(view.rows) == 3
    assert view.totals.params == 40 + 26 * 26 * 4 * 10 + 10
    assert view.shared_view == json.loads(arch.stack_to_json((28, 28, 1), SMALL, compact=True))
    assert view.names == ["conv2d", "flatten", "dense"]
    assert calculator.import_stack(None, view.json_text()) == ((28, 28, 1), [arch.compact_layer(layer) for layer in SMALL])
    assert "keras.Input(shape=(28, 28, 1))" in view.keras_code()


def test_the_default_preset_keeps_a_clean_link():
    preset = arch.PRESETS[calculator.DEFAULT_PRESET]
    assert calculator.calculator_view(preset.input_shape, preset.layers).shared_view is None
    assert calculator.calculator_view(preset.input_shape, preset.layers).shared_preset is None


@pytest.mark.parametrize("name", [name for name in arch.PRESETS if name != calculator.DEFAULT_PRESET])
def test_an_unchanged_preset_is_shared_by_name_and_an_edited_one_by_its_stack(name):
    preset = arch.PRESETS[name]
    view = calculator.calculator_view(preset.input_shape, preset.layers)
    assert view.shared_preset == name and view.shared_view is None
    # In the compact form a link or an import carries (default arguments left out), still the same preset.
    spelled = [arch.compact_layer(layer) for layer in preset.layers]
    assert calculator.matching_preset(list(preset.input_shape), spelled) == name
    edited = [dict(layer) for layer in preset.layers]
    first_dense = next(index for index, layer in enumerate(edited) if layer["type"] == "dense")
    edited[first_dense]["units"] += 1
    view = calculator.calculator_view(preset.input_shape, edited)
    assert view.shared_preset is None
    assert calculator.stack_from_view(view.shared_view) == (tuple(preset.input_shape),
                                                           [arch.compact_layer(layer) for layer in edited])


def test_an_impossible_stack_keeps_the_rows_before_the_failing_layer():
    layers = SMALL[:1] + [{"type": "conv2d", "filters": 4, "kernel_size": 30}] + SMALL[1:]
    view = calculator.calculator_view((28, 28, 1), layers)
    assert not view.valid and view.totals is None and view.shared_view is None
    assert len(view.rows) == 1 and view.failed.index == 1 and view.failed.error is view.error
    assert view.failed.name == arch.layer_names(layers)[1]


def test_move_and_insert_layers():
    moved, index = calculator.move_layer(SMALL, 1, -1)
    assert [layer["type"] for layer in moved] == ["flatten", "conv2d", "dense"] and index == 0
    assert calculator.move_layer(SMALL, 0, -1) is None
    inserted, position = calculator.insert_layer(SMALL, 0, "maxpool2d")
    assert position == 1 and inserted[1] == {"type": "maxpool2d", "pool_size": 2}
    assert calculator.insert_layer([], 5, "dropout") == ([{"type": "dropout", "rate": 0.25}], 0)


def test_import_reads_a_file_first_then_the_text_and_refuses_big_or_empty_input():
    text = arch.stack_to_json((28, 28, 1), SMALL)
    assert calculator.import_stack(text.encode(), "")[1] == calculator.import_stack(None, text)[1]
    with pytest.raises(ArchitectureError, match="200,000 bytes accepted"):
        calculator.import_stack(b" " * (calculator.MAX_IMPORT_BYTES + 1), "")
    with pytest.raises(ArchitectureError, match="Paste JSON"):
        calculator.import_stack(None, "  ")


def test_links_are_applied_only_when_they_describe_a_possible_network():
    assert calculator.is_valid_view(json.loads(arch.stack_to_json((28, 28, 1), SMALL)))
    assert not calculator.is_valid_view({"layers": 3}) and not calculator.is_valid_view("x")


@pytest.mark.parametrize("text, numbers", [("13x13x8", [13, 13, 8]), ("(13, 13, 8)", [13, 13, 8]),
                                           ("37,884", [37884]), ("", None), ("none", None)])
def test_guesses_are_read_as_numbers(text, numbers):
    assert calculator.parse_guess(text) == numbers


def test_check_guess_says_right_wrong_or_asks_for_a_number():
    row = calculator.calculator_view((28, 28, 1), SMALL).rows[0]
    assert calculator.check_guess(row, "output shape", "26x26x4").right is True
    wrong = calculator.check_guess(row, "parameters", "12")
    assert wrong.right is False and "is 40" in wrong.message and "Formula" in wrong.message
    assert calculator.check_guess(row, "parameters", "").right is None


def test_numbers_as_the_page_writes_them():
    assert calculator.bytes_text(512) == "512 bytes" and calculator.bytes_text(3 * 1024 ** 2) == "3.0 MB"
    assert calculator.big_number(15_470_000_000) == "15.47 billion" and calculator.big_number(999) == "999"
