"""`verify.scale`: instance lists and data sets in this process and on 2 local workers, the
same verdicts and certified sets; failing units; resume after a stopped driver, and its
refusal of another list; the CLI flags."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_scale_common import dataset, instance_set

from torchlean.cli import main
from torchlean.spec.errors import DataFormatError
from torchlean.verify.scale import DATASET_HEADER, certify_dataset, errors_path, run_vnncomp
from torchlean.verify.vnn.results import read_csv_rows, read_results

EXPECTED = (["holds", "violated"] * 3 + ["unknown"] * 3 + ["holds", "violated"] * 2)
EPS = ["1/1000", "1/20", "1"]


class Stop(Exception):
    """Stands for a driver killed after some rows."""


def _verdicts(path: Path) -> list[tuple[str, str, str]]:
    return [(r.onnx, r.vnnlib, r.verdict) for r in read_results(path)]


def test_instances_give_the_same_verdicts_in_process_and_on_two_workers(
        tmp_path: Path) -> None:
    csv = instance_set(tmp_path)
    serial = run_vnncomp(csv, out=tmp_path / "R1.csv")
    assert [r.verdict for r in serial.rows] == EXPECTED
    # the three failing units: a bad property, a property of other sizes, a missing model
    assert sorted(serial.errors) == [6, 7, 8]
    assert "non-linear term" in serial.errors[6] and "missing.onnx" in serial.errors[8]
    seen: list[int] = []
    two = run_vnncomp(csv, out=tmp_path / "R2.csv", workers=2,
                      on_row=lambda inst, row, cause: seen.append(inst.line))
    assert sorted(seen) == list(range(1, len(EXPECTED) + 1))  # each instance once
    assert _verdicts(tmp_path / "R2.csv") == _verdicts(tmp_path / "R1.csv")
    assert [r.verdict for r in two.rows] == EXPECTED and sorted(two.errors) == [6, 7, 8]
    side = read_csv_rows(errors_path(tmp_path / "R2.csv"), ("onnx", "vnnlib", "error"), "e")
    assert [(r[0], r[1]) for _, r in side] == [
        ("toy1.json", "nonlinear.vnnlib"), ("toy2.json", "acas_3in.vnnlib"),
        ("missing.onnx", "holds.vnnlib")]


def test_a_stopped_driver_resumes_where_it_stopped(tmp_path: Path) -> None:
    csv = instance_set(tmp_path, acas_copies=1)
    full = run_vnncomp(csv, out=tmp_path / "full.csv")
    out = tmp_path / "R.csv"

    def stop_after_eight(inst: Any, row: Any, cause: str) -> None:
        if len(read_results(out)) >= 8:
            raise Stop

    with pytest.raises(Stop):
        run_vnncomp(csv, out=out, on_row=stop_after_eight)
    assert len(read_results(out)) == 8  # the file holds exactly the rows finished
    again: list[int] = []
    resumed = run_vnncomp(csv, out=out, resume=True,
                          on_row=lambda inst, row, cause: again.append(inst.line))
    assert resumed.resumed == 8 and again == list(range(9, len(full.rows) + 1))
    assert _verdicts(out) == _verdicts(tmp_path / "full.csv")
    assert resumed.errors == full.errors  # causes of resumed rows come from the side file
    # resuming a finished file runs nothing
    assert run_vnncomp(csv, out=out, resume=True).resumed == len(full.rows)


def test_resume_refuses_another_instance_list_naming_the_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = instance_set(tmp_path, acas_copies=1)
    run_vnncomp(csv, out=tmp_path / "R.csv")
    rows = csv.read_text().splitlines()
    rows[2] = "toy1.json,violated.vnnlib,60"  # a list that differs at its third row
    other = tmp_path / "other.csv"
    other.write_text("\n".join(rows) + "\n")
    before = (tmp_path / "R.csv").read_text()
    with pytest.raises(DataFormatError, match=r"R\.csv:4: row toy1\.json,holds\.vnnlib is "
                       r"not a unit of .*other\.csv"):
        run_vnncomp(other, out=tmp_path / "R.csv", resume=True)
    assert (tmp_path / "R.csv").read_text() == before  # nothing written
    code = main(["verify", "vnncomp", str(other), "--out", str(tmp_path / "R.csv"),
                 "--resume"])
    assert code == 2 and "R.csv:4: row toy1.json,holds.vnnlib is not" in \
        capsys.readouterr().err


def test_cli_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = instance_set(tmp_path, acas_copies=0)
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as stop:
            main(["verify", "vnncomp", str(csv), "--workers", bad])
        assert stop.value.code == 2
        assert f"--workers must be a positive whole number, got '{bad}'" in \
            capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["verify", "robustness", "--demo", "bands", "--eps", "0", "--batch", "0"])
    assert "--batch must be a positive whole number" in capsys.readouterr().err
    t0 = time.monotonic()
    code = main(["verify", "vnncomp", str(csv), "--out", str(tmp_path / "R.csv"),
                 "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2 and time.monotonic() - t0 < 10.0
    assert "tcp://127.0.0.1:9" in capsys.readouterr().err
    code = main(["verify", "vnncomp", str(csv), "--out", str(tmp_path / "R.csv"),
                 "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 0 and "solved          6 / 9" in out and "(errors)        3" in out
    assert "instances.csv:7: " in err and "non-linear term" in err


def test_dataset_certified_set_is_the_same_for_any_workers_and_batch(tmp_path: Path) -> None:
    model, xs, ys = dataset(tmp_path)
    serial = certify_dataset(model, xs, ys, EPS, out=tmp_path / "c1.csv")
    assert 0 < len(serial.certified) < len(xs) * len(EPS)  # the comparison has content
    two = certify_dataset(model, xs, ys, EPS, workers=2, batch=5, out=tmp_path / "c2.csv")
    assert two.certified == serial.certified
    assert [r.margin_lower for r in two.rows] == [r.margin_lower for r in serial.rows]
    keep = [0, 1, 2, 3, 5, 7]  # without the timing column
    a = [[r[k] for k in keep] for _, r in read_csv_rows(tmp_path / "c1.csv", DATASET_HEADER, "")]
    b = [[r[k] for k in keep] for _, r in read_csv_rows(tmp_path / "c2.csv", DATASET_HEADER, "")]
    assert a == b and len(a) == len(xs) * len(EPS)
    # certified means: every margin lower bound > 0 (checked against the rows)
    for r in serial.rows:
        assert r.certified == (Fraction(r.margin_lower) > 0)
    assert serial.summary()[Fraction(1)][0] == 0


def test_dataset_resume_and_refusal(tmp_path: Path) -> None:
    model, xs, ys = dataset(tmp_path)
    full = certify_dataset(model, xs, ys, EPS)
    out = tmp_path / "c.csv"
    count = [0]

    def stop(row: Any) -> None:
        count[0] += 1
        if count[0] == 7:
            raise Stop

    with pytest.raises(Stop):
        certify_dataset(model, xs, ys, EPS, out=out, on_row=stop, batch=2)
    assert len(read_csv_rows(out, DATASET_HEADER, "")) == 7
    resumed = certify_dataset(model, xs, ys, EPS, out=out, resume=True)
    assert resumed.resumed == 7 and resumed.certified == full.certified
    changed = np.array(xs)
    changed[4, 0] += 1e-9  # another data set: its input 4 differs
    with pytest.raises(DataFormatError, match=r"c\.csv:\d+: row 4,"):
        certify_dataset(model, changed, ys, EPS, out=out, resume=True)


def test_dataset_failures_are_rows_with_causes(tmp_path: Path) -> None:
    model, xs, ys = dataset(tmp_path, n=3)
    run = certify_dataset(model, xs, ys, ["1/10"], method="crown", workers=1)
    assert not any(r.error for r in run.rows)
    bad = certify_dataset(model, xs[:, :3], ys, ["1/10"])  # inputs of the wrong shape
    assert all(r.error and not r.certified for r in bad.rows)


def test_cli_robustness_with_workers_and_csv_inputs(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    model, xs, ys = dataset(tmp_path, n=6)
    table = tmp_path / "data.csv"
    table.write_text("".join(",".join(repr(float(v)) for v in x) + f",{y}\n"
                             for x, y in zip(xs, ys, strict=True)))
    serial = certify_dataset(model, xs, ys, ["1/20"])
    code = main(["verify", "robustness", "--model", str(model), "--inputs", str(table),
                 "--eps", "1/20", "--workers", "2", "--batch", "2",
                 "--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "certs")])
    out = capsys.readouterr().out
    assert code == 0, out
    k = len(serial.certified)
    assert f"certified accuracy at eps=1/20: {k}/6" in out and "REJECTED" not in out
    assert len(list((tmp_path / "certs").glob("cert-*.json"))) == 6
    rows = read_csv_rows(tmp_path / "r.csv", DATASET_HEADER, "")
    assert [r[4] for _, r in rows] == ["yes" if r.certified else "no" for r in serial.rows]
    code = main(["verify", "robustness", "--model", str(model), "--inputs", str(table),
                 "--eps", "1/20", "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2 and "tcp://127.0.0.1:9" in capsys.readouterr().out


def test_a_killed_driver_process_resumes(tmp_path: Path) -> None:
    """The command killed (SIGKILL) mid-run leaves a whole results file; --resume finishes
    it with the verdicts of an uninterrupted run, each instance once."""
    csv = instance_set(tmp_path, acas_copies=30)
    full = run_vnncomp(csv, out=tmp_path / "full.csv")
    out = tmp_path / "R.csv"
    command = Path(sys.executable).parent / "torchlean"
    proc = subprocess.Popen([str(command), "verify", "vnncomp", str(csv), "--out", str(out)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(read_results(out)) >= 5:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=20)
    done = read_results(out)  # whole at the moment of the kill
    assert proc.returncode == -signal.SIGKILL and 5 <= len(done) < len(full.rows)
    resumed = run_vnncomp(csv, out=out, resume=True)
    assert resumed.resumed == len(done)
    assert _verdicts(out) == _verdicts(tmp_path / "full.csv")


def test_each_timeout_is_measured_inside_its_unit(tmp_path: Path) -> None:
    """129 instances of 2 s each on 2 workers: all are submitted at once and the last ones
    wait in the queue longer than 2 s, so a clock started at submission would time them
    out; none times out, and each unit's own seconds stay under its limit."""
    csv = instance_set(tmp_path, acas_copies=60, timeout=2)
    stamps: list[float] = []
    run = run_vnncomp(csv, out=tmp_path / "R.csv", workers=2,
                      on_row=lambda inst, row, cause: stamps.append(time.monotonic()))
    assert stamps[-1] - stamps[0] > 2.0  # the queue outlasted one timeout
    assert not [r for r in run.rows if r.verdict == "timeout"]
    assert all(r.seconds < 2.0 for r in run.rows)
