"""The one atomic writer: whole files or none, fsynced, a plain write's mode, and no
temporaries left behind by a killed save."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime import atomic_write as aw
from torchlean.runtime.atomic_write import TEMP_PREFIX, remove_stale_temporaries, write_atomically

REPO = Path(__file__).resolve().parents[2]


def test_writes_the_whole_text_and_leaves_nothing_else(tmp_path: Path) -> None:
    write_atomically(tmp_path / "a.json", lambda f: f.write("hello"))
    assert (tmp_path / "a.json").read_text() == "hello"
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_failing_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("old")

    def broken(f: IO[str]) -> None:
        f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "a.json", broken)
    assert (tmp_path / "a.json").read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_get_the_mode_a_plain_write_gives(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
        write_atomically(tmp_path / "ours", lambda f: f.write("x"))
    finally:
        os.umask(old)
    def mode(name: str) -> int:
        return (tmp_path / name).stat().st_mode & 0o777

    assert mode("ours") == mode("plain") == 0o666 & ~umask


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("old")
    os.chmod(tmp_path / "a", 0o640)
    write_atomically(tmp_path / "a", lambda f: f.write("new"))
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640


def test_data_and_folder_are_fsynced_before_and_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(a: Any, b: Any) -> None:
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(tmp_path / "a", lambda f: f.write("x"))
    assert events == ["fsync-file", "replace", "fsync-dir"]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_nothing_else(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f"{TEMP_PREFIX}{dead}-ck.json-abc123"
    live = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-ck.json-def456"
    foreign = tmp_path / ".tmp-abcdef"  # not ours: never touched
    for p in (stale, live, foreign):
        p.write_text("partial")
    write_atomically(tmp_path / "other.json", lambda f: f.write("x"))
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, foreign.name, "other.json"])


def test_old_temporaries_are_stale_even_if_their_pid_is_alive(tmp_path: Path) -> None:
    old = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-ck.json-zzz"
    old.write_text("partial")
    two_days = 2 * 24 * 3600
    os.utime(old, (old.stat().st_atime - two_days, old.stat().st_mtime - two_days))
    assert remove_stale_temporaries(tmp_path) == [old.name]


_KILLED_SAVE = """
import os, signal, sys
import torchlean as tl
net = tl.nn.sequential(tl.nn.linear(64, 64), tl.nn.relu(), tl.nn.linear(64, 1))
r = tl.train.runner(tl.train.regression(tl.nn.build(net, seed=0)), dtype="float")
import json
real = json.dump
def dump(doc, f, **kw):
    f.write(json.dumps(doc)[:1000])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)   # killed mid-write
json.dump = dump
r.save(sys.argv[1])
"""


def test_a_save_killed_mid_write_leaves_a_temporary_that_the_next_save_removes(
    tmp_path: Path,
) -> None:
    target = tmp_path / "ck.json"
    task = tl.train.regression(tl.nn.build(
        tl.nn.sequential(tl.nn.linear(2, 1)), seed=0))
    first = tl.train.runner(task, dtype="float")
    first.save(target)
    good = target.read_bytes()
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(target)], cwd="/",
                          env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [n for n in os.listdir(tmp_path) if n.startswith(TEMP_PREFIX)]
    assert len(left) == 1 and target.read_bytes() == good
    first.save(target)
    assert os.listdir(tmp_path) == ["ck.json"]


def test_every_writer_in_the_library_uses_the_one_helper() -> None:
    """No module but the helper calls mkstemp or os.replace (or opens files to write)."""
    offenders = []
    for folder in ("spec", "runtime", "verify", "torchlean"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name == "atomic_write.py":
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in ("mkstemp", "replace") and (
                        isinstance(node.value, ast.Name) and node.value.id in ("os", "tempfile")):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_reports_certificates_and_checkpoints_go_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = aw.write_atomically

    def spy(path: Any, write: Any) -> None:
        seen.append(os.path.basename(os.fspath(path)))
        real(path, write)

    import torchlean.runtime.checkpoint as ck
    import torchlean.runtime.train as tr

    monkeypatch.setattr(ck, "write_atomically", spy)
    monkeypatch.setattr(tr, "write_atomically", spy)
    task = tl.train.regression(tl.nn.build(tl.nn.sequential(tl.nn.linear(2, 1)), seed=0))
    r = tl.train.runner(task, dtype="float")
    r.save(tmp_path / "ck.json")
    ds_x, ds_y = tl.tensor(np.zeros((2, 2))), tl.tensor(np.zeros((2, 1)))
    from torchlean.runtime.data.dataset import TensorDataset

    report = tl.train.fit_dataset(task, r, tl.train.steps(1, tl.optim.sgd(0.1), 0),
                                  TensorDataset(ds_x, ds_y))
    report.write(str(tmp_path / "log.json"))
    assert seen == ["ck.json", "log.json"]
    assert json.loads((tmp_path / "log.json").read_text())["steps"] == 1
