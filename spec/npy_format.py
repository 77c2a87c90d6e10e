"""The `.npy` format, read by our own parser: untrusted bytes are parsed, never evaluated.

The NPY format (NumPy's `numpy.lib.format` documentation): the magic string
b"\\x93NUMPY", a major and a minor version byte, the header length (a little-endian
uint16 in version 1.0, uint32 in 2.0 and 3.0), then the header: the text of a Python
dict literal with the keys 'descr', 'fortran_order' and 'shape' (latin-1 in 1.0 and 2.0,
UTF-8 in 3.0), padded with spaces and a newline. The raw array data follows.

The header is read by a small parser that accepts exactly that literal (strings, True,
False, a tuple of non-negative ints); nothing in it is ever passed to `eval`,
`ast.literal_eval` or pickle, and `np.load` is not used. Only plain numeric dtypes are
read: little-endian floats and integers, bytes and booleans. Every error is a
`DataFormatError` whose `where` is "<file>: byte <offset>".
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataFormatError

__all__ = [
    "parse_npy", "parse_npy_header", "NpyHeader", "SUPPORTED_DESCRS", "MAGIC", "MAX_NDIM",
    "check_shape", "first_nonfinite",
]

MAGIC = b"\x93NUMPY"
# descr -> dtype. '|' marks one-byte types, where byte order does not apply.
SUPPORTED_DESCRS: dict[str, np.dtype[Any]] = {
    d: np.dtype(d)
    for d in (
        "<f2", "<f4", "<f8",
        "|i1", "<i1", "<i2", "<i4", "<i8",
        "|u1", "<u1", "<u2", "<u4", "<u8",
        "|b1",
    )
}
_HEADER_KEYS = ("descr", "fortran_order", "shape")
# NumPy 2 arrays have at most 64 axes (NPY_MAXDIMS), and their size in bytes, counting the
# dims other than 0, must fit a signed 64-bit integer; claims beyond either are refused
# here, before NumPy sees them.
MAX_NDIM = 64
_MAX_BYTES = 2**63 - 1
_MAX_DIM_DIGITS = 19  # 2**63 - 1 has 19 digits; a longer dim is refused before int()
_LENGTH_FORMAT = {1: "<H", 2: "<I", 3: "<I"}  # header-length field per major version


@dataclass(frozen=True)
class NpyHeader:
    """A parsed NPY header: the dtype descr, the storage order, the shape, and where the
    data starts."""

    descr: str
    fortran_order: bool
    shape: tuple[int, ...]
    data_offset: int


def check_shape(shape: tuple[int, ...], itemsize: int, where: str) -> None:
    """Refuse a claimed shape NumPy cannot hold (more than MAX_NDIM axes, or a size in bytes
    beyond 2**63 - 1 counting the non-zero dims, as a zero-size array of 10**30 rows),
    with a DataFormatError at `where`."""
    if len(shape) > MAX_NDIM:
        raise DataFormatError(where, f"{len(shape)} dimensions; arrays have at most {MAX_NDIM}")
    nonzero = math.prod(d for d in shape if d) * itemsize
    if nonzero > _MAX_BYTES:
        raise DataFormatError(where, f"shape {_short(shape)} is too big for any array "
                                     f"(more than 2**63 - 1 bytes, counting non-zero dims)")


def _short(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 80 else text[:77] + "..."


def first_nonfinite(arr: np.ndarray[Any, Any]) -> tuple[int, ...] | None:
    """The index of the first NaN or infinity in the floating-point array `arr` (row-major),
    or None when every element is finite (always None for integer and boolean arrays)."""
    if arr.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    flat = int(np.argmax(bad.reshape(-1)))
    return tuple(int(i) for i in np.unravel_index(flat, arr.shape))


def parse_npy(buf: bytes, name: str = "<bytes>") -> np.ndarray[Any, Any]:
    """The array held by the NPY bytes `buf`; `name` is the file named in errors. NaN and
    infinite elements are returned as stored (the file readers check them)."""
    header = parse_npy_header(buf, name)
    dtype = SUPPORTED_DESCRS[header.descr]
    count = math.prod(header.shape)
    need = count * dtype.itemsize
    start = header.data_offset
    have = len(buf) - start
    if have < need:
        raise DataFormatError(
            f"{name}: byte {len(buf)}",
            f"data truncated: shape {header.shape} of {header.descr} needs {need} bytes from "
            f"byte {start}, but the file ends after {have}",
        )
    if have > need:
        raise DataFormatError(
            f"{name}: byte {start + need}",
            f"{have - need} unexpected bytes after the data of shape {header.shape} "
            f"({header.descr})",
        )
    raw = buf[start:]
    if header.descr == "|b1":  # any nonzero byte is True, as NumPy reads it
        flat: np.ndarray[Any, Any] = np.frombuffer(raw, dtype=np.uint8, count=count) != 0
    else:
        flat = np.frombuffer(raw, dtype=dtype, count=count)
    arr = flat.reshape(header.shape, order="F" if header.fortran_order else "C")  # checked
    # A fresh, writable, C-ordered array in native byte order, not a view of `buf`.
    return np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C", copy=True)


def parse_npy_header(buf: bytes, name: str = "<bytes>") -> NpyHeader:
    """The header of the NPY bytes `buf`, checked: magic, version, a dict literal with
    exactly the keys descr, fortran_order and shape, and a supported descr."""
    if buf[: len(MAGIC)] != MAGIC:
        got = buf[: len(MAGIC)]
        raise DataFormatError(
            f"{name}: byte 0", f"not an NPY file: expected the magic {MAGIC!r}, got {got!r}"
        )
    if len(buf) < 8:
        raise DataFormatError(f"{name}: byte {len(buf)}", "file ends inside the version bytes")
    major, minor = buf[6], buf[7]
    if major not in _LENGTH_FORMAT or minor != 0:
        raise DataFormatError(
            f"{name}: byte 6",
            f"unsupported NPY version {major}.{minor} (this reader knows 1.0, 2.0 and 3.0)",
        )
    fmt = _LENGTH_FORMAT[major]
    size = struct.calcsize(fmt)
    if len(buf) < 8 + size:
        raise DataFormatError(
            f"{name}: byte {len(buf)}", f"file ends inside the {size}-byte header length"
        )
    (header_len,) = struct.unpack_from(fmt, buf, 8)
    start = 8 + size
    end = start + header_len
    if len(buf) < end:
        raise DataFormatError(
            f"{name}: byte {len(buf)}",
            f"header truncated: it should be {header_len} bytes from byte {start}, but the "
            f"file ends after {len(buf) - start}",
        )
    text = _decode_header(buf[start:end], major, name, start)
    fields = _HeaderParser(text, name, start, "utf-8" if major >= 3 else "latin-1").parse()
    return _check_header(fields, name, start, end)


def _decode_header(raw: bytes, major: int, name: str, start: int) -> str:
    if major < 3:
        return raw.decode("latin-1")  # every byte decodes; the parser rejects what is odd
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(
            f"{name}: byte {start + e.start}", f"header is not valid UTF-8 ({e.reason})"
        ) from None


def _check_header(
    fields: dict[str, tuple[object, int]], name: str, start: int, end: int
) -> NpyHeader:
    keys = sorted(fields)
    if keys != sorted(_HEADER_KEYS):
        raise DataFormatError(
            f"{name}: byte {start}",
            f"header dict must have exactly the keys {', '.join(_HEADER_KEYS)}; got "
            f"{', '.join(map(repr, keys)) or 'none'}",
        )
    descr, descr_at = fields["descr"]
    fortran, fortran_at = fields["fortran_order"]
    shape, shape_at = fields["shape"]
    if not isinstance(descr, str):
        raise DataFormatError(f"{name}: byte {descr_at}", "'descr' must be a string")
    _check_descr(descr, f"{name}: byte {descr_at}")
    if not isinstance(fortran, bool):
        raise DataFormatError(f"{name}: byte {fortran_at}", "'fortran_order' must be True or False")
    if not isinstance(shape, tuple):
        raise DataFormatError(f"{name}: byte {shape_at}", "'shape' must be a tuple of ints")
    check_shape(shape, SUPPORTED_DESCRS[descr].itemsize, f"{name}: byte {shape_at}")
    return NpyHeader(descr, fortran, shape, end)


def _check_descr(descr: str, where: str) -> None:
    if descr in SUPPORTED_DESCRS:
        return
    if descr[:1] == ">":
        raise DataFormatError(
            where,
            f"big-endian dtype {descr!r} is not supported; save it little-endian, e.g. "
            f"arr.astype(arr.dtype.newbyteorder('<'))",
        )
    if descr.lstrip("<>|=")[:1] == "O":
        raise DataFormatError(
            where, f"object arrays ({descr!r}) are not supported: reading them needs pickle"
        )
    raise DataFormatError(
        where,
        f"unsupported dtype {descr!r}; supported: {', '.join(SUPPORTED_DESCRS)}",
    )


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
    | (?P<int>[0-9]+)
    | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
    | (?P<punct>[{}()\[\]:,])
    """,
    re.VERBOSE,
)


class _HeaderParser:
    """A parser of the one literal an NPY header may hold:
    `{'descr': <str>, 'fortran_order': True|False, 'shape': (<int>, ...)}`."""

    def __init__(self, text: str, name: str, base: int, encoding: str) -> None:
        self.text = text
        self.name = name
        self.base = base  # byte offset of text[0] in the file
        self.encoding = encoding
        self.pos = 0  # where scanning resumes
        self.ahead: tuple[str, str, int] | None = None  # one token of lookahead

    def _offset(self, pos: int) -> int:
        """The file byte offset of header character `pos`."""
        return self.base + len(self.text[:pos].encode(self.encoding))

    def _error(self, pos: int, message: str) -> DataFormatError:
        return DataFormatError(f"{self.name}: byte {self._offset(pos)}", message)

    def _scan(self) -> tuple[str, str, int]:
        # Tokens are scanned on demand, so an error names the first thing that is wrong.
        text = self.text
        while self.pos < len(text):
            m = _TOKEN.match(text, self.pos)
            if m is None:
                bad = text[self.pos]
                raise self._error(self.pos, f"unexpected character {bad!r} in the header")
            start, self.pos = self.pos, m.end()
            if m.lastgroup != "space":
                return (m.lastgroup or "", m.group(), start)
        return ("end", "", len(text))

    def _peek(self) -> tuple[str, str, int]:
        if self.ahead is None:
            self.ahead = self._scan()
        return self.ahead

    def _next(self) -> tuple[str, str, int]:
        tok = self._peek()
        self.ahead = None
        return tok

    def _expect(self, text: str, context: str) -> None:
        kind, got, pos = self._next()
        if got != text or kind != "punct":
            raise self._error(pos, f"expected {text!r} {context}, got {got or 'end of header'!r}")

    def parse(self) -> dict[str, tuple[object, int]]:
        kind, text, pos = self._next()
        if text != "{":
            raise self._error(pos, "header is not a dict literal")
        fields: dict[str, tuple[object, int]] = {}
        while self._peek()[1] != "}":
            kind, text, pos = self._next()
            if kind != "string":
                raise self._error(pos, f"header keys must be strings, got {text or 'end'!r}")
            key = text[1:-1]
            if key in fields:
                raise self._error(pos, f"duplicate header key {key!r}")
            self._expect(":", f"after the key {key!r}")
            fields[key] = self._value(key)
            if self._peek()[1] != "}":
                self._expect(",", "between header entries")
        self._next()
        kind, text, pos = self._next()
        if kind != "end":
            raise self._error(pos, f"unexpected {text!r} after the header dict")
        return fields

    def _value(self, key: str) -> tuple[object, int]:
        kind, text, pos = self._next()
        if kind == "string":
            return text[1:-1], self._offset(pos)
        if kind == "name" and text in ("True", "False"):
            return text == "True", self._offset(pos)
        if text == "(":
            return self._tuple(pos), self._offset(pos)
        if text == "[" and key == "descr":
            raise self._error(pos, "structured dtypes (a list descr) are not supported")
        shown = text or "end of header"
        raise self._error(
            pos,
            f"value of {key!r} must be a string, True, False or a tuple of ints, got {shown!r} "
            "(the header is parsed, never evaluated)",
        )

    def _tuple(self, open_pos: int) -> tuple[int, ...]:
        items: list[int] = []
        trailing_comma = False
        while self._peek()[1] != ")":
            kind, text, pos = self._next()
            if kind != "int":
                raise self._error(
                    pos, f"shape entries must be non-negative ints, got {text or 'end'!r}"
                )
            if len(text.lstrip("0")) > _MAX_DIM_DIGITS:
                raise self._error(pos, f"shape entry of {len(text)} digits is too big for "
                                       "any array")
            items.append(int(text))
            trailing_comma = False
            if self._peek()[1] != ")":
                self._expect(",", "between shape entries")
                trailing_comma = True
        self._next()
        if len(items) == 1 and not trailing_comma:
            raise self._error(open_pos, f"({items[0]}) is an int, not a tuple; write ({items[0]},)")
        return tuple(items)
