"""Linear relaxations of the nonlinear elementwise ops: for an input interval [l, h],
lines a_l z + b_l <= f(z) <= a_u z + b_u valid for every REAL z in [l, h], for the float
slopes and intercepts as computed. A table named "relaxation" holds one rule per op.

How the lines stay valid in floating point: a slope is any float (chosen for tightness;
its rounding does not matter); the intercept is then a directed-rounding bound of
max (resp. min) over [l, h] of f(z) - a z for that float a, from rigorous value and
derivative enclosures (`functions.py`):

- on a piece where f is convex, the max of f - a z sits at an end of the piece; its min
  is >= (f - a z)(t) + min over the piece of (f'(t) - a)(z - t), for any t (the tangent
  at t lies below a convex function), with f'(t) - a taken over its enclosure;
- on a concave piece, the same with min and max exchanged;
- S-shaped functions (tanh, sigmoid, erf) are convex for z <= 0 and concave for z >= 0:
  an interval crossing 0 is split there and the pieces' bounds combined.

The slopes follow auto_LiRPA's BoundTanh / BoundSigmoid (Xu et al. 2020): for an interval
on the convex side, the secant above and the tangent at the midpoint below (the reverse
on the concave side); for an interval crossing 0, above: the line through (l, f(l))
tangent at a point d >= 0 found by bisection, or the secant when d > h; below: the
mirror image (through (h, f(h)), tangent at d <= 0, or the secant when d < l). Convex
exp / softplus / expm1 / square: secant above, tangent at the midpoint below; concave
log / log1p / sqrt: the reverse. gelu / silu are convex between their inflection points
+-c and concave outside; a sliver of a few ulps around each float bracket of c is bounded
by its ends' values plus (|a| + max|f'|) times its width; three candidate slopes (the
secant, f' at the midpoint, f' at the midpoint clipped into [-c, c]) each get rigorous
intercepts and the line nearest f at the midpoint is kept. Where any line comes out
non-finite (overflow), it is replaced by the constant line at f's interval bound (slope
0), still valid.

relu / leaky_relu keep CROWN's adaptive lines (Zhang et al. 2018), with exact or
directed intercepts; abs: the secant above and slope sign(h + l) below.

alpha-CROWN's lines (`tangent_family`, `tangent_lines`): for S-shaped, convex and
concave f, the tangent points it may choose, and lines per spec row at chosen points,
each slope f'(d) given an intercept by the same rigorous min / max as above, so the line
is valid over [l, h] whatever d is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...spec.errors import UnsupportedOperation
from ...spec.ops.rules import RuleTable
from ..outward import dn, mul_dn, mul_up, up
from .functions import RECIPROCAL, SMOOTH, Smooth, enclose
from .problem import Array

__all__ = ["RELAXATION", "Lines", "smooth_lines", "TangentFamily", "tangent_family",
           "tangent_lines"]

Lines = tuple[Array, Array, Array, Array]
Relax = Callable[[Array, Array, dict[str, Any]], Lines]
RELAXATION: RuleTable[Relax] = RuleTable("relaxation")


# -- intercepts -----------------------------------------------------------------------
def _h_lo(f: Smooth, z: Array, a: Array) -> Array:
    """A lower bound of f(z) - a z."""
    return dn(enclose(f, z)[0] - mul_up(a, z))


def _h_hi(f: Smooth, z: Array, a: Array) -> Array:
    """An upper bound of f(z) - a z."""
    return up(enclose(f, z)[1] - mul_dn(a, z))


def _corners(sl: Array, sh: Array, zl: Array, zh: Array, upper: bool) -> Array:
    mul = mul_up if upper else mul_dn
    cs = [mul(s, d) for s in (sl, sh) for d in (zl, zh)]
    with np.errstate(invalid="ignore"):
        out = np.maximum.reduce(cs) if upper else np.minimum.reduce(cs)
    return np.asarray(out)


def _tangent_max(f: Smooth, t: Array, a: Array, p: Array, q: Array) -> Array:
    """An upper bound of max over [p, q] of f(z) - a z where f is CONCAVE on [p, q]."""
    dl, dh = f.deriv(t, *enclose(f, t))
    c = _corners(dn(dl - a), up(dh - a), dn(p - t), up(q - t), True)
    return up(_h_hi(f, t, a) + c)


def _tangent_min(f: Smooth, t: Array, a: Array, p: Array, q: Array) -> Array:
    """A lower bound of min over [p, q] of f(z) - a z where f is CONVEX on [p, q]."""
    dl, dh = f.deriv(t, *enclose(f, t))
    c = _corners(dn(dl - a), up(dh - a), dn(p - t), up(q - t), False)
    return dn(_h_lo(f, t, a) + c)


def _ends_max(f: Smooth, a: Array, p: Array, q: Array) -> Array:
    return np.maximum(_h_hi(f, p, a), _h_hi(f, q, a))


def _ends_min(f: Smooth, a: Array, p: Array, q: Array) -> Array:
    return np.minimum(_h_lo(f, p, a), _h_lo(f, q, a))


def _guess(f: Smooth, a: Array, sign: float) -> Array:
    """Where f' = a on the concave (sign +1) or convex (sign -1) side of an S shape."""
    assert f.tangent_point is not None
    return sign * f.tangent_point(a)


def _intercepts(f: Smooth, lo: Array, hi: Array, a_l: Array, a_u: Array,
                t_l: Array | None = None, t_u: Array | None = None) -> tuple[Array, Array]:
    """b_l <= min and b_u >= max of f(z) - a z over [lo, hi] (see the module docstring);
    t_l / t_u: where to take tangents on a convex / concave piece (clipped into it)."""
    if f.curvature == "convex":
        tl = (lo + hi) * 0.5 if t_l is None else t_l
        return (_tangent_min(f, np.clip(tl, lo, hi), a_l, lo, hi), _ends_max(f, a_u, lo, hi))
    if f.curvature == "concave":
        tu = (lo + hi) * 0.5 if t_u is None else t_u
        return (_ends_min(f, a_l, lo, hi), _tangent_max(f, np.clip(tu, lo, hi), a_u, lo, hi))
    # S shape: convex piece [lo, min(hi, 0)], concave piece [max(lo, 0), hi]
    c_hi, k_lo = np.minimum(hi, 0.0), np.maximum(lo, 0.0)
    has_convex, has_concave = lo < 0, hi > 0
    tl = _guess(f, a_l, -1.0) if t_l is None else t_l
    tu = _guess(f, a_u, 1.0) if t_u is None else t_u
    min_convex = _tangent_min(f, np.clip(tl, lo, c_hi), a_l, lo, c_hi)
    min_concave = _ends_min(f, a_l, k_lo, hi)
    max_convex = _ends_max(f, a_u, lo, c_hi)
    max_concave = _tangent_max(f, np.clip(tu, k_lo, hi), a_u, k_lo, hi)
    inf = np.inf
    b_l = np.minimum(np.where(has_convex, min_convex, inf),
                     np.where(has_concave | ~has_convex, min_concave, inf))
    b_u = np.maximum(np.where(has_convex | ~has_concave, max_convex, -inf),
                     np.where(has_concave, max_concave, -inf))
    return b_l, b_u


# -- slopes -------------------------------------------------------------------------
# f' from f's float value, for the bisection's guide only (the rigorous enclosure's
# midpoint differs by a few ulps, which only moves a tangent point by as little)
_PLAIN_DERIV: dict[str, Callable[[Array], Array]] = {
    "tanh": lambda v: np.asarray(1.0 - v * v),
    "sigmoid": lambda v: np.asarray(v * (1.0 - v)),
}


def _mid_deriv(f: Smooth, z: Array) -> Array:
    """f'(z), approximately (it only chooses slopes, whose intercepts are rigorous)."""
    plain = _PLAIN_DERIV.get(f.name)
    if plain is not None:
        with np.errstate(invalid="ignore", over="ignore"):
            return plain(f.value(z))
    dl, dh = f.deriv(z, *enclose(f, z))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(0.5 * dl + 0.5 * dh)


def _secant(f: Smooth, lo: Array, hi: Array, fallback: Array) -> Array:
    width = hi - lo
    safe = np.where(width > 0, width, 1.0)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        sec = (f.value(hi) - f.value(lo)) / safe
    return np.where(width > 0, sec, fallback)


def _approx(f: Smooth, z: Array) -> Array:
    return f.value(z)


def _deriv_approx(f: Smooth, z: Array) -> Array:
    return _mid_deriv(f, z)


def _tangent_through(f: Smooth, x0: Array, y0: Array, lo: Array, hi: Array) -> Array:
    """A point d in [lo, hi] where the tangent of f at d passes through (x0, y0) (by
    bisection on the sign of f(d) + f'(d)(x0 - d) - y0; approximate: guides only)."""
    a, b = lo.copy(), hi.copy()
    plain = _PLAIN_DERIV.get(f.name)
    m, t = np.empty_like(a), np.empty_like(a)
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(40):  # in reused buffers: the arrays are small, calls dominate
            np.add(a, b, out=m)
            m *= 0.5
            v = _approx(f, m)
            np.subtract(x0, m, out=t)
            t *= _deriv_approx(f, m) if plain is None else plain(v)
            t += v
            t -= y0
            go_right = t < 0  # F increases in d on either side (f'' has the sign needed)
            np.copyto(a, m, where=go_right)
            np.copyto(b, m, where=~go_right)
    return 0.5 * (a + b)


_BRACKET = {"tanh": 20.0, "sigmoid": 40.0, "erf": 7.0}


def _cross_points(f: Smooth, lo: Array, hi: Array, at: tuple[Array, ...]
                  ) -> tuple[Array, Array]:
    """For an S shape, at the neurons `at` (whose intervals cross 0): d_l <= 0 whose
    tangent passes through (hi, f(hi)) and d_u >= 0 whose tangent passes through
    (lo, f(lo)) (approximate: they only guide); 0 elsewhere."""
    big = np.full_like(lo, _BRACKET[f.name])
    d_u, d_l = np.zeros_like(lo), np.zeros_like(lo)
    if at[0].size:
        # both bisections at once (elementwise: the same bits as one after the other)
        k = at[0].size
        zero = np.zeros(k)
        x0 = np.concatenate([lo[at], hi[at]])
        d = _tangent_through(f, x0, _approx(f, x0), np.concatenate([zero, -big[at]]),
                             np.concatenate([big[at], zero]))
        d_u[at], d_l[at] = d[:k], d[k:]
    return d_l, d_u


def smooth_lines(f: Smooth, lo: Array, hi: Array) -> Lines:
    """Lines for the smooth function f over [lo, hi] (see the module docstring)."""
    mid = (lo + hi) * 0.5
    m_slope = _mid_deriv(f, mid)
    if f.curvature == "convex":
        a_u = _secant(f, lo, hi, m_slope)
        a_l = m_slope
        b_l, b_u = _intercepts(f, lo, hi, a_l, a_u, t_l=mid)
    elif f.curvature == "concave":
        a_l = _secant(f, lo, hi, m_slope)
        a_u = m_slope
        b_l, b_u = _intercepts(f, lo, hi, a_l, a_u, t_u=mid)
    else:
        sec = _secant(f, lo, hi, m_slope)
        cross = (lo < 0) & (hi > 0)
        at = np.nonzero(cross)
        d_l, d_u = _cross_points(f, lo, hi, at)
        # above: tangent at d_u >= 0 through (lo, f(lo)); the secant when d_u > hi
        a_cross_u = np.where(d_u <= hi, _deriv_approx(f, d_u), sec)
        # below: tangent at d <= 0 through (hi, f(hi)); the secant when d < lo
        a_cross_l = np.where(d_l >= lo, _deriv_approx(f, d_l), sec)
        # auto_LiRPA's smoothing: across 0, the tangent at the midpoint when it is valid
        # and the default tangent point lies beyond it (d_l >= mid, resp. d_u < mid)
        mid_l, mid_u = (d_l >= lo) & (d_l >= mid), (d_u <= hi) & (d_u < mid)
        a_cross_l = np.where(mid_l, m_slope, a_cross_l)
        a_cross_u = np.where(mid_u, m_slope, a_cross_u)
        a_u = np.where(hi <= 0, sec, np.where(lo >= 0, m_slope, a_cross_u))
        a_l = np.where(lo >= 0, sec, np.where(hi <= 0, m_slope, a_cross_l))
        t_l = np.where(cross, np.where(mid_l, mid, np.where(d_l >= lo, d_l, lo)), mid)
        t_u = np.where(cross, np.where(mid_u, mid, np.where(d_u <= hi, d_u, hi)), mid)
        # tangents at the geometric points and, where the interval crosses 0, also at
        # the points where f' = a (a guess from the slope, sometimes tighter there; off 0
        # the slope is f' at the midpoint, whose tangent point the midpoint already is):
        # both in one stacked, elementwise call
        assert f.tangent_point is not None
        size = lo.size
        geo_l, geo_u = np.minimum(t_l, 0.0), np.maximum(t_u, 0.0)
        lo2, hi2, a_l2, a_u2 = (np.concatenate([v.ravel(), v[at]]) for v in (lo, hi, a_l, a_u))
        b2_l, b2_u = _intercepts(
            f, lo2, hi2, a_l2, a_u2,
            t_l=np.concatenate([geo_l.ravel(), _guess(f, a_l[at], -1.0)]),
            t_u=np.concatenate([geo_u.ravel(), _guess(f, a_u[at], 1.0)]))
        b_l, b_u = b2_l[:size].reshape(lo.shape), b2_u[:size].reshape(lo.shape)
        b_l[at] = np.maximum(b_l[at], b2_l[size:])
        b_u[at] = np.minimum(b_u[at], b2_u[size:])
    return _finite(f, lo, hi, a_l, b_l, a_u, b_u)


@dataclass(frozen=True)
class TangentFamily:
    """The lines alpha-CROWN may choose for a smooth f over [lo, hi], per neuron.

    `fixed` are `smooth_lines`' (plain CROWN's) lines. Where `opt_l` is set, the lower
    line may instead be f's tangent at any d in [lo_l, hi_l] (each such tangent lies
    below f on [lo, hi]); `init_l` is plain CROWN's tangent point. Likewise the upper
    line with `opt_u`, [lo_u, hi_u], `init_u`. For S shapes (tanh, sigmoid, erf; after
    auto_LiRPA's BoundTanh, Xu et al. 2020): on the convex side (hi <= 0) the lower line,
    d in [lo, hi]; on the concave side (lo >= 0) the upper line, d in [lo, hi]; across 0,
    below: d in [lo, d_l] with d_l the tangent point whose tangent passes through
    (hi, f(hi)) (no range when d_l < lo: the secant is kept), above: d in [d_u, hi] with
    d_u the mirror image. For convex f (exp, softplus, expm1, square) the lower line,
    for concave f (log, log1p, sqrt) the upper line, d in [lo, hi], where f is finite at
    both ends (the other line is the secant). The ranges are approximate:
    `tangent_lines` makes every line valid whatever d it gets.
    """

    fixed: Lines
    opt_l: Array
    lo_l: Array
    hi_l: Array
    init_l: Array
    opt_u: Array
    lo_u: Array
    hi_u: Array
    init_u: Array


def tangent_family(f: Smooth, lo: Array, hi: Array) -> TangentFamily:
    """The tangent-point family of f over [lo, hi] (see `TangentFamily`): f S-shaped,
    convex or concave."""
    if f.curvature not in ("s", "convex", "concave"):
        raise UnsupportedOperation(f.name, "float", "only S-shaped, convex and concave "
                                   "functions have an optimisable tangent family here",
                                   analysis="alpha-crown")
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if f.curvature != "s":
        return _one_sided_family(f, lo, hi)
    with np.errstate(all="ignore"):
        fixed = smooth_lines(f, lo, hi)
        mid = (lo + hi) * 0.5
        wide = lo < hi
        cross = (lo < 0) & (hi > 0)
        d_l, d_u = _cross_points(f, lo, hi, np.nonzero(cross))
    convex, concave = wide & (hi <= 0), wide & (lo >= 0)
    cross_l, cross_u = cross & (d_l >= lo), cross & (d_u <= hi)
    return TangentFamily(
        fixed=fixed,
        opt_l=convex | cross_l, lo_l=lo, hi_l=np.where(cross, d_l, hi),
        init_l=np.where(cross, np.minimum(mid, d_l), mid),
        opt_u=concave | cross_u, lo_u=np.where(cross, d_u, lo), hi_u=hi,
        init_u=np.where(cross, np.maximum(mid, d_u), mid))


def _one_sided_family(f: Smooth, lo: Array, hi: Array) -> TangentFamily:
    """Convex f: tangents below, d in [lo, hi]; concave f: tangents above."""
    with np.errstate(all="ignore"):
        fixed = smooth_lines(f, lo, hi)
        mid = (lo + hi) * 0.5
        ok = (lo < hi) & np.isfinite(f.value(lo)) & np.isfinite(f.value(hi))
    for v in fixed:
        ok &= np.isfinite(v)
    off = np.zeros_like(ok)
    convex = f.curvature == "convex"
    return TangentFamily(fixed=fixed, opt_l=ok if convex else off, lo_l=lo, hi_l=hi,
                         init_l=mid, opt_u=off if convex else ok, lo_u=lo, hi_u=hi,
                         init_u=mid)


def tangent_lines(f: Smooth, lo: Array, hi: Array, d_l: Array, d_u: Array,
                  family: TangentFamily | None = None) -> Lines:
    """Lines valid for the smooth f over [lo, hi] (batch, *shape), one pair per spec
    row: tangent points d_l, d_u (batch, rows, *shape) are projected into the family's
    ranges; where the family allows, the lower (upper) line takes slope f'(d_l) (f'(d_u))
    and a rigorous intercept for that slope over [lo, hi] (so the line is valid whatever
    the slope); elsewhere, or where d is NaN, plain CROWN's line. Shapes (batch, rows,
    *shape)."""
    fam = tangent_family(f, lo, hi) if family is None else family
    lo_r, hi_r = np.expand_dims(lo, 1), np.expand_dims(hi, 1)

    def rows(v: Array) -> Array:
        return np.expand_dims(v, 1)

    with np.errstate(all="ignore"):
        dl = np.clip(np.where(np.isnan(d_l), rows(fam.init_l), d_l), rows(fam.lo_l),
                     rows(fam.hi_l))
        du = np.clip(np.where(np.isnan(d_u), rows(fam.init_u), d_u), rows(fam.lo_u),
                     rows(fam.hi_u))
        opt_l = np.broadcast_to(rows(fam.opt_l), dl.shape)
        opt_u = np.broadcast_to(rows(fam.opt_u), du.shape)
        fa_l, fb_l, fa_u, fb_u = (np.broadcast_to(rows(v), dl.shape) for v in fam.fixed)
        a_l = np.where(opt_l, _mid_deriv(f, dl), fa_l)
        a_u = np.where(opt_u, _mid_deriv(f, du), fa_u)
        b_l, b_u = np.array(fb_l), np.array(fb_u)
        both = opt_l | opt_u  # rigorous intercepts only where a line is a tangent
        if np.any(both):
            lo_b, hi_b = (np.broadcast_to(v, dl.shape)[both] for v in (lo_r, hi_r))
            got_l, got_u = _intercepts(f, lo_b, hi_b, a_l[both], a_u[both], t_l=dl[both],
                                       t_u=du[both])
            b_l[both] = np.where(opt_l[both], got_l, b_l[both])
            b_u[both] = np.where(opt_u[both], got_u, b_u[both])
        return _finite(f, np.broadcast_to(lo_r, dl.shape), np.broadcast_to(hi_r, dl.shape),
                       a_l, b_l, a_u, b_u)


def _solve_slope(f: Smooth, a: Array, p: Array, q: Array) -> Array:
    """A point of [p, q] where f' is near a, f' monotone there (bisection, approximate:
    it only places tangents)."""
    p, q = np.clip(p, -40.0, 40.0), np.clip(q, -40.0, 40.0)
    rising = _deriv_approx(f, q) >= _deriv_approx(f, p)
    x, y = p.copy(), q.copy()
    for _ in range(40):
        m = 0.5 * (x + y)
        below = _deriv_approx(f, m) < a
        right = below == rising  # the root lies right of m
        x, y = np.where(right, m, x), np.where(right, y, m)
    return np.asarray(0.5 * (x + y))


def _valley_pieces(f: Smooth) -> list[tuple[float, float, str]]:
    c_in, c_out = f.inflection
    inf = np.inf
    return [(-inf, -c_out, "concave"), (-c_out, -c_in, "sliver"), (-c_in, c_in, "convex"),
            (c_in, c_out, "sliver"), (c_out, inf, "concave")]


def _valley_intercepts(f: Smooth, lo: Array, hi: Array, a_l: Array, a_u: Array
                       ) -> tuple[Array, Array]:
    """b_l <= min and b_u >= max over [lo, hi] of f(z) - a z, piece by piece (see the
    module docstring); on a sliver of unknown curvature (a few ulps around an inflection
    point) the ends' values plus (|a| + max|f'|) times its width."""
    b_l, b_u = np.full_like(lo, np.inf), np.full_like(lo, -np.inf)
    for start, stop, kind in _valley_pieces(f):
        p, q = np.maximum(lo, start), np.minimum(hi, stop)
        present = p <= q
        if not np.any(present):
            continue
        p, q = np.where(present, p, lo), np.where(present, q, lo)
        if kind == "convex":
            low = _tangent_min(f, _solve_slope(f, a_l, p, q), a_l, p, q)
            high = _ends_max(f, a_u, p, q)
        elif kind == "concave":
            low = _ends_min(f, a_l, p, q)
            high = _tangent_max(f, _solve_slope(f, a_u, p, q), a_u, p, q)
        else:
            width = up(q - p)
            low = dn(_ends_min(f, a_l, p, q) - mul_up(up(np.abs(a_l) + f.lipschitz), width))
            high = up(_ends_max(f, a_u, p, q) + mul_up(up(np.abs(a_u) + f.lipschitz), width))
        b_l = np.where(present, np.minimum(b_l, low), b_l)
        b_u = np.where(present, np.maximum(b_u, high), b_u)
    return b_l, b_u


def valley_lines(f: Smooth, lo: Array, hi: Array) -> Lines:
    """Lines for gelu / silu over [lo, hi]: candidate slopes (the secant, f' at the
    midpoint, f' at the midpoint clipped into the convex part), each with rigorous
    intercepts; per neuron the line closest to f at the midpoint is kept."""
    mid = (lo + hi) * 0.5
    c_in = f.inflection[0]
    m_slope = _mid_deriv(f, mid)
    sec = _secant(f, lo, hi, m_slope)
    inner = _mid_deriv(f, np.clip(mid, -c_in, c_in))
    best_l = best_u = None
    for a in (sec, m_slope, inner):
        b_l, b_u = _valley_intercepts(f, lo, hi, a, a)
        at_l, at_u = a * mid + b_l, a * mid + b_u
        if best_l is None or best_u is None:
            best_l, best_u = (a, b_l, at_l), (a, b_u, at_u)
            continue
        take_l = at_l > best_l[2]
        take_u = at_u < best_u[2]
        best_l = tuple(np.where(take_l, n, o) for n, o in zip((a, b_l, at_l), best_l,
                                                               strict=True))  # type: ignore[assignment]
        best_u = tuple(np.where(take_u, n, o) for n, o in zip((a, b_u, at_u), best_u,
                                                               strict=True))  # type: ignore[assignment]
    assert best_l is not None and best_u is not None
    return _finite(f, lo, hi, best_l[0], best_l[1], best_u[0], best_u[1])


def _finite(f: Smooth, lo: Array, hi: Array, a_l: Array, b_l: Array, a_u: Array,
            b_u: Array) -> Lines:
    """Replace non-finite lines by constant lines at f's interval bounds."""
    ok_l = np.isfinite(a_l) & np.isfinite(b_l)
    ok_u = np.isfinite(a_u) & np.isfinite(b_u)
    if np.all(ok_l) and np.all(ok_u):
        return a_l, b_l, a_u, b_u
    flo, fhi = interval_of(f, lo, hi)
    return (np.where(ok_l, a_l, 0.0), np.where(ok_l, b_l, flo),
            np.where(ok_u, a_u, 0.0), np.where(ok_u, b_u, fhi))


def interval_of(f: Smooth, lo: Array, hi: Array) -> tuple[Array, Array]:
    """[min, max] of f over [lo, hi] (monotone f, or square: by the sign of the ends)."""
    if f.increasing:
        return enclose(f, lo)[0], enclose(f, hi)[1]
    if f.curvature == "valley":  # the ends, and the global minimum's lower bound
        (a_lo, a_hi), (b_lo, b_hi) = enclose(f, lo), enclose(f, hi)
        return np.minimum(np.minimum(a_lo, b_lo), f.floor), np.maximum(a_hi, b_hi)
    if f.name == "reciprocal":
        return enclose(f, hi)[0], enclose(f, lo)[1]
    a_lo, a_hi = enclose(f, lo)
    b_lo, b_hi = enclose(f, hi)
    low = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(a_lo, b_lo))
    return low, np.maximum(a_hi, b_hi)


def reciprocal_lines(lo: Array, hi: Array) -> Lines:
    """Lines for 1/z over [lo, hi] with lo > 0 (convex, decreasing)."""
    return smooth_lines(RECIPROCAL, lo, hi)


# -- the table ------------------------------------------------------------------------
def _smooth_rule(tag: str) -> Relax:
    f = SMOOTH[tag]

    lines = valley_lines if f.curvature == "valley" else smooth_lines

    def rule(lo: Array, hi: Array, at: dict[str, Any]) -> Lines:
        with np.errstate(all="ignore"):  # overflow / inf * 0 give non-finite lines,
            return lines(f, lo, hi)  # replaced by constant ones (see _finite)
    return rule


for _tag in SMOOTH:
    RELAXATION.add(_tag, _smooth_rule(_tag))


def _relu_act(op: str, at: dict[str, Any], z: Array, upper: bool) -> Array:
    if op == "relu":
        return np.maximum(z, 0.0)
    s = float(at["negative_slope"])
    return np.where(z >= 0, z, mul_up(s, z) if upper else mul_dn(s, z))


@RELAXATION.rule("relu", "leaky_relu")
def _relu_lines(lo: Array, hi: Array, at: dict[str, Any]) -> Lines:
    op = "leaky_relu" if "negative_slope" in at else "relu"

    def g_lo(z: Array, a: Array) -> Array:
        return dn(_relu_act(op, at, z, False) - mul_up(a, z))

    def g_hi(z: Array, a: Array) -> Array:
        return up(_relu_act(op, at, z, True) - mul_dn(a, z))

    width = hi - lo
    safe = np.where(width > 0, width, 1.0)
    s = 0.0 if op == "relu" else float(at["negative_slope"])
    # convex: secant above (max of convex g at the ends); below, the adaptive slope
    # (1 if u >= -l else s), exact intercept 0 since act(z) >= a z for a in {s, 1}
    sec = np.where(width > 0, (_relu_act(op, at, hi, True) - _relu_act(op, at, lo, False))
                   / safe, 1.0)
    sec = np.where(lo >= 0, 1.0, np.where(hi <= 0, s, sec))
    a_u = sec
    b_u = np.maximum(g_hi(lo, a_u), g_hi(hi, a_u))
    a_l = np.where(lo >= 0, 1.0, np.where(hi <= 0, s, np.where(hi >= -lo, 1.0, s)))
    if 0.0 <= s <= 1.0:
        b_l = np.zeros_like(lo)
    else:
        b_l = np.minimum(np.minimum(g_lo(lo, a_l), g_lo(hi, a_l)), 0.0)
    return a_l, b_l, a_u, b_u


@RELAXATION.rule("abs")
def _abs_lines(lo: Array, hi: Array, at: dict[str, Any]) -> Lines:
    # |z| >= a z for |a| <= 1 (intercept 0 exactly); above: the secant, whose intercept is
    # the max of |z| - a z at the ends (convex)
    width = hi - lo
    safe = np.where(width > 0, width, 1.0)
    sec = np.where(width > 0, (np.abs(hi) - np.abs(lo)) / safe, np.sign(hi))
    sec = np.clip(sec, -1.0, 1.0)
    b_u = np.maximum(up(np.abs(lo) - mul_dn(sec, lo)), up(np.abs(hi) - mul_dn(sec, hi)))
    a_l = np.where(hi + lo >= 0, 1.0, -1.0)
    return a_l, np.zeros_like(lo), sec, b_u


RELAXATION.refuse("linear or structural: CROWN carries it exactly, no relaxation needed",
                  "add", "sub", "neg", "matmul", "transpose", "reshape", "broadcast_to",
                  "concat", "slice", "unslice", "sum", "mean", "where")
RELAXATION.refuse("a product or quotient of two operands: the crown table relaxes it "
                  "(McCormick planes; 1/z lines for a divisor)", "mul", "div")
RELAXATION.refuse("a max / min of two operands: the crown table relaxes it through relu "
                  "of their difference", "maximum", "minimum")
RELAXATION.refuse("piecewise constant: CROWN bounds it by its IBP interval",
                  "step", "greater", "argmax_mask", "one_hot")
RELAXATION.refuse("periodic, not relaxed yet: CROWN bounds it by its IBP interval",
                  "sin", "cos")
RELAXATION.refuse("a reduction over several values: CROWN bounds it by its IBP interval",
                  "max", "softmax", "log_softmax")
