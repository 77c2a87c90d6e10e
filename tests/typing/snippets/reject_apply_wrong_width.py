"""An input of the wrong width passed to apply."""

from typing import Literal

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.nn import Vec
from torchlean.spec.tensor import Tensor

net = nn.build(nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 1))
x: Tensor[Vec[Literal[3]]] = tl.tensor([[1.0, 2.0, 3.0]])
y = net.apply(net.params, x)  # expect: arg-type
