"""one-hot cross-entropy with targets for another number of classes."""

from typing import Literal

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.nn import Vec
from torchlean.spec.tensor import Tensor

net = nn.build(nn.linear(2, 10))
logits = net.apply(net.params, tl.tensor([[1.0, 2.0]]))
targets: Tensor[Vec[Literal[3]]] = tl.tensor([[0.0, 1.0, 0.0]])
loss = nn.one_hot_cross_entropy(logits, targets)  # expect: misc
