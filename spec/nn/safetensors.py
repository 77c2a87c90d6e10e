"""Reading `.safetensors` files (the format PyTorch users save weights in with the
`safetensors` package) into named numpy arrays, by a strict parser of the format.

The format, as its specification describes it (github.com/huggingface/safetensors, README
"Format"): an 8-byte little-endian unsigned header length N; N bytes of UTF-8 JSON (an
object beginning with "{", optionally padded at the end with spaces) mapping each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional "__metadata__"
object of strings to strings; then the byte buffer, little-endian and row-major, with the
offsets relative to its start. Every byte of the buffer belongs to exactly one tensor: no
overlaps and no holes (the specification forbids holes so that a file cannot hide other
data). The header is parsed as JSON, never evaluated, and the file is read with plain file
IO; anything that breaks the rules raises DataFormatError naming the file and the tensor
or field at fault.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .. import strict_json
from ..errors import DataFormatError
from ..npy_format import check_shape

__all__ = ["read_safetensors", "DTYPES", "MAX_HEADER_BYTES"]

# The reference implementation refuses headers above 100 MB (its MAX_HEADER_SIZE); a larger
# length is a corrupt or hostile file, and refusing it keeps us from allocating it.
MAX_HEADER_BYTES = 100_000_000

# The format's dtype names with the little-endian numpy dtype that holds their bytes.
# BF16 is stored as its 16 raw bits and widened to float32 below.
DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}

# Dtypes the format defines that numpy has no type for: named apart from unknown ones so
# the error says "not supported" rather than "not a safetensors dtype".
_UNSUPPORTED = ("F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4")

_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray[Any, Any]]:
    """The named arrays of the `.safetensors` file at `path`, in native byte order, each a
    writable array owning its memory: F64/F32/F16 as float64/float32/float16, BF16 widened
    exactly to float32, integer dtypes as the numpy integer of the same width and BOOL as
    bool. The "__metadata__" entry is checked and dropped. A file that breaks the format
    raises DataFormatError naming the file and the tensor or header field at fault."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        if len(prefix) < 8:
            raise DataFormatError(name, f"file of {len(prefix)} bytes is shorter than the "
                                        "8-byte header length")
        n = int.from_bytes(prefix, "little", signed=False)
        if n > MAX_HEADER_BYTES:
            raise DataFormatError(name, f"header length {n} exceeds the limit of "
                                        f"{MAX_HEADER_BYTES} bytes")
        if 8 + n > size:
            raise DataFormatError(name, f"header length {n} runs past the end of the file "
                                        f"({size} bytes)")
        header_bytes = f.read(n)
        buffer = f.read()
    if len(header_bytes) != n or 8 + n + len(buffer) != size:  # the file changed under us
        raise DataFormatError(name, "file size changed while it was read")
    entries = _parse_header(name, header_bytes)
    _check_layout(name, entries, len(buffer))
    view = memoryview(buffer)
    return {key: _array(name, key, dtype, shape, view[begin:end])
            for key, (dtype, shape, begin, end) in entries.items()}


_Entry = tuple[str, tuple[int, ...], int, int]


def _parse_header(name: str, raw: bytes) -> dict[str, _Entry]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(name, f"header is not valid UTF-8: {e}") from None
    if not text.startswith("{"):
        raise DataFormatError(name, "header does not begin with '{' (not a JSON object)")
    # Only space padding may follow the object; the strict reader refuses anything else
    # after it, duplicate keys, deep nesting, huge integers and non-finite numbers.
    header = strict_json.loads(text.rstrip(" "), f"{name}: header",
                               max_bytes=MAX_HEADER_BYTES)
    if not isinstance(header, dict):
        raise DataFormatError(name, "header is not a JSON object")
    entries: dict[str, _Entry] = {}
    for key, info in header.items():
        if key == "__metadata__":
            _check_metadata(name, info)
        else:
            entries[key] = _parse_entry(name, key, info)
    return entries


def _check_metadata(name: str, info: Any) -> None:
    if not isinstance(info, dict):
        raise DataFormatError(name, f"'__metadata__' is {type(info).__name__}, not an object "
                                    "of strings")
    for k, v in info.items():
        if not isinstance(v, str):
            raise DataFormatError(name, f"'__metadata__' entry {k!r} is {type(v).__name__}, "
                                        "not a string")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_entry(name: str, key: str, info: Any) -> _Entry:
    where = f"tensor {key!r}"
    if not isinstance(info, dict):
        raise DataFormatError(name, f"{where}: entry is {type(info).__name__}, not an object")
    if set(info) != _ENTRY_KEYS:
        raise DataFormatError(name, f"{where}: entry has fields {sorted(info)}, expected "
                                    f"{sorted(_ENTRY_KEYS)}")
    dtype = info["dtype"]
    if dtype in _UNSUPPORTED:
        raise DataFormatError(name, f"{where}: dtype {dtype} is not supported "
                                    f"(supported: {', '.join(DTYPES)})")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise DataFormatError(name, f"{where}: dtype {dtype!r} is not a safetensors dtype "
                                    f"(supported: {', '.join(DTYPES)})")
    shape = info["shape"]
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise DataFormatError(name, f"{where}: shape {str(shape)[:80]} is not a list of "
                                    "non-negative integers")
    check_shape(tuple(shape), DTYPES[dtype].itemsize, f"{name}: {where}.shape")
    offsets = info["data_offsets"]
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_int(o) and o >= 0 for o in offsets)):
        raise DataFormatError(name, f"{where}: data_offsets {offsets!r} is not a pair of "
                                    "non-negative integers")
    begin, end = offsets
    if begin > end:
        raise DataFormatError(name, f"{where}: data_offsets [{begin}, {end}] begin after "
                                    "they end")
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if end - begin != expected:
        raise DataFormatError(name, f"{where}: data_offsets [{begin}, {end}] span "
                                    f"{end - begin} bytes, but {dtype} of shape {shape} "
                                    f"takes {expected}")
    return dtype, tuple(shape), begin, end


def _check_layout(name: str, entries: dict[str, _Entry], buffer_len: int) -> None:
    """Every byte of the buffer belongs to exactly one tensor."""
    at, previous = 0, None
    for key, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: kv[1][2:]):
        if end > buffer_len:
            raise DataFormatError(name, f"tensor {key!r}: data_offsets [{begin}, {end}] run "
                                        f"past the end of the {buffer_len}-byte buffer")
        if begin < at:
            raise DataFormatError(name, f"tensor {key!r}: data_offsets [{begin}, {end}] "
                                        f"overlap tensor {previous!r}, which ends at {at}")
        if begin > at:
            raise DataFormatError(name, f"tensor {key!r}: bytes [{at}, {begin}) of the buffer "
                                        "before it belong to no tensor")
        at, previous = end, key
    if at != buffer_len:
        raise DataFormatError(name, f"bytes [{at}, {buffer_len}) at the end of the buffer "
                                    "belong to no tensor")


def _array(name: str, key: str, dtype: str, shape: tuple[int, ...],
           raw: memoryview) -> np.ndarray[Any, Any]:
    # astype to the native-order dtype copies, so the array owns writable memory.
    stored = np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)
    if dtype == "BF16":
        # bfloat16 is the high half of a binary32: shifting its bits up 16 places is the
        # exact float32 of the same value (NaN payloads and signed zeros included).
        out = np.empty(shape, dtype=np.float32)
        np.left_shift(stored, np.uint32(16), out=out.view(np.uint32))
        return out
    if dtype == "BOOL":
        if stored.size and stored.max() > 1:
            raise DataFormatError(name, f"tensor {key!r}: BOOL byte {int(stored.max())} is "
                                        "neither 0 nor 1")
        return stored.astype(np.bool_)
    return stored.astype(stored.dtype.newbyteorder("="))
