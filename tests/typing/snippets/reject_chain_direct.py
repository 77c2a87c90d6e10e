"""Two linear layers whose widths differ, composed with >>."""

from torchlean.spec import nn

model = nn.linear(2, 8) >> nn.linear(7, 1)  # expect: arg-type
