"""Time to 87.7% test accuracy on Fashion-MNIST: the seeds' plain Keras code against cnnviz's engine.

Both train the seeds' ReLU CNN (Conv 8@3x3 ReLU, MaxPool 2, Flatten, Dense 28 ReLU,
Dense 10 softmax; 38,254 parameters) on the same in-memory arrays, in the same process:

1. plain Keras exactly as the seeds: `model.fit`, batch 32, Adam with its default learning rate,
   categorical cross-entropy on one-hot labels, up to 10 epochs, validation on the test set;
2. `cnnviz.training.train` with its default `fast=True` engine and the settings below.

Test accuracy is measured at every epoch end (the validation both runs do); the clock runs from
the call that builds and trains the model until the epoch end where the test accuracy first
reaches the target, validation included. Printed: seconds to target, images/s (training images
per wall-clock second), and the ratio plain / engine. Each run stops once it has reached the
target (`--full` trains every epoch).

Data: `$CNNVIZ_DATA_DIR` if set, else `../shared/data` next to the project (the four IDX files).
Usage: python bench/train_speed.py [--quick] [--full] [--target 0.877] [--repeat N]
"""

from __future__ import annotations

import argparse
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
# the target is reached, often after the first epoch already). Batch 32 in one such epoch also gets
# there (0.88+ for seeds 0-2) but loses more to other processes on a busy 2-core machine.
ENGINE_SETTINGS = dict(optimizer="adam", learning_rate=5e-3, batch_size=64, epochs=2, fast=True)
SEED = 0


def load_fashion_mnist(limit_train: int | None, limit_test: int | None):
    shared = PROJECT_ROOT.parent / "shared" / "data"
    if not os.environ.get("CNNVIZ_DATA_DIR") and (shared / "fashion-mnist").is_dir():
        os.environ["CNNVIZ_DATA_DIR"] = str(shared)
    from cnnviz import data

    dataset = data.load("fashion_mnist", limit_train=limit_train, limit_test=limit_test, seed=SEED)
    return dataset


def plain_keras(dataset, *, epochs: int, target: float, full: bool) -> dict:
    """The seeds' code: Sequential CNN, model.fit with batch 32, Adam, categorical cross-entropy."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(SEED)
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


def engine(dataset, *, target: float, full: bool, epochs: int) -> dict:
    from cnnviz import training

    config = training.TrainConfig(dataset="fashion_mnist", layers=training.SEEDS_RELU_CNN, seed=SEED,
                                  **{**ENGINE_SETTINGS, "epochs": epochs})
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
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of (plain, engine); with more than one the median ratio is printed too")
    args = parser.parse_args()
    limit_train, limit_test = (6000, 2000) if args.quick else (None, None)
    target = args.target if args.target is not None else (0.80 if args.quick else 0.877)
    plain_epochs = 5 if args.quick else 10
    engine_epochs = 3 if args.quick else ENGINE_SETTINGS["epochs"]

    import tensorflow as tf

    dataset = load_fashion_mnist(limit_train, limit_test)
    print(f"Fashion-MNIST from {dataset.source}: {len(dataset.x_train):,} training / {len(dataset.x_test):,} "
          f"test images; TensorFlow {tf.__version__}; {os.cpu_count()} CPU(s); "
          f"load average before: {os.getloadavg()[0]:.2f}")
    # Warm TensorFlow up once (kernels, thread pools) so neither run pays the process's first-use cost.
    plain_keras(_small(dataset), epochs=1, target=2.0, full=True)

    ratios = []
    for round_index in range(args.repeat):
        if args.repeat > 1:
            print(f"--- round {round_index + 1} of {args.repeat}")
        plain = plain_keras(dataset, epochs=plain_epochs, target=target, full=args.full)
        fast = engine(dataset, target=target, full=args.full, epochs=engine_epochs)
        if round_index == 0:
            print(f"Engine settings: {ENGINE_SETTINGS | {'epochs': engine_epochs}} (model: {fast['params']:,} "
                  f"parameters, plain: {plain['params']:,})")
        ratios.append(compare(plain, fast, target))
    if args.repeat > 1:
        finite = sorted(r for r in ratios if r is not None)
        if finite:
            print(f"RATIO median of {len(finite)} rounds (plain / engine): {statistics.median(finite):.2f}x "
                  f"(all: {', '.join(f'{r:.2f}x' for r in ratios if r is not None)})")
    print(f"load average after: {os.getloadavg()[0]:.2f} (2 cores; above ~2 means other work shared the CPU)")


def compare(plain: dict, fast: dict, target: float) -> float | None:
    """Print both runs and their ratios; return the time-to-target ratio (None if not measurable)."""
    plain_seconds = report("plain Keras (seeds' code)", plain, target)
    engine_seconds = report("cnnviz engine", fast, target)
    plain_rate = plain["images"] / plain["marks"][-1][0]
    engine_rate = fast["images"] / fast["marks"][-1][0]
    print(f"images/s ratio (engine / plain): {engine_rate / plain_rate:.2f}x")
    if engine_seconds is None:
        print("RATIO: engine did not reach the target")
        return None
    if plain_seconds is None:
        bound = plain["marks"][-1][0] / engine_seconds
        print(f"RATIO time-to-{target:.1%} (plain / engine): > {bound:.2f}x "
              f"(plain Keras did not reach it in {len(plain['marks'])} epochs)")
        return None
    ratio = plain_seconds / engine_seconds
    print(f"RATIO time-to-{target:.1%} (plain / engine): {ratio:.2f}x")
    return ratio


def _small(dataset):
    from types import SimpleNamespace

    return SimpleNamespace(x_train=dataset.x_train[:256], y_train=dataset.y_train[:256],
                           x_test=dataset.x_test[:256], y_test=dataset.y_test[:256])


if __name__ == "__main__":
    main()
