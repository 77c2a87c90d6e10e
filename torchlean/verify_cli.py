"""`torchlean verify`: certify robustness, or check VNN-LIB properties of ONNX models.

    torchlean verify robustness --model M.json --inputs X.npy --labels Y.npy
        --eps 1/100,1/10 [--method ibp|crown] [--out DIR]
    torchlean verify robustness --demo bands --eps 1/100,1/10
    torchlean verify vnnlib MODEL.onnx PROP.vnnlib [--timeout SECONDS] [--result FILE]
    torchlean verify vnncomp INSTANCES.csv [--root DIR] [--out RESULTS.csv]

`robustness` certifies L-inf robustness of a classifier and prints a table.

`--model` is a model file written by `torchlean.verify.bounds.model_file.export_model` (the
eval-mode graph JSON with the parameters as exact literals); `--inputs` a `.npy` array of
shape (N, *input shape) and `--labels` a `.npy` array of N integer class labels.
`--demo bands` instead trains a 16-8-2 ReLU MLP for 60 steps on the six band images.
`--out DIR` also writes one certificate per input and eps, each re-checked exactly (DIR is
created if missing, and checked before any work starts).
A bad file prints the reason (file and place) and exits with status 2.

`vnnlib` checks one property: the last line of standard output is exactly one of `holds`,
`violated`, `unknown`, `timeout`, and the exit status is 0 for any verdict; `--result`
also writes VNN-COMP's result file (unsat / sat + counterexample / unknown / timeout). A bad
model or property prints the reason on standard error and exits with status 2.
`vnncomp` runs every row `onnx,vnnlib,timeout` of an instances CSV (paths relative to
`--root`, default the CSV's folder), writes RESULTS.csv (`onnx,vnnlib,verdict,seconds`, whole
after every row) and prints a summary. A row whose files are bad counts as `unknown`, with
the reason on standard error.
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
from .verify.bounds.certificate import certify_robustness, check_certificate
from .verify.bounds.model_file import load_model
from .verify.vnn.engine import STATUSES, verify_instance
from .verify.vnn.results import ResultRow, ResultsCsv, read_instances, write_result_file

__all__ = ["main"]


def _demo_bands() -> tuple[nn.Built[Any, Any], Any, Any]:
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
    r.add_argument("--model", help="a model file (verify.model_file.export_model)")
    r.add_argument("--inputs", help="a .npy file of inputs, shape (N, *input shape)")
    r.add_argument("--labels", help="a .npy file of N integer labels")
    r.add_argument("--eps", required=True, help="radii, comma separated: 0.01 or 1/100")
    r.add_argument("--method", choices=["ibp", "crown"], default="crown")
    r.add_argument("--out", help="directory for the certificates (each re-checked)")
    v = sub.add_parser("vnnlib", help="check one VNN-LIB property of an ONNX model")
    v.add_argument("model", metavar="MODEL.onnx")
    v.add_argument("property", metavar="PROP.vnnlib")
    v.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="wall-clock limit")
    v.add_argument("--result", metavar="FILE", help="also write VNN-COMP's result file")
    c = sub.add_parser("vnncomp", help="run the instances of a VNN-COMP benchmark CSV")
    c.add_argument("instances", metavar="INSTANCES.csv")
    c.add_argument("--root", metavar="DIR", help="where the CSV's paths start (its folder)")
    c.add_argument("--out", metavar="RESULTS.csv", default="RESULTS.csv")
    return p


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
    try:
        instances = read_instances(args.instances, args.root)
        out = ResultsCsv.create(args.out)
    except _BAD_INPUT as e:
        print(f"torchlean verify vnncomp: {e}", file=sys.stderr)
        return 2
    progress = _Progress(len(instances))
    errors = 0
    start = time.monotonic()
    for inst in instances:
        t0 = time.monotonic()
        try:
            v = verify_instance(inst.onnx_path, inst.vnnlib_path, inst.timeout)
            row = ResultRow(inst.onnx, inst.vnnlib, v.status, v.seconds)
        except Exception as e:  # one instance's failure must not end the run: unknown
            errors += 1
            kind = "" if isinstance(e, _BAD_INPUT) else f"internal error {type(e).__name__}: "
            print(f"torchlean verify vnncomp: {args.instances}:{inst.line}: {kind}{e}",
                  file=sys.stderr)
            row = ResultRow(inst.onnx, inst.vnnlib, "unknown", time.monotonic() - t0)
        out.append(row)
        progress.update(row)
    progress.close()
    count = {s: sum(r.verdict == s for r in out.rows) for s in STATUSES}
    solved = count["holds"] + count["violated"]
    print(f"{'solved':<10} {solved:>6} / {len(instances)}")
    for label, status in (("holds", "holds"), ("violated", "violated"),
                          ("unknown", "unknown"), ("timeouts", "timeout")):
        print(f"{label:<10} {count[status]:>6}")
    if errors:
        print(f"{'(errors)':<10} {errors:>6}   counted as unknown; reasons on standard error")
    print(f"{'time':<10} {time.monotonic() - start:>9.2f} s")
    print(f"results in {args.out}")
    return 0


def _load(model: str, inputs: str, labels: str) -> tuple[Graph, Any, Any]:
    """The model graph, inputs (N, *shape) and labels (N,) from files, all checked."""
    g = load_model(model)
    shape = g.inputs[0].shape[1:]
    xs = data.load_npy(inputs, "float").numpy().astype(np.float64)
    if xs.ndim != len(shape) + 1 or tuple(xs.shape[1:]) != shape:
        raise DataFormatError(f"{inputs}: shape", f"expected (N, {', '.join(map(str, shape))})"
                              f" for the model's input, got {tuple(xs.shape)}")
    ys = data.read_npy(labels)
    classes = int(np.prod(g.nodes[g.outputs[0][1]].shape[1:]))
    if ys.dtype.kind not in "iu" or ys.shape != (xs.shape[0],):
        raise DataFormatError(f"{labels}: header", f"expected {xs.shape[0]} integer labels, "
                              f"got shape {ys.shape} of {ys.dtype}")
    bad = np.flatnonzero((ys < 0) | (ys >= classes))
    if bad.size:
        raise DataFormatError(f"{labels}: item {int(bad[0])}", f"label {int(ys[bad[0]])} is "
                              f"not a class of the model's {classes} outputs")
    return g, xs, ys


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
    files = (args.model, args.inputs, args.labels)
    if args.demo and any(files) or not args.demo and not all(files):
        print("torchlean verify: give either --demo bands, or all of --model, --inputs and "
              "--labels")
        return 2
    try:
        radii = [Fraction(e.strip()) for e in args.eps.split(",")]
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
        net, images, labels = _demo_bands()
        model, params = net, dict(net.params)
    else:
        try:
            model, images, labels = _load(args.model, args.inputs, args.labels)
        except DataFormatError as e:
            print(f"torchlean verify: {e}")
            return 2
        params = {}
    print(f"{'input':>5} {'label':>5} {'eps':>8} {'certified':>9} {'margin lower bound':>20}")
    # On a terminal, a bar under the table (rate, time left); rows go above it.
    bar = tqdm(total=len(radii) * len(labels), unit="input", disable=None, leave=False)
    for eps in radii:
        ok = 0
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            path = os.path.join(args.out, f"cert-{i}-{eps.numerator}_{eps.denominator}.json") \
                if args.out else None
            try:
                c = certify_robustness(model, params, img, eps, int(lab), args.method, path)
            except UnsupportedOperation as e:
                bar.close()
                print(f"torchlean verify: {e}")
                return 2
            status = "yes" if c.certified else "no"
            if path is not None and not check_certificate(path, model, params, x=img, eps=eps,
                                                          label=int(lab)).accepted:
                status = "REJECTED"
            ok += status == "yes"
            margin = float(min(c.margin_lower))
            tqdm.write(f"{i:>5} {int(lab):>5} {str(eps):>8} {status:>9} {margin:>20.6g}")
            bar.update(1)
        tqdm.write(f"certified accuracy at eps={eps}: {ok}/{len(labels)}")
    bar.close()
    return 0
