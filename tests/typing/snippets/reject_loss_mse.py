"""mse between a model output and a target of another width."""

from typing import Literal

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.nn import Vec
from torchlean.spec.tensor import Tensor

net = nn.build(nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 1))
pred = net.apply(net.params, tl.tensor([[1.0, 2.0]]))
target: Tensor[Vec[Literal[2]]] = tl.tensor([[1.0, 2.0]])
loss = nn.mse(pred, target)  # expect: misc
