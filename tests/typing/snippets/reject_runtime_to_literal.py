"""A run-time width feeding a literal one in sequential: mypy cannot prove they are equal."""

from torchlean.spec import nn


def make(hidden: int) -> object:
    return nn.sequential(nn.linear(2, hidden), nn.linear(8, 1))  # expect: misc
