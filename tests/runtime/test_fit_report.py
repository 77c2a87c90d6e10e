"""What a fit shows: the progress bar, the log messages, the report's repr and summary,
the plot, and the enclosures of interval losses."""

from __future__ import annotations

import ast
import io
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.runtime.data.dataset import TensorDataset
from torchlean.spec.fields import get_field

ROOT = Path(__file__).resolve().parents[2]
GRID = np.linspace(-1, 1, 5)
X = np.array([[a, b] for a in GRID for b in GRID])
Y = X[:, :1] ** 2 + X[:, 1:] ** 2


def fitted(dtype: str = "float", n: int = 10, log_every: int = 0) -> tl.train.FitReport:
    model = tl.nn.sequential(tl.nn.linear(2, 8), tl.nn.relu(), tl.nn.linear(8, 1))
    task = tl.train.regression(tl.nn.build(model, seed=0))
    runner = tl.train.runner(task, dtype=dtype)
    data = TensorDataset(tl.tensor(X, dtype), tl.tensor(Y, dtype))
    return tl.train.fit_dataset(
        task, runner, tl.train.steps(n, tl.optim.adam(0.03), log_every=log_every), data)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, as tqdm checks."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_rate_and_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    fitted(n=40)
    shown = term.getvalue()
    assert "40/40" in shown and "step/s" in shown and "loss=" in shown
    assert "<" in shown  # tqdm's [elapsed<remaining]


def test_no_progress_bar_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    fitted(n=40)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_step_losses_go_to_the_logger(caplog: pytest.LogCaptureFixture,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.INFO, logger="torchlean"):
        report = fitted(n=10, log_every=5)
    messages = [r.getMessage() for r in caplog.records if r.name == "torchlean.runtime.train"]
    assert messages == [f"step {k}: loss={report.losses[k]:.10g}" for k in (0, 5)]
    assert capsys.readouterr().out == ""


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("torchlean").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def library_prints() -> list[str]:
    found = []
    for layer in ("spec", "runtime", "verify"):
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_library_code_never_prints() -> None:
    assert library_prints() == []


def test_repr_is_short_and_summary_is_readable() -> None:
    report = fitted(n=200)
    text = repr(report)
    assert len(text) < 300 and "losses" not in text
    assert text.startswith("FitReport(loss_before=")
    assert str(report) == report.summary()


def test_summary_tells_float_from_float32() -> None:
    def after(dtype: str) -> str:
        line = fitted(dtype, n=20).summary().splitlines()[1]
        return line.split(":", 1)[1].strip()

    # 10 significant digits: float32 rounding (about 6e-8 relative) shows in the 8th.
    assert after("float") != after("float32")
    assert abs(float(after("float")) - float(after("float32"))) < 1e-5


def test_accuracy_reads_as_a_percentage() -> None:
    report = tl.train.FitReport(1.0, 0.5, metrics={"loss": 0.5, "accuracy": 1.0})
    lines = report.summary().splitlines()
    assert "accuracy: 100.00%" in lines
    assert not any(line.startswith("loss:") for line in lines)  # said once, as loss after


def test_plot_writes_an_image(tmp_path: Path) -> None:
    report = fitted(n=10)
    report.plot(str(tmp_path / "loss.png"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_into_a_missing_folder_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "log.json"
    with pytest.raises(FileNotFoundError, match="missing/log.json.*folder does not exist"):
        fitted(n=2).write(str(path))


# -- interval losses -------------------------------------------------------------------
fractions = st.fractions(min_value=-10**6, max_value=10**6, max_denominator=10**9)


@settings(max_examples=60, deadline=None)
@given(fractions, fractions)
def test_enclosure_contains_the_interval(a: Fraction, b: Fraction) -> None:
    """Outward rounding to floats: lo <= every real in the interval <= hi."""
    field = get_field("interval")
    x = field.scalar(a) / field.scalar(3) + field.scalar(b)  # an interval of width > 0
    lo, hi = tl.train.enclosure(x)
    exact = a / 3 + b
    assert Fraction(lo) <= exact <= Fraction(hi)
    assert lo <= tl.train.to_float(x) <= hi
    lo, hi = tl.train.enclosure(exact)  # a rational: its neighbouring floats
    assert Fraction(lo) <= exact <= Fraction(hi) and tl.train.to_float(exact) == float(exact)


def test_to_floats_reads_every_field() -> None:
    values: Any = [[0.25, -1.5]]
    for dtype in ("float", "float32", "exact", "interval"):
        got = tl.train.to_floats(tl.tensor(values, dtype))
        assert got.dtype == np.float64 and got.tolist() == values


def test_interval_fit_reports_enclosures() -> None:
    report = fitted("interval", n=5)
    assert report.loss_before_bounds is not None and report.loss_after_bounds is not None
    lo, hi, width = report.loss_after_bounds
    assert lo <= report.loss_after <= hi and 0 < width < 1e-25
    assert len(report.loss_widths) == 5
    assert "enclosed in [" in report.summary() and "loss enclosure width" in report.summary()
    assert fitted("float", n=5).loss_widths == []
