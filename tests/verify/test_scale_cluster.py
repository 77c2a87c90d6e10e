"""`verify.scale` on a real Dask cluster: a `dask scheduler` and two `dask worker`
processes on 127.0.0.1, started here, bounded in time and stopped by their ids. The
instance set and the data set give the serial results; a worker killed mid-run loses
nothing and counts nothing twice; the CLI reaches the cluster with --scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask_cluster import dask_cluster
from test_scale_common import dataset, instance_set

from torchlean.cli import main
from torchlean.verify.scale import certify_dataset, run_vnncomp
from torchlean.verify.vnn.results import read_results

pytest.importorskip("distributed")
START_S = 60.0  # a bound on the cluster's start on a loaded 2-core machine
EPS = ["1/1000", "1/20", "1"]


@pytest.fixture()
def cluster(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """The scheduler's address and the three processes (no nanny: a killed worker stays
    dead). They run outside the repository (cwd), importing the installed library."""
    with dask_cluster(tmp_path_factory.mktemp("cluster"), start_s=START_S) as running:
        _wait_for_workers(running[0], 2)
        yield running


def _wait_for_workers(address: str, n: int) -> None:
    from torchlean.verify.workers import WorkPool
    with WorkPool(scheduler=address) as pool:
        pool.client.wait_for_workers(n, timeout=START_S)


def test_the_cluster_gives_the_serial_verdicts_and_certified_set(
        cluster: tuple[str, list[Any]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    address, _ = cluster
    csv = instance_set(tmp_path)
    serial = run_vnncomp(csv, out=tmp_path / "serial.csv")
    on_cluster = run_vnncomp(csv, out=tmp_path / "cluster.csv", scheduler=address)
    assert [r.verdict for r in on_cluster.rows] == [r.verdict for r in serial.rows]
    assert on_cluster.errors.keys() == serial.errors.keys()
    model, xs, ys = dataset(tmp_path)
    base = certify_dataset(model, xs, ys, EPS)
    dist = certify_dataset(model, xs, ys, EPS, scheduler=address, batch=3)
    assert dist.certified == base.certified and 0 < len(base.certified)
    assert [r.margin_lower for r in dist.rows] == [r.margin_lower for r in base.rows]
    # the command line reaches the same cluster
    code = main(["verify", "vnncomp", str(csv), "--out", str(tmp_path / "cli.csv"),
                 "--scheduler", address])
    assert code == 0
    assert [r.verdict for r in read_results(tmp_path / "cli.csv")] == \
        [r.verdict for r in serial.rows]
    capsys.readouterr()


def test_a_killed_worker_loses_nothing_and_counts_nothing_twice(
        cluster: tuple[str, list[subprocess.Popen[bytes]]], tmp_path: Path) -> None:
    address, procs = cluster
    csv = instance_set(tmp_path, acas_copies=12)  # 57 instances: the run outlasts the kill
    serial = run_vnncomp(csv, out=tmp_path / "serial.csv")
    seen: list[int] = []

    def kill_once(inst: Any, row: Any, cause: str) -> None:
        seen.append(inst.line)
        if len(seen) == 3:
            os.kill(procs[2].pid, signal.SIGKILL)  # a worker dies mid-run

    run = run_vnncomp(csv, out=tmp_path / "R.csv", scheduler=address, on_row=kill_once)
    procs[2].wait(timeout=10)
    assert procs[2].returncode == -signal.SIGKILL
    assert sorted(seen) == list(range(1, len(serial.rows) + 1))  # each once, none lost
    assert run.errors == serial.errors
    rows = read_results(tmp_path / "R.csv")
    assert [(r.onnx, r.vnnlib, r.verdict) for r in rows] == \
        [(r.onnx, r.vnnlib, r.verdict) for r in serial.rows]
