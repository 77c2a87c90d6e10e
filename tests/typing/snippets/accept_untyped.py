"""The untyped API is unchanged: bare Tensor/Value annotations accept typed values."""

from typing import Any, Literal, assert_type

import torchlean as tl
from torchlean.spec import functional as F
from torchlean.spec import nn
from torchlean.spec.nn import Vec
from torchlean.spec.tensor import Tensor
from torchlean.spec.value import Value


def total(t: Tensor) -> Tensor:
    return F.sum(t * 2 + 1)


def norm(v: Value) -> Value:
    return F.sqrt(F.sum(F.square(v)))


typed: Tensor[Vec[Literal[3]]] = tl.tensor([1.0, 2.0, 3.0])
plain = tl.tensor([1.0, 2.0, 3.0])
total(typed)
total(plain)
norm(typed)
params: dict[str, Tensor] = dict(nn.build(nn.linear(3, 2)).params)
net = nn.build(nn.linear(3, 2))
net.apply(params, plain)
net.apply(params, typed)
nn.forward(net.model, params, {}, plain)
any_net = nn.build(nn.relu())
any_net.apply(any_net.params, typed)
# An untyped concrete prediction matches both loss overloads (Tensor and Value): mypy
# types the loss as Any rather than guess.
assert_type(nn.mse(plain, plain), Any)
