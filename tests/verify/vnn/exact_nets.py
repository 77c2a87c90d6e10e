"""Small ReLU nets evaluated by hand over Fractions, for the engine and certificate tests."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np


def exact_forward(net: Any, x: tuple[Fraction, ...]) -> list[Fraction]:
    """The `nn.build` linear/relu chain `net` at `x` over Fractions (independent of the
    graph, the engine and the checkers)."""
    q = {k: np.vectorize(lambda t: Fraction(float(t)), otypes=[object])(v.numpy())
         for k, v in net.params.items()}
    h = np.array(list(x), dtype=object)
    layers = sorted({k.split(".")[0] for k in q}, key=int)
    for i, name in enumerate(layers):
        h = q[f"{name}.weight"].dot(h) + q[f"{name}.bias"]
        if i + 1 < len(layers):
            h = np.array([max(t, Fraction(0)) for t in h], dtype=object)
    return list(h)
