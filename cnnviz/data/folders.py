"""Class-per-subfolder image datasets: user folders and zips, and datasets stored as image folders.

`load_image_folder` reads a folder or a .zip whose subfolders are the classes, like Keras'
``image_dataset_from_directory``, within fixed limits on image and archive sizes.
`read_class_folders` reads a known dataset stored as ``train/<class>/`` and ``test/<class>/``
image folders (e.g. CIFAR-10 as JPEGs), decoding it once into the disk cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from cnnviz.data import cache
from cnnviz.data.dataset import Arrays
from cnnviz.data.dataset_spec import DatasetSpec
from cnnviz.data.subsets import filter_classes
from cnnviz.errors import DatasetFormatError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

# Guards for user-supplied image folders and archives.
MAX_SOURCE_PIXELS = 25_000_000  # Larger images are skipped before they are decoded.
MAX_MEMBER_BYTES = 50 * 1024 * 1024  # Larger archive members are skipped unread.
MAX_ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024  # Total uncompressed size of an archive's images.
MAX_ARCHIVE_MEMBERS = 100_000
MAX_FOLDER_ARRAY_BYTES = 1024 * 1024 * 1024  # Memory the decoded uint8 array may take.
MAX_IMAGE_SIDE = 1024

_FOLDER_CACHE_VERSION = "1"


@dataclass(frozen=True, eq=False)
class ImageFolder:
    """Images read from class subfolders: `x` uint8 (N, H, W, 3), `y` int64 labels into `class_names`.

    `skipped` counts image files that could not be read; `skipped_files` names the first of them.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    skipped: int
    skipped_files: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"ImageFolder(x={self.x.shape}, classes={self.class_names!r}, "
                f"skipped={self.skipped})")


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _group_by_class(relative_paths: Sequence[tuple[str, ...]], what: str) -> dict[str, list[int]]:
    """Group image paths (tuples of path parts) by class folder, after a shared top folder.

    Returns class name -> indices into `relative_paths`, classes and files sorted by name.
    Raises `DatasetFormatError` when there are no class folders or only one.
    """
    paths = list(relative_paths)
    depth = 0
    # Strip folders that every image shares (e.g. the zip's single top folder) while each
    # image still has at least a class folder and a file name below them.
    while paths and all(len(parts) - depth >= 3 for parts in paths) and \
            len({parts[depth] for parts in paths}) == 1:
        depth += 1
    groups: dict[str, list[int]] = {}
    for index, parts in enumerate(paths):
        if len(parts) - depth >= 2:
            groups.setdefault(parts[depth], []).append(index)
    if not groups:
        raise DatasetFormatError(
            f"{what} has no class subfolders with images: put the images in one folder per class "
            f"(e.g. horses/ and humans/), each holding .jpg or .png files.")
    if len(groups) == 1:
        only = next(iter(groups))
        raise DatasetFormatError(
            f"{what} has only one class folder ({only}/); a classifier needs at least two.")
    return {name: sorted(groups[name], key=lambda i: paths[i]) for name in sorted(groups)}


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
            raise ValueError(f"{image.width}x{image.height} pixels is too large")
        if image.format == "JPEG":
            image.draft(mode, (width, height))  # Decode big JPEGs at a reduced scale.
        converted = image if image.mode == mode else image.convert(mode)
        if converted.size != (width, height):
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(converted, dtype=np.uint8).reshape(height, width, -1)
    if array.shape != (height, width, channels):
        raise ValueError(f"decoded to shape {array.shape}")
    return array


def _decode_all(sources: Sequence[Any], read: Callable[[Any], str | bytes], size_hw: tuple[int, int],
                names: Sequence[str], channels: int = 3) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_],
                                                                  list[str]]:
    """Decode every source into one preallocated array; returns (images, kept mask, skipped names).

    Decoding runs in this thread: with small images most of the time is Python-level work under
    the GIL, and a thread pool measured slower than a plain loop.
    """
    height, width = size_hw
    images = np.empty((len(sources), height, width, channels), dtype=np.uint8)
    kept = np.zeros(len(sources), dtype=bool)
    skipped: list[str] = []
    for index, source in enumerate(sources):
        try:
            images[index] = _decode_image(read(source), size_hw, channels)
        except Exception:  # Unreadable (incl. Image.DecompressionBombError): skip and count it.
            skipped.append(names[index])
        else:
            kept[index] = True
    return images, kept, skipped


def load_image_folder(path_or_zip: str | os.PathLike | bytes | BinaryIO, *,
                      image_size: int | tuple[int, int]) -> ImageFolder:
    """Load a class-per-subfolder image dataset from a folder or a .zip (path, bytes or file object).

    Each subfolder is a class (sorted by name, like Keras' ``image_dataset_from_directory``);
    a single top folder around them, as zips often have, is looked through. Images are converted
    to RGB (grayscale ones too, so every dataset has 3 channels) and resized to `image_size`
    (an int for square images or (height, width)). Unreadable images and images over
    `MAX_SOURCE_PIXELS` pixels are skipped and counted. Raises `DatasetFormatError` for an empty
    tree, a single class or an unreadable archive.
    """
    size_hw = _size_hw(image_size)
    if isinstance(path_or_zip, (bytes, bytearray)):
        return _load_zip(io.BytesIO(bytes(path_or_zip)), size_hw, "The archive")
    if hasattr(path_or_zip, "read"):
        return _load_zip(path_or_zip, size_hw, "The archive")  # type: ignore[arg-type]
    path = Path(path_or_zip).expanduser()
    if path.is_dir():
        return _load_directory(path, size_hw)
    if path.is_file():
        return _load_zip(path, size_hw, str(path))
    raise DatasetFormatError(f"{path} does not exist; give a folder of class subfolders or a .zip of one.")


def _check_array_budget(count: int, size_hw: tuple[int, int], what: str) -> None:
    needed = count * size_hw[0] * size_hw[1] * 3
    if needed > MAX_FOLDER_ARRAY_BYTES:
        raise DatasetFormatError(
            f"{what} has {count:,} images; at {size_hw[0]}x{size_hw[1]} pixels they would need "
            f"{needed / 2**20:,.0f} MB of memory. Choose a smaller image size or fewer images.")


def _finish_folder(images: np.ndarray, kept: np.ndarray, labels: np.ndarray, class_names: list[str],
                   skipped: list[str], what: str) -> ImageFolder:
    images, labels = images[kept], labels[kept]
    present = [int(label) for label in np.unique(labels)]
    if len(present) == 0:
        raise DatasetFormatError(f"None of the {len(kept):,} images in {what} could be read.")
    if len(present) < len(class_names):
        # Drop classes whose images were all unreadable, renumbering the rest.
        _, labels = filter_classes(labels, present)
        class_names = [class_names[i] for i in present]
    if len(class_names) < 2:
        raise DatasetFormatError(
            f"Only the class {class_names[0]!r} in {what} has readable images; a classifier needs "
            f"at least two.")
    return ImageFolder(x=images, y=labels.astype(np.int64), class_names=tuple(class_names),
                       skipped=len(skipped), skipped_files=tuple(skipped[:20]))


def _load_directory(root: Path, size_hw: tuple[int, int]) -> ImageFolder:
    relative: list[tuple[str, ...]] = []
    for folder, subfolders, files in os.walk(root):
        parts = Path(folder).relative_to(root).parts
        subfolders[:] = sorted(sub for sub in subfolders if not _is_hidden((sub,)))
        relative.extend((*parts, file) for file in files
                        if _is_image_name(file) and not file.startswith("."))
    groups = _group_by_class(relative, str(root))
    class_names = list(groups)
    order = [index for name in class_names for index in groups[name]]
    labels = np.concatenate([np.full(len(groups[name]), label, dtype=np.int64)
                             for label, name in enumerate(class_names)])
    _check_array_budget(len(order), size_hw, str(root))
    paths = [str(root.joinpath(*relative[index])) for index in order]
    names = ["/".join(relative[index]) for index in order]
    images, kept, skipped = _decode_all(paths, lambda path: path, size_hw, names)
    return _finish_folder(images, kept, labels, class_names, skipped, str(root))


def _load_zip(file: str | Path | BinaryIO, size_hw: tuple[int, int], what: str) -> ImageFolder:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DatasetFormatError(f"{what} is not a readable .zip archive ({error}).") from error
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > MAX_ARCHIVE_MEMBERS:
            raise DatasetFormatError(
                f"{what} holds {len(members):,} files; at most {MAX_ARCHIVE_MEMBERS:,} are accepted.")
        members = [info for info in members
                   if _is_image_name(info.filename) and not _is_hidden(_zip_parts(info.filename))]
        total = sum(info.file_size for info in members)
        if total > MAX_ARCHIVE_BYTES:
            raise DatasetFormatError(
                f"{what} would unpack to {total / 2**20:,.0f} MB of images; at most "
                f"{MAX_ARCHIVE_BYTES / 2**20:,.0f} MB are accepted.")
        relative = [_zip_parts(info.filename) for info in members]
        groups = _group_by_class(relative, what)
        class_names = list(groups)
        order = [index for name in class_names for index in groups[name]]
        labels = np.concatenate([np.full(len(groups[name]), label, dtype=np.int64)
                                 for label, name in enumerate(class_names)])
        _check_array_budget(len(order), size_hw, what)

        def read(info: zipfile.ZipInfo) -> bytes:
            if info.file_size > MAX_MEMBER_BYTES:
                raise ValueError(f"{info.file_size:,} bytes is too large for one image")
            return archive.read(info)

        images, kept, skipped = _decode_all([members[i] for i in order], read, size_hw,
                                            [members[i].filename for i in order])
    return _finish_folder(images, kept, labels, class_names, skipped, what)


def _zip_parts(filename: str) -> tuple[str, ...]:
    return tuple(part for part in filename.replace("\\", "/").split("/") if part not in ("", "."))


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
