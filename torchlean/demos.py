"""The demos behind the `torchlean` command (the quickstart flow, in brief)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import nn, optim, train
from .runtime.data.dataset import TensorDataset
from .spec.tensor import tensor

__all__ = ["mlp"]


STEPS, LEARNING_RATE = 200, 0.03
# Exact rationals grow with every step (each update multiplies denominators): an exact
# run takes few steps, and plain SGD, since Adam's square root has no exact value.
# Interval enclosures widen with every step: an interval run stops before they blow up.
EXACT_STEPS, EXACT_LEARNING_RATE, INTERVAL_STEPS = 5, 0.0625, 100
EXACT_WHY = ("exact rationals grow with every step: 5 steps take about a second, 6 about "
             "8 s, 7 about 50 s; Adam needs square roots, which have no exact value, so exact "
             "runs use SGD.")
INTERVAL_WHY = ("interval enclosures widen with every step (about 1.5x a step with Adam): "
                "after 100 steps the loss is known to ~1e-15, after 170 not at all.")
FLAGS = train.Flags(
    steps=STEPS, lr=LEARNING_RATE, log=True,
    by_dtype={
        "exact": (train.Flags(steps=EXACT_STEPS, lr=EXACT_LEARNING_RATE), EXACT_WHY),
        "interval": (train.Flags(steps=INTERVAL_STEPS), INTERVAL_WHY),
    },
)


def mlp(argv: Sequence[str]) -> train.FitReport:
    """Fit a 2-8-1 ReLU MLP to x0^2 + x1^2 on a 5x5 grid and print the report."""

    def task(seed: int) -> train.Task:
        model = nn.sequential(nn.linear(2, 8), nn.relu(), nn.linear(8, 1))
        return train.regression(nn.build(model, seed=seed))

    def fit(runner: train.Runner, cfg: train.RunConfig, rest: list[str]) -> train.FitReport:
        axis = np.linspace(-1.0, 1.0, 5)
        x = np.array([[a, b] for a in axis for b in axis])
        data = TensorDataset(
            tensor(x, runner.field), tensor((x**2).sum(1, keepdims=True), runner.field)
        )
        if runner.field.name == "exact":
            print(f"exact: training with SGD(lr={cfg.lr:g}), not Adam, whose square root has "
                  "no exact value")
            optimizer: optim.Optimizer = optim.sgd(cfg.lr)
        else:
            optimizer = optim.adam(cfg.lr)
        config = train.steps(cfg.steps, optimizer, log_every=0)
        report = train.fit_dataset(runner.task, runner, config, data)
        print(report.summary())
        if cfg.log:
            report.write(cfg.log)
        return report

    return train.run(task, argv, fit, flags=FLAGS, prog="torchlean mlp",
                     description="Fit the quickstart's 2-8-1 MLP to x0^2 + x1^2 on a 5x5 grid.")
