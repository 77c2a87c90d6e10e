"""Two activations at different widths in one sequential, with a mismatch between them."""

from torchlean.spec import nn

model = nn.sequential(nn.linear(2, 8), nn.relu(), nn.linear(4, 3), nn.relu())  # expect: misc
