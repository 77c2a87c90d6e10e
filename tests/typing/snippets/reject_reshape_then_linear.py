"""A linear layer after a reshape to a matrix per example (its input is a vector)."""

from torchlean.spec import nn

model = nn.linear(2, 6) >> nn.reshape(2, 3) >> nn.linear(6, 1)  # expect: operator, var-annotated
