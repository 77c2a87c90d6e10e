"""Residual blocks that keep the shape, alone and inside larger models."""

from typing import Literal, assert_type

from torchlean.spec import nn
from torchlean.spec.nn import Residual, SameShape, Sequential, Vec

L2 = Literal[2]
L8 = Literal[8]
L1 = Literal[1]

block = nn.residual(nn.linear(8, 8) >> nn.relu() >> nn.linear(8, 8))
assert_type(block, Residual[Vec[L8]])
assert_type(nn.residual(nn.relu()), SameShape)
assert_type(nn.residual(nn.layer_norm(8)), Residual[Vec[L8]])
model = nn.sequential(
    nn.linear(2, 8),
    nn.residual(nn.sequential(nn.layer_norm(8), nn.linear(8, 8), nn.gelu())),
    nn.residual(nn.sequential(nn.layer_norm(8), nn.linear(8, 8), nn.gelu())),
    nn.linear(8, 1),
)
assert_type(model, Sequential[Vec[L2], Vec[L1]])
