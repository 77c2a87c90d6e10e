"""The known trap: a generic layer between two mismatched layers inside sequential."""

from torchlean.spec import nn

model = nn.sequential(nn.linear(2, 7), nn.relu(), nn.linear(8, 1))  # expect: misc
