"""The certificate checker's rule table: what the exact checker may do with each op.

`RULES` (a `RuleTable` named "certificate", field "exact") gives every op that depends on
the input one of two kinds of rule, or a refusal whose reason the user sees:

- `Linear`: the op is linear in its input-dependent operands (its other operands are
  constants). The checker bounds it with exact interval arithmetic in midpoint-radius
  form, mid' = L(mid) and rad' = |L|(rad) (both from the op table's exact forward rule),
  and back-substitutes through it with the op table's VJP rule over exact Tensors, which
  is the exact transpose of a linear map. `kind` says how |L| is formed: "positive" ops
  (reshape, slice, concat, sum, mean, add, ...) have only nonnegative coefficients, so
  |L| = L; "sub" adds the radii; "neg" keeps them; "scale" (mul, matmul) and "div" are
  linear in one operand only, the other must be a constant c, and |L| uses |c|.
- `Relaxation`: an elementwise non-linear op f. Its input's interval [l, u] is a claim of
  the certificate (checked first); from it the checker computes lines
  a_l z + b_l <= f(z) <= a_u z + b_u valid for every z in [l, u], and an exact enclosure
  of f over [l, u]. Piecewise-linear ops are exact. For smooth ops the values and slopes
  are rigorous enclosures from the op table's `interval` field (forward and VJP rules);
  each intercept is a bound, proven by a shape fact stated at the rule, on the min or
  max of f(z) - a z over [l, u]. The producer's lines are never read.

Constant subexpressions (no dependence on the input) are not looked up here: the checker
evaluates them with the op table's exact forward rule, which raises for ops with no
rational value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from mpmath.libmp import to_rational

from ...spec.fields import get_field, interval_field
from ...spec.ops import OPS
from ...spec.ops.rules import RuleTable
from ...spec.tensor import Tensor

__all__ = ["RULES", "Linear", "Relaxation", "PairRelaxation", "Lines", "PairLines",
           "SMOOTH_LIMIT", "lines_range"]

Obj = np.ndarray[Any, Any]
Lines = tuple[Obj, Obj, Obj, Obj]          # a_l, b_l, a_u, b_u (exact, elementwise)
_INTERVAL = get_field("interval")
_ZERO, _ONE = Fraction(0), Fraction(1)
SMOOTH_LIMIT = Fraction(2**12)   # keeps exp(z) and tiny slopes like tanh'(z) of sane size


@dataclass(frozen=True)
class Linear:
    """The op is linear in its input-dependent operands; see the module docstring.
    `both`: how to relax it when every operand depends on the input (mul: McCormick)."""

    kind: str       # "positive", "sub", "neg", "scale", "div"
    both: PairRelaxation | None = None


@dataclass(frozen=True)
class Relaxation:
    """An elementwise non-linear op: its lines and its exact range over [l, u]."""

    lines: Callable[[Obj, Obj, dict[str, Any]], Lines]
    range: Callable[[Obj, Obj, dict[str, Any]], tuple[Obj, Obj]] | None  # None: the lines'
    domain: Fraction | None = None        # the input must be > domain (log: 0, log1p: -1)
    smooth: bool = True                   # inputs limited to |z| <= SMOOTH_LIMIT


@dataclass(frozen=True)
class PairRelaxation:
    """A binary elementwise non-linear op y = f(a, b) (maximum, minimum): from the
    intervals of a and b (broadcast to y's shape), the lines
    ca_l a + cb_l b + d_l <= y <= ca_u a + cb_u b + d_u valid on that box, and an exact
    enclosure of y."""

    lines: Callable[[Obj, Obj, Obj, Obj], PairLines]
    range: Callable[[Obj, Obj, Obj, Obj], tuple[Obj, Obj]]


PairLines = tuple[Obj, Obj, Obj, Obj, Obj, Obj]   # ca_l, cb_l, d_l, ca_u, cb_u, d_u
Rule = Linear | Relaxation | PairRelaxation
RULES: RuleTable[Rule] = RuleTable("certificate", field="exact")

for _tag in ("reshape", "transpose", "broadcast_to", "slice", "unslice", "concat", "sum",
             "mean", "add"):
    RULES.add(_tag, Linear("positive"))
RULES.add("sub", Linear("sub"))
RULES.add("neg", Linear("neg"))
RULES.add("matmul", Linear("scale"))
RULES.add("div", Linear("div"))


def _fractions(a: Any) -> Obj:
    out = np.empty(np.shape(a), dtype=object)
    out[...] = a
    return out


def _elementwise(fn: Callable[..., tuple[Fraction, ...]], n_out: int,
                 *arrays: Obj) -> tuple[Obj, ...]:
    """Apply a scalar function giving `n_out` Fractions to aligned object arrays."""
    shape = arrays[0].shape
    outs = [np.empty(shape, dtype=object) for _ in range(n_out)]
    for idx in np.ndindex(shape):
        for o, v in zip(outs, fn(*(a[idx] for a in arrays)), strict=True):
            o[idx] = v
    return tuple(outs)


# -- piecewise linear: max(z, s z) ---------------------------------------------------
def _slope(at: dict[str, Any]) -> Fraction:
    return Fraction(at.get("negative_slope", 0))


def _pwl_value(z: Fraction, s: Fraction) -> Fraction:
    return z if z >= 0 else s * z


def _pwl_lines(lo: Obj, hi: Obj, at: dict[str, Any]) -> Lines:
    """f(z) = z for z >= 0, s z below (relu: s = 0). For s <= 1, f is convex: the secant
    lies above, and a line through 0 with slope 1 or s below (f(z) >= z and f(z) >= s z
    hold everywhere). For s > 1, f is concave: the same lines swap sides."""
    s = _slope(at)

    def one(lw: Fraction, u: Fraction) -> tuple[Fraction, ...]:
        if lw >= 0:
            return _ONE, _ZERO, _ONE, _ZERO
        if u <= 0:
            return s, _ZERO, s, _ZERO
        sec = (u - s * lw) / (u - lw)
        tangent = _ONE if u >= -lw else s
        if s <= 1:
            return tangent, _ZERO, sec, u - sec * u
        return sec, u - sec * u, tangent, _ZERO

    return _elementwise(one, 4, lo, hi)  # type: ignore[return-value]


def _pwl_range(lo: Obj, hi: Obj, at: dict[str, Any]) -> tuple[Obj, Obj]:
    """Extremes of a function linear on each side of 0 lie at l, u or 0."""
    s = _slope(at)

    def one(lw: Fraction, u: Fraction) -> tuple[Fraction, ...]:
        cands = [_pwl_value(lw, s), _pwl_value(u, s)] + ([_ZERO] if lw < 0 < u else [])
        return min(cands), max(cands)

    return _elementwise(one, 2, lo, hi)  # type: ignore[return-value]


RULES.add("relu", Relaxation(_pwl_lines, _pwl_range, smooth=False))
RULES.add("leaky_relu", Relaxation(_pwl_lines, _pwl_range, smooth=False))


# -- smooth ops: rigorous values and slopes from the op table's interval field ---------
_GRID = 2**256          # enclosure ends are rounded outward to multiples of 2^-256


def _ends(x: Any) -> tuple[Fraction, Fraction]:
    """The ends of an mpmath interval as Fractions, rounded outward to the grid (short
    numbers: a slope like tanh'(30) ~ 1e-26 would otherwise carry a huge denominator)."""
    a, b = (Fraction(*to_rational(e)) for e in x._mpi_)
    return (Fraction(math.floor(a * _GRID), _GRID), Fraction(math.ceil(b * _GRID), _GRID))


def _value_and_slope(tag: str, z: Fraction, at: dict[str, Any],
                     field: Any = _INTERVAL) -> tuple[Any, Any]:
    """Enclosures of f(z) and f'(z): the op's interval forward rule and its VJP rule."""
    x = field.asarray([z])
    y = OPS[tag].forward(field, (x,), at)
    one = Tensor(field.asarray([1]), field)
    g = OPS[tag].cotangents(one, (Tensor(x, field),), Tensor(y, field), at, (True,))
    d = g[0]
    assert isinstance(d, Tensor)
    return _ends(y[0]), _ends(np.asarray(d.data)[0])


def _increasing_range(tag: str) -> Callable[[Obj, Obj, dict[str, Any]], tuple[Obj, Obj]]:
    def rng(lo: Obj, hi: Obj, at: dict[str, Any]) -> tuple[Obj, Obj]:
        def one(lw: Fraction, u: Fraction) -> tuple[Fraction, ...]:
            return _value_and_slope(tag, lw, at)[0][0], _value_and_slope(tag, u, at)[0][1]
        return _elementwise(one, 2, lo, hi)  # type: ignore[return-value]
    return rng


def _point(tag: str, lw: Fraction, at: dict[str, Any]) -> tuple[Fraction, ...]:
    (fl, fh), _ = _value_and_slope(tag, lw, at)
    return _ZERO, fl, _ZERO, fh


def _s_shaped_lines(tag: str) -> Callable[[Obj, Obj, dict[str, Any]], Lines]:
    """tanh, sigmoid: convex for z <= 0, concave for z >= 0, and f' increasing on z <= 0,
    decreasing on z >= 0 (f'' = -2 f f' for tanh, f'(1 - 2 f) for sigmoid: the sign of
    -z). So m = min(f'(l), f'(u)) <= f' on [l, u], and f(z) - m z is nondecreasing there:
    its min is at l, its max at u. On one side of 0 the secant slope replaces m on the
    side where f's curvature makes the extremes of f(z) - a z lie at the ends."""
    def lines(lo: Obj, hi: Obj, at: dict[str, Any]) -> Lines:
        def one(lw: Fraction, u: Fraction) -> tuple[Fraction, ...]:
            if lw == u:
                return _point(tag, lw, at)
            (fl, fh), (dl, _) = _value_and_slope(tag, lw, at)
            (gl, gh), (el, _) = _value_and_slope(tag, u, at)
            m = max(min(dl, el), _ZERO)
            sec = (gl - fh) / (u - lw)
            # f(z) - a z >= (lower of f) - a z at whichever end is the min
            if lw >= 0:   # concave: min of f - sec z at an end; f - m z max at u
                b_l = min(fl - sec * lw, gl - sec * u)
                return sec, b_l, m, gh - m * u
            if u <= 0:   # convex: max of f - sec z at an end; f - m z min at lw
                b_u = max(fh - sec * lw, gh - sec * u)
                return m, fl - m * lw, sec, b_u
            return m, fl - m * lw, m, gh - m * u
        return _elementwise(one, 4, lo, hi)  # type: ignore[return-value]
    return lines


def _tangent_secant_lines(tag: str, convex: bool) -> Callable[[Obj, Obj, dict[str, Any]],
                                                              Lines]:
    """A convex f lies above each tangent and below each secant (a concave f: the other
    way round). The tangent at the midpoint c has an irrational slope d = f'(c), so we
    take a rational a near d and use f(z) >= f(c) + d (z - c) >= f(c) + a (z - c) -
    |d - a| max(c - l, u - c) (convex case; concave symmetric). The secant side's
    intercept is the extreme of f(z) - a z, which curvature puts at an end."""
    def lines(lo: Obj, hi: Obj, at: dict[str, Any]) -> Lines:
        def one(lw: Fraction, u: Fraction) -> tuple[Fraction, ...]:
            if lw == u:
                return _point(tag, lw, at)
            (fl, fh), _ = _value_and_slope(tag, lw, at)
            (gl, gh), _ = _value_and_slope(tag, u, at)
            c = (lw + u) / 2
            (cl, ch), (dl, dh) = _value_and_slope(tag, c, at)
            a = dl
            slack = (dh - a) * (c - lw)      # c - lw = u - c; dh - a >= |d - a|
            if convex:
                sec = (gh - fl) / (u - lw)
                return a, cl - a * c - slack, sec, max(fh - sec * lw, gh - sec * u)
            sec = (gl - fh) / (u - lw)
            return sec, min(fl - sec * lw, gl - sec * u), a, ch - a * c + slack
        return _elementwise(one, 4, lo, hi)  # type: ignore[return-value]
    return lines


# -- any smooth op: lines proven by branch and bound on interval enclosures ----------
_PROVER = interval_field(53)        # rigorous at any precision; 53 bits is faster
_BUDGET = 9                         # pieces evaluated per bound, at most


def _enclose(tag: str, at: dict[str, Any], p: Fraction, q: Fraction) -> tuple[Any, Any]:
    """Enclosures of f(c) at c = (p + q) / 2 and of f'(z) over all z in [p, q]."""
    ctx = _PROVER.ctx
    point = _PROVER.asarray([(p + q) / 2])
    fc = OPS[tag].forward(_PROVER, (point,), at)
    span = np.empty(1, dtype=object)
    span[0] = ctx.mpf([_PROVER.scalar(p).a, _PROVER.scalar(q).b])
    y = OPS[tag].forward(_PROVER, (span,), at)
    one = Tensor(_PROVER.asarray([1]), _PROVER)
    g = OPS[tag].cotangents(one, (Tensor(span, _PROVER),), Tensor(y, _PROVER), at, (True,))
    assert isinstance(g[0], Tensor)
    return fc[0], np.asarray(g[0].data)[0]


def _piece(tag: str, at: dict[str, Any], a: Fraction, p: Fraction, q: Fraction
           ) -> tuple[Fraction, Fraction, Fraction]:
    """Bounds of g(z) = f(z) - a z on [p, q] by the mean value theorem around the middle
    c: g(z) = g(c) + (f'(t) - a)(z - c) for some t in [p, q], |z - c| <= (q - p) / 2.
    Returns (lower bound, upper bound, the slack term)."""
    fc, d = _enclose(tag, at, p, q)
    (fl, fh), (dl, dh) = _ends(fc), _ends(d)
    c = (p + q) / 2
    k = max(abs(dl - a), abs(dh - a)) * (q - p) / 2
    return fl - a * c - k, fh - a * c + k, k


def _extreme(tag: str, at: dict[str, Any], a: Fraction, lw: Fraction, u: Fraction,
             lowest: bool) -> Fraction:
    """A lower bound of min (or an upper bound of max) of f(z) - a z over [lw, u]: branch
    and bound, splitting the piece that holds the current bound while its slack matters."""
    pick = 0 if lowest else 1
    pieces = [(lw, u, _piece(tag, at, a, lw, u))]
    # enough: the lines' own gap is about max|f''| (u - l)^2 / 8 (|f''| < 1 for these ops)
    tol = (u - lw) ** 2 / 32
    for _ in range((_BUDGET - 1) // 2):
        key = (lambda e: e[2][0]) if lowest else (lambda e: -e[2][1])
        worst = min(pieces, key=key)
        if worst[2][2] <= tol:
            break
        pieces.remove(worst)
        p, q, _ = worst
        m = (p + q) / 2
        pieces += [(p, m, _piece(tag, at, a, p, m)), (m, q, _piece(tag, at, a, m, q))]
    bounds = [e[2][pick] for e in pieces]
    return min(bounds) if lowest else max(bounds)


def _proven_lines(tag: str) -> Callable[[Obj, Obj, dict[str, Any]], Lines]:
    """Any smooth f with interval forward and VJP rules: the lower line takes the slope
    f'(c) at the middle (rounded down), the upper one the secant; each intercept is a
    proven bound of min / max of f(z) - a z over [l, u] (`_extreme`). No shape facts."""
    def lines(lo: Obj, hi: Obj, at: dict[str, Any]) -> Lines:
        def one(lw: Fraction, u: Fraction) -> tuple[Fraction, ...]:
            if lw == u:
                return _point(tag, lw, at)
            (fl, _), _ = _value_and_slope(tag, lw, at, _PROVER)
            (_, gh), _ = _value_and_slope(tag, u, at, _PROVER)
            _, (dl, _) = _value_and_slope(tag, (lw + u) / 2, at, _PROVER)
            sec = (gh - fl) / (u - lw)
            return (dl, _extreme(tag, at, dl, lw, u, True),
                    sec, _extreme(tag, at, sec, lw, u, False))
        return _elementwise(one, 4, lo, hi)  # type: ignore[return-value]
    return lines


def lines_range(lo: Obj, hi: Obj, lines: Lines) -> tuple[Obj, Obj]:
    """The range between the lines over [l, u]: the lower line's min and the upper line's
    max (each at an end), valid since the lines enclose f there."""
    a_l, b_l, a_u, b_u = lines
    return (np.minimum(a_l * lo + b_l, a_l * hi + b_l),
            np.maximum(a_u * lo + b_u, a_u * hi + b_u))


# -- maximum / minimum of two values ------------------------------------------------
def _max_one(la: Fraction, ua: Fraction, lb: Fraction, ub: Fraction) -> tuple[Fraction, ...]:
    """max(a, b) = a + relu(b - a). If one operand is never below the other, y is that
    operand. Otherwise d = b - a lies in [lb - ua, ub - la] = [l, u] with l < 0 < u, and
    relu(d) <= s (d - l), s = u / (u - l) (the secant of the convex relu), so
    y <= (1 - s) a + s b - s l; below, y >= a and y >= b (we take the larger one)."""
    if la >= ub:
        return _ONE, _ZERO, _ZERO, _ONE, _ZERO, _ZERO
    if lb >= ua:
        return _ZERO, _ONE, _ZERO, _ZERO, _ONE, _ZERO
    low, up = lb - ua, ub - la
    s = up / (up - low)
    below = (_ONE, _ZERO) if la + ua >= lb + ub else (_ZERO, _ONE)
    return below[0], below[1], _ZERO, _ONE - s, s, -s * low


def _max_lines(la: Obj, ua: Obj, lb: Obj, ub: Obj) -> PairLines:
    return _elementwise(_max_one, 6, la, ua, lb, ub)  # type: ignore[return-value]


def _min_lines(la: Obj, ua: Obj, lb: Obj, ub: Obj) -> PairLines:
    """min(a, b) = -max(-a, -b): each line of max over (-a, -b), negated, swaps sides."""
    ca_l, cb_l, d_l, ca_u, cb_u, d_u = _max_lines(-ua, -la, -ub, -lb)
    return ca_u, cb_u, -d_u, ca_l, cb_l, -d_l


def _extreme_range(pick: Callable[[Any, Any], Any]) -> Callable[[Obj, Obj, Obj, Obj],
                                                                tuple[Obj, Obj]]:
    def rng(la: Obj, ua: Obj, lb: Obj, ub: Obj) -> tuple[Obj, Obj]:
        both = _elementwise(lambda p, q, r, t: (pick(p, r), pick(q, t)), 2, la, ua, lb, ub)
        return both[0], both[1]
    return rng


def _product_one(la: Fraction, ua: Fraction, lb: Fraction, ub: Fraction
                 ) -> tuple[Fraction, ...]:
    """McCormick's lines for y = a b: (a - la)(b - lb) >= 0 and (ua - a)(ub - b) >= 0 give
    y >= lb a + la b - la lb and y >= ub a + ua b - ua ub; (a - la)(ub - b) >= 0 and
    (ua - a)(b - lb) >= 0 give y <= ub a + la b - la ub and y <= lb a + ua b - ua lb. Of
    each pair, the one closer to a b at the middle of the box."""
    ac, bc = (la + ua) / 2, (lb + ub) / 2
    low = max([(lb, la, -la * lb), (ub, ua, -ua * ub)], key=lambda t: t[0] * ac + t[1] * bc
              + t[2])
    up = min([(ub, la, -la * ub), (lb, ua, -ua * lb)], key=lambda t: t[0] * ac + t[1] * bc
             + t[2])
    return (*low, *up)


def _product_range(la: Obj, ua: Obj, lb: Obj, ub: Obj) -> tuple[Obj, Obj]:
    def one(p: Fraction, q: Fraction, r: Fraction, t: Fraction) -> tuple[Fraction, ...]:
        corners = [p * r, p * t, q * r, q * t]
        return min(corners), max(corners)
    both = _elementwise(one, 2, la, ua, lb, ub)
    return both[0], both[1]


RULES.add("mul", Linear("scale", both=PairRelaxation(
    lambda la, ua, lb, ub: _elementwise(_product_one, 6, la, ua, lb, ub),  # type: ignore
    _product_range)))
RULES.add("maximum", PairRelaxation(_max_lines, _extreme_range(max)))
RULES.add("minimum", PairRelaxation(_min_lines, _extreme_range(min)))

for _tag in ("tanh", "sigmoid"):
    RULES.add(_tag, Relaxation(_s_shaped_lines(_tag), _increasing_range(_tag)))
for _tag in ("exp", "expm1", "softplus"):   # convex and increasing
    RULES.add(_tag, Relaxation(_tangent_secant_lines(_tag, True), _increasing_range(_tag)))
RULES.add("log", Relaxation(_tangent_secant_lines("log", False), _increasing_range("log"),
                            domain=_ZERO))
RULES.add("log1p", Relaxation(_tangent_secant_lines("log1p", False),
                              _increasing_range("log1p"), domain=Fraction(-1)))

RULES.refuse("piecewise constant: its value jumps inside an interval, and a certificate "
             "bounds it only as a constant", "step", "greater", "argmax_mask", "one_hot")
for _tag in ("gelu", "silu", "erf", "sin", "cos", "square"):
    RULES.add(_tag, Relaxation(_proven_lines(_tag), None))
RULES.add("abs", Relaxation(lambda lo, hi, at: _pwl_lines(lo, hi, {"negative_slope": -1}),
                            lambda lo, hi, at: _pwl_range(lo, hi, {"negative_slope": -1}),
                            smooth=False))
RULES.refuse("no relaxation yet: its slope is unbounded at 0", "sqrt")
RULES.refuse("no exact relaxation yet for a max over axes (max pooling uses maximum)",
             "max")
RULES.refuse("selects by a condition: no relaxation yet", "where")
RULES.refuse("no exact relaxation yet for softmax-like normalisation",
             "softmax", "log_softmax")
