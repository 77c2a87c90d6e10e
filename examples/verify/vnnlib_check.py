"""Check VNN-LIB properties of a tiny ReLU network: holds, violated or unknown.

    python examples/verify/vnnlib_check.py [--out DIR]

Builds a seeded 2-8-2 ReLU MLP, writes its model file and three VNN-LIB properties (the
asserts describe the UNSAFE outputs), and asks the verdict engine about each. A `violated`
verdict comes with a counterexample checked exactly over Fractions, written as VNN-COMP's
result file; `holds` is proven by sound CROWN bounds. The same files work on the command
line: `torchlean verify vnnlib DIR/net.json DIR/far.vnnlib`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from torchlean.spec import nn
from torchlean.verify.bounds.model_file import export_model
from torchlean.verify.vnn.engine import Verdict, verify_instance
from torchlean.verify.vnn.results import format_result, write_result_file
from torchlean.verify.vnn.vnnlib import read_vnnlib

DECLARE = """; inputs X_0, X_1 and outputs Y_0, Y_1 of the 2-8-2 net
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
"""
BOX = """(assert (>= X_0 -0.5))
(assert (<= X_0 0.5))
(assert (>= X_1 -0.5))
(assert (<= X_1 0.5))
"""

PROPERTIES = {
    # unsafe if Y_0 is far from zero: CROWN shows no input reaches it
    "far": BOX + "(assert (or (>= Y_0 100) (<= Y_0 -100)))\n",
    # unsafe if Y_1 < Y_0 + 10: almost every input does, so a counterexample is found
    "close": BOX + "(assert (<= Y_1 (+ Y_0 10)))\n",
    # two input boxes, one output condition each (the VNN-COMP 2022 style)
    "boxes": """(assert (or
  (and (>= X_0 -1) (<= X_0 -0.9) (>= X_1 0) (<= X_1 0.1) (>= Y_0 50))
  (and (>= X_0 0.9) (<= X_0 1) (>= X_1 0) (<= X_1 0.1) (>= (- Y_0 Y_1) 50))))
""",
}


def main(argv: Sequence[str] | None = None) -> dict[str, Verdict]:
    """Write the model and properties, verify each; returns the verdicts by name."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="directory for the files (default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="vnnlib-check-")
    os.makedirs(out, exist_ok=True)

    net: nn.Built[Any, Any] = nn.build(nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 2), seed=0)
    model = os.path.join(out, "net.json")
    export_model(net, model, input_shape=(2,))

    verdicts = {}
    for name, body in PROPERTIES.items():
        path = os.path.join(out, f"{name}.vnnlib")
        with open(path, "w", encoding="utf-8") as f:
            f.write(DECLARE + body)
        cases = len(read_vnnlib(path).cases)
        v = verify_instance(model, path, timeout=60)
        verdicts[name] = v
        print(f"{name:>6}: {v.status:<9} {cases} case(s), {v.seconds:.2f} s  ({v.detail})")
        if v.status == "violated":
            write_result_file(os.path.join(out, f"{name}.result.txt"), v)
            print("        result file:", " ".join(format_result(v).split()))
    print(f"files in {out}")
    return verdicts


if __name__ == "__main__":
    main()
