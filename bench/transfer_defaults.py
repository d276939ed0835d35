"""Wall-clock time of the transfer page's default runs, against a reference run measured here.

The budget: the default strategy comparison (3 seeds, pre-training of every seed included) runs
in at most 30 s on two idle CPU cores. The seeds of each run (the pre-training, every strategy at
every size) train together (`training.train_seeds`, each seed copying from its own pre-trained
network). It is timed from an empty training cache, as a student
pressing the button first would see it, and once more from the cache (a revisit); the single
pre-training (section 2) and the retraining with the convolutions frozen (section 4) are timed
without the cache. The reference is one epoch of the engine's default network (the seeds' ReLU
CNN) on 10,000 images, so the RATIO column says how the page's runs compare with that, whatever
the load of the machine; an idle estimate is RATIO x IDLE_REFERENCE_SECONDS. The 1-minute load
average before and after is printed too: the machine may be shared. The last lines are the
comparison's table and verdicts (`experiment_report`), as `python -m cnnviz experiment transfer`.

Usage: python bench/transfer_defaults.py [--seeds 0,1,2] [--full]   (--full: every image, minutes)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from measure import timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The reference run on two idle cores: the earlier idle measurement of the old default comparison
# (9.1 s) divided by its RATIO against this reference (8.35), measured in one run on 2026-12-01.
IDLE_REFERENCE_SECONDS = 1.09
BUDGET_SECONDS = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="use every image (the page's 'all' options)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    args = parser.parse_args()
    os.environ["CNNVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnviz-bench-transfer-")

    from cnnviz import data, training
    from cnnviz.lessons import transfer

    seeds = tuple(int(s) for s in args.seeds.split(","))
    dataset = data.load("fashion_mnist")
    print(f"data: {dataset.source} ({len(dataset.x_train):,} training images); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    settings = transfer.ExperimentSettings()
    if args.full:
        settings = transfer.ExperimentSettings(pretrain_per_class=None, test_per_class=None,
                                               transfer_per_class=None)
    split = transfer.default_split()
    capacity = transfer.transfer_capacity(dataset.y_train, split)
    sizes = (transfer.size_ladder(capacity * 3, 3) if args.full else transfer.default_sizes(len(split.transfer), capacity))

    # Warm up TensorFlow (import, first graph) so that no run below pays for it.
    training.train(training.TrainConfig(limit_train=256, limit_test=64, epochs=1), use_cache=False)
    reference, _ = timed(lambda: training.train(
        training.TrainConfig(limit_train=10_000, limit_test=2_000, epochs=1), use_cache=False))

    depth = transfer.conv_block_depth(transfer.bottleneck_stack((28, 28, 1), 3))
    rows = []
    seconds, comparison = timed(lambda: transfer.compare_strategies(split, settings, sizes, seeds=seeds))
    runs = len(sizes) * len(comparison.strategies)
    rows.append((f"compare {len(comparison.strategies)} strategies x {len(sizes)} sizes x {len(seeds)} seeds",
                 seconds, f"{runs} transfer runs + 1 pre-training, each with the {len(seeds)} seeds together, "
                          "from an empty cache"))
    seconds, _ = timed(lambda: transfer.compare_strategies(split, settings, sizes, seeds=seeds))
    rows.append(("compare again (from the cache)", seconds, ""))
    seconds, result = timed(lambda: training.train(transfer.pretrain_config(split, settings), use_cache=False))
    rows.append(("pre-train one seed (7 classes)", seconds, f"accuracy {result.test_accuracy:.3f}"))
    seconds, result = timed(lambda: training.train(transfer.transfer_config(split, settings, freeze_layers=depth),
                                                    use_cache=False))
    rows.append(("retrain, convs frozen", seconds, f"accuracy {result.test_accuracy:.3f}"))

    print(f"reference: one epoch of the ReLU CNN on 10,000 images = {reference:.2f} s "
          f"(idle estimate below: RATIO x {IDLE_REFERENCE_SECONDS} s)")
    print(f"{'run':44s} {'seconds':>8s} {'RATIO':>7s} {'idle est.':>9s}  note")
    for name, seconds, note in rows:
        print(f"{name:44s} {seconds:8.2f} {seconds / reference:7.2f} {seconds / reference * IDLE_REFERENCE_SECONDS:8.1f}s"
              f"  {note}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"budget pre-training {comparison.pretrain_updates} updates per seed; transfer runs "
          + ", ".join(f"{size} images: {comparison.updates[comparison.strategies[0]][i]} updates"
                      for i, size in enumerate(sizes)))
    print(transfer.experiment_report(comparison).table_text())
    estimate = rows[0][1] / reference * IDLE_REFERENCE_SECONDS
    print(f"DEFAULT COMPARISON idle estimate: {estimate:.1f} s (budget {BUDGET_SECONDS:g} s)")


if __name__ == "__main__":
    main()
