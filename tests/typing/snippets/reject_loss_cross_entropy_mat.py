"""cross_entropy on a model whose output is a matrix per example, not class logits."""

import torchlean as tl
from torchlean.spec import nn

net = nn.build(nn.linear(2, 6) >> nn.reshape(2, 3))
logits = net.apply(net.params, tl.tensor([[1.0, 2.0]]))
loss = nn.cross_entropy(logits, tl.tensor([1]))  # expect: arg-type
