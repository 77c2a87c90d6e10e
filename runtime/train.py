"""Training loops: the stepper for hand-written loops, and the fit helpers with reports.

    loop = train.stepper(task, runner, optim.adam(0.03))
    for step in range(steps):
        loss = train.step(loop, batch)

    report = train.fit_dataset(task, runner, train.steps(200, optimizer=optim.adam(0.03)), ds)

A fit evaluates the loss before and after (in eval mode, over the whole dataset),
records the loss curve, calls the hooks, and returns a `FitReport`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..spec.tensor import Tensor
from .atomic_write import write_atomically
from .optim import Optimizer
from .runner import Runner
from .runner_state import structure
from .tasks import Task

__all__ = [
    "Stepper", "stepper", "step", "FitConfig", "LoaderFitConfig", "steps", "epochs",
    "Hooks", "FitReport", "fit_dataset", "fit_loader", "Batch",
]

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
    x, y = sample
    # The step stays on the runner's device; reading the loss is its one host transfer.
    return _as_float(loop.runner.train_step(x, y, stop_on_nonfinite=loop.stop_on_nonfinite))


def _as_float(t: Tensor) -> float:
    v = t.item()
    if hasattr(v, "a") and hasattr(v, "b"):  # an interval: report its midpoint
        return float((v.a + v.b) / 2)
    return float(v)


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
    """What a fit did: losses before and after, the curve, metrics and speed."""

    loss_before: float
    loss_after: float
    losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    wall_time: float = 0.0
    stopped_early: bool = False

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
        }

    def write(self, path: str) -> None:
        """Write the report as JSON to `path` (atomically: a temporary file, then rename)."""
        write_atomically(path, lambda f: json.dump(self.to_json(), f, indent=1))

    def summary(self) -> str:
        """One line per fact, for printing."""
        lines = [
            f"loss before: {self.loss_before:.6g}",
            f"loss after:  {self.loss_after:.6g}",
            f"steps: {self.steps} in {self.wall_time:.2f} s ({self.steps_per_second:.1f}/s)",
        ]
        lines += [f"{k}: {v:.6g}" for k, v in self.metrics.items()]
        return "\n".join(lines)

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


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.on = sys.stderr.isatty() and total >= 50

    def update(self, done: int, loss: float) -> None:
        if self.on and (done % max(1, self.total // 100) == 0 or done == self.total):
            filled = 30 * done // self.total
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                             f"loss={loss:.4g}")
            if done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def evaluate(
    task: Task, runner: Runner, batches: Iterable[tuple[Tensor, Tensor]]
) -> dict[str, float]:
    """Mean loss (and accuracy for classification) over batches, in eval mode."""
    mode = runner.mode
    runner.eval()
    total, count, correct, predictions = 0.0, 0, 0.0, 0
    for x, y in batches:
        pred = runner.predict(x)
        n = pred.shape[0] if pred.ndim else 1
        total += _as_float(runner.task_loss(pred, runner.as_input(y))) * n
        count += n
        if task.kind != "regression":
            hits = Task(runner.model, task.kind).correct(pred, runner.as_input(y))
            correct += _as_float(hits)  # type: ignore[arg-type]
            predictions += pred.size // pred.shape[-1]  # one per position, e.g. per token
    runner.mode = mode
    if count == 0:
        raise ValueError("evaluate: no samples")
    out = {"loss": total / count}
    if task.kind != "regression":
        out["accuracy"] = correct / predictions
    return out


def _log(cfg_log_every: int, k: int, loss: float) -> None:
    if cfg_log_every and (k % cfg_log_every == 0):
        print(f"step {k}: loss={loss:.6g}")


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
    before = evaluate(task, runner, whole)["loss"]
    order = np.random.default_rng(cfg.seed).permutation(n) if size < n else np.arange(n)
    report = FitReport(before, before)
    bar, start, hooks = _Progress(cfg.steps), time.perf_counter(), hooks or Hooks()
    first = runner.step  # a resumed fit continues the batch order where it stopped
    for k in range(cfg.steps):
        lo = ((first + k) * size) % n
        idx = [int(i) for i in np.take(order, range(lo, lo + size), mode="wrap")]
        loss = step(loop, dataset.batch(idx))
        report.losses.append(loss)
        report.steps = k + 1
        _log(cfg.log_every, k, loss)
        bar.update(k + 1, loss)
        if hooks.on_step is not None and hooks.on_step(k, loss):
            report.stopped_early = True
            break
    report.wall_time = time.perf_counter() - start
    report.metrics = evaluate(task, runner, whole)
    report.loss_after = report.metrics["loss"]
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
    before = evaluate(task, runner, held)["loss"]
    report = FitReport(before, before)
    hooks = hooks or Hooks()
    bar, start = _Progress(cfg.epochs * len(loader)), time.perf_counter()
    best, stale, k = math.inf, 0, 0
    for e in range(cfg.epochs):
        epoch_losses = []
        for batch in loader.epoch(e):
            loss = step(loop, batch)
            report.losses.append(loss)
            epoch_losses.append(loss)
            _log(cfg.log_every, k, loss)
            k += 1
            bar.update(k, loss)
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
    report.steps = k
    report.wall_time = time.perf_counter() - start
    report.metrics = evaluate(task, runner, held)
    report.loss_after = report.metrics["loss"]
    runner.train()
    return report
