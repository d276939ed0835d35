"""Five seeds trained together against one seed alone and five seeds one after another.

For every model of the LeNet vs ReLU page's default comparison (`ComparisonSettings()`: the same
training images, updates, batch and test set as the page), measured `--repeats` times in this one
process, interleaved, with the median reported:

- one:        `cnnviz.training.train(config)` for seed 0;
- sequential: `train` for seeds 0-4, one after another (what `train_seeds` did before);
- together:   `train_seeds(config, seeds 0-4)`: one vectorised model (`cnnviz.training.seed_stack`);
- floor:      `train` for seed 0 with S times the batch and S times the training images (the same
              number of updates): the training arithmetic of S seeds done by ONE ordinary network
              with one big batch (no stacking, no per-seed layout work). It scores the test split
              once where `together` scores it S times. It is not a proven lower bound (a bigger
              batch is not always faster per image on a CPU), but when floor/one is above 2, even
              this form of the arithmetic misses the issue's 2x. Needs `limit_train` set (the
              page's default); S times it must fit in the training split.

Every call is a whole run as a page makes it (data subset, model set-up, tracing, training, the
per-epoch test), without the disk cache. The issue's target is together/one <= 2 for 5 seeds. The
machine may be shared: only the ratios within one run mean much; the 1-minute load average is printed.

Each model's own ratio is printed; the last line, `RATIO together/one: X`, is for the whole
experiment: the six models' times added up (what a lecture waits for: 5 seeds of every model
against one seed of every model); the FLOOR line before it adds up the floors the same way.

Usage: python bench/multi_seed.py [--repeats 3] [--seeds 5] [--models relu_cnn,lenet,...]
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


def page_configs(keys: list[str] | None) -> dict:
    """{variant key: TrainConfig (seed 0)} of the page's default comparison."""
    from cnnviz.lessons import lenet_vs_relu as page

    return page.comparison_configs(page.ComparisonSettings(), keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", default=None, help="comma-separated variant keys (default: all six)")
    args = parser.parse_args()
    keys = [key.strip() for key in args.models.split(",")] if args.models else None

    from cnnviz import training

    seeds = list(range(args.seeds))
    configs = page_configs(keys)
    first = next(iter(configs.values()))
    training.train(first, use_cache=False)  # warm-up: TensorFlow's first-use costs and the dataset in memory
    modes = ("one", "sequential", "together", "floor")
    times: dict[str, dict[str, list[float]]] = {key: {mode: [] for mode in modes} for key in configs}
    for _ in range(args.repeats):
        for key, config in configs.items():
            runs = {
                "one": lambda: training.train(config, use_cache=False),
                "sequential": lambda: [training.train(config.replace(seed=s), use_cache=False) for s in seeds],
                "together": lambda: training.train_seeds(config, seeds, use_cache=False),
                "floor": lambda: training.train(config.replace(batch_size=config.batch_size * len(seeds),
                                                               limit_train=(config.limit_train or 0) * len(seeds)),
                                                use_cache=False),
            }
            for mode, run in runs.items():
                times[key][mode].append(timed(run)[0])
    print(f"\n{len(seeds)} seeds; {first.limit_train} training images, {first.limit_test} test images; "
          f"median of {args.repeats}; load average {os.getloadavg()[0]:.1f}")
    totals = {mode: 0.0 for mode in modes}
    for key, config in configs.items():
        median = {mode: statistics.median(values) for mode, values in times[key].items()}
        for mode in totals:
            totals[mode] += median[mode]
        print(f"  {key:17s} {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
              f"{config.learning_rate:g}: one {median['one']:6.2f} s, sequential {median['sequential']:6.2f} s, "
              f"together {median['together']:6.2f} s, floor {median['floor']:6.2f} s; together/one "
              f"{median['together'] / median['one']:.2f}, sequential/one {median['sequential'] / median['one']:.2f}, "
              f"floor/one {median['floor'] / median['one']:.2f}")
        print("      all times (s):", {mode: [round(v, 2) for v in values] for mode, values in times[key].items()})
    print(f"  all models: one {totals['one']:.1f} s, sequential {totals['sequential']:.1f} s, "
          f"together {totals['together']:.1f} s; together is {totals['sequential'] / totals['together']:.2f}x "
          "faster than one after another")
    print(f"  floor (the {len(seeds)} seeds' training arithmetic in one network, batch x{len(seeds)}, one test): "
          f"{totals['floor']:.1f} s; FLOOR/one {totals['floor'] / totals['one']:.2f}")
    print(f"RATIO together/one: {totals['together'] / totals['one']:.2f}")


if __name__ == "__main__":
    main()
