"""The bad-archive corpus: every unsafe or unusable upload gets its own message for the student,
quickly and in bounded memory, and nothing is extracted or left behind (cnnviz.data.folders).

The archives are written byte by byte (`zip_files`), so they can be what an attacker or a
confused student would send; memory is measured with tracemalloc around the load alone.
"""

from __future__ import annotations

import tempfile
import tomllib
import tracemalloc
from pathlib import Path

import pytest
from zip_files import DEFLATED, Member, build_zip, class_members, png_bytes, symlink_attr, zeros_deflated

from cnnviz import data, images
from cnnviz.data import folders
from cnnviz.lessons import calculator

pytestmark = pytest.mark.usefixtures("isolated")

MEMORY_BOUND = 24 * 2**20  # Peak Python allocations of one refused load (the archives are up to 10 MB).
GOOD = {"circles": 12, "squares": 12}


@pytest.fixture(autouse=True)
def private_temp(tmp_path, monkeypatch):
    """A private temporary folder, checked empty after each test, like the disk cache after a refusal."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == []


def load_measured(raw: bytes, **options):
    tracemalloc.start()
    try:
        return data.load_image_folder(raw, image_size=options.pop("image_size", 16), **options), \
            tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused(raw: bytes, match: str) -> str:
    """The message of the `DatasetFormatError` a load of `raw` raises; asserts the memory bound and
    that nothing reached the disk cache."""
    tracemalloc.start()
    try:
        with pytest.raises(data.DatasetFormatError, match=match) as info:
            data.load_image_folder(raw, image_size=16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MB"
    cache_dir = data.cache_dir() / "datasets"
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []
    return str(info.value)


def with_good(*extra: Member) -> bytes:
    return build_zip(class_members(GOOD) + list(extra))


def test_a_clean_archive_loads_and_the_corpus_helpers_make_real_zips():
    dataset, peak = load_measured(with_good())
    assert dataset.class_names == ("circles", "squares") and dataset.report.skipped_count == 0
    assert peak < MEMORY_BOUND


@pytest.mark.parametrize("name", ["../evil.png", "circles/../../evil.png", "..\\windows.png"])
def test_path_traversal_is_refused_naming_the_file(name):
    message = refused(with_good(Member(name, png_bytes(10))), "climbs out of the archive")
    assert name in message


@pytest.mark.parametrize("name", ["/etc/passwd.png", "\\\\server\\share.png", "C:/Windows/x.png"])
def test_absolute_paths_are_refused_naming_the_file(name):
    message = refused(with_good(Member(name, png_bytes(10))), "an absolute path")
    assert name in message


def test_symbolic_links_are_refused():
    link = Member("circles/link.png", b"/etc/shadow", external_attr=symlink_attr())
    assert "circles/link.png" in refused(with_good(link), "is a symbolic link")


@pytest.mark.parametrize("name", ["squares/more.zip", "squares/photos.tar.gz", "inner.7z"])
def test_nested_archives_are_refused_not_opened(name):
    assert name in refused(with_good(Member(name, build_zip(class_members(GOOD))) ), "archive inside the archive")


def test_encrypted_members_are_refused():
    locked = Member("squares/secret.png", png_bytes(99), flags=0x1)
    assert "squares/secret.png" in refused(with_good(locked), "password-protected")


def test_non_images_are_skipped_and_listed_with_the_reason():
    junk = [Member("circles/notes.txt", b"hello"), Member("squares/fake.png", b"not a png at all"),
            Member("README.md", b"# my data"), Member("__MACOSX/circles/._0.png", b"mac metadata")]
    dataset, _ = load_measured(with_good(*junk))
    reasons = dict(dataset.report.skipped)
    assert reasons == {"circles/notes.txt": "not an image file (.txt)", "README.md": "not an image file (.md)",
                       "squares/fake.png": "not a readable image"}
    assert dataset.report.skipped_count == 3
    assert dataset.report.train_counts + dataset.report.test_counts == (10, 10, 2, 2)  # Nothing else kept.


def test_only_non_images_is_refused():
    refused(build_zip([Member(f"{c}/{i}.txt", b"x") for c in ("a", "b") for i in range(12)]),
            "no class subfolders with images")


def test_fewer_than_two_classes_is_refused_naming_the_class():
    assert "circles/" in refused(build_zip(class_members({"circles": 20}, top="mydata/")), "only one class folder")


def test_a_class_with_too_few_images_is_refused_naming_it():
    message = refused(build_zip(class_members({"circles": 12, "squares": 3})), "has only 3 readable images")
    assert "'squares'" in message and str(folders.MIN_IMAGES_PER_CLASS) in message


def test_one_class_with_50_times_the_others_is_a_warning_not_an_error():
    dataset, _ = load_measured(build_zip(class_members({"big": 500, "small": 10, "tiny": 10})))
    (warning,) = dataset.report.warnings
    assert "'big' has 500 images, 50 times as many as 'small'" in warning
    balanced, _ = load_measured(with_good())
    assert balanced.report.warnings == ()


def test_a_zip_bomb_is_refused_from_its_declared_size_without_unpacking():
    bomb = Member("circles/bomb.png", zeros_deflated(1024), method=DEFLATED, file_size=1 << 30, crc=0)
    assert "circles/bomb.png" in refused(with_good(bomb), "to 1,024 MB")


def test_many_entries_sharing_one_payload_are_refused_by_their_total_size():
    # Each entry declares 15 MB (under the per-image limit) and all point to the same 15 kB of data.
    payload = zeros_deflated(15)
    shared = [Member("circles/0.png", payload, method=DEFLATED, file_size=15 << 20, crc=0)]
    shared += [Member(f"circles/{i}.png", payload, method=DEFLATED, file_size=15 << 20, crc=0, shares_payload_of=0)
               for i in range(1, 40)]
    refused(build_zip(shared + class_members({"squares": 12})), "would unpack to 600 MB of images")


def test_a_member_that_lies_about_its_size_is_cut_at_the_declared_size_and_skipped():
    liar = Member("circles/liar.png", zeros_deflated(200), method=DEFLATED, file_size=4096, crc=0)
    dataset, peak = load_measured(with_good(liar))
    assert dict(dataset.report.skipped)["circles/liar.png"].startswith("damaged in the archive")
    assert peak < MEMORY_BOUND  # 200 MB of zeros were never unpacked.


def test_100000_tiny_members_are_refused_from_the_end_record():
    raw = build_zip([Member(f"c{i % 3}/{i}.png", b"") for i in range(100_000)])
    assert "100,000 files" in refused(raw, f"at most {folders.MAX_ARCHIVE_MEMBERS:,}")


def test_not_a_zip_and_too_large_a_zip_are_refused():
    refused(b"PK\x03\x04 truncated nonsense", "not a readable .zip archive")
    refused(bytes(folders.MAX_ZIP_BYTES + 1), "a .zip of at most 50 MB")


def test_the_servers_upload_limit_is_the_zip_limit_and_other_uploads_keep_their_own():
    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == folders.MAX_ZIP_BYTES
    # A picture or a stack that the server now lets through is still refused by its decoder.
    assert images.MAX_BYTES <= 10 * 2**20 and calculator.MAX_IMPORT_BYTES <= 10 * 2**20
    with pytest.raises(images.ImageDecodeError, match="the limit is 10 MB"):
        images.decode_image(bytes(20 * 2**20))
