"""A tiny CNN tells vertical from horizontal bands in 1 x 4 x 4 images.

    python examples/models/cnn_bands.py --steps 120

conv2d 1->4 (3x3, padding 1) -> relu -> global average pool -> linear 4->2, trained with
cross entropy on TorchLean's six band images; prints the loss before and after and the
class of each probe (the bands at offsets 1 and 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torchlean as tl
from torchlean import data, nn

samples = data.samples

# 1. Constants
CHANNELS, CLASSES = 4, 2
STEPS, LEARNING_RATE = 120, 0.05


# 2. Model builder
def make_model() -> nn.Sequential[nn.Chw[Any, Any, Any], nn.Vec[Any]]:
    """Edge detectors (the convolution), their mean response per channel, then a linear
    read-out: a vertical band excites different filters than a horizontal one."""
    return (
        nn.conv2d(1, CHANNELS, 3, padding=1)
        >> nn.relu()
        >> nn.global_avg_pool()
        >> nn.linear(CHANNELS, CLASSES)
    )


# 3. Task
def task(seed: int) -> tl.train.Task:
    """Cross entropy of the logits against the integer band labels."""
    return tl.train.classification(nn.build(make_model(), seed=seed))


def fit(runner: tl.train.Runner, cfg: tl.train.RunConfig, rest: list[str]) -> tl.train.FitReport:
    """Fit on the band images, print the report, and classify the probes."""
    dataset = samples.bands(dtype=runner.field)
    config = tl.train.steps(cfg.steps, tl.optim.adam(cfg.lr))
    report = tl.train.fit_dataset(runner.task, runner, config, dataset)
    print(report.summary())
    runner.eval()
    for name, image, label in samples.band_probes(runner.field):
        logits = runner.predict(tl.spec.functional.reshape(image, (1, 1, 4, 4))).numpy()
        guess = int(tl.train.to_floats(logits).reshape(-1).argmax())
        print(f"probe {name:<13} -> class {guess} ({samples.BAND_CLASSES[guess]}), label {label}")
    if cfg.log:
        report.write(cfg.log)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags and run the fit."""
    flags = tl.train.Flags(steps=STEPS, lr=LEARNING_RATE, log=True)
    return tl.train.run(task, argv, fit, flags=flags, description=__doc__)


if __name__ == "__main__":
    main()
