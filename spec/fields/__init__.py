"""Scalar fields: what the numbers are and how each primitive rounds.

`float` (binary64) and `float32` are the array library's native arithmetic;
`ieee32exec` is binary32 with a fixed, reproducible semantics; `exact` is `Fraction`;
`interval` is mpmath intervals at a chosen precision. `get_field` maps the names used by
`--dtype` to field instances.
"""

from __future__ import annotations

from functools import cache

from .base import PI, Array, ArrayField, Constant, Field, SliceSpec
from .exact import ExactField, exact
from .ieee32 import Ieee32ExecField, ieee32exec
from .interval import IntervalField, interval
from .native import NativeFloatField, float32, float64

__all__ = [
    "PI",
    "Array",
    "ArrayField",
    "Constant",
    "Field",
    "SliceSpec",
    "ExactField",
    "Ieee32ExecField",
    "IntervalField",
    "NativeFloatField",
    "exact",
    "float32",
    "float64",
    "ieee32exec",
    "interval",
    "get_field",
    "interval_field",
    "FIELD_NAMES",
]

FIELD_NAMES = ("float", "float32", "ieee32exec", "exact", "interval")


def get_field(name: str | Field) -> Field:
    """The field called `name` (one of FIELD_NAMES, or `interval<prec>`), or `name` itself."""
    if isinstance(name, Field):
        return name
    table: dict[str, Field] = {
        "float": float64,
        "float64": float64,
        "float32": float32,
        "ieee32exec": ieee32exec,
        "exact": exact,
        "interval": interval,
    }
    if name in table:
        return table[name]
    if name.startswith("interval") and name[len("interval") :].isdigit():
        return interval_field(int(name[len("interval") :]))
    raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(FIELD_NAMES)}")


@cache
def interval_field(prec: int) -> IntervalField:
    """The one interval field of precision `prec` (operands must share a field object)."""
    return interval if prec == interval.prec else IntervalField(prec)
