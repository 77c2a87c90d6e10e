"""Forward+backward of an MLP loss: the compiled (lowered) executor against the eager
tape, the BLAS floor, and PyTorch CPU eager when it is installed.

Models: the 784-256-256-10 MLP (batch 128, softmax cross entropy written with
F.log_softmax and F.one_hot) and the tiny 2-8-1 MLP (batch 1, squared error). Each
measurement is the best of repeated timed calls after a warm-up; ratios are taken
within this one run. "BLAS floor" is the sum of the times of the matmuls the compiled
graph performs, each timed alone on operands with the graph's own layouts.

Run: python bench/bench_compiled.py [--repeat N] [--dtype float32|float] [--threads N]

`--threads N` sets the BLAS (OpenBLAS/OpenMP/MKL) and PyTorch thread counts; on a shared
machine `--threads 1` gives the steadiest figures (a multithreaded gemm waits for its
slowest thread, so one busy core can stretch a call by a whole scheduler time slice).
"""

from __future__ import annotations

import os
import sys

if "--threads" in sys.argv[:-1]:  # must be set before NumPy loads its BLAS
    _threads = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from torchlean.runtime import autograd as ad  # noqa: E402
from torchlean.runtime.graph import compile_graph, grad_graph, simplify, trace  # noqa: E402
from torchlean.runtime.graph.lowering import probe_values  # noqa: E402
from torchlean.spec import functional as F  # noqa: E402
from torchlean.spec import get_field  # noqa: E402
from torchlean.spec.tensor import Tensor  # noqa: E402
from torchlean.spec.value import Value  # noqa: E402


def best_time(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> float:
    """Best (minimum) wall time of one call over `repeat` calls, in seconds: the least
    disturbed by other load on the machine (as timeit advises)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def mlp_apply(p: dict[str, Value], x: Value, depth: int) -> Value:
    h = x
    for i in range(depth):
        h = h @ p[f"w{i}"] + p[f"b{i}"]
        if i < depth - 1:
            h = F.relu(h)
    return h


def ce_loss(p: dict[str, Value], x: Value, labels: Value) -> Value:
    logits = mlp_apply(p, x, 3)
    return -F.sum(F.one_hot(labels, 10) * F.log_softmax(logits, -1)) / x.shape[0]


def mse_loss(p: dict[str, Value], x: Value, y: Value) -> Value:
    return F.mean(F.square(mlp_apply(p, x, 2) - y))


def init(sizes: list[int], rng: np.random.Generator, dtype: str) -> dict[str, np.ndarray[Any, Any]]:
    params = {}
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = (rng.standard_normal((m, n)) / np.sqrt(m)).astype(dtype)
        params[f"b{i}"] = np.zeros(n, dtype=dtype)
    return params


def bench_model(name: str, sizes: list[int], batch: int, loss: Any, classify: bool,
                dtype_name: str, repeat: int) -> None:
    field = get_field(dtype_name)
    np_dtype = "float32" if dtype_name == "float32" else "float64"
    rng = np.random.default_rng(0)
    params = init(sizes, rng, np_dtype)
    x = rng.standard_normal((batch, sizes[0])).astype(np_dtype)
    if classify:
        y = rng.integers(0, sizes[-1], batch).astype(np_dtype)
    else:
        y = rng.standard_normal((batch, sizes[-1])).astype(np_dtype)

    shapes = {k: v.shape for k, v in params.items()}
    t0 = time.perf_counter()
    graph = simplify(grad_graph(trace(loss, {"x": x.shape, "y": y.shape}, shapes,
                                      field=field), list(params)))
    compiled = compile_graph(graph)
    leaves = {**params, "x": x, "y": y}
    arrays = [leaves[n.name] for n in graph.leaves]
    compiled.run_arrays(arrays)
    build = time.perf_counter() - t0

    t_compiled = best_time(lambda: compiled.run_arrays(arrays), repeat)

    tp = {k: Tensor(v, field) for k, v in params.items()}
    tx, ty = Tensor(x, field), Tensor(y, field)
    grad_fn = ad.value_and_grad(loss)
    t_eager = best_time(lambda: grad_fn(tp, tx, ty), max(10, repeat // 3))

    probes = probe_values(graph, field, arrays)
    floor = 0.0
    for n in graph.nodes:
        if n.op == "matmul":
            a, b = probes[n.args[0]], probes[n.args[1]]
            out = np.empty_like(probes[n.id])
            floor += best_time(partial(np.matmul, a, b, out=out), repeat)
    n_matmul = sum(1 for n in graph.nodes if n.op == "matmul")

    t_torch = torch_time(sizes, batch, params, x, y, classify, repeat)

    print(f"\n{name}  ({dtype_name}, batch {batch}; graph: {graph.op_count} ops, "
          f"{n_matmul} matmuls; trace+differentiate+simplify+compile {build * 1e3:.1f} ms)")
    rows = [("compiled (lowered)", t_compiled), ("eager tape", t_eager),
            ("BLAS floor (matmuls alone)", floor)]
    if t_torch is not None:
        rows.append(("PyTorch CPU eager", t_torch))
    for label, t in rows:
        print(f"  {label:28s} {t * 1e6:10.1f} us")
    print(f"  compiled / eager           {t_compiled / t_eager:10.3f}")
    print(f"  compiled / BLAS floor      {t_compiled / floor:10.3f}")
    if t_torch is not None:
        print(f"  compiled / PyTorch         {t_compiled / t_torch:10.3f}")


def torch_time(sizes: list[int], batch: int, params: dict[str, Any], x: Any, y: Any,
               classify: bool, repeat: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx, ty = torch.tensor(x), torch.tensor(y)
    depth = len(sizes) - 1

    def step() -> None:
        h = tx
        for i in range(depth):
            h = h @ tp[f"w{i}"] + tp[f"b{i}"]
            if i < depth - 1:
                h = torch.relu(h)
        if classify:
            hot = torch.nn.functional.one_hot(ty.long(), sizes[-1]).to(h.dtype)
            loss = -(hot * torch.log_softmax(h, -1)).sum() / batch
        else:
            loss = ((h - ty) ** 2).mean()
        for p in tp.values():
            p.grad = None
        loss.backward()  # type: ignore[no-untyped-call]

    return best_time(step, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float"])
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and PyTorch threads (default: the libraries' own)")
    args = parser.parse_args()
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        print("PyTorch not installed: no PyTorch column")
    print(f"NumPy {np.__version__}")
    bench_model("784-256-256-10 MLP, cross entropy", [784, 256, 256, 10], 128, ce_loss, True,
                args.dtype, args.repeat)
    bench_model("2-8-1 MLP, squared error", [2, 8, 1], 1, mse_loss, False, args.dtype,
                args.repeat * 20)


if __name__ == "__main__":
    main()
