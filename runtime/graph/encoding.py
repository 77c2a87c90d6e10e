"""Exact text encodings of the numbers a graph carries: attribute values and literal arrays.

Attribute values (ints, floats, Fractions, PI, strings, bools, None, tuples of these) map
to JSON values that decode to equal values of the same type: floats as `float.hex`
(`{"float": "0x1.8p+0"}`), Fractions as `{"fraction": "p/q"}`, pi as `{"symbol": "pi"}`,
tuples as lists. The same encoding, frozen into tuples, is the canonical key that CSE
and fingerprints compare (so 0.0 and -0.0 stay different constants).

Literal arrays (captured tensors, folded constants) are stored as one string per element
in the field's own exact notation: float hex (NaNs by their bit pattern) for the binary
fields, "p/q" for `exact`, "[lo,hi]" with dyadic endpoints "MpE" (= M * 2**E) for
`interval`. Decoding parses; nothing is evaluated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ...spec.errors import DataFormatError, UnsupportedOperation
from ...spec.fields import ExactField, Ieee32ExecField, IntervalField, NativeFloatField
from ...spec.fields.base import PI, Array, Field, SymbolicPi
from ...spec.shapes import Shape, size_of

__all__ = [
    "Literal",
    "encode_value",
    "decode_value",
    "value_key",
    "freeze_attr",
    "encode_literal",
    "decode_literal",
]

_INT = re.compile(r"-?[0-9]+\Z")
_FRACTION = re.compile(r"(-?[0-9]+)(?:/([0-9]+))?\Z")
_DYADIC = re.compile(r"(-?[0-9]+)p(-?[0-9]+)\Z")
_NAN_BITS = re.compile(r"nan:0x([0-9a-f]+)\Z")
_FLOAT_HEX = re.compile(r"-?0x[0-9a-f]+(\.[0-9a-f]*)?p[+-][0-9]+")
_MAX_DIGITS = 4000  # below Python's int-parsing limit, so a long number is our error


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant array's elements, each in its field's exact text notation, row-major."""

    items: tuple[str, ...]

    def __repr__(self) -> str:
        shown = ", ".join(self.items[:4]) + (", ..." if len(self.items) > 4 else "")
        return f"Literal[{shown}]"


# -- attribute values ----------------------------------------------------------
def freeze_attr(value: Any, where: str) -> Any:
    """`value` as an immutable attribute value (lists become tuples); bad types raise."""
    if value is None or isinstance(value, (bool, str, Fraction, SymbolicPi)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return tuple(freeze_attr(v, where) for v in value)
    raise TypeError(f"{where}: attribute value {value!r} ({type(value).__name__}) is not "
                    "an int, float, Fraction, PI, str, bool, None or tuple of these")


def encode_value(value: Any) -> Any:
    """The JSON value of an attribute value (exact; see the module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, Fraction):
        return {"fraction": _fraction_text(value)}
    if isinstance(value, SymbolicPi):
        return {"symbol": "pi"}
    if isinstance(value, tuple):
        return [encode_value(v) for v in value]
    raise TypeError(f"cannot encode attribute value {value!r}")


def decode_value(data: Any, where: str) -> Any:
    """The attribute value a JSON value encodes; anything else raises DataFormatError."""
    if data is None or isinstance(data, (bool, str)):
        return data
    if isinstance(data, int):
        return data
    if isinstance(data, list):
        return tuple(decode_value(v, f"{where}[{i}]") for i, v in enumerate(data))
    if isinstance(data, dict) and len(data) == 1:
        ((kind, text),) = data.items()
        if kind == "float" and isinstance(text, str):
            return _parse_float_hex(text, where)
        if kind == "fraction" and isinstance(text, str):
            return _parse_fraction(text, where)
        if kind == "symbol" and text == "pi":
            return PI
    raise DataFormatError(where, f"expected an int, bool, string, null, list, "
                                 f'{{"float": hex}}, {{"fraction": "p/q"}} or '
                                 f'{{"symbol": "pi"}}, got {data!r}')


def value_key(value: Any) -> Any:
    """A hashable key equal for two attribute values exactly when they are the same value
    of the same type (0.0 vs -0.0, 1 vs 1.0 and NaNs are told apart by their encoding)."""
    if isinstance(value, tuple):
        return ("tuple", tuple(value_key(v) for v in value))
    if isinstance(value, Literal):
        return ("literal", value.items)
    enc = encode_value(value)
    return (type(value).__name__, repr(enc))


def _fraction_text(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def _parse_float_hex(text: str, where: str) -> float:
    if text in ("inf", "-inf", "nan"):
        return float(text)
    if len(text) > _MAX_DIGITS or not _FLOAT_HEX.fullmatch(text):
        raise DataFormatError(where, f"expected a float in float.hex notation, got {text[:40]!r}")
    try:
        return float.fromhex(text)
    except OverflowError:  # 0x1p+99999: beyond binary64, where no finite float is the value
        raise DataFormatError(where, f"{text[:40]} overflows a binary64 float") from None


def _parse_fraction(text: str, where: str) -> Fraction:
    m = _FRACTION.match(text)
    if not m or len(text) > _MAX_DIGITS:
        raise DataFormatError(where, f'expected a rational "p" or "p/q", got {text[:40]!r}')
    num, den = int(m.group(1)), int(m.group(2) or 1)
    if den == 0:
        raise DataFormatError(where, f"zero denominator in {text!r}")
    return Fraction(num, den)


# -- literal arrays ------------------------------------------------------------
def _kind(field: Field) -> str:
    if isinstance(field, (NativeFloatField, Ieee32ExecField)):
        return "binary"
    if isinstance(field, ExactField):
        return "exact"
    if isinstance(field, IntervalField):
        return "interval"
    raise UnsupportedOperation("literal", field.name, "no exact text encoding for this field")


def _binary_dtype(field: Field) -> np.dtype[Any]:
    if isinstance(field, NativeFloatField):
        return field.np_dtype
    return np.dtype(np.float32)  # ieee32exec


def encode_literal(field: Field, array: Array) -> Literal:
    """The exact element encodings of `array`, a value of `field`."""
    kind = _kind(field)
    host = field.to_numpy(array).reshape(-1)
    if kind == "binary":
        dtype = _binary_dtype(field)
        bits = np.dtype(f"u{dtype.itemsize}")
        vals = np.asarray(host, dtype=dtype)
        return Literal(tuple(
            f"nan:0x{int(v.view(bits)):x}" if math.isnan(v) else float(v).hex() for v in vals
        ))
    if kind == "exact":
        return Literal(tuple(_fraction_text(Fraction(v)) for v in host))
    return Literal(tuple(_interval_text(v) for v in host))


def decode_literal(field: Field, lit: Literal, shape: Shape, where: str) -> Array:
    """The field array a literal encodes (NumPy-backed); a malformed item raises
    DataFormatError naming `where` and the item index."""
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise DataFormatError(where, f"shape {str(shape)[:60]} is not a list of non-negative "
                                     "integers")
    if len(lit.items) != size_of(shape):
        raise DataFormatError(where, f"literal has {len(lit.items)} items, shape {shape} "
                                     f"needs {size_of(shape)}")
    kind = _kind(field)
    if kind == "binary":
        dtype = _binary_dtype(field)
        out = np.empty(len(lit.items), dtype=dtype)
        for i, text in enumerate(lit.items):
            out[i] = _binary_item(text, dtype, f"{where}[{i}]")
        return out.reshape(shape)
    if kind == "exact":
        obj = np.empty(len(lit.items), dtype=object)
        for i, text in enumerate(lit.items):
            obj[i] = _parse_fraction(text, f"{where}[{i}]")
        return obj.reshape(shape)
    assert isinstance(field, IntervalField)
    obj = np.empty(len(lit.items), dtype=object)
    for i, text in enumerate(lit.items):
        obj[i] = _parse_interval(field, text, f"{where}[{i}]")
    return obj.reshape(shape)


def _binary_item(text: str, dtype: np.dtype[Any], where: str) -> Any:
    m = _NAN_BITS.match(text)
    if m:
        width = 8 * dtype.itemsize
        if len(m.group(1)) > width // 4 or int(m.group(1), 16) >> width:
            raise DataFormatError(where, f"{text[:40]!r} has more than the {width} bits of a "
                                         f"{dtype} NaN")
        bits = np.array(int(m.group(1), 16)).astype(f"u{dtype.itemsize}")
        value = bits.view(dtype)
        if not np.isnan(value):
            raise DataFormatError(where, f"{text!r} is not a NaN bit pattern")
        return value
    v = _parse_float_hex(text, where)
    if math.isnan(v):
        raise DataFormatError(where, "NaNs are written by their bits, nan:0x...")
    cast = dtype.type(v)
    if float(cast) != v:
        raise DataFormatError(where, f"{text} is not exactly representable in {dtype}")
    return cast


def _endpoint_text(raw: tuple[int, int, int, int]) -> str:
    from mpmath.libmp import finf, fnan, fninf

    if raw == finf:
        return "inf"
    if raw == fninf:
        return "-inf"
    if raw == fnan:
        return "nan"
    sign, man, exp, _ = raw
    return f"{-man if sign else man}p{exp}"


def _interval_text(v: Any) -> str:
    lo, hi = v._mpi_
    return f"[{_endpoint_text(lo)},{_endpoint_text(hi)}]"


def _parse_endpoint(text: str, where: str) -> Any:
    from mpmath.libmp import finf, fnan, fninf, from_man_exp

    specials = {"inf": finf, "-inf": fninf, "nan": fnan}
    if text in specials:
        return specials[text]
    m = _DYADIC.match(text)
    if not m or len(text) > _MAX_DIGITS:
        raise DataFormatError(where, f"expected an endpoint 'MpE', inf or -inf, got {text[:40]!r}")
    return from_man_exp(int(m.group(1)), int(m.group(2)))


def _parse_interval(field: IntervalField, text: str, where: str) -> Any:
    if not (text.startswith("[") and text.endswith("]")) or text.count(",") != 1:
        raise DataFormatError(where, f"expected an interval '[lo,hi]', got {text[:40]!r}")
    lo_t, hi_t = text[1:-1].split(",")
    lo, hi = _parse_endpoint(lo_t, where), _parse_endpoint(hi_t, where)
    from mpmath.libmp import fnan, mpf_le

    if fnan not in (lo, hi) and not mpf_le(lo, hi):
        raise DataFormatError(where, f"interval {text[:60]} has lo > hi")
    return field.ctx.make_mpf((lo, hi))
