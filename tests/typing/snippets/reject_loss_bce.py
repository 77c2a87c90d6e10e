"""bce_with_logits between outputs and targets of different shape types."""

import torchlean as tl
from torchlean.spec import nn

net = nn.build(nn.linear(2, 1))
logits = net.apply(net.params, tl.tensor([[1.0, 2.0]]))
targets = nn.shaped(tl.tensor([[1.0, 0.0]]), 2)
loss = nn.bce_with_logits(logits, targets)  # expect: misc
