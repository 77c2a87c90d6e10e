"""Adam training steps on a CUDA GPU: ours on CuPy (eager and compiled) against PyTorch
CUDA eager on the same GPU, in the same run.

    python bench/bench_cuda.py [--repeats 5] [--loss ce|mse]

Models (float32): the 784-256-256-10 ReLU MLP on batch 128, and the 4096-4096-4096-10
ReLU MLP on batch 1024, with cross entropy (or squared error with --loss mse). A step is
loss, gradients and the Adam update, with the batch already on the GPU; the loss is not
read back. GPU work is asynchronous, so each timed run synchronizes the device before
starting the clock and before stopping it. Every figure is the best of several timed
runs. Prints times and the ratios ours / PyTorch (< 1 is faster than PyTorch).
Without CuPy or a GPU it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import torchlean as tl
from torchlean import nn
from torchlean.runtime import devices

CASES = [("784-256-256-10, batch 128", [784, 256, 256, 10], 128, 50),
         ("4096x3-10, batch 1024", [4096, 4096, 4096, 10], 1024, 10)]


def best_time(step: Callable[[], Any], sync: Callable[[], None], n: int, repeats: int) -> float:
    """Best mean seconds per call over `repeats` runs of `n` calls (after a warm-up),
    with the device synchronized at both ends of every run."""
    for _ in range(max(3, n // 10)):
        step()
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def ours(dev: devices.ArrayDevice, sizes: list[int], batch: int, classify: bool,
         backend: str, n: int, r: int) -> float:
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.relu())
    built = nn.build(nn.sequential(*layers), seed=0)
    task = tl.train.classification(built) if classify else tl.train.regression(built)
    runner = tl.train.runner(task, dtype="float32", backend=backend,  # type: ignore[arg-type]
                             device=dev)
    runner.set_optimizer(tl.optim.adam(1e-3))
    rng = np.random.default_rng(0)
    x = runner.as_input(rng.standard_normal((batch, sizes[0])))  # moved to the GPU once
    y = runner.as_input(rng.integers(0, sizes[-1], batch) if classify
                        else rng.standard_normal((batch, sizes[-1])))

    def step() -> None:
        _, grads, _ = runner.loss_and_grads(x, y)
        runner.update(grads)

    device = dev.device
    return best_time(step, device.synchronize, n, r)


def torch_step(sizes: list[int], batch: int, classify: bool, n: int, r: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.manual_seed(0)
    mods: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, sizes[0], device="cuda")
    y = (torch.randint(0, sizes[-1], (batch,), device="cuda") if classify
         else torch.randn(batch, sizes[-1], device="cuda"))
    loss_fn = torch.nn.functional.cross_entropy if classify else torch.nn.functional.mse_loss

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return best_time(step, torch.cuda.synchronize, n, r)


def main() -> None:
    """Time every configuration and print the table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--loss", choices=("ce", "mse"), default="ce")
    args = p.parse_args()
    try:
        dev = devices.cuda()
    except devices.DeviceError as missing:
        print(f"bench_cuda: no GPU run: {missing}")
        return
    cupy = dev.xp
    props = cupy.cuda.runtime.getDeviceProperties(dev.device.id)
    print(f"device: {props['name'].decode()}, CuPy {cupy.__version__}")
    classify = args.loss == "ce"
    print(f"{'model':<28}{'eager':>11}{'compiled':>11}{'PyTorch':>11}"
          f"{'eager/PT':>10}{'comp/PT':>9}")
    for name, sizes, batch, n in CASES:
        try:
            e = ours(dev, sizes, batch, classify, "eager", n, args.repeats)
            c = ours(dev, sizes, batch, classify, "compiled", n, args.repeats)
        except Exception as err:  # report and go on: one failing case keeps the others
            print(f"{name:<28}failed: {type(err).__name__}: {err}")
            continue
        t = torch_step(sizes, batch, classify, n, args.repeats)
        pt = f"{t * 1e6:>9.0f}us" if t else "    absent"
        ratios = f"{e / t:>10.2f}{c / t:>9.2f}" if t else f"{'-':>10}{'-':>9}"
        print(f"{name:<28}{e * 1e6:>9.0f}us{c * 1e6:>9.0f}us{pt}{ratios}")


if __name__ == "__main__":
    main()
