"""A mismatch after a leading shape-preserving layer."""

from torchlean.spec import nn

model = nn.sequential(nn.relu(), nn.linear(2, 8), nn.tanh(), nn.linear(4, 1))  # expect: misc
