"""Decimal text cells to binary64 or binary32 arrays, each cell rounded once, in bulk.

Python's `float` rounds a decimal string correctly to binary64, so a float64 field takes
it as is. For binary32, rounding that binary64 again is wrong only when it lands exactly
on a midpoint m between two binary32 neighbours: m has 25 significant bits, so it is a
binary64 number, and rounding is monotonic, so a decimal x and its binary64 d lie on the
same side of m unless d == m. Those cells (and those whose binary32 overflows) are
rounded again from the exact decimal. Callers have checked every cell's grammar first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ...spec.errors import DataFormatError
from ...spec.fields.ieee32 import fraction_to_float32

__all__ = ["binary_values", "parse_cells", "ASCII_SPACE"]

# The spaces a cell may have around its number: those Python's float() strips too (it
# refuses "\x1c".."\x1f", which str.strip() would remove).
ASCII_SPACE = " \t\n\r\x0b\x0c"


def parse_cells(cells: Sequence[str]) -> np.ndarray[Any, Any]:
    """The binary64 nearest each cell's decimal (ValueError for a cell float() refuses)."""
    # NumPy converts each str with Python's float (same values, same ValueErrors), in C.
    return np.array(cells, dtype=np.float64).reshape(len(cells))


def binary_values(
    d: np.ndarray[Any, Any],
    cell: Callable[[int], str],
    kind: np.dtype[Any],
    allow_nonfinite: bool,
    locate: Callable[[int], str],
    special: Callable[[str], bool],
) -> np.ndarray[Any, Any]:
    """The cells as a 1-D array of `kind` (float64 or float32), each the value nearest its
    decimal, from `d`, their correctly rounded binary64 values; `cell(i)` is the text of
    cell i (grammar already checked), read only where `d` says it must be.

    A finite decimal beyond the format's range, or (unless `allow_nonfinite`) a nan or
    inf cell, raises DataFormatError at `locate(index)`; `special(text)` says whether a
    cell is written as nan or inf (rather than overflowing)."""
    bad = np.flatnonzero(~np.isfinite(d))
    for i in bad.tolist():
        _check_nonfinite(cell(i), kind, allow_nonfinite, locate(i), special)
    if kind == np.float64:
        return d
    with np.errstate(over="ignore", invalid="ignore"):
        f = d.astype(np.float32)
        back = f.astype(np.float64)
        toward = np.where(d > back, np.inf, -np.inf).astype(np.float32)
        other = np.nextafter(f, toward).astype(np.float64)
        midpoint = (back + other) / 2  # exact: both are binary32, one ulp apart
        redo = np.flatnonzero(((d == midpoint) & (d != back)) | (np.isinf(f) & np.isfinite(d)))
    for i in redo.tolist():
        text = cell(i).strip(ASCII_SPACE)
        v = fraction_to_float32(Fraction(text))
        if not np.isfinite(v):
            raise DataFormatError(locate(i), f"{text[:40]} overflows float32")
        f[i] = v
    return f


def _check_nonfinite(cell: str, kind: np.dtype[Any], allow: bool, where: str,
                     special: Callable[[str], bool]) -> None:
    if not special(cell):
        raise DataFormatError(where, f"{cell.strip(ASCII_SPACE)[:40]} overflows {kind}")
    if not allow:
        raise DataFormatError(where, f"a non-finite cell {cell!r}; pass allow_nonfinite=True "
                                     "to read it")
