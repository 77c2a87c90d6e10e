"""Sizes known only at run time are typed int and check against each other."""

from typing import Literal, assert_type

from torchlean.spec import nn
from torchlean.spec.nn import Sequential, Vec


def make(hidden: int) -> Sequential[Vec[Literal[2]], Vec[Literal[1]]]:
    return nn.linear(2, hidden) >> nn.relu() >> nn.linear(hidden, 1)


def widths(n_in: int, n_out: int) -> None:
    m = nn.sequential(nn.linear(n_in, 16), nn.relu(), nn.linear(16, n_out))
    assert_type(m, Sequential[Vec[int], Vec[int]])
    # With >>, mypy types the right operand from the expected input type, so the literal 8
    # is read as an int here: accepted, and checked when the model is constructed.
    j = nn.linear(2, n_out) >> nn.linear(8, 1)
    assert_type(j, Sequential[Vec[Literal[2]], Vec[Literal[1]]])
