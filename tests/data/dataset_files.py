"""Writers for the dataset file formats, for the tests of `cnnviz.data`.

IDX files are written with `struct`, CIFAR batches with `pickle` in the original layout
(rows of 1,024 red, 1,024 green, 1,024 blue values), image folders with Pillow.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from cnnviz import data
from cnnviz.data import readers


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic (0, 0, 0x08, ndim), big-endian sizes, then the data."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 + array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_folder(folder: Path, *, n_train=40, n_test=20, gz=True, dotted=False, seed=0,
                     size=(28, 28)) -> tuple[np.ndarray, ...]:
    """Write the four IDX files of a Fashion-MNIST/MNIST folder; returns the arrays written."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, *size), dtype=np.uint8)
    y_train = (np.arange(n_train) % 10).astype(np.uint8)
    x_test = rng.integers(0, 256, (n_test, *size), dtype=np.uint8)
    y_test = (np.arange(n_test) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in (("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train),
                        ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test)):
        name = stem.replace("-idx", ".idx") if dotted else stem
        raw = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return x_train, y_train, x_test, y_test


def cifar_batch_bytes(images: np.ndarray, labels) -> bytes:
    """A CIFAR-10 python batch as the original files hold it (byte-string keys, channel planes)."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"testing batch", b"labels": [int(label) for label in labels],
             b"data": rows, b"filenames": [b"img_%d.png" % i for i in range(len(images))]}
    return pickle.dumps(batch, protocol=2)


def write_cifar_batches(folder: Path, *, per_batch=10, seed=0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for name in readers.CIFAR_TRAIN_BATCHES:
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch)
        (folder / name).write_bytes(cifar_batch_bytes(images, labels))
        train_x.append(images)
        train_y.append(labels)
    x_test = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
    y_test = np.arange(per_batch) % 10
    (folder / readers.CIFAR_TEST_BATCH).write_bytes(cifar_batch_bytes(x_test, y_test))
    return np.concatenate(train_x), np.concatenate(train_y), x_test, y_test


def solid_image(color, size=(32, 32), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def save_image(image: Image.Image, path: Path, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)


def write_cifar_folders(root: Path, *, train_per_class=2, test_per_class=1) -> None:
    """cifar10/{train,test}/<class>/NNNN.png, class k filled with the grey value 20 * k + i."""
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(data.spec("cifar10").class_names):
            for i in range(per_class):
                value = 20 * label + i
                save_image(solid_image((value, value, value)), root / split / name / f"{i:04d}.png")
