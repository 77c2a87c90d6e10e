"""The examples in the slow fields: every example trains a few steps over `interval`
without crashing, its loss reported as an enclosure; the quickstart's `exact` defaults
finish and say what they changed; interval losses enclose the exact ones."""

from __future__ import annotations

from fractions import Fraction

import pytest
from example_loading import load_example

import torchlean as tl

# A few steps each, on the smallest settings the example takes: interval arithmetic runs
# each scalar through mpmath, hundreds of times slower than NumPy.
INTERVAL_RUNS = [
    ("quickstart/simple_mlp_train.py", ["--steps", "3"]),
    ("quickstart/minibatch_mlp_train.py", ["--epochs", "1", "--batch-size", "27"]),
    ("quickstart/classification_bands.py", ["--steps", "2"]),
    ("models/cnn_bands.py", ["--steps", "2"]),
    ("scientific/pinn_poisson1d.py", ["--steps", "2"]),
    pytest.param("models/resnet_small.py", ["--steps", "1"]),
    # its masked attention's first maximum is undecided over intervals: a [0, 1] mask
    ("models/transformer_copy_task.py", ["--steps", "1"]),
    # Several minutes over intervals (its whole-corpus evaluations): run with -m slow.
    pytest.param("models/char_lm.py", ["--steps", "1", "--batch-size", "1"],
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("example", "args"), INTERVAL_RUNS)
def test_every_example_trains_in_interval(
    example: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    report = load_example(example).main(["--dtype", "interval", *args])
    out = capsys.readouterr().out
    assert "loss after" in out
    if report.loss_after_bounds is not None:  # the fit helpers' reports (not the PINN's)
        lo, hi, width = report.loss_after_bounds
        # Widths start near 2^-113 and grow with depth and steps: 1e-33 for the MLPs'
        # first step, 1e-16 after one step of the GRU over 12 characters.
        assert lo <= report.loss_after <= hi and 0 < width < 1e-10
        assert "enclosed in [" in out
        assert len(report.loss_widths) == report.steps
        assert all(0 < w < 1e-10 for w in report.loss_widths)


def test_interval_widths_grow_with_the_steps() -> None:
    """Each step computes with the last step's enclosures, so the loss's enclosure
    widens; the quickstart's interval default stops while it is still narrow."""
    report = load_example("quickstart/simple_mlp_train.py").main(
        ["--dtype", "interval", "--steps", "30"])
    widths = report.loss_widths
    assert widths[-1] > 100 * widths[0]
    assert report.loss_after_bounds is not None and report.loss_after_bounds[2] < 1e-20


def test_interval_loss_encloses_the_exact_loss() -> None:
    """The same SGD steps over `exact` and `interval`: the exact loss after them lies in
    the interval run's enclosure (rounded outward to floats), and so does the float
    midpoint the report logs."""
    def fit(dtype: str) -> tuple[tl.train.FitReport, tl.train.Runner, object]:
        model = tl.nn.sequential(tl.nn.linear(2, 4), tl.nn.relu(), tl.nn.linear(4, 1))
        task = tl.train.regression(tl.nn.build(model, seed=1))
        runner = tl.train.runner(task, dtype=dtype)
        points = tl.data.samples.grid2_square(3, dtype=runner.field)
        data = tl.data.TensorDataset(
            points, tl.data.samples.regression_2to1(points, lambda a, b: a * b + b))
        report = tl.train.fit_dataset(task, runner, tl.train.steps(3, tl.optim.sgd(0.25)), data)
        x, y = data.batch(range(len(data)))
        runner.eval()
        return report, runner, runner.task_loss(runner.predict(x), runner.as_input(y)).item()

    _, _, exact_loss = fit("exact")
    report, _, _ = fit("interval")
    assert isinstance(exact_loss, Fraction)
    assert report.loss_after_bounds is not None
    lo, hi, _ = report.loss_after_bounds
    assert Fraction(lo) <= exact_loss <= Fraction(hi)
    assert lo <= report.loss_after <= hi


def test_exact_quickstart_defaults_finish_and_say_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = load_example("quickstart/simple_mlp_train.py").main(["--dtype", "exact"])
    captured = capsys.readouterr()
    assert report.steps == 5 and report.loss_after < report.loss_before
    assert "--steps 5 (not 200), --lr 0.0625 (not 0.03)" in captured.err
    assert "rationals grow" in captured.err
    assert "SGD(lr=0.0625), not Adam" in captured.out


def test_exact_keeps_the_steps_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    report = load_example("quickstart/simple_mlp_train.py").main(
        ["--dtype", "exact", "--steps", "2"])
    assert report.steps == 2 and "--steps" not in capsys.readouterr().err


def test_help_states_the_cost_of_exact(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_example("quickstart/simple_mlp_train.py").main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 200; 5 with --dtype exact; 100 with --dtype interval)" in out
    assert "5 steps take about a second, 6 about 8 s, 7 about 50 s" in out


def test_interval_default_as_the_help_says(capsys: pytest.CaptureFixture[str]) -> None:
    """`torchlean mlp --dtype interval`: 100 steps by default, after which the loss is
    known to ~1e-15 (the width the help text quotes; 2.7e-33 after one step)."""
    from torchlean.demos import mlp

    report = mlp(["--dtype", "interval"])
    assert report.steps == 100 and "--steps 100 (not 200)" in capsys.readouterr().err
    assert report.loss_after_bounds is not None
    assert 1e-17 < report.loss_after_bounds[2] < 1e-14
    assert report.loss_widths[0] < 1e-30
