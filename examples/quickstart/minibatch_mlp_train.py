"""Minibatches and epochs: the quickstart MLP on a 9 x 9 grid through a seeded loader.

    python examples/quickstart/minibatch_mlp_train.py --epochs 30 --batch-size 16

Each epoch visits every point once, in an order that is a pure function of the seed
and the epoch, so the run reproduces exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchlean as tl
from torchlean import data, nn

samples = data.samples

EPOCHS, BATCH_SIZE, LEARNING_RATE = 30, 16, 0.03


def task(seed: int) -> tl.train.Task:
    """The 2-16-1 regression task on the model built from `seed`."""
    model = nn.linear(2, 16) >> nn.tanh() >> nn.linear(16, 1)
    return tl.train.regression(nn.build(model, seed=seed))


def fit(runner: tl.train.Runner, cfg: tl.train.RunConfig, rest: list[str]) -> tl.train.FitReport:
    """Fit for some epochs of minibatches and print the report."""
    points = samples.grid2_square(9, dtype=runner.field)
    targets = samples.regression_2to1(points, samples.affine2(0.5, -1.0, 0.25))
    dataset = tl.data.TensorDataset(points, targets)
    loader = tl.data.batch_loader(dataset, cfg.batch_size, seed=cfg.seed)
    config = tl.train.epochs(cfg.epochs, tl.optim.adam(cfg.lr))
    report = tl.train.fit_loader(
        runner.task, runner, config, loader, eval_batches=[dataset.batch(range(len(dataset)))]
    )
    print(report.summary())
    print(f"{len(loader)} batches per epoch, {len(report.epoch_losses)} epochs")
    runner.eval()
    y = tl.train.to_float(runner.predict([[0.5, 0.5]]))
    print(f"probe f(+0.50, +0.50) = {y:+.4f}   (target {0.5 * 0.5 - 0.5 + 0.25:+.4f})")
    if cfg.log:
        report.write(cfg.log)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags and run the fit."""
    flags = tl.train.Flags(epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE, log=True)
    return tl.train.run(task, argv, fit, flags=flags, description=__doc__)


if __name__ == "__main__":
    main()
