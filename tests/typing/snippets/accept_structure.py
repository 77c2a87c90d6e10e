"""flatten, reshape and the normalisation layers."""

from typing import Any, Literal, assert_type

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.nn import Mat, Reshape, Sequential, Vec
from torchlean.spec.tensor import Tensor

L2 = Literal[2]
L3 = Literal[3]

image_head = nn.flatten() >> nn.linear(784, 10)
assert_type(image_head, Sequential[Any, Vec[Literal[10]]])
assert_type(nn.reshape(2, 3), Reshape[Mat[L2, L3]])
m = nn.linear(4, 6) >> nn.reshape(2, 3) >> nn.softmax()
assert_type(m, Sequential[Vec[Literal[4]], Mat[L2, L3]])
n = nn.linear(4, 6) >> nn.batch_norm(6) >> nn.layer_norm(6) >> nn.reshape(6)
assert_type(n, Sequential[Vec[Literal[4]], Vec[Literal[6]]])

x = nn.shaped(tl.tensor([[1.0, 2.0, 3.0, 4.0]]), 4)
assert_type(x, Tensor[Vec[Literal[4]]])
net = nn.build(m)
assert_type(net.apply(net.params, x), Tensor[Mat[L2, L3]])
