"""Training loops: the stepper for hand-written loops, and the fit helpers with reports.

    loop = train.stepper(task, runner, optim.adam(0.03))
    for step in range(steps):
        loss = train.step(loop, batch)

    report = train.fit_dataset(task, runner, train.steps(200, optimizer=optim.adam(0.03)), ds)

A fit evaluates the loss before and after (in eval mode, over the whole dataset),
records the loss curve, calls the hooks, and returns a `FitReport`. On a terminal it
shows a progress bar (tqdm: rate and time left); every `log_every` steps it logs the loss
on the `torchlean.runtime.train` logger (at INFO; the library never prints).

Over `interval` every loss is an enclosure: the report keeps its bounds, the curve and
the logs its midpoint, and `loss_widths` how the enclosure widened step by step.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple, Protocol

import numpy as np
from mpmath import libmp
from tqdm import tqdm

from ..spec.fields.interval import IntervalField
from ..spec.tensor import Tensor
from .atomic_write import write_atomically
from .optim import Optimizer
from .runner import Runner
from .runner_state import structure
from .tasks import Task

__all__ = [
    "Stepper", "stepper", "step", "FitConfig", "LoaderFitConfig", "steps", "epochs",
    "Hooks", "FitReport", "fit_dataset", "fit_loader", "Batch", "to_float", "to_floats",
    "enclosure",
]

logger = logging.getLogger(__name__)

Batch = tuple[Any, Any]


class Dataset(Protocol):
    """What the fit helpers need of a dataset: its length and batches by index."""

    def __len__(self) -> int: ...
    def batch(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]: ...


class Loader(Protocol):
    """What `fit_loader` needs of a loader: batches per epoch and each epoch's batches."""

    def __len__(self) -> int: ...
    def epoch(self, e: int) -> Iterable[tuple[Tensor, Tensor]]: ...


@dataclass
class Stepper:
    """A manual training loop's state: the task and the runner it updates, and whether a
    step with a non-finite loss or gradient stops the loop (NonFiniteError)."""

    task: Task
    runner: Runner
    stop_on_nonfinite: bool = True


def stepper(
    task: Task, runner: Runner, optimizer: Optimizer, *, stop_on_nonfinite: bool = True
) -> Stepper:
    """Attach `optimizer` to `runner` and return the loop for `step`. The optimizer's
    state starts fresh unless the runner already has this optimizer's (see
    `Runner.set_optimizer`). `task` must describe the runner's model (the same layers,
    parameter names and shapes; not necessarily the same object) and task kind.
    By default a step whose loss or gradient is NaN or infinite raises NonFiniteError
    naming the step and the op, before its update; `stop_on_nonfinite=False` trains on."""
    if structure(runner.task.model) != structure(task.model):
        raise ValueError(
            "stepper: the runner was built for a different model than the task:\n"
            f"  runner: {runner.task.model.model!r}\n  task:   {task.model.model!r}")
    if runner.task.kind != task.kind:
        raise ValueError(f"stepper: the runner was built for a {runner.task.kind} task, "
                         f"the task is {task.kind}")
    runner.set_optimizer(optimizer)
    return Stepper(task, runner, stop_on_nonfinite)


def step(loop: Stepper, sample: Batch) -> float:
    """One training step on `sample` = (inputs, targets) in train mode; returns the loss
    as a host float (on a GPU, the step's one device-to-host transfer)."""
    return _step_reading(loop, sample).value


def _step_reading(loop: Stepper, sample: Batch) -> _Reading:
    x, y = sample
    # The step stays on the runner's device; reading the loss is its one host transfer.
    return _read(loop.runner.train_step(x, y, stop_on_nonfinite=loop.stop_on_nonfinite))


class _Reading(NamedTuple):
    """A scalar read to the host: floats lo <= it <= hi, a bound on its width at its own
    precision (an interval's; 0 for a point), and the float to report."""

    lo: float
    hi: float
    width: float
    value: float


def _read(value: Any) -> _Reading:
    v = value.item() if isinstance(value, Tensor) else value
    raw = getattr(v, "_mpi_", None)
    if raw is not None:  # an mpmath interval: outward rounding; the width at its precision,
        # since rounding the endpoints alone would widen a 1e-30 enclosure to a float's ulp
        width = libmp.mpf_sub(raw[1], raw[0], 53, libmp.round_ceiling)
        lo = libmp.to_float(raw[0], rnd=libmp.round_floor)
        hi = libmp.to_float(raw[1], rnd=libmp.round_ceiling)
        return _Reading(lo, hi, libmp.to_float(width, rnd=libmp.round_ceiling),
                        _midpoint((lo, hi)))
    if isinstance(v, Fraction):
        return _Reading(_down(v), _up(v), 0.0, float(v))
    x = float(v)
    return _Reading(x, x, 0.0, x)


def enclosure(value: Any) -> tuple[float, float]:
    """Host floats (lo, hi) with lo <= value <= hi: an interval's endpoints or a rational
    rounded outward, or (x, x) for a float x (a one-element tensor is read first)."""
    reading = _read(value)
    return reading.lo, reading.hi


def to_float(value: Any) -> float:
    """A host float of a field's scalar (or one-element tensor): the value itself, the
    nearest float to a rational, or an interval's midpoint."""
    return _read(value).value


def to_floats(values: Any) -> np.ndarray[Any, Any]:
    """A tensor's (or array's) values as a float64 array: each value itself, the nearest
    float to a rational, or an interval's midpoint."""
    host = values.numpy() if isinstance(values, Tensor) else np.asarray(values)
    if host.dtype == object:
        return np.vectorize(to_float, otypes=[np.float64])(host) if host.size else \
            np.zeros(host.shape)
    return host.astype(np.float64)


def _midpoint(bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return lo if lo == hi else lo / 2 + hi / 2


def _down(q: Fraction) -> float:
    """The largest float <= q."""
    x = float(q)
    return math.nextafter(x, -math.inf) if Fraction(x) > q else x


def _up(q: Fraction) -> float:
    """The smallest float >= q."""
    x = float(q)
    return math.nextafter(x, math.inf) if Fraction(x) < q else x


def _is_interval(runner: Runner) -> bool:
    return isinstance(runner.field, IntervalField)


# -- configurations -----------------------------------------------------------------------
@dataclass(frozen=True)
class FitConfig:
    """A fit of `steps` optimizer steps on batches of `batch_size` (None: the whole
    dataset), logging every `log_every` steps (0: never), stopping at the first NaN or
    infinite loss or gradient unless `stop_on_nonfinite` is false."""

    steps: int
    optimizer: Optimizer
    log_every: int = 25
    batch_size: int | None = None
    seed: int = 0
    stop_on_nonfinite: bool = True


@dataclass(frozen=True)
class LoaderFitConfig:
    """A fit of `epochs` passes over a loader, logging every `log_every` steps, stopping
    at the first NaN or infinite loss or gradient unless `stop_on_nonfinite` is false."""

    epochs: int
    optimizer: Optimizer
    log_every: int = 25
    stop_on_nonfinite: bool = True


def _positive(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return value


def steps(
    n: int, optimizer: Optimizer, log_every: int = 25, batch_size: int | None = None,
    seed: int = 0, *, stop_on_nonfinite: bool = True,
) -> FitConfig:
    """A `FitConfig` of `n` steps with `optimizer` (see FitConfig)."""
    _positive("steps", "n", n)
    if batch_size is not None:
        _positive("steps", "batch_size", batch_size)
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 0:
        raise ValueError(f"steps: log_every must be an int >= 0, got {log_every!r}")
    return FitConfig(n, optimizer, log_every, batch_size, seed, stop_on_nonfinite)


def epochs(
    n: int, optimizer: Optimizer, log_every: int = 25, *, stop_on_nonfinite: bool = True
) -> LoaderFitConfig:
    """A `LoaderFitConfig` of `n` epochs with `optimizer` (see LoaderFitConfig)."""
    _positive("epochs", "n", n)
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 0:
        raise ValueError(f"epochs: log_every must be an int >= 0, got {log_every!r}")
    return LoaderFitConfig(n, optimizer, log_every, stop_on_nonfinite)


# -- hooks and reports -------------------------------------------------------------------
@dataclass
class Hooks:
    """Callbacks of a fit. `on_step(step, loss)` and `on_epoch(epoch, mean_loss)` may
    return True to stop the fit early; `patience` stops it when the epoch loss has not
    improved for that many epochs (loader fits)."""

    on_step: Callable[[int, float], bool | None] | None = None
    on_epoch: Callable[[int, float], bool | None] | None = None
    patience: int | None = None


@dataclass
class FitReport:
    """What a fit did: losses before and after, the curve, metrics and speed.

    Over `interval`, losses are midpoints of enclosures: `loss_before_bounds` and
    `loss_after_bounds` hold (lo, hi, width): the enclosure as floats rounded outward and
    a bound on its width at the interval's precision; `loss_widths` bounds the width of
    each training step's loss enclosure. Both are empty over other fields.
    """

    loss_before: float
    loss_after: float
    losses: list[float] = field(default_factory=list, repr=False)
    epoch_losses: list[float] = field(default_factory=list, repr=False)
    metrics: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    wall_time: float = 0.0
    stopped_early: bool = False
    loss_before_bounds: tuple[float, float, float] | None = field(default=None, repr=False)
    loss_after_bounds: tuple[float, float, float] | None = field(default=None, repr=False)
    loss_widths: list[float] = field(default_factory=list, repr=False)

    @property
    def steps_per_second(self) -> float:
        """Training steps per second of wall time."""
        return self.steps / self.wall_time if self.wall_time > 0 else math.inf

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "loss_before": self.loss_before, "loss_after": self.loss_after,
            "losses": self.losses, "epoch_losses": self.epoch_losses, "metrics": self.metrics,
            "steps": self.steps, "wall_time": self.wall_time,
            "stopped_early": self.stopped_early,
            "loss_before_bounds": self.loss_before_bounds,
            "loss_after_bounds": self.loss_after_bounds, "loss_widths": self.loss_widths,
        }

    def write(self, path: str) -> None:
        """Write the report as JSON to `path` (atomically: a temporary file, then rename)."""
        target = os.path.abspath(path)
        folder = os.path.dirname(target)
        if os.path.isdir(target) or not os.path.isdir(folder):
            what = "is a folder" if os.path.isdir(target) else "its folder does not exist"
            raise FileNotFoundError(f"FitReport.write: cannot write {path!r}: {what}")
        write_atomically(target, lambda f: json.dump(self.to_json(), f, indent=1))

    def summary(self) -> str:
        """One line per fact, for printing. Losses get 10 significant digits, enough to
        tell a float32 run from a float one; over `interval` each loss also shows its
        enclosure and width."""
        lines = [
            f"loss before: {self.loss_before:.10g}{_bounds_text(self.loss_before_bounds)}",
            f"loss after:  {self.loss_after:.10g}{_bounds_text(self.loss_after_bounds)}",
            f"steps: {self.steps} in {self.wall_time:.2f} s ({self.steps_per_second:.1f}/s)"
            + (" (stopped early)" if self.stopped_early else ""),
        ]
        if self.loss_widths:
            lines.append(f"loss enclosure width: {self.loss_widths[0]:.2g} at step 1, "
                         f"{self.loss_widths[-1]:.2g} at step {len(self.loss_widths)}")
        for k, v in self.metrics.items():
            if k == "loss":
                continue  # the loss after, above
            lines.append(f"{k}: {100 * v:.2f}%" if "accuracy" in k else f"{k}: {v:.10g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, path: str) -> None:
        """Save the loss curve as an image (needs matplotlib: pip install 'torchlean[plot]')."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "report.plot needs matplotlib: pip install 'torchlean[plot]'"
            ) from None
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(range(1, len(self.losses) + 1), self.losses)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log" if min(self.losses, default=1) > 0 else "linear")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def _bounds_text(bounds: tuple[float, float, float] | None) -> str:
    if bounds is None:
        return ""
    lo, hi, width = bounds
    return f"  (enclosed in [{lo:.17g}, {hi:.17g}], width {width:.2g})"


class _Progress:
    """A tqdm progress bar (rate, time left, loss) on a terminal; nothing otherwise."""

    def __init__(self, total: int) -> None:
        # disable=None: tqdm turns itself off when stderr is not a terminal.
        self.bar = tqdm(total=total, unit="step", disable=None, dynamic_ncols=True)

    def update(self, loss: float) -> None:
        if not self.bar.disable:
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def evaluate(
    task: Task, runner: Runner, batches: Iterable[tuple[Tensor, Tensor]]
) -> dict[str, float]:
    """Mean loss (and accuracy for classification) over batches, in eval mode. Over
    `interval` the loss is the midpoint of its enclosure and accuracy counts only the
    predictions the enclosures decide."""
    return _evaluate(task, runner, batches)[0]


def _evaluate(
    task: Task, runner: Runner, batches: Iterable[tuple[Tensor, Tensor]]
) -> tuple[dict[str, float], tuple[float, float, float]]:
    """`evaluate`'s metrics and an enclosure of the mean loss with a bound on its width
    (summed exactly, rounded outward)."""
    mode = runner.mode
    runner.eval()
    total, count, correct, predictions = 0.0, 0, 0.0, 0
    lo_sum, hi_sum, width_sum = Fraction(0), Fraction(0), Fraction(0)
    exact_sums = True
    for x, y in batches:
        pred = runner.predict(x)
        n = pred.shape[0] if pred.ndim else 1
        lo, hi, width, value = _read(runner.task_loss(pred, runner.as_input(y)))
        total += value * n
        if math.isfinite(lo) and math.isfinite(hi) and math.isfinite(width):
            lo_sum, hi_sum = lo_sum + Fraction(lo) * n, hi_sum + Fraction(hi) * n
            width_sum += Fraction(width) * n
        else:
            exact_sums = False
        count += n
        if task.kind != "regression":
            hits = Task(runner.model, task.kind).correct(pred, runner.as_input(y))
            correct += enclosure(hits)[0]
            predictions += pred.size // pred.shape[-1]  # one per position, e.g. per token
    runner.mode = mode
    if count == 0:
        raise ValueError("evaluate: no samples")
    out = {"loss": total / count}
    if task.kind != "regression":
        out["accuracy"] = correct / predictions
    bounds = (
        (_down(lo_sum / count), _up(hi_sum / count), _up(width_sum / count)) if exact_sums
        else (-math.inf, math.inf, math.inf)
    )
    if _is_interval(runner):  # the midpoint of the mean's enclosure, so it lies inside it
        out["loss"] = _midpoint(bounds[:2]) if exact_sums else math.nan
    return out, bounds


def _log(cfg_log_every: int, k: int, loss: float) -> None:
    if cfg_log_every and (k % cfg_log_every == 0):
        logger.info("step %d: loss=%.10g", k, loss)


def _record(report: FitReport, runner: Runner, loss: _Reading) -> float:
    """Append a step's loss (and its enclosure's width over `interval`) to the report."""
    report.losses.append(loss.value)
    if _is_interval(runner):
        report.loss_widths.append(loss.width)
    return loss.value


def _finish(report: FitReport, task: Task, runner: Runner,
            batches: Iterable[tuple[Tensor, Tensor]]) -> None:
    report.metrics, bounds = _evaluate(task, runner, batches)
    report.loss_after = report.metrics["loss"]
    if _is_interval(runner):
        report.loss_after_bounds = bounds


def _started(task: Task, runner: Runner, batches: list[tuple[Tensor, Tensor]]) -> FitReport:
    """A report holding the loss before the fit."""
    metrics, bounds = _evaluate(task, runner, batches)
    report = FitReport(metrics["loss"], metrics["loss"])
    if _is_interval(runner):
        report.loss_before_bounds = report.loss_after_bounds = bounds
    return report


def fit_dataset(
    task: Task, runner: Runner, cfg: FitConfig, dataset: Dataset, hooks: Hooks | None = None
) -> FitReport:
    """Fit `runner` on `dataset` for `cfg.steps` steps (batches cycle through a seeded
    permutation; the whole dataset per step when cfg.batch_size is None)."""
    n = len(dataset)
    if n == 0:
        raise ValueError("fit_dataset: the dataset is empty")
    size = n if cfg.batch_size is None else min(cfg.batch_size, n)
    whole = [dataset.batch(range(n))]
    loop = stepper(task, runner, cfg.optimizer, stop_on_nonfinite=cfg.stop_on_nonfinite)
    report = _started(task, runner, whole)
    order = np.random.default_rng(cfg.seed).permutation(n) if size < n else np.arange(n)
    bar, start, hooks = _Progress(cfg.steps), time.perf_counter(), hooks or Hooks()
    first = runner.step  # a resumed fit continues the batch order where it stopped
    for k in range(cfg.steps):
        lo = ((first + k) * size) % n
        idx = [int(i) for i in np.take(order, range(lo, lo + size), mode="wrap")]
        loss = _record(report, runner, _step_reading(loop, dataset.batch(idx)))
        report.steps = k + 1
        _log(cfg.log_every, k, loss)
        bar.update(loss)
        if hooks.on_step is not None and hooks.on_step(k, loss):
            report.stopped_early = True
            break
    bar.close()
    report.wall_time = time.perf_counter() - start
    _finish(report, task, runner, whole)
    runner.train()
    return report


def fit_loader(
    task: Task, runner: Runner, cfg: LoaderFitConfig, loader: Loader, hooks: Hooks | None = None,
    eval_batches: Iterable[tuple[Tensor, Tensor]] | None = None,
) -> FitReport:
    """Fit `runner` for `cfg.epochs` passes over `loader` (epoch e uses `loader.epoch(e)`);
    losses before and after are over `eval_batches` (default: epoch 0's batches)."""
    if len(loader) == 0:
        raise ValueError("fit_loader: the loader yields no batches")
    held = list(eval_batches) if eval_batches is not None else list(loader.epoch(0))
    loop = stepper(task, runner, cfg.optimizer, stop_on_nonfinite=cfg.stop_on_nonfinite)
    report = _started(task, runner, held)
    hooks = hooks or Hooks()
    bar, start = _Progress(cfg.epochs * len(loader)), time.perf_counter()
    best, stale, k = math.inf, 0, 0
    for e in range(cfg.epochs):
        epoch_losses = []
        for batch in loader.epoch(e):
            loss = _record(report, runner, _step_reading(loop, batch))
            epoch_losses.append(loss)
            _log(cfg.log_every, k, loss)
            k += 1
            bar.update(loss)
            if hooks.on_step is not None and hooks.on_step(k - 1, loss):
                report.stopped_early = True
                break
        mean = float(np.mean(epoch_losses))
        report.epoch_losses.append(mean)
        if report.stopped_early:
            break
        if hooks.on_epoch is not None and hooks.on_epoch(e, mean):
            report.stopped_early = True
            break
        stale = 0 if mean < best else stale + 1
        best = min(best, mean)
        if hooks.patience is not None and stale >= hooks.patience:
            report.stopped_early = True
            break
    bar.close()
    report.steps = k
    report.wall_time = time.perf_counter() - start
    _finish(report, task, runner, held)
    runner.train()
    return report
