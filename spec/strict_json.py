"""The one JSON reader every TorchLean file format uses: strict, bounded, typed errors.

Python's `json` module accepts what JSON does not (NaN, Infinity, duplicate keys, where
the last value silently wins) and fails on hostile input with untyped errors: a
RecursionError on deeply nested arrays, a ValueError on an integer of more than 4,300
digits. `loads` checks the text before `json.loads` sees it: its size, its nesting depth
(a loop over the brackets outside strings, never recursion), its number literals (no more
than `MAX_DIGITS` digits in a row) and its bare constants; then parses with duplicate keys
and non-finite numbers refused. Every failure is a `DataFormatError` whose `where` names
the source and the line and column ("model.json: line 3 column 17").
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from .errors import DataFormatError

__all__ = ["loads", "read_json_file", "MAX_BYTES", "MAX_DEPTH", "MAX_DIGITS"]

MAX_BYTES = 1 << 30  # 1 GiB: far above any model, checkpoint or certificate we write
MAX_DEPTH = 100  # our formats nest under 10 deep; json.loads recurses per level
MAX_DIGITS = 4000  # below Python's 4,300-digit int parsing limit, so ours is the error

# What the pre-scan stops at outside strings: brackets, bare constants and runs of more
# than MAX_DIGITS digits. Everything else (strings whole, other characters, shorter digit
# runs) is skipped in one possessive match, so the loop below runs once per bracket, not
# once per character; the string pattern is unrolled so it runs in linear time.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_SCAN = re.compile(
    rf"(?:{_STRING}|[^\"\[\]{{}}NI0-9]+|[0-9]{{1,{MAX_DIGITS}}}(?![0-9]))++"
    r"|(?P<open>[\[{])|(?P<close>[\]}])|(?P<constant>Infinity|NaN)|(?P<digits>[0-9]+)",
    re.DOTALL,
)

_HIGH = r"\\u[dD][89abAB][0-9a-fA-F]{2}"
_LOW = r"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_SURROGATE = re.compile(rf"{_HIGH}(?!{_LOW})|(?<!{_HIGH}){_LOW}")


class _Refused(Exception):
    """Raised inside json's hooks; `loads` turns it into a DataFormatError."""

    def __init__(self, message: str, token: str, occurrence: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.token = token  # located in the text for the error's position
        self.occurrence = occurrence


def _position(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line} column {column}"


def _scan(text: str, where: str, max_depth: int, allow_nonfinite: bool) -> None:
    """Refuse nesting deeper than `max_depth`, over-long digit runs and (unless allowed)
    bare NaN / Infinity, at their position, before the recursive parser runs."""
    depth = 0
    for m in _SCAN.finditer(text):
        kind = m.lastgroup
        if kind is None:
            continue  # a string
        if kind == "open":
            depth += 1
            if depth > max_depth:
                raise DataFormatError(f"{where}: {_position(text, m.start())}",
                                      f"nesting deeper than {max_depth} levels")
        elif kind == "close":
            depth = max(depth - 1, 0)  # a stray closer cannot hide the depth that follows
        elif kind == "constant" and not allow_nonfinite:
            raise DataFormatError(f"{where}: {_position(text, m.start())}",
                                  f"bare {m.group()} is not allowed: numbers must be finite")
        elif kind == "digits":
            raise DataFormatError(f"{where}: {_position(text, m.start())}",
                                  f"a number of {len(m.group())} digits; at most {MAX_DIGITS} "
                                  "are allowed")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {key!r} appears twice in one object", json.dumps(key), 2)
        out[key] = value
    return out


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} overflows a binary64 float", text)
    return value


def _any_float(text: str) -> float:
    return float(text)


def _constant(name: str) -> float:
    return float(name)


def _locate(text: str, token: str, occurrence: int) -> int:
    """Where `token` (a JSON string or number) appears for the `occurrence`-th time outside
    a string, or 0 if it cannot be found."""
    seen = 0
    for m in re.finditer(rf"{_STRING}|{re.escape(token)}", text):
        if m.group() == token:
            seen += 1
            if seen == occurrence:
                return m.start()
    return 0


def loads(
    text: str | bytes,
    where: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    allow_nonfinite: bool = False,
) -> Any:
    """The JSON value in `text` (UTF-8 bytes or str), read strictly.

    Refused with a DataFormatError naming `where` and the line and column: more than
    `max_bytes` bytes (checked first), invalid UTF-8, nesting deeper than `max_depth`, a
    number with more than `MAX_DIGITS` digits in a row, the same key twice in one object,
    a string escape that is half a surrogate pair, and NaN, Infinity or a literal that
    overflows to infinity (unless `allow_nonfinite`), as well as anything not JSON."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise DataFormatError(where, f"{size} bytes exceed the limit of {max_bytes} for JSON")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError(f"{where}: byte {e.start}", f"not UTF-8 text ({e.reason})") \
                from None
    if text.startswith("\ufeff"):
        raise DataFormatError(f"{where}: line 1 column 1", "a byte-order mark is not JSON")
    _scan(text, where, max_depth, allow_nonfinite)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_float=_any_float if allow_nonfinite else _finite_float,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{where}: {_position(text, e.pos)}", f"not valid JSON: {e.msg}") \
            from None
    except _Refused as e:
        at = _locate(text, e.token, e.occurrence)
        raise DataFormatError(f"{where}: {_position(text, at)}", e.message) from None
    except (ValueError, RecursionError) as e:  # defence in depth: the scan should stop these
        raise DataFormatError(where, f"not valid JSON: {type(e).__name__}: {e}") from None
    lone = _LONE_SURROGATE.search(text)
    if lone is not None:  # "\ud800" alone is no character: it cannot be written as UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DataFormatError(f"{where}: {_position(text, lone.start())}",
                                  f"{lone.group()} is half a surrogate pair, not a character") \
                from None
    return value


def read_json_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    allow_nonfinite: bool = False,
) -> Any:
    """The JSON value in the file at `path`, read by `loads` (the file is named in errors;
    its size is checked before it is read)."""
    name = os.fspath(path)
    with open(name, "rb") as f:  # OSError (a missing file) propagates, as for every reader
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise DataFormatError(name, f"{size} bytes exceed the limit of {max_bytes} for JSON")
        raw = f.read(max_bytes + 1)
    return loads(raw, name, max_bytes=max_bytes, max_depth=max_depth,
                 allow_nonfinite=allow_nonfinite)
