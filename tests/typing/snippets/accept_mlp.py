"""The tutorial MLP, written with sequential and with >>: both have the same static type."""

from typing import Literal, assert_type

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.nn import Built, Sequential, Vec
from torchlean.spec.tensor import Tensor

L1 = Literal[1]
L2 = Literal[2]

model = nn.sequential(nn.linear(2, 8), nn.relu(), nn.linear(8, 1))
assert_type(model, Sequential[Vec[L2], Vec[L1]])
chained = nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 1)
assert_type(chained, Sequential[Vec[L2], Vec[L1]])
as_layer: nn.Layer[Vec[L2], Vec[L1]] = chained

net = nn.build(model, seed=0)
assert_type(net, Built[Vec[L2], Vec[L1]])

x: Tensor[Vec[L2]] = tl.tensor([[0.5, 1.0]])
y = net.apply(net.params, x)
assert_type(y, Tensor[Vec[L1]])
assert_type(net(x), Tensor[Vec[L1]])
out, buffers = net.apply_with_buffers(net.params, x, mode="train", key=0)
assert_type(out, Tensor[Vec[L1]])
assert_type(buffers, dict[str, Tensor])

# Untyped tensors fit every model: the untyped API keeps working.
z = net.apply(net.params, tl.tensor([[0.5, 1.0]]))
assert_type(z, Tensor[Vec[L1]])
