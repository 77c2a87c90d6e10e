"""`tl.train`: tasks, the runner, training loops and the common command-line flags.

Re-exports from `torchlean.runtime`; see the guide (docs/guide/training-from-scratch.md).
"""

from __future__ import annotations

from .runtime.flags import (
    Flags,
    RunConfig,
    UsageError,
    check_output_path,
    flag_parser,
    parse_flags,
    run,
)
from .runtime.nonfinite import NonFiniteError
from .runtime.runner import Runner, runner
from .runtime.runner_state import RunnerState
from .runtime.tasks import Task, classification, classification_one_hot, regression
from .runtime.train import (
    FitConfig,
    FitReport,
    Hooks,
    LoaderFitConfig,
    Stepper,
    enclosure,
    epochs,
    evaluate,
    fit_dataset,
    fit_loader,
    step,
    stepper,
    steps,
    to_float,
    to_floats,
)

__all__ = [
    "Task", "regression", "classification", "classification_one_hot", "Runner", "runner",
    "Stepper", "stepper", "step", "FitConfig", "LoaderFitConfig", "steps", "epochs", "Hooks",
    "FitReport", "fit_dataset", "fit_loader", "evaluate", "RunConfig", "UsageError",
    "flag_parser", "parse_flags", "run", "Flags", "check_output_path", "enclosure", "to_float",
    "to_floats", "RunnerState", "NonFiniteError",
]
