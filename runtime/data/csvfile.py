"""Small numeric CSV files: a table of numbers, optionally under one header row.

Files are UTF-8 (a leading byte-order mark is dropped) and split by the standard `csv`
module (quotes allowed, spaces after a delimiter skipped, strict mode). Every cell must
be a decimal number: an optional sign, digits with an optional point and exponent, or
nan / inf / infinity for the float fields. Cells are read as exact decimals and rounded
once into the field (see `_convert`). Blank lines are skipped. Errors are
`DataFormatError`s naming the file, the line (the first line of a record), and the
column (1-based, with its header name).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from ...spec.errors import DataFormatError
from ...spec.fields import get_field
from ...spec.tensor import Tensor
from ._convert import DType, Number, PathLike, decode_utf8, host_kind, numbers_to_tensor, read_bytes
from .dataset import TensorDataset

__all__ = ["load_csv", "load_csv_matrix", "read_csv", "CsvTable", "parse_number"]

Header = Literal["auto"] | bool
Column = int | str

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?P<exp>[+-]?[0-9]+))?")
_SPECIAL = re.compile(r"(?P<sign>[+-]?)(?P<name>nan|inf|infinity)", re.IGNORECASE)
# Exponents beyond every float format; bounding them keeps Fraction("1e999999999") from
# building a billion-digit integer out of a hostile file.
_MAX_EXPONENT = 5000
_MAX_DIGITS = 4000  # Python's int parser refuses more than 4300 digits anyway


@dataclass(frozen=True)
class CsvTable:
    """A parsed numeric CSV: column names (None without a header), the values as an
    object array (rows, columns) of `Fraction`s (nan and inf as floats), and each row's
    line number in the file."""

    columns: tuple[str, ...] | None
    values: np.ndarray[Any, Any]
    lines: tuple[int, ...]


def parse_number(cell: str) -> Number | None:
    """The number a CSV cell holds (surrounding spaces ignored): an exact `Fraction`, a
    float nan or inf, or None when the cell is not a number."""
    text = cell.strip()
    m = _DECIMAL.fullmatch(text)
    if m is None:
        s = _SPECIAL.fullmatch(text)
        if s is None:
            return None
        value = float("nan") if s.group("name").lower() == "nan" else float("inf")
        return -value if s.group("sign") == "-" else value
    exp = m.group("exp")
    if (exp is not None and abs(int(exp)) > _MAX_EXPONENT) or len(text) > _MAX_DIGITS:
        return None
    return Fraction(text)


def read_csv(
    path: PathLike,
    *,
    header: Header = "auto",
    delimiter: str = ",",
    finite: bool = False,
) -> CsvTable:
    """The numeric table in the CSV file at `path`.

    header: "auto" (the first row is a header iff it has a cell that is not a number),
    True (the first row is always a header) or False (no header). `finite=True` also
    rejects nan and inf cells. An empty file, a header without data rows, a non-numeric
    cell or rows of different lengths raise DataFormatError."""
    name = str(path)
    if header not in ("auto", True, False):
        raise ValueError(f"read_csv: header must be 'auto', True or False, got {header!r}")
    text = decode_utf8(read_bytes(path), name)
    records = _records(text, name, delimiter)
    if not records:
        raise DataFormatError(f"{name}: line 1", "empty file: no rows")
    columns: tuple[str, ...] | None = None
    first_line, first = records[0]
    if header is True or (header == "auto" and any(parse_number(c) is None for c in first)):
        columns = tuple(c.strip() for c in first)
        records = records[1:]
        if not records:
            raise DataFormatError(f"{name}: line {first_line}", "a header row but no data rows")
    width = len(columns) if columns is not None else len(records[0][1])
    shape_line = first_line if columns is not None else records[0][0]
    values = np.empty((len(records), width), dtype=object)
    for r, (line, row) in enumerate(records):
        if len(row) != width:
            raise DataFormatError(
                f"{name}: line {line}",
                f"ragged row: {len(row)} cells, expected {width} (as on line {shape_line})",
            )
        for c, cell in enumerate(row):
            v = parse_number(cell)
            if v is None or (finite and isinstance(v, float)):
                col = f"column {c + 1}" + (f" ({columns[c]!r})" if columns is not None else "")
                what = "a non-finite" if v is not None else "a non-numeric"
                raise DataFormatError(f"{name}: line {line}, {col}", f"{what} cell {cell!r}")
            values[r, c] = v
    return CsvTable(columns, values, tuple(line for line, _ in records))


def load_csv(
    path: PathLike,
    label_columns: Column | Sequence[Column] = (-1,),
    *,
    header: Header = "auto",
    delimiter: str = ",",
    dtype: DType = "float",
) -> TensorDataset:
    """A dataset from a numeric CSV file: the `label_columns` are the targets, every
    other column (in file order) the inputs.

    Columns are 0-based indices (negative from the end) or header names. One column given
    on its own gives targets of shape (N,), as for integer class labels; a sequence of k
    columns gives (N, k), so the default (-1,) gives regression targets (N, 1). See
    `read_csv` for `header` and the errors."""
    field = get_field(dtype)
    table = read_csv(path, header=header, delimiter=delimiter, finite=_needs_finite(field))
    width = table.values.shape[1]
    single = isinstance(label_columns, (int, str))
    wanted: list[Column] = (
        [label_columns] if isinstance(label_columns, (int, str)) else list(label_columns)
    )
    labels = [_resolve_column(c, table.columns, width, str(path)) for c in wanted]
    if not labels:
        raise ValueError(f"load_csv: no label columns given for {path}")
    dupes = sorted({c for c in labels if labels.count(c) > 1})
    if dupes:
        raise ValueError(f"load_csv: label columns {dupes} of {path} are given more than once")
    inputs = [c for c in range(width) if c not in labels]
    if not inputs:
        raise ValueError(f"load_csv: every column of {path} is a label column; no inputs left")
    x = numbers_to_tensor(table.values[:, inputs], field)
    y_host = table.values[:, labels[0]] if single else table.values[:, labels]
    return TensorDataset(x, numbers_to_tensor(y_host, field))


def load_csv_matrix(
    path: PathLike,
    *,
    header: Header = "auto",
    delimiter: str = ",",
    dtype: DType = "float",
) -> Tensor:
    """Every number of a numeric CSV file as one (rows, columns) tensor of field `dtype`."""
    field = get_field(dtype)
    table = read_csv(path, header=header, delimiter=delimiter, finite=_needs_finite(field))
    return numbers_to_tensor(table.values, field)


def _needs_finite(field: Any) -> bool:
    # exact and interval hold real numbers only; the float fields have nan and inf.
    return bool(host_kind(field) == np.dtype(object))


def _records(text: str, name: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of `text`, each with the line it starts on."""
    try:
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True, strict=True
        )
    except TypeError as e:
        raise ValueError(f"read_csv: bad delimiter {delimiter!r}: {e}") from None
    out: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for row in reader:
            if row and not (len(row) == 1 and not row[0].strip()):
                out.append((line, row))
            line = reader.line_num + 1
    except csv.Error as e:
        raise DataFormatError(f"{name}: line {line}", f"malformed CSV: {e}") from None
    return out


def _resolve_column(c: Column, columns: tuple[str, ...] | None, width: int, name: str) -> int:
    if isinstance(c, str):
        if columns is None:
            raise ValueError(f"load_csv: column {c!r} named, but {name} has no header row")
        if c not in columns:
            raise ValueError(f"load_csv: no column {c!r} in {name}; columns are {list(columns)}")
        return columns.index(c)
    if isinstance(c, bool) or not isinstance(c, int):
        raise TypeError(f"load_csv: a label column is an int or a name, got {c!r}")
    if not -width <= c < width:
        raise ValueError(f"load_csv: label column {c} out of range: {name} has {width} columns")
    return c % width
