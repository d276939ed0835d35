"""The resource budget of a training run, checked before anything is built or trained.

The calculator may count any stack (`summarize` never allocates anything), but a Keras model is
only built (`build_keras_model`) and a run only starts (`TrainConfig.validate`, the engine) when
it fits this server's budget:

* memory: a run needs about ``params × STATE_COPIES[optimizer] × 4 bytes`` for the weights,
  their gradients, the optimizer's state and the working copies of an update, plus the larger
  of a training batch (``activations per image × batch × ACTIVATION_COPIES × 4 bytes``: the
  layer outputs kept for the backward pass, their gradients and temporaries) and a forward
  pass over an evaluation batch (`EVAL_BATCH` images), plus the images the run holds
  (`DATA_BYTES_PER_PIXEL`), plus `FIXED_BYTES` for TensorFlow's compiled step. The estimate
  uses the rows of `summarize` (no second shape calculator); its parameter count is Keras'
  `count_params()`. The limit is `memory_budget_bytes()`: `DEFAULT_MEMORY_MB` unless the
  environment variable `MEMORY_ENV` says otherwise;
* the whole process: a run comes on top of `BASELINE_BYTES`, what the app's process holds before
  any run (Python, Streamlit, TensorFlow and Keras imported). `Estimate.process_bytes` is the peak
  memory of a fresh server that trains this one run; with the default limit it is at most
  ``BASELINE_BYTES + DEFAULT_MEMORY_MB`` = 1,400 MB, under the 1.5 GB (`PROCESS_LIMIT_BYTES`)
  one run may take of a 2.7 GB Community Cloud server shared by a class. Two runs at once (the
  default `CNNVIZ_MAX_TRAINING_JOBS`) share the baseline;
* run length: ``epochs × steps per epoch`` weight updates, at most `MAX_TRAINING_STEPS`, so
  that no run holds a training slot for hours.

Where a fast run's memory goes (all of CIFAR-10, the page's CNN, one epoch, a fresh process, peak
resident memory, `VmHWM`): 565 MB Python with TensorFlow and Keras; 176 MB the uint8 images, once
(the disk cache's memory-mapped copy, which the training tensors share:
`cnnviz.training.inputs.image_tensor`); then the training step and the evaluation batches. The
engine used to convert the images with ``tf.constant`` (two copies while converting, one kept),
to scale the whole test split to float32 although the fast loop never read it, and to evaluate
2,048 images at a time: that run peaked at 1,522 MB at batch 128. Now (measured / estimated for
the whole process, on a loaded machine): batch 128 994 / 998 MB; batch 991 1,326 / 1,470 MB;
Conv2D 96 at batch 374, stopped after a few updates, 1,254 / 1,469 MB; two Dense 2048 layers
(10.5 M parameters) at batch 2,588, stopped, 1,079 / 1,471 MB. Measured earlier, for the run
alone: the seeds' plain `model.fit` at batch 32 on all of Fashion-MNIST 575 / 600 MB (now 670
with the re-measured `FIXED_BYTES`) and on all of CIFAR-10 1,882 / 1,815 MB.

Every refusal is a `BudgetError` (a `SettingsError`) whose message says, in numbers a student
can check, what the run would need, what the limit is and what to change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnviz import settings
from cnnviz.architecture.stack import BYTES_PER_NUMBER, LayerRow, summarize, totals
from cnnviz.errors import BudgetError

MEMORY_ENV = "CNNVIZ_TRAINING_MEMORY_MB"
DEFAULT_MEMORY_MB = 800
SERVER_TEXT = "a 2.7 GB server shared by the whole class"
MAX_TRAINING_STEPS = 25_000  # Weight updates per run (the seeds' settings make 18,750: 10 epochs of 1,875).

# Copies of every parameter a training step holds: the weights, their gradients and two working
# copies (the update, the saved model), plus the optimizer's slots (Adam: two moments; RMSprop:
# one mean square; plain SGD: none). Measured: 20 M parameters with Adam add 547 MB (27 bytes each).
STATE_COPIES = {"sgd": 4, "rmsprop": 5, "adam": 6}
# Copies of every activation a training step holds: the forward outputs kept for the backward
# pass, their gradients, and the temporaries of an activation function or a pooling.
ACTIVATION_COPIES = 3
# Every forward-only pass over many images (the fast engine's test, `TrainResult.predict`, the pages'
# predictions, feature spaces and activations) runs in batches of at most this many images. TensorFlow's
# oneDNN convolutions keep buffers sized by the largest batch they have seen, for the life of the
# process (issue 15: < 1 GB): measured 2026-12-02, the augmentation page's clean-train accuracy of
# its 4 variants (1,000 images each) left 307 MB of such buffers with batches of 1,024, 83 MB with
# 256 and 49 MB with 128. The price is speed: 10,000 test images through the tanh LeNet took 209 ms
# in batches of 256 against 170 ms in batches of 512 (the ReLU CNN 136 against 122 ms, the CIFAR-10
# CNN 490 against 450 ms; medians of 3, one idle run). Later (TensorFlow's tensors from malloc, freed
# pages trimmed when the server is quiet; 3 runs each, one of the 256 runs with --attribute), the whole
# app after the default tour (bench/memory.py): 929, 945 and 980 MB steady with 128 (peak 1,107-1,130)
# against 947, 954 and 1,002 MB with 256 (peak 1,132-1,196). The tour's LeNet vs ReLU run took
# 17.1-18.4 s against 17.2-19.4 s, its augmentation run 32.1-35.7 s against 33.7-36.5 s. The price:
# 10,000 images through a model called eagerly piece by piece took 501 against 409 ms (tanh LeNet) and
# 331 against 257 ms (ReLU CNN; medians of 5, one run). Seeds trained together score the test split
# in pieces of `seed_stack.eval_chunk` images, at most this many.
EVAL_BATCH = 128
# Bytes per pixel of the images a run holds. The fast engine: the uint8 training and test images
# once (resident pages of the memory-mapped disk cache, or of a subset), which its tensors share
# (`cnnviz.training.inputs.image_tensor`). Plain `model.fit` (fast=False) also scales both splits
# to float32 and Keras copies them into its own tensors (measured: 10 and 9). Seeds trained together
# (`cnnviz.training.seed_stack`, seeds > 1) still convert their images with ``tf.constant``: the
# array and the two copies it makes while converting (3).
DATA_BYTES_PER_PIXEL = {"train": 1, "test": 1, "train_plain_fit": 10, "test_plain_fit": 9,
                        "train_seeds": 3, "test_seeds": 3}
# TensorFlow's compiled training step, its buffers and the metrics (re-measured with the images
# counted once: the page's CIFAR-10 CNN at batch 128 on all the data peaks 150 MB above its parts).
FIXED_BYTES = 150 * 1024 * 1024
# What the app's process holds before any run: Python, Streamlit, TensorFlow and Keras imported
# (measured: 565 MB for Python with TensorFlow and Keras, 597 MB with Streamlit and the app's modules).
BASELINE_BYTES = 600 * 1024 * 1024
# The peak memory a fresh server training one run may reach (issue 14: 1.5 GB, read strictly as
# 1.5 × 10⁹ bytes = 1,431 MB): every run the default limit allows stays under it
# (`BASELINE_BYTES + DEFAULT_MEMORY_MB` = 1,400 MB).
PROCESS_LIMIT_BYTES = 1_500_000_000


@dataclass(frozen=True)
class Estimate:
    """What one training run of a stack needs, in numbers and bytes (float32)."""

    params: int  # As Keras counts them (`model.count_params()`).
    activations_per_image: int  # Every layer's output for one image, plus the input.
    batch_size: int
    optimizer: str
    parameter_bytes: int  # Weights, gradients, the optimizer's state and working copies.
    activation_bytes: int  # One training batch, forward and backward.
    evaluation_bytes: int  # A forward pass over one evaluation batch (its two largest neighbours).
    data_bytes: int  # The images the run holds while training (`DATA_BYTES_PER_PIXEL`).
    fixed_bytes: int  # TensorFlow's compiled step and buffers.
    largest: str  # The layer that needs the most memory, e.g. "dense (Dense 1,000,000)".

    @property
    def activations_per_batch(self) -> int:
        return self.activations_per_image * self.batch_size

    @property
    def total_bytes(self) -> int:
        # A training step and an evaluation pass do not overlap: the larger of the two counts.
        return (self.parameter_bytes + max(self.activation_bytes, self.evaluation_bytes) + self.data_bytes
                + self.fixed_bytes)

    @property
    def process_bytes(self) -> int:
        """The peak memory of a fresh server process that trains this one run: `BASELINE_BYTES` more."""
        return BASELINE_BYTES + self.total_bytes


def memory_budget_bytes() -> int:
    """The memory one training run may use: `MEMORY_ENV` megabytes (read and checked by
    `cnnviz.settings`, the one place that reads the environment), or `DEFAULT_MEMORY_MB`.

    An invalid value is refused loudly (`BudgetError`), never silently replaced by the default.
    """
    problem = settings.training_memory_problem()
    if problem:
        raise BudgetError(f"{problem} Ask the person who runs this server to fix it.")
    megabytes = settings.training_memory_mb()
    return (megabytes if megabytes is not None else DEFAULT_MEMORY_MB) * 1024 * 1024


def size_text(count: float) -> str:
    """Bytes as a student reads them: "512 MB", "12.7 GB"."""
    megabytes = count / (1024 * 1024)
    if megabytes >= 1024:
        return f"{megabytes / 1024:,.1f} GB"
    return f"{megabytes:,.0f} MB" if megabytes >= 10 else f"{megabytes:,.1f} MB"


def estimate(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]] | Sequence[LayerRow], *,
             batch_size: int = 1, optimizer: str = "sgd", train_images: int = 0, test_images: int = 0,
             fast: bool = True, seeds: int = 1) -> Estimate:
    """The memory a training run of this stack needs (see the module docstring).

    `layers` is a stack or its `summarize` rows. `train_images` and `test_images` add the copies
    of the data the engine makes (`DATA_BYTES_PER_PIXEL`). `seeds` models trained together
    (`cnnviz.training.seed_stack`) multiply the parameters and activations. Raises
    `ArchitectureError` for an impossible stack, as `summarize` does.
    """
    rows = _rows(input_shape, layers)
    total = totals(rows)
    batch = max(1, int(batch_size))
    together = max(1, int(seeds))
    copies = STATE_COPIES.get(str(optimizer).lower(), max(STATE_COPIES.values()))
    input_values = math.prod(rows[0].input_shape) if rows else 0
    sizes = [input_values] + [row.activation_size for row in rows]
    # Forward only: each layer reads its input and writes its output, so two neighbours are alive.
    widest_pair = max(a + b for a, b in zip(sizes, sizes[1:])) if len(sizes) > 1 else input_values
    eval_batch = min(EVAL_BATCH if fast else batch, max(1, int(test_images))) if test_images else 0
    path = "_plain_fit" if not fast else "_seeds" if together > 1 else ""
    train_per_pixel, test_per_pixel = DATA_BYTES_PER_PIXEL["train" + path], DATA_BYTES_PER_PIXEL["test" + path]
    data = input_values * (int(train_images) * train_per_pixel + int(test_images) * test_per_pixel)
    return Estimate(
        params=total.params,
        activations_per_image=total.activation_values,
        batch_size=batch,
        optimizer=str(optimizer).lower(),
        parameter_bytes=total.params * copies * BYTES_PER_NUMBER * together,
        activation_bytes=total.activation_values * batch * ACTIVATION_COPIES * BYTES_PER_NUMBER * together,
        evaluation_bytes=widest_pair * eval_batch * BYTES_PER_NUMBER * together,
        data_bytes=data,
        fixed_bytes=FIXED_BYTES,
        largest=_largest(rows, batch, copies),
    )


def memory_problem(estimate_: Estimate, *, limit: int | None = None) -> str | None:
    """Why a run of this size cannot train on this server, or None when it fits."""
    limit = memory_budget_bytes() if limit is None else limit
    if estimate_.total_bytes <= limit:
        return None
    batch = estimate_.batch_size
    parts = [f"weights, gradients and the optimizer's state {size_text(estimate_.parameter_bytes)}"]
    if estimate_.evaluation_bytes > estimate_.activation_bytes:
        parts.append(f"evaluating the test images in batches {size_text(estimate_.evaluation_bytes)}")
    else:
        parts.append(f"the activations of one training batch {size_text(estimate_.activation_bytes)}")
    if estimate_.data_bytes:
        parts.append(f"copies of the images {size_text(estimate_.data_bytes)}")
    parts.append(f"TensorFlow {size_text(estimate_.fixed_bytes)}")
    network = estimate_.parameter_bytes + max(estimate_.activation_bytes, estimate_.evaluation_bytes)
    if estimate_.data_bytes > network:
        headline = "This run needs more memory than this server allows"
        advice = ("The biggest part is the copies of the images: train on fewer images, or switch the fast "
                  "engine on (plain model.fit also keeps every image as 32-bit floats)")
    else:
        headline = "This network is too big to train on this server"
        advice = (f"The biggest part is layer {estimate_.largest}: use fewer units or filters, add pooling or "
                  "strides before the big layer" + (", or a smaller batch" if batch > 1 else "")
                  + ". (The calculator still counts any network.)")
    return (f"{headline}: {estimate_.params:,} parameters and "
            f"{estimate_.activations_per_batch:,} activation values per batch of {batch:,} image"
            f"{'s' if batch != 1 else ''} need about {size_text(estimate_.total_bytes)} of memory "
            f"({'; '.join(parts)}). One training run may use at most {size_text(limit)} on "
            f"{SERVER_TEXT}. {advice}" + ("" if advice.endswith(")") else "."))


def steps_problem(epochs: int, train_images: int, batch_size: int) -> str | None:
    """Why a run of `epochs` × ceil(train_images / batch_size) weight updates is too long, or None."""
    steps_per_epoch = math.ceil(max(1, int(train_images)) / max(1, int(batch_size)))
    steps = int(epochs) * steps_per_epoch
    if steps <= MAX_TRAINING_STEPS:
        return None
    largest_epochs = MAX_TRAINING_STEPS // steps_per_epoch
    smallest_batch = math.ceil(max(1, int(train_images)) * int(epochs) / MAX_TRAINING_STEPS)
    if largest_epochs >= 1:
        fix = (f"Train for at most {largest_epochs:,} epoch{'s' if largest_epochs != 1 else ''} at this batch "
               f"size, or use batches of at least {smallest_batch:,} images, or fewer training images.")
    else:
        fix = (f"Even one epoch is too long in batches of {int(batch_size):,}: use batches of at least "
               f"{smallest_batch:,} images for {int(epochs):,} epochs, or fewer epochs or training images.")
    return (f"This run is too long for a shared server: {int(epochs):,} epoch{'s' if int(epochs) != 1 else ''} × "
            f"{steps_per_epoch:,} batches ({int(train_images):,} images in batches of {int(batch_size):,}) = "
            f"{steps:,} weight updates; one run may make at most {MAX_TRAINING_STEPS:,}, so that no run holds a "
            f"training slot for hours. {fix}")


def check_model(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> list[LayerRow]:
    """The `summarize` rows of a stack small enough to build, or `BudgetError`.

    A model is refused when even its smallest training run (one image per batch, plain SGD, no
    data) would not fit: `build_keras_model` calls this before Keras allocates anything.
    """
    rows = summarize(input_shape, layers)
    problem = memory_problem(estimate(input_shape, rows))
    if problem:
        raise BudgetError(problem)
    return rows


def check_training(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]] | Sequence[LayerRow], *,
                   batch_size: int, optimizer: str, epochs: int, train_images: int | None = None,
                   test_images: int | None = None, fast: bool = True, seeds: int = 1) -> Estimate:
    """The estimate of a run that fits the budget (memory and run length), or `BudgetError`.

    `layers` is a stack or its `summarize` rows. Without `train_images` the run length is not checked (the engine checks it once the data is
    known) and the data is left out of the memory estimate.
    """
    measured = estimate(input_shape, layers, batch_size=batch_size, optimizer=optimizer,
                        train_images=train_images or 0, test_images=test_images or 0, fast=fast, seeds=seeds)
    problem = memory_problem(measured)
    if problem is None and train_images is not None:
        problem = steps_problem(epochs, train_images, batch_size)
    if problem:
        raise BudgetError(problem)
    return measured


def _rows(input_shape: Sequence[int], layers: Sequence[Any]) -> list[LayerRow]:
    if layers and all(isinstance(row, LayerRow) for row in layers):
        return list(layers)
    return summarize(input_shape, layers)


def _largest(rows: Sequence[LayerRow], batch: int, copies: int) -> str:
    """The row whose parameters and activations need the most memory, named for a student."""
    if not rows:
        return "none"
    row = max(rows, key=lambda r: r.params * copies + r.activation_size * batch * ACTIVATION_COPIES)
    return f"{row.index + 1}, {row.name} ({row.description})"
