"""The `.npz` format (what `np.savez` writes), read without `np.load` and without pickle.

An archive is a ZIP file whose members are `.npy` files, each named after its array
("weight.npy" holds "weight"). The ZIP structure is read by the standard `zipfile` module
and every member by our NPY parser (`npy_format`). Sizes a file claims are checked before
anything is allocated: a member's uncompressed size must agree with the size its NPY header
implies, and must be backed by the archive's bytes (stored members byte for byte,
deflated ones within deflate's greatest ratio). Every failure of the ZIP layer
(`BadZipFile`, `zlib.error`, `EOFError`, ...) becomes a `DataFormatError` naming the file
and the member.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import IO, Any

import numpy as np

from .errors import DataFormatError
from .npy_format import MAGIC, SUPPORTED_DESCRS, first_nonfinite, parse_npy, parse_npy_header

__all__ = ["parse_npz", "MAX_NPY_HEADER_BYTES"]

# Deflate turns one byte into at most 258 * 8 / 2 = 1032 bytes (the longest match coded in
# the shortest two-bit-plus-literal code); a member claiming more than this ratio of its
# compressed size cannot hold what it claims.
_DEFLATE_RATIO = 1032
# NumPy's own reader refuses headers over 10,000 bytes unless told otherwise; ours allows
# more but still bounds what a header length field can make us read.
MAX_NPY_HEADER_BYTES = 1 << 20
_PREFIX = len(MAGIC) + 2  # magic, major, minor; the length field follows

# What zipfile and zlib raise on corrupt input: each becomes a DataFormatError.
_ZIP_ERRORS = (
    zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
    RuntimeError, struct.error, UnicodeDecodeError, KeyError, IndexError, OverflowError,
)


def parse_npz(
    buf: bytes, name: str = "<bytes>", *, allow_nonfinite: bool = False
) -> dict[str, np.ndarray[Any, Any]]:
    """The named arrays of the NPZ bytes `buf` (members "k.npy" give the key "k"), in
    archive order; `name` is the file named in errors. A NaN or infinite element raises
    DataFormatError naming the member and the element, unless `allow_nonfinite`."""
    if buf[: len(MAGIC)] == MAGIC:
        raise DataFormatError(name, "not an .npz archive (a single .npy array?)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(buf))
    except _ZIP_ERRORS as e:
        raise DataFormatError(name, f"not an .npz archive: {type(e).__name__}: {e}") from None
    out: dict[str, np.ndarray[Any, Any]] = {}
    with archive:
        for info in archive.infolist():
            key, where = _member_key(info, name, out)
            try:
                arr = _read_member(archive, info, where, len(buf))
            except _ZIP_ERRORS as e:
                raise DataFormatError(where, f"corrupt archive member: {type(e).__name__}: {e}") \
                    from None
            if not allow_nonfinite:
                at = first_nonfinite(arr)
                if at is not None:
                    raise DataFormatError(
                        f"{where}: element {at}",
                        f"non-finite value {arr[at]!r}; pass allow_nonfinite=True to read it",
                    )
            out[key] = arr
    return out


def _member_key(info: zipfile.ZipInfo, name: str, seen: dict[str, Any]) -> tuple[str, str]:
    member = info.filename
    where = f"{name}: member {member!r}"
    if not member.endswith(".npy"):
        raise DataFormatError(where, "an .npz member must be an .npy array")
    key = member[: -len(".npy")]
    if key in seen:
        raise DataFormatError(where, "the archive has this member twice")
    if info.flag_bits & 0x1:
        raise DataFormatError(where, "encrypted members are not supported")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataFormatError(where, f"compression method {info.compress_type} is not "
                                     "supported (only stored and deflated, as np.savez writes)")
    return key, where


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, archive_size: int
) -> np.ndarray[Any, Any]:
    claimed = info.file_size
    backed = info.compress_size * (_DEFLATE_RATIO if info.compress_type else 1)
    if info.compress_size > archive_size or claimed > backed + _DEFLATE_RATIO:
        raise DataFormatError(where, f"claims {claimed} bytes, more than its "
                                     f"{info.compress_size} stored bytes can hold")
    with archive.open(info) as stream:
        head = _read_exactly(stream, _PREFIX, where)
        if head[: len(MAGIC)] != MAGIC:
            raise DataFormatError(f"{where}: byte 0", f"not an NPY array: expected the magic "
                                                      f"{MAGIC!r}, got {head[:len(MAGIC)]!r}")
        size = 2 if head[len(MAGIC)] == 1 else 4
        length_field = _read_exactly(stream, size, where)
        header_len = int.from_bytes(length_field, "little")
        if header_len > MAX_NPY_HEADER_BYTES:
            raise DataFormatError(f"{where}: byte {_PREFIX}", f"header length {header_len} "
                                  f"exceeds the limit of {MAX_NPY_HEADER_BYTES} bytes")
        prefix = head + length_field + _read_exactly(stream, header_len, where)
        header = parse_npy_header(prefix, where)
        count = 1
        for d in header.shape:
            count *= d
        need = header.data_offset + count * SUPPORTED_DESCRS[header.descr].itemsize
        if need != claimed:  # checked before the data is read or allocated
            raise DataFormatError(where, f"its header (shape {header.shape}, {header.descr}) "
                                         f"needs {need} bytes, but the archive says {claimed}")
        data = _read_exactly(stream, need - len(prefix), where)
    return parse_npy(prefix + data, where)


def _read_exactly(stream: IO[bytes], n: int, where: str) -> bytes:
    raw = stream.read(n)
    if len(raw) != n:
        raise DataFormatError(where, f"member ends early: {len(raw)} of {n} bytes")
    return raw
