"""Bench: CROWN tightness of verify.bounds against auto_LiRPA's CROWN (method "backward")
on the same weights: tanh, sigmoid and gelu MLPs and small ReLU / tanh CNNs, output widths compared
elementwise (ours / auto_LiRPA; below 1 is tighter). Also times both, one run each (the row
"bench_mlp_relu" is bench_bounds.py's 784-100-100-10 MLP, batch 100).

    python bench/bench_tightness.py [--peer-python PATH] [--peer-path DIR]

auto_LiRPA runs in its own environment, in a subprocess that loads the weights from a
temporary .npz and computes in float64: the interpreter is --peer-python (default
$LIRPA_PYTHON, else ../lirpa-venv/bin/python next to the repository), with --peer-path
(default $LIRPA_PATH, else /work/shared/peers/auto_LiRPA) on its PYTHONPATH. When that
interpreter or auto_LiRPA is absent, the bench says so and prints our widths only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from torchlean.spec import nn
from torchlean.verify import bounds

Array = np.ndarray[Any, Any]
ROOT = Path(__file__).resolve().parent.parent

# Runs in the peer's environment: rebuilds each model in torch (float64) from the npz,
# bounds it with auto_LiRPA's CROWN, writes lower / upper bounds and seconds.
PEER = r'''
import json, sys, time
import numpy as np
import torch
torch.set_default_dtype(torch.float64)
from auto_LiRPA import BoundedModule, BoundedTensor
from auto_LiRPA.perturbations import PerturbationLpNorm

with open(sys.argv[1]) as f:
    spec = json.load(f)
data = np.load(sys.argv[2])
out = {}
for case in spec:
    layers = []
    for kind, arg in case["layers"]:
        if kind == "linear":
            layers.append(torch.nn.Linear(*arg))
        elif kind == "conv":
            c_in, c_out, k, s, p = arg
            layers.append(torch.nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        else:
            layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                           "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU}[kind]())
    model = torch.nn.Sequential(*layers)
    name = case["name"]
    state = {k.split("/", 1)[1]: torch.tensor(data[k]) for k in data.files
             if k.startswith(name + "/")}
    model.load_state_dict(state)
    lo = torch.tensor(data[name + ":lo"]); hi = torch.tensor(data[name + ":hi"])
    x = (lo + hi) / 2
    try:
        bm = BoundedModule(model, torch.zeros_like(x), device="cpu")
        bx = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), x_L=lo, x_U=hi))
        t = time.perf_counter()
        lb, ub = bm.compute_bounds(x=(bx,), method="backward")
        sec = time.perf_counter() - t
    except Exception as e:  # an op this auto_LiRPA cannot bound: reported per model
        out[name + ":err"] = np.array(f"{type(e).__name__}: {e}")
        continue
    out[name + ":lb"] = lb.detach().numpy(); out[name + ":ub"] = ub.detach().numpy()
    out[name + ":sec"] = np.array(sec)
np.savez(sys.argv[3], **out)
'''


def cases() -> list[tuple[str, Any, list[Any], tuple[int, ...], float]]:
    """(name, built model, layer list for the peer, input shape, eps)."""
    out = []
    for act, f in (("tanh", nn.tanh), ("sigmoid", nn.sigmoid), ("gelu", nn.gelu)):
        for depth, eps in ((2, 0.05), (3, 0.02), (3, 0.1)):
            dims = [20] + [32] * depth + [5]
            model: Any = nn.linear(dims[0], dims[1])
            layers: list[Any] = [("linear", [dims[0], dims[1]])]
            for i in range(1, len(dims) - 1):
                model = model >> f() >> nn.linear(dims[i], dims[i + 1])
                layers += [(act, None), ("linear", [dims[i], dims[i + 1]])]
            out.append((f"{act}_{depth}x32_eps{eps}", nn.build(model, seed=depth), layers,
                        (4, 20), eps))
    mlp = (nn.linear(784, 100) >> nn.relu() >> nn.linear(100, 100) >> nn.relu()
           >> nn.linear(100, 10))
    out.append(("bench_mlp_relu_eps0.01", nn.build(mlp, seed=0),
                [("linear", [784, 100]), ("relu", None), ("linear", [100, 100]),
                 ("relu", None), ("linear", [100, 10])], (100, 784), 0.01))
    cnn = (nn.conv2d(1, 4, 3, stride=2, padding=1) >> nn.relu()
           >> nn.conv2d(4, 8, 3, stride=2, padding=1) >> nn.relu() >> nn.flatten()
           >> nn.linear(8 * 4 * 4, 10))
    cnn_layers = [("conv", [1, 4, 3, 2, 1]), ("relu", None), ("conv", [4, 8, 3, 2, 1]),
                  ("relu", None), ("flatten", None), ("linear", [128, 10])]
    out.append(("cnn_relu_eps0.02", nn.build(cnn, seed=1), cnn_layers, (4, 1, 16, 16), 0.02))
    cnn_t = (nn.conv2d(1, 4, 3, stride=2, padding=1) >> nn.tanh() >> nn.flatten()
             >> nn.linear(4 * 8 * 8, 10))
    out.append(("cnn_tanh_eps0.02", nn.build(cnn_t, seed=2),
                [("conv", [1, 4, 3, 2, 1]), ("tanh", None), ("flatten", None),
                 ("linear", [256, 10])], (4, 1, 16, 16), 0.02))
    return out


def _default_peer_python() -> str:
    """../lirpa-venv next to the checkout (or next to the folder of worktrees)."""
    for base in (ROOT.parent, ROOT.parent.parent):
        cand = base / "lirpa-venv" / "bin" / "python"
        if cand.exists():
            return str(cand)
    return str(ROOT.parent / "lirpa-venv" / "bin" / "python")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--peer-python", default=os.environ.get("LIRPA_PYTHON",
                                                            _default_peer_python()))
    p.add_argument("--peer-path", default=os.environ.get(
        "LIRPA_PATH", "/work/shared/peers/auto_LiRPA"))
    args = p.parse_args()
    rng = np.random.default_rng(0)
    data: dict[str, Array] = {}
    spec = []
    ours: dict[str, tuple[bounds.Bounds, float]] = {}
    for name, net, layers, shape, eps in cases():
        x = rng.uniform(0 if name.startswith("bench") else -1, 1, size=shape)
        lo, hi = x - eps, x + eps
        g = bounds.as_graph(net, net.params, shape)
        t = time.perf_counter()
        b = bounds.crown(g, net.params, lo, hi)
        ours[name] = (b, time.perf_counter() - t)
        for k, v in net.params.items():
            data[f"{name}/{k}"] = v.numpy().astype(np.float64)
        data[name + ":lo"], data[name + ":hi"] = lo, hi
        spec.append({"name": name, "layers": layers})
    peer = _run_peer(args.peer_python, args.peer_path, spec, data)
    print(f"{'model':<26} {'ours width':>11} {'LiRPA width':>11} {'median':>7} {'max':>7}"
          f" {'ours s':>7} {'LiRPA s':>7}")
    medians, maxes = [], []
    for name, (b, sec) in ours.items():
        w = b.width
        if peer is None:
            print(f"{name:<26} {np.mean(w):11.4g} {'-':>11} {'-':>7} {'-':>7} {sec:7.3f}")
            continue
        if name + ":err" in peer:
            print(f"{name:<26} {np.mean(w):11.4g} {'failed':>11} {'-':>7} {'-':>7} {sec:7.3f}"
                  f"   (auto_LiRPA: {str(peer[name + ':err'])[:60]})")
            continue
        lw = peer[name + ":ub"] - peer[name + ":lb"]
        r = w / lw
        medians.append(float(np.median(r)))
        maxes.append(float(np.max(r)))
        print(f"{name:<26} {np.mean(w):11.4g} {np.mean(lw):11.4g} {np.median(r):7.4f} "
              f"{np.max(r):7.4f} {sec:7.3f} {float(peer[name + ':sec']):7.3f}")
    if peer is None:
        print("auto_LiRPA is absent (see --peer-python / --peer-path): no ratios")
    else:
        print(f"width ratio ours / auto_LiRPA over all outputs of all models: median of "
              f"medians {np.median(medians):.4f}, max {max(maxes):.4f}")


def _run_peer(python: str, path: str, spec: list[Any], data: dict[str, Array]
              ) -> dict[str, Array] | None:
    if not Path(python).exists() or not Path(path, "auto_LiRPA").is_dir():
        print(f"auto_LiRPA not found (python {python}, path {path})")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        files = [os.path.join(tmp, n) for n in ("spec.json", "w.npz", "out.npz", "peer.py")]
        Path(files[0]).write_text(json.dumps(spec))
        np.savez(files[1], **data)
        Path(files[3]).write_text(PEER)
        env = dict(os.environ, PYTHONPATH=path)
        r = subprocess.run([python, files[3], files[0], files[1], files[2]], env=env,
                           capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            print(f"auto_LiRPA run failed:\n{r.stderr[-2000:]}", file=sys.stderr)
            return None
        with np.load(files[2]) as z:
            return {k: z[k] for k in z.files}


if __name__ == "__main__":
    main()
