"""A small residual CNN tells vertical from horizontal bands in 1 x 8 x 8 images.

    python examples/models/resnet_small.py --steps 100

conv2d 1->C (3x3, padding 1) -> relu -> residual(conv C->C -> relu -> conv C->C) -> relu
-> global average pool -> linear C->2, trained with cross entropy on the band images at
every offset of an 8 x 8 frame. Prints the loss before and after and the class of each
probe: bands of thickness 3 (training bands are 2 thick) at a few offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torchlean as tl
from torchlean import data, nn

samples = data.samples

# 1. Constants
SIZE, THICKNESS = 8, 2
CHANNELS, CLASSES = 6, 2
STEPS, LEARNING_RATE = 100, 0.03
PROBES = [(axis, offset) for axis in samples.BAND_CLASSES for offset in (1, 4)]


# 2. Model builder
def make_model() -> nn.Sequential[nn.Chw[Any, Any, Any], nn.Vec[Any]]:
    """A stem convolution, one residual block (x + conv(relu(conv(x)))), then the mean
    response per channel and a linear read-out."""
    block = (
        nn.conv2d(CHANNELS, CHANNELS, 3, padding=1)
        >> nn.relu()
        >> nn.conv2d(CHANNELS, CHANNELS, 3, padding=1)
    )
    return (
        nn.conv2d(1, CHANNELS, 3, padding=1)
        >> nn.relu()
        >> nn.residual(block)
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
    offsets = range(SIZE - THICKNESS + 1)
    dataset = samples.bands(offsets, height=SIZE, width=SIZE, thickness=THICKNESS,
                            dtype=runner.field)
    config = tl.train.steps(cfg.steps, tl.optim.adam(cfg.lr))
    report = tl.train.fit_dataset(runner.task, runner, config, dataset)
    print(report.summary())
    runner.eval()
    for axis, offset in PROBES:
        image = samples.band_image(axis, offset, height=SIZE, width=SIZE,
                                   thickness=THICKNESS + 1, dtype=runner.field)
        logits = runner.predict(tl.spec.functional.reshape(image, (1, 1, SIZE, SIZE))).numpy()
        guess = int(tl.train.to_floats(logits).reshape(-1).argmax())
        truth = samples.BAND_CLASSES.index(axis)
        print(f"probe {axis}-{offset}-thick -> class {guess} "
              f"({samples.BAND_CLASSES[guess]}), label {truth}")
    if cfg.log:
        report.write(cfg.log)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags and run the fit."""
    flags = tl.train.Flags(steps=STEPS, lr=LEARNING_RATE, log=True)
    return tl.train.run(task, argv, fit, flags=flags, description=__doc__)


if __name__ == "__main__":
    main()
