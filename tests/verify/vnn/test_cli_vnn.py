"""`torchlean verify vnnlib` and `torchlean verify vnncomp`: verdict lines, exit codes, files."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from torchlean.cli import main
from torchlean.spec import nn
from torchlean.verify.bounds.model_file import export_model
from torchlean.verify.vnn.results import read_results

HEADER = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
          "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
          "(assert (<= -1 X_0 1))\n(assert (<= -1 X_1 1))\n")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    net: nn.Built[Any, Any] = nn.build(
        nn.linear(2, 6) >> nn.relu() >> nn.linear(6, 2), seed=0)
    export_model(net, tmp_path / "net.json", input_shape=(2,))
    (tmp_path / "holds.vnnlib").write_text(HEADER + "(assert (>= Y_0 1000))\n")
    (tmp_path / "violated.vnnlib").write_text(HEADER + "(assert (<= Y_0 1000))\n")
    (tmp_path / "bad.vnnlib").write_text(HEADER + "(assert (<= Y_0 (* Y_1 Y_0)))\n")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_vnnlib_verdicts_are_the_last_line(files: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "vnnlib", str(files / "net.json"), str(files / "holds.vnnlib"))
    assert code == 0 and out.splitlines()[-1] == "holds"
    code, out, _ = run(capsys, "vnnlib", str(files / "net.json"),
                       str(files / "violated.vnnlib"), "--timeout", "30",
                       "--result", str(files / "out.txt"))
    assert code == 0 and out.splitlines()[-1] == "violated"
    result = (files / "out.txt").read_text().splitlines()
    assert result[0] == "sat" and result[1].startswith("((X_0 ") and result[-1].endswith("))")
    assert [line.split()[0].strip("(") for line in result[1:]] == ["X_0", "X_1", "Y_0", "Y_1"]


def test_vnnlib_bad_input_exits_2_naming_the_place(files: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(capsys, "vnnlib", str(files / "net.json"), str(files / "bad.vnnlib"))
    assert code == 2 and out == ""
    assert f"{files / 'bad.vnnlib'}:7:17: non-linear term" in err
    code, out, err = run(capsys, "vnnlib", str(files / "none.onnx"),
                         str(files / "holds.vnnlib"))
    assert code == 2 and "none.onnx: cannot read the model file" in err
    monkeypatch.setitem(sys.modules, "torchlean.verify.vnn.onnx_import", None)
    (files / "m.onnx").write_bytes(b"\x08\x07")
    code, out, err = run(capsys, "vnnlib", str(files / "m.onnx"), str(files / "holds.vnnlib"))
    assert code == 2 and "ONNX import is unavailable" in err and out == ""
    with pytest.raises(SystemExit) as stop:
        main(["verify", "vnnlib", "m.onnx", "p.vnnlib", "--timeout", "-3"])
    assert stop.value.code == 2


def test_vnncomp_runs_every_row(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "instances.csv").write_text(
        "net.json,holds.vnnlib,30\n./net.json,violated.vnnlib,30\nnet.json,bad.vnnlib,5\n")
    out_csv = files / "res" / "RESULTS.csv"
    out_csv.parent.mkdir()
    code, out, err = run(capsys, "vnncomp", str(files / "instances.csv"), "--out", str(out_csv))
    assert code == 0
    rows = read_results(out_csv)
    assert [(r.onnx, r.vnnlib, r.verdict) for r in rows] == [
        ("net.json", "holds.vnnlib", "holds"), ("./net.json", "violated.vnnlib", "violated"),
        ("net.json", "bad.vnnlib", "unknown")]
    assert out_csv.read_text().startswith("onnx,vnnlib,verdict,seconds\n")
    assert "instances.csv:3: " in err and "non-linear term" in err
    table = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert table["solved"].split() == ["2", "/", "3"]
    assert (table["holds"], table["violated"], table["unknown"], table["timeouts"]) == (
        "1", "1", "1", "0")
    assert "(errors)" in table and "time" in table


def test_vnncomp_survives_an_internal_error(files: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import torchlean.verify.scale as scale
    from torchlean.verify.vnn.engine import verify_instance as real
    calls: list[Any] = []

    def flaky(model: Any, prop: Any, timeout: Any) -> Any:
        calls.append(prop)
        if len(calls) == 1:  # the first instance, holds.vnnlib (in-process: in order)
            raise RuntimeError("boom")
        return real(model, prop, timeout)

    monkeypatch.setattr(scale, "verify_instance", flaky)
    (files / "instances.csv").write_text("net.json,holds.vnnlib,30\nnet.json,violated.vnnlib,30\n")
    code, out, err = run(capsys, "vnncomp", str(files / "instances.csv"), "--out",
                         str(files / "R.csv"))
    assert code == 0 and "instances.csv:1: internal error RuntimeError: boom" in err
    assert [r.verdict for r in read_results(files / "R.csv")] == ["unknown", "violated"]


def test_vnncomp_root_and_bad_csv(files: Path, capsys: pytest.CaptureFixture[str],
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("csv")
    (elsewhere / "i.csv").write_text("net.json,holds.vnnlib,30\n")
    code, _, _ = run(capsys, "vnncomp", str(elsewhere / "i.csv"), "--root", str(files),
                     "--out", str(elsewhere / "R.csv"))
    assert code == 0 and read_results(elsewhere / "R.csv")[0].verdict == "holds"
    (elsewhere / "bad.csv").write_text("net.json,holds.vnnlib,30\nnet.json,x\n")
    code, out, err = run(capsys, "vnncomp", str(elsewhere / "bad.csv"))
    assert code == 2 and "bad.csv:2: expected 3 fields" in err and out == ""


def test_the_installed_command(files: Path) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "torchlean")
    if not os.path.exists(exe):
        pytest.skip("the torchlean script is not installed beside this Python")
    done = subprocess.run([exe, "verify", "vnnlib", "net.json", "violated.vnnlib"],
                          cwd=files, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "violated"


def test_the_example_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[3] / "examples" / "verify" / "vnnlib_check.py"
    spec = importlib.util.spec_from_file_location("vnnlib_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verdicts = module.main(["--out", str(tmp_path)])
    assert {k: v.status for k, v in verdicts.items()} == {
        "far": "holds", "close": "violated", "boxes": "holds"}
    assert (tmp_path / "close.result.txt").read_text().startswith("sat\n((X_0 ")
    assert "files in" in capsys.readouterr().out
