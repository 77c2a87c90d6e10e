"""Each example runs (with small step counts) and prints what it promises."""

from __future__ import annotations

import pytest
from example_loading import load_example


@pytest.mark.parametrize("dtype", ["float", "float32", "ieee32exec"])
@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_quickstart(dtype: str, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = load_example("quickstart/simple_mlp_train.py").main(
        ["--steps", "200", "--dtype", dtype, "--backend", backend]
    )
    out = capsys.readouterr().out
    assert report.loss_before / report.loss_after >= 10
    assert "loss before" in out and "loss after" in out and out.count("probe f(") == 3


def test_minibatch_example(capsys: pytest.CaptureFixture[str]) -> None:
    report = load_example("quickstart/minibatch_mlp_train.py").main(["--epochs", "8"])
    out = capsys.readouterr().out
    assert report.loss_after < report.loss_before / 10
    assert len(report.epoch_losses) == 8 and "batches per epoch" in out


def test_bands_example_classifies_its_probes(capsys: pytest.CaptureFixture[str]) -> None:
    report = load_example("quickstart/classification_bands.py").main(["--steps", "150"])
    out = capsys.readouterr().out
    assert report.metrics["accuracy"] == 1.0
    probes = [line for line in out.splitlines() if line.startswith("probe")]
    assert len(probes) == 4
    for line in probes:  # "probe vertical-1 -> class 0 (vertical), label 0"
        assert line.split("class ")[1][0] == line.rsplit("label ", 1)[1]


def test_spec_demo_prints_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    load_example("quickstart/spec_demo.py").main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0].strip() for line in lines] == [
        "float",
        "float32",
        "ieee32exec",
        "exact",
        "interval",
    ]
    exact = next(line for line in lines if line.strip().startswith("exact"))
    assert "/" in exact  # an exact rational, not a rounded float


def test_bad_flag_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load_example("quickstart/simple_mlp_train.py").main(["--dtype", "half"])
    assert info.value.code == 2 and "invalid choice: 'half'" in capsys.readouterr().err


def test_exact_quickstart_with_sgd_runs_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    module = load_example("quickstart/simple_mlp_train.py")
    report = module.main(["--steps", "2", "--dtype", "exact", "--lr", "0.0625"])
    assert report.loss_after != report.loss_before


def test_cli_lists_and_runs_demos(capsys: pytest.CaptureFixture[str]) -> None:
    from torchlean.cli import main

    assert main(["--help"]) == 0 and "mlp" in capsys.readouterr().out
    assert main(["mlp", "--steps", "50"]) == 0 and "loss after" in capsys.readouterr().out
    assert main(["nope"]) == 2 and "unknown demo" in capsys.readouterr().err
