"""Small ReLU nets for the engine, splitting and certificate tests: built as graphs, and
evaluated by hand over Fractions or in binary64."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from torchlean import nn
from torchlean.verify.bounds import as_graph

Arr = np.ndarray[Any, Any]


def relu_mlp(widths: tuple[int, ...], seed: int) -> tuple[Any, Any]:
    """(graph, params) of a linear/relu chain with layer widths `widths` (no relu after
    the last linear layer), batch axis 1."""
    layers: list[Any] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.linear(a, b), nn.relu()]
    net = nn.build(nn.sequential(*layers[:-1]), seed=seed)
    return as_graph(net, net.params, (1, widths[0])), net.params


def chain_forward(chain: Any, x: Arr) -> tuple[Arr, Arr]:
    """Every ReLU's pre-activation (N, W) concatenated, and the outputs (N, m), of the
    float affine-ReLU `chain` (`alpha_crown.relu_chain`) at the points x (N, n), in
    binary64."""
    h, zs = x, []
    for w, b in zip(chain.weights, chain.biases, strict=True):
        z = h @ w.T + b
        zs.append(z)
        h = np.maximum(z, 0.0)
    return np.concatenate(zs[:-1], axis=1), zs[-1]


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
