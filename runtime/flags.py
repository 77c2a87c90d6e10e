"""`train.run`: the command-line flags every example shares, and the runner they build.

    --dtype float|float32|ieee32exec|exact|interval   --backend eager|compiled
    --cpu | --cuda   --steps N   --epochs N   --seed N   --lr X   --batch-size N   --log PATH

`parse_flags` turns argv into a `RunConfig` plus the arguments it did not recognise;
`run` builds the runner and calls back. Bad flags or values raise `UsageError` naming
them (`run` prints it with the usage and exits with status 2, as command-line tools do).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

from ..spec.errors import TorchLeanError
from ..spec.fields import FIELD_NAMES
from ..spec.nn import build
from .runner import Backend, Device, Runner
from .tasks import Task

__all__ = ["RunConfig", "UsageError", "parse_flags", "run", "flag_parser"]

R = TypeVar("R")


class UsageError(TorchLeanError, ValueError):
    """A command-line flag or value that the program does not accept."""


@dataclass(frozen=True)
class RunConfig:
    """The common flags' values (None where a flag was not given)."""

    dtype: str = "float32"
    backend: Backend = "eager"
    device: Device = "cpu"
    steps: int | None = None
    epochs: int | None = None
    seed: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    log: str | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def flag_parser(prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """The parser of the common flags (add your own arguments to it)."""
    p = _Parser(prog=prog, description=description)
    p.add_argument(
        "--dtype", choices=FIELD_NAMES, default="float32", help="scalar field (default: float32)"
    )
    p.add_argument(
        "--backend",
        choices=("eager", "compiled"),
        default="eager",
        help="eager tape or compiled graph (default: eager)",
    )
    dev = p.add_mutually_exclusive_group()
    dev.add_argument(
        "--cpu", dest="device", action="store_const", const="cpu", help="run on the CPU (default)"
    )
    dev.add_argument(
        "--cuda",
        dest="device",
        action="store_const",
        const="cuda",
        help="run on a CUDA GPU through CuPy",
    )
    p.add_argument("--steps", type=_positive, help="training steps")
    p.add_argument("--epochs", type=_positive, help="training epochs (loader fits)")
    p.add_argument("--seed", type=_seed, help="initialisation and shuffling seed")
    p.add_argument("--lr", type=_rate, help="learning rate")
    p.add_argument("--batch-size", type=_positive, help="minibatch size")
    p.add_argument("--log", metavar="PATH", help="write the fit report (JSON) to PATH")
    return p


def parse_flags(
    argv: Sequence[str], parser: argparse.ArgumentParser | None = None
) -> tuple[RunConfig, list[str]]:
    """The common flags of `argv` and the arguments left over, in order."""
    p = parser or flag_parser()
    ns, rest = p.parse_known_args(list(argv))
    for arg in rest:
        if arg.startswith("--") and arg.split("=")[0] in {
            a for act in p._actions for a in act.option_strings
        }:
            raise UsageError(f"argument {arg}: missing or bad value")
    cfg = RunConfig(
        dtype=ns.dtype,
        backend=ns.backend,
        device=ns.device or "cpu",
        steps=ns.steps,
        epochs=ns.epochs,
        seed=ns.seed,
        lr=ns.lr,
        batch_size=ns.batch_size,
        log=ns.log,
    )
    return cfg, rest


def run(
    task: Task | Callable[[int], Task],
    argv: Sequence[str] | None,
    callback: Callable[[Runner, RunConfig, list[str]], R],
    *,
    allow_extra: bool = False,
    description: str | None = None,
) -> R:
    """Parse the common flags of `argv` (default: sys.argv[1:]), build the task (a task,
    or a function of the seed) and its runner, and call `callback(runner, cfg, rest)`.

    Unrecognised arguments are an error unless `allow_extra`; then they are `rest`.
    `--help` prints the flags and exits.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    parser = flag_parser(description=description)
    try:
        cfg, rest = parse_flags(args, parser)
        if rest and not allow_extra:
            raise UsageError(f"unrecognized arguments: {' '.join(rest)}")
        seed = 0 if cfg.seed is None else cfg.seed
        made = task(seed) if callable(task) and not isinstance(task, Task) else task
        if not isinstance(made, Task):
            raise TypeError(f"run: expected a Task or a function of the seed, got {made!r}")
        if cfg.seed is not None and made.model.seed != cfg.seed:
            made = Task(build(cast(Any, made.model.model), seed=cfg.seed), made.kind)
        runner = Runner(made, cfg.dtype, cfg.backend, cfg.device)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except RuntimeError as e:  # e.g. --cuda without a GPU
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return callback(runner, cfg, rest)
