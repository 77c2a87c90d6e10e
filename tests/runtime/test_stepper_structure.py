"""A task and a runner match by structure (layers, parameter names and shapes, task
kind), not by object identity."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime.data.dataset import TensorDataset

X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = np.array([[1.0], [1.0], [2.0]])


def task(hidden: int = 4, seed: int = 0) -> Any:
    net = tl.nn.sequential(tl.nn.linear(2, hidden), tl.nn.relu(), tl.nn.linear(hidden, 1))
    return tl.train.regression(tl.nn.build(net, seed=seed))


def test_two_identical_tasks_fit_together() -> None:
    r = tl.train.runner(task(), dtype="float")
    report = tl.train.fit_dataset(task(seed=3), r, tl.train.steps(3, tl.optim.sgd(0.1), 0),
                                  TensorDataset(tl.tensor(X), tl.tensor(Y)))
    assert report.steps == 3


def test_a_different_structure_is_refused_naming_both() -> None:
    r = tl.train.runner(task(hidden=4), dtype="float")
    with pytest.raises(ValueError, match=r"different model(.|\n)*linear"):
        tl.train.stepper(task(hidden=5), r, tl.optim.sgd(0.1))


def test_a_different_task_kind_is_refused() -> None:
    net = tl.nn.sequential(tl.nn.linear(2, 2))
    r = tl.train.runner(tl.train.regression(tl.nn.build(net, seed=0)), dtype="float")
    with pytest.raises(ValueError, match="regression task"):
        tl.train.stepper(tl.train.classification(tl.nn.build(net, seed=0)), r,
                         tl.optim.sgd(0.1))
