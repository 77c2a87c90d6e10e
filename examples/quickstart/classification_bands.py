"""Classification: tell vertical from horizontal bands in 1 x 4 x 4 images.

    python examples/quickstart/classification_bands.py --steps 150

The six training images are TorchLean's band fixtures; the probes are the bands at
offsets 1 and 2, each printed with the predicted class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchlean as tl
from torchlean import data, nn

samples = data.samples

STEPS, LEARNING_RATE = 150, 0.05


def task(seed: int) -> tl.train.Task:
    """Cross entropy on logits of a 16-8-2 MLP over the flattened image."""
    model = nn.flatten() >> nn.linear(16, 8) >> nn.relu() >> nn.linear(8, 2)
    return tl.train.classification(nn.build(model, seed=seed))


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
