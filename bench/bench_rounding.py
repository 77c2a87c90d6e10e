"""Tightness and cost of verify.rounding on the 784-256-256-10 ReLU MLP
(run: python bench/bench_rounding.py [samples], default 10^4; `--cost` prints the cost
figure alone, in seconds instead of a minute).

Weights are random normal with std 1/sqrt(fan_in) (trained scale), the box has radius 0.01
around a random point in [0, 1]^784. Observed error: ieee32exec (and native NumPy float32)
against a binary64 reference; the reference's own error is bounded by this module with
u = 2^-53 in any-order mode and subtracted, so each figure is a lower bound of the true
observed error. Prints bound / max observed and bound time / one forward pass, for both
real-value enclosures (zonotope, the default, and interval).

Random points show typical rounding (errors that grow like sqrt(n) and cancel); a bound
must cover the worst case. So it also measures the errors of executions steered by
`verify.worst_order`, for each output and sign: in ieee32exec, points of the box whose
first-layer roundings are chosen to err one way (run by the ieee32exec executor itself);
in any-order, dot products folded in greedily chosen orders at the box's centre. Both are
admissible executions, so bound / their error is the bound's own slack.
"""

from __future__ import annotations

import os

# One BLAS thread unless the caller says otherwise: on a shared 2-core machine OpenBLAS's
# second thread spins waiting for a core, and the bound's time (not the forward's, which
# calls no BLAS) then measures the machine's load, not the bound. Set before NumPy loads.
BLAS_THREADS = os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402

import numpy as np  # noqa: E402

from torchlean.spec import nn, tensor  # noqa: E402
from torchlean.verify.rounding import error_bound, error_bound_at  # noqa: E402
from torchlean.verify.rounding.worst_order import (  # noqa: E402
    DenseLayer,
    adversarial_forward,
    adversarial_input,
    reference_forward,
)

ROUNDS = 5  # interleaved timing rounds for the cost figure


def _model() -> tuple[object, dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray,
                      np.random.Generator]:
    """The MLP, its weights, the box's centre and ends, and the generator that drew them
    (the sample points continue its stream)."""
    rng = np.random.default_rng(0)
    sizes = [784, 256, 256, 10]
    layers: list[object] = []
    for i in range(3):
        layers += [nn.linear(sizes[i], sizes[i + 1])] + ([nn.relu()] if i < 2 else [])
    net = nn.build(nn.sequential(*layers), seed=0, dtype="ieee32exec")
    params = {}
    for k, v in net.params.items():
        fan_in = v.shape[-1] if k.endswith("weight") else 1
        std = 1 / np.sqrt(fan_in) if k.endswith("weight") else 0.01
        params[k] = rng.normal(0, std, v.shape).astype(np.float32)
    x0 = rng.random(784).astype(np.float32)
    r = np.float32(0.01)
    return net, params, x0, x0 - r, x0 + r, rng


def main(samples: int) -> None:
    net, params, x0, lo, hi, rng = _model()
    sizes = [784, 256, 256, 10]
    rep, t_bound = {}, {}
    error_bound(net, params, (lo, hi), attribute=False)  # warm-up: first-call costs
    for enc in ("zonotope", "interval"):
        for method in ("affine", "elementwise"):
            for m in ("ieee32exec", "float32_any_order"):
                t = time.perf_counter()
                rep[m, method, enc] = error_bound(net, params, (lo, hi), m, attribute=False,
                                                  method=method, enclosure=enc)
                t_bound[m, method, enc] = time.perf_counter() - t
    ref_err = error_bound(net, params, (lo, hi), "float32_any_order", attribute=False,
                          u=2.0**-53, method="elementwise").bound
    pts = np.clip((lo + (hi - lo) * rng.random((samples, 784))).astype(np.float32), lo, hi)
    p_exec = {k: tensor(v, dtype="ieee32exec") for k, v in params.items()}
    one = tensor(pts[:1], dtype="ieee32exec")
    t_fwd = min(timeit.repeat(lambda: net.apply(p_exec, one), number=1, repeat=5))
    fl = net.apply({k: tensor(v, dtype="ieee32exec") for k, v in params.items()},
                   tensor(pts, dtype="ieee32exec")).numpy().astype(np.float64)

    def native(dtype: type) -> np.ndarray:
        h = pts.astype(dtype)
        for i in range(3):
            h = h @ params[f"{2 * i}.weight"].astype(dtype).T + params[f"{2 * i}.bias"]
            h = np.maximum(h, 0) if i < 2 else h
        return h.astype(np.float64)

    ref = native(np.float64)
    obs32 = max(float(np.max(np.abs(fl - ref))) - ref_err, 0.0)
    obs_native = max(float(np.max(np.abs(native(np.float32) - ref))) - ref_err, 0.0)
    dense = [DenseLayer(params[f"{2 * i}.weight"], params[f"{2 * i}.bias"], i < 2)
             for i in range(3)]
    steer = [(k, sgn) for k in range(sizes[-1]) for sgn in (1, -1)]
    t = time.perf_counter()
    x_adv = np.array([adversarial_input(dense, lo, hi, k, sgn) for k, sgn in steer])
    t_steer = time.perf_counter() - t
    fl_adv = net.apply({k: tensor(v, dtype="ieee32exec") for k, v in params.items()},
                       tensor(x_adv, dtype="ieee32exec")).numpy().astype(np.float64)
    ref_adv = np.array([reference_forward(dense, p)[-1] for p in x_adv])
    obs32_adv = max(float(np.max(np.abs(fl_adv - ref_adv))) - ref_err, 0.0)
    t = time.perf_counter()
    any_adv = np.array([adversarial_forward(dense, x0, k, sgn) for k, sgn in steer])
    t_orders = time.perf_counter() - t
    ref0 = reference_forward(dense, x0)[-1]
    obs_any_adv = max(float(np.max(np.abs(any_adv - ref0[None, :]))) - ref_err, 0.0)
    for (mode, method, enc), r in rep.items():
        obs = obs32 if mode == "ieee32exec" else obs_native
        b, tb = r.bound, t_bound[mode, method, enc]
        print(f"{mode:18s} {method:11s} {enc:8s} box bound {b:.3e}  max observed ({samples}) "
              f"{obs:.3e}  ratio {b / obs if obs else float('inf'):.3g}  time {tb:.3f} s "
              f"({tb / t_fwd:.0f}x one forward)")
    for mode, obs, what, took in (
            ("ieee32exec", obs32_adv, "steered points of the box", t_steer),
            ("float32_any_order", obs_any_adv, "greedy fold orders at the centre", t_orders)):
        b = rep[mode, "affine", "zonotope"].bound
        print(f"{mode:18s} {what} ({len(steer)}): max observed {obs:.3e}  "
              f"ratio {b / obs if obs else float('inf'):.3g}  (search {took:.1f} s)")
    pt = error_bound_at(net, params, x0, attribute=False).bound
    print(f"pointwise affine bound at the centre (ieee32exec) {pt:.3e}")
    cost(net, params, lo, hi, pts[:1])


def cost(net: object, params: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray,
         point: np.ndarray) -> None:
    """Prints the default bound's time in ieee32exec and NumPy forwards of `point`."""
    error_bound(net, params, (lo, hi), attribute=False)  # warm-up: first-call costs
    pts = point
    p_exec = {k: tensor(v, dtype="ieee32exec") for k, v in params.items()}
    one = tensor(pts[:1], dtype="ieee32exec")
    w32 = [(params[f"{2 * i}.weight"], params[f"{2 * i}.bias"]) for i in range(3)]

    def native_one() -> None:
        h = pts[:1]
        for i, (w, b) in enumerate(w32):
            h = h @ w.T + b
            h = np.maximum(h, 0) if i < 2 else h

    # The cost figure: the default bound (ieee32exec, affine, zonotope) against one
    # ieee32exec forward of one point and one NumPy float32 forward, timed in interleaved
    # rounds after a warm-up, best of ROUNDS, in wall-clock and in this process's CPU time
    # (the CPU time is steadier on a shared machine).
    walls: dict[str, list[float]] = {"bound": [], "forward": [], "numpy": []}
    cpus: dict[str, list[float]] = {"bound": [], "forward": [], "numpy": []}
    runs = {
        "bound": (lambda: error_bound(net, params, (lo, hi), attribute=False), 1),
        "forward": (lambda: net.apply(p_exec, one), 1),
        "numpy": (native_one, 100),
    }
    for _ in range(ROUNDS):
        for name, (fn, times) in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(times):
                fn()
            walls[name].append((time.perf_counter() - w0) / times)
            cpus[name].append((time.process_time() - c0) / times)
    for clock, ts in (("wall", walls), ("cpu", cpus)):
        tb, tf, tn = (min(ts[k]) for k in ("bound", "forward", "numpy"))
        spread = max(ts["bound"]) / tb
        print(f"[{clock}, best of {ROUNDS}, OPENBLAS_NUM_THREADS={BLAS_THREADS}] "
              f"ieee32exec affine zonotope bound {tb:.3f} s "
              f"(slowest round {spread:.2f}x the best) = {tb / tf:.1f} ieee32exec forwards of "
              f"one point ({tf * 1e3:.2f} ms) = {tb / tn:.0f} NumPy float32 forwards "
              f"({tn * 1e6:.0f} us)")


if __name__ == "__main__":
    if "--cost" in sys.argv[1:]:
        net, params, _, lo, hi, _ = _model()
        cost(net, params, lo, hi, lo[None, :])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
