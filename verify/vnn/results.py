"""VNN-COMP plumbing: result files, instance lists and the RESULTS.csv of a run.

    write_result_file("out.txt", verdict)          # "unsat" / "sat" + counterexample / ...
    for inst in read_instances("instances.csv"):   # rows onnx,vnnlib,timeout
        ...
    out = ResultsCsv.create("RESULTS.csv")         # header onnx,vnnlib,verdict,seconds
    out.append(ResultRow(inst.onnx, inst.vnnlib, "holds", 1.25))
    read_results("RESULTS.csv")                    # the rows written so far

A result file is VNN-COMP's: the first line is `unsat` (the property holds), `sat` (it is
violated), `unknown` or `timeout`; after `sat` comes the counterexample, one pair a line:
`((X_0 v)`, `(X_1 v)`, ..., `(Y_0 v)`, ..., `(Y_m v))`. Values are exact decimals where the
exact value has one of at most `_DIGITS` digits, else the shortest decimal of the nearest
binary64 (what VNN-COMP's checkers read).

Every file is written whole or not at all (a temporary file, then a rename); RESULTS.csv is
rewritten that way after each row, so a run stopped at any moment leaves a valid CSV of the
rows finished, which `read_results` reads back and `ResultsCsv.resume` continues (refusing
a file whose rows are not instances of the list being run, naming the first such row).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from ...runtime.atomic_write import write_atomically
from ...spec.errors import DataFormatError
from ...spec.file_limits import check_file_size
from .engine import STATUSES, Verdict
from .vnnlib import exact_decimal

__all__ = ["RESULT_WORDS", "Instance", "ResultRow", "ResultsCsv", "AtomicCsv", "format_result",
           "write_result_file", "read_instances", "read_results", "match_rows", "HEADER"]

RESULT_WORDS = {"holds": "unsat", "violated": "sat", "unknown": "unknown", "timeout": "timeout"}
HEADER = ("onnx", "vnnlib", "verdict", "seconds")
_DIGITS = 60
_MAX_CSV_BYTES = 64 * 2**20


def _value(q: Fraction) -> str:
    """`q` as a decimal: exact when short enough, else the nearest binary64's repr."""
    text = exact_decimal(q, _DIGITS)
    if text is not None:
        return text
    return repr(float(q))


def format_result(verdict: Verdict) -> str:
    """The text of VNN-COMP's result file for `verdict` (module docstring)."""
    lines = [RESULT_WORDS[verdict.status]]
    if verdict.counterexample is not None:
        xs, ys = verdict.counterexample
        pairs = [f"(X_{i} {_value(v)})" for i, v in enumerate(xs)]
        pairs += [f"(Y_{j} {_value(v)})" for j, v in enumerate(ys)]
        if pairs:
            pairs[0] = "(" + pairs[0]
            pairs[-1] += ")"
        lines += pairs
    return "\n".join(lines) + "\n"


def _write_atomic(path: str, text: str) -> None:
    write_atomically(path, lambda f: f.write(text), newline="")


def write_result_file(path: str | os.PathLike[str], verdict: Verdict) -> None:
    """Write VNN-COMP's result file for `verdict` at `path`, atomically."""
    _write_atomic(os.fspath(path), format_result(verdict))


# -- instances ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Instance:
    """One row of an instances CSV: the paths as written, resolved paths, the timeout."""

    onnx: str
    vnnlib: str
    timeout: float
    onnx_path: str
    vnnlib_path: str
    line: int


def _read_text(path: str, what: str) -> str:
    check_file_size(path, _MAX_CSV_BYTES, what)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}", f"the {what} is not UTF-8 text") from None


def _rows(path: str, text: str) -> list[tuple[int, list[str]]]:
    """The CSV rows with their line numbers; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out = []
    try:
        start = 1
        for row in reader:
            if row:
                out.append((start, row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataFormatError(f"{path}:{reader.line_num}", f"bad CSV: {e}") from None
    return out


def read_instances(path: str | os.PathLike[str],
                   root: str | os.PathLike[str] | None = None) -> list[Instance]:
    """The rows `onnx,vnnlib,timeout` of a VNN-COMP instances CSV; paths are relative to
    `root` (default: the CSV's folder). A bad row raises DataFormatError with its line."""
    name = os.fspath(path)
    base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(name))
    out = []
    for line, row in _rows(name, _read_text(name, "instances CSV")):
        where = f"{name}:{line}"
        if len(row) != 3:
            raise DataFormatError(where, f"expected 3 fields onnx,vnnlib,timeout, got "
                                  f"{len(row)}: {row!r}")
        onnx, prop, limit = row[0], row[1], row[2].strip()
        if not onnx.strip() or not prop.strip():
            raise DataFormatError(where, "empty onnx or vnnlib path")
        try:
            timeout = float(limit)
        except ValueError:
            raise DataFormatError(where, f"timeout must be a number of seconds, got "
                                  f"{limit!r}") from None
        if not math.isfinite(timeout) or timeout <= 0:
            raise DataFormatError(where, f"timeout must be a positive number of seconds, got "
                                  f"{limit!r}")
        out.append(Instance(onnx, prop, timeout, os.path.join(base, onnx),
                            os.path.join(base, prop), line))
    return out


# -- RESULTS.csv -------------------------------------------------------------------------
@dataclass(frozen=True)
class ResultRow:
    """One finished instance: the paths exactly as in the instances CSV, the verdict
    (holds / violated / unknown / timeout) and the wall-clock seconds."""

    onnx: str
    vnnlib: str
    verdict: str
    seconds: float

    def __post_init__(self) -> None:
        if self.verdict not in STATUSES:
            raise ValueError(f"verdict must be one of {STATUSES}, got {self.verdict!r}")


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


class AtomicCsv:
    """A CSV file being written row by row: every change rewrites it whole, atomically."""

    def __init__(self, path: str | os.PathLike[str], header: Sequence[str],
                 rows: list[list[str]] | None = None) -> None:
        self.path = os.fspath(path)
        self.header = list(header)
        self.rows: list[list[str]] = list(rows or [])
        self._write()

    def append(self, row: Sequence[str]) -> None:
        """Add one row; the file on disk is always whole."""
        self.rows.append(list(row))
        self._write()

    def replace(self, rows: Sequence[Sequence[str]]) -> None:
        """Rewrite the file with exactly `rows` (e.g. sorted into input order)."""
        self.rows = [list(r) for r in rows]
        self._write()

    def _write(self) -> None:
        _write_atomic(self.path, _csv_text([self.header, *self.rows]))


def read_csv_rows(path: str | os.PathLike[str], header: Sequence[str],
                  what: str) -> list[tuple[int, list[str]]]:
    """The (line, fields) rows of a CSV written by `AtomicCsv` with `header`; a wrong header
    or field count raises DataFormatError with the line."""
    name = os.fspath(path)
    rows = _rows(name, _read_text(name, what))
    if not rows or tuple(rows[0][1]) != tuple(header):
        raise DataFormatError(f"{name}:1", f"expected the header {','.join(header)}")
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataFormatError(f"{name}:{line}", f"expected {len(header)} fields, got "
                                  f"{len(row)}: {row!r}")
    return rows[1:]


def match_rows(path: str, lines: Sequence[int], row_keys: Sequence[tuple[str, ...]],
               keys: Sequence[tuple[str, ...]], source: str) -> list[int]:
    """For each finished row (read from `path`, at `lines`, identified by `row_keys`), the
    index in `keys` (the run's units, in input order) it belongs to. Rows may come in any
    order (they are written as they finish); a row that is not an unused key is refused with
    DataFormatError naming it: the file comes from a different list (`source`)."""
    free: dict[tuple[str, ...], list[int]] = {}
    for i, k in enumerate(keys):
        free.setdefault(k, []).append(i)
    for indices in free.values():
        indices.reverse()  # pop() then takes them in input order
    out = []
    for line, key in zip(lines, row_keys, strict=True):
        slots = free.get(key)
        if not slots:
            again = " again" if key in free else ""
            raise DataFormatError(f"{path}:{line}", f"row {','.join(key)} is not{again} a unit "
                                  f"of {source}: the results come from a different list; "
                                  "refusing to resume (start a new results file)")
        out.append(slots.pop())
    return out


class ResultsCsv:
    """RESULTS.csv being written: each `append` rewrites the file atomically."""

    def __init__(self, path: str, rows: list[ResultRow]) -> None:
        self.path = path
        self.rows = rows

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> ResultsCsv:
        """Start (or restart) the file with just its header."""
        out = cls(os.fspath(path), [])
        out._write()
        return out

    @classmethod
    def resume(cls, path: str | os.PathLike[str], instances: Sequence[Instance],
               source: str = "the instance list") -> tuple[ResultsCsv, list[int]]:
        """Continue the file at `path` (created when missing): the file, and for each row
        already in it the index of its instance. A row that is not an instance of
        `instances` (by onnx, vnnlib) raises DataFormatError naming the row's line."""
        name = os.fspath(path)
        if not os.path.exists(name):
            return cls.create(name), []
        lines, rows = _read_result_rows(name)
        done = match_rows(name, lines, [(r.onnx, r.vnnlib) for r in rows],
                          [(i.onnx, i.vnnlib) for i in instances], source)
        out = cls(name, rows)
        out._write()
        return out, done

    def append(self, row: ResultRow) -> None:
        """Add one finished row; the file on disk is always whole."""
        self.rows.append(row)
        self._write()

    def replace(self, rows: Sequence[ResultRow]) -> None:
        """Rewrite the file with exactly `rows` (e.g. sorted into input order)."""
        self.rows = list(rows)
        self._write()

    def _write(self) -> None:
        body = [[r.onnx, r.vnnlib, r.verdict, f"{r.seconds:.3f}"] for r in self.rows]
        _write_atomic(self.path, _csv_text([list(HEADER), *body]))


def _read_result_rows(name: str) -> tuple[list[int], list[ResultRow]]:
    lines, out = [], []
    for line, row in read_csv_rows(name, HEADER, "results CSV"):
        where = f"{name}:{line}"
        try:
            seconds = float(row[3])
        except ValueError:
            raise DataFormatError(where, f"seconds must be a number, got {row[3]!r}") from None
        if row[2] not in STATUSES:
            raise DataFormatError(where, f"verdict must be one of {STATUSES}, got {row[2]!r}")
        lines.append(line)
        out.append(ResultRow(row[0], row[1], row[2], seconds))
    return lines, out


def read_results(path: str | os.PathLike[str]) -> list[ResultRow]:
    """The rows of a RESULTS.csv written by `ResultsCsv` (for resuming a run); a bad
    header or row raises DataFormatError with its line."""
    return _read_result_rows(os.fspath(path))[1]
