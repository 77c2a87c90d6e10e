"""The size check every reader of an untrusted file makes before it reads anything."""

from __future__ import annotations

import os

from .errors import DataFormatError

__all__ = ["check_file_size"]


def check_file_size(path: str | os.PathLike[str], max_bytes: int, what: str,
                    hint: str = "") -> int:
    """The size of the file at `path` in bytes; `DataFormatError` naming the file when it
    cannot be read or has more than `max_bytes` bytes (`what` names the kind of file in the
    message, `hint` is appended to the over-limit one)."""
    name = os.fspath(path)
    try:
        size = os.stat(name).st_size
    except OSError as e:
        raise DataFormatError(name, f"cannot read the {what}: {e.strerror}") from None
    if size > max_bytes:
        raise DataFormatError(name, f"the {what} has {size} bytes, more than the limit of "
                              f"{max_bytes}{hint}")
    return size
