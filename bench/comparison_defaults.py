"""Wall-clock time of the LeNet vs ReLU page's default comparison, against a reference measured here.

The default comparison trains six models (the two seed models and four LeNet variants), each with
the default seeds (3) and the same number of weight updates, on the page's default subset through
`lenet_vs_relu.run_comparison` (`train_seeds`), from an empty training cache, as the first student
to press Run would wait for it. The budget is 45 s on 2 idle CPU cores. It is timed once more from the
disk cache (a revisit after a server restart; a revisit in the same server is instant, from memory).
The reference is one epoch of the engine's default network (the seeds' ReLU CNN, fast mode) on
10,000 images, so the RATIO column compares the page with that whatever the machine's load. The
1-minute load average before and after is printed too: the machine may be shared.

Usage: python bench/comparison_defaults.py [--full]   (--full: every image and 10 epochs, minutes)
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

BUDGET_SECONDS = 45.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every image and 10 epochs, as in the seeds")
    args = parser.parse_args()
    os.environ["CNNVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnviz-bench-comparison-")

    load_before = os.getloadavg()[0]
    import_seconds, _ = timed(lambda: __import__("tensorflow"))
    from cnnviz import data, training
    from cnnviz.lessons import lenet_vs_relu

    data.load("fashion_mnist")  # Read the files once, outside every timing below.
    settings = (lenet_vs_relu.ComparisonSettings.as_in_the_seeds() if args.full
                else lenet_vs_relu.ComparisonSettings())
    configs = lenet_vs_relu.comparison_configs(settings)
    seed_configs = [c for config in configs.values() for c in training.seed_configs(config, settings.seeds)]

    reference_config = training.TrainConfig(limit_train=10_000, limit_test=2_000, epochs=1)
    reference_seconds, _ = timed(lambda: training.train(reference_config, use_cache=False))

    per_model: dict[str, float] = {}
    results = {}
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for key in configs:
        seconds, runs = timed(lambda key=key: lenet_vs_relu.run_comparison(settings, [key]))
        per_model[key] = seconds
        results.update(runs)
    comparison_seconds = time.perf_counter() - start
    comparison_cpu = cpu_seconds() - cpu_start
    revisit_seconds, _ = timed(lambda: [training.load_cached(config) for config in seed_configs])
    load_after = os.getloadavg()[0]

    report = lenet_vs_relu.experiment_report(settings, results)
    print(f"settings: {settings}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; cores: {os.cpu_count()}")
    print(f"import tensorflow: {import_seconds:.1f} s (paid once per server, by whichever page trains first)")
    print(f"reference (1 epoch, ReLU CNN, 10,000 images, fast): {reference_seconds:.2f} s")
    for item in report.variants:
        key = str(item.extra["key"])
        print(f"  {item.name:<20} {per_model[key]:6.2f} s for {len(item.seeds)} seeds x {item.updates} updates  "
              f"(RATIO to reference {per_model[key] / reference_seconds:.1f})")
    print(f"default comparison, six models x {len(settings.seeds)} seeds, empty cache: {comparison_seconds:.1f} s "
          f"(RATIO to reference {comparison_seconds / reference_seconds:.1f}; "
          f"{comparison_seconds / BUDGET_SECONDS:.0%} of the {BUDGET_SECONDS:.0f} s budget)")
    print(f"CPU time of the comparison: {comparison_cpu:.1f} s over all threads (on an otherwise idle 2-core "
          f"machine the wall-clock time lies between {comparison_cpu / 2:.1f} s and {comparison_cpu:.1f} s)")
    print(f"revisit from the disk cache: {revisit_seconds:.1f} s "
          f"(RATIO to reference {revisit_seconds / reference_seconds:.2f})")
    print()
    print(report.table_text())


if __name__ == "__main__":
    main()
