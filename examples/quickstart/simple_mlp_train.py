"""The quickstart: a 2-8-1 ReLU MLP fitted to x0^2 + x1^2 on a 5 x 5 grid.

    python examples/quickstart/simple_mlp_train.py
    python examples/quickstart/simple_mlp_train.py --steps 200 --dtype float --backend eager

Prints the loss before and after training, then probes the trained model on a few
inputs. The same file runs in every field (--dtype) and backend (--backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torchlean as tl
from torchlean import data, nn

samples = data.samples

# 1. Constants
IN_DIM, HIDDEN, OUT_DIM = 2, 8, 1
STEPS, LEARNING_RATE = 200, 0.03
PROBES = [(0.0, 0.0), (0.5, -0.5), (1.0, 1.0)]


def target(x0: Any, x1: Any) -> Any:
    """The function the network learns."""
    return x0 * x0 + x1 * x1


# 2. Model builder
def make_model() -> nn.Sequential[nn.Vec[Any], nn.Vec[Any]]:
    """The architecture: no numbers, just structure."""
    return nn.sequential(nn.linear(IN_DIM, HIDDEN), nn.relu(), nn.linear(HIDDEN, OUT_DIM))


# 3. Task: the model plus its loss convention
def task(seed: int) -> tl.train.Task:
    """A regression task (mean squared error) on the model built from `seed`."""
    return tl.train.regression(nn.build(make_model(), seed=seed))


def fit(runner: tl.train.Runner, cfg: tl.train.RunConfig, rest: list[str]) -> tl.train.FitReport:
    """Fit on the grid and print the report and the probes."""
    # 4. Dataset, in the runner's field
    points = samples.grid2_square(5, dtype=runner.field)
    dataset = tl.data.TensorDataset(points, samples.regression_2to1(points, target))
    # 5. Fit and report
    # Adam divides by a square root, which has no exact value: exact runs use plain SGD.
    exact = runner.field.name == "exact"
    optimizer = tl.optim.sgd(cfg.lr or 0.0625) if exact else tl.optim.adam(cfg.lr or LEARNING_RATE)
    config = tl.train.steps(cfg.steps or STEPS, optimizer)
    report = tl.train.fit_dataset(runner.task, runner, config, dataset)
    print(report.summary())
    runner.eval()
    for x0, x1 in PROBES:
        y = runner.predict([[x0, x1]]).item()
        print(f"probe f({x0:+.2f}, {x1:+.2f}) = {float(y):+.4f}   (target {target(x0, x1):+.4f})")
    if cfg.log:
        report.write(cfg.log)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags and run the fit."""
    return tl.train.run(task, argv, fit, description=__doc__)


if __name__ == "__main__":
    main()
