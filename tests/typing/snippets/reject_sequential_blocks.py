"""Sub-blocks that are themselves typed sequentials, composed with mismatched widths."""

from torchlean.spec import nn

encoder = nn.sequential(nn.linear(2, 8), nn.relu())
head = nn.sequential(nn.linear(4, 1), nn.sigmoid())
model = nn.sequential(encoder, nn.dropout(0.2), head)  # expect: misc
