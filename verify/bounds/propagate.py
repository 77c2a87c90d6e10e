"""IBP and CROWN output bounds over the graph IR, sound in binary64 arithmetic.

    b = bounds.crown(net, net.params, lower, upper, C=margins)   # or bounds.ibp(...)
    b.lower, b.upper                       # arrays (batch, spec rows)

`graph_or_model` is a traced `Graph` (one input, one output, batch first) or a built model
(`nn.Built`), which is traced in eval mode over the box's shape. Every bound is computed in
binary64 with outward rounding, so `[lower, upper]` contains the REAL-number value of the
graph (its literals and parameters read as the exact numbers they hold) at every point of
the box. How:

- every rounded elementwise result is moved one step outward with `np.nextafter` (a
  round-to-nearest result is within half a spacing of the exact one);
- a float64 dot product of length n is off by at most gamma_n * sum |a||b| with
  gamma_n = n u / (1 - n u), u = 2^-53 (Higham, "Accuracy and Stability of Numerical
  Algorithms", 2nd ed., eq. (3.5)); we bound sum |a||b| cheaply by ||a||_1 max|b| and add
  n * 2^-1021 to cover subnormal results;
- CROWN keeps the coefficient arrays as computed floats and charges each coefficient's
  rounding error E times the magnitude of the value it multiplies (known from IBP) to a
  running `slack`, subtracted from the bound at the end: the relaxation
  `spec(x) >= sum A.v + c - slack` holds over the reals for the float arrays A as they are;
- relaxation lines take a float slope and an intercept computed from endpoint values with
  directed rounding, valid for that slope whatever its rounding (see `_lines`).

tanh / sigmoid endpoint values come from NumPy's libm and are widened by 8 ulps: this
assumes those functions are accurate to within 8 ulps (glibc documents at most 2).

Ops: matmul by a constant, add, sub, neg, mul / div by a constant, reshape, transpose and
broadcast of constants, relu, leaky_relu, tanh, sigmoid (CROWN and IBP); softmax, exp,
sum, mean (IBP only). Anything else raises `UnsupportedOperation`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph, trace
from ...runtime.graph.encoding import Literal
from ...spec.errors import ShapeError, UnsupportedOperation

__all__ = ["Bounds", "ibp", "crown", "intersect", "as_graph", "margin_matrix", "COVERS"]

Array = np.ndarray[Any, Any]
COVERS = ("real", "float32")
_U = 2.0**-53
_TINY = 2.0**-1021
_INF = np.inf
_CROWN_OPS = ("relu", "leaky_relu", "tanh", "sigmoid")


@dataclass(frozen=True)
class Bounds:
    """Sound bounds `lower <= C y <= upper`, arrays of shape (batch, spec rows)."""

    lower: Array
    upper: Array
    method: str

    def contains(self, values: Array) -> bool:
        """Whether every value of `values` (same shape) lies in the bounds."""
        v = np.asarray(values, dtype=np.float64)
        return bool(np.all(self.lower <= v) and np.all(v <= self.upper))

    @property
    def width(self) -> Array:
        """upper - lower, elementwise."""
        return np.asarray(self.upper - self.lower)


# -- outward rounding helpers ------------------------------------------------------
def _dn(x: Any) -> Array:
    return np.asarray(np.nextafter(x, -_INF))


def _up(x: Any) -> Array:
    return np.asarray(np.nextafter(x, _INF))


def _gamma(n: int) -> float:
    # gamma_n = n u / (1 - n u), rounded up generously (the factor 1.01 also covers the
    # rounding of the cheap bound it multiplies: a few more relative u's).
    nu = n * _U
    if nu >= 0.01:
        raise UnsupportedOperation("matmul", "float", f"dot products of length {n} are too long")
    return 1.01 * nu / (1.0 - nu)


def _sum_up(x: Array, axis: Any) -> Array:
    """An upper bound of the exact sum of the NONNEGATIVE `x` over `axis`."""
    n = int(np.prod([x.shape[a] for a in np.atleast_1d(axis)])) if x.ndim else 1
    s = np.sum(x, axis=axis)
    return _up(s * (1.0 + _gamma(max(n, 1))) + n * _TINY)


def _mul_dn(a: Any, b: Any) -> Array:
    return _dn(np.multiply(a, b))


def _mul_up(a: Any, b: Any) -> Array:
    return _up(np.multiply(a, b))


def _mag(lo: Array, hi: Array) -> Array:
    return np.maximum(np.abs(lo), np.abs(hi))


# -- the graph --------------------------------------------------------------------
def as_graph(graph_or_model: Any, params: Mapping[str, Any], shape: tuple[int, ...]) -> Graph:
    """The graph of `graph_or_model` (a Graph, or an nn.Built traced in eval mode)."""
    if isinstance(graph_or_model, Graph):
        return graph_or_model
    forward = getattr(graph_or_model, "forward", None)
    if forward is None:
        raise TypeError(f"expected a Graph or an nn.Built model, got {type(graph_or_model)}")
    buffers = getattr(graph_or_model, "buffers", None)

    def fn(p: Any, x: Any) -> Any:
        y, _ = forward(p, x, buffers=buffers, mode="eval")
        return y

    shapes = {k: tuple(np.shape(_host(v))) for k, v in params.items()}
    return trace(fn, {"x": shape}, shapes, "float")


def _host(v: Any) -> Array:
    data = v.numpy() if hasattr(v, "numpy") else v
    return np.asarray(data, dtype=np.float64)


def _constant(node: Any, params: Mapping[str, Array]) -> tuple[Array, Array]:
    """The point interval of a leaf parameter, literal or const node."""
    if node.op == "param":
        name = node.name
        if name not in params:
            raise KeyError(f"params: missing {name!r}")
        v = _host(params[name])
        if v.shape != node.shape:
            raise ShapeError(f"params[{name!r}] has shape {v.shape}, the graph needs {node.shape}")
        return v, v
    if node.op == "literal":
        lit = node.attr("data")
        assert isinstance(lit, Literal)
        try:
            v = np.array([float.fromhex(t) for t in lit.items], dtype=np.float64)
        except ValueError:
            raise UnsupportedOperation(
                "literal", "float", f"node %{node.id}: not a float literal") from None
        return v.reshape(node.shape), v.reshape(node.shape)
    value = node.attr("value")
    if isinstance(value, (int, float, Fraction)):
        f = float(value)
        if Fraction(f) == Fraction(value):
            return np.array(f), np.array(f)
        return _dn(f), _up(f)
    raise UnsupportedOperation(node.op, "float", f"node %{node.id}: constant {value!r}")


def _depends_on_input(g: Graph) -> list[bool]:
    dep = [False] * len(g.nodes)
    for n in g.nodes:
        dep[n.id] = n.op == "input" or any(dep[a] for a in n.args)
    return dep


def _check_graph(g: Graph) -> None:
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise UnsupportedOperation(
            "graph", "float", f"bounds need one input and one output, got {len(g.inputs)} "
            f"inputs and {len(g.outputs)} outputs"
        )


# -- IBP --------------------------------------------------------------------------
def _ibp_nodes(g: Graph, params: Mapping[str, Any], lo: Array, hi: Array) -> list[Any]:
    """Interval bounds (lo, hi) for every node."""
    _check_graph(g)
    out: list[Any] = [None] * len(g.nodes)
    for n in g.nodes:
        if n.op == "input":
            if lo.shape != n.shape or hi.shape != n.shape:
                raise ShapeError(f"input box has shape {lo.shape}/{hi.shape}, graph input "
                                 f"{n.name!r} has {n.shape}")
            out[n.id] = (lo, hi)
        elif n.is_leaf or n.is_constant:
            out[n.id] = _constant(n, params)
        else:
            out[n.id] = _ibp_op(n, [out[a] for a in n.args])
    return out


def _ibp_op(n: Any, xs: list[tuple[Array, Array]]) -> tuple[Array, Array]:
    op, at = n.op, n.attr_dict
    (al, ah) = xs[0]
    if op in ("reshape", "transpose", "broadcast_to"):
        def f(a: Array) -> Array:
            if op == "reshape":
                return np.reshape(a, at["shape"])
            if op == "transpose":
                return np.transpose(a, at["axes"])
            return np.broadcast_to(a, at["shape"])
        return f(al), f(ah)
    if op == "neg":
        return -ah, -al
    if op in ("add", "sub"):
        bl, bh = xs[1]
        if op == "sub":
            bl, bh = -bh, -bl
        return _dn(al + bl), _up(ah + bh)
    if op in ("mul", "div"):
        bl, bh = xs[1]
        if op == "div":
            if np.any((bl <= 0) & (bh >= 0)):
                raise UnsupportedOperation("div", "float", f"node %{n.id}: divisor may be 0")
            bl, bh = _dn(1.0 / bh), _up(1.0 / bl)
        cands_lo = [_mul_dn(p, q) for p in (al, ah) for q in (bl, bh)]
        cands_hi = [_mul_up(p, q) for p in (al, ah) for q in (bl, bh)]
        return np.minimum.reduce(cands_lo), np.maximum.reduce(cands_hi)
    if op == "matmul":
        return _ibp_matmul(n, xs[0], xs[1])
    if op in ("relu", "leaky_relu", "tanh", "sigmoid", "exp"):
        return _act_lo(op, at, al), _act_hi(op, at, ah)
    if op in ("sum", "mean"):
        axes = at.get("axes")
        keep = bool(at.get("keepdims", False))
        axis = tuple(axes) if axes is not None else None
        cnt = al.size // max(np.sum(al, axis=axis, keepdims=keep).size, 1)
        err = _gamma(max(cnt, 1)) * np.sum(_mag(al, ah), axis=axis, keepdims=keep) + cnt * _TINY
        sl, sh = _dn(np.sum(al, axis=axis, keepdims=keep) - err), _up(
            np.sum(ah, axis=axis, keepdims=keep) + err)
        return (sl, sh) if op == "sum" else (_dn(sl / cnt), _up(sh / cnt))
    if op == "softmax":
        return _ibp_softmax(int(at["axis"]), al, ah)
    raise UnsupportedOperation(op, "float", f"node %{n.id}: no bound rule for {op!r}")


def _ibp_matmul(n: Any, x: tuple[Array, Array], w: tuple[Array, Array]) -> tuple[Array, Array]:
    (xl, xh), (wl, wh) = x, w
    if wl is not wh and not np.array_equal(wl, wh):
        raise UnsupportedOperation("matmul", "float", f"node %{n.id}: right operand must be "
                                   "a constant (weights), not an interval")
    wt = wl
    if wt.ndim != 2:
        raise UnsupportedOperation("matmul", "float", f"node %{n.id}: weights must be 2-d")
    # No elementwise outward rounding of the (often large) input: its rounding is folded
    # into the scalar factors below and only the output is widened. With mid = fl((l+h)/2)
    # and rad = fl((h-l)/2): the exact max(h - mid, mid - l) <= rad(1+2u) + 2u|mid| + 2T
    # (T = 2^-1074 per halving). So over the box, x@W lies in mid@W +- E with
    #   E <= (rad@|W|)(1+2u) + 2u |mid|@|W| + 2T colsum|W|,
    # fl(mid@W) is off by <= g ||mid||_1 max_k|W_k.| (+ k tiny), exact rad@|W| <=
    # fl(rad@|W|)(1+g) (+ k tiny), g = gamma_k (Higham eq. 3.5). The spread is formed from
    # nonnegative terms in <= 4 roundings: 8u more on each factor covers them.
    mid = 0.5 * (xl + xh)
    rad = 0.5 * (xh - xl)
    k = wt.shape[0]
    aw = np.abs(wt)
    yc = mid @ wt
    r = rad @ aw
    g = _gamma(k)
    f_rad = (1.0 + g) * (1.0 + 2 * _U) + 8 * _U
    f_mid = g + 2 * _U + 8 * _U
    wmax = aw.max(axis=0)
    tiny = (k + 1) * 2 * _TINY * (1.0 + wmax)   # colsum|W| <= k max|W|
    err = (f_mid * np.abs(mid).sum(axis=-1, keepdims=True)) * wmax
    spread = r * f_rad + err + tiny
    # The final yc -+ spread rounds by <= u(|yc| + spread) (+ 2^-1075): widening spread by
    # 4u(|yc| + spread) + 2^-1021 covers that and its own roundings, ten times cheaper
    # than np.nextafter. An overflow gives inf - inf = nan, read as unbounded.
    spread = spread + (np.abs(yc) + spread) * (4 * _U) + _TINY
    low, high = yc - spread, yc + spread
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        low, high = np.where(np.isnan(low), -_INF, low), np.where(np.isnan(high), _INF, high)
    return low, high


def _act_lo(op: str, at: Mapping[str, Any], z: Array) -> Array:
    """A lower bound of act(z) (elementwise, exact for relu)."""
    if op == "relu":
        return np.maximum(z, 0.0)
    if op == "leaky_relu":
        s = float(at["negative_slope"])
        return np.where(z >= 0, z, _mul_dn(s, z))
    v = _smooth(op, z)
    lo = _dn(v - 8.0 * np.spacing(np.abs(v)))
    return np.clip(lo, -1.0 if op == "tanh" else 0.0, None)


def _act_hi(op: str, at: Mapping[str, Any], z: Array) -> Array:
    if op == "relu":
        return np.maximum(z, 0.0)
    if op == "leaky_relu":
        s = float(at["negative_slope"])
        return np.where(z >= 0, z, _mul_up(s, z))
    v = _smooth(op, z)
    hi = _up(v + 8.0 * np.spacing(np.abs(v)))
    return np.clip(hi, None, 1.0) if op in ("tanh", "sigmoid") else hi


def _smooth(op: str, z: Array) -> Array:
    with np.errstate(over="ignore"):
        if op == "tanh":
            return np.tanh(z)
        if op == "exp":
            return np.exp(z)
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _ibp_softmax(axis: int, lo: Array, hi: Array) -> tuple[Array, Array]:
    # softmax_i = 1 / (1 + sum_{j != i} exp(z_j - z_i)): decreasing in z_j, increasing in z_i
    shift = np.max(hi, axis=axis, keepdims=True)
    el, eh = _act_lo("exp", {}, _dn(lo - shift)), _act_hi("exp", {}, _up(hi - shift))
    tot_h = _up(np.sum(eh, axis=axis, keepdims=True) * (1 + _gamma(lo.shape[axis])))
    tot_l = _dn(np.sum(el, axis=axis, keepdims=True) * (1 - _gamma(lo.shape[axis])))
    low = _dn(el / _up(tot_h - eh + el))
    high = _up(eh / _dn(np.maximum(tot_l - el + eh, eh)))
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


# -- CROWN ------------------------------------------------------------------------
def _slope_dn(op: str, z: Array) -> Array:
    """A lower bound (>= 0) of the derivative of tanh / sigmoid at z."""
    t = _smooth(op, z)
    d = 1.0 - t * t if op == "tanh" else t * (1.0 - t)
    # absolute error of d is a few u (t carries <= 8 ulp); 1e-14 covers it with room
    return np.maximum(d - 1e-14, 0.0)


def _lines(op: str, at: Mapping[str, Any], lo: Array, hi: Array) -> tuple[Array, ...]:
    """Lines a_l z + b_l <= act(z) <= a_u z + b_u valid for z in [lo, hi] (reals).

    Each intercept is a directed-rounding bound of min (resp. max) of act(z) - a z over the
    interval for the float slope a, found at the points where that extremum can sit: the
    endpoints for a convex / concave g, the left/right end for a monotone g.
    """
    def g_lo(z: Array, a: Array) -> Array:
        return _dn(_act_lo(op, at, z) - _mul_up(a, z))

    def g_hi(z: Array, a: Array) -> Array:
        return _up(_act_hi(op, at, z) - _mul_dn(a, z))

    width = hi - lo
    safe = np.where(width > 0, width, 1.0)
    if op in ("relu", "leaky_relu"):
        s = 0.0 if op == "relu" else float(at["negative_slope"])
        # convex: secant above (max of convex g at the ends); below, the adaptive slope
        # (1 if u >= -l else s), exact intercept 0 since act(z) >= a z for a in {s, 1}
        sec = np.where(width > 0, (_act_hi(op, at, hi) - _act_lo(op, at, lo)) / safe, 1.0)
        sec = np.where(lo >= 0, 1.0, np.where(hi <= 0, s, sec))
        a_u = sec
        b_u = np.maximum(g_hi(lo, a_u), g_hi(hi, a_u))
        a_l = np.where(lo >= 0, 1.0, np.where(hi <= 0, s, np.where(hi >= -lo, 1.0, s)))
        if 0.0 <= s <= 1.0:
            b_l = np.zeros_like(lo)
        else:
            b_l = np.minimum(np.minimum(g_lo(lo, a_l), g_lo(hi, a_l)), 0.0)
        return a_l, b_l, a_u, b_u
    # tanh / sigmoid: convex for z <= 0, concave for z >= 0, derivative unimodal at 0.
    # Slope m = min(act'(lo), act'(hi)) <= act' on [lo, hi], so act(z) - m z is
    # nondecreasing there: its min is at lo and its max at hi, whatever the signs.
    m = np.minimum(_slope_dn(op, lo), _slope_dn(op, hi))
    sec = np.where(width > 0, (_act_hi(op, at, hi) - _act_lo(op, at, lo)) / safe, m)
    a_l = np.where(lo >= 0, sec, m)
    b_l = np.where(lo >= 0, np.minimum(g_lo(lo, a_l), g_lo(hi, a_l)), g_lo(lo, a_l))
    a_u = np.where(hi <= 0, sec, m)
    b_u = np.where(hi <= 0, np.maximum(g_hi(lo, a_u), g_hi(hi, a_u)), g_hi(hi, a_u))
    return a_l, b_l, a_u, b_u


def _feat(a: Array, b: Array) -> tuple[Array, int]:
    """`b` as (batch, features) for a (batch, rows, *features), and the feature count."""
    n = int(np.prod(a.shape[2:]))
    bb = np.broadcast_to(b, (a.shape[0],) + a.shape[2:]).reshape(a.shape[0], n)
    return bb, n


def _absdot_up(absa: Array, v: Array) -> Array:
    """An upper bound of the exact sum over features of absa * v (both NONNEGATIVE)."""
    vv, n = _feat(absa, v)
    s = np.einsum("bmn,bn->bm", absa.reshape(absa.shape[:2] + (n,)), vv)
    return _up(s * (1.0 + _gamma(max(n, 1))) + n * _TINY)


def _dot_lower(a: Array, b: Array, absa: Array | None = None) -> Array:
    """A lower bound of the exact sum over the feature axes of a * b.

    a: (batch, rows, *feat); b: broadcastable to (batch, *feat) -> (batch, rows).
    """
    bb, n = _feat(a, b)
    s = np.einsum("bmn,bn->bm", a.reshape(a.shape[:2] + (n,)), bb)
    if absa is None:
        absa = np.abs(a)
    # each product rounds (u|ab|), the sum adds gamma_n sum|ab|: (gamma_n + 2u) sum |a||b|
    err = _absdot_up(absa, np.abs(bb).reshape((a.shape[0],) + a.shape[2:]))
    return _dn(s - _up(err * (_gamma(max(n, 1)) + 2 * _U)))


class _Backward:
    """One backward CROWN pass from a target node: coefficient arrays, constant, slack."""

    def __init__(self, g: Graph, dep: list[bool], ib: list[Any], pre: dict[int, Any]):
        self.g, self.dep, self.ib, self.pre = g, dep, ib, pre

    def run(self, target: int, spec: Array) -> Array:
        """Lower bounds of spec . v_target over the box: (batch, rows)."""
        g = self.g
        coeff: dict[int, Array] = {target: spec}
        const = np.zeros(spec.shape[:2])
        slack = np.zeros(spec.shape[:2])
        result: Array | None = None
        for n in reversed(g.nodes[: target + 1]):
            a = coeff.pop(n.id, None)
            if a is None:
                continue
            if n.op == "input":
                result = self._concretize(n.id, a)
                continue
            const, slack = self._step(n, a, coeff, const, slack)
        lower = _dn(const - _up(slack))
        if result is not None:
            lower = _dn(lower + result)
        return lower

    def _give(self, coeff: dict[int, Array], node: int, a: Array,
              slack: Array, err_scale: float) -> Array:
        """Add coefficient `a` to `node`; charge err_scale * |a| * mag(node) to slack."""
        if node in coeff:
            a = coeff[node] + a
            err_scale += _U
        coeff[node] = a
        if err_scale:
            lo, hi = self.ib[node]
            charge = _absdot_up(np.abs(a), _mag(lo, hi))
            slack = _up(slack + _up(charge * (1.01 * err_scale) + _TINY))
        return slack

    def _step(self, n: Any, a: Array, coeff: dict[int, Array],
              const: Array, slack: Array) -> tuple[Array, Array]:
        op, at, dep, ib = n.op, n.attr_dict, self.dep, self.ib
        args = n.args
        if op == "reshape":
            src = ib[args[0]][0].shape
            return const, self._give(coeff, args[0], a.reshape(a.shape[:2] + src[1:]), slack, 0.0)
        if op == "neg":
            return const, self._give(coeff, args[0], -a, slack, 0.0)
        if op in ("add", "sub"):
            for k, arg in enumerate(args):
                sign = -1.0 if (op == "sub" and k == 1) else 1.0
                if dep[arg]:
                    if ib[arg][0].shape != n.shape:
                        raise UnsupportedOperation(op, "float", f"node %{n.id}: broadcasting "
                                                   "between two input-dependent values")
                    slack = self._give(coeff, arg, sign * a, slack, 0.0)
                else:
                    const = _dn(const + _dot_lower(sign * a, ib[arg][0]))
            return const, slack
        if op in ("mul", "div"):
            var, cst = (args[0], args[1])
            if dep[cst] or not dep[var] or (op == "mul" and dep[cst]):
                if op == "mul" and not dep[args[0]]:
                    var, cst = args[1], args[0]
                else:
                    raise UnsupportedOperation(op, "float", f"node %{n.id}: CROWN needs one "
                                               "constant operand")
            c = ib[cst][0]
            point = np.array_equal(c, ib[cst][1])
            if not point or np.broadcast_shapes(c.shape, n.shape) != n.shape:
                raise UnsupportedOperation(op, "float", f"node %{n.id}: non-point constant")
            if ib[var][0].shape != n.shape:
                raise UnsupportedOperation(op, "float", f"node %{n.id}: broadcast variable")
            c1 = np.expand_dims(np.broadcast_to(c, n.shape), 1)
            new = a * c1 if op == "mul" else a / c1
            return const, self._give(coeff, var, new, slack, 2 * _U)
        if op == "matmul":
            x, w = args
            if dep[w] or not dep[x] or len(n.shape) != 2:
                raise UnsupportedOperation("matmul", "float", f"node %{n.id}: CROWN needs "
                                           "(batch, n) @ constant weights")
            wt = ib[w][0]
            new = a @ wt.T
            k = wt.shape[1]
            # |fl(a @ W^T) - a @ W^T| <= gamma_k ||a_row||_1 max_k |W_jk|, times mag(x)
            rowl1 = _sum_up(np.abs(a), 2)
            lo, hi = ib[x]
            wmag = _sum_up(np.abs(wt).max(axis=1)[None, :] * _mag(lo, hi), 1)
            charge = _up(_gamma(k) * rowl1 * wmag[:, None] + k * _TINY)
            slack = _up(slack + charge)
            return const, self._give(coeff, x, new, slack, 0.0)
        if op in _CROWN_OPS:
            lo, hi = self.pre[args[0]]
            a_l, b_l, a_u, b_u = _lines(op, at, lo, hi)
            pos, neg = np.maximum(a, 0.0), np.minimum(a, 0.0)
            new = pos * a_l[:, None] + neg * a_u[:, None]
            if np.any(b_l):
                const = _dn(const + _dot_lower(pos, b_l, pos))
            const = _dn(const + _dot_lower(neg, b_u, -neg))
            return const, self._give(coeff, args[0], new, slack, 2 * _U)
        raise UnsupportedOperation(op, "float", f"node %{n.id}: CROWN has no rule for {op!r}"
                                   " (use ibp)")

    def _concretize(self, node: int, a: Array) -> Array:
        # a.x >= a.mid - |a|.rad for x in [mid - rad, mid + rad]; fl(a.mid) is off by at most
        # (gamma_n + 2u)|a|.|mid|: one pass of |a| against rad(1+g) + |mid|(g+2u), rounded up
        lo, hi = self.ib[node]
        mid = 0.5 * (lo + hi)
        rad = _up(np.maximum(_up(hi - mid), _up(mid - lo)))
        bb, n = _feat(a, mid)
        g = _gamma(max(n, 1))
        center = np.einsum("bmn,bn->bm", a.reshape(a.shape[:2] + (n,)), bb)
        v = _up(_up(rad * (1.0 + g)) + _up(np.abs(mid) * (g + 2 * _U)))
        spread = _absdot_up(np.abs(a), v)
        return _dn(center - spread)


def _prepare(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any,
             covers: str) -> tuple[Graph, Array, Array]:
    if covers not in COVERS:
        raise ValueError(f"covers must be one of {COVERS}, got {covers!r}")
    lo, hi = _host(lower), _host(upper)
    if lo.shape != hi.shape:
        raise ShapeError(f"lower has shape {lo.shape}, upper {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
        raise ValueError("the input box needs finite lower <= upper everywhere")
    if lo.ndim < 2:
        raise ShapeError(f"the input box needs a batch axis first, got shape {lo.shape}")
    return as_graph(graph_or_model, params, lo.shape), lo, hi


def _spec(C: Any, g: Graph, batch: int) -> Array:
    out = g.nodes[g.outputs[0][1]]
    width = int(np.prod(out.shape[1:]))
    if C is None:
        c = np.broadcast_to(np.eye(width), (batch, width, width))
    else:
        c = np.asarray(C, dtype=np.float64)
        if c.ndim == 2:
            c = np.broadcast_to(c, (batch,) + c.shape)
        if c.ndim != 3 or c.shape[0] != batch or c.shape[2] != width:
            raise ShapeError(f"C must be (rows, {width}) or ({batch}, rows, {width}), "
                             f"got {np.shape(C)}")
    return np.asarray(c).reshape((batch, c.shape[1]) + out.shape[1:])


def _float32_extension(b: Bounds, g: Graph, params: Mapping[str, Any], lo: Array,
                       hi: Array, spec: Array) -> Bounds:
    """Widen `b` by the rounding error of the binary32 execution (ieee32exec) of the graph,
    from `torchlean.verify.rounding.error_bound`, mapped through |C|."""
    try:
        rounding = importlib.import_module("torchlean.verify.rounding")
    except ImportError:
        raise UnsupportedOperation(
            "bounds", "float32", "covers='float32' needs torchlean.verify.rounding."
            "error_bound, which is not available; use covers='real'"
        ) from None
    for name, v in params.items():
        h = _host(v)
        if np.any(h.astype(np.float32).astype(np.float64) != h):
            raise UnsupportedOperation("bounds", "float32", f"covers='float32': parameter "
                                       f"{name!r} is not a binary32 value (build in float32)")
    report = rounding.error_bound(g, params, (lo, hi), "ieee32exec",
                                  inputs_are_float32=False, attribute=False)
    err = np.asarray(next(iter(report.bounds.values())), dtype=np.float64)
    err = err.reshape(err.shape[0], 1, -1)
    s = np.abs(spec.reshape(spec.shape[0], spec.shape[1], -1))
    widen = _sum_up(s * err, 2)
    return Bounds(_dn(b.lower - widen), _up(b.upper + widen), b.method + "+float32")


def ibp(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any, *,
        C: Any = None, covers: str = "real") -> Bounds:
    """Interval bound propagation: sound bounds of C y over the box [lower, upper].

    `lower`/`upper` have the input's shape, batch first; `C` is (rows, outputs) or
    (batch, rows, outputs), identity by default. Returns `Bounds` (batch, rows).
    """
    g, lo, hi = _prepare(graph_or_model, params, lower, upper, covers)
    nodes = _ibp_nodes(g, params, lo, hi)
    yl, yh = nodes[g.outputs[0][1]]
    batch = lo.shape[0]
    spec = _spec(C, g, batch)
    if C is None:  # the identity spec: the output bounds themselves, nothing to round
        b = Bounds(yl.reshape(batch, -1), yh.reshape(batch, -1), "ibp")
        return _float32_extension(b, g, params, lo, hi, spec) if covers == "float32" else b
    rows = spec.shape[1]
    yl, yh = yl.reshape(batch, 1, -1), yh.reshape(batch, 1, -1)
    s = spec.reshape(batch, rows, -1)
    pos, neg = np.maximum(s, 0.0), np.minimum(s, 0.0)
    low = _dot_lower(pos, yl[:, 0]) + _dot_lower(neg, yh[:, 0])
    high = -(_dot_lower(-pos, yh[:, 0]) + _dot_lower(-neg, yl[:, 0]))
    b = Bounds(_dn(low), _up(high), "ibp")
    return _float32_extension(b, g, params, lo, hi, spec) if covers == "float32" else b


def crown(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any, *,
          C: Any = None, covers: str = "real", ibp_intermediate: bool = True) -> Bounds:
    """CROWN (backward linear relaxation, Zhang et al. 2018): sound bounds of C y.

    Pre-activation bounds of every relu / leaky_relu / tanh / sigmoid input are computed by
    CROWN too, intersected with IBP (`ibp_intermediate`). Same arguments as `ibp`.
    """
    b, _ = crown_with_layers(graph_or_model, params, lower, upper, C=C, covers=covers,
                             ibp_intermediate=ibp_intermediate)
    return b


def crown_with_layers(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any,
                      *, C: Any = None, covers: str = "real", ibp_intermediate: bool = True
                      ) -> tuple[Bounds, dict[int, tuple[Array, Array]]]:
    """`crown`, also returning the pre-activation bounds by node id (for certificates)."""
    g, lo, hi = _prepare(graph_or_model, params, lower, upper, covers)
    ib = _ibp_nodes(g, params, lo, hi)
    dep = _depends_on_input(g)
    pre: dict[int, Any] = {}
    bw = _Backward(g, dep, ib, pre)
    batch = lo.shape[0]
    for n in g.nodes:
        if n.op in _CROWN_OPS and dep[n.id]:
            z = n.args[0]
            if z in pre:
                continue
            shape = g.nodes[z].shape
            w = int(np.prod(shape[1:]))
            eye = np.eye(w).reshape((w,) + shape[1:])
            spec = np.broadcast_to(np.concatenate([eye, -eye]), (batch, 2 * w) + shape[1:])
            low = bw.run(z, spec)
            zl, zh = low[:, :w].reshape(shape), (-low[:, w:]).reshape(shape)
            if ibp_intermediate:
                zl, zh = np.maximum(zl, ib[z][0]), np.minimum(zh, ib[z][1])
            pre[z] = (zl, zh)
            # the tighter pre-activation bounds also tighten the magnitudes used later
            ib[z] = (zl, zh)
            ib[n.id] = (_act_lo(n.op, n.attr_dict, zl), _act_hi(n.op, n.attr_dict, zh))
    out = g.outputs[0][1]
    spec = _spec(C, g, batch)
    both = np.concatenate([spec, -spec], axis=1)
    low = bw.run(out, both)
    rows = spec.shape[1]
    res = Bounds(low[:, :rows], -low[:, rows:], "crown")
    if covers == "float32":
        res = _float32_extension(res, g, params, lo, hi, spec)
    return res, pre


def intersect(a: Bounds, b: Bounds) -> Bounds:
    """The intersection of two sound bounds of the same quantity (still sound)."""
    if a.lower.shape != b.lower.shape:
        raise ShapeError(f"bounds of shapes {a.lower.shape} and {b.lower.shape}")
    return Bounds(np.maximum(a.lower, b.lower), np.minimum(a.upper, b.upper),
                  f"{a.method}&{b.method}")


def margin_matrix(label: int, classes: int) -> Array:
    """The spec rows y_label - y_j for every j != label: (classes - 1, classes)."""
    if not 0 <= label < classes:
        raise ValueError(f"label {label} is not a class of {classes}")
    rows = [np.eye(classes)[label] - np.eye(classes)[j] for j in range(classes) if j != label]
    return np.array(rows)
