"""The calculator page driven through AppTest, and a check that it never loads TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import architecture as arch

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(PROJECT_ROOT / "app_pages" / "calculator.py")


def run_page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    matches = [m.value for m in at.metric if m.label == label]
    assert matches, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return matches[0]


def results(at: AppTest):
    """The per-layer results table (the read-only dataframe with a formula column)."""
    tables = [frame.value for frame in at.dataframe if "formula" in frame.value.columns]
    assert tables, "no results table"
    return tables[0]


def edit_table(at: AppTest, *, edited=None, added=None, deleted=None) -> AppTest:
    """Apply cell edits to the layer table the way the browser reports them, then rerun."""
    key = at.data_editor[0].key
    at.session_state[key] = {"edited_rows": edited or {}, "added_rows": added or [], "deleted_rows": deleted or []}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_default_preset_shows_the_relu_cnn_totals():
    at = run_page()
    assert metric(at, "Total parameters") == "38,254"
    assert metric(at, "Non-trainable") == "0"
    assert not at.error
    table = at.data_editor[0].value
    assert list(table["type"]) == ["conv2d", "maxpool2d", "flatten", "dense", "dense"]


def test_load_preset_edit_a_layer_and_the_totals_change():
    at = run_page()
    at.selectbox(key="calc_preset").set_value("vgg16").run()
    assert metric(at, "Total parameters") == "138,357,544"
    assert at.number_input(key="calc_height").value == 224
    # First convolution 64 -> 32 filters: conv1 (3·3·3+1)·32 and conv2 (3·3·32+1)·64.
    edit_table(at, edited={"0": {"filters": 32}})
    expected = 138_357_544 - (28 * 64 - 28 * 32) - ((9 * 64 + 1) * 64 - (9 * 32 + 1) * 64)
    assert metric(at, "Total parameters") == f"{expected:,}"
    # The edit survives an unrelated rerun.
    at.toggle(key="calc_log_scale").set_value(True).run()
    assert metric(at, "Total parameters") == f"{expected:,}"


def test_batchnorm_shows_non_trainable_parameters():
    at = run_page()
    edit_table(at, added=[{"type": "batchnorm"}])
    assert metric(at, "Non-trainable") == "20"  # 2 moving statistics × 10 outputs.
    assert metric(at, "Total parameters") == f"{38_254 + 40:,}"


def test_impossible_stack_shows_the_message_at_its_layer():
    at = run_page()
    # A convolution after the Dense head: its input is a flat vector.
    edit_table(at, added=[{"type": "conv2d", "filters": 4, "kernel_size": "3"}])
    assert at.error, "an impossible stack must be explained"
    message = at.error[0].value
    assert "Layer 6" in message and "Flatten" in message
    table = results(at)
    assert table["layer"].iloc[-1].startswith("✖")
    assert "Layer 6" in table["note"].iloc[-1]


def test_input_too_small_for_the_pools_is_an_error_not_a_traceback():
    at = run_page()
    at.selectbox(key="calc_preset").set_value("vgg16").run()
    at.number_input(key="calc_height").set_value(20).run()
    assert not at.exception
    assert any("zero size" in error.value for error in at.error)


def test_predict_first_hides_then_checks_the_guess():
    at = run_page()
    at.toggle(key="calc_quiz_on").set_value(True).run()
    at.selectbox(key="calc_quiz_layer").set_value(0).run()
    at.radio(key="calc_quiz_what").set_value("parameters").run()
    assert results(at)["parameters"].iloc[0] == "?"
    assert metric(at, "Total parameters") == "?"
    at.text_input(key="calc_quiz_guess").set_value("80").run()
    at.button(key="calc_quiz_check").click().run()
    assert any("Right" in s.value for s in at.success)
    assert results(at)["parameters"].iloc[0] == "80"
    # A wrong guess about a shape reveals the answer with its reason.
    at.radio(key="calc_quiz_what").set_value("output shape").run()
    at.text_input(key="calc_quiz_guess").set_value("28x28x8").run()
    at.button(key="calc_quiz_check").click().run()
    assert any("26×26×8" in e.value for e in at.error)


def test_dense_instead_of_convolutions():
    at = run_page()
    at.number_input(key="calc_height").set_value(64).run()
    at.number_input(key="calc_width").set_value(64).run()
    at.number_input(key="calc_channels").set_value(3).run()
    at.number_input(key="calc_dense_units").set_value(10).run()
    assert metric(at, "Dense(10) on the flattened 64×64×3 input") == "122,890"


def test_json_import_and_keras_code_export():
    at = run_page()
    document = {"input_shape": [32, 32, 3], "layers": [
        {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": "same"},
        {"type": "globalavgpool2d"}, {"type": "dense", "units": 5}]}
    at.text_area(key="calc_import_text").set_value(json.dumps(document)).run()
    at.button(key="calc_import_button").click().run()
    assert not at.exception
    assert metric(at, "Total parameters") == f"{(27 + 1) * 16 + 17 * 5:,}"
    assert at.number_input(key="calc_channels").value == 3
    assert any("Imported 3 layers" in s.value for s in at.success)
    code = "\n".join(block.value for block in at.code)
    assert 'layers.Conv2D(16, 3, padding="same", name="conv2d")' in code
    # Bad JSON is refused with a message and the stack stays as it was.
    at.text_area(key="calc_import_text").set_value("{oops").run()
    at.button(key="calc_import_button").click().run()
    assert any("Nothing imported" in e.value for e in at.error)
    assert metric(at, "Total parameters") == f"{(27 + 1) * 16 + 17 * 5:,}"


def test_state_is_mirrored_in_the_url_and_read_back():
    at = run_page()
    at.selectbox(key="calc_preset").set_value("lenet5_tanh").run()
    assert _query(at)["calc_link_preset"] == "lenet5_tanh"  # An unchanged preset: by its name.
    at.number_input(key="calc_channels").set_value(3).run()  # Now a stack of one's own: by its JSON.
    shared = _query(at)["calc_view"]
    assert json.loads(shared)["input_shape"] == [28, 28, 3]
    again = run_page({"calc_view": shared})
    assert metric(again, "Total parameters") == f"{61_610 + 2 * 6 * 3 * 3:,}"  # 6 3×3 filters see 2 more channels.
    assert again.selectbox(key="calc_preset").value == "custom"


def _query(at: AppTest) -> dict[str, str]:
    return {name: value[0] if isinstance(value, list) else value for name, value in at.query_params.items()}


def test_an_unchanged_preset_is_shared_by_its_name_and_opens_as_that_preset():
    at = run_page()
    at.selectbox(key="calc_preset").set_value("vgg16").run()
    query = _query(at)
    assert query == {"calc_link_preset": "vgg16", "calc_log_scale": "0"} or query == {"calc_link_preset": "vgg16"}
    assert len(urlencode(query)) < 200
    again = run_page(query)
    assert again.selectbox(key="calc_preset").value == "vgg16"
    assert metric(again, "Total parameters") == "138,357,544"  # Keras' VGG16 (include_top, 1000 classes).
    assert _query(again) == query  # Opening the link keeps it short.


def test_an_edited_preset_is_shared_by_its_stack_and_round_trips():
    at = run_page()
    at.selectbox(key="calc_preset").set_value("lenet5_tanh").run()
    at.number_input(key="calc_height").set_value(32).run()
    query = _query(at)
    assert "calc_link_preset" not in query
    assert json.loads(query["calc_view"])["input_shape"] == [32, 28, 1]
    total = metric(at, "Total parameters")
    again = run_page(query)
    assert again.selectbox(key="calc_preset").value == "custom"
    assert again.number_input(key="calc_height").value == 32
    assert metric(again, "Total parameters") == total


def test_a_link_naming_an_unknown_preset_is_ignored_with_a_notice():
    at = run_page({"calc_link_preset": "vgg99"})
    assert metric(at, "Total parameters") == "38,254"
    assert any("Ignored link parameters" in c.value for c in at.caption)


@pytest.mark.parametrize("bad", ["{not json", json.dumps({"input_shape": [28, 28, 1], "layers": [
    {"type": "flatten"}, {"type": "conv2d", "filters": 3, "kernel_size": 3}]})])
def test_invalid_url_state_is_ignored_with_a_notice(bad):
    at = run_page({"calc_view": bad})
    assert metric(at, "Total parameters") == "38,254"
    assert any("Ignored link parameters" in c.value for c in at.caption)


def test_page_never_imports_tensorflow():
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({PAGE!r}, default_timeout=60).run()\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
        "at.selectbox(key='calc_preset').set_value('vgg16').run()\n"
        "assert not at.exception\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_every_preset_renders():
    at = run_page()
    for key, preset in arch.PRESETS.items():
        at.selectbox(key="calc_preset").set_value(key).run()
        assert not at.exception, key
        assert metric(at, "Total parameters") == f"{preset.total_params:,}", key
        assert not at.error, key


def test_move_and_insert_layers():
    at = run_page()
    at.selectbox(key="calc_move_layer").set_value(0).run()
    at.selectbox(key="calc_insert_type").set_value("batchnorm").run()
    at.button(key="calc_insert").click().run()
    assert list(at.data_editor[0].value["type"]) == ["conv2d", "batchnorm", "maxpool2d", "flatten", "dense", "dense"]
    assert metric(at, "Non-trainable") == "16"
    # Moving the batch normalization after the pool keeps its 8 channels: same totals.
    at.button(key="calc_move_down").click().run()
    assert list(at.data_editor[0].value["type"])[:3] == ["conv2d", "maxpool2d", "batchnorm"]
    assert metric(at, "Total parameters") == f"{38_254 + 32:,}"
    # Moving Flatten above the convolution is impossible, and said so.
    at.selectbox(key="calc_move_layer").set_value(3).run()
    for _ in range(3):
        at.button(key="calc_move_up").click().run()
    assert list(at.data_editor[0].value["type"])[0] == "flatten"
    assert any("Layer 2" in error.value for error in at.error)


def test_empty_stack_and_half_filled_row_are_explained():
    at = run_page()
    edit_table(at, deleted=[0, 1, 2, 3, 4])
    assert any("empty" in error.value for error in at.error)
    at = run_page()
    edit_table(at, added=[{"type": "conv2d"}])
    assert any("Layer 6" in error.value and "filters" in error.value for error in at.error)



def test_no_totals_for_an_impossible_stack():
    at = run_page()
    at.number_input(key="calc_height").set_value(3).run()
    assert any("zero size" in error.value for error in at.error)
    assert not [m for m in at.metric if m.label == "Total parameters"]
