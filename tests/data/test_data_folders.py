"""Image folders (cnnviz.data.folders): user folders and zips of class subfolders, and CIFAR-10 as class folders."""

from __future__ import annotations

import io
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
# load_image_folder: folders and zips of class subfolders.
# ---------------------------------------------------------------------------------------------


def write_class_tree(root: Path) -> None:
    """horses/ (3 readable + 1 broken) and humans/ (2 readable), in mixed formats and modes."""
    save_image(solid_image((200, 10, 10), size=(40, 30)), root / "horses" / "a.png")
    save_image(solid_image((10, 200, 10), size=(64, 64)), root / "horses" / "b.jpg")
    save_image(solid_image(128, size=(20, 20), mode="L"), root / "horses" / "c.png")
    (root / "horses" / "broken.jpg").write_bytes(b"this is not a jpeg")
    save_image(solid_image((10, 10, 200, 128), size=(50, 20), mode="RGBA"), root / "humans" / "d.png")
    save_image(solid_image(90, size=(33, 33), mode="L"), root / "humans" / "e.jpeg", fmt="JPEG")
    (root / "humans" / "notes.txt").write_text("ignored: not an image")
    (root / "humans" / ".DS_Store").write_bytes(b"\0\1")


def check_class_tree(folder: data.ImageFolder, size=(24, 24)) -> None:
    assert folder.class_names == ("horses", "humans")
    assert folder.x.shape == (5, *size, 3) and folder.x.dtype == np.uint8
    np.testing.assert_array_equal(folder.y, [0, 0, 0, 1, 1])
    assert folder.skipped == 1 and folder.skipped_files[0].endswith("broken.jpg")
    np.testing.assert_array_equal(folder.x[0, 3, 3], [200, 10, 10])  # PNG, resized: colour kept.
    np.testing.assert_array_equal(folder.x[2, 5, 5], [128, 128, 128])  # Grayscale became RGB.
    np.testing.assert_array_equal(folder.x[3, 1, 1], [10, 10, 200])  # RGBA lost its alpha.
    assert np.abs(folder.x[1].astype(int) - [10, 200, 10]).max() <= 3  # JPEG is nearly exact.


def test_image_folder_reads_classes_resizes_to_rgb_and_skips_unreadable(tmp_path):
    write_class_tree(tmp_path / "tree")
    check_class_tree(data.load_image_folder(tmp_path / "tree", image_size=24))
    rectangular = data.load_image_folder(str(tmp_path / "tree"), image_size=(16, 30))
    assert rectangular.x.shape == (5, 16, 30, 3)


def _zip_tree(root: Path, *, top: str | None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                name = path.relative_to(root).as_posix()
                archive.write(path, f"{top}/{name}" if top else name)
        archive.writestr("__MACOSX/horse-or-human/horses/._a.png", b"resource fork junk")
    return buffer.getvalue()


@pytest.mark.parametrize("top", [None, "horse-or-human"])
def test_image_folder_reads_zips_as_path_bytes_or_file(tmp_path, top):
    write_class_tree(tmp_path / "tree")
    raw = _zip_tree(tmp_path / "tree", top=top)
    (tmp_path / "upload.zip").write_bytes(raw)
    check_class_tree(data.load_image_folder(tmp_path / "upload.zip", image_size=24))
    check_class_tree(data.load_image_folder(raw, image_size=24))
    check_class_tree(data.load_image_folder(io.BytesIO(raw), image_size=24))


def test_a_single_top_folder_in_a_directory_is_looked_through(tmp_path):
    write_class_tree(tmp_path / "outer" / "horse-or-human")
    check_class_tree(data.load_image_folder(tmp_path / "outer", image_size=24))


def test_image_folder_errors_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetFormatError, match="no class subfolders"):
        data.load_image_folder(tmp_path / "empty", image_size=32)
    save_image(solid_image((1, 2, 3)), tmp_path / "one" / "cats" / "a.png")
    save_image(solid_image((1, 2, 3)), tmp_path / "one" / "cats" / "b.png")
    with pytest.raises(data.DatasetFormatError, match="only one class folder"):
        data.load_image_folder(tmp_path / "one", image_size=32)
    save_image(solid_image((1, 2, 3)), tmp_path / "flat" / "a.png")
    with pytest.raises(data.DatasetFormatError, match="no class subfolders"):
        data.load_image_folder(tmp_path / "flat", image_size=32)
    with pytest.raises(data.DatasetFormatError, match="not a readable .zip"):
        data.load_image_folder(b"PK\x03\x04 truncated nonsense", image_size=32)
    with pytest.raises(data.DatasetFormatError, match="does not exist"):
        data.load_image_folder(tmp_path / "missing", image_size=32)
    for bad_size in (0, (32,), "32", 5000, (32, True)):
        with pytest.raises(ValueError, match="image_size"):
            data.load_image_folder(tmp_path / "one", image_size=bad_size)


def test_a_class_whose_images_are_all_unreadable_is_dropped(tmp_path):
    tree = tmp_path / "tree"
    for name in ("ants", "bees", "wasps"):
        save_image(solid_image((1, 2, 3)), tree / name / "ok.png")
    (tree / "bees" / "ok.png").write_bytes(b"garbage")
    folder = data.load_image_folder(tree, image_size=8)
    assert folder.class_names == ("ants", "wasps") and folder.skipped == 1
    np.testing.assert_array_equal(folder.y, [0, 1])
    (tree / "wasps" / "ok.png").write_bytes(b"garbage")
    with pytest.raises(data.DatasetFormatError, match="at least two"):
        data.load_image_folder(tree, image_size=8)


def test_decompression_bombs_are_skipped_not_decoded(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    save_image(solid_image((9, 9, 9), size=(8, 8)), tree / "small" / "a.png")
    save_image(solid_image((9, 9, 9), size=(8, 8)), tree / "small2" / "a.png")
    save_image(solid_image((9, 9, 9), size=(300, 300)), tree / "small2" / "big.png")
    # cnnviz's own limit refuses the big image after reading only its header.
    monkeypatch.setattr(folders, "MAX_SOURCE_PIXELS", 10_000)
    folder = data.load_image_folder(tree, image_size=8)
    assert folder.skipped == 1 and folder.skipped_files == ("small2/big.png",)
    # Pillow's own guard (DecompressionBombError above twice MAX_IMAGE_PIXELS) is caught too.
    monkeypatch.setattr(folders, "MAX_SOURCE_PIXELS", 10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    folder = data.load_image_folder(tree, image_size=8)
    assert folder.skipped == 1 and folder.x.shape == (2, 8, 8, 3)


def test_archives_that_would_need_too_much_memory_are_refused(tmp_path, monkeypatch):
    write_class_tree(tmp_path / "tree")
    monkeypatch.setattr(folders, "MAX_FOLDER_ARRAY_BYTES", 1000)
    with pytest.raises(data.DatasetFormatError, match="smaller image size"):
        data.load_image_folder(tmp_path / "tree", image_size=64)
    monkeypatch.setattr(folders, "MAX_ARCHIVE_MEMBERS", 3)
    with pytest.raises(data.DatasetFormatError, match="at most 3"):
        data.load_image_folder(_zip_tree(tmp_path / "tree", top=None), image_size=8)
