"""Tasks: a built model plus its loss convention (what TorchLean calls `train.regression`).

A task says what a training step minimises and how predictions are scored; it holds no
numbers beyond the model package it wraps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..spec import functional as F
from ..spec import nn
from ..spec.nn import Built
from ..spec.value import Value

__all__ = ["Task", "TaskKind", "regression", "classification", "classification_one_hot"]

TaskKind = Literal["regression", "classification", "classification_one_hot"]
Loss = Callable[[Value, Value], Value]


@dataclass(frozen=True, eq=False)
class Task:
    """A model package and the loss its training minimises.

    `kind` decides the loss and the metrics: regression (mean squared error),
    classification (cross entropy on logits with integer labels), classification_one_hot
    (cross entropy against one-hot rows).
    """

    model: Built[Any, Any]
    kind: TaskKind

    def loss(self, pred: Value, target: Value) -> Value:
        """The training loss of predictions against targets (a scalar)."""
        if self.kind == "regression":
            return nn.mse(pred, target)
        if self.kind == "classification":
            return nn.cross_entropy(pred, target)
        return nn.one_hot_cross_entropy(pred, target)

    def correct(self, pred: Value, target: Value) -> Value:
        """The number of correct predictions (classification kinds only), as a scalar."""
        if self.kind == "regression":
            raise ValueError("correct: a regression task has no accuracy")
        hit = F.argmax_mask(pred, -1)
        if self.kind == "classification":
            target = F.one_hot(target, pred.shape[-1])
        return F.sum(hit * target)


def _check_built(where: str, model: object) -> Built[Any, Any]:
    if not isinstance(model, Built):
        raise TypeError(f"{where}: expected a built model (nn.build(...)), got {model!r}")
    return model


def regression(model: Built[Any, Any]) -> Task:
    """A regression task: mean squared error between predictions and targets."""
    return Task(_check_built("regression", model), "regression")


def classification(model: Built[Any, Any]) -> Task:
    """A classification task: cross entropy of logits against integer labels."""
    return Task(_check_built("classification", model), "classification")


def classification_one_hot(model: Built[Any, Any]) -> Task:
    """A classification task: cross entropy of logits against one-hot target rows."""
    return Task(_check_built("classification_one_hot", model), "classification_one_hot")
