"""Losses on typed model outputs, with typed and untyped targets."""

from typing import Literal, assert_type

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.nn import Scalar, Vec
from torchlean.spec.tensor import Tensor
from torchlean.spec.value import Value

reg = nn.build(nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 1))
cls = nn.build(nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 3))
x = tl.tensor([[0.5, 1.0]])

pred = reg.apply(reg.params, x)
target: Tensor[Vec[Literal[1]]] = tl.tensor([[1.0]])
assert_type(nn.mse(pred, target), Tensor[Scalar])
assert_type(nn.mae(pred, target, reduction="sum"), Tensor[Scalar])
assert_type(nn.huber(pred, target, delta=0.5), Tensor[Scalar])
assert_type(nn.bce_with_logits(pred, target), Tensor[Scalar])
assert_type(nn.mse(pred, tl.tensor([[1.0]])), Tensor[Scalar])

logits = cls.apply(cls.params, x)
labels: Tensor[Scalar] = tl.tensor([2])
assert_type(nn.cross_entropy(logits, labels), Tensor[Scalar])
one_hot: Tensor[Vec[Literal[3]]] = tl.tensor([[0, 0, 1]])
assert_type(nn.one_hot_cross_entropy(logits, one_hot), Tensor[Scalar])


def traced_loss(pred: Value[Vec[Literal[1]]], y: Value) -> Value[Scalar]:
    # Any Value kind (tape, graph) works; the result is a Value of the same static shape.
    return nn.mse(pred, y)
