"""A small CNN's Adam training step, eager and compiled, against PyTorch CPU eager.

    python bench/bench_cnn.py [--repeats 3] [--steps 10] [--profile]

Model (float32, batch 64, cross entropy): 1x28x28 -> conv 3x3 1->16 -> relu -> maxpool 2
-> conv 3x3 16->32 -> relu -> maxpool 2 -> flatten -> linear 32*5*5 -> 10 (unpadded
convolutions: 28 -> 26 -> 13 -> 11 -> 5). A step is loss, gradients and the Adam update.
Every figure is the best of several timed runs of `--steps` steps, with one BLAS/OpenMP
thread on both sides (this machine has 2 shared cores). Prints times and the ratios
ours / PyTorch; `--profile` adds the top functions (cProfile, cumulative time) of one
eager and one compiled step, to show where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import torchlean as tl  # noqa: E402
from torchlean import nn  # noqa: E402

BATCH, CLASSES, LR = 64, 10, 1e-3


def best_time(step: Callable[[], Any], n: int, repeats: int) -> float:
    """Best mean seconds per call over `repeats` runs of `n` calls (after a warm-up)."""
    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            step()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A fixed batch of random images and labels."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((BATCH, 1, 28, 28)), rng.integers(0, CLASSES, BATCH)


def ours_step(backend: str) -> Callable[[], None]:
    """One TorchLean training step on `backend`, as a closure."""
    model = (
        nn.conv2d(1, 16, 3) >> nn.relu() >> nn.max_pool2d(2)
        >> nn.conv2d(16, 32, 3) >> nn.relu() >> nn.max_pool2d(2)
        >> nn.flatten() >> nn.linear(32 * 5 * 5, CLASSES)
    )
    task = tl.train.classification(nn.build(model, seed=0))
    runner = tl.train.runner(task, dtype="float32", backend=backend)  # type: ignore[arg-type]
    runner.set_optimizer(tl.optim.adam(LR))
    images, labels = data()
    x, y = runner.as_input(images), runner.as_input(labels)

    def step() -> None:
        _, grads, _ = runner.loss_and_grads(x, y)
        runner.update(grads)

    return step


def torch_step() -> Callable[[], None] | None:
    """The same step in PyTorch (None when torch is absent)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 5 * 5, CLASSES),
    )
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    images, labels = data()
    x = torch.from_numpy(images).float()
    y = torch.from_numpy(labels)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def profile(name: str, step: Callable[[], None], top: int) -> None:
    """Print the `top` functions of one step by cumulative time."""
    step()  # warm: compiling, first-call caches
    prof = cProfile.Profile()
    prof.enable()
    step()
    prof.disable()
    print(f"\n-- profile of one {name} step (cumulative) --")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def main() -> None:
    """Time every backend and print the table (and the profiles when asked)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    eager, compiled, theirs = ours_step("eager"), ours_step("compiled"), torch_step()
    e = best_time(eager, args.steps, args.repeats)
    c = best_time(compiled, args.steps, args.repeats)
    t = best_time(theirs, args.steps, args.repeats) if theirs else None
    print(f"{'model':<26}{'eager':>10}{'compiled':>10}{'PyTorch':>10}"
          f"{'eager/PT':>10}{'comp/PT':>9}{'comp/eager':>11}")
    pt = f"{t * 1e3:>8.1f}ms" if t else "    absent"
    ratios = f"{e / t:>10.2f}{c / t:>9.2f}" if t else f"{'-':>10}{'-':>9}"
    print(f"{'cnn 1x28x28, batch 64':<26}{e * 1e3:>8.1f}ms{c * 1e3:>8.1f}ms{pt}{ratios}"
          f"{c / e:>11.2f}")
    if args.profile:
        profile("eager", eager, args.top)
        profile("compiled", compiled, args.top)


if __name__ == "__main__":
    main()
