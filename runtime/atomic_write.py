"""One way to write a file so that it is either wholly old or wholly new.

Every file the library writes (checkpoints, fit reports, certificates, model files) goes
through `write_atomically`: the text goes to a temporary file beside the target, which is
flushed and fsynced, then renamed over the target, and the folder is fsynced so the
rename itself survives a crash. The result gets the mode a plain `open(path, "w")` would
give (an existing file's mode, else 0o666 less the umask), not mkstemp's 0o600.

Temporaries are named `.tmp-torchlean-<pid>-<target>-<random>`. A save killed mid-write
leaves one behind; the next write into that folder removes every such file whose writing
process has ended (or that is over a day old), so they never pile up. Files of any other
name are never touched. Imports nothing of ours, so spec, runtime and verify can all use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

__all__ = ["write_atomically", "write_bytes_atomically", "remove_stale_temporaries",
           "TEMP_PREFIX"]

TEMP_PREFIX = ".tmp-torchlean-"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
# A temporary this old is stale even if its process id is alive again (ids are reused).
_STALE_AFTER_S = 24 * 3600.0


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is another user's (or we cannot tell): keep its file
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[str]:
    """Delete the temporaries our writers left in `folder` when killed mid-write (those
    whose process has ended, or over a day old); returns the names removed."""
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = _TEMP_NAME.match(name)
        if m is None:
            continue
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if _process_alive(int(m.group(1))) and now - info.st_mtime < _STALE_AFTER_S:
            continue  # another writer may be filling it right now
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed.append(name)
    return removed


def _plain_write_mode(target: str) -> int:
    """The permission bits `open(target, "w")` would leave the file with."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        pass
    umask = _umask()
    return 0o666 & ~umask


def _umask() -> int:
    # Linux reports it without changing it; elsewhere set-and-restore is the only way.
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows, where folders cannot be opened; the rename is still atomic
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[str]], object], *,
                     newline: str | None = None) -> None:
    """Write the UTF-8 text that `write(file)` produces to `path` so that a crash or an
    error leaves either the old file or the new one, never a part: `path` is replaced
    only after `write` returned and the data reached the disk. `newline` is `open`'s."""
    _write(path, lambda fd: os.fdopen(fd, "w", encoding="utf-8", newline=newline), write)


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """`write_atomically` for bytes."""
    _write(path, lambda fd: os.fdopen(fd, "wb"), lambda f: f.write(data))


def _write(path: str | os.PathLike[str], opener: Callable[[int], IO[Any]],
           write: Callable[[IO[Any]], object]) -> None:
    target = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(target)
    remove_stale_temporaries(folder)
    # (the target's name is cut short so that the temporary's name stays within limits)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{base[:100]}-", dir=folder)
    try:
        with opener(fd) as f:
            if hasattr(os, "fchmod"):  # POSIX; Windows has no such mode bits
                os.fchmod(f.fileno(), _plain_write_mode(target))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)
