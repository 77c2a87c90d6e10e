"""A well-formed residual block whose output does not fit the next layer."""

from torchlean.spec import nn

block = nn.residual(nn.linear(8, 8) >> nn.relu())
model = nn.linear(2, 8) >> block >> nn.linear(4, 1)  # expect: arg-type
