"""`torchlean verify`: certify robustness, or check VNN-LIB properties of ONNX models.

    torchlean verify robustness --model M.json|M.onnx --inputs X.npy|X.csv [--labels Y.npy]
        --eps 1/100,1/10 [--method ibp|crown] [--out DIR] [--results R.csv [--resume]]
        [--batch K] [--workers N | --scheduler ADDRESS]
    torchlean verify robustness --demo bands --eps 1/100,1/10
    torchlean verify vnnlib MODEL.onnx PROP.vnnlib [--timeout SECONDS] [--result FILE]
    torchlean verify vnncomp INSTANCES.csv [--root DIR] [--out RESULTS.csv] [--resume]
        [--workers N | --scheduler ADDRESS]

`robustness` certifies L-inf robustness of a classifier and prints a table.

`--model` is a model file written by `torchlean.verify.bounds.model_file.export_model` (the
eval-mode graph JSON with the parameters as exact literals) or an ONNX file; `--inputs` a
`.npy` array of shape (N, *input shape) with `--labels` a `.npy` array of N integer class
labels, or a numeric `.csv` whose last column is the label (then no `--labels`; each row's
other cells are the input, row-major). `--demo bands` instead trains a 16-8-2 ReLU MLP for
60 steps on the six band images. `--out DIR` also writes one certificate per input and eps,
each re-checked exactly (DIR is created if missing, and checked before any work
starts). `--results` writes one CSV row per input and eps as they finish
(`--resume` continues such a file). `--batch K` makes K inputs one work unit.
A bad file prints the reason (file and place) and exits with status 2.

`vnnlib` checks one property: the last line of standard output is exactly one of `holds`,
`violated`, `unknown`, `timeout`, and the exit status is 0 for any verdict; `--result`
also writes VNN-COMP's result file (unsat / sat + counterexample / unknown / timeout). A bad
model or property prints the reason on standard error and exits with status 2.
`vnncomp` runs every row `onnx,vnnlib,timeout` of an instances CSV (paths relative to
`--root`, default the CSV's folder), writes RESULTS.csv (`onnx,vnnlib,verdict,seconds`, whole
after every row; in input order at the end) and prints a summary. A row whose files are bad,
or whose run fails, counts as `unknown`, with the reason on standard error and in
RESULTS.csv.errors.csv. `--resume` skips the rows already in RESULTS.csv and refuses a file
from another instance list, naming its first row that is not in this one.

`--workers N` runs the work in N local processes (1, the default, runs in this one);
`--scheduler ADDRESS` sends it to an existing Dask cluster (docs/scale.md). An unreachable
scheduler, or a cluster whose versions differ from this client's, exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from tqdm import tqdm

from .runtime import data
from .runtime.graph import Graph
from .runtime.optim import adam
from .runtime.runner import runner as make_runner
from .runtime.tasks import classification
from .runtime.train import fit_dataset, steps
from .spec import nn
from .spec.errors import DataFormatError, ShapeError, UnsupportedOperation
from .spec.tensor import tensor
from .verify.scale import DatasetRow, certify_dataset, load_model, run_vnncomp
from .verify.vnn.engine import STATUSES, verify_instance
from .verify.vnn.results import Instance, ResultRow, read_instances, write_result_file
from .verify.workers import ClusterError

__all__ = ["main", "demo_bands"]


def demo_bands() -> tuple[nn.Built[Any, Any], Any, Any]:
    """The `--demo` model (a small MLP trained on the bands data set), its images and labels."""
    model = nn.flatten() >> nn.linear(16, 8) >> nn.relu() >> nn.linear(8, 2)
    task = classification(nn.build(model, seed=0))
    run = make_runner(task)
    ds = data.samples.bands()
    fit_dataset(task, run, steps(60, adam(0.05), log_every=0), ds)
    params = {k: tensor(v.numpy().astype(np.float64)) for k, v in run.params.items()}
    images, labels = ds.batch(range(len(ds)))
    return (nn.build(model, seed=0).with_state(params=params),
            images.numpy().astype(np.float64), labels.numpy())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchlean verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("robustness", help="certify robustness in an L-inf ball")
    r.add_argument("--demo", choices=["bands"], help="the built-in demo model and inputs")
    r.add_argument("--model", help="a model file (verify.model_file.export_model) or ONNX")
    r.add_argument("--inputs", help="a .npy file of inputs, shape (N, *input shape), or a "
                   ".csv whose last column is the label")
    r.add_argument("--labels", help="a .npy file of N integer labels")
    r.add_argument("--eps", required=True, help="radii, comma separated: 0.01 or 1/100")
    r.add_argument("--method", choices=["ibp", "crown"], default="crown")
    r.add_argument("--out", help="directory for the certificates (each re-checked)")
    r.add_argument("--results", metavar="CSV", help="a CSV of one row per input and eps")
    r.add_argument("--batch", type=_count("--batch"), default=1, metavar="K",
                   help="inputs per work unit (default 1)")
    _scale_flags(r, "--results")
    v = sub.add_parser("vnnlib", help="check one VNN-LIB property of an ONNX model")
    v.add_argument("model", metavar="MODEL.onnx")
    v.add_argument("property", metavar="PROP.vnnlib")
    v.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="wall-clock limit")
    v.add_argument("--result", metavar="FILE", help="also write VNN-COMP's result file")
    c = sub.add_parser("vnncomp", help="run the instances of a VNN-COMP benchmark CSV")
    c.add_argument("instances", metavar="INSTANCES.csv")
    c.add_argument("--root", metavar="DIR", help="where the CSV's paths start (its folder)")
    c.add_argument("--out", metavar="RESULTS.csv", default="RESULTS.csv")
    _scale_flags(c, "--out")
    return p


def _scale_flags(p: argparse.ArgumentParser, results: str) -> None:
    p.add_argument("--resume", action="store_true",
                   help=f"skip the work already in {results}'s file (same list only)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_count("--workers"), default=1, metavar="N",
                       help="local worker processes (default 1: in this process)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a Dask scheduler to run on, e.g. tcp://10.0.0.5:8786")


def _count(flag: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be a positive whole number, got "
                                             f"{text!r}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


_BAD_INPUT = (DataFormatError, UnsupportedOperation, ShapeError, OSError)


def _vnnlib(args: argparse.Namespace) -> int:
    try:
        v = verify_instance(args.model, args.property, args.timeout)
        if args.result:
            write_result_file(args.result, v)
    except _BAD_INPUT as e:
        print(f"torchlean verify vnnlib: {e}", file=sys.stderr)
        return 2
    if v.counterexample is not None:
        x, y = v.counterexample
        print(f"counterexample: X = [{', '.join(f'{float(q):.9g}' for q in x)}], "
              f"Y = [{', '.join(f'{float(q):.9g}' for q in y)}] (exact values in --result)")
    print(f"{v.detail} ({v.seconds:.2f} s)" if v.detail else f"({v.seconds:.2f} s)")
    print(v.status)
    return 0


class _Progress:
    """tqdm's bar when tqdm is installed, else one line per instance (standard error)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        try:
            tqdm = importlib.import_module("tqdm")
            self.bar: Any = tqdm.tqdm(total=total, file=sys.stderr, unit="instance")
        except ImportError:
            self.bar = None

    def update(self, row: ResultRow) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{row.verdict} {row.seconds:.1f}s", refresh=False)
            self.bar.update(1)
        else:
            print(f"[{self.done}/{self.total}] {row.onnx} {row.vnnlib}: {row.verdict} "
                  f"({row.seconds:.2f} s)", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _vnncomp(args: argparse.Namespace) -> int:
    progress: _Progress | None = None

    def on_row(inst: Instance, row: ResultRow, cause: str) -> None:
        nonlocal progress
        if cause:
            print(f"torchlean verify vnncomp: {args.instances}:{inst.line}: {cause}",
                  file=sys.stderr)
        if progress is None:
            progress = _Progress(total)
        progress.update(row)

    start = time.monotonic()
    try:
        total = len(read_instances(args.instances, args.root))
        run = run_vnncomp(args.instances, args.root, args.out, workers=args.workers,
                          scheduler=args.scheduler, resume=args.resume, on_row=on_row)
    except (*_BAD_INPUT, ClusterError) as e:
        print(f"torchlean verify vnncomp: {e}", file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            progress.close()
    count = {s: sum(r.verdict == s for r in run.rows) for s in STATUSES}
    solved = count["holds"] + count["violated"]
    print(f"{'solved':<10} {solved:>6} / {len(run.rows)}")
    for label, status in (("holds", "holds"), ("violated", "violated"),
                          ("unknown", "unknown"), ("timeouts", "timeout")):
        print(f"{label:<10} {count[status]:>6}")
    if run.errors:
        print(f"{'(errors)':<10} {len(run.errors):>6}   counted as unknown; reasons on "
              "standard error and in the .errors.csv file")
    if run.resumed:
        print(f"{'(resumed)':<10} {run.resumed:>6}   rows taken from {args.out}")
    print(f"{'time':<10} {time.monotonic() - start:>9.2f} s")
    print(f"results in {args.out}")
    return 0


def _load(model: str, inputs: str, labels: str | None) -> tuple[Graph, dict[str, Any], Any, Any]:
    """The model (graph, params), inputs (N, *shape) and labels (N,) from files, checked."""
    g, params = load_model(model)
    shape = g.inputs[0].shape[1:]
    if inputs.endswith(".csv") and labels is None:
        table = data.load_csv(inputs, -1)
        flat, ys = table.inputs.numpy().astype(np.float64), table.targets.numpy()
        if flat.shape[1] != int(np.prod(shape)):
            raise DataFormatError(f"{inputs}: columns", f"expected {int(np.prod(shape))} input "
                                  f"columns and the label for the model's input {shape}, got "
                                  f"{flat.shape[1]} and the label")
        xs = flat.reshape((flat.shape[0], *shape))
        if not np.array_equal(ys, np.round(ys)):
            raise DataFormatError(f"{inputs}: last column", "labels must be whole numbers")
        ys = ys.astype(np.int64)
    elif labels is None:
        raise DataFormatError(inputs, "--labels is needed unless --inputs is a .csv whose "
                              "last column is the label")
    else:
        xs = data.load_npy(inputs, "float").numpy().astype(np.float64)
        ys = data.read_npy(labels)
    if xs.ndim != len(shape) + 1 or tuple(xs.shape[1:]) != shape:
        raise DataFormatError(f"{inputs}: shape", f"expected (N, {', '.join(map(str, shape))})"
                              f" for the model's input, got {tuple(xs.shape)}")
    where = labels or inputs
    classes = int(np.prod(g.nodes[g.outputs[0][1]].shape[1:]))
    if ys.dtype.kind not in "iu" or ys.shape != (xs.shape[0],):
        raise DataFormatError(f"{where}: header", f"expected {xs.shape[0]} integer labels, "
                              f"got shape {ys.shape} of {ys.dtype}")
    bad = np.flatnonzero((ys < 0) | (ys >= classes))
    if bad.size:
        raise DataFormatError(f"{where}: item {int(bad[0])}", f"label {int(ys[bad[0]])} is "
                              f"not a class of the model's {classes} outputs")
    return g, params, xs, ys


def _output_folder_problem(folder: str) -> str | None:
    """Why certificates cannot be written into `folder` (created if missing), or None."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        return f"cannot create the folder ({e.strerror})"
    if not os.access(folder, os.W_OK):
        return "the folder is not writable"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 on success, 2 on bad usage or files)."""
    args = _parser().parse_args(argv)
    if args.command == "vnnlib":
        return _vnnlib(args)
    if args.command == "vnncomp":
        return _vnncomp(args)
    return _robustness(args)


def _robustness(args: argparse.Namespace) -> int:
    files = (args.model, args.inputs)
    if args.demo and (any(files) or args.labels) or not args.demo and not all(files):
        print("torchlean verify: give either --demo bands, or all of --model, --inputs and "
              "--labels")
        return 2
    try:
        radii = list(dict.fromkeys(Fraction(e.strip()) for e in args.eps.split(",")))
    except ValueError:
        print(f"torchlean verify: --eps must be numbers like 0.01 or 1/100, got {args.eps!r}")
        return 2
    if any(e < 0 for e in radii):
        print(f"torchlean verify: --eps must be >= 0, got {args.eps!r}")
        return 2
    if args.out:
        problem = _output_folder_problem(args.out)
        if problem:
            print(f"torchlean verify: --out {args.out}: {problem}")
            return 2
    model: Any
    params: dict[str, Any]
    if args.demo:
        net, images, labels = demo_bands()
        model, params = net, dict(net.params)
    else:
        try:
            model, params, images, labels = _load(args.model, args.inputs, args.labels)
        except (DataFormatError, UnsupportedOperation, OSError) as e:
            print(f"torchlean verify: {e}")
            return 2
    # On a terminal, a bar while the inputs are certified (rate, time left).
    bar = tqdm(total=len(radii) * len(labels), unit="input", disable=None, leave=False)
    try:
        run = certify_dataset(model, images, labels, radii, params=params, method=args.method,
                              batch=args.batch, workers=args.workers, scheduler=args.scheduler,
                              out=args.results, certificates=args.out, resume=args.resume,
                              on_row=lambda _row: bar.update(1))
    except (*_BAD_INPUT, ClusterError) as e:
        print(f"torchlean verify: {e}")
        return 2
    finally:
        bar.close()
    failed = [r for r in run.rows if r.error]
    for r in failed:
        print(f"torchlean verify: input {r.index} at eps={r.eps}: {r.error}")
    if failed and len(failed) == len(run.rows):
        return 2  # nothing could be certified: the model or the files are at fault
    print(f"{'input':>5} {'label':>5} {'eps':>8} {'certified':>9} {'margin lower bound':>20}")
    for eps in radii:
        for r in (r for r in run.rows if r.eps == eps):
            print(_table_row(r, args.out is not None))
        ok, errors, total = run.summary()[eps]
        print(f"certified accuracy at eps={eps}: {ok}/{total}"
              + (f" ({errors} failed, reasons above)" if errors else ""))
    if run.resumed:
        print(f"({run.resumed} rows taken from {args.results})")
    return 0


def _table_row(r: DatasetRow, checked: bool) -> str:
    """One line of the table; a certificate the exact checker refused shows REJECTED."""
    if r.error:
        status, margin = "error", "nan"
    else:
        status = "yes" if r.certified else "no"
        margin = f"{float(Fraction(r.margin_lower)):.6g}"
        if checked and not r.certified and Fraction(r.margin_lower) > 0:
            status = "REJECTED"
    return f"{r.index:>5} {r.label:>5} {str(r.eps):>8} {status:>9} {margin:>20}"
