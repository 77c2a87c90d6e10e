"""The fast path of the CSV reader: plain files split without the `csv` module.

A file qualifies when it is ASCII, has no quotes, no underscores, no bare carriage
returns, no exponent of four or more digits and a usual delimiter; then splitting on
newlines and the delimiter finds exactly the cells the `csv` module would, and Python's
`float` accepts exactly the cells the reader's grammar accepts (it also takes "1_0",
non-ASCII digits and huge exponents, which these conditions exclude). Anything else,
including every file with an error, goes to the exact path, which names the line and
column at fault.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["split_plain", "FAST_DELIMITERS", "MAX_CELL_CHARS"]

FAST_DELIMITERS = frozenset(",;\t|")
MAX_CELL_CHARS = 4000  # the exact path refuses longer cells as non-numeric


def split_plain(text: str, delimiter: str) -> tuple[list[str], int, np.ndarray[Any, Any]] | None:
    """The cells of a plain rectangular CSV text, row-major, with the row width and each
    row's 1-based line number (blank lines skipped); None when the text does not qualify
    for the fast path (see the module docstring) or its rows differ in width."""
    if delimiter not in FAST_DELIMITERS or not text.isascii() or '"' in text or "_" in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    if text.endswith("\n"):
        text = text[:-1]
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    if _long_exponent(raw):
        return None
    lines = text.split("\n")
    blank = "" in lines
    numbers = (np.flatnonzero(np.fromiter(map(bool, lines), bool, count=len(lines))) + 1
               if blank else np.arange(1, len(lines) + 1))
    if numbers.size == 0:
        return None
    width = lines[int(numbers[0]) - 1].count(delimiter) + 1
    if not _rectangular(raw, delimiter, width, len(lines), numbers):
        return None
    if width == 1:
        cells = list(filter(None, lines)) if blank else lines
    elif blank:
        cells = delimiter.join(filter(None, lines)).split(delimiter)
    else:
        cells = text.replace("\n", delimiter).split(delimiter)
    if max(map(len, cells)) > MAX_CELL_CHARS:
        return None
    return cells, width, numbers


def _long_exponent(raw: np.ndarray[Any, Any]) -> bool:
    """Whether some e or E is followed (after an optional sign) by four digits or more."""
    at = np.flatnonzero((raw | 0x20) == ord("e"))  # "E" | 0x20 is "e"
    if at.size == 0:
        return False
    padded = np.concatenate([raw, np.zeros(6, dtype=np.uint8)])
    start = at + 1 + np.isin(padded[at + 1], (ord("+"), ord("-")))
    digits = [(padded[start + k] - ord("0")) < 10 for k in range(4)]  # uint8 wraps below 0
    return bool(np.any(digits[0] & digits[1] & digits[2] & digits[3]))


def _rectangular(raw: np.ndarray[Any, Any], delimiter: str, width: int, n_lines: int,
                 numbers: np.ndarray[Any, Any]) -> bool:
    """Every non-blank line has width - 1 delimiters (counted with NumPy, not per line)."""
    delims = np.flatnonzero(raw == ord(delimiter))
    if delims.size != (width - 1) * numbers.size:
        return False
    if width == 1:
        return True
    newlines = np.flatnonzero(raw == 10)
    per_line = np.bincount(np.searchsorted(newlines, delims), minlength=n_lines)
    return bool(np.all(per_line[numbers - 1] == width - 1))
