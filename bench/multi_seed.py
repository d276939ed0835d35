"""Five seeds trained together against one seed alone and five seeds one after another.

For the two seed models of the LeNet vs ReLU page at the page's defaults (its `ComparisonSettings()`:
the same training images, updates, batch and test set as the page), each measured `--repeats`
times in this one process, interleaved, with the median reported:

- one:        `cnnviz.training.train(config)` for seed 0;
- sequential: `train` for seeds 0-4, one after another (what `train_seeds` did before);
- together:   `train_seeds(config, seeds 0-4)`: one vectorised model (`cnnviz.training.seed_stack`).

Every call is a whole run as a page makes it (data subset, model set-up, tracing, training, the
per-epoch test), without the disk cache. The issue's target is together/one <= 2. The machine may
be shared: only the ratios within one run mean much, and the 1-minute load average is printed.
The last line is `RATIO together/one: X` for the ReLU CNN.

Usage: python bench/multi_seed.py [--repeats 3] [--seeds 5] [--models "ReLU CNN,LeNet"]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from measure import timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def page_configs():
    """{name: TrainConfig (seed 0)} of the page's two seed models at its default settings."""
    from cnnviz.lessons import lenet_vs_relu as page

    settings = page.ComparisonSettings()
    return {"ReLU CNN": page.variant_config(page.RELU_CNN, settings),
            "LeNet": page.variant_config(page.LENET, settings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", default="ReLU CNN,LeNet", help="comma-separated: ReLU CNN, LeNet")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.models.split(",")]

    from cnnviz import training

    seeds = list(range(args.seeds))
    ratios = {}
    for name, config in page_configs().items():
        if name not in chosen:
            continue
        runs = {
            "one": lambda: training.train(config, use_cache=False),
            "sequential": lambda: [training.train(config.replace(seed=s), use_cache=False) for s in seeds],
            "together": lambda: training.train_seeds(config, seeds, use_cache=False),
        }
        runs["one"]()  # warm-up: TensorFlow's first-use costs and the dataset in memory
        times: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(args.repeats):
            for key, run in runs.items():
                times[key].append(timed(run)[0])
        median = {key: statistics.median(values) for key, values in times.items()}
        print(f"\n{name}: {config.limit_train} training images, {config.epochs} epochs, batch {config.batch_size}, "
              f"{config.optimizer} lr {config.learning_rate:g}, {config.limit_test} test images; "
              f"median of {args.repeats}; load average {os.getloadavg()[0]:.1f}")
        print("  all times (s):", {key: [round(v, 2) for v in values] for key, values in times.items()})
        for key, value in median.items():
            print(f"  {key:11s} {value:7.2f} s   {value / median['one']:5.2f}x one seed")
        ratios[name] = median["together"] / median["one"]
        print(f"  {name} {len(seeds)} seeds: together/one {ratios[name]:.2f}, sequential/one "
              f"{median['sequential'] / median['one']:.2f}, together is {median['sequential'] / median['together']:.2f}x "
              "faster than one after another")
    if "LeNet" in ratios:
        print(f"\nRATIO together/one (LeNet): {ratios['LeNet']:.2f}")
    if "ReLU CNN" in ratios:
        print(f"RATIO together/one: {ratios['ReLU CNN']:.2f}")


if __name__ == "__main__":
    main()
