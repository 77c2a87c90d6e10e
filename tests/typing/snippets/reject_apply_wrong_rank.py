"""A matrix-per-example input passed to a model on vectors (via the checked helper)."""

import torchlean as tl
from torchlean.spec import nn

net = nn.build(nn.linear(3, 1))
x = nn.shaped(tl.tensor([[[1.0, 2.0, 3.0]]]), 1, 3)
y = net(x)  # expect: arg-type
