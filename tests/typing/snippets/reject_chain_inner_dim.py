"""A >> chain whose inner widths differ, with a generic activation in between."""

from torchlean.spec import nn

model = nn.linear(2, 7) >> nn.relu() >> nn.linear(8, 1)  # expect: arg-type
