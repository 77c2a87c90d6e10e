"""Shared inputs of the scale-out tests (no tests here): toy model files with VNN-LIB
properties written here, the shipped ACAS Xu network with properties of known verdict, and
a small data set."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from torchlean.spec import nn
from torchlean.verify.bounds.model_file import export_model

DATA = Path(__file__).resolve().parents[1] / "data"
ACAS = DATA / "ACASXU_run2a_1_1_batch_2000.onnx"

TOY_HEADER = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
              "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
              "(assert (<= -1 X_0 1))\n(assert (<= -1 X_1 1))\n")
TOY_PROPS = {
    "holds.vnnlib": "(assert (>= Y_0 1000))\n",          # outputs stay far below 1000
    "violated.vnnlib": "(assert (<= Y_0 1000))\n",       # every point is unsafe
    "nonlinear.vnnlib": "(assert (<= Y_0 (* Y_1 Y_0)))\n",  # a bad file: the unit fails
}


def _acas_prop(unsafe: str) -> str:
    decl = "".join(f"(declare-const X_{i} Real)\n" for i in range(5))
    decl += "".join(f"(declare-const Y_{i} Real)\n" for i in range(5))
    box = "".join(f"(assert (<= {-0.1 + 0.02 * i} X_{i} {0.1 + 0.02 * i}))\n" for i in range(5))
    return decl + box + unsafe


ACAS_PROPS = {
    "acas_holds.vnnlib": "(assert (<= Y_0 -100000))\n",
    "acas_violated.vnnlib": "(assert (>= Y_0 -100000))\n",
    "acas_3in.vnnlib": "",  # declares 5 inputs; the toy nets have 2: a unit that raises
}


def instance_set(root: Path, acas_copies: int = 2, timeout: float = 60) -> Path:
    """Write toy nets, properties and an instances CSV under `root` (each row's timeout
    `timeout` s); returns the CSV."""
    rows = []
    for k in range(3):
        net: nn.Built[Any, Any] = nn.build(
            nn.linear(2, 6) >> nn.relu() >> nn.linear(6, 2), seed=k)
        export_model(net, root / f"toy{k}.json", input_shape=(2,))
    for name, text in TOY_PROPS.items():
        (root / name).write_text(TOY_HEADER + text)
    for name, text in ACAS_PROPS.items():
        (root / name).write_text(_acas_prop(text))
    shutil.copy(ACAS, root / "acas.onnx")
    for k in range(3):
        rows += [f"toy{k}.json,holds.vnnlib,60", f"toy{k}.json,violated.vnnlib,60"]
    rows += ["toy1.json,nonlinear.vnnlib,60", "toy2.json,acas_3in.vnnlib,60",
             "missing.onnx,holds.vnnlib,60"]
    for _ in range(acas_copies):
        rows += ["acas.onnx,acas_holds.vnnlib,60", "acas.onnx,acas_violated.vnnlib,60"]
    csv = root / "instances.csv"
    csv.write_text("".join(f"{r.rsplit(',', 1)[0]},{timeout:g}\n" for r in rows))
    return csv


def dataset(root: Path, n: int = 12) -> tuple[Path, Any, Any]:
    """A 4-8-3 ReLU model file, n inputs in [-1, 1]^4 and n labels (seeded)."""
    net: nn.Built[Any, Any] = nn.build(
        nn.linear(4, 8) >> nn.relu() >> nn.linear(8, 3), seed=3)
    path = root / "mlp.json"
    export_model(net, path, input_shape=(4,))
    rng = np.random.default_rng(5)
    return path, rng.uniform(-1, 1, size=(n, 4)), rng.integers(0, 3, size=n)
