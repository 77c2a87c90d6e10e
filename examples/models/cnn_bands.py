"""A tiny CNN tells vertical from horizontal bands in 1 x 4 x 4 images.

    python examples/models/cnn_bands.py --steps 120
    python examples/models/cnn_bands.py --steps 120 --certify DIR

conv2d 1->4 (3x3, padding 1) -> relu -> global average pool -> linear 4->2, trained with
cross entropy on TorchLean's six band images; prints the loss before and after and the
class of each probe (the bands at offsets 1 and 2). With `--certify DIR` it then certifies
each training image robust in the L-inf ball of radius 1/100 (the trained parameters read
exactly as binary64 numbers), writes the certificates to DIR and re-checks each one with
the exact checker.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

import torchlean as tl
from torchlean import data, nn
from torchlean.verify import CheckResult, certify_robustness, check_certificate

samples = data.samples

# 1. Constants
CHANNELS, CLASSES = 4, 2
STEPS, LEARNING_RATE = 120, 0.05
CERTIFY_EPS = "1/100"


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


def trained_model(runner: tl.train.Runner) -> nn.Built[Any, Any]:
    """The model with the runner's parameters, read exactly as binary64 numbers."""
    params = {k: tl.tensor(np.asarray(v.numpy(), dtype=np.float64))
              for k, v in runner.params.items()}
    return nn.build(make_model(), seed=0).with_state(params=params)


def certify(runner: tl.train.Runner, directory: str) -> list[CheckResult]:
    """Certify each band image at radius CERTIFY_EPS around it, write the certificates to
    `directory` and re-check each exactly; print one line per image."""
    net = trained_model(runner)
    dataset = samples.bands()
    images, labels = dataset.batch(range(len(dataset)))
    os.makedirs(directory, exist_ok=True)
    results = []
    for i, (image, label) in enumerate(zip(images.numpy(), labels.numpy(), strict=True)):
        path = os.path.join(directory, f"cert-{i}.json")
        cert = certify_robustness(net, net.params, image, CERTIFY_EPS, int(label), path=path)
        check = check_certificate(path, net, net.params, x=image, eps=CERTIFY_EPS,
                                  label=int(label))
        margin = float(min(cert.margin_lower))
        print(f"image {i} label {int(label)}: certified {check.certified} at eps "
              f"{CERTIFY_EPS} (margin >= {margin:.4g}); checker: {check.reason}")
        results.append(check)
    return results


def fit(runner: tl.train.Runner, cfg: tl.train.RunConfig, rest: list[str]) -> tl.train.FitReport:
    """Fit on the band images, print the report, classify the probes, and certify the
    images when asked (`--certify DIR`)."""
    directory = None
    if rest[:1] == ["--certify"] and len(rest) == 2:
        directory = rest[1]
    elif rest:
        raise SystemExit(f"cnn_bands: unrecognized arguments: {' '.join(rest)} "
                         "(the extra flag is --certify DIR)")
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
    if directory is not None:
        certify(runner, directory)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags (and --certify DIR) and run the fit."""
    flags = tl.train.Flags(steps=STEPS, lr=LEARNING_RATE, log=True)
    return tl.train.run(task, argv, fit, flags=flags, allow_extra=True, description=__doc__)


if __name__ == "__main__":
    main()
