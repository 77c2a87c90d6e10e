"""The `.npy` reader: round trips against `np.save` for every supported dtype, hand-written
version 2.0 and 3.0 headers, Fortran order, conversion into each field, and malformed
files, each refused with a DataFormatError naming the file and the byte offset, without
evaluating anything the file holds.
"""

from __future__ import annotations

import ast
import builtins
import io
import pickle
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from torchlean.runtime import data
from torchlean.runtime.data.npy import SUPPORTED_DESCRS, parse_npy
from torchlean.spec import DataFormatError


def saved(arr: np.ndarray[Any, Any]) -> bytes:
    """The bytes `np.save` writes for `arr`."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def handmade(header: str, payload: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An NPY file with this header text, written without NumPy's writer."""
    raw = header.encode("utf-8" if version[0] >= 3 else "latin-1")
    length = struct.pack("<H" if version[0] == 1 else "<I", len(raw))
    return b"\x93NUMPY" + bytes(version) + length + raw + payload


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def same(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> None:
    """Same shape, dtype and bytes (so nan payloads and -0.0 count too), C-ordered."""
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.flags.c_contiguous and got.flags.writeable
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


# -- round trips ---------------------------------------------------------------------------

SAVED_DESCRS = sorted({np.dtype(d).str for d in SUPPORTED_DESCRS})  # what np.save writes


@settings(deadline=None, max_examples=25)
@given(st.data())
@pytest.mark.parametrize("descr", SAVED_DESCRS)
def test_round_trip_against_np_save(descr: str, draw: st.DataObject) -> None:
    shape = draw.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    arr = draw.draw(hnp.arrays(np.dtype(descr), shape))
    if draw.draw(st.booleans()):
        arr = np.asfortranarray(arr)  # np.save writes fortran_order True for ndim >= 2
    got = parse_npy(saved(arr))
    same(got, arr)
    if arr.ndim >= 2 and arr.size > 1 and not arr.flags.c_contiguous:
        assert b"'fortran_order': True" in saved(arr)


def test_fortran_order_is_converted() -> None:
    c = np.arange(24, dtype="<i4").reshape(2, 3, 4)
    f = np.asfortranarray(c)
    raw = saved(f)
    assert b"'fortran_order': True" in raw
    same(parse_npy(raw), c)


@pytest.mark.parametrize("descr", ["<i1", "<u1"])
def test_one_byte_descrs_with_a_byte_order_mark(descr: str) -> None:
    arr = np.arange(6, dtype=descr).reshape(2, 3)
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': (2, 3), }}\n"
    same(parse_npy(handmade(header, arr.tobytes())), arr)


@pytest.mark.parametrize("version", [(2, 0), (3, 0)])
def test_version_2_and_3_headers_by_hand(version: tuple[int, int]) -> None:
    arr = np.array([[1.5, -2.0], [0.25, 8.0]], dtype="<f8")
    header = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }".ljust(117) + "\n"
    raw = handmade(header, np.asfortranarray(arr).tobytes(order="F"), version)
    assert raw[6:8] == bytes(version) and struct.unpack_from("<I", raw, 8)[0] == len(header)
    same(parse_npy(raw), arr)


def test_version_2_as_numpy_writes_it() -> None:
    arr = np.arange(6, dtype="<u2").reshape(3, 2)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=(2, 0))
    assert buf.getvalue()[6:8] == b"\x02\x00"
    same(parse_npy(buf.getvalue()), arr)


def test_booleans_are_any_nonzero_byte() -> None:
    header = "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }\n"
    got = parse_npy(handmade(header, b"\x00\x01\x02\xff"))
    assert got.tolist() == [False, True, True, True]


def test_header_spellings() -> None:
    """Literal forms NumPy accepts: double quotes, no trailing comma, any key order,
    an empty shape (a 0-d array)."""
    payload = np.float64(2.5).tobytes()
    header = '{"shape": (), "fortran_order": False, "descr": "<f8"}'
    same(parse_npy(handmade(header, payload)), np.array(2.5))
    header = "{'descr':'<i2','fortran_order':False,'shape':(3,)}"
    same(parse_npy(handmade(header, np.arange(3, dtype="<i2").tobytes())),
         np.arange(3, dtype="<i2"))


# -- into fields ---------------------------------------------------------------------------


def test_load_npy_into_fields(tmp_path: Path) -> None:
    values = np.array([0.1, -3.0, 1e-300, 2.0**60], dtype="<f8")
    path = write(tmp_path, "v.npy", saved(values))
    as_float = data.load_npy(path)
    assert as_float.field.name == "float" and as_float.numpy().tolist() == values.tolist()
    exact = data.load_npy(path, dtype="exact")
    assert exact.numpy().tolist() == [Fraction(v) for v in values.tolist()]
    for name in ("float32", "ieee32exec"):  # binary64 -> binary32 rounds once, to nearest
        t = data.load_npy(path, dtype=name)
        assert t.numpy().tobytes() == values.astype(np.float32).tobytes()
    iv = data.load_npy(path, dtype="interval")
    for enclosure, v in zip(iv.numpy().tolist(), values.tolist(), strict=True):
        assert enclosure.a <= v <= enclosure.b


def test_load_npy_ints_and_bools(tmp_path: Path) -> None:
    big = np.array([2**62 + 1, -7], dtype="<i8")
    exact = data.load_npy(write(tmp_path, "i.npy", saved(big)), dtype="exact")
    assert exact.numpy().tolist() == [2**62 + 1, -7]  # no detour through floats
    flags = data.load_npy(write(tmp_path, "b.npy", saved(np.array([True, False]))), "exact")
    assert flags.numpy().tolist() == [1, 0]


def test_nan_into_exact_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "nan.npy", saved(np.array([1.0, np.nan])))
    with pytest.raises(DataFormatError) as info:
        data.load_npy(path, dtype="exact", allow_nonfinite=True)
    assert info.value.where == str(path) and "exact" in str(info.value)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_elements_are_refused_unless_allowed(tmp_path: Path, value: float) -> None:
    arr = np.zeros((2, 3), dtype=np.float32)
    arr[1, 2] = value
    path = write(tmp_path, "bad.npy", saved(arr))
    for read in (data.read_npy, data.load_npy):
        with pytest.raises(DataFormatError) as info:
            read(path)
        assert info.value.where == f"{path}: element (1, 2)"
    got = data.read_npy(path, allow_nonfinite=True)
    assert got[1, 2] == value or (np.isnan(value) and np.isnan(got[1, 2]))


@pytest.mark.parametrize("shape, words", [
    ("(" + "1," * 65 + ")", "65 dimensions"),
    ("(10**30, 0)".replace("10**30", "1" + "0" * 30), "too big"),
    ("(" + "9" * 5000 + ",)", "5000 digits"),
    ("(4611686018427387904, 4611686018427387904, 0)", "too big"),
])
def test_impossible_shapes_are_format_errors(shape: str, words: str) -> None:
    raw = handmade(f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}}}")
    with pytest.raises(DataFormatError, match=words) as info:
        parse_npy(raw, "x.npy")
    assert info.value.where.startswith("x.npy: byte ")


# -- malformed files -----------------------------------------------------------------------

GOOD = saved(np.arange(6, dtype="<f4").reshape(2, 3))
GOOD_START = 10  # a version 1.0 header starts after magic, version and a 2-byte length
GOOD_DATA = len(GOOD) - 24


def header_file(header: str, payload: bytes = b"") -> bytes:
    return handmade(header, payload)


def at(raw: bytes, token: str) -> int:
    """The byte offset of `token` in the header of a version 1.0 file."""
    return raw.index(token.encode("latin-1"))


EVIL = "__import__('os').system('touch EVIL_MARKER')"

MALFORMED: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", 0, "magic"),
    ("bad magic", b"\x93NUMPX" + GOOD[6:], 0, "magic"),
    ("pickle instead", pickle.dumps([1, 2]), 0, "magic"),
    ("ends in version", GOOD[:7], 7, "version"),
    ("bad major version", GOOD[:6] + b"\x04\x00" + GOOD[8:], 6, "version 4.0"),
    ("bad minor version", GOOD[:6] + b"\x01\x01" + GOOD[8:], 6, "version 1.1"),
    ("ends in header length", GOOD[:9], 9, "header length"),
    ("truncated header", GOOD[:40], 40, "header truncated"),
    ("truncated data", GOOD[:-3], len(GOOD) - 3, "data truncated"),
    ("no data", GOOD[:GOOD_DATA], GOOD_DATA, "data truncated"),
    ("trailing bytes", GOOD + b"\x00" * 5, len(GOOD), "5 unexpected bytes"),
]


def header_case(name: str, header: str, token: str, words: str) -> tuple[str, bytes, int, str]:
    raw = header_file(header)
    return (name, raw, at(raw, token) if token else GOOD_START, words)


MALFORMED += [
    header_case("complex dtype", "{'descr': '<c16', 'fortran_order': False, 'shape': (1,)}",
                "'<c16'", "unsupported dtype '<c16'"),
    header_case("big-endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}",
                "'>f4'", "big-endian"),
    header_case("object dtype", "{'descr': '|O', 'fortran_order': False, 'shape': (1,)}",
                "'|O'", "pickle"),
    header_case("string dtype", "{'descr': '<U3', 'fortran_order': False, 'shape': (1,)}",
                "'<U3'", "unsupported dtype"),
    header_case("structured", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}",
                "[", "structured"),
    header_case("a list", "['descr', 'fortran_order', 'shape']", "", "not a dict"),
    header_case("a number", "5", "", "not a dict"),
    header_case("a call as header", EVIL, "", "not a dict"),
    header_case("a call as value",
                "{'descr': " + EVIL + ", 'fortran_order': False, 'shape': (1,)}",
                "__import__", "never evaluated"),
    header_case("a call in the shape",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (len('ab'),)}",
                "len", "non-negative ints"),
    header_case("a name as flag", "{'descr': '<f4', 'fortran_order': x, 'shape': (1,)}",
                "x,", "never evaluated"),
    header_case("missing key", "{'descr': '<f4', 'shape': (1,)}", "", "exactly the keys"),
    header_case("extra key",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 'y'}",
                "", "exactly the keys"),
    header_case("duplicate key",
                "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
                "'descr': '<f8'", "duplicate"),
    header_case("negative dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "-", "unexpected character '-'"),
    header_case("int shape", "{'descr': '<f4', 'fortran_order': False, 'shape': 3}",
                "3}", "must be a string"),
    header_case("parenthesised int", "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}",
                "(3)", "not a tuple"),
    header_case("flag as string", "{'descr': '<f4', 'fortran_order': 'no', 'shape': (1,)}",
                "'no'", "True or False"),
    header_case("shape as string", "{'descr': '<f4', 'fortran_order': False, 'shape': '1'}",
                "'1'", "tuple of ints"),
    header_case("descr as bool", "{'descr': True, 'fortran_order': False, 'shape': (1,)}",
                "True", "must be a string"),
    header_case("text after the dict",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} {}", "{}", "after"),
    header_case("escaped string", "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}",
                "'<f", "unexpected character"),
    header_case("non-ASCII", "{'descr': '<f4', é}", "é", "unexpected character"),
]


@pytest.mark.parametrize(
    "raw, offset, words", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes, offset: int, words: str
) -> None:
    monkeypatch.chdir(tmp_path)  # where the evil header would leave its marker
    path = write(tmp_path, "bad.npy", raw)
    with pytest.raises(DataFormatError) as info:
        data.load_npy(path)
    # The offset is that of the first byte that is wrong (see the table), exactly.
    assert info.value.where == f"{path}: byte {offset}", str(info.value)
    assert words in str(info.value)
    assert not (tmp_path / "EVIL_MARKER").exists()


def test_the_unclosed_dict_is_reported_at_its_end(tmp_path: Path) -> None:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)"
    raw = header_file(header)
    with pytest.raises(DataFormatError) as info:
        parse_npy(raw, "x.npy")
    assert info.value.where == f"x.npy: byte {GOOD_START + len(header)}"


def test_version_3_reports_utf8_byte_offsets() -> None:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'é': 'x'}"
    raw = handmade(header, version=(3, 0))
    with pytest.raises(DataFormatError, match="exactly the keys"):  # parsed, then refused
        parse_npy(raw, "x.npy")
    bad = handmade("{'é' x}", version=(3, 0))
    with pytest.raises(DataFormatError) as info:
        parse_npy(bad, "x.npy")
    assert info.value.where == f"x.npy: byte {bad.index(b' x') + 1}"  # 'é' is two bytes
    invalid = b"\x93NUMPY\x03\x00" + struct.pack("<I", 3) + b"{\xff}"
    with pytest.raises(DataFormatError) as info:
        parse_npy(invalid, "x.npy")
    assert info.value.where == "x.npy: byte 13" and "UTF-8" in str(info.value)


def test_object_array_saved_by_numpy_is_refused_before_unpickling(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="pickle"):
        data.load_npy(write(tmp_path, "obj.npy", buf.getvalue()))


def test_big_endian_saved_by_numpy_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "be.npy", saved(np.arange(3, dtype=">f8")))
    with pytest.raises(DataFormatError, match="big-endian dtype '>f8'"):
        data.load_npy(path)


def test_nothing_is_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader never reaches eval, exec, compile, literal_eval, pickle or np.load."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the NPY reader called an evaluator")

    for owner, attr in [
        (builtins, "eval"), (builtins, "exec"), (builtins, "compile"), (ast, "literal_eval"),
        (ast, "parse"), (pickle, "loads"), (pickle, "load"), (np, "load"),
    ]:
        monkeypatch.setattr(owner, attr, forbidden)
    same(parse_npy(GOOD), np.arange(6, dtype="<f4").reshape(2, 3))
    for case in MALFORMED:
        with pytest.raises(DataFormatError):
            parse_npy(case[1])


@settings(deadline=None, max_examples=150)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, len(GOOD)),
)
def test_corrupted_files_fail_cleanly(edits: list[tuple[int, int]], cut: int) -> None:
    """Any byte edits and truncation give an array or a DataFormatError, nothing else."""
    raw = bytearray(GOOD)
    for pos, byte in edits:
        raw[pos] = byte
    try:
        arr = parse_npy(bytes(raw[:cut]), "fuzz.npy")
    except DataFormatError as e:
        assert e.where.startswith("fuzz.npy: byte ")
    else:
        assert isinstance(arr, np.ndarray)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        data.load_npy(tmp_path / "absent.npy")
