"""Shared plumbing of the data layer: reading untrusted files, UTF-8 with byte offsets,
and turning host numbers (NumPy arrays, Fractions) into a field's tensors.

Every conversion rounds once: decimals read from text become `Fraction`s first, so a
float32 field gets the binary32 nearest the decimal (not the binary32 nearest its binary64
rounding), `exact` gets the decimal exactly, and `interval` an enclosure of it.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from ...spec.errors import DataFormatError
from ...spec.fields import Field, get_field
from ...spec.fields.ieee32 import fraction_to_float32
from ...spec.tensor import Tensor

__all__ = [
    "PathLike",
    "DType",
    "Number",
    "read_bytes",
    "decode_utf8",
    "host_kind",
    "host_to_tensor",
    "numbers_to_tensor",
]

PathLike: TypeAlias = str | os.PathLike[str]
DType: TypeAlias = str | Field
# A number parsed from text: the exact decimal, or a non-finite float (nan, inf).
Number: TypeAlias = Fraction | float

_BOM = b"\xef\xbb\xbf"


def read_bytes(path: PathLike) -> bytes:
    """The bytes of the file at `path` (OSError, such as FileNotFoundError, propagates)."""
    return Path(path).read_bytes()


def decode_utf8(raw: bytes, name: str) -> str:
    """`raw` decoded as UTF-8 (one leading byte-order mark dropped); invalid UTF-8 raises
    DataFormatError naming the file and the byte offset of the first bad byte."""
    start = len(_BOM) if raw.startswith(_BOM) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = start + e.start
        bad = raw[offset : offset + 4]
        raise DataFormatError(
            f"{name}: byte {offset}", f"invalid UTF-8 ({e.reason}) at bytes {bad!r}"
        ) from None


def host_kind(field: Field) -> np.dtype[Any]:
    """The NumPy dtype of `field`'s host values: float64, float32 or object."""
    kind: np.dtype[Any] = field.to_numpy(field.constant(0)).dtype
    return kind


def host_to_tensor(host: np.ndarray[Any, Any], dtype: DType, where: str) -> Tensor:
    """A tensor of field `dtype` holding the numbers of the NumPy array `host`.

    Booleans become 0/1. A value the field cannot hold (nan in `exact`) raises
    DataFormatError at `where`."""
    field = get_field(dtype)
    if host.dtype == np.bool_:
        host = host.astype(np.uint8)  # `exact` refuses booleans; 0/1 is what they mean here
    try:
        data = field.asarray(host)
    except (ValueError, TypeError, OverflowError, ArithmeticError) as e:
        raise DataFormatError(where, f"cannot convert to field {field.name!r}: {e}") from None
    return Tensor(data, field)


def numbers_to_tensor(values: np.ndarray[Any, Any], dtype: DType) -> Tensor:
    """A tensor of field `dtype` from an object array of parsed `Number`s, rounded once.

    Callers reject non-finite values for fields without them (`exact`, `interval`)."""
    field = get_field(dtype)
    kind = host_kind(field)
    flat = values.reshape(-1)
    host: np.ndarray[Any, Any]
    if kind == np.float32:
        host = np.array([_to_float32(v) for v in flat], dtype=np.float32)
    elif kind == np.float64:
        host = np.array([float(v) for v in flat], dtype=np.float64)  # Fraction -> float rounds once
    else:
        host = np.empty(flat.shape, dtype=object)
        host[:] = list(flat)
    return Tensor(field.asarray(host.reshape(values.shape)), field)


def _to_float32(v: Number) -> np.float32:
    return fraction_to_float32(v) if isinstance(v, Fraction) else np.float32(v)
