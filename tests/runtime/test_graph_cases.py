"""Shared cases for the compiled-runtime tests: one or more small functions per op of the
table, input generators per domain and field, and bit-level comparison helpers.

The only test here checks that the table covers every registered op; the op and autodiff
test files import the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

import torchlean.spec as S
from torchlean.runtime.graph import trace
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.spec.value import Value

NP = np.ndarray[Any, Any]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class OpCase:
    """A function of Values exercising op `tag`, with its input shapes and domains."""

    tag: str
    fn: Callable[..., Value]
    shapes: tuple[Shape, ...]
    domains: tuple[str, ...]  # "real", "pos" (> 0), "nonzero", "labels" (0..3), "sign"

    @property
    def name(self) -> str:
        return f"{self.tag}:{self.shapes}"


def _c(tag: str, fn: Callable[..., Value], *inputs: tuple[Shape, str]) -> OpCase:
    return OpCase(tag, fn, tuple(s for s, _ in inputs), tuple(d for _, d in inputs))


M = ((3, 4), "real")
POS = ((3, 4), "pos")
UNARY_REAL = ["neg", "abs", "square", "exp", "expm1", "tanh", "sigmoid", "softplus", "erf",
              "gelu", "silu", "sin", "cos", "relu", "step"]
UNARY_POS = ["sqrt", "log", "log1p"]

CASES: list[OpCase] = [
    *[_c(t, getattr(F, t), M) for t in UNARY_REAL],
    *[_c(t, getattr(F, t), POS) for t in UNARY_POS],
    _c("leaky_relu", lambda a: F.leaky_relu(a, 0.125), M),
    _c("leaky_relu", lambda a: F.leaky_relu(a, 0.01), ((2, 3), "real")),
    *[_c(t, getattr(F, t), M, ((4,), "real")) for t in
      ("add", "sub", "mul", "maximum", "minimum", "greater")],
    *[_c(t, getattr(F, t), ((2, 1, 3), "real"), ((4, 1), "real")) for t in
      ("add", "sub", "mul", "maximum", "minimum")],
    _c("div", F.div, M, ((4,), "nonzero")),
    _c("div", F.div, ((), "real"), ((3,), "nonzero")),
    _c("where", lambda c, a, b: F.where(F.step(c), a, b), ((3, 1), "sign"), M, ((4,), "real")),
    _c("sum", lambda a: F.sum(a), ((2, 3, 4), "real")),
    _c("sum", lambda a: F.sum(a, (0, 2), keepdims=True), ((2, 3, 4), "real")),
    _c("sum", lambda a: F.sum(a, 1), ((5, 7), "real")),
    _c("mean", lambda a: F.mean(a, 0), ((3, 5), "real")),
    _c("mean", lambda a: F.mean(a), ((2, 3, 4), "real")),
    _c("max", lambda a: F.max(a, 1, keepdims=True), ((3, 5), "real")),
    _c("max", lambda a: F.max(a), ((2, 3, 4), "real")),
    _c("argmax_mask", lambda a: F.argmax_mask(a, 1), ((3, 5), "real")),
    _c("softmax", lambda a: F.softmax(a, -1), ((3, 5), "real")),
    _c("softmax", lambda a: F.softmax(a, 0), ((3, 5), "real")),
    _c("log_softmax", lambda a: F.log_softmax(a, -1), ((3, 5), "real")),
    _c("log_softmax", lambda a: F.log_softmax(a, 1), ((2, 3, 4), "real")),
    _c("matmul", F.matmul, M, ((4, 5), "real")),
    _c("matmul", F.matmul, ((2, 3, 4), "real"), ((4, 2), "real")),
    _c("matmul", F.matmul, ((4,), "real"), ((4, 3), "real")),
    _c("matmul", lambda a, b: F.matmul(F.swap_last(a), b), ((4, 3), "real"), ((4, 2), "real")),
    _c("transpose", lambda a: F.transpose(a, (2, 0, 1)), ((2, 3, 4), "real")),
    _c("transpose", lambda a: F.exp(a.T), M),
    _c("reshape", lambda a: F.reshape(a, (4, -1)), ((2, 3, 4), "real")),
    _c("reshape", lambda a: F.reshape(F.transpose(a), (12,)), M),
    _c("broadcast_to", lambda a: F.broadcast_to(a, (2, 3, 4)), ((3, 1), "real")),
    _c("concat", lambda a, b, c: F.concat([a, b, c], 1), ((2, 1), "real"), ((2, 3), "real"),
       ((2, 2), "real")),
    _c("slice", lambda a: a[1:, ::2], ((4, 5), "real")),
    _c("slice", lambda a: a[..., 2], ((2, 3, 4), "real")),
    _c("unslice", lambda a: F.apply_unslice(a, (5, 4), [(1, 4, 1), (0, 4, 2)]),
       ((3, 2), "real")),
    _c("one_hot", lambda lab: F.one_hot(lab, 4), ((5,), "labels")),
    # 0-d values (NumPy turns them into scalars, not arrays, along the way)
    *[_c(t, lambda a, t=t: getattr(F, t)(F.exp(a) - 2), ((), "real")) for t in
      ("sigmoid", "softplus", "step", "relu", "abs", "silu", "leaky_relu")],
    _c("where", lambda c, a: F.where(F.greater(c, a), a, c), ((), "real"), ((), "real")),
    # constants of every kind, and pi (which `exact` cannot represent)
    _c("mul", lambda a: a * 0.1 + Fraction(1, 3) - 2 * a, M),
    _c("mul", lambda a: a * F.pi(a), M),
]


def mlp_ce(p: Mapping[str, Value], x: Value, labels: Value) -> Value:
    """A two-layer MLP with softmax cross entropy, written with log_softmax and one_hot."""
    h = F.relu(x @ p["w1"] + p["b1"])
    logits = h @ p["w2"] + p["b2"]
    return -F.sum(F.one_hot(labels, 4) * F.log_softmax(logits, -1)) / x.shape[0]


def mlp_mse(p: Mapping[str, Value], x: Value, y: Value) -> Value:
    """A rational MLP (matmul, add, relu, leaky_relu, square, mean) for the exact field."""
    h = F.leaky_relu(x @ p["w1"] + p["b1"], 0.25)
    out = F.relu(h @ p["w2"] + p["b2"])
    return F.mean(F.square(out - y))


MLP_PARAMS: dict[str, Shape] = {"w1": (5, 6), "b1": (6,), "w2": (6, 4), "b2": (4,)}


# -- inputs ------------------------------------------------------------------------
SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e30, -1e30, 1e-40, 3e-310])


def host_values(rng: np.random.Generator, shape: Shape, domain: str, specials: bool) -> NP:
    """Dyadic values (k/8, exact in every field) of a domain; `specials` mixes in NaN, ±inf,
    ±0, huge and subnormal values (for the float fields)."""
    k = rng.integers(-24, 25, size=shape).astype(np.float64)
    if domain == "labels":
        return rng.integers(0, 4, size=shape).astype(np.float64)
    if domain == "sign":
        return rng.integers(-1, 2, size=shape).astype(np.float64)
    if domain == "pos":
        out = np.abs(k) / 8 + 0.125
    elif domain == "nonzero":
        out = np.where(k == 0, 1.0, k) / 8
    else:
        out = k / 8
    if specials and out.size:
        mask = rng.random(shape) < 0.3
        picks = rng.choice(SPECIALS, size=shape)
        out = np.where(mask, picks, out)
    return np.asarray(out, dtype=np.float64)


def as_layout(a: NP, layout: str) -> NP:
    """`a` in C order ("C"), Fortran order ("F"), or as a non-contiguous view taking every
    other element of a larger array along the last axis ("S")."""
    if layout == "F" and a.ndim >= 1:  # asfortranarray would make a 0-d array 1-d
        return np.asfortranarray(a)
    if layout == "S" and a.ndim >= 1:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return a


def field_tensor(host: NP, field: str, layout: str = "C") -> Tensor:
    """A tensor of `field` holding `host`'s values, with the given NumPy layout."""
    t = S.tensor(host, field)
    if isinstance(t.data, np.ndarray) and t.data.dtype != object:
        return Tensor(as_layout(t.data, layout), t.field)
    return t


# -- comparison ----------------------------------------------------------------------
def same_bits(a: Any, b: Any) -> bool:
    """The same shape and, element by element, the same representation: identical bits
    for binary fields (NaN payloads and signed zeros included), equal Fractions, equal
    interval endpoints."""
    x, y = a.numpy(), b.numpy()
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if x.dtype == object:
        flat_x, flat_y = x.reshape(-1), y.reshape(-1)
        for u, v in zip(flat_x, flat_y, strict=True):
            if hasattr(u, "_mpi_"):
                if u._mpi_ != v._mpi_:
                    return False
            elif type(u) is not type(v) or u != v:
                return False
        return True
    bits = np.dtype(f"u{x.dtype.itemsize}")
    return bool(np.array_equal(np.ascontiguousarray(x).view(bits),
                               np.ascontiguousarray(y).view(bits)))


def call_out(runner: Any, values: Any, name: str | None = "out") -> Any:
    """runner(values), or its output `name`."""
    result = runner(values)
    return result if name is None else result[name]


def run_or_error(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("error", exception type), so errors can be compared too."""
    try:
        return "ok", fn()
    except Exception as e:  # noqa: BLE001  (the test compares the type)
        return "error", type(e)


def test_cases_cover_every_op() -> None:
    """Every registered op has a case, and each case's graph really contains its op."""
    missing = set(S.OPS) - {c.tag for c in CASES}
    assert not missing, f"ops without a compiled==eager case: {sorted(missing)}"
    for case in CASES:
        g = trace(case.fn, {f"a{i}": s for i, s in enumerate(case.shapes)})
        assert case.tag in {n.op for n in g.nodes}, case.name
