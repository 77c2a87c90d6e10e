"""`train.run`: the command-line flags the examples share, and the runner they build.

Always taken:  --dtype float|float32|ieee32exec|exact|interval   --backend eager|compiled
               --cpu | --cuda   --seed N
Taken where the program declares them (`Flags`), each with its default:
               --steps N   --epochs N   --lr X   --batch-size N   --log PATH

A flag the program does not declare is rejected by name, never ignored. `parse_flags`
turns argv into a `RunConfig` plus the arguments it did not recognise; `run` builds the
runner and calls back. Bad flags or values raise `UsageError` naming them (`run` prints it
with the usage and exits with status 2, as command-line tools do). Paths are checked
before any work starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, cast

from ..spec.errors import TorchLeanError
from ..spec.fields import FIELD_NAMES
from ..spec.nn import build
from .runner import Backend, Device, Runner
from .tasks import Task

__all__ = [
    "Flags", "RunConfig", "UsageError", "parse_flags", "run", "flag_parser", "check_output_path",
]

R = TypeVar("R")

# The optional flags: name -> (flag, help).
_OPTIONAL = {
    "steps": ("--steps", "training steps"),
    "epochs": ("--epochs", "passes over the training data"),
    "lr": ("--lr", "learning rate"),
    "batch_size": ("--batch-size", "minibatch size"),
}


class UsageError(TorchLeanError, ValueError):
    """A command-line flag or value that the program does not accept."""


@dataclass(frozen=True)
class Flags:
    """The optional flags a program takes, each with its default (None: not taken).

    `log` offers `--log PATH` (write the fit report as JSON). `by_dtype` maps a field
    name to other defaults under that `--dtype` and the reason (`run` prints both when
    they apply, and `--help` shows them), e.g. fewer steps for `exact`, whose rationals
    grow every step.
    """

    steps: int | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    log: bool = False
    by_dtype: Mapping[str, tuple[Flags, str]] = field(default_factory=dict)

    def taken(self) -> dict[str, int | float]:
        """The optional flags taken, with their defaults."""
        return {n: v for n in _OPTIONAL if (v := getattr(self, n)) is not None}


@dataclass(frozen=True)
class RunConfig:
    """The flags' values: the ones given on the command line, and the program's defaults
    for the rest. `given` names the flags typed; `notes` says which defaults `--dtype`
    changed and why."""

    dtype: str = "float32"
    backend: Backend = "eager"
    device: Device = "cpu"
    seed: int = 0
    log: str | None = None
    values: Mapping[str, int | float] = field(default_factory=dict)
    given: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()

    def _value(self, name: str) -> int | float:
        if name not in self.values:
            raise AttributeError(
                f"RunConfig.{name}: this program takes no {_OPTIONAL[name][0]} flag "
                f"(declare it with train.Flags({name}=DEFAULT))"
            )
        return self.values[name]

    @property
    def steps(self) -> int:
        """--steps (the program must take it)."""
        return int(self._value("steps"))

    @property
    def epochs(self) -> int:
        """--epochs (the program must take it)."""
        return int(self._value("epochs"))

    @property
    def lr(self) -> float:
        """--lr (the program must take it)."""
        return float(self._value("lr"))

    @property
    def batch_size(self) -> int:
        """--batch-size (the program must take it)."""
        return int(self._value("batch_size"))


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


def check_output_path(path: str, flag: str = "--log") -> str:
    """`path` if a file can be written there (its folder exists and is writable, and it is
    not a folder); otherwise a `UsageError` naming `flag` and the path."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: the folder {os.path.dirname(path) or '.'!r} does "
                         "not exist (create it first)")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag} {path}: the folder {os.path.dirname(path) or '.'!r} is not "
                         "writable")
    return path


def flag_parser(
    prog: str | None = None, description: str | None = None, flags: Flags | None = None
) -> argparse.ArgumentParser:
    """The parser of the common flags and those `flags` declares (add your own to it)."""
    flags = flags or Flags()
    p = _Parser(prog=prog, description=description,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--dtype", choices=FIELD_NAMES, default="float32",
        help="scalar field (default: float32); exact is slow, interval widths grow: see "
             "docs/guide/execution-modes.md",
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
    p.add_argument("--seed", type=_seed, metavar="N",
                   help="initialisation and shuffling seed (default: 0)")
    for name, default in flags.taken().items():
        flag, text = _OPTIONAL[name]
        others = "".join(f"; {f.taken()[name]:g} with --dtype {dtype}"
                         for dtype, (f, _) in flags.by_dtype.items() if name in f.taken())
        p.add_argument(flag, dest=name, type=_rate if name == "lr" else _positive,
                       default=None, metavar="X" if name == "lr" else "N",
                       help=f"{text} (default: {default:g}{others})")
    if flags.by_dtype:
        p.epilog = "\n".join(textwrap.fill(f"--dtype {dtype}: {why}", 78, subsequent_indent="  ")
                             for dtype, (_, why) in flags.by_dtype.items())
    if flags.log:
        p.add_argument("--log", metavar="PATH", help="write the fit report (JSON) to PATH")
    return p


def parse_flags(
    argv: Sequence[str], parser: argparse.ArgumentParser | None = None, flags: Flags | None = None
) -> tuple[RunConfig, list[str]]:
    """The common flags of `argv` (and those `flags` declares, with their defaults) and the
    arguments left over, in order. Pass either `parser` (from `flag_parser`) or `flags`."""
    flags = flags or Flags()
    p = parser or flag_parser(flags=flags)
    ns, rest = p.parse_known_args(list(argv))
    known = {a for act in p._actions for a in act.option_strings}
    for arg in rest:
        if arg.startswith("--") and arg.split("=")[0] in known:
            raise UsageError(f"argument {arg}: missing or bad value")
    given = frozenset(
        n for n in (*_OPTIONAL, "log", "seed") if getattr(ns, n, None) is not None
    )
    values = flags.taken()
    notes: list[str] = []
    if ns.dtype in flags.by_dtype:
        other, why = flags.by_dtype[ns.dtype]
        changed = {n: v for n, v in other.taken().items()
                   if n in values and n not in given and v != values[n]}
        if changed:
            what = ", ".join(f"{_OPTIONAL[n][0]} {v:g} (not {values[n]:g})"
                             for n, v in changed.items())
            notes.append(f"--dtype {ns.dtype}: {what}. {why}".strip())
            values.update(changed)
    values.update({n: getattr(ns, n) for n in given if n in _OPTIONAL})
    log = getattr(ns, "log", None)
    if log is not None:
        check_output_path(log, "--log")
    cfg = RunConfig(
        dtype=ns.dtype, backend=ns.backend, device=ns.device or "cpu", seed=ns.seed or 0, log=log,
        values=values, given=given, notes=tuple(notes),
    )
    return cfg, rest


def run(
    task: Task | Callable[[int], Task],
    argv: Sequence[str] | None,
    callback: Callable[[Runner, RunConfig, list[str]], R],
    *,
    flags: Flags | None = None,
    allow_extra: bool = False,
    description: str | None = None,
    prog: str | None = None,
) -> R:
    """Parse the flags of `argv` (default: sys.argv[1:]): the common ones and those
    `flags` declares; build the task (a task, or a function of the seed) and its runner;
    print the notes on changed defaults to stderr; call `callback(runner, cfg, rest)`.

    Unrecognised arguments, undeclared flags included, are an error unless
    `allow_extra`; then they are `rest`. `--help` prints the flags and defaults and exits.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    parser = flag_parser(prog=prog, description=description, flags=flags)
    try:
        cfg, rest = parse_flags(args, parser, flags)
        if rest and not allow_extra:
            undeclared = [a for a in rest if a.split("=")[0] in _UNDECLARED]
            if undeclared:
                raise UsageError(f"{undeclared[0].split('=')[0]} is not taken by this program "
                                 f"(its flags: see --help)")
            raise UsageError(f"unrecognized arguments: {' '.join(rest)}")
        made = task(cfg.seed) if callable(task) and not isinstance(task, Task) else task
        if not isinstance(made, Task):
            raise TypeError(f"run: expected a Task or a function of the seed, got {made!r}")
        if "seed" in cfg.given and made.model.seed != cfg.seed:
            made = Task(build(cast(Any, made.model.model), seed=cfg.seed), made.kind)
        runner = Runner(made, cfg.dtype, cfg.backend, cfg.device)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except RuntimeError as e:  # e.g. --cuda without a GPU
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    for note in cfg.notes:
        sys.stderr.write(f"{parser.prog}: {note}\n")
    return callback(runner, cfg, rest)


_UNDECLARED = {flag for flag, _ in _OPTIONAL.values()} | {"--log"}
