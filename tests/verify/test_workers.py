"""Work pools: in-process, local processes, and a real Dask cluster on 127.0.0.1 (a
scheduler and two workers started here, bounded in time and stopped by their ids)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dask_cluster import dask_cluster

from torchlean.verify.workers import ClusterError, UnitError, WorkPool

pytest.importorskip("distributed")
HERE = Path(__file__).resolve().parent


def square_plus(i: int, delay: float, shared: Any) -> float:
    """A unit: i*i + sum(shared), after `delay` seconds; unit 3 raises."""
    time.sleep(delay)
    if i == 3:
        raise ValueError("unit three fails")
    return float(i * i + np.sum(shared))


def _expected(n: int) -> dict[int, float]:
    return {i: float(i * i + 10) for i in range(n) if i != 3}


def _check(outcomes: list[tuple[int, Any]], n: int) -> None:
    indices = [i for i, _ in outcomes]
    assert sorted(indices) == list(range(n))  # each unit exactly once
    got = dict(outcomes)
    assert isinstance(got[3], UnitError) and "unit three fails" in got[3].message
    assert {i: v for i, v in got.items() if i != 3} == _expected(n)


def test_in_process_pool_runs_in_order() -> None:
    with WorkPool() as pool:
        assert pool.in_process
        out = list(pool.run(square_plus, [(i, 0.0) for i in range(6)], pool.share(np.ones(10))))
    assert [i for i, _ in out] == list(range(6))
    _check(out, 6)


@pytest.mark.parametrize("workers", [0, -2, True, 1.5])
def test_bad_worker_counts_are_refused(workers: Any) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        WorkPool(workers=workers)


def test_unreachable_scheduler_is_named_within_ten_seconds() -> None:
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=r"tcp://127\.0\.0\.1:9"):
        with WorkPool(scheduler="tcp://127.0.0.1:9"):
            pass
    assert time.monotonic() - t0 < 10.0


def test_local_processes_give_the_serial_outcomes() -> None:
    with WorkPool(workers=2) as pool:
        out = list(pool.run(square_plus, [(i, 0.0) for i in range(8)], pool.share(np.ones(10))))
    _check(out, 8)


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A `dask scheduler` and two `dask worker`s that can import this test module."""
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    with dask_cluster(tmp_path, env=dict(os.environ, PYTHONPATH=path)) as running:
        yield running


def _wait_for_workers(pool: WorkPool, n: int) -> None:
    pool.client.wait_for_workers(n, timeout=60)


def test_a_cluster_gives_the_serial_outcomes_and_survives_a_killed_worker(
        cluster: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    address, procs = cluster
    n = 10
    with WorkPool(workers=2, scheduler=address) as pool:
        _wait_for_workers(pool, 2)
        shared = pool.share(np.ones(10))
        out: list[tuple[int, Any]] = []
        killed = False
        for i, outcome in pool.run(square_plus, [(i, 0.4) for i in range(n)], shared):
            out.append((i, outcome))
            if not killed:
                procs[1].kill()  # a worker dies mid-run; its units run again elsewhere
                killed = True
    assert killed and procs[1].poll() is not None
    _check(out, n)


class _FakeClient:
    """A client whose cluster reports other versions than its own."""

    def get_versions(self, check: bool = False) -> dict[str, Any]:
        mine = {"packages": {"python": "3.11.7", "dask": "2026.8.0", "numpy": "2.4.6"}}
        theirs = {"packages": {"python": "3.11.7", "dask": "2026.1.0", "numpy": "2.4.6"}}
        return {"client": mine, "scheduler": mine, "workers": {"tcp://127.0.0.1:1": theirs}}


def test_mismatched_versions_are_named() -> None:
    with pytest.raises(ClusterError, match=r"dask: this client has 2026\.8\.0, the worker "
                       r"tcp://127\.0\.0\.1:1 has 2026\.1\.0"):
        with WorkPool(client=_FakeClient()):
            pass
