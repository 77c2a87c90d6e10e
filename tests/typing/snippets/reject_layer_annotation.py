"""A model annotated with the wrong output shape type (mypy reports it at the layer whose
output width disagrees with the annotation)."""

from typing import Literal

from torchlean.spec import nn
from torchlean.spec.nn import Layer, Vec

model: Layer[Vec[Literal[2]], Vec[Literal[3]]] = nn.sequential(
    nn.linear(2, 8),
    nn.relu(),
    nn.linear(8, 1),  # expect: arg-type
)
