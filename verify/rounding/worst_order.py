"""Adversarial summation orders: admissible binary32 executions that push the error up.

A `float32_any_order` bound must hold for every order of every sum. Sampling inputs and
running BLAS measures one benign order, so bound / observed against it mixes the bound's
slack with BLAS's luck. This module runs a dense network with every dot product a
binary32 left fold in an order chosen greedily, step by step, to make each rounding
error point the way that grows one chosen output's error. The result is the error of an
execution the any-order mode admits, so it is a lower bound on the supremum that mode's
bound must cover, and bound / this error measures the bound's own slack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DenseLayer", "greedy_fold", "adversarial_forward", "adversarial_input",
           "reference_forward"]

Arr = np.ndarray[Any, Any]


@dataclass(frozen=True)
class DenseLayer:
    """y = W x + b, then ReLU when `relu`; W is (out, in), b is (out,), both binary32."""

    weight: Arr
    bias: Arr
    relu: bool

    def __post_init__(self) -> None:
        w, b = np.asarray(self.weight), np.asarray(self.bias)
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"DenseLayer: weight {w.shape} and bias {b.shape} do not match "
                             "(want (out, in) and (out,))")


def _check_point(layers: Sequence[DenseLayer], n: int, where: str) -> None:
    """Refuse a network whose layers do not chain, or a point of the wrong length."""
    if not layers:
        raise ValueError(f"{where}: no layers")
    sizes = [layer.weight.shape for layer in layers]
    for i in range(1, len(sizes)):
        if sizes[i][1] != sizes[i - 1][0]:
            raise ValueError(f"{where}: layer {i} takes {sizes[i][1]} inputs but layer "
                             f"{i - 1} gives {sizes[i - 1][0]}")
    if n != sizes[0][1]:
        raise ValueError(f"{where}: the point has {n} coordinates, layer 0 takes {sizes[0][1]}")


def greedy_fold(terms: Arr, direction: Arr) -> tuple[Arr, Arr]:
    """Binary32 left folds of each row of `terms` (float32, shape (m, n)), each row in the
    order that, step by step, adds the unused term whose rounding error is largest along
    that row's `direction` (+1 or -1): an admissible order chosen to err one way.

    Returns the sums (m,) and the orders (m, n): row i's sum is the zero-seeded binary32
    left fold of terms[i, order[i]].
    """
    t32 = np.asarray(terms, dtype=np.float32)
    if t32.ndim != 2 or np.shape(direction) != (t32.shape[0],):
        raise ValueError(f"greedy_fold: terms {t32.shape} and direction {np.shape(direction)} "
                         "do not match (want (m, n) and (m,))")
    m, n = t32.shape
    t64 = t32.astype(np.float64)
    d = np.asarray(direction, dtype=np.float64)[:, None]
    rows = np.arange(m)
    s = np.zeros(m, dtype=np.float32)
    unused = np.ones((m, n), dtype=bool)
    order = np.empty((m, n), dtype=np.intp)
    for step in range(n):
        # s + t is exact in binary64 unless the exponents are > 29 apart, where the
        # binary32 rounding error is tiny anyway: the choice is a heuristic, the fold
        # itself (s + t in binary32) is the execution.
        rounded = (s[:, None] + t32).astype(np.float64)
        gain = np.where(unused, (rounded - (s.astype(np.float64)[:, None] + t64)) * d, -np.inf)
        k = np.argmax(gain, axis=1)
        s = s + t32[rows, k]
        unused[rows, k] = False
        order[:, step] = k
    return s, order


def reference_forward(layers: Sequence[DenseLayer], x: Arr) -> list[Arr]:
    """The binary64 pre-activations of every layer at the point `x` (a vector)."""
    h = np.asarray(x, dtype=np.float64)
    pre: list[Arr] = []
    for layer in layers:
        z = layer.weight.astype(np.float64) @ h + layer.bias.astype(np.float64)
        pre.append(z)
        h = np.maximum(z, 0.0) if layer.relu else z
    return pre


def adversarial_forward(layers: Sequence[DenseLayer], x: Arr, output: int, sign: int) -> Arr:
    """The binary32 outputs at `x` when every dot product is a `greedy_fold` steered to
    move output `output` in the direction `sign` (+1 or -1) away from the real value.

    Each neuron's direction is `sign` times the sign of d output / d neuron along the
    binary64 reference pass (through its ReLU pattern); products are rounded binary32
    products and the bias is added after the fold, as the graph's ops do.
    """
    if sign not in (1, -1):
        raise ValueError(f"adversarial_forward: sign must be +1 or -1, got {sign!r}")
    _check_point(layers, np.size(x), "adversarial_forward")
    directions = [np.where(c >= 0, 1.0, -1.0) for c in _sensitivity(layers, x, output, sign)]
    h = np.asarray(x, dtype=np.float32)
    for layer, d in zip(layers, directions, strict=True):
        products = layer.weight.astype(np.float32) * h[None, :]
        z = greedy_fold(products, d)[0] + layer.bias.astype(np.float32)
        h = np.maximum(z, np.float32(0)) if layer.relu else z
    return h


def _sensitivity(layers: Sequence[DenseLayer], x: Arr, output: int, sign: int) -> list[Arr]:
    """sign * d output / d pre-activation of every layer, along the binary64 pass at x."""
    n_out = layers[-1].weight.shape[0]
    if not 0 <= output < n_out:
        raise ValueError(f"output {output} is not in [0, {n_out})")
    pre = reference_forward(layers, x)
    sens = np.zeros(n_out)
    sens[output] = float(sign)
    out: list[Arr] = [sens]
    for i in range(len(layers) - 1, 0, -1):
        sens = layers[i].weight.astype(np.float64).T @ sens
        sens = sens * (pre[i - 1] > 0) if layers[i - 1].relu else sens
        out.append(sens)
    out.reverse()
    return out


def adversarial_input(layers: Sequence[DenseLayer], lo: Arr, hi: Arr, output: int, sign: int,
                      candidates: int = 64, seed: int = 0) -> Arr:
    """A binary32 point of the box [lo, hi] chosen so that the first layer's fixed-order
    (`ieee32exec`) left folds round, step by step, the way that moves output `output`
    in the direction `sign` away from the real value.

    The first layer's error is exactly the sum of its product and addition rounding
    errors, and input k only enters from fold step k on, so the coordinates are chosen in
    order: each the best of `candidates` values (the box ends, the centre and random
    points) for the sensitivity-weighted rounding of that step, given the partial sums
    the earlier choices fixed.
    """
    lo32, hi32 = np.asarray(lo, dtype=np.float32), np.asarray(hi, dtype=np.float32)
    if lo32.shape != hi32.shape or lo32.ndim != 1 or np.any(lo32 > hi32):
        raise ValueError(f"adversarial_input: want a box lo <= hi of vectors, got shapes "
                         f"{lo32.shape} and {hi32.shape}")
    if candidates < 3:
        raise ValueError(f"adversarial_input: candidates must be >= 3, got {candidates}")
    if sign not in (1, -1):
        raise ValueError(f"adversarial_input: sign must be +1 or -1, got {sign!r}")
    _check_point(layers, lo32.size, "adversarial_input")
    centre = ((lo32.astype(np.float64) + hi32) / 2).astype(np.float32)
    weight = layers[0].weight.astype(np.float32)
    c = _sensitivity(layers, centre, output, sign)[0]
    rng = np.random.default_rng(seed)
    s = np.zeros(weight.shape[0], dtype=np.float32)
    x = np.empty_like(centre)
    for k in range(lo32.size):
        draws = lo32[k] + (hi32[k] - lo32[k]) * rng.random(candidates - 3)
        cand = np.concatenate([[lo32[k], hi32[k], centre[k]], draws]).astype(np.float32)
        cand = np.clip(cand, lo32[k], hi32[k])
        w = weight[:, k]
        p = cand[:, None] * w[None, :]  # rounded binary32 products, (candidates, out)
        s_new = s[None, :] + p
        p64 = p.astype(np.float64)
        err = (p64 - cand.astype(np.float64)[:, None] * w.astype(np.float64)[None, :]) + (
            s_new.astype(np.float64) - (s.astype(np.float64)[None, :] + p64))
        best = int(np.argmax(err @ c))
        x[k], s = cand[best], s_new[best]
    return x
