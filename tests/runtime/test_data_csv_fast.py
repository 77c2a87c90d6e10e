"""The CSV reader's fast path agrees bit for bit with its exact path (quotes force the
exact path), values are the decimal rounded once, and errors found on the fast path
name the same line and column as the exact path would."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime import data
from torchlean.runtime.data import csvfile
from torchlean.runtime.data._csv_fast import read_plain
from torchlean.spec import DataFormatError
from torchlean.spec.fields.ieee32 import fraction_to_float32


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


# Decimals near binary32 midpoints (1 + 2^-24 +- tiny), long ones, exponents, signs, zeros.
DECIMAL = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1.000000059604644775390625", "1.0000000596046447753906250001",
                     "1.0000000596046447753906249999", "-0", "0.0", "-0.0e5", "1e-400",
                     "3.4028235677973366e38", "3.40282356779733661637539395458142568448e38",
                     "1.4e-45", "7.006492321624085e-46", ".5", "5.", "+2E+3"]),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-10**20, 10**20), st.integers(-330, 300)),
)


def reference(cell: str, dtype: str) -> float:
    q = Fraction(cell)
    v = float(fraction_to_float32(q)) if dtype == "float32" else float(q)
    # A Fraction has no sign of zero; "-0" and "-1e-400" are the binary -0.0, as in float().
    return -0.0 if v == 0 and cell.lstrip().startswith("-") else v


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(DECIMAL, min_size=3, max_size=3), min_size=1, max_size=8),
       dtype=st.sampled_from(["float", "float32"]))
def test_fast_and_exact_paths_agree_and_round_once(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], dtype: str
) -> None:
    tmp = tmp_path_factory.mktemp("csv")
    plain = "".join(",".join(r) + "\n" for r in rows)
    quoted = "".join(",".join(f'"{c}"' for c in r) + "\r\n" for r in rows)
    assert read_plain(plain, ",", lambda _: False) is not None or any(
        "e" in c.lower() for r in rows for c in r)
    try:
        fast = data.load_csv_matrix(write(tmp, "p.csv", plain), header=False, dtype=dtype)
    except DataFormatError as e:
        with pytest.raises(DataFormatError) as info:
            data.load_csv_matrix(write(tmp, "q.csv", quoted), header=False, dtype=dtype)
        assert str(info.value).split(": ", 1)[1] == str(e).split(": ", 1)[1]
        assert "overflows" in str(e)
        return
    exact = data.load_csv_matrix(write(tmp, "q.csv", quoted), header=False, dtype=dtype)
    assert fast.numpy().tobytes() == exact.numpy().tobytes()
    want = np.array([[reference(c, dtype) for c in r] for r in rows],
                    dtype=np.float32 if dtype == "float32" else np.float64)
    assert fast.numpy().tobytes() == want.tobytes()


@pytest.mark.parametrize("text, dtype, where, words", [
    ("a,b\n1,2\n3,1e400\n", "float", "line 3, column 2 ('b')", "overflows float64"),
    ("a,b\n1,2\n3,1e39\n", "float32", "line 3, column 2 ('b')", "overflows float32"),
    ("a,b\n\n1,2\n\n3,nan\n", "float", "line 5, column 2 ('b')", "non-finite cell 'nan'"),
    ("1,2\n3,-inf\n", "float32", "line 2, column 2", "allow_nonfinite=True"),
    ("1,2\n3,x\n", "float", "line 2, column 2", "non-numeric cell 'x'"),
    ("1,2\n3\n", "float", "line 2", "1 cells, expected 2"),
    ("1,2\n3,\x1d4\n", "float", "line 2, column 2", "non-numeric"),
    ("1,2\n3,1e5000\n", "float", "line 2, column 2", "overflows float64"),
    ("1,2\n3,1e5001\n", "float", "line 2, column 2", "non-numeric"),
])
def test_errors_name_line_and_column(tmp_path: Path, text: str, dtype: str, where: str,
                                     words: str) -> None:
    path = write(tmp_path, "t.csv", text)
    with pytest.raises(DataFormatError) as info:
        data.load_csv_matrix(path, dtype=dtype)
    assert info.value.where == f"{path}: {where}"
    assert words in str(info.value)


def test_one_column_file_is_a_format_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "one.csv", "y\n1\n2\n")
    with pytest.raises(DataFormatError, match="no inputs left") as info:
        data.load_csv(path)
    assert info.value.where == str(path)


def test_nonfinite_cells_when_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "1,nan\n-inf,2\n")
    got = data.load_csv_matrix(path, allow_nonfinite=True, dtype="float32").numpy()
    assert np.isnan(got[0, 1]) and got[1, 0] == -np.inf and got.dtype == np.float32
    with pytest.raises(DataFormatError, match="overflows"):
        data.load_csv_matrix(write(tmp_path, "o.csv", "1,1e400\n"), allow_nonfinite=True)


@pytest.mark.parametrize("text", ["1,2\n3,4", "1,2\r\n3,4\r\n", "\n\n1,2\n\n3,4\n\n", "1;2\n3;4\n"])
def test_line_endings_and_blank_lines(tmp_path: Path, text: str) -> None:
    delimiter = ";" if ";" in text else ","
    ds = data.load_csv(write(tmp_path, "t.csv", text), delimiter=delimiter)
    assert ds.inputs.numpy().tolist() == [[1.0], [3.0]]
    assert ds.targets.numpy().tolist() == [[2.0], [4.0]]


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789.eE+-naifty ,;\n\t\r_\x0b\x1d\"", max_size=30),
       header=st.sampled_from(["auto", True, False]),
       dtype=st.sampled_from(["float", "float32"]), allow=st.booleans())
def test_the_fast_path_takes_a_file_only_as_the_exact_path_does(
    tmp_path_factory: pytest.TempPathFactory, text: str, header: Any, dtype: str, allow: bool
) -> None:
    """Whenever the fast path reads a file, the exact path reads the same header and
    values (or raises the same error)."""
    path = write(tmp_path_factory.mktemp("csv"), "t.csv", text)
    kind = np.dtype(np.float32 if dtype == "float32" else np.float64)
    args = (path, str(path), header, ",", kind, allow)
    try:
        fast = csvfile._fast_host(*args)
    except DataFormatError as e:
        with pytest.raises(DataFormatError) as info:
            csvfile._exact_host(*args)
        assert str(info.value) == str(e)
        return
    if fast is None:
        return
    columns, values = csvfile._exact_host(*args)
    assert fast[0] == columns and fast[1].dtype == values.dtype
    assert np.array_equal(fast[1], values, equal_nan=True)
    assert np.array_equal(np.signbit(fast[1]) | np.isnan(fast[1]),
                          np.signbit(values) | np.isnan(values))
