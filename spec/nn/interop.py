"""Weights from PyTorch: `load_state_dict` reads a state_dict saved as a numpy `.npz`
archive (`np.savez(path, **{k: v.numpy() for k, v in sd.items()})`) or as a `.safetensors`
file (`safetensors.torch.save_file(sd, path)`, parsed by `read_safetensors`) into a built
model.

Parameter names follow PyTorch's where the layers allow it (`Sequential` indices, "weight",
"bias", "running_mean", "weight_ih_l0", "in_proj_weight"), so most state_dicts map one to
one; a `name_map` (ours -> theirs) covers the rest, e.g. attention's
"out_proj_weight" <- "out_proj.weight". An archive is read with pickling refused and a
safetensors header is parsed as JSON, so a file can carry numbers only, never code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from ..errors import DataFormatError, ShapeError
from ..npy_format import first_nonfinite
from ..npz_format import parse_npz
from ..tensor import Tensor
from .build import Built
from .safetensors import read_safetensors

__all__ = ["load_state_dict", "read_npz", "IGNORED_KEYS", "StateDictKeyError",
           "StateDictTypeError"]

In = TypeVar("In")
Out = TypeVar("Out")

# PyTorch's BatchNorm counts its batches only to use when momentum is None; TorchLean's
# batch norms always have a momentum and keep no such counter (see spec/nn/norms.py).
IGNORED_KEYS = ("num_batches_tracked",)


class StateDictKeyError(DataFormatError, KeyError):
    """A state_dict whose names do not match the model's: missing or unused entries. A
    DataFormatError naming the file, and a KeyError as before."""

    def __str__(self) -> str:  # the plain message, not KeyError's quoted repr
        return Exception.__str__(self)


class StateDictTypeError(DataFormatError, TypeError):
    """A state_dict entry that is not an array of real floating-point numbers."""


def read_npz(
    path: str | os.PathLike[str], *, allow_nonfinite: bool = False
) -> dict[str, np.ndarray[Any, Any]]:
    """The named arrays of the `.npz` archive at `path`, read by our own ZIP-of-NPY parser
    (never `np.load`, never pickle). An archive that is corrupt, needs pickle (object
    arrays), claims sizes its bytes cannot back, or holds a NaN or infinity (unless
    `allow_nonfinite`) raises DataFormatError naming the file, the member and the place."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        raw = f.read()
    return parse_npz(raw, name, allow_nonfinite=allow_nonfinite)


# The file suffixes load_state_dict reads, each with its reader.
_READERS: dict[str, Callable[[str], dict[str, np.ndarray[Any, Any]]]] = {
    ".npz": lambda name: read_npz(name, allow_nonfinite=True),
    ".safetensors": read_safetensors,
}


def _read_state_dict_file(
    path: str | os.PathLike[str], allow_nonfinite: bool
) -> dict[str, np.ndarray[Any, Any]]:
    """The named arrays of the state_dict file at `path`, read by the reader of its suffix
    (`.npz` or `.safetensors`); another suffix, or a NaN or infinity unless
    `allow_nonfinite`, raises DataFormatError naming the file (and the entry)."""
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in _READERS:
        raise DataFormatError(name, f"unsupported state_dict file suffix {suffix!r} "
                                    f"(supported: {', '.join(_READERS)})")
    arrays = _READERS[suffix](name)
    if not allow_nonfinite:
        for key, arr in arrays.items():
            at = first_nonfinite(arr)
            if at is not None:
                raise DataFormatError(f"{name}: {key!r} element {at}",
                                      f"non-finite value {arr[at]!r}; pass "
                                      "allow_nonfinite=True to load it")
    return arrays


def _ignored(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in IGNORED_KEYS


def load_state_dict(
    built: Built[In, Out],
    source: str | os.PathLike[str] | Mapping[str, np.ndarray[Any, Any]],
    name_map: Mapping[str, str] | None = None,
    *,
    allow_nonfinite: bool = False,
) -> Built[In, Out]:
    """`built` with every parameter and buffer taken from a PyTorch state_dict: the `.npz`
    or `.safetensors` file at `source` (another suffix raises DataFormatError) or a mapping
    of names to numpy arrays, converted to built's field.

    `name_map` maps our names to the state_dict's (names not in it are the same in both).
    Every one of our names must be present (else StateDictKeyError, a KeyError, listing the
    missing ones), every key of the state_dict must be used (else StateDictKeyError listing
    the unused ones; PyTorch's "num_batches_tracked" counters are skipped), shapes must
    agree (else ShapeError listing each name with both shapes) and every array must hold
    real floating-point numbers (else StateDictTypeError, a TypeError, naming it and its
    dtype); both are DataFormatErrors naming the file. A file holding a NaN or infinity raises
    DataFormatError naming the entry and element, unless `allow_nonfinite`."""
    arrays = (dict(source) if isinstance(source, Mapping)
              else _read_state_dict_file(source, allow_nonfinite))
    where = "state_dict" if isinstance(source, Mapping) else os.fspath(source)
    names = name_map or {}
    unknown = sorted(set(names) - set(built.params) - set(built.buffers))
    if unknown:
        raise KeyError(f"load_state_dict: name_map names no parameter or buffer of the model: "
                       f"{unknown}")
    ours = [*built.params, *built.buffers]
    theirs = {n: names.get(n, n) for n in ours}
    missing = [f"{n!r} (as {theirs[n]!r})" if theirs[n] != n else repr(n)
               for n in ours if theirs[n] not in arrays]
    if missing:
        raise StateDictKeyError(where, f"load_state_dict: the state_dict lacks "
                                       f"{', '.join(missing)}")
    used = set(theirs.values())
    unused = sorted(k for k in arrays if k not in used and not _ignored(k))
    if unused:
        raise StateDictKeyError(where, f"load_state_dict: the state_dict has entries the "
                                       f"model does not use: {unused} (map them with name_map)")
    current = {**built.params, **built.buffers}
    bad_shapes = [
        f"{n!r}: model {current[n].shape}, state_dict {tuple(np.shape(arrays[theirs[n]]))}"
        for n in ours if tuple(np.shape(arrays[theirs[n]])) != current[n].shape
    ]
    if bad_shapes:
        raise ShapeError("load_state_dict: shapes differ: " + "; ".join(bad_shapes))
    bad_types = [f"{theirs[n]!r} ({np.asarray(arrays[theirs[n]]).dtype})" for n in ours
                 if np.asarray(arrays[theirs[n]]).dtype.kind != "f"]
    if bad_types:
        raise StateDictTypeError(where, "load_state_dict: entries are not real floating-point "
                                        "arrays: " + ", ".join(bad_types))
    field = built.field

    def convert(n: str) -> Tensor:
        # float16/32 -> float64 is exact; the field then converts as it converts numbers.
        return Tensor(field.asarray(np.asarray(arrays[theirs[n]], dtype=np.float64)), field)

    return built.with_state(
        {n: convert(n) for n in built.params}, {n: convert(n) for n in built.buffers})
