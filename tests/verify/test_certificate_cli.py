"""`torchlean verify robustness` (torchlean.verify_cli.main): the bands demo, and model /
inputs / labels files written by verify.model_file.export_model and np.save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from torchlean.runtime.graph import from_json
from torchlean.spec.errors import DataFormatError
from torchlean.verify import bounds
from torchlean.verify.bounds import model_file as mf
from torchlean.verify_cli import demo_bands, main


@pytest.fixture(scope="module")
def bands() -> tuple[Any, Any, Any]:
    return demo_bands()


@pytest.fixture()
def files(tmp_path: Path, bands: tuple[Any, Any, Any]) -> dict[str, str]:
    net, images, labels = bands
    paths = {k: str(tmp_path / f"{k}{ext}") for k, ext in
             (("model", ".json"), ("inputs", ".npy"), ("labels", ".npy"))}
    mf.export_model(net, paths["model"], images.shape[1:])
    np.save(paths["inputs"], images)
    np.save(paths["labels"], labels.astype(np.int64))
    return paths


def _run(files: dict[str, str], *extra: str) -> int:
    argv = ["robustness"]
    for k in ("model", "inputs", "labels"):
        argv += [f"--{k}", files[k]]
    return main(argv + list(extra))


def test_demo_bands_table_and_certificates(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    assert main(["robustness", "--demo", "bands", "--eps", "1/100,1/2", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "certified accuracy at eps=1/100: 6/6" in out
    assert "certified accuracy at eps=1/2: 0/6" in out
    assert "REJECTED" not in out
    assert len(list(tmp_path.glob("cert-*.json"))) == 12


def test_model_file_is_the_model(files: dict[str, str], bands: tuple[Any, Any, Any]) -> None:
    net, images, _ = bands
    g = mf.load_model(files["model"])
    assert not g.params and g.inputs[0].shape == (1, 1, 4, 4)
    x = images[:1]
    # the literals are the exact parameter values, so the bounds agree bit for bit
    a = bounds.crown(g, {}, x - 0.01, x + 0.01)
    b = bounds.crown(net, net.params, x - 0.01, x + 0.01)
    assert np.array_equal(a.lower, b.lower) and np.array_equal(a.upper, b.upper)


def test_files_table_and_certified_accuracy(files: dict[str, str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "certs"
    out_dir.mkdir()
    assert _run(files, "--eps", "1/100,1/2", "--out", str(out_dir)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["input", "label", "eps", "certified", "margin",
                                           "lower", "bound"]
    assert len([ln for ln in out.splitlines() if ln.strip().startswith(("0 ", "5 "))]) == 4
    assert "certified accuracy at eps=1/100: 6/6" in out
    assert "certified accuracy at eps=1/2: 0/6" in out
    assert "REJECTED" not in out
    assert len(list(out_dir.glob("cert-*.json"))) == 12


def _expect_rejected(files: dict[str, str], capsys: pytest.CaptureFixture[str],
                     *needles: str) -> None:
    assert _run(files, "--eps", "1/100") == 2
    out = capsys.readouterr().out
    for needle in needles:
        assert needle in out, out


def test_malformed_model_file(files: dict[str, str],
                              capsys: pytest.CaptureFixture[str]) -> None:
    text = Path(files["model"]).read_text()
    Path(files["model"]).write_text(text.replace('"0x', '"0y', 1))
    _expect_rejected(files, capsys, files["model"], "nodes[0].data[0]")
    Path(files["model"]).write_text(text[: len(text) // 2])
    _expect_rejected(files, capsys, files["model"], "not valid JSON")
    Path(files["model"]).write_text(text.replace('"version": 1', '"version": 7'))
    _expect_rejected(files, capsys, files["model"], "newer")


def test_model_file_with_parameters_left_out(files: dict[str, str], tmp_path: Path,
                                             bands: tuple[Any, Any, Any]) -> None:
    net = bands[0]
    g = bounds.as_graph(net, net.params, (1, 4, 4))     # params as graph inputs
    path = tmp_path / "p.json"
    path.write_text(g.to_json())
    with pytest.raises(DataFormatError, match="not inlined"):
        mf.load_model(path)
    with pytest.raises(DataFormatError, match="cannot read"):
        mf.load_model(tmp_path / "missing.json")


def test_mismatched_input_shape(files: dict[str, str], bands: tuple[Any, Any, Any],
                                capsys: pytest.CaptureFixture[str]) -> None:
    np.save(files["inputs"], bands[1].reshape(6, 16))
    _expect_rejected(files, capsys, files["inputs"], "expected (N, 1, 4, 4)", "(6, 16)")


def test_labels_out_of_range_or_wrong(files: dict[str, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    np.save(files["labels"], np.array([0, 1, 0, 2, 1, 0]))
    _expect_rejected(files, capsys, files["labels"], "item 3", "label 2 is not a class")
    np.save(files["labels"], np.zeros(6))
    _expect_rejected(files, capsys, files["labels"], "integer labels", "float64")
    np.save(files["labels"], np.zeros(5, dtype=np.int64))
    _expect_rejected(files, capsys, files["labels"], "expected 6 integer labels")


def test_unsupported_op_in_model(files: dict[str, str], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from torchlean.spec import nn
    net = nn.build(nn.flatten() >> nn.linear(16, 2) >> nn.softmax(), seed=0)
    mf.export_model(net, files["model"], (1, 4, 4))
    _expect_rejected(files, capsys, "softmax")


def test_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["robustness", "--model", "m.json", "--eps", "0.1"]) == 2
    assert main(["robustness", "--demo", "bands", "--eps", "abc"]) == 2
    assert main(["robustness", "--demo", "bands", "--eps=-1/10"]) == 2
    out = capsys.readouterr().out
    assert "all of --model, --inputs and --labels" in out
    assert "--eps must be numbers" in out and "--eps must be >= 0" in out


def test_export_is_atomic_and_reloads(tmp_path: Path, bands: tuple[Any, Any, Any]) -> None:
    g = mf.export_model(bands[0], tmp_path / "m.json", (4, 4))
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]   # no temporary left over
    assert from_json((tmp_path / "m.json").read_text()) == g
