"""The demos behind the `torchlean` command (the quickstart flow, in brief)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import nn, optim, train
from .runtime.data.dataset import TensorDataset
from .spec.tensor import tensor

__all__ = ["mlp"]


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
        config = train.steps(cfg.steps or 200, optim.adam(cfg.lr or 0.03), log_every=0)
        report = train.fit_dataset(runner.task, runner, config, data)
        print(report.summary())
        if cfg.log:
            report.write(cfg.log)
        return report

    return train.run(task, argv, fit, description="Fit the quickstart MLP.")
