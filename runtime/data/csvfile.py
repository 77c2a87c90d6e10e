"""Small numeric CSV files: a table of numbers, optionally under one header row.

Files are UTF-8 (a leading byte-order mark is dropped) and split by the standard `csv`
module (quotes allowed, spaces after a delimiter skipped, strict mode). Every cell must
be a decimal number: an optional sign, digits with an optional point and exponent, or
nan / inf / infinity (refused unless the caller allows them, and always for `exact` and
`interval`). Each cell is rounded once into the field: exactly as a `Fraction` for
`exact` and `interval`, correctly rounded to binary64 or binary32 for the float fields
(`_binary_cells`); a finite number beyond the field's range is an error, not an infinity.
Blank lines are skipped. Plain files (no quotes, ASCII) take a fast path that splits
without the `csv` module (`_csv_fast`); any file it cannot take, and every file with an
error, is read by the exact path. Errors are `DataFormatError`s naming the file, the line
(the first line of a record), and the column (1-based, with its header name).
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
from ...spec.fields import Field, get_field
from ...spec.tensor import Tensor
from ._binary_cells import ASCII_SPACE, binary_values, parse_cells
from ._convert import (
    DType,
    Number,
    PathLike,
    decode_utf8,
    host_kind,
    host_to_tensor,
    numbers_to_tensor,
    read_bytes,
)
from ._csv_fast import read_plain
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
    kind = _grammar(cell)
    if kind is None:
        return None
    text = cell.strip(ASCII_SPACE)
    if kind == "special":
        value = float("nan") if "nan" in text.lower() else float("inf")
        return -value if text.startswith("-") else value
    return Fraction(text)


def _grammar(cell: str) -> Literal["decimal", "special"] | None:
    """Whether a cell is a decimal, a nan / inf word, or neither (None)."""
    text = cell.strip(ASCII_SPACE)
    m = _DECIMAL.fullmatch(text)
    if m is None:
        return "special" if _SPECIAL.fullmatch(text) else None
    exp = m.group("exp")
    # The length first: it keeps int() below Python's 4,300-digit limit.
    if len(text) > _MAX_DIGITS or (exp is not None and abs(int(exp)) > _MAX_EXPONENT):
        return None
    return "decimal"


def _is_special(cell: str) -> bool:
    return _grammar(cell) == "special"


def read_csv(
    path: PathLike,
    *,
    header: Header = "auto",
    delimiter: str = ",",
    allow_nonfinite: bool = False,
) -> CsvTable:
    """The numeric table in the CSV file at `path`, every cell an exact `Fraction`.

    header: "auto" (the first row is a header iff it has a cell that is not a number),
    True (the first row is always a header) or False (no header). nan and inf cells are
    refused unless `allow_nonfinite` (they are then floats). An empty file, a header
    without data rows, a non-numeric cell or rows of different lengths raise
    DataFormatError naming the file, the line and the column."""
    columns, records = _checked_records(path, header, delimiter, allow_nonfinite)
    values = np.empty((len(records), len(records[0][1])), dtype=object)
    for r, (_, row) in enumerate(records):
        for c, cell in enumerate(row):
            values[r, c] = parse_number(cell)
    return CsvTable(columns, values, tuple(line for line, _ in records))


def _checked_records(
    path: PathLike, header: Header, delimiter: str, allow_nonfinite: bool,
    real_field: str | None = None,
) -> tuple[tuple[str, ...] | None, list[tuple[int, list[str]]]]:
    """The exact path: the header (or None) and the data records of the file, every cell
    checked against the grammar (and for nan / inf unless allowed; `real_field` names a
    field that holds real numbers only, for the error)."""
    name = str(path)
    if header not in ("auto", True, False):
        raise ValueError(f"read_csv: header must be 'auto', True or False, got {header!r}")
    text = decode_utf8(read_bytes(path), name)
    records = _records(text, name, delimiter)
    if not records:
        raise DataFormatError(f"{name}: line 1", "empty file: no rows")
    columns: tuple[str, ...] | None = None
    first_line, first = records[0]
    if header is True or (header == "auto" and any(_grammar(c) is None for c in first)):
        columns = tuple(c.strip() for c in first)
        records = records[1:]
        if not records:
            raise DataFormatError(f"{name}: line {first_line}", "a header row but no data rows")
    width = len(columns) if columns is not None else len(records[0][1])
    shape_line = first_line if columns is not None else records[0][0]
    for line, row in records:
        if len(row) != width:
            raise DataFormatError(
                f"{name}: line {line}",
                f"ragged row: {len(row)} cells, expected {width} (as on line {shape_line})",
            )
        for c, cell in enumerate(row):
            kind = _grammar(cell)
            if kind is None or (kind == "special" and not allow_nonfinite):
                what = "a non-finite" if kind is not None else "a non-numeric"
                hint = ("" if kind is None else f"; field {real_field!r} holds real numbers only"
                        if real_field else "; pass allow_nonfinite=True to read it")
                raise DataFormatError(_cell_where(name, line, c, columns),
                                      f"{what} cell {cell!r}{hint}")
    return columns, records


def _cell_where(name: str, line: int, c: int, columns: tuple[str, ...] | None) -> str:
    col = f"column {c + 1}" + (f" ({columns[c]!r})" if columns is not None else "")
    return f"{name}: line {line}, {col}"


def _read_host(
    path: PathLike, header: Header, delimiter: str, field: Field, allow_nonfinite: bool
) -> tuple[tuple[str, ...] | None, np.ndarray[Any, Any]]:
    """The header and the (rows, columns) host array of the file for `field`: binary64
    or binary32 values for the float fields (the fast path when the file allows it), exact
    `Fraction`s for the others (which hold no nan or inf)."""
    kind = host_kind(field)
    if kind == np.dtype(object):
        columns, records = _checked_records(path, header, delimiter, False, field.name)
        values = np.empty((len(records), len(records[0][1])), dtype=object)
        for r, (_, row) in enumerate(records):
            values[r] = [parse_number(cell) for cell in row]
        return columns, values
    name = str(path)
    if header in ("auto", True, False):
        fast = _fast_host(path, name, header, delimiter, kind, allow_nonfinite)
        if fast is not None:
            return fast
    return _exact_host(path, name, header, delimiter, kind, allow_nonfinite)


def _exact_host(
    path: PathLike, name: str, header: Header, delimiter: str, kind: np.dtype[Any],
    allow_nonfinite: bool,
) -> tuple[tuple[str, ...] | None, np.ndarray[Any, Any]]:
    """`_read_host` for the float fields by the exact path: the `csv` module, every cell
    checked against the grammar."""
    columns, records = _checked_records(path, header, delimiter, allow_nonfinite)
    width = len(records[0][1])
    cells = [cell for _, row in records for cell in row]

    def where(i: int) -> str:
        return _cell_where(name, records[i // width][0], i % width, columns)

    host = binary_values(parse_cells(cells), cells.__getitem__, kind, allow_nonfinite, where,
                         _is_special)
    return columns, host.reshape(len(records), width)


def _fast_host(
    path: PathLike, name: str, header: Header, delimiter: str, kind: np.dtype[Any],
    allow_nonfinite: bool,
) -> tuple[tuple[str, ...] | None, np.ndarray[Any, Any]] | None:
    """`_read_host` for a plain file (see `_csv_fast`), or None to take the exact path."""

    def is_header(line: str) -> bool:
        if header != "auto":
            return header is True
        try:  # on a plain line float() takes exactly the cells the grammar takes
            parse_cells(line.split(delimiter))
        except ValueError:
            return True
        return False

    plain = read_plain(decode_utf8(read_bytes(path), name), delimiter, is_header)
    if plain is None:
        return None
    rows, width = plain.values.shape

    def where(i: int) -> str:
        return _cell_where(name, int(plain.lines[i // width]), i % width, plain.header)

    host = binary_values(plain.values.reshape(-1), plain.cell, kind, allow_nonfinite, where,
                         _is_special)
    return plain.header, host.reshape(rows, width)


def load_csv(
    path: PathLike,
    label_columns: Column | Sequence[Column] = (-1,),
    *,
    header: Header = "auto",
    delimiter: str = ",",
    dtype: DType = "float",
    allow_nonfinite: bool = False,
) -> TensorDataset:
    """A dataset from a numeric CSV file: the `label_columns` are the targets, every
    other column (in file order) the inputs.

    Columns are 0-based indices (negative from the end) or header names. One column given
    on its own gives targets of shape (N,), as for integer class labels; a sequence of k
    columns gives (N, k), so the default (-1,) gives regression targets (N, 1). Each cell
    is rounded once into the field; nan and inf cells are refused unless
    `allow_nonfinite` (and always for `exact` and `interval`), as is a finite number
    beyond the field's range. See `read_csv` for `header` and the errors."""
    field = get_field(dtype)
    columns, host = _read_host(path, header, delimiter, field, allow_nonfinite)
    width = host.shape[1]
    single = isinstance(label_columns, (int, str))
    wanted: list[Column] = (
        [label_columns] if isinstance(label_columns, (int, str)) else list(label_columns)
    )
    labels = [_resolve_column(c, columns, width, str(path)) for c in wanted]
    if not labels:
        raise ValueError(f"load_csv: no label columns given for {path}")
    dupes = sorted({c for c in labels if labels.count(c) > 1})
    if dupes:
        raise ValueError(f"load_csv: label columns {dupes} of {path} are given more than once")
    inputs = [c for c in range(width) if c not in labels]
    if not inputs:
        raise DataFormatError(str(path), f"the file has {width} column(s), all of them label "
                                         f"columns {labels}: no inputs left")
    y_host = host[:, labels[0]] if single else host[:, labels]
    return TensorDataset(_tensor(host[:, inputs], field, str(path)),
                         _tensor(y_host, field, str(path)))


def load_csv_matrix(
    path: PathLike,
    *,
    header: Header = "auto",
    delimiter: str = ",",
    dtype: DType = "float",
    allow_nonfinite: bool = False,
) -> Tensor:
    """Every number of a numeric CSV file as one (rows, columns) tensor of field `dtype`
    (nan and inf refused unless `allow_nonfinite`; see `load_csv`)."""
    field = get_field(dtype)
    _, host = _read_host(path, header, delimiter, field, allow_nonfinite)
    return _tensor(host, field, str(path))


def _tensor(host: np.ndarray[Any, Any], field: Field, where: str) -> Tensor:
    if host.dtype == np.dtype(object):
        return numbers_to_tensor(host, field)
    return host_to_tensor(np.ascontiguousarray(host), field, where)


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
