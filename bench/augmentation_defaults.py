"""Wall-clock time of the augmentation page's default work, against a reference measured in the same run.

Timed: the default overfitting comparison (four variants of the small CNN on 1,000 Fashion-MNIST
images, 15 epochs each, 3 seeds per variant through `train_seeds`) from an empty training cache, as a student pressing "Train the
variants" first would see it, then once more from the disk cache (a revisit); one augmentation
preview (16 versions of a 28x28 image and of a 128x128 colour upload); and the exact dropout and
batch-norm demos. The reference is one epoch of the engine's default network (the seeds' ReLU CNN)
on 10,000 images, so the RATIO column reads the same whatever the load of the shared machine.
The 1-minute load average before and after is printed too.

Usage: python bench/augmentation_defaults.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from measure import timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BUDGET_SECONDS = 120.0  # What the page's default comparison (4 variants x 3 seeds) should stay under on 2 cores.


def main() -> None:
    os.environ["CNNVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnviz-bench-augmentation-")
    import numpy as np

    from cnnviz import data, training
    from cnnviz.lessons import augmentation
    from cnnviz.training import augmenter

    dataset = data.load("fashion_mnist")
    print(f"data: {dataset.source} ({len(dataset.x_train):,} training images); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    # Warm up TensorFlow (import, first graph) so that no run below pays for it.
    training.train(training.TrainConfig(limit_train=256, limit_test=64, epochs=1), use_cache=False)
    reference, _ = timed(lambda: training.train(
        training.TrainConfig(limit_train=10_000, limit_test=2_000, epochs=1), use_cache=False))

    rows = []
    variants = augmentation.overfitting_variants("fashion_mnist")
    seeds = augmentation.DEFAULT_SEEDS
    total = 0.0
    measured = []
    for variant in variants:
        seconds, m = timed(lambda: augmentation.train_variant_seeds(variant, seeds))
        total += seconds
        measured.append(m)
        rows.append((f"variant: {variant.title} x {len(seeds)} seeds", seconds,
                     f"test {m.accuracy_spread.mean:.3f} gap {m.gap_spread.mean:+.3f} "
                     f"(per seed {' '.join(f'{g:+.3f}' for g in m.gaps)})"))
    rows.append((f"all variants x {len(seeds)} seeds (empty cache)", total, f"budget {BUDGET_SECONDS:.0f} s"))
    again, _ = timed(lambda: [training.load_cached(v.config.replace(seed=s)) for v in variants for s in seeds])
    rows.append(("all again (disk cache)", again, ""))

    spec = augmenter.spec_from_settings(flip_horizontal=True, rotation_degrees=10, zoom_percent=10,
                                           translation_percent=10, contrast=0.2)
    augmenter.augmented_grid(dataset.x_test[0], spec, seed=0)  # First call builds the graph.
    seconds, _ = timed(lambda: augmenter.augmented_grid(dataset.x_test[0], spec, seed=1))
    rows.append(("preview: 16 x 28x28 grey", seconds, ""))
    photo = np.random.default_rng(0).integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    seconds, _ = timed(lambda: augmenter.augmented_grid(photo, spec, seed=1))
    rows.append(("preview: 16 x 128x128 colour", seconds, ""))
    seconds, _ = timed(lambda: augmentation.dropout_demo(augmentation.example_activations(10), 0.5, seed=0))
    rows.append(("dropout demo (10,000 draws)", seconds, ""))
    seconds, _ = timed(lambda: augmentation.batchnorm_demo(augmentation.example_batches(50, 16), momentum=0.9))
    rows.append(("batch-norm demo (50 steps)", seconds, ""))

    print(f"reference: one epoch of the ReLU CNN on 10,000 images = {reference:.2f} s")
    print(f"{'run':36s} {'seconds':>8s} {'RATIO':>7s}  result")
    for name, seconds, note in rows:
        print(f"{name:36s} {seconds:8.2f} {seconds / reference:7.2f}  {note}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for verdict in augmentation.regularisation_verdicts(measured):
        print(f"[{verdict.factor}] {verdict.kind}: {verdict.text}")
    print("within budget" if total <= BUDGET_SECONDS else "OVER BUDGET", f"({total:.1f} s of {BUDGET_SECONDS:.0f} s)")


if __name__ == "__main__":
    main()
