"""Wall-clock time of the transfer page's three default runs, against a reference run measured here.

Each default run (pre-training; retraining with the convolutions frozen; the whole strategy
comparison) is timed from an empty training cache, as a student pressing the button first would
see it, and then once more from the cache (a revisit). The reference is one epoch of the engine's
default network (the seeds' ReLU CNN) on 10,000 images, so the RATIO column says how the page's
runs compare with that, whatever the load of the machine. The 1-minute load average before and
after is printed too: the machine may be shared.

Usage: python bench/transfer_defaults.py [--full]   (--full: every image, minutes)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="use every image (the page's 'all' options)")
    args = parser.parse_args()
    os.environ["CNNVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnviz-bench-transfer-")

    from cnnviz import data, training
    from cnnviz.lessons import transfer

    dataset = data.load("fashion_mnist")
    print(f"data: {dataset.source} ({len(dataset.x_train):,} training images); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    settings = transfer.ExperimentSettings()
    if args.full:
        settings = transfer.ExperimentSettings(pretrain_per_class=None, test_per_class=None,
                                               transfer_per_class=None)
    split = transfer.make_split(transfer.DEFAULT_PRETRAIN_CLASSES, transfer.DEFAULT_TRANSFER_CLASSES,
                                dataset.class_names)
    counts = [int((dataset.y_train == c).sum()) for c in split.transfer]
    sizes = (transfer.size_ladder(min(counts) * 3, 3) if args.full
             else transfer.default_sizes(len(split.transfer), min(counts)))

    # Warm up TensorFlow (import, first graph) so that no run below pays for it.
    training.train(training.TrainConfig(limit_train=256, limit_test=64, epochs=1), use_cache=False)
    reference, _ = timed(lambda: training.train(
        training.TrainConfig(limit_train=10_000, limit_test=2_000, epochs=1), use_cache=False))

    depth = transfer.conv_block_depth(transfer.bottleneck_stack((28, 28, 1), 3))
    pretrain = transfer.pretrain_config(split, settings)
    retrain = transfer.transfer_config(split, settings, freeze_layers=depth)
    rows = []
    seconds, result = timed(lambda: training.train(pretrain))
    rows.append(("pre-train (7 classes)", seconds, f"{result.test_accuracy:.3f}"))
    seconds, result = timed(lambda: training.train(retrain))
    rows.append(("retrain, convs frozen", seconds, f"{result.test_accuracy:.3f}"))
    seconds, comparison = timed(lambda: transfer.compare_strategies(split, settings, sizes))
    rows.append((f"compare 3 strategies x {len(sizes)} sizes", seconds,
                 " ".join(f"{s}:" + "/".join(f"{comparison.accuracy[k][i]:.2f}" for k in transfer.STRATEGIES)
                          for i, s in enumerate(sizes))))
    seconds, _ = timed(lambda: transfer.compare_strategies(split, settings, sizes))
    rows.append(("compare again (from the cache)", seconds, ""))

    print(f"reference: one epoch of the ReLU CNN on 10,000 images = {reference:.2f} s")
    print(f"{'run':36s} {'seconds':>8s} {'RATIO':>7s}  accuracy (frozen/fine-tune/scratch per size)")
    for name, seconds, accuracy in rows:
        print(f"{name:36s} {seconds:8.2f} {seconds / reference:7.2f}  {accuracy}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    reading = transfer.relate_to_cases(comparison, transfer.judge_similarity(split, data.spec("fashion_mnist").class_families).verdict)
    for sentence in reading.summary:
        print("  " + sentence.replace("**", ""))


if __name__ == "__main__":
    main()
