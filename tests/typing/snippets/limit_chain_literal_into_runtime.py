"""A known limitation, pinned: a literal width into a run-time-width layer is rejected,
although Vec[Literal[16]] is a Vec[int]. mypy solves the inner call's width from the
expected input type (Literal[16]) and then rejects the int argument. Give the run-time
width a Literal type, or use run-time widths on both sides."""

from torchlean.spec import nn


def chained(n_in: int) -> object:
    return nn.linear(4, 16) >> nn.linear(n_in, 3)  # expect: arg-type


def listed(n_in: int) -> object:
    return nn.sequential(nn.linear(4, 16), nn.linear(n_in, 3))  # expect: arg-type
