"""Class-per-subfolder image datasets: user folders and zips, and datasets stored as image folders.

`load_image_folder` reads a folder or a .zip whose subfolders are the classes, like Keras'
``image_dataset_from_directory``, into a `Dataset` named from its content, within fixed limits
on archive, image and memory sizes; a zip is read in memory, member by member, never extracted.
`read_class_folders` reads a known dataset stored as ``train/<class>/`` and ``test/<class>/``
image folders (e.g. CIFAR-10 as JPEGs), decoding it once into the disk cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from cnnviz import settings
from cnnviz.data import cache, registry
from cnnviz.data.dataset import Arrays, Dataset, make_dataset, take_rows
from cnnviz.data.dataset_spec import AugmentationAdvice, DatasetSpec
from cnnviz.data.subsets import check_seed
from cnnviz.errors import DatasetFormatError, DatasetUnavailable

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
# Archives inside the archive are refused rather than opened (a nested zip is the classic bomb).
ARCHIVE_EXTENSIONS: frozenset[str] = frozenset({".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar",
                                                ".zst", ".lz", ".lzma", ".cab", ".jar"})
# The folder names that mark the two halves of a pre-split dataset (Keras' and seed 001's layout).
TRAIN_FOLDERS = frozenset({"train", "training"})
TEST_FOLDERS = frozenset({"test", "testing", "val", "validation"})

# Guards for user-supplied image folders and archives, all checked before anything large is read.
MAX_ZIP_BYTES = 50 * 1024 * 1024  # The largest .zip read (matches server.maxUploadSize).
MAX_ARCHIVE_MEMBERS = 20_000  # Entries of an archive, counted from its end record before it is parsed.
MAX_MEMBER_BYTES = 16 * 1024 * 1024  # Declared uncompressed size of one image (more: refused, a bomb).
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024  # Declared uncompressed size of all of an archive's images.
MAX_SOURCE_PIXELS = 25_000_000  # Larger images are skipped before they are decoded (header only).
MAX_FOLDER_ARRAY_BYTES = 256 * 1024 * 1024  # Memory the decoded uint8 arrays may take.
MAX_IMAGE_SIDE = 1024
MAX_CLASSES = 100
MIN_IMAGES_PER_CLASS = 10  # Fewer cannot be split into training and test images worth measuring.
IMBALANCE_WARNING_RATIO = 10.0  # The largest class this many times the smallest: a warning.
MAX_SKIPPED_LISTED = 50  # Skipped files named in the report (all are counted).
MAX_CACHED_FOLDER_DATASETS = 16  # Decoded class-folder datasets kept in the disk cache (newest).
COLOR_MODES: tuple[str, ...] = ("rgb", "grayscale")
SOURCE = "class folders"  # `Dataset.source` of every class-folder dataset.
NAME_PREFIX = "images-"

_FOLDER_CACHE_VERSION = "1"
_DATASET_VERSION = "1"  # Part of every class-folder dataset's name: bump when decoding changes.
_MEMORY_ENTRIES = 2  # Class-folder datasets kept in memory when the disk cache cannot be written.


@dataclass(frozen=True)
class FolderReport:
    """What `load_image_folder` read: shown by the page beside the dataset.

    `what` names the source ("shapes.zip", a folder path); `train_counts`/`test_counts` are
    images per class (in `class_names` order); `split` says how the test images were chosen;
    `skipped` lists (file, why) for the first `MAX_SKIPPED_LISTED` files left out, and
    `skipped_count` counts them all; `warnings` are sentences for the page (e.g. imbalance).
    """

    what: str
    class_names: tuple[str, ...]
    train_counts: tuple[int, ...]
    test_counts: tuple[int, ...]
    split: str
    skipped: tuple[tuple[str, str], ...]
    skipped_count: int
    warnings: tuple[str, ...]

    @property
    def images(self) -> int:
        return sum(self.train_counts) + sum(self.test_counts)

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "class_names": list(self.class_names), "train_counts": list(self.train_counts),
                "test_counts": list(self.test_counts), "split": self.split,
                "skipped": [list(pair) for pair in self.skipped], "skipped_count": self.skipped_count,
                "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, value: dict[str, Any], what: str) -> FolderReport:
        return cls(what=what, class_names=tuple(str(name) for name in value["class_names"]),
                   train_counts=tuple(int(n) for n in value["train_counts"]),
                   test_counts=tuple(int(n) for n in value["test_counts"]), split=str(value["split"]),
                   skipped=tuple((str(a), str(b)) for a, b in value["skipped"]),
                   skipped_count=int(value["skipped_count"]), warnings=tuple(str(w) for w in value["warnings"]))


@dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # Path parts below the root.
    ref: Any  # What `_Tree.read` takes: a ZipInfo or a file path.

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass
class _Tree:
    """The image files of a source (nothing read yet), the files already skipped, and a content digest."""

    what: str
    digest: str
    entries: list[_Entry]
    skipped: list[tuple[str, str]]
    read: Callable[[Any], bytes | str]


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _size_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif isinstance(image_size, Sequence) and len(image_size) == 2 and all(
            isinstance(side, (int, np.integer)) and not isinstance(side, bool) for side in image_size):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be a number of pixels or (height, width), got {image_size!r}.")
    if not all(1 <= side <= MAX_IMAGE_SIDE for side in size):
        raise ValueError(f"Each side of image_size must be between 1 and {MAX_IMAGE_SIDE} pixels, got {size}.")
    return size


class _Refused(ValueError):
    """An image left out, with the reason for the report."""


def _decode_image(source: str | bytes, size_hw: tuple[int, int], channels: int = 3) -> npt.NDArray[np.uint8]:
    """Decode one image file into uint8 (H, W, channels), RGB or grey (1 channel), resized bilinearly.

    Raises an exception for anything unreadable; images with more than `MAX_SOURCE_PIXELS`
    pixels are refused after reading only their header (decompression-bomb guard).
    """
    from PIL import Image

    height, width = size_hw
    mode = "L" if channels == 1 else "RGB"
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(stream) as image:
        if image.width * image.height > MAX_SOURCE_PIXELS:
            raise _Refused(f"{image.width}×{image.height} pixels, more than the "
                           f"{MAX_SOURCE_PIXELS / 1e6:.0f}-megapixel limit")
        if image.format == "JPEG":
            image.draft(mode, (width, height))  # Decode big JPEGs at a reduced scale.
        converted = image if image.mode == mode else image.convert(mode)
        if converted.size != (width, height):
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(converted, dtype=np.uint8).reshape(height, width, -1)
    if array.shape != (height, width, channels):
        raise _Refused(f"decoded to shape {array.shape}")
    return array


def _why_unreadable(error: Exception) -> str:
    if isinstance(error, _Refused):
        return str(error)
    if isinstance(error, zipfile.BadZipFile):
        return f"damaged in the archive ({error})"
    return "not a readable image"


def _decode_all(sources: Sequence[Any], read: Callable[[Any], str | bytes], size_hw: tuple[int, int],
                names: Sequence[str], channels: int = 3) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_],
                                                                  list[tuple[str, str]]]:
    """Decode every source into one preallocated array; returns (images, kept mask, (skipped name, why)).

    Decoding runs in this thread: with small images most of the time is Python-level work under
    the GIL, and a thread pool measured slower than a plain loop.
    """
    height, width = size_hw
    images = np.empty((len(sources), height, width, channels), dtype=np.uint8)
    kept = np.zeros(len(sources), dtype=bool)
    skipped: list[tuple[str, str]] = []
    for index, source in enumerate(sources):
        try:
            images[index] = _decode_image(read(source), size_hw, channels)
        except Exception as error:  # Unreadable (incl. Image.DecompressionBombError): skip and say why.
            skipped.append((names[index], _why_unreadable(error)))
        else:
            kept[index] = True
    return images, kept, skipped


# ---------------------------------------------------------------------------------------------
# load_image_folder
# ---------------------------------------------------------------------------------------------

def load_image_folder(source: str | os.PathLike | bytes | BinaryIO, *, image_size: int | tuple[int, int],
                      color_mode: str = "rgb", validation_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A class-per-subfolder image dataset from a folder or a .zip (path, bytes or file object).

    Each subfolder is a class (sorted by name, like Keras' ``image_dataset_from_directory``); a
    single top folder around them, as zips often have, is looked through. With ``train/`` and
    ``test/`` (or ``val/``) folders of class folders those are the two splits; otherwise
    `validation_fraction` of every class (at least one image) is held out as the test set,
    stratified and chosen by `seed`. Images become RGB or grey (`color_mode` "rgb" or
    "grayscale") at `image_size` (pixels, or (height, width)).

    The result is a `Dataset` (source "class folders", its `report` saying what was read and
    skipped) named from the content's hash and the options, e.g. ``images-3f2a…``; its spec is
    registered for the process (`cnnviz.data.spec(name)`), and the decoded arrays are kept in
    the disk cache, so `cnnviz.data.load(name)` and a second call with the same content and
    options read them back instead of decoding again. A zip's members are read in memory, one
    at a time; nothing is extracted. Raises `DatasetFormatError`, naming the file or class, for
    an unsafe or unreadable archive (paths with ``..``, absolute paths, links, nested archives,
    passwords, sizes over the limits above), fewer than two classes, or a class with fewer than
    `MIN_IMAGES_PER_CLASS` readable images; unreadable and non-image files are skipped and listed.
    """
    size_hw = _size_hw(image_size)
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {', '.join(COLOR_MODES)}, got {color_mode!r}.")
    channels = 1 if color_mode == "grayscale" else 3
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)) \
            or not 0.0 < float(validation_fraction) < 1.0:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction!r}.")
    check_seed(seed)
    tree = _scan(source)
    options = f"{_DATASET_VERSION}|{tree.digest}|{size_hw[0]}x{size_hw[1]}|{color_mode}|" \
              f"{float(validation_fraction)!r}|{int(seed)}"
    name = NAME_PREFIX + hashlib.sha256(options.encode()).hexdigest()[:16]
    known = _cached(name, tree.what)
    if known is not None:
        return known
    return _decode_tree(tree, name, size_hw, channels, float(validation_fraction), int(seed))


def _scan(source: str | os.PathLike | bytes | BinaryIO) -> _Tree:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > MAX_ZIP_BYTES:
            raise _zip_too_large("the uploaded archive", len(source))
        return _scan_zip(bytes(source), "the uploaded archive")
    if hasattr(source, "read"):
        label = os.path.basename(str(getattr(source, "name", "") or "")) or "the uploaded archive"
        return _scan_zip(_read_bounded(source, label), label)  # type: ignore[arg-type]
    path = Path(source).expanduser()
    if path.is_dir():
        return _scan_directory(path)
    if path.is_file():
        if path.stat().st_size > MAX_ZIP_BYTES:
            raise _zip_too_large(path.name, path.stat().st_size)
        return _scan_zip(path.read_bytes(), path.name)
    raise DatasetFormatError(f"{path} does not exist; give a folder of class subfolders or a .zip of one.")


def _read_bounded(file: BinaryIO, what: str) -> bytes:
    raw = file.read(MAX_ZIP_BYTES + 1)
    if not isinstance(raw, (bytes, bytearray)):
        raise DatasetFormatError(f"{_cap(what)} is not a readable .zip archive (its file gives no bytes).")
    if len(raw) > MAX_ZIP_BYTES:
        raise _zip_too_large(what, len(raw))
    return bytes(raw)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _zip_too_large(what: str, size: int) -> DatasetFormatError:
    return DatasetFormatError(
        f"{_cap(what)} is {size / 2**20:,.1f} MB; a .zip of at most {MAX_ZIP_BYTES / 2**20:,.0f} MB is accepted. "
        f"Use fewer or smaller images (a few hundred per class at 100 px is plenty here).")


def _declared_members(raw: bytes) -> int | None:
    """The entry count in a zip's end-of-central-directory record (zip64 too), read before parsing it."""
    tail_start = max(0, len(raw) - (22 + 65_535))
    at = raw.rfind(b"PK\x05\x06", tail_start)
    if at < 0 or at + 22 > len(raw):
        return None
    entries = int.from_bytes(raw[at + 10:at + 12], "little")
    if entries == 0xFFFF and at >= 20 and raw[at - 20:at - 16] == b"PK\x06\x07":
        offset = int.from_bytes(raw[at - 12:at - 4], "little")
        record = raw[offset:offset + 56]
        if record[:4] == b"PK\x06\x06" and len(record) == 56:
            entries = int.from_bytes(record[32:40], "little")
    return entries


def _zip_parts(filename: str) -> tuple[str, ...]:
    return tuple(part for part in filename.replace("\\", "/").split("/") if part not in ("", "."))


def _check_member(info: zipfile.ZipInfo, what: str) -> None:
    """Refuse an entry that is unsafe to have in an upload (`DatasetFormatError` naming it)."""
    name = info.filename
    shown = name if len(name) <= 120 else name[:117] + "..."
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DatasetFormatError(
            f"{_cap(what)} contains '{shown}', an absolute path: archives whose files point outside their own "
            f"folders are refused. Zip the class folders themselves.")
    if ".." in name.replace("\\", "/").split("/"):
        raise DatasetFormatError(
            f"{_cap(what)} contains '{shown}', a path that climbs out of the archive (..): such archives are "
            f"refused. Zip the class folders themselves.")
    if (info.external_attr >> 16) & 0o170000 == stat.S_IFLNK:
        raise DatasetFormatError(
            f"'{shown}' in {what} is a symbolic link: zip the images themselves, not links to them.")
    if info.is_dir():
        return
    if info.flag_bits & 0x1:
        raise DatasetFormatError(
            f"'{shown}' in {what} is password-protected: zip the class folders without a password.")
    if os.path.splitext(name)[1].lower() in ARCHIVE_EXTENSIONS:
        raise DatasetFormatError(
            f"'{shown}' in {what} is an archive inside the archive: unpack it and zip its class folders "
            f"directly (archives inside archives are not opened).")
    if _is_image_name(name) and info.file_size > MAX_MEMBER_BYTES:
        raise DatasetFormatError(
            f"'{shown}' in {what} would unpack from {info.compress_size / 2**20:,.1f} MB to "
            f"{info.file_size / 2**20:,.0f} MB; one image may be at most {MAX_MEMBER_BYTES / 2**20:,.0f} MB "
            f"(a 'zip bomb', or a very large photo: shrink the photos first).")


def _scan_zip(raw: bytes, what: str) -> _Tree:
    declared = _declared_members(raw)
    if declared is not None and declared > MAX_ARCHIVE_MEMBERS:
        raise DatasetFormatError(
            f"{_cap(what)} holds {declared:,} files; at most {MAX_ARCHIVE_MEMBERS:,} are accepted.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as error:
        raise DatasetFormatError(f"{_cap(what)} is not a readable .zip archive ({error}).") from error
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise DatasetFormatError(f"{_cap(what)} holds {len(infos):,} files; at most {MAX_ARCHIVE_MEMBERS:,} are accepted.")
    entries: list[_Entry] = []
    skipped: list[tuple[str, str]] = []
    total = 0
    for info in infos:
        _check_member(info, what)
        parts = _zip_parts(info.filename)
        if info.is_dir() or not parts or _is_hidden(parts):
            continue
        if not _is_image_name(info.filename):
            skipped.append((info.filename, f"not an image file ({os.path.splitext(parts[-1])[1] or 'no extension'})"))
            continue
        total += info.file_size
        entries.append(_Entry(parts, info))
    if total > MAX_ARCHIVE_BYTES:
        raise DatasetFormatError(
            f"{_cap(what)} would unpack to {total / 2**20:,.0f} MB of images; at most "
            f"{MAX_ARCHIVE_BYTES / 2**20:,.0f} MB are accepted (is it a 'zip bomb'?).")

    def read(info: zipfile.ZipInfo) -> bytes:
        # At most the declared size (checked above) is unpacked: ``archive.read(info)`` would ask the
        # decompressor for up to 2 GB at once (a member that lies about its size unpacked 450 MB in a
        # test), ``read(n)`` for n bytes. A liar's CRC then fails and it is skipped as damaged.
        with archive.open(info) as member:
            return member.read(info.file_size)

    return _Tree(what=what, digest=hashlib.sha256(raw).hexdigest(), entries=entries, skipped=skipped, read=read)


def _scan_directory(root: Path) -> _Tree:
    """A folder's image files; its digest comes from the files' paths, sizes and modification times."""
    entries: list[_Entry] = []
    skipped: list[tuple[str, str]] = []
    digest = hashlib.sha256(str(root.resolve()).encode())
    for folder, subfolders, files in os.walk(root):
        parts = Path(folder).relative_to(root).parts
        subfolders[:] = sorted(sub for sub in subfolders if not _is_hidden((sub,)))
        for file in sorted(files):
            if file.startswith("."):
                continue
            path = Path(folder) / file
            relative = (*parts, file)
            if path.is_symlink():
                skipped.append(("/".join(relative), "a symbolic link (not followed)"))
                continue
            if not _is_image_name(file):
                skipped.append(("/".join(relative), f"not an image file ({os.path.splitext(file)[1] or 'no extension'})"))
                continue
            info = path.stat()
            digest.update(f"{'/'.join(relative)}|{info.st_size}|{info.st_mtime_ns}\n".encode())
            entries.append(_Entry(relative, str(path)))
        if len(entries) > MAX_ARCHIVE_MEMBERS:
            raise DatasetFormatError(f"{root} holds over {MAX_ARCHIVE_MEMBERS:,} images; at most "
                                     f"{MAX_ARCHIVE_MEMBERS:,} are accepted.")
    return _Tree(what=str(root), digest=digest.hexdigest(), entries=entries, skipped=skipped, read=lambda path: path)


def _layout(entries: Sequence[_Entry], what: str) -> tuple[list[str], list[int], list[int], list[tuple[str, str]]]:
    """Class names and, per entry, its class (-1: none) and split (0 train, 1 test, -1 to be split).

    Folders that every image shares (e.g. the zip's single top folder) are looked through;
    ``train/`` and ``test/`` folders of class folders make a pre-split dataset.
    """
    paths = [entry.parts for entry in entries]
    depth = 0
    while paths and all(len(parts) - depth >= 3 for parts in paths) and len({parts[depth] for parts in paths}) == 1:
        depth += 1
    tops = {parts[depth].lower() for parts in paths if len(parts) - depth >= 2}
    presplit = bool(tops) and tops <= TRAIN_FOLDERS | TEST_FOLDERS and bool(tops & TRAIN_FOLDERS) \
        and bool(tops & TEST_FOLDERS)
    class_depth = depth + 1 if presplit else depth
    names = sorted({parts[class_depth] for parts in paths if len(parts) - class_depth >= 2})
    if not names:
        raise DatasetFormatError(
            f"{_cap(what)} has no class subfolders with images: put the images in one folder per class "
            f"(e.g. horses/ and humans/), each holding .jpg or .png files.")
    if len(names) == 1:
        raise DatasetFormatError(f"{_cap(what)} has only one class folder ({names[0]}/); a classifier needs at least two.")
    if len(names) > MAX_CLASSES:
        raise DatasetFormatError(f"{_cap(what)} has {len(names):,} class folders; at most {MAX_CLASSES} are accepted.")
    label_of = {name: label for label, name in enumerate(names)}
    labels, splits, skipped = [], [], []
    for entry in entries:
        parts = entry.parts
        if len(parts) - class_depth < 2:
            labels.append(-1)
            splits.append(-1)
            skipped.append((entry.name, "not inside a class folder"))
            continue
        labels.append(label_of[parts[class_depth]])
        splits.append((0 if parts[depth].lower() in TRAIN_FOLDERS else 1) if presplit else -1)
    return names, labels, splits, skipped


def _decode_tree(tree: _Tree, name: str, size_hw: tuple[int, int], channels: int, fraction: float,
                 seed: int) -> Dataset:
    what = tree.what
    class_names, labels_list, splits_list, outside = _layout(tree.entries, what)
    use = [index for index, label in enumerate(labels_list) if label >= 0]
    needed = len(use) * size_hw[0] * size_hw[1] * channels
    if needed > MAX_FOLDER_ARRAY_BYTES:
        raise DatasetFormatError(
            f"{_cap(what)} has {len(use):,} images; at {size_hw[0]}x{size_hw[1]} pixels they would need "
            f"{needed / 2**20:,.0f} MB of memory (at most {MAX_FOLDER_ARRAY_BYTES / 2**20:,.0f} MB). "
            f"Choose a smaller image size, grayscale, or fewer images.")
    images, kept, unreadable = _decode_all([tree.entries[i].ref for i in use], tree.read, size_hw,
                                           [tree.entries[i].name for i in use], channels)
    labels = np.asarray([labels_list[i] for i in use], dtype=np.int64)[kept]
    splits = np.asarray([splits_list[i] for i in use], dtype=np.int64)[kept]
    rows = np.flatnonzero(kept)  # Rows of `images` that hold a decoded image (never copied: 1 array, not 2).
    skipped = tree.skipped + outside + unreadable
    if len(rows) == 0:
        raise DatasetFormatError(f"None of the {len(use):,} images in {what} could be read"
                                 + (f" (e.g. {skipped[0][0]}: {skipped[0][1]})." if skipped else "."))
    presplit = bool(len(splits)) and splits[0] >= 0
    counts = np.bincount(labels, minlength=len(class_names))
    for label, count in enumerate(counts):
        if count < MIN_IMAGES_PER_CLASS:
            raise DatasetFormatError(
                f"The class {class_names[label]!r} in {what} has only {int(count)} readable image"
                f"{'' if count == 1 else 's'}; every class needs at least {MIN_IMAGES_PER_CLASS} (some to train "
                f"on, some to test with). Add images to it, or remove its folder.")
    rng = np.random.default_rng(seed)
    if presplit:
        train_index, test_index = np.flatnonzero(splits == 0), np.flatnonzero(splits == 1)
        for label, class_name in enumerate(class_names):
            for split_name, index in (("train", train_index), ("test", test_index)):
                if not np.any(labels[index] == label):
                    raise DatasetFormatError(
                        f"The class {class_name!r} in {what} has no images in its {split_name} folder; "
                        f"put some there, or remove the train/ and test/ folders to let cnnviz split the images.")
        split_text = "its own train/ and test/ folders"
    else:
        train_parts, test_parts = [], []
        for label in range(len(class_names)):
            members = rng.permutation(np.flatnonzero(labels == label))
            n_test = min(len(members) - 1, max(1, round(len(members) * fraction)))
            test_parts.append(members[:n_test])
            train_parts.append(members[n_test:])
        train_index, test_index = np.concatenate(train_parts), np.concatenate(test_parts)
        split_text = f"a stratified {fraction:.0%} of each class held out for testing (seed {seed})"
    train_index, test_index = rng.permutation(train_index), rng.permutation(test_index)
    x_train, y_train = take_rows(images, rows[train_index]), labels[train_index]
    x_test, y_test = take_rows(images, rows[test_index]), labels[test_index]
    del images
    report = FolderReport(
        what=what, class_names=tuple(class_names),
        train_counts=tuple(int(n) for n in np.bincount(y_train, minlength=len(class_names))),
        test_counts=tuple(int(n) for n in np.bincount(y_test, minlength=len(class_names))),
        split=split_text, skipped=tuple(skipped[:MAX_SKIPPED_LISTED]), skipped_count=len(skipped),
        warnings=_imbalance_warnings(class_names, counts))
    spec = _spec(name, tuple(class_names), (size_hw[0], size_hw[1], channels), _dark_background(x_train))
    arrays = (x_train, y_train, x_test, y_test)
    folder = cache.datasets_cache_dir() / name
    cache.write_array_cache(folder, meta=_meta(spec, report), x_train=x_train, y_train=y_train, x_test=x_test,
                            y_test=y_test)
    mapped = cache.read_array_cache(folder)
    if mapped is None:
        _memory_put(name, (arrays, spec, report))
    else:
        arrays = mapped  # The operating system's pages: shared, dropped under pressure.
        _prune_disk_cache()
    registry.register(spec)
    return make_dataset(spec, arrays, where=what, source=SOURCE, note=_note(report), report=report)


def _imbalance_warnings(class_names: Sequence[str], counts: npt.NDArray[np.int64]) -> tuple[str, ...]:
    largest, smallest = int(np.argmax(counts)), int(np.argmin(counts))
    ratio = counts[largest] / counts[smallest]
    if ratio < IMBALANCE_WARNING_RATIO:
        return ()
    big, small = class_names[largest], class_names[smallest]
    return (f"The class {big!r} has {int(counts[largest]):,} images, {ratio:.0f} times as many as {small!r} "
            f"({int(counts[smallest]):,}): a network can score well by mostly answering {big!r}. Look at the "
            f"accuracy per class, and balance the classes (fewer {big!r} or more {small!r} images) for a fair "
            f"test.",)


def _dark_background(x: npt.NDArray[np.uint8]) -> bool:
    """True when the images' borders are mostly dark (light objects on black, like MNIST)."""
    sample = x[:500]
    border = np.concatenate([sample[:, 0].ravel(), sample[:, -1].ravel(), sample[:, :, 0].ravel(),
                             sample[:, :, -1].ravel()])
    return bool(border.mean() < 96)


# Nothing is known about a student's classes: every flip is flagged (a mirrored left arrow is a right
# arrow), and large rotations are questioned without claiming the pictures are upright.
_ADVICE = AugmentationAdvice(
    vertical_flip=("Upside-down pictures may never occur among your test images: flip vertically only if "
                   "your classes look the same upside down."),
    horizontal_flip=("A mirrored picture may no longer belong to its class: flip left–right only if your "
                     "classes look the same mirrored."),
    rotation=("Rotations up to {degrees:.0f}° produce strongly tilted pictures: if your test pictures are "
              "upright, small angles (10–20°) usually help more."))


def _spec(name: str, class_names: tuple[str, ...], shape: tuple[int, int, int], dark: bool) -> DatasetSpec:
    colour = "grey" if shape[2] == 1 else "colour"
    return DatasetSpec(
        name=name, label="your images", title=f"Your images ({len(class_names)} classes, {shape[0]}×{shape[1]} {colour})",
        class_names=class_names, image_shape=shape, dark_background=dark, default_preset="fashion_relu_cnn",
        augmentation=_ADVICE, local=(), class_folders=True)


def _note(report: FolderReport) -> str:
    return (f"Read from {report.what}: {len(report.class_names)} classes, {report.images:,} images, "
            f"{report.split}.")


def _meta(spec: DatasetSpec, report: FolderReport) -> dict[str, Any]:
    return {"version": _DATASET_VERSION, "image_shape": list(spec.image_shape),
            "dark_background": spec.dark_background, "report": report.to_json()}


MAX_SERVER_FOLDERS = 50


def server_folders() -> list[Path]:
    """Class-folder datasets a server offers: the subfolders of ``CNNVIZ_DATA_DIR`` that hold folders
    (sorted, at most `MAX_SERVER_FOLDERS`), except those of the built-in datasets' layouts. Only
    names are listed here; nothing is read until one is chosen."""
    base = settings.data_dir()
    if base is None or not base.is_dir():
        return []
    built_in = {layout.path.split("/")[0].lower() for spec in registry.SPECS.values() for layout in spec.local}
    found = []
    try:
        with os.scandir(base) as entries:
            for entry in sorted(entries, key=lambda item: item.name):
                if entry.name.startswith(".") or entry.name.lower() in built_in or not entry.is_dir():
                    continue
                with os.scandir(entry.path) as inside:
                    if any(sub.is_dir() and not sub.name.startswith(".") for sub in inside):
                        found.append(Path(entry.path))
                if len(found) >= MAX_SERVER_FOLDERS:
                    break
    except OSError:
        return found
    return found


# ---------------------------------------------------------------------------------------------
# Class-folder datasets read before: the disk cache (and memory, when it cannot be written).
# ---------------------------------------------------------------------------------------------

_MEMORY_LOCK = threading.Lock()
_MEMORY: OrderedDict[str, tuple[Arrays, DatasetSpec, FolderReport]] = OrderedDict()


def forget() -> None:
    """Forget the class-folder datasets held in memory (those the disk cache could not take)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


def _memory_put(name: str, value: tuple[Arrays, DatasetSpec, FolderReport]) -> None:
    with _MEMORY_LOCK:
        _MEMORY[name] = value
        _MEMORY.move_to_end(name)
        while len(_MEMORY) > _MEMORY_ENTRIES:
            _MEMORY.popitem(last=False)


def _cached(name: str, what: str | None = None) -> Dataset | None:
    """The class-folder dataset `name` read before (its spec registered again), or None."""
    with _MEMORY_LOCK:
        held = _MEMORY.get(name)
    if held is not None:
        arrays, spec, report = held
    else:
        folder = cache.datasets_cache_dir() / name
        meta = cache.read_cache_meta(folder)
        mapped = cache.read_array_cache(folder) if meta is not None else None
        if meta is None or mapped is None or meta.get("version") != _DATASET_VERSION:
            return None
        try:
            report = FolderReport.from_json(meta["report"], str(meta["report"]["what"]))
            height, width, channels = (int(n) for n in meta["image_shape"])
            spec = _spec(name, report.class_names, (height, width, channels), bool(meta["dark_background"]))
        except (KeyError, TypeError, ValueError):
            return None
        arrays = mapped
        _touch(folder)
    if what is not None and what != report.what:
        report = replace(report, what=what)
    registry.register(spec)
    return make_dataset(spec, arrays, where=report.what, source=SOURCE, note=_note(report), report=report)


def cached_dataset(spec: DatasetSpec) -> Dataset:
    """A registered class-folder dataset, read back (for `cnnviz.data.load`); `DatasetUnavailable` if gone."""
    dataset = _cached(spec.name)
    if dataset is None:
        raise DatasetUnavailable(_gone(spec))
    return dataset


def status(spec: DatasetSpec) -> tuple[str | None, str]:
    """(source or None, note) of a registered class-folder dataset, without loading it."""
    with _MEMORY_LOCK:
        held = spec.name in _MEMORY
    if held or cache.read_cache_meta(cache.datasets_cache_dir() / spec.name) is not None:
        return SOURCE, f"{spec.title} were read from class folders and are kept in {cache.datasets_cache_dir()}."
    return None, _gone(spec)


def _gone(spec: DatasetSpec) -> str:
    return (f"{spec.title} are no longer on this server (its cache was cleared): upload the zip of class "
            f"folders again.")


def _touch(folder: Path) -> None:
    try:
        os.utime(folder)
    except OSError:
        pass


def _prune_disk_cache() -> None:
    """Keep the newest `MAX_CACHED_FOLDER_DATASETS` class-folder datasets in the disk cache."""
    try:
        found = [path for path in cache.datasets_cache_dir().glob(f"{NAME_PREFIX}*") if path.is_dir()]
        found.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    except OSError:
        return
    for path in found[MAX_CACHED_FOLDER_DATASETS:]:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Known datasets stored as train/ and test/ class folders (CIFAR-10 as JPEGs).
# ---------------------------------------------------------------------------------------------

def _folder_fingerprint(root: Path) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """A cache key for a root/{train,test}/<class>/ tree and its file lists, from one scan.

    The key combines the resolved path, the number of image files and the newest modification
    time of any file or folder, so adding, removing or replacing images invalidates the cache.
    """
    newest = 0
    count = 0
    listing: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        split_dir = root / split
        listing[split] = {}
        newest = max(newest, split_dir.stat().st_mtime_ns)
        with os.scandir(split_dir) as entries:
            class_dirs = sorted(entry.name for entry in entries
                                if entry.is_dir() and not entry.name.startswith("."))
        for class_name in class_dirs:
            class_dir = split_dir / class_name
            newest = max(newest, class_dir.stat().st_mtime_ns)
            files = []
            with os.scandir(class_dir) as entries:
                for entry in entries:
                    if entry.is_file() and _is_image_name(entry.name) and not entry.name.startswith("."):
                        files.append(entry.name)
                        newest = max(newest, entry.stat().st_mtime_ns)
            count += len(files)
            listing[split][class_name] = sorted(files)
    text = f"{_FOLDER_CACHE_VERSION}|{root.resolve()}|{count}|{newest}"
    return hashlib.sha256(text.encode()).hexdigest()[:20], listing


def read_class_folders(root: Path, spec: DatasetSpec) -> Arrays:
    """A dataset from root/{train,test}/<class>/*.jpg|png, decoded once and cached on disk.

    The class folders must be the spec's classes (any letter case). The cache is a folder of
    four .npy files, memory-mapped read-only on later loads, so a second load costs one
    directory scan instead of decoding every image (60,000 JPEGs for CIFAR-10).
    """
    key, listing = _folder_fingerprint(root)
    cached = cache.datasets_cache_dir() / f"{spec.name}-folders-{key}"
    arrays = cache.read_array_cache(cached)
    if arrays is not None:
        return arrays
    canonical = {name.lower(): label for label, name in enumerate(spec.class_names)}
    decoded: list[npt.NDArray[Any]] = []
    for split in ("train", "test"):
        classes = listing[split]
        unknown = sorted(name for name in classes if name.lower() not in canonical)
        missing = sorted(set(canonical) - {name.lower() for name in classes})
        if unknown or missing:
            raise DatasetFormatError(
                f"{root / split} must hold one folder per {spec.label} class "
                f"({', '.join(spec.class_names)}); "
                + (f"unknown: {', '.join(unknown)}" if unknown else f"missing: {', '.join(missing)}") + ".")
        paths = [str(root / split / name / file) for name in sorted(classes) for file in classes[name]]
        if not paths:
            raise DatasetFormatError(f"{root / split} has class folders but no images in them.")
        labels = np.concatenate([np.full(len(classes[name]), canonical[name.lower()], dtype=np.int64)
                                 for name in sorted(classes)])
        images, kept, skipped = _decode_all(paths, lambda path: path, spec.image_size, paths, spec.channels)
        if len(skipped) == len(paths):
            raise DatasetFormatError(f"None of the images in {root / split} could be read.")
        # Indexing copies: only when something was skipped (a second 150 MB for CIFAR-10's training images).
        decoded.extend([images, labels] if kept.all() else [images[kept], labels[kept]])
    x_train, y_train, x_test, y_test = decoded
    cache.write_array_cache(cached, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    # Prefer the memory-mapped copy: the operating system can share and drop its pages, which
    # keeps the app's own memory small on a 1 GB host.
    return cache.read_array_cache(cached) or (x_train, y_train, x_test, y_test)
