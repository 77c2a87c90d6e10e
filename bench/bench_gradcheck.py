"""Time verify.gradcheck on a 784-256-10 MLP against torch.autograd.gradcheck, in one run.

Both check the gradient of the same MSE loss with respect to all 203,530 parameters, in
binary64, at the same point: the full check (every entry) and the fast one (random
directions: ours `method="fast"`, 3 directions; torch `fast_mode=True`, 1 direction).
Our exact and interval checks along random directions are timed too (torch has no
counterpart). Prints seconds and the ratios ours / torch.

    python bench/bench_gradcheck.py [--batch 1] [--skip-full] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--skip-full", action="store_true", help="skip both full checks")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/torch threads")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import torchlean.spec as S
    from torchlean.spec import functional as F
    from torchlean.verify import gradcheck

    rng = np.random.default_rng(0)
    shapes = {"W1": (784, 256), "b1": (256,), "W2": (256, 10), "b2": (10,)}
    host = {k: rng.standard_normal(s) * (0.05 if k[0] == "W" else 0.01) for k, s in shapes.items()}
    x_host = rng.standard_normal((args.batch, 784))
    y_host = rng.standard_normal((args.batch, 10))
    n = sum(v.size for v in host.values())
    print(f"784-256-10 MLP, relu, MSE loss, batch {args.batch}: {n} parameters")

    params = {k: S.tensor(v) for k, v in host.items()}
    x, y = S.tensor(x_host), S.tensor(y_host)

    def loss(p: Any, xi: Any, yi: Any) -> Any:
        h = F.relu(xi @ p["W1"] + p["b1"])
        return F.mean(F.square(h @ p["W2"] + p["b2"] - yi))

    ours: dict[str, float] = {}

    def run(label: str, **options: Any) -> None:
        secs, report = timed(lambda: gradcheck(loss, (params, x, y), argnums=0, **options))
        ours[label] = secs
        print(f"  torchlean {label:<28} {secs:9.3f} s  passed={report.passed}")

    run("fast (3 directions)", method="fast")
    run("exact (2 random directions)", method="exact", directions=2)
    run("interval (1 random direction)", method="interval", directions=1)
    if not args.skip_full:
        run("central (every entry)", method="central")

    try:
        import torch
    except ImportError:
        print("torch not installed: no ratios")
        return
    torch.set_num_threads(args.threads)
    tp = [torch.tensor(host[k], dtype=torch.float64, requires_grad=True) for k in shapes]
    tx = torch.tensor(x_host, dtype=torch.float64)
    ty = torch.tensor(y_host, dtype=torch.float64)

    def tloss(w1: Any, b1: Any, w2: Any, b2: Any) -> Any:
        return ((torch.relu(tx @ w1 + b1) @ w2 + b2 - ty) ** 2).mean()

    theirs: dict[str, float] = {}
    secs, ok = timed(lambda: torch.autograd.gradcheck(tloss, tuple(tp), fast_mode=True))
    theirs["fast"] = secs
    print(f"  torch gradcheck fast_mode=True        {secs:9.3f} s  passed={ok}")
    if not args.skip_full:
        secs, ok = timed(lambda: torch.autograd.gradcheck(tloss, tuple(tp), fast_mode=False))
        theirs["full"] = secs
        print(f"  torch gradcheck fast_mode=False       {secs:9.3f} s  passed={ok}")

    print("ratios (torchlean / torch; < 1 means torchlean is faster):")
    print(f"  fast: {ours['fast (3 directions)'] / theirs['fast']:.2f}")
    if "full" in theirs:
        print(f"  full: {ours['central (every entry)'] / theirs['full']:.2f}")


if __name__ == "__main__":
    main()
