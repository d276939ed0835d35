"""Zip archives built byte by byte with `struct`, for the tests of class-folder uploads.

`zipfile` refuses to write what an attacker would send (absolute names, encrypted flags, sizes
that lie, entries sharing one payload), so these archives are written from the format's own
records: local file headers, the central directory and its end record (zip64 above 65,535
entries). `png_bytes` makes small real images.
"""

from __future__ import annotations

import io
import stat
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

STORED, DEFLATED = 0, 8


@dataclass(frozen=True)
class Member:
    name: str
    payload: bytes  # As stored in the archive (deflated for DEFLATED).
    method: int = STORED
    file_size: int | None = None  # Declared uncompressed size (None: len(payload), for STORED).
    crc: int | None = None  # None: the CRC of the payload (right for STORED).
    flags: int = 0
    external_attr: int = 0
    shares_payload_of: int | None = None  # Index of an earlier member whose local record this one points to.


def png_bytes(value: int, size: int = 12, *, seed: int = 0, mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(value + rng.integers(-20, 21, (size, size)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="L")
    if mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def class_members(classes: dict[str, int], *, top: str = "", size: int = 12) -> list[Member]:
    """`count` small PNGs per class folder (`top` + class/), each class a different grey."""
    members = []
    for label, (name, count) in enumerate(classes.items()):
        for index in range(count):
            members.append(Member(f"{top}{name}/{index:05d}.png", png_bytes(40 + 80 * label, size, seed=index)))
    return members


def zeros_deflated(megabytes: int) -> bytes:
    """A raw deflate stream of `megabytes` MiB of zero bytes (about 1 kB per MiB), built from one
    fully flushed block repeated, so a gigabyte takes milliseconds to make."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + repeated * (megabytes - 1) + compressor.flush()


def symlink_attr() -> int:
    return (stat.S_IFLNK | 0o777) << 16


def build_zip(members: list[Member]) -> bytes:
    out = io.BytesIO()
    central = []
    offsets: list[int] = []
    for index, member in enumerate(members):
        name = member.name.encode()
        size = len(member.payload) if member.file_size is None else member.file_size
        crc = zlib.crc32(member.payload) if member.crc is None else member.crc
        if member.shares_payload_of is None:
            offsets.append(out.tell())
            out.write(struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 20, member.flags, member.method, 0, 0x21,
                                  crc, len(member.payload), size, len(name), 0))
            out.write(name)
            out.write(member.payload)
        else:
            offsets.append(offsets[member.shares_payload_of])
        central.append(struct.pack("<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", 0x031E, 20, member.flags, member.method,
                                   0, 0x21, crc, len(member.payload), size, len(name), 0, 0, 0, 0,
                                   member.external_attr, offsets[index]) + name)
    start = out.tell()
    for record in central:
        out.write(record)
    directory_size = out.tell() - start
    count = len(members)
    if count > 0xFFFF:  # zip64 end record and locator, then the classic end record saying "see zip64".
        zip64_at = out.tell()
        out.write(struct.pack("<4sQHHLLQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, directory_size, start))
        out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1))
        out.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, directory_size, start, 0))
    else:
        out.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, count, count, directory_size, start, 0))
    return out.getvalue()
