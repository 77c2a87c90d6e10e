"""A real Dask cluster for tests: a `dask scheduler` and `dask worker`s on 127.0.0.1,
bounded in time and stopped by their ids (no nanny, so a killed worker stays dead)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

Procs = list[subprocess.Popen[bytes]]


@contextmanager
def dask_cluster(home: Path, workers: int = 2, env: Mapping[str, str] | None = None,
                 start_s: float = 60.0) -> Iterator[tuple[str, Procs]]:
    """The scheduler's address and the processes (scheduler first). They run in `home`,
    outside the repository, so they import the installed library."""
    dask_cli = Path(sys.executable).parent / "dask"
    if not dask_cli.exists():
        pytest.skip("the dask command is not installed")
    sched_file = home / "scheduler.json"
    procs: Procs = []

    def spawn(args: list[str]) -> None:
        procs.append(subprocess.Popen(args, env=None if env is None else dict(env), cwd=home,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        spawn([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", "0",
               "--no-dashboard", "--scheduler-file", str(sched_file)])
        deadline = time.monotonic() + start_s
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for k in range(workers):
            spawn([str(dask_cli), "worker", address, "--nthreads", "1", "--no-nanny",
                   "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{k}"])
        yield address, procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=20)
