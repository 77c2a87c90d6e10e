"""Adam training steps, eager and compiled, against PyTorch CPU eager in the same run.

    python bench/bench_training.py [--repeats 5] [--profile]

Models (float32): the 2-8-1 ReLU MLP on batch 1 with squared error, and the
784-256-256-10 ReLU MLP on batch 128 with cross entropy. A step is loss, gradients and
the Adam update. Every figure is the best of several timed runs, each of many steps,
with one BLAS/OpenMP thread on both sides: this machine has 2 shared cores, and
multithreaded BLAS timings there are noise. Prints times and the ratios
ours / PyTorch (< 1 is faster than PyTorch). `--profile` instead prints cProfile's top
entries for the eager step of each model.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import torchlean as tl  # noqa: E402
from torchlean import nn  # noqa: E402


def best_times(steps: dict[str, Callable[[], Any]], n: int, repeats: int) -> dict[str, float]:
    """Best mean seconds per call of each step, timed in interleaved rounds.

    Each round times `n` calls of every step in turn, so a slow spell of this shared
    machine falls on all of them alike instead of on whichever ran then.
    """
    for step in steps.values():
        for _ in range(max(3, n // 10)):
            step()
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(n):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    return best


def our_step(sizes: list[int], batch: int, classify: bool, backend: str) -> Callable[[], None]:
    """One training step (loss, gradients, Adam update) of our runner on fixed data."""
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.relu())
    built = nn.build(nn.sequential(*layers), seed=0)
    task = tl.train.classification(built) if classify else tl.train.regression(built)
    runner = tl.train.runner(task, dtype="float32", backend=backend)  # type: ignore[arg-type]
    runner.set_optimizer(tl.optim.adam(1e-3))
    rng = np.random.default_rng(0)
    x = runner.as_input(rng.standard_normal((batch, sizes[0])))
    y = runner.as_input(rng.integers(0, sizes[-1], batch) if classify
                        else rng.standard_normal((batch, sizes[-1])))

    def step() -> None:
        _, grads, _ = runner.loss_and_grads(x, y)
        runner.update(grads)

    return step


def profile(sizes: list[int], batch: int, classify: bool, n: int) -> None:
    """Print cProfile's costliest functions (by own time) over `n` eager steps."""
    import cProfile
    import pstats

    step = our_step(sizes, batch, classify, "eager")
    for _ in range(10):
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        step()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def torch_step(sizes: list[int], batch: int, classify: bool) -> Callable[[], None] | None:
    """PyTorch's eager Adam step on the same model and data shapes; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mods: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,)) if classify else torch.randn(batch, sizes[-1])
    loss_fn = torch.nn.functional.cross_entropy if classify else torch.nn.functional.mse_loss

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def main() -> None:
    """Time every configuration and print the table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="profile the eager steps instead")
    args = p.parse_args()
    cases = [("2-8-1, batch 1", [2, 8, 1], 1, False, 2000),
             ("784-256-256-10, batch 128", [784, 256, 256, 10], 128, True, 30)]
    if args.profile:
        for name, sizes, batch, classify, n in cases:
            print(f"== {name}: {n} eager steps")
            profile(sizes, batch, classify, n)
        return
    print(f"{'model':<28}{'eager':>11}{'compiled':>11}{'PyTorch':>11}"
          f"{'eager/PT':>10}{'comp/PT':>9}{'comp/eager':>11}")
    for name, sizes, batch, classify, n in cases:
        steps = {"eager": our_step(sizes, batch, classify, "eager"),
                 "compiled": our_step(sizes, batch, classify, "compiled")}
        theirs = torch_step(sizes, batch, classify)
        if theirs is not None:
            steps["torch"] = theirs
        times = best_times(steps, n, args.repeats)
        e, c, t = times["eager"], times["compiled"], times.get("torch")
        pt = f"{t * 1e6:>9.0f}us" if t else "    absent"
        ratios = f"{e / t:>10.2f}{c / t:>9.2f}" if t else f"{'-':>10}{'-':>9}"
        print(f"{name:<28}{e * 1e6:>9.0f}us{c * 1e6:>9.0f}us{pt}{ratios}{c / e:>11.2f}")


if __name__ == "__main__":
    main()
