"""The bundled example dataset (cnnviz.data.example): deterministic, small, licensed, and loadable."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from cnnviz import data
from cnnviz.data import example

pytestmark = pytest.mark.usefixtures("isolated")


def _decoded(raw: bytes) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return {name: np.asarray(Image.open(io.BytesIO(archive.read(name))))
                for name in archive.namelist()}


def test_regenerating_the_example_gives_the_committed_images():
    committed = example.EXAMPLE_ZIP.read_bytes()
    assert len(committed) < 1_000_000
    assert zipfile.ZipFile(io.BytesIO(committed)).comment.decode() == example.LICENCE and "CC0" in example.LICENCE
    fresh, again = _decoded(example.make_example_zip()), _decoded(committed)
    assert sorted(fresh) == sorted(again)  # Same files, so the same classes and counts...
    counts = {name: sum(path.startswith(f"shapes/{name}/") for path in fresh) for name in example.EXAMPLE_CLASSES}
    assert counts == {name: example.EXAMPLE_PER_CLASS for name in example.EXAMPLE_CLASSES}
    for path, pixels in fresh.items():  # ...and the same pixels (PNG bytes may differ between zlib versions).
        np.testing.assert_array_equal(pixels, again[path], err_msg=path)


def test_the_example_is_what_it_says():
    images = example.example_images()
    dataset = data.load_image_folder(example.example_zip_bytes(), image_size=32, color_mode="grayscale")
    assert dataset.class_names == example.EXAMPLE_CLASSES and dataset.report.skipped_count == 0
    assert dataset.report.images == 3 * example.EXAMPLE_PER_CLASS
    circle = images["circle"][0].astype(float)
    # Light shapes on a darker background: the brightest pixels are the shape's, in the middle area.
    assert circle[circle > 128].size > 0.1 * circle.size and data.spec(dataset.name).dark_background
    # Circles are round: the bright area fills about pi/4 of its bounding box; squares (rotated) and
    # triangles fill less of theirs on average than a square box would, but more than a thin line.
    def fill(image: np.ndarray) -> float:
        image = image.astype(float)
        mask = image > (image.min() + image.max()) / 2
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        return mask.sum() / ((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1))

    assert abs(np.median([fill(image) for image in images["circle"]]) - np.pi / 4) < 0.08
    assert 0.3 < np.median([fill(image) for image in images["triangle"]]) < 0.6
