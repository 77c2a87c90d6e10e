"""Several shape-preserving layers between mismatched widths, written over several lines."""

from torchlean.spec import nn

model = nn.sequential(  # expect: misc
    nn.linear(2, 8),
    nn.relu(),
    nn.dropout(0.1),
    nn.gelu(),
    nn.layer_norm(7),
    nn.linear(7, 1),
)
