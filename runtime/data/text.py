"""UTF-8 text for character language models: a character vocabulary and id windows.

`load_text` reads a UTF-8 file (a leading byte-order mark is dropped; invalid UTF-8 is a
`DataFormatError` at its byte offset), builds the `CharVocab` of its distinct characters
(Unicode code points, sorted) and encodes the text. `char_sequences` cuts the ids into
(input window, next-character targets) training pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ...spec.errors import DataFormatError
from ...spec.tensor import Tensor
from ._convert import DType, PathLike, decode_utf8, host_to_tensor, read_bytes
from .dataset import TensorDataset

__all__ = ["CharVocab", "load_text", "char_sequences"]


@dataclass(frozen=True)
class CharVocab:
    """The characters of a text, sorted by code point; a character's id is its position."""

    chars: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for i, ch in enumerate(self.chars):
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"CharVocab: entry {i} must be one character, got {ch!r}")
        ids = {ch: i for i, ch in enumerate(self.chars)}
        if len(ids) != len(self.chars):
            raise ValueError("CharVocab: characters must be distinct")
        object.__setattr__(self, "_ids", ids)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of the distinct characters in `text`."""
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: object) -> bool:
        return ch in self._ids

    def encode(self, text: str) -> list[int]:
        """The id of each character of `text`; a character outside the vocabulary raises
        ValueError naming it and its position."""
        ids = self._ids
        out: list[int] = []
        for pos, ch in enumerate(text):
            i = ids.get(ch)
            if i is None:
                raise ValueError(f"CharVocab.encode: character {ch!r} at position {pos} "
                                 "is not in the vocabulary")
            out.append(i)
        return out

    def decode(self, ids: Iterable[int] | np.ndarray[Any, Any]) -> str:
        """The text whose characters have these ids; an id outside [0, len) raises
        ValueError naming it and its position."""
        chars = self.chars
        out: list[str] = []
        for pos, raw in enumerate(np.asarray(ids).reshape(-1).tolist()):
            i = int(raw)
            if i != raw or not 0 <= i < len(chars):
                raise ValueError(f"CharVocab.decode: id {raw!r} at position {pos} is not in "
                                 f"[0, {len(chars)})")
            out.append(chars[i])
        return "".join(out)


def load_text(path: PathLike) -> tuple[CharVocab, list[int]]:
    """The vocabulary of the UTF-8 file at `path` and the file's text encoded with it.

    An empty file raises DataFormatError (a vocabulary needs a character)."""
    name = str(path)
    text = decode_utf8(read_bytes(path), name)
    if not text:
        raise DataFormatError(f"{name}: byte 0", "empty text: no characters")
    vocab = CharVocab.from_text(text)
    return vocab, vocab.encode(text)


def char_sequences(
    ids: Sequence[int] | np.ndarray[Any, Any],
    seq_len: int,
    *,
    stride: int = 1,
    targets: Literal["shifted", "next"] = "shifted",
    dtype: DType = "float",
) -> TensorDataset:
    """Training windows over a sequence of character ids.

    Window k starts at s = k * stride: its input is ids[s : s + seq_len]. Its target is
    ids[s + 1 : s + seq_len + 1] (targets="shifted": the next character at every position,
    shape (M, seq_len)) or ids[s + seq_len] (targets="next": the one character after the
    window, shape (M,)). M = (len(ids) - seq_len - 1) // stride + 1 windows; the ids are
    integer values of field `dtype`, ready for `cross_entropy`."""
    for what, v in (("seq_len", seq_len), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"char_sequences: {what} must be an int >= 1, got {v!r}")
    if targets not in ("shifted", "next"):
        raise ValueError(f"char_sequences: targets must be 'shifted' or 'next', got {targets!r}")
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(
            f"char_sequences: ids must be a 1-D sequence of ints, got shape {arr.shape} "
            f"of dtype {arr.dtype}"
        )
    if arr.size and int(arr.min()) < 0:
        k = int(np.argmax(arr < 0))
        raise ValueError(f"char_sequences: id {int(arr[k])} at position {k} is negative")
    if arr.size < seq_len + 1:
        raise ValueError(
            f"char_sequences: {arr.size} ids are too few for one window of seq_len={seq_len} "
            "and its target (need seq_len + 1)"
        )
    starts = np.arange(0, arr.size - seq_len, stride)
    window = starts[:, None] + np.arange(seq_len)
    x_host = arr[window]
    y_host = arr[window + 1] if targets == "shifted" else arr[starts + seq_len]
    x: Tensor = host_to_tensor(x_host, dtype, "char_sequences")
    y: Tensor = host_to_tensor(y_host, dtype, "char_sequences")
    return TensorDataset(x, y)
