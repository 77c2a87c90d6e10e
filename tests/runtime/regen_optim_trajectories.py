"""Regenerate `optim_trajectories.json`: PyTorch's optimizer trajectories, scheduler rates
and clipped gradients, which `test_optim.py` compares TorchLean's optimizers against.

    pip install torch==2.13.0          # the CPU build
    python tests/runtime/regen_optim_trajectories.py    # run from /work/main or anywhere

The fixture holds the inputs too (the problem's data and starting parameters, the
optimizer, schedule and clipping settings, the gradients to clip), so the test reads
every number it uses from one file; when torch is importable the test also reruns the
torch side live through `run_torch_*` below, on the fixture's inputs.

The problem: a small least-squares fit plus a coupled quartic, in float64,

    r    = X @ W + b - Y                                   X: (5, 3), Y: (5, 2)
    loss = 0.5 / 5 * sum(r * r) + 0.5 * sum(A * (T - s)**2) + 0.25 * s**4

with parameters of four shapes: W (3, 2), b (2,), s () and T (2, 2, 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

FIXTURE = Path(__file__).with_name("optim_trajectories.json")
STEPS = 50
CHECKPOINTS = [1, 2, 3, 4, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]

# Each case: the optimizer (TorchLean's name; torch's class is the same optimizer) with
# its keyword arguments, an optional lr schedule, and an optional global-norm clip.
CASES: list[dict[str, Any]] = [
    {"name": "sgd", "optimizer": "sgd", "kwargs": {"lr": 0.05}},
    {"name": "sgd_momentum", "optimizer": "sgd", "kwargs": {"lr": 0.02, "momentum": 0.9}},
    {
        "name": "sgd_nesterov_wd",
        "optimizer": "sgd",
        "kwargs": {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    },
    {
        "name": "sgd_dampening_wd",
        "optimizer": "sgd",
        "kwargs": {"lr": 0.03, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05},
    },
    {"name": "adam", "optimizer": "adam", "kwargs": {"lr": 0.05}},
    {
        "name": "adam_wd_betas_eps",
        "optimizer": "adam",
        "kwargs": {"lr": 0.03, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1},
    },
    {"name": "adam_beta1_large", "optimizer": "adam", "kwargs": {"lr": 0.02, "betas": [0.3, 0.9]}},
    {"name": "adamw", "optimizer": "adamw", "kwargs": {"lr": 0.05, "weight_decay": 0.1}},
    {"name": "rmsprop", "optimizer": "rmsprop", "kwargs": {"lr": 0.01}},
    {
        "name": "rmsprop_centered_momentum_wd",
        "optimizer": "rmsprop",
        "kwargs": {"lr": 0.005, "centered": True, "momentum": 0.5, "weight_decay": 0.01},
    },
    {
        "name": "rmsprop_alpha_momentum",
        "optimizer": "rmsprop",
        "kwargs": {"lr": 0.002, "alpha": 0.9, "momentum": 0.9, "eps": 1e-6},
    },
    {
        "name": "rmsprop_alpha_small_centered",
        "optimizer": "rmsprop",
        "kwargs": {"lr": 0.003, "alpha": 0.45, "centered": True},
    },
    {"name": "adagrad", "optimizer": "adagrad", "kwargs": {"lr": 0.1}},
    {
        "name": "adagrad_decay_wd_init",
        "optimizer": "adagrad",
        "kwargs": {
            "lr": 0.2,
            "lr_decay": 0.01,
            "weight_decay": 0.05,
            "initial_accumulator_value": 0.1,
            "eps": 1e-8,
        },
    },
    {
        "name": "sgd_momentum_step_schedule",
        "optimizer": "sgd",
        "kwargs": {"lr": 0.03, "momentum": 0.9},
        "schedule": {"kind": "step", "step_size": 10, "gamma": 0.5},
    },
    {
        "name": "adam_cosine_warmup",
        "optimizer": "adam",
        "kwargs": {"lr": 0.05},
        "schedule": {"kind": "cosine", "total_steps": 50, "warmup_steps": 5, "min_lr": 0.001},
    },
    {
        "name": "adamw_exponential",
        "optimizer": "adamw",
        "kwargs": {"lr": 0.05, "weight_decay": 0.05},
        "schedule": {"kind": "exponential", "gamma": 0.95},
    },
    {"name": "sgd_clipped", "optimizer": "sgd", "kwargs": {"lr": 0.05}, "clip": 1.0},
    {"name": "adam_clipped", "optimizer": "adam", "kwargs": {"lr": 0.05}, "clip": 0.5},
]

# Schedules compared on their own, over steps 0..STEPS.
SCHEDULES: list[dict[str, Any]] = [
    {"kind": "step", "lr": 0.1, "step_size": 7, "gamma": 0.5},
    {"kind": "step", "lr": 0.3, "step_size": 1, "gamma": 0.9},
    {"kind": "exponential", "lr": 0.1, "gamma": 0.9},
    {"kind": "cosine", "lr": 0.1, "total_steps": 30},
    {"kind": "cosine", "lr": 0.1, "total_steps": 40, "warmup_steps": 5, "min_lr": 0.01},
    {"kind": "cosine", "lr": 0.05, "total_steps": 50, "warmup_steps": 1, "min_lr": 0.001},
]


def make_problem() -> dict[str, Any]:
    """The problem's data and starting parameters (a fixed seed; stored in the fixture)."""
    rng = np.random.default_rng(20240611)
    return {
        "X": rng.standard_normal((5, 3)).tolist(),
        "Y": (3.0 * rng.standard_normal((5, 2))).tolist(),
        "A": rng.uniform(0.5, 2.0, (2, 2, 2)).tolist(),
        "params": {
            "W": (2.0 * rng.standard_normal((3, 2))).tolist(),
            "b": rng.standard_normal(2).tolist(),
            "s": 1.5,
            "T": (3.0 * rng.standard_normal((2, 2, 2))).tolist(),
        },
    }


def make_clip_inputs() -> list[dict[str, Any]]:
    """Gradient mappings and max_norms for the clipping comparison (stored in the fixture)."""
    rng = np.random.default_rng(7)
    grads = {
        "w": rng.standard_normal((4, 3)).tolist(),
        "b": rng.standard_normal(3).tolist(),
        "c": float(rng.standard_normal()),
    }
    return [{"grads": grads, "max_norm": m} for m in (0.1, 1.0, 3.0, 100.0)]


# -- the torch side ----------------------------------------------------------------------
def _import_torch() -> Any:
    """torch, imported only when a torch function runs (typed Any: this is test glue)."""
    import torch

    return torch


def _torch_optimizer(torch: Any, case: dict[str, Any], params: list[Any]) -> Any:
    kwargs = dict(case["kwargs"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    cls = {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    }[case["optimizer"]]
    if case["optimizer"] == "adamw":
        kwargs.setdefault("weight_decay", 1e-2)  # TorchLean's adamw default, PyTorch's too
    return cls(params, foreach=False, **kwargs)  # the single-tensor (for-loop) path


def _torch_scheduler(torch: Any, spec: dict[str, Any], opt: Any) -> Any:
    """PyTorch's scheduler for a schedule spec (the equivalence is in `cosine`'s docstring)."""
    sched = torch.optim.lr_scheduler
    kind = spec["kind"]
    if kind == "step":
        return sched.StepLR(opt, step_size=spec["step_size"], gamma=spec["gamma"])
    if kind == "exponential":
        return sched.ExponentialLR(opt, gamma=spec["gamma"])
    warm, total = spec.get("warmup_steps", 0), spec["total_steps"]
    cosine = sched.CosineAnnealingLR(opt, T_max=total - warm, eta_min=spec.get("min_lr", 0))
    if warm == 0:
        return cosine
    linear = sched.LinearLR(opt, start_factor=1 / (warm + 1), end_factor=1.0, total_iters=warm)
    return sched.SequentialLR(opt, [linear, cosine], milestones=[warm])


def run_torch_case(problem: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """PyTorch's parameters at each checkpoint step for one case."""
    torch = _import_torch()

    f64 = torch.float64
    X, Y, A = (torch.tensor(problem[k], dtype=f64) for k in ("X", "Y", "A"))
    params = {k: torch.tensor(v, dtype=f64, requires_grad=True)
              for k, v in problem["params"].items()}
    opt = _torch_optimizer(torch, case, list(params.values()))
    scheduler = None
    if "schedule" in case:
        scheduler = _torch_scheduler(torch, case["schedule"], opt)
    out: dict[str, Any] = {}
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        W, b, s, T = params["W"], params["b"], params["s"], params["T"]
        r = X @ W + b - Y
        loss = 0.5 / X.shape[0] * (r * r).sum() + 0.5 * (A * (T - s) ** 2).sum() + 0.25 * s**4
        loss.backward()
        if "clip" in case:
            torch.nn.utils.clip_grad_norm_(list(params.values()), case["clip"], foreach=False)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        if step in CHECKPOINTS:
            out[str(step)] = {k: v.detach().numpy().tolist() for k, v in params.items()}
    return out


def run_torch_schedule(spec: dict[str, Any]) -> list[float]:
    """PyTorch's learning rate for the updates after 0, 1, ..., STEPS scheduler steps."""
    torch = _import_torch()

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=spec["lr"])
    scheduler = _torch_scheduler(torch, spec, opt)
    rates = []
    for _ in range(STEPS + 1):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return [float(r) for r in rates]


def run_torch_clip(item: dict[str, Any]) -> dict[str, Any]:
    """`clip_grad_norm_` on one gradient mapping: the clipped gradients and the norm."""
    torch = _import_torch()

    tensors = {}
    for k, v in item["grads"].items():
        p = torch.zeros(np.shape(v), dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(v, dtype=torch.float64)
        tensors[k] = p
    norm = torch.nn.utils.clip_grad_norm_(list(tensors.values()), item["max_norm"], foreach=False)
    return {
        "total_norm": float(norm),
        "grads": {k: p.grad.numpy().tolist() for k, p in tensors.items()},
    }


def main() -> None:
    torch = _import_torch()

    torch.set_num_threads(1)  # one summation order for the reductions
    problem = make_problem()
    clip_inputs = make_clip_inputs()
    fixture = {
        "generated_by": "tests/runtime/regen_optim_trajectories.py",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "steps": STEPS,
        "checkpoints": CHECKPOINTS,
        "problem": problem,
        "cases": [dict(case, torch=run_torch_case(problem, case)) for case in CASES],
        "schedules": [dict(spec, torch=run_torch_schedule(spec)) for spec in SCHEDULES],
        "clip": [dict(item, torch=run_torch_clip(item)) for item in clip_inputs],
    }
    FIXTURE.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} with torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
