"""The fast path of the CSV reader: plain files parsed in bulk by `numpy.loadtxt`.

A file qualifies when it is ASCII without control characters other than tab and newline
(and CR LF line ends), without quotes or underscores, with no exponent of four or more
digits, no cell over `MAX_CELL_CHARS` characters, a usual delimiter and every non-blank
line of the same width. On such a file `numpy.loadtxt` (which converts each cell with
Python's correctly rounded string-to-double, like `float`) accepts exactly the cells the
reader's grammar accepts and splits them as the `csv` module would; its cells are checked
again where the values say so (nan, inf, binary32 midpoints). Anything else, including
every file with an error, goes to the exact path, which names the line and column.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PlainTable", "read_plain", "FAST_DELIMITERS", "MAX_CELL_CHARS"]

FAST_DELIMITERS = frozenset(",;\t|")
MAX_CELL_CHARS = 4000  # the exact path refuses longer cells as non-numeric
_TAB, _NEWLINE = 9, 10


@dataclass(frozen=True)
class PlainTable:
    """A plain file read in bulk: the header cells (or None), the binary64 values (rows,
    columns), each row's 1-based line number, and `cell(i)`, the text of the i-th value
    (row-major), for the few cells whose values need a second look."""

    header: tuple[str, ...] | None
    values: np.ndarray[Any, Any]
    lines: np.ndarray[Any, Any]
    cell: Callable[[int], str]


def read_plain(
    text: str, delimiter: str, is_header: Callable[[str], bool]
) -> PlainTable | None:
    """The table in `text` if it qualifies for the fast path (see the module docstring),
    else None. `is_header(line)` decides whether the first non-blank line is a header."""
    if delimiter not in FAST_DELIMITERS or not text.isascii() or '"' in text or "_" in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    if text.endswith("\n"):
        text = text[:-1]
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    newlines = np.flatnonzero(raw == _NEWLINE)
    if int(np.count_nonzero(raw < 32)) != newlines.size + int(np.count_nonzero(raw == _TAB)):
        return None
    if _long_exponent(raw):
        return None
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [raw.size]))
    numbers = np.flatnonzero(ends > starts) + 1  # blank (empty) lines are skipped
    if numbers.size == 0:
        return None
    delims = np.flatnonzero(raw == ord(delimiter))
    first = numbers[0] - 1
    width = int(np.searchsorted(delims, ends[first]) - np.searchsorted(delims, starts[first])) + 1
    if not _rectangular(delims, newlines, width, numbers) or _long_cell(starts, ends, delims):
        return None
    header = None
    body_start = 0
    first_line = text[starts[first] : ends[first]]
    if not first_line.strip():  # the csv module skips it as blank; loadtxt might not
        return None
    if is_header(first_line):
        header = tuple(c.strip() for c in first_line.split(delimiter))
        body_start, numbers = int(ends[first]) + 1, numbers[1:]
        if numbers.size == 0:
            return None
    try:
        values = np.loadtxt(io.StringIO(text[body_start:]), delimiter=delimiter,
                            dtype=np.float64, comments=None, ndmin=2)
    except ValueError:  # a cell it cannot convert: the exact path names it
        return None
    if values.shape != (numbers.size, width):  # a whitespace-only line loadtxt skipped
        return None
    all_lines: list[str] = []

    def cell(i: int) -> str:
        if not all_lines:
            all_lines.extend(text.split("\n"))
        return all_lines[int(numbers[i // width]) - 1].split(delimiter)[i % width]

    return PlainTable(header, values, numbers, cell)


def _long_exponent(raw: np.ndarray[Any, Any]) -> bool:
    """Whether some e or E is followed (after an optional sign) by four digits or more."""
    at = np.flatnonzero((raw | 0x20) == ord("e"))  # "E" | 0x20 is "e"
    if at.size == 0:
        return False
    padded = np.concatenate([raw, np.zeros(6, dtype=np.uint8)])
    start = at + 1 + np.isin(padded[at + 1], (ord("+"), ord("-")))
    digits = [(padded[start + k] - ord("0")) < 10 for k in range(4)]  # uint8 wraps below 0
    return bool(np.any(digits[0] & digits[1] & digits[2] & digits[3]))


def _rectangular(delims: np.ndarray[Any, Any], newlines: np.ndarray[Any, Any], width: int,
                 numbers: np.ndarray[Any, Any]) -> bool:
    """Every non-blank line has width - 1 delimiters (counted with NumPy, not per line)."""
    if delims.size != (width - 1) * numbers.size:
        return False
    if width == 1:
        return True
    per_line = np.bincount(np.searchsorted(newlines, delims), minlength=newlines.size + 1)
    return bool(np.all(per_line[numbers - 1] == width - 1))


def _long_cell(starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any],
               delims: np.ndarray[Any, Any]) -> bool:
    """Whether some cell has more than MAX_CELL_CHARS characters (only lines longer than
    that are split up to look)."""
    for line in np.flatnonzero(ends - starts > MAX_CELL_CHARS).tolist():
        s, e = int(starts[line]), int(ends[line])
        inner = delims[np.searchsorted(delims, s) : np.searchsorted(delims, e)]
        cuts = np.concatenate(([s - 1], inner, [e]))
        if int(np.max(np.diff(cuts))) - 1 > MAX_CELL_CHARS:
            return True
    return False
