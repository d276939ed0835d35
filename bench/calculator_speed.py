"""How long the layer calculator takes to answer for VGG16, against Keras answering the same question.

The calculator recomputes on every edit: the per-layer summary, the totals, the Keras-code and JSON
exports and its two figures. This script times that work with the page's own functions and
compares it with a reference measured in the same run: Keras itself producing the same per-layer
output shapes and parameter counts in its cheapest way (each layer built inside a
`keras.StatelessScope`, so no 138-million-weight tensors are allocated). The Keras import time is
reported separately and not counted in the reference.

It also times one full AppTest run of the calculator page with the VGG16 preset loaded (widgets,
tables, figures; no browser).

Run: `python bench/calculator_speed.py` from the project root. The calculator must stay well under
the reference (RATIO < 1) and under 100 ms per rerun.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import plotly.io

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from cnnviz import architecture as arch  # noqa: E402
from cnnviz.figures.calculator import parameters_bar_figure, volumes_figure  # noqa: E402

REPEATS = 10
TARGET_MS = 100.0
PRESET = arch.PRESETS["vgg16"]


def calculator_rerun() -> int:
    """The page's per-rerun work after an edit (see app_pages/calculator.py)."""
    rows = arch.summarize(PRESET.input_shape, PRESET.layers)
    total = arch.totals(rows)
    arch.keras_code(PRESET.input_shape, PRESET.layers)
    arch.stack_to_json(PRESET.input_shape, PRESET.layers, compact=True)
    arch.dense_instead(PRESET.input_shape, 100)
    plotly.io.to_json(parameters_bar_figure(rows))
    plotly.io.to_json(volumes_figure(PRESET.input_shape, rows))
    return total.params


def keras_reference(keras) -> int:
    """Keras' own per-layer shapes and counts for the same stack, without allocating weights."""
    shape = (None, *PRESET.input_shape)
    total = 0
    with keras.StatelessScope():
        for row in arch.summarize(PRESET.input_shape, PRESET.layers):
            layer = arch.LAYERS[row.type].keras_layer(row.config, row.name)
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
            total += layer.count_params()
    return total


def median_ms(function, *args) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = function(*args)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    ours_ms, ours_total = median_ms(calculator_rerun)

    start = time.perf_counter()
    import keras

    import_ms = (time.perf_counter() - start) * 1000
    keras_reference(keras)  # Warm-up.
    reference_ms, keras_total = median_ms(keras_reference, keras)
    assert ours_total == keras_total == 138_357_544, (ours_total, keras_total)

    from streamlit.testing.v1 import AppTest

    page = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "calculator.py"), default_timeout=120).run()
    page.selectbox(key="calc_preset").set_value("vgg16").run()
    page_times = []
    for _ in range(3):
        start = time.perf_counter()
        page.run()
        page_times.append((time.perf_counter() - start) * 1000)
    assert not page.exception

    print(f"VGG16, {len(PRESET.layers)} layers, {ours_total:,} parameters (Keras agrees: {keras_total:,})")
    print(f"calculator rerun (summary, totals, code, JSON, 2 figures): {ours_ms:8.1f} ms (median of {REPEATS})")
    print(f"Keras per-layer shapes and counts, stateless:              {reference_ms:8.1f} ms (median of {REPEATS})")
    print(f"(importing Keras/TensorFlow, which the calculator never does: {import_ms:,.0f} ms)")
    print(f"full AppTest rerun of the page with VGG16:                 {statistics.median(page_times):8.1f} ms")
    print(f"RATIO calculator / Keras reference = {ours_ms / reference_ms:.2f} "
          f"(target < 1; calculator target < {TARGET_MS:.0f} ms: {'met' if ours_ms < TARGET_MS else 'NOT met'})")


if __name__ == "__main__":
    main()
