"""Time to 87.7% test accuracy on Fashion-MNIST: the seeds' plain Keras code against cnnviz's engine,
as the median over several seeds (default 0, 1, 2), and the equal-batch images/s ratio.

Both train the seeds' ReLU CNN (Conv 8@3x3 ReLU, MaxPool 2, Flatten, Dense 28 ReLU,
Dense 10 softmax; 38,254 parameters) on the same in-memory arrays, in the same process:

1. plain Keras exactly as the seeds: `model.fit`, batch 32, Adam with its default learning rate (1e-3),
   categorical cross-entropy on one-hot labels, up to `--plain-epochs` epochs, validation on the test set;
2. `cnnviz.training.train` with its default `fast=True` engine and a different recipe: batch 64, Adam
   peaking at 5e-3 after a linear warm-up, then a cosine decay over 2 epochs, several batches per
   compiled graph call. The time-to-target ratio therefore mixes two things, the recipe and the loop.
3. To separate them: one epoch of the engine at the seeds' batch size (batch 32, Adam peaking at 1e-3;
   images/s do not depend on the learning rate) against the seeds' `model.fit` epochs (median of the
   seeds); their images/s ratio is the loop's share alone.

Test accuracy is measured at every epoch end (the validation both runs do); the clock runs from
the call that builds and trains the model until the epoch end where the test accuracy first
reaches the target, validation included. Printed: seconds to target, images/s (training images
per wall-clock second) per seed; then the median seconds to target of each side over the seeds (a seed
that misses the target counts as the slowest), their ratio plain / engine, and the equal-batch
images/s ratio. Each run stops once it has reached the target (`--full` trains every epoch).

Data: `$CNNVIZ_DATA_DIR` if set, else `../shared/data` next to the project (the four IDX files).
Usage: python bench/train_speed.py [--quick] [--full] [--target 0.877] [--seeds 0,1,2] [--plain-epochs 6]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The engine's settings for this benchmark: batch 64, Adam peaking at 5e-3 after a linear warm-up over
# the first fifth of the run, then a cosine decay to the end of epoch 2 (the run stops as soon as
# the target is reached, often after the first epoch already).
ENGINE_SETTINGS = dict(optimizer="adam", learning_rate=5e-3, batch_size=64, epochs=2, fast=True)
# The seeds' recipe, run by the engine for the equal-batch images/s comparison (one epoch; the images/s
# do not depend on the learning rate).
EQUAL_BATCH_SETTINGS = dict(optimizer="adam", learning_rate=1e-3, batch_size=32, epochs=1, fast=True)
RECIPE_DIFFERENCE = ("seeds' code: model.fit, batch 32, Adam 1e-3 constant; engine: batch 64, Adam 5e-3 "
                     "with linear warm-up + cosine decay over 2 epochs, compiled multi-step loop")
DATA_SEED = 0


def load_fashion_mnist(limit_train: int | None, limit_test: int | None):
    shared = PROJECT_ROOT.parent / "shared" / "data"
    if not os.environ.get("CNNVIZ_DATA_DIR") and (shared / "fashion-mnist").is_dir():
        os.environ["CNNVIZ_DATA_DIR"] = str(shared)
    from cnnviz import data

    dataset = data.load("fashion_mnist", limit_train=limit_train, limit_test=limit_test, seed=DATA_SEED)
    return dataset


def plain_keras(dataset, *, epochs: int, target: float, full: bool, seed: int = 0) -> dict:
    """The seeds' code: Sequential CNN, model.fit with batch 32, Adam, categorical cross-entropy."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    x_train = dataset.x_train.astype("float32") / 255.0
    x_test = dataset.x_test.astype("float32") / 255.0
    y_train = keras.utils.to_categorical(dataset.y_train, 10)
    y_test = keras.utils.to_categorical(dataset.y_test, 10)
    marks: list[tuple[float, float]] = []

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks.append((time.perf_counter() - start, float(logs["val_accuracy"])))
            if not full and marks[-1][1] >= target:
                self.model.stop_training = True

    start = time.perf_counter()
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(8, (3, 3), strides=(1, 1), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2)),
        layers.Flatten(),
        layers.Dense(28, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, validation_data=(x_test, y_test), callbacks=[EpochClock()],
              verbose=0)
    return {"marks": marks, "images": len(x_train) * len(marks), "params": model.count_params()}


def engine(dataset, *, target: float, full: bool, epochs: int, seed: int = 0,
           settings: dict | None = None) -> dict:
    from cnnviz import training

    config = training.TrainConfig(dataset="fashion_mnist", layers=training.SEEDS_RELU_CNN, seed=seed,
                                  **{**(settings or ENGINE_SETTINGS), "epochs": epochs})
    marks: list[tuple[float, float]] = []

    def on_progress(progress):
        done = progress.history_so_far["val_accuracy"]
        if progress.phase == "train" and len(done) > len(marks):
            marks.append((time.perf_counter() - start, done[-1]))
            if not full and done[-1] >= target:
                return False
        return True

    start = time.perf_counter()
    result = training.train(config, on_progress, data=dataset, use_cache=False)
    return {"marks": marks, "images": len(dataset.x_train) * len(marks),
            "params": result.model.count_params(), "config": config}


def seconds_to(marks: list[tuple[float, float]], target: float) -> float | None:
    return next((seconds for seconds, accuracy in marks if accuracy >= target), None)


def report(name: str, run: dict, target: float) -> float | None:
    marks = run["marks"]
    reached = seconds_to(marks, target)
    total = marks[-1][0] if marks else float("nan")
    rate = run["images"] / total if marks else float("nan")
    per_epoch = " ".join(f"{acc:.4f}@{sec:.1f}s" for sec, acc in marks)
    when = f"{reached:.1f} s" if reached is not None else f"not reached in {len(marks)} epochs ({total:.1f} s)"
    print(f"{name:<28} to {target:.1%}: {when:<34} images/s: {rate:,.0f}")
    print(f"{'':<28} test accuracy per epoch: {per_epoch}")
    return reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 6,000 training / 2,000 test images, target 0.80, 5 plain / 3 engine epochs at most")
    parser.add_argument("--full", action="store_true", help="train every epoch instead of stopping at the target")
    parser.add_argument("--target", type=float, default=None, help="test accuracy to reach (default 0.877)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (at least 3 for a median)")
    parser.add_argument("--plain-epochs", type=int, default=None,
                        help="epochs cap of the seeds' code (default 6; 5 with --quick)")
    args = parser.parse_args()
    seeds = [int(part) for part in args.seeds.split(",") if part.strip()]
    limit_train, limit_test = (6000, 2000) if args.quick else (None, None)
    target = args.target if args.target is not None else (0.80 if args.quick else 0.877)
    plain_epochs = args.plain_epochs or (5 if args.quick else 6)
    engine_epochs = 3 if args.quick else int(str(ENGINE_SETTINGS["epochs"]))

    import tensorflow as tf

    dataset = load_fashion_mnist(limit_train, limit_test)
    print(f"Fashion-MNIST from {dataset.source}: {len(dataset.x_train):,} training / {len(dataset.x_test):,} "
          f"test images; TensorFlow {tf.__version__}; {os.cpu_count()} CPU(s); "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"Recipe difference: {RECIPE_DIFFERENCE}")
    # Warm TensorFlow up once (kernels, thread pools) so neither run pays the process's first-use cost.
    plain_keras(_small(dataset), epochs=1, target=2.0, full=True)

    plain_times: list[float | None] = []
    engine_times: list[float | None] = []
    plain_rates: list[float] = []
    for seed in seeds:
        print(f"--- seed {seed}")
        plain = plain_keras(dataset, epochs=plain_epochs, target=target, full=args.full, seed=seed)
        fast = engine(dataset, target=target, full=args.full, epochs=engine_epochs, seed=seed)
        plain_times.append(report("plain Keras (seeds' code)", plain, target))
        engine_times.append(report("cnnviz engine", fast, target))
        plain_rates.append(_rate(plain))
    # Equal batch: the engine's loop with the seeds' batch size, one epoch, against model.fit's images/s.
    equal = engine(dataset, target=2.0, full=True, epochs=1, seed=seeds[0], settings=EQUAL_BATCH_SETTINGS)
    equal_rate = _rate(equal)
    plain_rate = statistics.median(plain_rates)

    print("=== summary")
    print(f"Recipe difference: {RECIPE_DIFFERENCE}")
    plain_median = _median_line("plain Keras (seeds' code)", plain_times, target, plain_epochs)
    engine_median = _median_line("cnnviz engine", engine_times, target, engine_epochs)
    if plain_median is not None and engine_median is not None:
        print(f"RATIO median time-to-{target:.1%} (plain / engine, recipe + loop): "
              f"{plain_median / engine_median:.2f}x")
    print(f"images/s at batch 32: engine {equal_rate:,.0f}, model.fit {plain_rate:,.0f} (median of seeds)")
    print(f"RATIO equal-batch images/s (engine / model.fit, loop only): {equal_rate / plain_rate:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f} (2 cores; above ~2 means other work shared the CPU)")


def _rate(run: dict) -> float:
    return run["images"] / run["marks"][-1][0] if run["marks"] else float("nan")


def _median_line(name: str, times: list[float | None], target: float, epochs: int) -> float | None:
    """Print the median seconds to target over the seeds (a seed that missed counts as slowest)."""
    reached = [t for t in times if t is not None]
    shown = ", ".join(f"{t:.1f}" if t is not None else f"missed in {epochs} epochs" for t in times)
    if len(reached) * 2 <= len(times):
        print(f"{name:<28} median to {target:.1%}: not reached by most seeds ({shown})")
        return None
    ordered = sorted(times, key=lambda t: math.inf if t is None else t)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else None
    if median is None:
        low, high = ordered[len(ordered) // 2 - 1], ordered[len(ordered) // 2]
        median = (low + high) / 2 if low is not None and high is not None else None
    if median is None:
        print(f"{name:<28} median to {target:.1%}: not measurable ({shown})")
        return None
    print(f"{name:<28} median to {target:.1%}: {median:.1f} s over {len(times)} seeds (s: {shown})")
    return median


def _small(dataset):
    from types import SimpleNamespace

    return SimpleNamespace(x_train=dataset.x_train[:256], y_train=dataset.y_train[:256],
                           x_test=dataset.x_test[:256], y_test=dataset.y_test[:256])


if __name__ == "__main__":
    main()
