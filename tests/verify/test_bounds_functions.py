"""The function enclosures and relaxation lines CROWN and IBP rely on, against mpmath at
60 significant digits (a reference whose own error, ~1e-60 relative, is far below the
widening of at least one binary64 ulp that every enclosure has)."""

from __future__ import annotations

from collections.abc import Callable

import mpmath as mp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.verify.bounds.functions import SMOOTH, enclose, gelu_enclosure, silu_enclosure
from torchlean.verify.bounds.relaxations import RELAXATION

mp.mp.dps = 60

REAL: dict[str, Callable[[mp.mpf], mp.mpf]] = {
    "tanh": mp.tanh,
    "sigmoid": lambda z: 1 / (1 + mp.exp(-z)),
    "erf": mp.erf,
    "exp": mp.exp,
    "softplus": lambda z: mp.log(1 + mp.exp(z)),
    "expm1": mp.expm1,
    "log": mp.log,
    "log1p": mp.log1p,
    "sqrt": mp.sqrt,
    "square": lambda z: z * z,
    "abs": abs,
    "relu": lambda z: max(z, mp.mpf(0)),
    "gelu": lambda z: z * mp.erfc(-z / mp.sqrt(2)) / 2,
    "silu": lambda z: z / (1 + mp.exp(-z)),
}
DOMAIN = {"log": (1e-6, 50.0), "sqrt": (0.0, 50.0), "log1p": (-0.999, 50.0)}
# the derivatives in closed form (numerical differentiation loses the far tails)
REAL_D: dict[str, Callable[[mp.mpf], mp.mpf]] = {
    "tanh": lambda z: 1 - mp.tanh(z) ** 2,
    "sigmoid": lambda z: mp.exp(-z) / (1 + mp.exp(-z)) ** 2,
    "erf": lambda z: 2 / mp.sqrt(mp.pi) * mp.exp(-z * z),
    "exp": mp.exp,
    "softplus": lambda z: 1 / (1 + mp.exp(-z)),
    "expm1": mp.exp,
    "log": lambda z: 1 / z,
    "log1p": lambda z: 1 / (1 + z),
    "sqrt": lambda z: 1 / (2 * mp.sqrt(z)),
    "square": lambda z: 2 * z,
    "gelu": lambda z: mp.erfc(-z / mp.sqrt(2)) / 2 + z * mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi),
    "silu": lambda z: (1 + z * (1 - 1 / (1 + mp.exp(-z)))) / (1 + mp.exp(-z)),
}


def _finite(x: float) -> bool:
    return bool(np.isfinite(x))


@settings(deadline=None, max_examples=60)
@given(name=st.sampled_from(sorted(SMOOTH)), z=st.floats(-40.0, 40.0))
def test_value_and_derivative_enclosures(name: str, z: float) -> None:
    lo_d, hi_d = DOMAIN.get(name, (-40.0, 40.0))
    z = min(max(z, lo_d), hi_d) if name in DOMAIN else z
    if name in ("log", "sqrt") and z <= 0:
        z = 1e-3
    f = SMOOTH[name]
    lo, hi = enclose(f, np.array([z]))
    v = REAL[name](mp.mpf(z))
    assert mp.mpf(float(lo[0])) <= v <= mp.mpf(float(hi[0]))
    dl, dh = f.deriv(np.array([z]), lo, hi)
    d = REAL_D[name](mp.mpf(z))
    assert mp.mpf(float(dl[0])) <= d <= mp.mpf(float(dh[0]))


@settings(deadline=None, max_examples=40)
@given(name=st.sampled_from(["gelu", "silu"]), z=st.floats(-38.0, 38.0))
def test_gelu_silu_enclosures(name: str, z: float) -> None:
    enc = gelu_enclosure if name == "gelu" else silu_enclosure
    lo, hi = enc(np.array([z]))
    v = REAL[name](mp.mpf(z))
    assert mp.mpf(float(lo[0])) <= v <= mp.mpf(float(hi[0]))


def _interval(name: str, c: float, w: float) -> tuple[float, float]:
    lo, hi = c - w, c + w
    if name in DOMAIN:
        a, b = DOMAIN[name]
        lo = min(max(lo, a), b)
        hi = min(max(hi, lo), b)
    return lo, hi


@settings(deadline=None, max_examples=150)
@given(name=st.sampled_from(sorted(RELAXATION.rules)), c=st.floats(-8.0, 8.0),
       logw=st.floats(-12.0, 1.3), slope=st.floats(-0.5, 0.5))
def test_relaxation_lines_valid_over_the_reals(name: str, c: float, logw: float,
                                               slope: float) -> None:
    lo, hi = _interval(name, c, 10.0**logw)
    at = {"negative_slope": slope} if name == "leaky_relu" else {}
    a_l, b_l, a_u, b_u = (float(v[0]) for v in RELAXATION.rules[name](
        np.array([lo]), np.array([hi]), at))
    f = REAL[name] if name != "leaky_relu" else (
        lambda z: z if z >= 0 else mp.mpf(slope) * z)
    pts = [lo, hi, 0.5 * (lo + hi), 0.0] + list(np.linspace(lo, hi, 41))
    for z in pts:
        if not lo <= z <= hi:
            continue
        zz = mp.mpf(z)
        v = f(zz)
        if _finite(a_l) and _finite(b_l):
            assert mp.mpf(a_l) * zz + mp.mpf(b_l) <= v, (name, lo, hi, z)
        if _finite(a_u) and _finite(b_u):
            assert v <= mp.mpf(a_u) * zz + mp.mpf(b_u), (name, lo, hi, z)


def test_s_shaped_lines_are_the_tight_ones() -> None:
    # auto_LiRPA's lines touch the function: each line (secant, tangent at the midpoint,
    # or tangent through an end) meets tanh / sigmoid in [lo, hi] up to rounding
    for name, f in (("tanh", np.tanh), ("sigmoid", lambda z: 1 / (1 + np.exp(-z)))):
        for lo, hi in ((-2.0, 1.0), (-1.0, 2.0), (-3.0, -1.0), (0.5, 4.0), (-6.0, 0.3)):
            a_l, b_l, a_u, b_u = (float(v[0]) for v in RELAXATION.rules[name](
                np.array([lo]), np.array([hi]), {}))
            z = np.linspace(lo, hi, 200_001)
            v = f(z)
            assert 0 <= np.min(v - (a_l * z + b_l)) < 1e-9, (name, lo, hi)
            assert 0 <= np.min((a_u * z + b_u) - v) < 1e-9, (name, lo, hi)


UNARY_IBP = {"sin": mp.sin, "cos": mp.cos, **{k: v for k, v in REAL.items() if k != "relu"}}


@settings(deadline=None, max_examples=60)
@given(name=st.sampled_from(sorted(UNARY_IBP)), c=st.floats(-30.0, 30.0),
       logw=st.floats(-8.0, 1.5))
def test_ibp_unary_rules_contain_the_real_range(name: str, c: float, logw: float) -> None:
    from torchlean.runtime.graph import trace
    from torchlean.spec import functional as F
    from torchlean.verify import bounds

    lo, hi = _interval(name, c, 10.0**logw)
    if name in ("log",) and lo <= 0:
        return
    g = trace(lambda p, x: getattr(F, name)(x), {"x": (1, 1)}, {}, "float")
    b = bounds.ibp(g, {}, np.array([[lo]]), np.array([[hi]]))
    f = UNARY_IBP[name]
    for z in np.linspace(lo, hi, 101):
        v = f(mp.mpf(float(z)))
        assert mp.mpf(float(b.lower[0, 0])) <= v <= mp.mpf(float(b.upper[0, 0])), (name, z)


def test_ibp_softmax_family_contains_values() -> None:
    from torchlean.runtime.graph import trace
    from torchlean.spec import functional as F
    from torchlean.verify import bounds

    rng = np.random.default_rng(3)
    for name in ("softmax", "log_softmax"):
        g = trace(lambda p, x, op=name: getattr(F, op)(x, -1), {"x": (1, 4)}, {}, "float")
        lo = rng.normal(size=(1, 4)) * 3
        hi = lo + rng.uniform(0, 2, size=(1, 4))
        b = bounds.ibp(g, {}, lo, hi)
        for x in rng.uniform(lo, hi, size=(200, 1, 4)):
            xs = [mp.mpf(float(v)) for v in x[0]]
            total = sum(mp.exp(v) for v in xs)
            for i, v in enumerate(xs):
                y = mp.exp(v) / total if name == "softmax" else v - mp.log(total)
                assert mp.mpf(float(b.lower[0, i])) <= y <= mp.mpf(float(b.upper[0, i]))
