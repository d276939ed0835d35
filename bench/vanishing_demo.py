"""Wall-clock time of the explain page's default vanishing-gradients demonstration, against a reference measured here.

The default demonstration (`cnnviz.lessons.explain.VanishingSettings()`: four variants x 3 seeds,
gradient norms at initialisation, `train_seeds`, gradient norms after training) runs through
`run_vanishing_demo` from an empty training cache, as the first student to press Run would wait
for it (TensorFlow already imported: the page has loaded a model above). The budget is 60 s on 2
idle CPU cores. It is timed once more from the disk cache (what a prepared server shows: `python -m
cnnviz warmup` pre-trains it). The reference is one epoch of the engine's default network (the
seeds' ReLU CNN, fast mode) on 10,000 images, as in bench/comparison_defaults.py, so the RATIO
compares the demonstration with that whatever the machine's load. The 1-minute load average before
and after, and the CPU time over all threads, are printed too: the machine may be shared.

Usage: python bench/vanishing_demo.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from measure import cpu_seconds, timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BUDGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: the page's)")
    args = parser.parse_args()
    os.environ["CNNVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnviz-bench-vanishing-")

    load_before = os.getloadavg()[0]
    import_seconds, _ = timed(lambda: __import__("tensorflow"))
    from cnnviz import data, training
    from cnnviz.lessons import explain as explain_lesson

    data.load("fashion_mnist")  # Read the files once, outside every timing below.
    settings = explain_lesson.VanishingSettings(seeds=tuple(int(s) for s in args.seeds.split(",")))

    reference_config = training.TrainConfig(limit_train=10_000, limit_test=2_000, epochs=1)
    reference_seconds, _ = timed(lambda: training.train(reference_config, use_cache=False))

    per_variant: dict[str, float] = {}
    demo = explain_lesson.VanishingDemo(settings)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for kind in explain_lesson.DEPTH_VARIANTS:
        seconds, part = timed(lambda kind=kind: explain_lesson.run_vanishing_demo(settings, kinds=[kind]))
        per_variant[kind] = seconds
        demo.initial.update(part.initial)
        demo.runs.update(part.runs)
        demo.trained.update(part.trained)
    demo_seconds = time.perf_counter() - start
    demo_cpu = cpu_seconds() - cpu_start
    revisit_seconds, _ = timed(lambda: explain_lesson.run_vanishing_demo(settings))
    load_after = os.getloadavg()[0]

    print(f"settings: {settings} ({settings.updates} updates per seed and variant)")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; cores: {os.cpu_count()}")
    print(f"import tensorflow: {import_seconds:.1f} s (paid once per server, not counted)")
    print(f"reference (1 epoch, ReLU CNN, 10,000 images, fast): {reference_seconds:.2f} s")
    for kind, label in explain_lesson.DEPTH_VARIANTS.items():
        accuracies = ", ".join(f"{a:.1%}" for a in demo.accuracies(kind))
        print(f"  {label:<26} {per_variant[kind]:6.1f} s (RATIO {per_variant[kind] / reference_seconds:5.1f}); "
              f"test accuracy per seed {accuracies}")
    print(f"default demonstration, empty cache: {demo_seconds:.1f} s (RATIO to reference "
          f"{demo_seconds / reference_seconds:.1f}; {demo_seconds / BUDGET_SECONDS:.0%} of the "
          f"{BUDGET_SECONDS:.0f} s budget); page's estimate for 2 idle cores "
          f"{explain_lesson.estimated_seconds(settings):.0f} s")
    print(f"CPU time of the demonstration: {demo_cpu:.1f} s over all threads (on an otherwise idle 2-core "
          f"machine the wall-clock time lies between {demo_cpu / 2:.1f} s and {demo_cpu:.1f} s)")
    print(f"revisit from the disk cache (norms measured again): {revisit_seconds:.1f} s "
          f"(RATIO to reference {revisit_seconds / reference_seconds:.2f})")
    for verdict in demo.verdicts():
        print(f"  [{verdict.kind}] {verdict.text}")


if __name__ == "__main__":
    main()
