"""Dropout in train mode on the compiled backend: the masks are graph inputs drawn each
step from the runner's key, so compiled training gives eager's bits."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime.compiled_backend import dropout_layers
from torchlean.runtime.data.dataset import TensorDataset

GRID = np.linspace(-1, 1, 6)
X = np.array([[a, b] for a in GRID for b in GRID])
Y = np.sin(X[:, :1]) * X[:, 1:]


def model(two: bool) -> Any:
    layers = [tl.nn.linear(2, 16), tl.nn.relu(), tl.nn.dropout(0.25), tl.nn.linear(16, 8),
              tl.nn.relu()]
    if two:
        layers.append(tl.nn.dropout(0.5))
    return tl.nn.sequential(*layers, tl.nn.linear(8, 1))


def fit(dtype: str, backend: str, two: bool, steps: int) -> tl.train.Runner:
    task = tl.train.regression(tl.nn.build(model(two), seed=1))
    r = tl.train.runner(task, dtype=dtype, backend=backend)
    opt = tl.optim.sgd(Fraction(1, 16)) if dtype == "exact" else tl.optim.adam(0.01)
    data = TensorDataset(tl.tensor(X, dtype), tl.tensor(Y, dtype))
    tl.train.fit_dataset(task, r, tl.train.steps(steps, optimizer=opt, log_every=0,
                                                 batch_size=9), data)
    return r


@pytest.mark.parametrize("dtype", ["float", "float32", "ieee32exec"])
@pytest.mark.parametrize("two", [False, True])
def test_compiled_dropout_training_equals_eager_bit_for_bit(dtype: str, two: bool) -> None:
    eager, compiled = fit(dtype, "eager", two, 12), fit(dtype, "compiled", two, 12)
    assert eager.flat.numpy().tobytes() == compiled.flat.numpy().tobytes()


def test_compiled_dropout_exact_training_equals_eager() -> None:
    eager, compiled = fit("exact", "eager", True, 3), fit("exact", "compiled", True, 3)
    assert (eager.flat.numpy() == compiled.flat.numpy()).all()


def test_masks_change_every_step_and_match_eager_predictions() -> None:
    task = tl.train.regression(tl.nn.build(model(True), seed=2))
    runners = {b: tl.train.runner(task, dtype="float", backend=b).train()
               for b in ("eager", "compiled")}
    x = tl.tensor(X[:5], "float")
    outs = {b: r.predict(x).numpy() for b, r in runners.items()}
    assert outs["eager"].tobytes() == outs["compiled"].tobytes()
    for r in runners.values():  # the next step draws other masks
        r.step += 1
    again = {b: r.predict(x).numpy() for b, r in runners.items()}
    assert again["eager"].tobytes() == again["compiled"].tobytes()
    assert again["compiled"].tobytes() != outs["compiled"].tobytes()
    # eval mode: no masks, the same program family without mask inputs
    assert (runners["eager"].eval().predict(x).numpy().tobytes()
            == runners["compiled"].eval().predict(x).numpy().tobytes())


def test_dropout_layers_are_found_by_path() -> None:
    assert dropout_layers(model(True)) == {"2": 0.25, "5": 0.5}
