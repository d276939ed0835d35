"""Speed of the explain page's views on the default model, after it is loaded, against a reference measured here.

The model is the page's default (the Train page's default run, `cnnviz.lessons.explain.default_config`,
read from the disk cache, trained first if absent). Each view is called once (the first call builds
its graph: printed apart), then `--repeats` more times on a Fashion-MNIST test image (28 x 28); the
median is printed, with the issue's target, and as a RATIO to the reference: the median time of one
forward pass of the same model over 256 test images (`TrainResult.predict`), measured in the same run,
so that the ratio holds whatever the machine's load. The 1-minute load average is printed too. Since
`budget.EVAL_BATCH` went from 256 to 128 (2026-12-02), `predict` makes that pass in two calls, so the
reference is slower and ratios printed before then are not comparable with later ones.

- Grad-CAM: `explain.grad_cam` at the last conv layer (target < 300 ms);
- saliency: `explain.saliency` (target < 300 ms);
- SmoothGrad: `explain.smooth_saliency` with the page's samples and noise (target < 300 ms);
- occlusion: `explain.occlusion`, the page's default 4 x 4 patch every 2 pixels (target < 1 s);
- features: `lessons.explain.feature_view` of the last conv layer: 8 gradient-ascent pictures
  and the test images that excite each filter most (target < 10 s).

Usage: python bench/explain_views.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS_MS = {"Grad-CAM": 300.0, "saliency": 300.0, "SmoothGrad": 300.0, "occlusion": 1000.0, "features": 10_000.0}


def median_ms(function, repeats: int) -> tuple[float, float]:
    """(first call's ms, median ms of `repeats` further calls)."""
    start = time.perf_counter()
    function()
    first = 1000 * (time.perf_counter() - start)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - start))
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from cnnviz import explain, training
    from cnnviz.lessons import explain as explain_lesson

    load_before = os.getloadavg()[0]
    result = training.train(explain_lesson.default_config())
    model = result.model
    images, labels = result.test_data()
    image, label = images[0], int(labels[0])
    layer = explain.conv_layer_names(model)[-1]
    batch = images[:256]

    def reference():
        return result.predict(batch)

    views = {
        "Grad-CAM": lambda: explain.grad_cam(model, image, label, layer),
        "saliency": lambda: explain.saliency(model, image, label),
        "SmoothGrad": lambda: explain.smooth_saliency(model, image, label, samples=explain_lesson.SMOOTH_SAMPLES,
                                                      noise=explain_lesson.SMOOTH_NOISE),
        "occlusion": lambda: explain.occlusion(model, image, label, patch=4, stride=2),
    }
    _, reference_ms = median_ms(reference, args.repeats)
    measured = {name: median_ms(view, args.repeats) for name, view in views.items()}
    # Feature visualisation takes seconds: fewer repeats.
    measured["features"] = median_ms(lambda: explain_lesson.feature_view(result, layer), max(1, args.repeats // 3))
    _, reference_after = median_ms(reference, args.repeats)
    load_after = os.getloadavg()[0]

    print(f"model: {result.config.key()[:8]} ({'from the disk cache' if result.from_cache else 'trained now'}), "
          f"last conv layer {layer}, {explain_lesson.FEATURE_FILTERS} filters")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; cores: {os.cpu_count()}")
    print(f"reference (forward pass, 256 test images): {reference_ms:.1f} ms median before the views, "
          f"{reference_after:.1f} ms after")
    for name, (first, median) in measured.items():
        target = TARGETS_MS[name]
        verdict = "meets" if median < target else "MISSES"
        print(f"  {name:<11} first call {first:8.1f} ms, median {median:8.1f} ms (RATIO to reference "
              f"{median / reference_ms:6.2f}); target < {target:,.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
