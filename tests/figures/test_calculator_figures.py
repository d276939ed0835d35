"""The calculator's figures: one bar per layer with its count, one box per volume, hidden values hidden."""

from __future__ import annotations

from cnnviz import architecture as arch
from cnnviz.figures.calculator import parameters_bar_figure, volumes_figure


def _rows(key="fashion_relu_cnn"):
    preset = arch.PRESETS[key]
    return preset.input_shape, arch.summarize(preset.input_shape, preset.layers)


def test_bars_carry_every_layer_and_its_count():
    _, rows = _rows()
    figure = parameters_bar_figure(rows)
    bars = {label: value for trace in figure.data for label, value in zip(trace.y, trace.x)}
    assert bars == {f"{row.index + 1}. {row.name}": row.params for row in rows}
    assert "37,884 (99.0%)" in [text for trace in figure.data for text in trace.text]
    assert parameters_bar_figure(rows, log_scale=True).layout.xaxis.type == "log"


def test_bars_hide_the_quiz_layer():
    _, rows = _rows()
    figure = parameters_bar_figure(rows, hidden_index=3)
    texts = [text for trace in figure.data for text in trace.text]
    assert "?" in texts and not any("37,884" in text for text in texts)


def test_volumes_draw_three_faces_per_volume_and_label_shapes():
    input_shape, rows = _rows()
    figure = volumes_figure(input_shape, rows)
    # Three faces per volume, each a closed polygon of 5 points and a None separator.
    assert sum(len(trace.x) for trace in figure.data) == 3 * 6 * (len(rows) + 1)
    labels = " ".join(annotation.text for annotation in figure.layout.annotations)
    assert "26×26×8" in labels and "13×13×8" in labels and "1352" in labels


def test_volumes_of_a_deep_net_label_only_shape_changes_and_hide_the_quiz():
    input_shape, rows = _rows("vgg16")
    figure = volumes_figure(input_shape, rows, hidden_index=1)
    labels = [annotation.text for annotation in figure.layout.annotations]
    assert len(labels) < len(rows) + 1
    assert "?" in labels and "7×7×512" in labels
