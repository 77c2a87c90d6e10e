"""Bench: IBP, CROWN and alpha-CROWN (verify.bounds, sound) against auto_LiRPA on the same
weights, both in float64 on one thread (OMP/MKL/OPENBLAS_NUM_THREADS=1 on both sides,
torch.set_num_threads(1)):

- mlp: the 784-100-100-10 ReLU MLP, batch 100, L-inf eps 0.01;
- verivital: the vnncomp2021 avgpool CNN (Convnet_avgpool.onnx), batch 20, eps 0.02;
- tanh: a 5-50-50-50-5 tanh MLP, batch 100, eps 0.05;
- acas: ACAS Xu network 1_1, 1024 input boxes bounded at once (subdomains / second).

    python bench/bench_bounds.py [--rounds 5] [--cases mlp,acas] [--methods ibp,crown]
                                 [--no-memory] [--peer-python PATH] [--peer-path DIR]

Times: each (case, method) runs once per round on our side and then on the peer's, in
interleaved rounds; the best of the rounds is kept. auto_LiRPA runs in its own
environment (--peer-python, default $LIRPA_PYTHON, else ../lirpa-venv/bin/python), as a
persistent subprocess that rebuilds the torch models from a temporary .npz (verivital:
by hand from the ONNX initializers) and times compute_bounds only (its BoundedModule is
built before). alpha-CROWN: 20 iterations on both sides, each side's default step; the
peer bounds [C; -C] as lower bounds in one optimisation (what ours does); both optimise
the slopes of the intermediate-bound passes too (ours per bounded neuron, layer by layer;
auto_LiRPA through the gradient of the final bound).

Peak memory, two figures per side, each from a fresh process per (side, case, method)
that runs one call (Linux: VmHWM reset through /proc/self/clear_refs, read from
/proc/self/status; ru_maxrss is not usable, a child forked from the bench starts with
the bench's own high-water mark):

- "call": the peak resident size during the call minus the resident size just before
  it, after the model is loaded, the bounding engine built and the inputs made;
- "total": the same peak minus the resident size before the model and the bounding
  engine are built (after the imports): what the side holds between calls counts too
  (auto_LiRPA's BoundedModule keeps the values of its last forward pass, and frees
  them during the next call, which hides them from "call").

Both children run with glibc's MALLOC_MMAP_THRESHOLD_=65536: every block of 64 KiB or
more is mapped on its own and unmapped when freed, on both sides (NumPy and torch both
allocate through glibc), so the resident size follows the live arrays. Without it glibc's
threshold adapts to the frees the process has already done, and a freed block stays
resident for reuse: the figure then depends on what ran before the call (the peer's
BoundedModule runs a forward pass when built; ours runs nothing), and the peer's
verivital IBP figure moved between 5 and 12 MiB from run to run.
When the peer is absent, the bench says so and prints our figures only.

Timed calls run with glibc keeping freed memory for reuse on both sides (`--allocator
retain`, the default: M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 2 GiB, M_TOP_PAD 256 MiB;
mallopt in this process, the same MALLOC_*_ environment for the peer's), the steady state
of a process that bounds again and again. With glibc's defaults every call maps its large
temporaries afresh and faults them in, and on this machine (transparent huge pages on
madvise, which NumPy requests for large arrays) those faults cost direct compaction after
the other side's calls had churned memory: the same MLP CROWN call took 126-139 ms alone
and 300-490 ms, two thirds of it system time, when run between auto_LiRPA's alpha-CROWN
calls. `--allocator default` measures with glibc's defaults.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from torchlean.runtime.graph.batching import rebatch  # noqa: E402
from torchlean.spec import nn  # noqa: E402
from torchlean.verify import bounds, vnn  # noqa: E402

Array = np.ndarray[Any, Any]
ROOT = Path(__file__).resolve().parent.parent
SHARED = next((b / "shared" for b in (ROOT.parent, ROOT.parent.parent)
               if (b / "shared").is_dir()), ROOT.parent / "shared")
BENCH = SHARED / "benchmarks" / "vnncomp2021"
METHODS = ("ibp", "crown", "alpha")

# The peer: rebuilds each case in torch float64 from the npz + json, then serves
# "case method" lines (prints seconds and mean width as json), or with "mem case method"
# on the command line measures one call's ru_maxrss growth.
PEER = r'''
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
from auto_LiRPA import BoundedModule, BoundedTensor
from auto_LiRPA.perturbations import PerturbationLpNorm

class Shift(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.register_buffer("a", a)
    def forward(self, x):
        return x - self.a

with open(sys.argv[1]) as f:
    spec = json.load(f)
data = np.load(sys.argv[2])
only = sys.argv[4] if len(sys.argv) > 3 and sys.argv[3] == "mem" else None

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

start = status("VmRSS")

def build(case):
    name = case["name"]
    t = lambda k: torch.tensor(data[name + "/" + k])
    layers = []
    for kind, arg in case["layers"]:
        if kind == "linear":
            lin = torch.nn.Linear(1, 1)
            lin.weight = torch.nn.Parameter(t(arg + ".w"))
            lin.bias = torch.nn.Parameter(t(arg + ".b"))
            layers.append(lin)
        elif kind == "conv":
            w = t(arg + ".w")
            conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2])
            conv.weight = torch.nn.Parameter(w); conv.bias = torch.nn.Parameter(t(arg + ".b"))
            layers.append(conv)
        elif kind == "avgpool":
            layers.append(torch.nn.AvgPool2d(arg))
        elif kind == "shift":
            layers.append(Shift(t(arg)))
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        else:
            layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[kind]())
    model = torch.nn.Sequential(*layers).eval()
    lo = torch.tensor(data[name + ":lo"]); hi = torch.tensor(data[name + ":hi"])
    x = (lo + hi) / 2
    bm = BoundedModule(model, torch.zeros_like(x), device="cpu")
    bx = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), x_L=lo, x_U=hi))
    out = model(x).shape[1]
    eye = torch.eye(out)
    both = torch.cat([eye, -eye]).unsqueeze(0).expand(x.shape[0], 2 * out, out)
    return bm, bx, both

def run(bm, bx, both, method):
    if method == "ibp":
        lb, ub = bm.compute_bounds(x=(bx,), method="IBP")
    elif method == "crown":
        lb, ub = bm.compute_bounds(x=(bx,), method="backward")
    else:
        bm.set_bound_opts({"optimize_bound_args": {"iteration": 20}, "verbosity": 0})
        low, _ = bm.compute_bounds(x=(bx,), method="CROWN-Optimized", C=both,
                                   bound_upper=False)
        r = both.shape[1] // 2
        lb, ub = low[:, :r], -low[:, r:]
    return float((ub - lb).mean())

models = {c["name"]: build(c) for c in spec if only is None or c["name"] == only}
if only is not None:
    bm, bx, both = models[only]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    before = status("VmRSS")
    with torch.no_grad() if sys.argv[5] != "alpha" else torch.enable_grad():
        run(bm, bx, both, sys.argv[5])
    peak = status("VmHWM")
    print(peak - before, peak - start)
    sys.exit(0)
print("ready", flush=True)
for line in sys.stdin:
    name, method = line.split()
    t = time.perf_counter()
    with torch.no_grad() if method != "alpha" else torch.enable_grad():
        w = run(*models[name], method)
    print(json.dumps({"sec": time.perf_counter() - t, "width": w}), flush=True)
'''


def _mlp_case(rng: Any) -> tuple[Any, Any, Array, Array, list[Any], dict[str, Array]]:
    net = nn.build(nn.linear(784, 100) >> nn.relu() >> nn.linear(100, 100) >> nn.relu()
                   >> nn.linear(100, 10), seed=0)
    x = rng.uniform(size=(100, 784))
    lo, hi = x - 0.01, x + 0.01
    layers: list[Any] = []
    data = {}
    for i in (0, 2, 4):
        data[f"l{i}.w"] = net.params[f"{i}.weight"].numpy()
        data[f"l{i}.b"] = net.params[f"{i}.bias"].numpy()
        layers += [("linear", f"l{i}")] + ([("relu", None)] if i < 4 else [])
    return bounds.as_graph(net, net.params, lo.shape), net.params, lo, hi, layers, data


def _tanh_case(rng: Any) -> tuple[Any, Any, Array, Array, list[Any], dict[str, Array]]:
    net = nn.build(nn.linear(5, 50) >> nn.tanh() >> nn.linear(50, 50) >> nn.tanh()
                   >> nn.linear(50, 50) >> nn.tanh() >> nn.linear(50, 5), seed=0)
    x = rng.uniform(-1, 1, size=(100, 5))
    lo, hi = x - 0.05, x + 0.05
    layers: list[Any] = []
    data = {}
    for i in (0, 2, 4, 6):
        data[f"l{i}.w"] = net.params[f"{i}.weight"].numpy()
        data[f"l{i}.b"] = net.params[f"{i}.bias"].numpy()
        layers += [("linear", f"l{i}")] + ([("tanh", None)] if i < 6 else [])
    return bounds.as_graph(net, net.params, lo.shape), net.params, lo, hi, layers, data


def _verivital_case(rng: Any) -> tuple[Any, Any, Array, Array, list[Any], dict[str, Array]]:
    m = vnn.load_onnx(BENCH / "verivital" / "Convnet_avgpool.onnx")
    p = {k: np.asarray(v, dtype=np.float64) for k, v in m.params.items()}
    x = rng.uniform(size=(20, 1, 28, 28))
    lo, hi = x - 0.02, x + 0.02
    # the ONNX graph: conv 1->32 (2x2, stride 1), relu, avgpool 4x4 / 4, flatten, linear
    data = {"c.w": p["conv1.0.weight"], "c.b": p["conv1.0.bias"], "o.w": p["out.weight"],
            "o.b": p["out.bias"]}
    layers = [("conv", "c"), ("relu", None), ("avgpool", 4), ("flatten", None),
              ("linear", "o")]
    return rebatch(m.graph, 20), p, lo, hi, layers, data


def _acas_case(rng: Any) -> tuple[Any, Any, Array, Array, list[Any], dict[str, Array]]:
    m = vnn.load_onnx(BENCH / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx")
    p = {k: np.asarray(v, dtype=np.float64) for k, v in m.params.items()}
    x = rng.uniform(-0.5, 0.5, size=(1024, 1, 1, 5))
    lo, hi = x - 0.02, x + 0.02
    data = {"avg": p["input_AvgImg"]}
    layers: list[Any] = [("shift", "avg"), ("flatten", None)]
    names = [f"Operation_{i}" for i in range(1, 7)] + ["linear_7"]
    for i, nm in enumerate(names):
        data[f"l{i}.w"] = p[f"{nm}_MatMul_W"].T.copy()  # x @ W: torch keeps W^T
        data[f"l{i}.b"] = p[f"{nm}_Add_B"]
        layers += [("linear", f"l{i}")] + ([("relu", None)] if i < 6 else [])
    return rebatch(m.graph, 1024), p, lo, hi, layers, data


CASES = {"mlp": _mlp_case, "verivital": _verivital_case, "tanh": _tanh_case,
         "acas": _acas_case}


def _ours(method: str, case: tuple[Any, ...]) -> float:
    g, p, lo, hi = case[:4]
    fn = getattr(bounds, {"ibp": "ibp", "crown": "crown", "alpha": "alpha_crown"}[method])
    return float(np.mean(fn(g, p, lo, hi).width))


def _load(names: list[str]) -> dict[str, tuple[Any, ...]]:
    return {n: CASES[n](np.random.default_rng(0)) for n in names}


def _status(field: str) -> int:
    """A kB field of /proc/self/status (VmRSS: resident now; VmHWM: its peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _child_memory(name: str, method: str) -> None:
    start = _status("VmRSS")
    case = _load([name])[name]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    before = _status("VmRSS")
    _ours(method, case)
    peak = _status("VmHWM")
    print(peak - before, peak - start)


def _default_peer_python() -> str:
    for base in (ROOT.parent, ROOT.parent.parent):
        cand = base / "lirpa-venv" / "bin" / "python"
        if cand.exists():
            return str(cand)
    return str(ROOT.parent / "lirpa-venv" / "bin" / "python")


def _peer_files(tmp: str, cases: dict[str, tuple[Any, ...]]) -> list[str]:
    files = [os.path.join(tmp, n) for n in ("spec.json", "w.npz", "peer.py")]
    spec, data = [], {}
    for name, case in cases.items():
        spec.append({"name": name, "layers": case[4]})
        for k, v in case[5].items():
            data[f"{name}/{k}"] = np.asarray(v, dtype=np.float64)
        data[name + ":lo"], data[name + ":hi"] = case[2], case[3]
    Path(files[0]).write_text(json.dumps(spec))
    np.savez(files[1], **data)
    Path(files[2]).write_text(PEER)
    return files


RETAIN = {"MALLOC_MMAP_THRESHOLD_": 32 << 20, "MALLOC_TRIM_THRESHOLD_": (1 << 31) - 1,
          "MALLOC_TOP_PAD_": 256 << 20}


def _retain_freed_memory() -> dict[str, str]:
    """Sets RETAIN in this process (glibc's mallopt) and returns it as the environment
    that sets it in a child; {} where glibc is not there (then neither side gets it)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return {}
    codes = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_TOP_PAD_": -2, "MALLOC_MMAP_THRESHOLD_": -3}
    for name, value in RETAIN.items():
        if libc.mallopt(codes[name], ctypes.c_int(value)) != 1:
            return {}
    return {k: str(v) for k, v in RETAIN.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--peer-python", default=os.environ.get("LIRPA_PYTHON",
                                                            _default_peer_python()))
    p.add_argument("--peer-path", default=os.environ.get(
        "LIRPA_PATH", str(SHARED / "peers" / "auto_LiRPA")))
    p.add_argument("--allocator", choices=("retain", "default"), default="retain",
                   help="glibc keeps freed memory for reuse in the timed calls (both "
                        "sides), or its defaults")
    p.add_argument("--child-memory", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_memory:
        _child_memory(*args.child_memory)
        return
    retain = _retain_freed_memory() if args.allocator == "retain" else {}
    names, methods = args.cases.split(","), args.methods.split(",")
    cases = _load(names)
    have_peer = Path(args.peer_python).exists() and Path(args.peer_path, "auto_LiRPA").is_dir()
    if not have_peer:
        print(f"auto_LiRPA is absent (python {args.peer_python}, path {args.peer_path}): "
              "our figures only, no ratios")
    print(f"load average at start: {os.getloadavg()}; allocator: "
          f"{'glibc keeps freed memory (both sides)' if retain else 'glibc defaults'}")
    env = dict(os.environ, PYTHONPATH=args.peer_path, **retain)
    with tempfile.TemporaryDirectory() as tmp:
        files = _peer_files(tmp, cases) if have_peer else []
        peer = None
        if have_peer:
            peer = subprocess.Popen([args.peer_python, files[2], files[0], files[1]], env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert peer.stdout is not None and peer.stdin is not None
            if peer.stdout.readline().strip() != "ready":
                raise SystemExit("the auto_LiRPA subprocess failed to start")
        times: dict[tuple[str, str, str], list[float]] = {}
        widths: dict[tuple[str, str, str], float] = {}
        for _ in range(args.rounds):
            for name in names:
                for method in methods:
                    t = time.perf_counter()
                    widths[name, method, "ours"] = _ours(method, cases[name])
                    times.setdefault((name, method, "ours"), []).append(
                        time.perf_counter() - t)
                    if peer is not None:
                        assert peer.stdin is not None and peer.stdout is not None
                        peer.stdin.write(f"{name} {method}\n")
                        peer.stdin.flush()
                        got = json.loads(peer.stdout.readline())
                        times.setdefault((name, method, "peer"), []).append(got["sec"])
                        widths[name, method, "peer"] = got["width"]
        if peer is not None:
            assert peer.stdin is not None
            peer.stdin.close()
            peer.wait()
        mem: dict[tuple[str, str, str], list[int]] = {}
        if not args.no_memory:
            mem_env = {k: v for k, v in env.items() if k not in retain}
            mem_env["MALLOC_MMAP_THRESHOLD_"] = "65536"
            for name in names:
                for method in methods:
                    mine = subprocess.run(
                        [sys.executable, __file__, "--child-memory", name, method],
                        env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"),
                        capture_output=True, text=True, check=True)
                    mem[name, method, "ours"] = [int(v) for v in mine.stdout.split()[-2:]]
                    if have_peer:
                        r = subprocess.run([args.peer_python, files[2], files[0], files[1],
                                            "mem", name, method], env=mem_env,
                                           capture_output=True, text=True, check=True)
                        mem[name, method, "peer"] = [int(v) for v in r.stdout.split()[-2:]]
    print(f"load average at end: {os.getloadavg()}")
    print(f"best of {args.rounds} interleaved rounds, 1 thread, float64; memory (MiB) = "
          "peak resident size in a fresh process, above that just before the call (call) "
          "and before the model was built (total), MALLOC_MMAP_THRESHOLD_=65536 on both sides")
    print(f"{'case':<10} {'method':<6} {'ours ms':>9} {'LiRPA ms':>9} {'ratio':>6} "
          f"{'ours w':>9} {'LiRPA w':>9} {'call ours':>9} {'LiRPA':>6} "
          f"{'total ours':>10} {'LiRPA':>6}")
    for name in names:
        for method in methods:
            o = min(times[name, method, "ours"])
            line = f"{name:<10} {method:<6} {o * 1e3:9.2f} "
            if have_peer:
                q = min(times[name, method, "peer"])
                line += f"{q * 1e3:9.2f} {o / q:6.2f} "
            else:
                line += f"{'-':>9} {'-':>6} "
            line += f"{widths[name, method, 'ours']:9.4g} "
            line += f"{widths.get((name, method, 'peer'), float('nan')):9.4g} "
            if mem:
                (oc, ot), (pc, pt) = mem[name, method, "ours"], mem.get(
                    (name, method, "peer"), [-1024, -1024])
                line += f"{oc / 1024:9.1f} {pc / 1024:6.1f} {ot / 1024:10.1f} {pt / 1024:6.1f}"
            print(line)
        if name == "acas":
            batch = cases[name][2].shape[0]
            for method in methods:
                o = batch / min(times[name, method, "ours"])
                q = batch / min(times[name, method, "peer"]) if have_peer else float("nan")
                print(f"acas {method}: subdomains/s ours {o:.0f}, auto_LiRPA {q:.0f}")


if __name__ == "__main__":
    main()
