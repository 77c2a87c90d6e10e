"""Bench: IBP and CROWN (outward rounded, verify.bounds) on a 784-100-100-10 ReLU MLP,
batch of 100 inputs, eps = 0.01, against a plain NumPy float64 CROWN without outward
rounding (written here: the price of soundness) and a plain IBP.

    python bench/bench_bounds.py [--repeat 5]

auto_LiRPA is compared (widths and times, in its own environment) by
bench/bench_tightness.py.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from torchlean.spec import nn
from torchlean.verify import bounds

Array = np.ndarray[Any, Any]


def plain_ibp(ws: list[tuple[Array, Array]], lo: Array, hi: Array) -> tuple[Array, Array]:
    """Unsound float64 IBP (no outward rounding)."""
    for k, (w, b) in enumerate(ws):
        mid, rad = (lo + hi) / 2, (hi - lo) / 2
        c, r = mid @ w.T + b, rad @ np.abs(w).T
        lo, hi = c - r, c + r
        if k < len(ws) - 1:
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
    return lo, hi


def plain_crown(ws: list[tuple[Array, Array]], lo: Array, hi: Array) -> tuple[Array, Array]:
    """Unsound float64 CROWN (adaptive ReLU slopes), same structure as verify.bounds."""
    pre: list[tuple[Array, Array]] = []

    def back(k: int, spec: Array) -> Array:  # lower bounds of spec . z_k
        w, b = ws[k]
        lam = spec @ w
        const = spec @ b
        for i in range(k - 1, -1, -1):
            zl, zh = pre[i]
            width = np.where(zh > zl, zh - zl, 1.0)
            up = np.where(zl >= 0, 1.0, np.where(zh <= 0, 0.0, zh / width))
            bu = np.where((zl < 0) & (zh > 0), -up * zl, 0.0)
            lw = np.where(zl >= 0, 1.0, np.where(zh <= 0, 0.0, (zh >= -zl).astype(float)))
            pos, neg = np.maximum(lam, 0), np.minimum(lam, 0)
            new = pos * lw[:, None] + neg * up[:, None]
            const = const + np.einsum("bmn,bn->bm", neg, bu)
            w, b = ws[i]
            lam, const = new @ w, const + new @ b
        mid, rad = (lo + hi) / 2, (hi - lo) / 2
        return const + np.einsum("bmn,bn->bm", lam, mid) - np.einsum("bmn,bn->bm",
                                                                      np.abs(lam), rad)

    batch = lo.shape[0]
    for k in range(len(ws)):
        n = ws[k][0].shape[0]
        eye = np.broadcast_to(np.concatenate([np.eye(n), -np.eye(n)]), (batch, 2 * n, n))
        low = back(k, eye)
        pre.append((low[:, :n], -low[:, n:]))
    return pre[-1]


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    net = nn.build(nn.linear(784, 100) >> nn.relu() >> nn.linear(100, 100) >> nn.relu()
                   >> nn.linear(100, 10), seed=0)
    ws = [(net.params[f"{i}.weight"].numpy(), net.params[f"{i}.bias"].numpy())
          for i in (0, 2, 4)]
    x = np.random.default_rng(0).uniform(size=(100, 784))
    lo, hi = x - 0.01, x + 0.01
    g = bounds.as_graph(net, net.params, lo.shape)
    rows = [
        ("IBP sound", lambda: bounds.ibp(g, net.params, lo, hi)),
        ("IBP plain float64", lambda: plain_ibp(ws, lo, hi)),
        ("CROWN sound", lambda: bounds.crown(g, net.params, lo, hi)),
        ("CROWN plain float64", lambda: plain_crown(ws, lo, hi)),
    ]
    t = {name: best(fn, args.repeat) for name, fn in rows}
    for name, sec in t.items():
        print(f"{name:<22} {sec * 1e3:9.2f} ms")
    print(f"IBP   sound / plain: {t['IBP sound'] / t['IBP plain float64']:.2f}x")
    print(f"CROWN sound / plain: {t['CROWN sound'] / t['CROWN plain float64']:.2f}x")
    sound = bounds.crown(g, net.params, lo, hi)
    plo, phi = plain_crown(ws, lo, hi)
    print(f"max |sound - plain| CROWN bound: "
          f"{max(np.abs(sound.lower - plo).max(), np.abs(sound.upper - phi).max()):.3g}; "
          f"mean width {np.mean(sound.width):.4g}")


if __name__ == "__main__":
    main()
