"""`.npy` files, read by our own parser (`spec.npy_format`): untrusted bytes are parsed,
never evaluated, and `np.load` is not used.

Only plain numeric dtypes are read: little-endian floats and integers, bytes and booleans.
NaN and infinite elements are refused unless the caller allows them. Every error is a
`DataFormatError` whose `where` is "<file>: byte <offset>" for the format and
"<file>: element <index>" for a value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...spec.errors import DataFormatError
from ...spec.npy_format import (
    MAGIC,
    SUPPORTED_DESCRS,
    NpyHeader,
    first_nonfinite,
    parse_npy,
    parse_npy_header,
)
from ...spec.tensor import Tensor
from ._convert import DType, PathLike, host_to_tensor, read_bytes

__all__ = [
    "load_npy", "read_npy", "parse_npy", "parse_npy_header", "NpyHeader", "SUPPORTED_DESCRS",
    "MAGIC",
]


def load_npy(path: PathLike, dtype: DType = "float", *, allow_nonfinite: bool = False) -> Tensor:
    """The array in the `.npy` file at `path`, as a tensor of field `dtype` (booleans
    become 0/1; a value the field cannot hold, such as nan in `exact`, is an error; NaN
    and infinity are refused unless `allow_nonfinite`)."""
    host = read_npy(path, allow_nonfinite=allow_nonfinite)
    return host_to_tensor(host, dtype, str(path))


def read_npy(path: PathLike, *, allow_nonfinite: bool = False) -> np.ndarray[Any, Any]:
    """The array in the `.npy` file at `path`, as stored: a C-ordered NumPy array of the
    file's dtype in native byte order. A NaN or infinite element raises DataFormatError
    naming the file and its index, unless `allow_nonfinite`."""
    name = str(path)
    arr = parse_npy(read_bytes(path), name)
    if not allow_nonfinite:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray[Any, Any], name: str) -> None:
    """Raise DataFormatError naming `name` and the index of the first NaN or infinite
    element of `arr`, if it has one."""
    at = first_nonfinite(arr)
    if at is not None:
        raise DataFormatError(
            f"{name}: element {at}",
            f"non-finite value {arr[at]!r}; pass allow_nonfinite=True to read it",
        )
