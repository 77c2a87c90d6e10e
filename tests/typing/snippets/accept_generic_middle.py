"""Shape-preserving layers between shape-changing ones, in sequential and in >> chains."""

from typing import Literal, assert_type

from torchlean.spec import nn
from torchlean.spec.nn import SameShape, Sequential, Vec

L1 = Literal[1]
L2 = Literal[2]
L8 = Literal[8]

a = nn.sequential(nn.linear(2, 8), nn.relu(), nn.dropout(0.1), nn.linear(8, 1))
assert_type(a, Sequential[Vec[L2], Vec[L1]])
b = nn.sequential(nn.relu(), nn.linear(2, 8), nn.tanh(), nn.gelu(), nn.silu(), nn.linear(8, 1))
assert_type(b, Sequential[Vec[L2], Vec[L1]])
c = nn.sequential(nn.linear(2, 8), nn.leaky_relu(0.2), nn.sigmoid(), nn.softmax(), nn.log_softmax())
assert_type(c, Sequential[Vec[L2], Vec[L8]])

acts = nn.sequential(nn.relu(), nn.dropout(0.5))
assert_type(acts, SameShape)
assert_type(nn.relu() >> nn.relu(), SameShape)
d = nn.linear(2, 8) >> acts >> nn.linear(8, 1)
assert_type(d, Sequential[Vec[L2], Vec[L1]])
e = nn.sequential(nn.linear(2, 8), acts, nn.linear(8, 1))
assert_type(e, Sequential[Vec[L2], Vec[L1]])
f = nn.relu() >> nn.linear(8, 1)
assert_type(f, Sequential[Vec[L8], Vec[L1]])

# Several shape-preserving layers at different widths in one call (each position has its
# own phantom signature, see torchlean.spec.nn.positions).
g = nn.sequential(nn.linear(2, 8), nn.relu(), nn.linear(8, 3), nn.relu())
assert_type(g, Sequential[Vec[L2], Vec[Literal[3]]])
h = nn.sequential(
    nn.relu(), nn.linear(2, 8), nn.relu(), nn.linear(8, 3), nn.tanh(), nn.linear(3, 1), nn.sigmoid()
)
assert_type(h, Sequential[Vec[L2], Vec[L1]])
