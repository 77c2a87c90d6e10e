"""UTF-8 text: the character vocabulary round trip, invalid UTF-8 at its byte offset, and
the (window, next character) datasets for character language models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime import data
from torchlean.runtime.data import CharVocab, char_sequences
from torchlean.spec import DataFormatError


@settings(deadline=None, max_examples=80)
@given(st.text(min_size=1, max_size=60))
def test_vocab_round_trip(text: str) -> None:
    vocab = CharVocab.from_text(text)
    assert list(vocab.chars) == sorted(set(text))
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert all(0 <= i < len(vocab) for i in ids)
    assert all(vocab.chars[i] == ch for i, ch in zip(ids, text, strict=True))


@settings(deadline=None, max_examples=30)
@given(st.text(min_size=1, max_size=40))
def test_load_text_round_trip(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("text") / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    if text == "\ufeff":  # a lone byte-order mark is dropped, leaving nothing
        with pytest.raises(DataFormatError, match="empty"):
            data.load_text(path)
        return
    vocab, ids = data.load_text(path)
    assert vocab.decode(ids) == text.removeprefix("\ufeff")


def test_multibyte_characters(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("naïve café 🙂\n".encode())
    vocab, ids = data.load_text(path)
    assert len(ids) == 13 and "🙂" in vocab and "ï" in vocab
    assert vocab.chars == tuple(sorted(set("naïve café 🙂\n")))


@pytest.mark.parametrize(
    "raw, offset",
    [
        (b"ab\xffcd", 2),  # a byte that never starts a character
        (b"h\xc3\xa9\xe2\x28\xa1", 3),  # a three-byte sequence broken at its second byte
        (b"abc\xe2\x82", 3),  # truncated at the end of the file
        (b"\xef\xbb\xbfok\x80", 5),  # offsets count the byte-order mark
        (b"\xc0\xaf", 0),  # an overlong encoding of '/'
        (b"x\xed\xa0\x80", 1),  # an encoded surrogate
    ],
)
def test_invalid_utf8_offset(tmp_path: Path, raw: bytes, offset: int) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    with pytest.raises(DataFormatError) as info:
        data.load_text(path)
    assert info.value.where == f"{path}: byte {offset}"
    assert "invalid UTF-8" in str(info.value)


def test_empty_text(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty"):
        data.load_text(path)


def test_vocab_errors() -> None:
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match="'z' at position 2"):
        vocab.encode("abzc")
    with pytest.raises(ValueError, match="id 3 at position 1"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="id -1 at position 0"):
        vocab.decode([-1])
    with pytest.raises(ValueError, match="1.5"):
        vocab.decode(np.array([1.5]))
    with pytest.raises(ValueError, match="distinct"):
        CharVocab(("a", "a"))
    with pytest.raises(ValueError, match="one character"):
        CharVocab(("ab",))


def test_shifted_windows() -> None:
    ids = [5, 1, 4, 2, 3, 0]
    ds = char_sequences(ids, 3, dtype="exact")
    assert ds.inputs.tolist() == [[5, 1, 4], [1, 4, 2], [4, 2, 3]]
    assert ds.targets.tolist() == [[1, 4, 2], [4, 2, 3], [2, 3, 0]]
    assert ds.field.name == "exact"


def test_next_targets_and_stride() -> None:
    ids = np.arange(10)
    ds = char_sequences(ids, 4, stride=3, targets="next")
    assert ds.inputs.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6]]
    assert ds.targets.tolist() == [4, 7]


@settings(deadline=None, max_examples=40)
@given(n=st.integers(2, 40), seq_len=st.integers(1, 39), stride=st.integers(1, 5))
def test_window_count(n: int, seq_len: int, stride: int) -> None:
    if n < seq_len + 1:
        with pytest.raises(ValueError, match="too few"):
            char_sequences(list(range(n)), seq_len, stride=stride)
        return
    ds = char_sequences(list(range(n)), seq_len, stride=stride)
    assert len(ds) == (n - seq_len - 1) // stride + 1
    x, y = ds.inputs.numpy(), ds.targets.numpy()
    np.testing.assert_array_equal(y, x + 1)  # ids 0..n-1: the next id is one more
    assert x[-1, -1] + stride > n - 2  # the last window is the last one that fits


@pytest.mark.parametrize(
    "ids, kwargs, words",
    [
        ([1, 2], {"seq_len": 0}, "seq_len"),
        ([1, 2], {"seq_len": 1, "stride": 0}, "stride"),
        ([1, -2, 3], {"seq_len": 1}, "id -2 at position 1"),
        ([[1, 2]], {"seq_len": 1}, "1-D"),
        ([0.5, 1.0], {"seq_len": 1}, "ints"),
        ([1, 2], {"seq_len": 1, "targets": "all"}, "targets"),
    ],
)
def test_bad_sequences(ids: object, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        char_sequences(ids, **kwargs)  # type: ignore[arg-type]
