"""`torchlean verify robustness`: certify L-inf robustness of a classifier, print a table.

    torchlean verify robustness --demo bands --eps 1/100,1/10 [--method ibp|crown]
        [--out DIR]    # also write one certificate per input and eps, re-checked exactly

Only the built-in demo model (`--demo bands`: a 16-8-2 ReLU MLP trained for 60 steps on the
six band images) is available for now; `--model PATH` needs a file format holding the model
structure beside the runner checkpoint, which does not exist yet.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from .runtime import data
from .runtime.optim import adam
from .runtime.runner import runner as make_runner
from .runtime.tasks import classification
from .runtime.train import fit_dataset, steps
from .spec import nn
from .spec.tensor import tensor
from .verify.certificate import certify_robustness, check_certificate

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
    r.add_argument("--model", help="a model file (not supported yet)")
    r.add_argument("--inputs", help="inputs file (not supported yet)")
    r.add_argument("--eps", required=True, help="radii, comma separated: 0.01 or 1/100")
    r.add_argument("--method", choices=["ibp", "crown"], default="crown")
    r.add_argument("--out", help="directory for the certificates (each re-checked)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 on success, 2 on bad usage)."""
    args = _parser().parse_args(argv)
    if args.model or args.inputs or not args.demo:
        print("torchlean verify: only --demo bands is supported for now "
              "(a model file format is not defined yet)")
        return 2
    try:
        radii = [Fraction(e.strip()) for e in args.eps.split(",")]
    except ValueError:
        print(f"torchlean verify: --eps must be numbers like 0.01 or 1/100, got {args.eps!r}")
        return 2
    net, images, labels = _demo_bands()
    print(f"{'input':>5} {'label':>5} {'eps':>8} {'certified':>9} {'margin lower bound':>20}")
    for eps in radii:
        ok = 0
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            path = os.path.join(args.out, f"cert-{i}-{eps.numerator}_{eps.denominator}.json") \
                if args.out else None
            c = certify_robustness(net, net.params, img, eps, int(lab), args.method, path)
            status = "yes" if c.certified else "no"
            if path is not None and not check_certificate(path, net, net.params).accepted:
                status = "REJECTED"
            ok += status == "yes"
            margin = float(min(c.margin_lower))
            print(f"{i:>5} {int(lab):>5} {str(eps):>8} {status:>9} {margin:>20.6g}")
        print(f"certified accuracy at eps={eps}: {ok}/{len(labels)}")
    return 0
