"""How long the convolution lab's core work takes after a kernel change, on a 256x256 image.

After a kernel edit the page recomputes (everything else is a cache hit): the kernel check and
normalisation, the output-size formula, the feature map (+ ReLU), the step-through window and its
padded input, and the pooled map. This script times exactly that work with the page's own
functions, and compares it with a reference measured in the same run on the same image:
`scipy.signal.correlate2d` with the same kernel (once per channel for RGB).

It also times building and serialising the page's plotly figures (what `st.plotly_chart` sends),
reported separately because it is rendering, not arithmetic.

Run: `python bench/convolution_speed.py` from the project root. The target is < 100 ms of core
compute per rerun.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import plotly.io
import scipy.signal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnnviz import convolution as conv  # noqa: E402
from cnnviz.figures import convolution as figures  # noqa: E402

SIDE = 256
REPEATS = 15
TARGET_MS = 100.0


def rerun_core(image: np.ndarray, raw_kernel: np.ndarray, *, stride: int, padding, normalise: bool) -> dict:
    """The page's per-rerun arithmetic after a kernel change (see app_pages/convolution.py)."""
    kernel = conv.validate_kernel(raw_kernel)
    if normalise:
        kernel = conv.normalise_kernel(kernel)
    size = kernel.shape[0]
    out_h = conv.output_size(image.shape[0], size, stride, padding)
    out_w = conv.output_size(image.shape[1], size, stride, padding)
    output = conv.relu(conv.apply_kernel(image, kernel, stride=stride, padding=padding))
    explained = (conv.explain_output_size(image.shape[0], size, stride, padding),
                 conv.explain_output_size(image.shape[1], size, stride, padding))
    summary = (output.min(), output.max(), output.mean())
    plane = image if image.ndim == 2 else image[:, :, 0]
    detail = conv.window_detail(plane, kernel, out_h // 2, out_w // 2, stride=stride, padding=padding)
    padded, _ = conv.pad_image(plane, kernel.shape[:2], stride, padding)
    pooled = conv.pool(output, 2, stride=2, kind="max")
    return {"kernel": kernel, "output": output, "detail": detail, "padded": padded, "pooled": pooled,
            "explained": explained, "summary": summary, "equation": detail.equation()}


def page_figures(image: np.ndarray, result: dict) -> list[str]:
    """Build and serialise the figures a kernel change redraws."""
    output = result["output"]
    detail = result["detail"]
    built = [
        figures.image_figure(image, title="Input"),
        figures.kernel_figure(result["kernel"]),
        figures.signed_map_figure(output if output.ndim == 2 else output[:, :, 0], title="Output"),
        # The step-through shows a 40x40 zoom around the window, as the page does.
        figures.image_figure(result["padded"][:40, :40, 0], title="Padded",
                             window=(detail.top, detail.left, detail.bottom, detail.right)),
        figures.signed_map_figure((output if output.ndim == 2 else output[:, :, 0])[:40, :40], title="Step",
                                  highlight=(detail.row, detail.col)),
        figures.window_figure(detail.window, detail.kernel, detail.products),
        figures.signed_map_figure(result["pooled"] if result["pooled"].ndim == 2 else result["pooled"][:, :, 0],
                                  title="Pooled"),
    ]
    return [plotly.io.to_json(figure, validate=False) for figure in built]


def reference(image: np.ndarray, kernel: np.ndarray) -> list[np.ndarray]:
    planes = [image] if image.ndim == 2 else [image[:, :, c] for c in range(image.shape[2])]
    return [scipy.signal.correlate2d(plane, kernel, mode="valid") for plane in planes]


def median_ms(function, repeats: int = REPEATS) -> float:
    function()  # Warm-up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def page_rerun_ms(repeats: int = 5) -> float:
    """Wall time of the whole page script rerun after a preset change, in AppTest, on a 256x256
    synthetic image (includes figures, caching and Streamlit's own overhead)."""
    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parent.parent / "app_pages" / "convolution.py")
    at = AppTest.from_file(page, default_timeout=120)
    for key, value in {"conv_quiz": False, "conv_source": "Synthetic", "conv_synthetic": "circle",
                       "conv_synthetic_size": 256}.items():
        at.session_state[key] = value
    at.run()
    presets = ["Sobel x", "sharpen", "Gaussian blur", "emboss", "Laplacian edge", "outline"]
    at.selectbox(key="conv_preset").set_value(presets[-1]).run()  # Warm-up.
    times = []
    for preset in presets[:repeats]:
        start = time.perf_counter()
        at.selectbox(key="conv_preset").set_value(preset).run()
        times.append((time.perf_counter() - start) * 1000)
        if at.exception:
            raise RuntimeError(at.exception[0].message)
    return statistics.median(times)


def main() -> int:
    rng = np.random.default_rng(0)
    gray, rgb = rng.random((SIDE, SIDE)), rng.random((SIDE, SIDE, 3))
    # (description, image, kernel, stride, padding, normalise)
    cases = [
        ("gray, 3x3 Laplacian, stride 1, valid", gray, conv.make_kernel("Laplacian edge", 3), 1, "valid", False),
        ("gray, 7x7 random, stride 1, same", gray, conv.make_kernel("random (seeded)", 7), 1, "same", True),
        ("RGB per channel, 3x3 Sobel x, stride 2, pad 1", rgb, conv.make_kernel("Sobel x", 3), 2, 1, False),
        ("RGB per channel, 7x7 random, stride 1, valid", rgb, conv.make_kernel("random (seeded)", 7), 1, "valid", True),
    ]
    print(f"Convolution lab: one rerun after a kernel change, {SIDE}x{SIDE} image, median of {REPEATS}")
    print(f"{'case':48s} {'core ms':>8s} {'scipy ms':>9s} {'ratio':>6s} {'figures ms':>11s}")
    worst = 0.0
    for name, image, kernel, stride, padding, normalise in cases:
        core = median_ms(lambda: rerun_core(image, kernel, stride=stride, padding=padding, normalise=normalise))
        scipy_ms = median_ms(lambda: reference(image, kernel))
        result = rerun_core(image, kernel, stride=stride, padding=padding, normalise=normalise)
        figure_ms = median_ms(lambda: page_figures(image, result), repeats=5)
        worst = max(worst, core)
        print(f"{name:48s} {core:8.1f} {scipy_ms:9.1f} {core / scipy_ms:6.2f} {figure_ms:11.1f}")
    print(f"whole page rerun in AppTest after a preset change (256x256 circle, gray): {page_rerun_ms():.0f} ms "
          "(includes figures and Streamlit overhead; not part of the target)")
    verdict = "OK" if worst < TARGET_MS else "TOO SLOW"
    print(f"worst core compute {worst:.1f} ms (target < {TARGET_MS:.0f} ms): {verdict}")
    print("ratio = core work of one rerun / scipy.signal.correlate2d of the same kernel on the same image")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
