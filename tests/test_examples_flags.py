"""The examples' flags: each is honoured or rejected by name, defaults show in --help,
and output paths are checked before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from example_loading import load_example

import torchlean as tl

QUICKSTART = "quickstart/simple_mlp_train.py"
MINIBATCH = "quickstart/minibatch_mlp_train.py"


@pytest.mark.parametrize(
    ("example", "argv", "flag"),
    [
        (QUICKSTART, ["--epochs", "3"], "--epochs"),
        (QUICKSTART, ["--batch-size", "4"], "--batch-size"),
        (MINIBATCH, ["--steps", "3"], "--steps"),
        ("quickstart/classification_bands.py", ["--batch-size=2"], "--batch-size"),
    ],
)
def test_a_flag_the_program_does_not_take_is_rejected_by_name(
    example: str, argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        load_example(example).main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert f"{flag} is not taken by this program" in err


def test_cli_rejects_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    from torchlean.cli import main

    with pytest.raises(SystemExit):
        main(["mlp", "--epochs", "2"])
    assert "torchlean mlp: error: --epochs is not taken" in capsys.readouterr().err


def test_lr_zero_is_honoured(capsys: pytest.CaptureFixture[str]) -> None:
    """--lr 0 used to be replaced by the default: with a zero rate nothing moves."""
    report = load_example(QUICKSTART).main(["--lr", "0", "--steps", "3", "--dtype", "float"])
    assert report.loss_after == report.loss_before
    assert report.losses == [report.loss_before] * 3


def test_batch_size_and_epochs_are_honoured(capsys: pytest.CaptureFixture[str]) -> None:
    report = load_example(MINIBATCH).main(["--epochs", "2", "--batch-size", "27"])
    assert "3 batches per epoch" in capsys.readouterr().out  # 81 points / 27
    assert report.steps == 6 and len(report.epoch_losses) == 2


def test_undeclared_value_is_a_programming_error() -> None:
    cfg, _ = tl.train.parse_flags([], flags=tl.train.Flags(steps=10))
    assert cfg.steps == 10
    with pytest.raises(AttributeError, match="takes no --epochs flag"):
        _ = cfg.epochs


def test_help_shows_the_program_name_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from torchlean.cli import main

    with pytest.raises(SystemExit) as info:
        main(["mlp", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0
    assert out.startswith("usage: torchlean mlp ")
    assert "--steps N training steps (default: 200;" in out
    assert "--lr X learning rate (default: 0.03;" in out
    assert "--epochs" not in out and "--batch-size" not in out


@pytest.mark.parametrize("example", [QUICKSTART, MINIBATCH, "models/cnn_bands.py"])
def test_log_in_a_missing_folder_fails_before_training(
    example: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "no-such-folder" / "report.json"
    with pytest.raises(SystemExit) as info:
        load_example(example).main(["--log", str(path)])
    captured = capsys.readouterr()
    assert info.value.code == 2
    assert f"--log {path}: the folder" in captured.err and "does not exist" in captured.err
    assert "loss" not in captured.out  # nothing trained
    assert ".tmp" not in captured.err


def test_log_naming_a_folder_is_rejected(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_example(QUICKSTART).main(["--log", str(tmp_path)])
    assert "is a folder" in capsys.readouterr().err


def test_log_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    report = load_example(MINIBATCH).main(["--epochs", "1", "--log", str(path)])
    assert json.loads(path.read_text())["losses"] == report.losses


def test_verify_out_is_checked_before_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchlean.verify_cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status = main(["robustness", "--demo", "bands", "--eps", "1/100",
                   "--out", str(blocker / "certs")])
    out = capsys.readouterr().out
    assert status == 2 and f"--out {blocker / 'certs'}: cannot create the folder" in out
    assert "certified" not in out  # the table never started


def test_verify_out_creates_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchlean.verify_cli import main

    folder = tmp_path / "new" / "certs"
    assert main(["robustness", "--demo", "bands", "--eps", "1/100", "--out", str(folder)]) == 0
    assert len(list(folder.glob("cert-*.json"))) == 6
