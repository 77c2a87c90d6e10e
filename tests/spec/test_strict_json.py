"""The strict JSON reader: each refusal is a DataFormatError naming the source and the
line and column, and what it accepts equals what `json.loads` gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec import DataFormatError, strict_json

REFUSED = [
    ('{"a": 1,\n "a": 2}', "line 2 column 2", "the key 'a' appears twice"),
    ("[1, NaN]", "line 1 column 5", "bare NaN"),
    ("[-Infinity]", "line 1 column 3", "bare Infinity"),
    ("[1, 1e400]", "line 1 column 5", "overflows"),
    ("[" + "9" * 5000 + "]", "line 1 column 2", "5000 digits"),
    ("[-" + "1" * 4400 + "]", "line 1 column 3", "4400 digits"),
    ("[" * 101 + "]" * 101, "line 1 column 101", "deeper than 100"),
    ("[" * 100_000, "line 1 column 101", "deeper than 100"),
    ('{"x": [1, 2}', "line 1 column 12", "not valid JSON"),
    ('["\\ud800"]', "line 1 column 3", "half a surrogate pair"),
    ("\ufeff{}", "line 1 column 1", "byte-order mark"),
]


@pytest.mark.parametrize("text, where, words", REFUSED, ids=[w for _, _, w in REFUSED])
def test_refusals_name_line_and_column(text: str, where: str, words: str) -> None:
    with pytest.raises(DataFormatError) as info:
        strict_json.loads(text, "f.json")
    assert info.value.where == f"f.json: {where}", str(info.value)
    assert words in str(info.value)


def test_brackets_and_constants_inside_strings_are_text() -> None:
    text = json.dumps({"s": "[" * 500 + "NaN Infinity " + "9" * 5000})
    assert strict_json.loads(text, "f.json") == json.loads(text)


def test_nonfinite_numbers_when_allowed() -> None:
    got = strict_json.loads("[NaN, Infinity, -Infinity, 1e400]", "f", allow_nonfinite=True)
    assert got[1:] == [float("inf"), float("-inf"), float("inf")] and got[0] != got[0]


def test_limits_are_arguments() -> None:
    with pytest.raises(DataFormatError, match="exceed the limit of 10"):
        strict_json.loads("[1, 2, 3, 4, 5]", "f", max_bytes=10)
    with pytest.raises(DataFormatError, match="deeper than 2"):
        strict_json.loads("[[[1]]]", "f", max_depth=2)
    assert strict_json.loads("[[1]]", "f", max_depth=2) == [[1]]


def test_bytes_must_be_utf8() -> None:
    with pytest.raises(DataFormatError) as info:
        strict_json.loads(b'["\xff"]', "f.json")
    assert info.value.where == "f.json: byte 2"


def test_files_are_size_checked_and_named(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, 2]}')
    assert strict_json.read_json_file(path) == {"a": [1, 2]}
    with pytest.raises(DataFormatError) as info:
        strict_json.read_json_file(path, max_bytes=5)
    assert info.value.where == str(path)
    with pytest.raises(FileNotFoundError):
        strict_json.read_json_file(tmp_path / "absent.json")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_agrees_with_json_on_valid_documents(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert strict_json.loads(text, "f") == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}",:0123456789.eE+-NaInfity \\u\n', max_size=60))
def test_arbitrary_text_gives_a_value_or_a_typed_error(text: str) -> None:
    try:
        strict_json.loads(text, "f")
    except DataFormatError as e:
        assert e.where.startswith("f")
