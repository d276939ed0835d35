"""Image folders (cnnviz.data.folders): user folders and zips of class subfolders, and CIFAR-10 as class folders."""

from __future__ import annotations

import io
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dataset_files import save_image, solid_image, write_cifar_folders
from PIL import Image

from cnnviz import data
from cnnviz.data import folders

pytestmark = pytest.mark.usefixtures("isolated")


# ---------------------------------------------------------------------------------------------
# CIFAR-10 as class folders, decoded once into the disk cache.
# ---------------------------------------------------------------------------------------------


def test_cifar_class_folders_are_decoded_once_then_read_from_the_disk_cache(tmp_path, monkeypatch):
    root = tmp_path / "data" / "cifar10"
    write_cifar_folders(root)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "data"))
    decodes = []
    original = folders._decode_all
    monkeypatch.setattr(folders, "_decode_all", lambda *args: decodes.append(1) or original(*args))

    first = data.load("cifar10")
    assert first.source == "local" and "class folders" in first.note
    assert first.x_train.shape == (20, 32, 32, 3) and first.x_test.shape == (10, 32, 32, 3)
    # Class folders map to the canonical labels; PNG is lossless, so the grey values are exact.
    np.testing.assert_array_equal(first.y_train, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(first.x_train[:, 0, 0, 0], 20 * np.repeat(np.arange(10), 2)
                                  + np.tile([0, 1], 10))
    assert len(decodes) == 2  # One call per split.

    data.clear_caches()  # Forget the arrays in memory: the second load must come from disk.
    second = data.load("cifar10")
    assert len(decodes) == 2
    np.testing.assert_array_equal(second.x_train, first.x_train)
    np.testing.assert_array_equal(second.y_test, first.y_test)

    # A new image changes the fingerprint, so the folders are decoded again.
    save_image(solid_image((5, 5, 5)), root / "train" / "cat" / "9999.png")
    data.clear_caches()
    third = data.load("cifar10")
    assert len(decodes) == 4 and len(third.x_train) == 21


def test_cifar_class_folders_need_every_class(tmp_path, monkeypatch):
    root = tmp_path / "cifar10"
    write_cifar_folders(root)
    for file in (root / "test" / "frog").iterdir():
        file.unlink()
    (root / "test" / "frog").rmdir()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DatasetFormatError, match="missing: frog"):
        data.load("cifar10")


# ---------------------------------------------------------------------------------------------
# load_image_folder: folders and zips of class subfolders, as a Dataset.
# ---------------------------------------------------------------------------------------------

CLASSES = {"horses": 12, "humans": 10, "zebras": 11}


def write_class_tree(root: Path, classes=CLASSES, *, split: dict[str, int] | None = None) -> dict[int, int]:
    """Solid-colour images, each of its own grey value, in mixed formats; returns grey value -> label.

    With `split` (class -> images), that many of each class go into test/<class>/ and the rest into
    train/<class>/. Every folder also holds a file that is not an image and one broken "image".
    """
    truth = {}
    value = 3
    for label, (name, count) in enumerate(classes.items()):
        for index in range(count):
            if split is None:
                folder = root / name
            else:
                folder = root / ("test" if index < split[name] else "train") / name
            fmt, suffix, mode = [("PNG", "png", "L"), ("PNG", "png", "RGB"), ("BMP", "bmp", "RGB"),
                                 ("PNG", "png", "RGBA")][index % 4]
            colour = value if mode == "L" else (value,) * (3 if mode == "RGB" else 4)
            if mode == "RGBA":
                colour = (value, value, value, 255)
            save_image(solid_image(colour, size=(20 + index, 14), mode=mode), folder / f"{index:03d}.{suffix}", fmt=fmt)
            truth[value] = label
            value += 7
        (folder / "broken.jpg").write_bytes(b"this is not a jpeg")  # Beside the last image of the class.
        (folder / "notes.txt").write_text("not an image")
        (folder / ".DS_Store").write_bytes(b"\0\1")
    return truth


def _zip_tree(root: Path, *, top: str | None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                name = path.relative_to(root).as_posix()
                archive.write(path, f"{top}/{name}" if top else name)
        archive.writestr("__MACOSX/horse-or-human/horses/._a.png", b"resource fork junk")
    return buffer.getvalue()


def check_dataset(dataset: data.Dataset, truth: dict[int, int], *, size=(16, 16), channels=3) -> None:
    """Every readable image once, in one split, with its own folder's label, at the asked shape."""
    assert isinstance(dataset, data.Dataset) and dataset.class_names == tuple(CLASSES)
    assert dataset.x_train.shape[1:] == (*size, channels) and dataset.x_train.dtype == np.uint8
    x = np.concatenate([dataset.x_train, dataset.x_test])
    y = np.concatenate([dataset.y_train, dataset.y_test])
    greys = x[:, size[0] // 2, size[1] // 2, 0].astype(int)
    assert sorted(greys.tolist()) == sorted(truth)  # Each image exactly once.
    assert [truth[g] for g in greys] == y.tolist()  # With its folder's label.
    assert np.all(x == x[:, :1, :1, :1])  # Solid images stay solid in every channel (RGBA lost its alpha).
    report = dataset.report
    assert report.class_names == dataset.class_names
    assert np.add(report.train_counts, report.test_counts).tolist() == list(CLASSES.values())
    reasons = dict(report.skipped)
    assert {name.split("/")[-1] for name in reasons} == {"broken.jpg", "notes.txt"}
    assert set(reasons.values()) == {"not a readable image", "not an image file (.txt)"}
    assert report.skipped_count == 2 * len(CLASSES)
    assert dataset.source == "class folders" and report.what in dataset.note


def test_a_folder_becomes_a_dataset_with_a_stratified_seeded_split(tmp_path):
    truth = write_class_tree(tmp_path / "tree")
    dataset = data.load_image_folder(tmp_path / "tree", image_size=16, validation_fraction=0.25, seed=3)
    check_dataset(dataset, truth)
    # round(25 % of 12, 10, 11) test images per class; the rest train.
    assert dataset.report.test_counts == (3, 2, 3) and dataset.report.train_counts == (9, 8, 8)
    assert "25%" in dataset.report.split and "seed 3" in dataset.report.split
    again = data.load_image_folder(tmp_path / "tree", image_size=16, validation_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again.x_test, dataset.x_test)
    other = data.load_image_folder(tmp_path / "tree", image_size=16, validation_fraction=0.25, seed=4)
    assert other.name != dataset.name and not np.array_equal(np.sort(other.x_test[:, 0, 0, 0]),
                                                           np.sort(dataset.x_test[:, 0, 0, 0]))


@pytest.mark.parametrize("top", [None, "horse-or-human"])
def test_a_zip_as_path_bytes_or_file_object_is_the_same_dataset(tmp_path, top):
    truth = write_class_tree(tmp_path / "tree")
    raw = _zip_tree(tmp_path / "tree", top=top)
    (tmp_path / "upload.zip").write_bytes(raw)
    from_path = data.load_image_folder(tmp_path / "upload.zip", image_size=16)
    check_dataset(from_path, truth)
    assert from_path.report.what == "upload.zip"
    from_bytes = data.load_image_folder(raw, image_size=16)
    upload = io.BytesIO(raw)
    upload.name = "my photos.zip"  # Like Streamlit's UploadedFile.
    from_file = data.load_image_folder(upload, image_size=16)
    assert from_path.name == from_bytes.name == from_file.name  # Named by the content, not the file name.
    assert "my photos.zip" in from_file.note
    np.testing.assert_array_equal(from_file.x_train, from_path.x_train)


def test_train_and_test_folders_are_honoured(tmp_path):
    truth = write_class_tree(tmp_path / "tree", split={"horses": 2, "humans": 3, "zebras": 4})
    dataset = data.load_image_folder(_zip_tree(tmp_path / "tree", top="data"), image_size=16, seed=1)
    assert dataset.report.test_counts == (2, 3, 4) and "train/ and test/" in dataset.report.split
    # The test images are exactly those of the test folders (the first images of each class).
    test_greys = sorted(dataset.x_test[:, 0, 0, 0].tolist())
    first = [value for value, label in truth.items()
             if list(truth).index(value) - list(truth.values()).index(label) < (2, 3, 4)[label]]
    assert test_greys == sorted(first)


def test_options_and_content_give_the_name(tmp_path):
    write_class_tree(tmp_path / "tree")
    raw = _zip_tree(tmp_path / "tree", top=None)
    base = data.load_image_folder(raw, image_size=16)
    assert base.name.startswith("images-") and data.load_image_folder(raw, image_size=16).name == base.name
    grey = data.load_image_folder(raw, image_size=(16, 20), color_mode="grayscale")
    assert grey.x_train.shape[1:] == (16, 20, 1)
    names = {base.name, grey.name, data.load_image_folder(raw, image_size=17).name,
             data.load_image_folder(raw, image_size=16, validation_fraction=0.3).name,
             data.load_image_folder(raw, image_size=16, seed=1).name}
    save_image(solid_image(250, size=(8, 8), mode="L"), tmp_path / "tree" / "humans" / "new.png")
    names.add(data.load_image_folder(_zip_tree(tmp_path / "tree", top=None), image_size=16).name)
    assert len(names) == 6


def test_the_dataset_is_known_by_name_and_read_back_without_decoding(tmp_path, monkeypatch):
    truth = write_class_tree(tmp_path / "tree")
    raw = _zip_tree(tmp_path / "tree", top=None)
    dataset = data.load_image_folder(raw, image_size=16, color_mode="grayscale")
    spec = data.spec(dataset.name)
    assert spec.class_names == tuple(CLASSES) and spec.image_shape == (16, 16, 1) and spec.class_folders
    assert dataset.name not in data.DATASETS
    assert data.source_status(dataset.name).source == "class folders"
    decodes = []
    original = folders._decode_all
    monkeypatch.setattr(folders, "_decode_all", lambda *args: decodes.append(1) or original(*args))
    data.clear_caches()
    loaded = data.load(dataset.name)
    check_dataset(loaded, truth, channels=1)
    np.testing.assert_array_equal(loaded.x_test, dataset.x_test)
    assert len(data.load(dataset.name, limit_train=6, seed=0).x_train) == 6
    again = data.load_image_folder(raw, image_size=16, color_mode="grayscale")  # A re-upload.
    assert again.name == dataset.name and decodes == []
    np.testing.assert_array_equal(again.x_train, dataset.x_train)
    shutil.rmtree(data.cache_dir() / "datasets" / dataset.name)  # The server's cache was cleared.
    with pytest.raises(data.DatasetUnavailable, match="upload the zip"):
        data.load(dataset.name)
    assert data.source_status(dataset.name).source is None


def test_image_folder_errors_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetFormatError, match="no class subfolders"):
        data.load_image_folder(tmp_path / "empty", image_size=32)
    for index in range(12):
        save_image(solid_image((1, 2, 3)), tmp_path / "one" / "cats" / f"{index}.png")
    with pytest.raises(data.DatasetFormatError, match="only one class folder"):
        data.load_image_folder(tmp_path / "one", image_size=32)
    save_image(solid_image((1, 2, 3)), tmp_path / "flat" / "a.png")
    with pytest.raises(data.DatasetFormatError, match="no class subfolders"):
        data.load_image_folder(tmp_path / "flat", image_size=32)
    with pytest.raises(data.DatasetFormatError, match="does not exist"):
        data.load_image_folder(tmp_path / "missing", image_size=32)
    for bad_size in (0, (32,), "32", 5000, (32, True)):
        with pytest.raises(ValueError, match="image_size"):
            data.load_image_folder(tmp_path / "one", image_size=bad_size)
    with pytest.raises(ValueError, match="color_mode"):
        data.load_image_folder(tmp_path / "one", image_size=8, color_mode="rgba")
    for fraction in (0, 1, 1.5, True):
        with pytest.raises(ValueError, match="validation_fraction"):
            data.load_image_folder(tmp_path / "one", image_size=8, validation_fraction=fraction)


def test_a_class_whose_images_are_unreadable_is_named(tmp_path):
    tree = tmp_path / "tree"
    for name in ("ants", "bees"):
        for index in range(12):
            save_image(solid_image((1, 2, 3)), tree / name / f"{index}.png")
    for index in range(5):
        (tree / "bees" / f"{index}.png").write_bytes(b"garbage")
    with pytest.raises(data.DatasetFormatError, match="'bees' .* has only 7 readable images"):
        data.load_image_folder(tree, image_size=8)


def test_decompression_bombs_are_skipped_not_decoded(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    for name in ("small", "small2"):
        for index in range(10):
            save_image(solid_image((9, 9, 9), size=(8, 8)), tree / name / f"{index}.png")
    save_image(solid_image((9, 9, 9), size=(300, 300)), tree / "small2" / "big.png")
    # cnnviz's own limit refuses the big image after reading only its header.
    monkeypatch.setattr(folders, "MAX_SOURCE_PIXELS", 10_000)
    dataset = data.load_image_folder(tree, image_size=8)
    assert dataset.report.skipped == (("small2/big.png", "300×300 pixels, more than the 0-megapixel limit"),)
    # Pillow's own guard (DecompressionBombError above twice MAX_IMAGE_PIXELS) is caught too.
    monkeypatch.setattr(folders, "MAX_SOURCE_PIXELS", 10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    dataset = data.load_image_folder(tree, image_size=9)
    assert dataset.report.skipped_count == 1 and dataset.report.images == 20


def test_archives_that_would_need_too_much_memory_are_refused(tmp_path, monkeypatch):
    write_class_tree(tmp_path / "tree")
    monkeypatch.setattr(folders, "MAX_FOLDER_ARRAY_BYTES", 1000)
    with pytest.raises(data.DatasetFormatError, match="smaller image size"):
        data.load_image_folder(tmp_path / "tree", image_size=64)
    monkeypatch.setattr(folders, "MAX_ARCHIVE_MEMBERS", 3)
    with pytest.raises(data.DatasetFormatError, match="at most 3"):
        data.load_image_folder(_zip_tree(tmp_path / "tree", top=None), image_size=8)


def test_decoding_holds_the_images_at_most_twice(tmp_path):
    """The decoded images and the two splits: no third copy (np.take's buffered `out` was one)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        png = io.BytesIO()
        solid_image((90, 30, 60), size=(8, 8)).save(png, format="PNG")
        for index in range(400):
            archive.writestr(f"{'ab'[index % 2]}/{index}.png", png.getvalue())
    raw = buffer.getvalue()
    tracemalloc.start()
    try:
        dataset = data.load_image_folder(raw, image_size=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    arrays = dataset.x_train.nbytes + dataset.x_test.nbytes
    assert arrays == 400 * 64 * 64 * 3 and peak < 2.3 * arrays, (peak, arrays)
