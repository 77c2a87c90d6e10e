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
# Exact rationals grow with every step (each update multiplies denominators): an exact
# run takes few steps, and plain SGD, since Adam's square root has no exact value.
# Interval enclosures widen with every step: an interval run stops before they blow up.
EXACT_STEPS, EXACT_LEARNING_RATE, INTERVAL_STEPS = 5, 0.0625, 100
EXACT_WHY = ("exact rationals grow with every step: 5 steps take about a second, 6 about "
             "8 s, 7 about 50 s; Adam needs square roots, which have no exact value, so exact "
             "runs use SGD.")
INTERVAL_WHY = ("interval enclosures widen with every step (about 1.5x a step with Adam): "
                "after 100 steps the loss is known to ~1e-15, after 170 not at all.")
FLAGS = tl.train.Flags(
    steps=STEPS, lr=LEARNING_RATE, log=True,
    by_dtype={
        "exact": (tl.train.Flags(steps=EXACT_STEPS, lr=EXACT_LEARNING_RATE), EXACT_WHY),
        "interval": (tl.train.Flags(steps=INTERVAL_STEPS), INTERVAL_WHY),
    },
)
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
    if runner.field.name == "exact":
        print(f"exact: training with SGD(lr={cfg.lr:g}), not Adam, whose square root has "
              "no exact value")
        optimizer: tl.optim.Optimizer = tl.optim.sgd(cfg.lr)
    else:
        optimizer = tl.optim.adam(cfg.lr)
    config = tl.train.steps(cfg.steps, optimizer)
    report = tl.train.fit_dataset(runner.task, runner, config, dataset)
    print(report.summary())
    runner.eval()
    for x0, x1 in PROBES:
        y = tl.train.to_float(runner.predict([[x0, x1]]))
        print(f"probe f({x0:+.2f}, {x1:+.2f}) = {y:+.4f}   (target {target(x0, x1):+.4f})")
    if cfg.log:
        report.write(cfg.log)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags and run the fit."""
    return tl.train.run(task, argv, fit, flags=FLAGS, description=__doc__)


if __name__ == "__main__":
    main()
