"""A residual block must map its input shape to itself."""

from torchlean.spec import nn

block = nn.residual(nn.linear(8, 4) >> nn.relu())  # expect: misc
