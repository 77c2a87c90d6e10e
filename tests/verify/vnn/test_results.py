"""VNN-COMP result files, instances CSVs and RESULTS.csv: exact text, strict reading."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest

from torchlean.spec.errors import DataFormatError
from torchlean.verify.vnn.engine import Verdict
from torchlean.verify.vnn.results import (
    ResultRow,
    ResultsCsv,
    format_result,
    read_instances,
    read_results,
    write_result_file,
)

F = Fraction


def test_result_words() -> None:
    assert format_result(Verdict("holds", None, 1.0)) == "unsat\n"
    assert format_result(Verdict("unknown", None, 1.0)) == "unknown\n"
    assert format_result(Verdict("timeout", None, 1.0)) == "timeout\n"


def test_counterexample_one_pair_a_line(tmp_path: Path) -> None:
    v = Verdict("violated", ((F(1, 2), F(-3)), (F(1, 3), F(2**-60))), 0.5)
    path = tmp_path / "out.txt"
    write_result_file(path, v)
    assert path.read_text() == (
        "sat\n"
        "((X_0 0.5)\n"
        "(X_1 -3)\n"
        f"(Y_0 {float(F(1, 3))!r})\n"  # no finite decimal: the nearest binary64
        "(Y_1 0.000000000000000000867361737988403547205962240695953369140625))\n"
    )
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_instances_csv(tmp_path: Path) -> None:
    (tmp_path / "instances.csv").write_text(
        "a.onnx,specs/p.vnnlib,116\n\nnets/b.onnx,./q.vnnlib,300.0\n")
    rows = read_instances(tmp_path / "instances.csv")
    assert [(r.onnx, r.vnnlib, r.timeout, r.line) for r in rows] == [
        ("a.onnx", "specs/p.vnnlib", 116.0, 1), ("nets/b.onnx", "./q.vnnlib", 300.0, 3)]
    assert rows[0].onnx_path == os.path.join(str(tmp_path), "a.onnx")
    other = read_instances(tmp_path / "instances.csv", root="/data")
    assert other[1].vnnlib_path == "/data/./q.vnnlib"


@pytest.mark.parametrize(("text", "message"), [
    ("a.onnx,p.vnnlib\n", r"instances.csv:1: expected 3 fields"),
    ("a.onnx,p.vnnlib,10\na.onnx,p.vnnlib,ten\n", r"instances.csv:2: timeout must be a number"),
    ("a.onnx,p.vnnlib,-1\n", r"instances.csv:1: timeout must be a positive"),
    ("a.onnx,p.vnnlib,nan\n", r"instances.csv:1: timeout must be a positive"),
    ("a.onnx,,10\n", r"instances.csv:1: empty onnx or vnnlib path"),
    ("a.onnx,p.vnnlib,1\n\n\"a.onnx,p.vnnlib,1\n", r"instances.csv:3: bad CSV"),
])
def test_bad_instances_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "instances.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message):
        read_instances(path)


def test_missing_and_binary_csv(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read the instances CSV"):
        read_instances(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b,1\n\xff,b,1\n")
    with pytest.raises(DataFormatError, match=r"bad.csv:2: the instances CSV is not UTF-8"):
        read_instances(bad)


def test_results_csv_is_whole_after_every_row(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.csv"
    out = ResultsCsv.create(path)
    assert path.read_text() == "onnx,vnnlib,verdict,seconds\n"
    assert read_results(path) == []
    out.append(ResultRow("nets/a b.onnx", "./p,1.vnnlib", "holds", 1.23456))
    out.append(ResultRow("a.onnx", "q.vnnlib", "timeout", 116.0))
    assert path.read_text() == ('onnx,vnnlib,verdict,seconds\n'
                                'nets/a b.onnx,"./p,1.vnnlib",holds,1.235\n'
                                'a.onnx,q.vnnlib,timeout,116.000\n')
    back = read_results(path)
    assert [(r.onnx, r.vnnlib, r.verdict) for r in back] == [
        ("nets/a b.onnx", "./p,1.vnnlib", "holds"), ("a.onnx", "q.vnnlib", "timeout")]
    assert back[0].seconds == 1.235
    # restarting starts a fresh file
    ResultsCsv.create(path)
    assert read_results(path) == []


@pytest.mark.parametrize(("text", "message"), [
    ("onnx,vnnlib,verdict\n", r"RESULTS.csv:1: expected the header"),
    ("onnx,vnnlib,verdict,seconds\na,b,sat,1\n", r"RESULTS.csv:2: verdict must be one of"),
    ("onnx,vnnlib,verdict,seconds\na,b,holds,x\n", r"RESULTS.csv:2: seconds must be a number"),
    ("onnx,vnnlib,verdict,seconds\na,b,holds\n", r"RESULTS.csv:2: expected 4 fields"),
])
def test_bad_results_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "RESULTS.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message):
        read_results(path)


def test_rows_need_a_known_verdict() -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        ResultRow("a", "b", "sat", 1.0)
