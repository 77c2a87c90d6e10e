"""The entry points: `ibp`, `crown`, `crown_with_layers`, `alpha_crown`, each sound over the reals
(covers="real") or for the binary32 execution (covers="float32")."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ...runtime.graph import Graph
from ...spec.errors import ShapeError, UnsupportedOperation
from ..outward import dn, magnitude, sum_up, up
from .alpha_crown import (
    Chain,
    SparseMap,
    activation_chain,
    optimize_intermediate,
    optimize_lines,
    optimize_slopes,
)
from .backward import CROWN, Backward, dot_lower
from .ibp import IBP, ibp_nodes
from .problem import (
    LEAVES,
    Array,
    Bounds,
    batched_nodes,
    depends_on_input,
    host,
    prepare,
    spec_matrix,
)
from .relaxations import RELAXATION

__all__ = ["ibp", "crown", "crown_with_layers", "alpha_crown", "alpha_crown_with_slopes"]

BetaFn = Callable[[Mapping[int, tuple[Array, Array]]], Mapping[int, Any]]


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
        h = host(v)
        if np.any(h.astype(np.float32).astype(np.float64) != h):
            raise UnsupportedOperation("bounds", "float32", f"covers='float32': parameter "
                                       f"{name!r} is not a binary32 value (build in float32)")
    report = rounding.error_bound(g, params, (lo, hi), "ieee32exec",
                                  inputs_are_float32=False, attribute=False)
    err = np.asarray(next(iter(report.bounds.values())), dtype=np.float64)
    err = err.reshape(err.shape[0], 1, -1)
    s = np.abs(spec.reshape(spec.shape[0], spec.shape[1], -1))
    widen = sum_up(s * err, 2)
    return Bounds(dn(b.lower - widen), up(b.upper + widen), b.method + "+float32")


def ibp(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any, *,
        C: Any = None, covers: str = "real") -> Bounds:
    """Interval bound propagation: sound bounds of C y over the box [lower, upper].

    `lower`/`upper` have the input's shape, batch first; `C` is (rows, outputs) or
    (batch, rows, outputs), identity by default. Returns `Bounds` (batch, rows). An op
    without an IBP rule raises `UnsupportedOperation` before any work.
    """
    g, lo, hi = prepare(graph_or_model, params, lower, upper, covers)
    nodes = ibp_nodes(g, params, lo, hi, only=g.outputs[0][1])
    yl, yh = nodes[g.outputs[0][1]]
    batch = lo.shape[0]
    spec = spec_matrix(C, g, batch)
    if C is None:  # the identity spec: the output bounds themselves, nothing to round
        b = Bounds(yl.reshape(batch, -1), yh.reshape(batch, -1), "ibp")
        return _float32_extension(b, g, params, lo, hi, spec) if covers == "float32" else b
    rows = spec.shape[1]
    yl, yh = yl.reshape(batch, 1, -1), yh.reshape(batch, 1, -1)
    s = spec.reshape(batch, rows, -1)
    pos, neg = np.maximum(s, 0.0), np.minimum(s, 0.0)
    low = dot_lower(pos, yl[:, 0]) + dot_lower(neg, yh[:, 0])
    high = -(dot_lower(-pos, yh[:, 0]) + dot_lower(-neg, yl[:, 0]))
    b = Bounds(dn(low), up(high), "ibp")
    return _float32_extension(b, g, params, lo, hi, spec) if covers == "float32" else b


def crown(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any, *,
          C: Any = None, covers: str = "real", ibp_intermediate: bool = True,
          relu_slopes: Mapping[Any, Any] | None = None,
          relu_splits: Mapping[int, Any] | None = None) -> Bounds:
    """CROWN (backward linear relaxation, Zhang et al. 2018): sound bounds of C y.

    The input intervals of every relaxed node are computed by CROWN too, intersected with
    IBP (`ibp_intermediate`). Same arguments as `ibp`; `relu_slopes` and `relu_splits` as
    in `crown_with_layers`.
    """
    b, _ = crown_with_layers(graph_or_model, params, lower, upper, C=C, covers=covers,
                             ibp_intermediate=ibp_intermediate, relu_slopes=relu_slopes,
                             relu_splits=relu_splits)
    return b


_BINARY = ("mul", "div", "maximum", "minimum")


def _relaxed_operands(n: Any, dep: list[bool]) -> tuple[int, ...]:
    """The operands whose intervals the relaxation of node `n` uses."""
    if n.op in RELAXATION.rules:
        return (n.args[0],)
    if n.op in _BINARY and (n.op != "div" or dep[n.args[1]]) and (
            n.op == "div" or all(dep[a] for a in n.args) or n.op in ("maximum", "minimum")):
        return tuple(a for a in n.args if dep[a])
    return ()


def _identity_spec(shape: tuple[int, ...], batch: int) -> Array:
    w = int(np.prod(shape[1:]))
    eye = np.eye(w).reshape((w,) + shape[1:])
    return np.broadcast_to(np.concatenate([eye, -eye]), (batch, 2 * w) + shape[1:])


def crown_with_layers(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any,
                      *, C: Any = None, covers: str = "real", ibp_intermediate: bool = True,
                      relu_slopes: Mapping[Any, Any] | None = None,
                      relu_splits: Mapping[int, Any] | None = None,
                      relu_coefficients: dict[int, Array] | None = None,
                      relu_betas: BetaFn | None = None,
                      relu_alphas: BetaFn | None = None,
                      relu_intervals: Mapping[int, tuple[Any, Any]] | None = None,
                      relu_floor: Mapping[int, tuple[Any, Any]] | None = None
                      ) -> tuple[Bounds, dict[int, tuple[Array, Array]]]:
    """`crown`, also returning by node id the interval of every input of a relaxed node
    (the operand of relu, tanh, ...; both operands of a product, quotient, max or min of
    input-dependent values), as used by the relaxations (for certificates).

    `relu_slopes` (alpha-CROWN) maps a relu node id to the lower-line slopes of its
    unstable neurons in the final pass, shape (batch, 2 * rows, *node shape without the
    batch axis): rows [0, rows) serve the lower bounds of C y, rows [rows, 2 rows) those
    of -C y (the upper bounds). Slopes are clipped to [0, 1], where every slope gives a
    valid line relu(z) >= s z; a NaN slope, or a wrong shape, raises ValueError.
    A key `(z, relu)` (full alpha-CROWN) gives instead the slopes of relu node `relu` in
    the intermediate pass that bounds node `z` (an operand of a relaxed node, after
    `relu`), shape (batch, 2 * size of z, *relu shape without the batch axis): rows
    [0, size) serve z's lower bounds, the rest its upper bounds, in z's flattened order.

    `relu_splits` (ReLU branch and bound) restricts each batch row to a subdomain of its
    box: it maps a relu node id to an integer array of shape (batch, *node shape without
    the batch axis), +1 where that row keeps only the points with the pre-activation
    z >= 0 (active), -1 where z <= 0 (inactive), 0 where z is free. The split intersects
    z's interval ([max(l, 0), u] or [l, min(u, 0)]) before its relaxation and before any
    later interval is computed, so the bounds hold over the subdomain's points. A row
    whose constraints contradict an interval (z >= 0 asked where u < 0, or z <= 0 where
    l > 0) holds no point: its bounds are lower +inf and upper -inf. A relu node the
    pass does not relax (a constant one) keeps its split unused (sound, no tighter).
    With `relu_splits` (even empty) the intervals are computed as the exact checker of
    relu-split certificates (`vnn.exact_chain`) computes them, so that the two agree: IBP
    from the clamped intervals, CROWN only on the neurons IBP leaves unstable, and the
    final bounds intersected with the output's interval. `relu_intervals` (with
    `relu_splits`) gives by relu node id intervals of its operand, (batch, *node shape
    without the batch axis) each, already known to hold on every row's subdomain (a
    parent subdomain's, in branch and bound): they are used as computed (then clamped by
    the splits), which saves their CROWN passes; soundness rests on that claim.

    `relu_coefficients`, when a dict, receives by relu node id the coefficient of that
    node's output in the final pass for the lower bounds of C y: (batch, rows, *node
    shape without the batch axis), and by the input node's id the input's (a branching
    heuristic and a search for counterexamples read them; nothing sound does).

    `relu_betas` (beta-CROWN, Wang et al. 2021; with `relu_splits`) is called once the
    intermediate intervals are known, with the pre-activation intervals by relu node id,
    and returns by relu node id multipliers beta >= 0 of shape (batch, 2 * rows, *node
    shape without the batch axis) (rows as for `relu_slopes`): the final pass bounds
    `C y - sum beta * sign * z` instead, a lower bound of C y on the subdomain for any
    such betas (sign * z >= 0 there); betas on free neurons are ignored. A negative or
    non-finite beta, or a wrong shape, raises ValueError or ShapeError.

    `relu_alphas` (alpha-beta-CROWN; with `relu_splits`) is called like `relu_betas`,
    before it, and returns final-pass slopes by relu node id as `relu_slopes` takes them
    (checked and clipped the same way; they replace its entries for those nodes): slopes
    chosen knowing the subdomains' intervals.

    With `relu_splits`, intermediate slopes (`relu_slopes` keys `(z, relu)`) serve the
    CROWN passes on the neurons IBP leaves unstable (as the exact checker uses them), and
    `relu_floor` gives by relu node id intervals of its operand (broadcastable to
    (batch, *node shape without the batch axis)) that hold on the whole box (a root's,
    in branch and bound): each IBP interval is intersected with them first (so the
    exact checker, given the same floor, computes the same), soundness resting on that
    claim.
    """
    g, lo, hi = prepare(graph_or_model, params, lower, upper, covers)
    batch = lo.shape[0]
    final = {k: v for k, v in (relu_slopes or {}).items() if not isinstance(k, tuple)}
    inner = _checked_pair_slopes(g, {k: v for k, v in (relu_slopes or {}).items()
                                     if isinstance(k, tuple)}, batch)
    splits = None if relu_splits is None else _checked_splits(g, relu_splits, batch)
    known = None
    if relu_intervals is not None:
        if splits is None:
            raise ValueError("relu_intervals: known intervals go with relu_splits")
        known = _checked_intervals(g, relu_intervals, batch)
    empty = np.zeros(batch, dtype=bool)
    floor = None
    if relu_floor is not None:
        if splits is None:
            raise ValueError("relu_floor: floor intervals go with relu_splits")
        floor = _checked_floor(g, relu_floor, batch)
    bw, pre = _intermediate(g, params, lo, hi, ibp_intermediate,
                            slopes_for=(lambda z, _pre: inner.get(z)) if inner else None,
                            splits=splits, empty=empty, known=known, floor=floor)
    spec = spec_matrix(C, g, batch)
    if final:
        bw.relu_slopes = _checked_slopes(g, final, batch, 2 * spec.shape[1])
    if relu_alphas is not None:
        if splits is None:
            raise ValueError("relu_alphas: slopes chosen per subdomain need relu_splits")
        assert relu_splits is not None
        intervals = {r: pre[g.nodes[r].args[0]] for r in relu_splits}
        bw.relu_slopes = {**bw.relu_slopes, **_checked_slopes(
            g, relu_alphas(intervals), batch, 2 * spec.shape[1])}
    if relu_betas is not None:
        if splits is None:
            raise ValueError("relu_betas: multipliers of split constraints need relu_splits")
        assert relu_splits is not None
        intervals = {r: pre[g.nodes[r].args[0]] for r in relu_splits}
        bw.relu_betas = _beta_terms(g, relu_betas(intervals), relu_splits, batch,
                                    2 * spec.shape[1])
    if relu_coefficients is not None:
        bw.record = frozenset(n.id for n in g.nodes if n.op in ("relu", "input"))
        bw.record_rows = spec.shape[1]
    res = _final(bw, g, spec, "crown")
    if splits is not None:  # interval arithmetic on the output too, as the exact checker
        res = _max_with_interval(res, bw.ib[g.outputs[0][1]], spec)
    if relu_coefficients is not None:
        relu_coefficients.update(bw.recorded)
    if np.any(empty):  # no point: every bound holds vacuously
        res = Bounds(np.where(empty[:, None], np.inf, res.lower),
                     np.where(empty[:, None], -np.inf, res.upper), res.method)
    if covers == "float32":
        res = _float32_extension(res, g, params, lo, hi, spec)
    return res, pre


def _checked_slopes(g: Graph, slopes: Mapping[int, Any], batch: int, rows: int
                    ) -> dict[int, Array]:
    """The slopes by relu node, checked (relu node, shape, no NaN) and clipped to [0, 1]."""
    out: dict[int, Array] = {}
    for node, s in slopes.items():
        if not 0 <= node < len(g.nodes) or g.nodes[node].op != "relu":
            raise ValueError(f"relu_slopes: node %{node} is not a relu node of the graph")
        arr = np.asarray(s, dtype=np.float64)
        want = (batch, rows) + g.nodes[node].shape[1:]
        if arr.shape != want:
            raise ShapeError(f"relu_slopes: node %{node} needs slopes of shape {want}, "
                             f"got {arr.shape}")
        if np.any(np.isnan(arr)):
            raise ValueError(f"relu_slopes: node %{node} has a NaN slope")
        out[node] = np.clip(arr, 0.0, 1.0)
    return out


def _checked_pair_slopes(g: Graph, slopes: Mapping[Any, Any], batch: int
                         ) -> dict[int, dict[int, Array]]:
    """Intermediate-pass slopes keyed (bounded node, relu node), checked as
    `_checked_slopes` does, grouped by bounded node."""
    out: dict[int, dict[int, Array]] = {}
    for key, s in slopes.items():
        if len(key) != 2 or not all(isinstance(k, (int, np.integer)) for k in key):
            raise ValueError(f"relu_slopes: key {key!r} is not (bounded node, relu node)")
        z, relu = int(key[0]), int(key[1])
        if not 0 <= z < len(g.nodes) or not z > relu:
            raise ValueError(f"relu_slopes: node %{z} is not a node after relu %{relu}")
        rows = 2 * int(np.prod(g.nodes[z].shape[1:]))
        out.setdefault(z, {}).update(_checked_slopes(g, {relu: s}, batch, rows))
    return out


def _beta_terms(g: Graph, betas: Mapping[int, Any], splits: Mapping[int, Any], batch: int,
                rows: int) -> dict[int, Array]:
    """The coefficient terms -beta * sign by relu node, checked (split relu node, shape,
    beta finite and >= 0)."""
    out: dict[int, Array] = {}
    for node, b in betas.items():
        if node not in splits:
            raise ValueError(f"relu_betas: node %{node} has no relu_splits entry")
        arr = np.asarray(b, dtype=np.float64)
        want = (batch, rows) + g.nodes[node].shape[1:]
        if arr.shape != want:
            raise ShapeError(f"relu_betas: node %{node} needs multipliers of shape {want}, "
                             f"got {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"relu_betas: node %{node} has a negative or non-finite beta")
        sign = np.asarray(splits[node]).astype(np.float64)[:, None]
        out[node] = -(arr * sign)  # exact: sign is -1, 0 or 1
    return out


def _max_with_interval(b: Bounds, out: tuple[Array, Array], spec: Array) -> Bounds:
    """`b` intersected with the bounds of the spec rows by the output's interval."""
    batch, rows = spec.shape[0], spec.shape[1]
    yl = np.broadcast_to(out[0], (batch,) + spec.shape[2:])
    yh = np.broadcast_to(out[1], (batch,) + spec.shape[2:])
    pos, neg = np.maximum(spec, 0.0), np.minimum(spec, 0.0)
    low = dn(dot_lower(pos, yl) + dot_lower(neg, yh))
    high = up(-(dot_lower(-pos, yh) + dot_lower(-neg, yl)))
    assert low.shape == (batch, rows)
    return Bounds(np.maximum(b.lower, low), np.minimum(b.upper, high), b.method)


def _checked_intervals(g: Graph, given: Mapping[int, tuple[Any, Any]], batch: int
                       ) -> dict[int, tuple[Array, Array]]:
    """The known intervals by pre-activation node, checked (relu node, shapes, lo <= hi,
    no NaN)."""
    out: dict[int, tuple[Array, Array]] = {}
    for node, (a, b) in given.items():
        if not 0 <= node < len(g.nodes) or g.nodes[node].op != "relu":
            raise ValueError(f"relu_intervals: node %{node} is not a relu node of the graph")
        want = (batch,) + g.nodes[node].shape[1:]
        lo, hi = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if lo.shape != want or hi.shape != want:
            raise ShapeError(f"relu_intervals: node %{node} needs intervals of shape {want}, "
                             f"got {lo.shape} and {hi.shape}")
        if not np.all(lo <= hi):  # also refuses NaN
            raise ValueError(f"relu_intervals: node %{node} has lower > upper or a NaN")
        out[g.nodes[node].args[0]] = (lo, hi)
    return out


def _checked_floor(g: Graph, given: Mapping[int, tuple[Any, Any]], batch: int
                   ) -> dict[int, tuple[Array, Array]]:
    """The floor intervals by pre-activation node, broadcast to (batch, *shape without
    batch) and checked (relu node, lo <= hi, no NaN)."""
    out: dict[int, tuple[Array, Array]] = {}
    for node, (a, b) in given.items():
        if not 0 <= node < len(g.nodes) or g.nodes[node].op != "relu":
            raise ValueError(f"relu_floor: node %{node} is not a relu node of the graph")
        want = (batch,) + g.nodes[node].shape[1:]
        try:
            lo = np.broadcast_to(np.asarray(a, dtype=np.float64), want)
            hi = np.broadcast_to(np.asarray(b, dtype=np.float64), want)
        except ValueError:
            raise ShapeError(f"relu_floor: node %{node} needs intervals broadcastable to "
                             f"{want}, got {np.shape(a)} and {np.shape(b)}") from None
        if not np.all(lo <= hi):
            raise ValueError(f"relu_floor: node %{node} has lower > upper or a NaN")
        out[g.nodes[node].args[0]] = (lo, hi)
    return out


def _checked_splits(g: Graph, splits: Mapping[int, Any], batch: int) -> dict[int, Array]:
    """The splits by pre-activation node (the relu's operand), checked: relu node, shape
    (batch, *shape without batch), values in {-1, 0, 1}."""
    out: dict[int, Array] = {}
    for node, s in splits.items():
        if not 0 <= node < len(g.nodes) or g.nodes[node].op != "relu":
            raise ValueError(f"relu_splits: node %{node} is not a relu node of the graph")
        arr = np.asarray(s)
        want = (batch,) + g.nodes[node].shape[1:]
        if arr.shape != want:
            raise ShapeError(f"relu_splits: node %{node} needs signs of shape {want}, "
                             f"got {arr.shape}")
        if not np.all((arr == -1) | (arr == 0) | (arr == 1)):
            raise ValueError(f"relu_splits: node %{node} has a sign outside -1, 0, 1")
        out[g.nodes[node].args[0]] = arr.astype(np.int8)
    return out


def _apply_splits(signs: Array, zl: Array, zh: Array, empty: Array) -> tuple[Array, Array]:
    """z's interval intersected with its split half-lines; batch rows left with an
    interval empty by more than 2^-30 are marked in `empty`. An empty interval becomes
    the point 0 (a superset, so sound; it keeps later passes finite): a row empty by less
    is bounded on as if not empty, which an independent exact re-derivation, whose
    intervals differ from these by roundings, can then reproduce."""
    zl = np.where(signs > 0, np.maximum(zl, 0.0), zl)
    zh = np.where(signs < 0, np.minimum(zh, 0.0), zh)
    bad = zl > zh
    if np.any(bad):
        clear = zl - zh > 2.0**-30 * (1.0 + np.abs(zl) + np.abs(zh))
        empty |= np.any(clear.reshape(clear.shape[0], -1), axis=1)
        zl, zh = np.where(bad, 0.0, zl), np.where(bad, 0.0, zh)
    return zl, zh


def _final(bw: Backward, g: Graph, spec: Array, method: str) -> Bounds:
    """The backward pass of the spec rows (and their negations) from the output."""
    out = g.outputs[0][1]
    both = np.concatenate([spec, -spec], axis=1)
    low = bw.run({out: both})
    rows = spec.shape[1]
    return Bounds(low[:, :rows], -low[:, rows:], method)


MAX_ROW_MAGNITUDE = 2.0**52
"""CROWN's charges cover the underflow of each coefficient product with a flat
n * 2^-1021 (n products): enough while a node's values, summed in magnitude over one batch
row, stay below 2^52 (each product's underflow is at most 2^-1075, times that sum)."""


def _check_magnitudes(g: Graph, ib: list[Any], dep: list[bool]) -> None:
    """Refuse a box whose values grow past MAX_ROW_MAGNITUDE (an infinite bound is
    sound as it is: its charge is infinite)."""
    for n in g.nodes:
        if not dep[n.id] or ib[n.id] is None:
            continue
        lo, hi = ib[n.id]
        mag = magnitude(np.asarray(lo), np.asarray(hi))
        rows = mag.reshape(mag.shape[0], -1).sum(axis=1) if mag.ndim else mag.reshape(1)
        big = rows[np.isfinite(rows)]
        if big.size and big.max() > MAX_ROW_MAGNITUDE:
            raise UnsupportedOperation(
                n.op, "float", f"{g.describe(n)}: values up to {big.max():.3g} in one row "
                f"exceed 2^52, beyond CROWN's underflow allowance (use ibp)", analysis="crown")


SlopesFor = Callable[[int, Mapping[int, tuple[Array, Array]]], "dict[int, Array] | None"]


def _intermediate(g: Graph, params: Mapping[str, Any], lo: Array, hi: Array,
                  ibp_intermediate: bool, slopes_for: SlopesFor | None = None,
                  splits: Mapping[int, Array] | None = None, empty: Array | None = None,
                  known: Mapping[int, tuple[Array, Array]] | None = None,
                  floor: Mapping[int, tuple[Array, Array]] | None = None
                  ) -> tuple[Backward, dict[int, tuple[Array, Array]]]:
    """The backward engine over `g` with every relaxed operand's interval tightened by
    CROWN (intersected with IBP), and those intervals by node id. `slopes_for(z, pre)`,
    given the node about to be bounded and the intervals so far, may return relu slopes
    (checked, in the layout of `Backward.relu_slopes`) for that pass. `splits` (by operand
    node: signs, see `crown_with_layers`) clamp those intervals as they are computed;
    rows they leave empty are marked in `empty` (batch,)."""
    CROWN.check_ops(g.nodes, skip=LEAVES, describe=lambda n: g.describe(g.nodes[n.id]))
    IBP.check_ops(g.nodes, skip=LEAVES, describe=lambda n: g.describe(g.nodes[n.id]))
    ib = ibp_nodes(g, params, lo, hi)
    dep = depends_on_input(g, constant=lambda k: ib[k][0] is ib[k][1] or bool(
        np.array_equal(ib[k][0], ib[k][1])))
    _check_magnitudes(g, ib, dep)
    batch = lo.shape[0]
    bat = batched_nodes(g, dep, batch)
    pre: dict[int, Any] = {}
    diff: dict[int, Any] = {}
    bw = Backward(g, dep, bat, ib, pre, diff)

    def tighten(z: int) -> None:
        if z in pre or not bat[z]:
            return
        if splits is not None:
            if known and z in known:
                shape = g.nodes[z].shape
                pre[z] = ib[z] = (known[z][0].reshape(shape), known[z][1].reshape(shape))
            else:
                tighten_unstable(z)
            split(z)
            return
        if _ibp_is_exact(g, z, dep):  # CROWN would give the same interval, at great cost
            pre[z] = ib[z]
            split(z)
            return
        shape = g.nodes[z].shape
        w = int(np.prod(shape[1:]))
        got = (slopes_for(z, pre) or {}) if slopes_for is not None else {}
        # relu nodes get slopes; other activations (alpha-CROWN) tangent points
        bw.relu_slopes = {k: v for k, v in got.items() if g.nodes[k].op == "relu"}
        bw.row_points = {k: v for k, v in got.items() if g.nodes[k].op != "relu"}
        low = bw.run({z: _identity_spec(shape, batch)})
        bw.relu_slopes, bw.row_points = {}, {}
        zl, zh = low[:, :w].reshape(shape), (-low[:, w:]).reshape(shape)
        if ibp_intermediate:
            zl, zh = np.maximum(zl, ib[z][0]), np.minimum(zh, ib[z][1])
        pre[z] = (zl, zh)
        ib[z] = (zl, zh)  # the tighter intervals also tighten the magnitudes used later
        split(z)

    def tighten_unstable(z: int) -> None:
        # with splits: CROWN on the neurons IBP leaves unstable only (the others' IBP
        # interval is kept), IBP from the tightened intervals: what the exact checker of
        # relu-split certificates (vnn.exact_chain) computes, so that its bounds agree
        il, ih = (np.broadcast_to(v, g.nodes[z].shape) for v in ib[z])
        if floor and z in floor:  # intervals known over the whole box (a root's)
            il, ih = np.maximum(il, floor[z][0]), np.minimum(ih, floor[z][1])
            ih = np.maximum(il, ih)  # an empty meet: the point (left to the split marks)
        shape = g.nodes[z].shape
        unstable = ((il < 0) & (ih > 0)).reshape(batch, -1)
        cols = np.flatnonzero(np.any(unstable, axis=0))
        zl = np.array(il, dtype=np.float64).reshape(batch, -1)
        zh = np.array(ih, dtype=np.float64).reshape(batch, -1)
        if cols.size and not _ibp_is_exact(g, z, dep):
            w = int(np.prod(shape[1:]))
            eye = np.zeros((cols.size, w))
            eye[np.arange(cols.size), cols] = 1.0
            spec = np.broadcast_to(np.concatenate([eye, -eye]).reshape(
                (2 * cols.size,) + shape[1:]), (batch, 2 * cols.size) + shape[1:])
            given = slopes_for(z, pre) if slopes_for is not None else None
            # the intermediate slopes of these neurons' rows (lower, then upper bounds)
            rows = np.concatenate([cols, w + cols])
            bw.relu_slopes = {r: np.ascontiguousarray(a[:, rows])
                              for r, a in (given or {}).items()}
            low = bw.run({z: spec})
            bw.relu_slopes = {}
            keep = unstable[:, cols]
            zl[:, cols] = np.where(keep, np.maximum(low[:, : cols.size], zl[:, cols]),
                                   zl[:, cols])
            zh[:, cols] = np.where(keep, np.minimum(-low[:, cols.size:], zh[:, cols]),
                                   zh[:, cols])
        pre[z] = ib[z] = (zl.reshape(shape), zh.reshape(shape))

    def split(z: int) -> None:
        signs = splits.get(z) if splits else None
        if signs is None:
            return
        assert empty is not None
        got = _apply_splits(signs.reshape(g.nodes[z].shape), pre[z][0], pre[z][1], empty)
        pre[z] = got
        ib[z] = got

    for n in g.nodes:
        if not dep[n.id] or not bat[n.id]:
            continue
        operands = _relaxed_operands(n, dep)
        if not operands:
            if splits is not None and n.op in IBP.rules:  # IBP from the clamped intervals
                new = IBP.rules[n.op](n, [ib[a] for a in n.args])
                ib[n.id] = (np.maximum(new[0], ib[n.id][0]), np.minimum(new[1], ib[n.id][1]))
            continue
        for z in operands:
            tighten(z)
        if n.op in ("maximum", "minimum"):
            diff[n.id] = _difference(bw, n, batch)
        new = IBP.rules[n.op](n, [ib[a] for a in n.args])
        ib[n.id] = new if n.op in RELAXATION.rules else (
            np.maximum(new[0], ib[n.id][0]), np.minimum(new[1], ib[n.id][1]))
    for n in g.nodes:  # operands CROWN did not need to tighten (constants, point boxes)
        if n.op in RELAXATION.rules or n.op in _BINARY:
            for z in n.args[:1] if n.op in RELAXATION.rules else n.args:
                pre.setdefault(z, ib[z])
    return bw, dict(pre)


_COPY = frozenset({"reshape", "transpose", "slice", "unslice", "concat"})
_WITH_CONSTANT = frozenset({"add", "sub", "mul", "div", "neg"})


def _ibp_is_exact(g: Graph, z: int, dep: list[bool]) -> bool:
    """Whether IBP's interval of node `z` is its exact range over the box (up to
    rounding), so that a CROWN pass for it would gain nothing: `z` is one matmul with a
    constant matrix of entries each one input entry or a constant (made by reshape,
    transpose, slice, unslice, concat and elementwise ops with constants: a linear layer,
    a conv in im2col form), no input entry twice in one dot product, then elementwise ops
    with constants. Over a box, sum c_i x_i over distinct x_i has range exactly
    sum c_i mid_i +- sum |c_i| rad_i, which interval arithmetic computes (auto_LiRPA
    bounds a first linear layer by IBP likewise)."""
    node = g.nodes[z]
    while node.op in _WITH_CONSTANT or node.op == "reshape":
        var = [a for a in node.args if dep[a]]
        if len(var) != 1 or (node.op == "div" and node.args[0] != var[0]):
            return False
        node = g.nodes[var[0]]
    if node.op != "matmul" or dep[node.args[0]] == dep[node.args[1]]:
        return False
    operand = node.args[0] if dep[node.args[0]] else node.args[1]
    axis = -1 if operand == node.args[0] else -2  # the contracted axis of the operand
    labels = _labels(g, operand, dep)
    if labels is None or labels.ndim < 2:
        return False
    moved = np.sort(np.moveaxis(labels, axis, -1), axis=-1)
    repeated = (moved[..., 1:] == moved[..., :-1]) & (moved[..., 1:] > 0)
    return not bool(np.any(repeated))


def _labels(g: Graph, k: int, dep: list[bool]) -> Array | None:
    """Which input entry (numbered from 1; 0 for none) each entry of node `k` is a
    multiple or shift of, when `k` is made from the input by copies and elementwise ops
    with constants; else None."""
    n = g.nodes[k]
    if not dep[k]:
        return np.zeros(n.shape)
    if n.op == "input":
        return np.arange(1, int(np.prod(n.shape)) + 1, dtype=np.float64).reshape(n.shape)
    if n.op in _WITH_CONSTANT:
        var = [a for a in n.args if dep[a]]
        got = _labels(g, var[0], dep) if len(var) == 1 else None
        return None if got is None else np.broadcast_to(got, n.shape)
    if n.op not in _COPY:
        return None
    parts = [_labels(g, a, dep) for a in n.args]
    if any(p is None for p in parts):
        return None
    src = parts[0]
    assert src is not None
    if n.op == "reshape":
        return src.reshape(n.shape)
    if n.op == "transpose":
        return np.transpose(src, tuple(int(x) for x in n.attr("axes")))
    if n.op == "concat":
        return np.concatenate(parts, axis=int(n.attr("axis")))  # type: ignore[arg-type]
    sl = tuple(slice(s, e, st) for s, e, st in n.attr("spec"))
    if n.op == "slice":
        return src[sl]
    out = np.zeros(n.shape)  # unslice: the operand placed into zeros
    out[sl] = src
    return out


# the optimiser holds each affine segment as a matrix (its nonzero entries when mostly
# zeros, as a convolution's): at most this many entries in all; and probes a chain of at
# most _PROBE_LIMIT entries as dense matrices to find them
_DENSE_LIMIT = 4_000_000
_PROBE_LIMIT = 100_000_000


def _stored(chain: Any) -> int:
    return sum(int(w.values.size) if isinstance(w, SparseMap) else int(w.size)
               for w in chain.weights)


def alpha_crown(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any, *,
                C: Any = None, covers: str = "real", iterations: int = 20,
                lr: float = 0.1) -> Bounds:
    """alpha-CROWN (Xu et al. 2021): sound bounds of C y, never looser than `crown`.

    The lower-line slopes of the unstable ReLUs are chosen by `iterations` steps of
    projected Adam (step `lr`) in plain floats (untrusted): separately for each
    intermediate pre-activation bound (one slope set per (bounded node, earlier relu),
    per bounded neuron and side, raising each neuron's bounds) layer by layer, then per
    spec row for the final pass over those tightened intervals. tanh, sigmoid, erf and
    the convex / concave smooth activations (exp, softplus, log, ...) likewise get
    per-row tangent points for their lines (see `relaxations.tangent_family`), each
    line made valid in the sound pass. The sound
    CROWN passes are re-run with all the slopes and the result intersected with plain
    CROWN. A graph that is not a chain of affine maps and those activations over
    independent batch rows gets plain CROWN, with method
    "crown (alpha-crown: not an affine-activation chain)"; so does a chain
    whose segments hold over 4e6 nonzero entries in all (or over 1e8 entries as dense
    matrices), with method "crown (alpha-crown: chain too large for the optimiser)".
    Same other arguments as `ibp`.
    """
    res, _ = _alpha_crown(graph_or_model, params, lower, upper, C=C, covers=covers,
                          iterations=iterations, lr=lr, keep=False)
    return res


def alpha_crown_with_slopes(graph_or_model: Any, params: Mapping[str, Any], lower: Any,
                            upper: Any, *, C: Any = None, covers: str = "real",
                            iterations: int = 20, lr: float = 0.1
                            ) -> tuple[Bounds, dict[Any, Array]]:
    """`alpha_crown`, also returning the ReLU slopes it found, clipped to [0, 1], keyed
    as `crown_with_layers`'s `relu_slopes` takes them; empty when it fell back to CROWN
    and for chains with other activations (their bounds rest on tangent points too,
    which `relu_slopes` cannot carry: the verdict engine, which certifies with these
    slopes, keeps to ReLU chains).
    The returned bounds are those of `crown_with_layers` with these slopes, intersected
    with plain CROWN's."""
    return _alpha_crown(graph_or_model, params, lower, upper, C=C, covers=covers,
                        iterations=iterations, lr=lr, keep=True)


def _alpha_crown(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any, *,
                 C: Any, covers: str, iterations: int, lr: float, keep: bool
                 ) -> tuple[Bounds, dict[Any, Array]]:
    g, lo, hi = prepare(graph_or_model, params, lower, upper, covers)
    bw, plain_pre = _intermediate(g, params, lo, hi, True)
    batch = lo.shape[0]
    spec = spec_matrix(C, g, batch)
    plain = _final(bw, g, spec, "crown")
    res = plain
    found: dict[Any, Array] = {}
    widths = [int(np.prod(n.shape[1:])) for n in g.nodes if n.op in ("input", "relu")]
    widths.append(int(np.prod(g.nodes[g.outputs[0][1]].shape[1:])))
    dense = sum(a * b for a, b in zip(widths, widths[1:], strict=False))
    too_large = dense > _PROBE_LIMIT
    try:
        if too_large:
            raise UnsupportedOperation("graph", "float", "too large", analysis="alpha-crown")
        chain = activation_chain(g, params)
        too_large = _stored(chain) > _DENSE_LIMIT
        if too_large:
            raise UnsupportedOperation("graph", "float", "too large", analysis="alpha-crown")
    except UnsupportedOperation:
        why = ("chain too large for the optimiser" if too_large
               else "not an affine-activation chain")
        res = Bounds(plain.lower, plain.upper, f"crown (alpha-crown: {why})")
    else:
        box = (lo.reshape(batch, -1), hi.reshape(batch, -1))
        layer = {g.nodes[r].args[0]: j for j, r in enumerate(chain.relus)}

        def flat(pre: Mapping[int, tuple[Array, Array]], j: int) -> list[tuple[Array, Array]]:
            return [tuple(np.asarray(v).reshape(batch, -1)  # type: ignore[misc]
                          for v in pre[g.nodes[r].args[0]]) for r in chain.relus[:j]]

        def slopes_for(z: int, pre: Mapping[int, tuple[Array, Array]]
                       ) -> dict[int, Array] | None:
            j = layer.get(z, 0)
            if j == 0:
                return None
            zl, zh = (np.asarray(v).reshape(batch, -1) for v in plain_pre[z])
            got = optimize_intermediate(chain, j, flat(pre, j), *box,
                                        unstable=(zl < 0) & (zh > 0)
                                        if chain.op(j) == "relu" else None,
                                        iterations=iterations, lr=lr)
            if got is None:
                return None
            rows = 2 * int(np.prod(g.nodes[z].shape[1:]))
            checked, points = _split_found(g, chain, got, batch, rows)
            if keep and not chain.ops:
                found.update({(z, r): s for r, s in checked.items()})
            return {**checked, **points}

        bw, pre = _intermediate(g, params, lo, hi, True, slopes_for=slopes_for)
        rows = spec.shape[1]
        both = np.concatenate([spec, -spec], axis=1).reshape(batch, 2 * rows, -1)
        optimize = optimize_lines if chain.ops else optimize_slopes
        slopes = optimize(chain, flat(pre, len(chain.relus)), both, *box,
                          iterations=iterations, lr=lr)
        bw.relu_slopes, bw.row_points = _split_found(g, chain, slopes, batch, 2 * rows)
        if keep and not chain.ops:  # ReLU chains only (see alpha_crown_with_slopes)
            found.update(bw.relu_slopes)
        tuned = _final(bw, g, spec, "alpha-crown")
        res = Bounds(np.maximum(plain.lower, tuned.lower), np.minimum(plain.upper, tuned.upper),
                     "alpha-crown")
    if covers == "float32":
        res = _float32_extension(res, g, params, lo, hi, spec)
    return res, found


def _split_found(g: Graph, chain: Chain, got: Sequence[Array], batch: int, rows: int
                 ) -> tuple[dict[int, Array], dict[int, Array]]:
    """The optimiser's results per activation of the chain, in the coefficient layout:
    relu slopes (checked, clipped to [0, 1]) and other activations' tangent points
    (2, batch, rows, *shape) (any values: `tangent_lines` projects them and makes every
    line valid)."""
    slopes, points = {}, {}
    for k, (r, s) in enumerate(zip(chain.relus, got, strict=False)):
        if chain.op(k) == "relu":
            slopes[r] = s.reshape((batch, rows) + g.nodes[r].shape[1:])
        else:
            points[r] = s.reshape((2, batch, rows) + g.nodes[r].shape[1:])
    return _checked_slopes(g, slopes, batch, rows), points


def _difference(bw: Backward, n: Any, batch: int) -> tuple[Array, Array]:
    """An interval of x - y over the box for n = maximum/minimum(x, y), in n's shape:
    IBP's, intersected with CROWN's where both are per-row nodes of n's shape."""
    x, y = n.args
    xl, xh = bw.bounds_of(x)
    yl, yh = bw.bounds_of(y)
    dl = np.broadcast_to(dn(xl - yh), n.shape)
    dh = np.broadcast_to(up(xh - yl), n.shape)
    g = bw.g
    if all(bw.bat[a] and g.nodes[a].shape == n.shape for a in (x, y)) and x != y:
        spec = _identity_spec(n.shape, batch)
        w = spec.shape[1] // 2
        low = bw.run({x: spec, y: -spec})
        dl = np.maximum(dl, low[:, :w].reshape(n.shape))
        dh = np.minimum(dh, (-low[:, w:]).reshape(n.shape))
    return np.ascontiguousarray(dl), np.ascontiguousarray(dh)
