"""One model's output fed to another whose input width differs."""

import torchlean as tl
from torchlean.spec import nn

encoder = nn.build(nn.linear(2, 8) >> nn.relu())
head = nn.build(nn.linear(4, 1))
h = encoder.apply(encoder.params, tl.tensor([[1.0, 2.0]]))
y = head.apply(head.params, h)  # expect: arg-type
