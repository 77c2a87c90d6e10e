"""Converting values between fields, and reading numbers written as text.

The rules, one per target kind:

- into `exact`: every number keeps its exact value (a float becomes the rational it
  is, so `0.1` becomes 3602879701896397/36028797018963968); NaN and infinity have no
  rational value and raise DomainError naming the element; an interval converts only
  when it is a single point.
- into `float`, `float32`, `ieee32exec`: rationals round once, to nearest, ties to even
  (no double rounding through binary64); floats round as the field rounds them.
- into `interval`: an enclosure of the value (exact for floats and dyadic rationals).

Text ("1/10", "0.1", "-2.5e-3", "7") is parsed as a rational by `fractions.Fraction`'s
grammar, never evaluated; the binary float fields also take "nan", "inf" and "-inf".
Anything else raises DataFormatError naming the element and the text.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import DataFormatError, DomainError
from .fields import Field
from .fields.base import Array
from .fields.ieee32 import Ieee32ExecField, fraction_to_float32
from .fields.interval import IntervalField, mpf_to_fraction
from .fields.native import NativeFloatField

__all__ = ["convert_array", "parse_text", "holds_text"]

_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf,
            "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


_EXPONENT = re.compile(r"[eE]([+-]?\d+)\s*$")
# Far beyond any float (binary64 ends near 1e308, its subnormals near 1e-324) yet cheap to
# expand exactly; larger exponents are refused rather than expanded.
_MAX_EXPONENT = 10_000


def _binary(field: Field) -> bool:
    return isinstance(field, (NativeFloatField, Ieee32ExecField))


def _index(shape: tuple[int, ...], flat: int) -> str:
    return str([int(i) for i in np.unravel_index(flat, shape)]) if shape else "[]"


def holds_text(data: object) -> bool:
    """Whether `data` (a string, nested lists, an array) holds any text item."""
    if isinstance(data, (str, bytes)):
        return True
    if isinstance(data, np.ndarray):
        return data.dtype.kind in "USO" and (data.dtype.kind != "O" or any(
            isinstance(v, (str, bytes)) for v in data.reshape(-1)))
    if isinstance(data, (list, tuple)):
        return any(holds_text(v) for v in data)
    return False


def parse_text(data: object, field: Field, who: str = "tensor") -> np.ndarray[Any, Any]:
    """`data` with its text items parsed (see the module docstring), as an object array of
    Fractions (and floats: NaN and infinities, for binary fields; numbers kept as given)."""
    raw = np.asarray(data, dtype=object)
    out = np.empty(raw.shape, dtype=object)
    flat_in, flat_out = raw.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat_in):
        if isinstance(v, bytes):
            try:
                v = v.decode("ascii")
            except UnicodeDecodeError:
                raise DataFormatError(f"{who}: item {_index(raw.shape, i)}",
                                      f"{v!r} is not a number") from None
        if not isinstance(v, str):
            flat_out[i] = v
            continue
        text = v.strip()
        if text.lower() in _SPECIAL and _binary(field):
            flat_out[i] = _SPECIAL[text.lower()]
            continue
        try:
            exponent = _EXPONENT.search(text)
            if exponent is not None and abs(int(exponent.group(1))) > _MAX_EXPONENT:
                raise ValueError("exponent too large")  # 10**exponent would exhaust memory
            flat_out[i] = Fraction(text)
        except (ValueError, ZeroDivisionError):
            hint = (f"; field {field.name!r} has no NaN or infinity"
                    if text.lower() in _SPECIAL else "")
            raise DataFormatError(
                f"{who}: item {_index(raw.shape, i)}",
                f"{v!r} is not a number (expected an integer, a decimal such as '0.1' or "
                f"'1e-3' with an exponent of at most {_MAX_EXPONENT}, or a fraction such as "
                f"'1/10'){hint}") from None
    return out


def _to_fraction(v: Any, where: str, field: Field) -> Fraction:
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{where}: booleans are not numbers here, got {v!r}")
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise DomainError(f"{where}: {float(v)!r} has no value in field {field.name!r}")
        return Fraction(float(v))
    if hasattr(v, "_mpi_") or hasattr(v, "_mpf_"):  # an mpmath number or interval
        a, b = (v.a, v.b) if hasattr(v, "_mpi_") else (v, v)
        if a != b:
            raise DomainError(f"{where}: the interval {v} is not a single number, so it "
                              f"has no one value in field {field.name!r}")
        try:
            return mpf_to_fraction(a)
        except (ValueError, OverflowError, TypeError):
            raise DomainError(f"{where}: {v} has no value in field {field.name!r}") from None
    raise TypeError(f"{where}: cannot convert {type(v).__name__} {v!r} to a number")


def _round_binary(q: Fraction, field: Field) -> float | np.float32:
    """The rational `q` rounded once to nearest-even in binary field `field`."""
    if field.name == "float":
        try:
            return float(q)  # int / int true division rounds correctly in CPython
        except OverflowError:
            return math.inf if q > 0 else -math.inf
    return fraction_to_float32(q)


def convert_array(host: np.ndarray[Any, Any], field: Field, who: str = "Tensor.to") -> Array:
    """The host array `host` (floats, or objects: Fractions, ints, floats, mpmath
    intervals) as an array of `field`, by the rules of the module docstring."""
    shape = host.shape
    if host.dtype.kind in "fiub" and not isinstance(field, IntervalField) and (
            field.name != "exact" or host.dtype.kind != "f" or bool(np.isfinite(host).all())):
        return field.asarray(host)  # each float rounds once (or is kept exactly)
    items = host.reshape(-1)
    out = np.empty(items.shape, dtype=object)
    special_ok = _binary(field)
    for i, v in enumerate(items):
        where = f"{who}: item {_index(shape, i)}"
        if special_ok and isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
            out[i] = float(v)  # NaN and infinities carry over into binary fields
        elif isinstance(field, IntervalField) and isinstance(v, (float, np.floating)):
            out[i] = float(v)  # the interval field encloses floats exactly itself
        elif isinstance(field, IntervalField) and hasattr(v, "_mpi_"):
            out[i] = v
        else:
            q = _to_fraction(v, where, field)
            out[i] = _round_binary(q, field) if special_ok else q
    if special_ok:
        dtype = np.float64 if field.name == "float" else np.float32
        return field.asarray(out.astype(dtype).reshape(shape))
    return field.asarray(out.reshape(shape))
