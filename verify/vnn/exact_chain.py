"""An exact, independent lower bound of `c . f(x)` over a box, for graphs that are chains
of affine maps and ReLUs: the trusted core of the tree-certificate checker.

The affine maps are read off the graph exactly: each segment between two ReLUs is run over
`exact` (Fractions) on the zero vector and the unit vectors, so `W` and `b` are the exact
rationals the graph's weights hold; the op list of each segment is checked affine first.

Bounds are CROWN's (Zhang et al. 2018) done in exact rational arithmetic: every
pre-activation bound is interval arithmetic intersected with a back-substitution through
the earlier layers; each ReLU is relaxed by `a z <= relu(z) <= s (z - l)` on [l, u] with
the adaptive `a` (1 when u >= -l, else 0) and `s >= u / (u - l)`. To keep the numbers
small every value is dyadic, held as integers times 2^-e: pre-activation bounds are
rounded outward to a multiple of 2^-GRID and `s` rounded up to a multiple of 2^-GRID. Both
keep the relaxation valid (a larger box, a steeper upper line through (l, 0)), so the bound
stays sound over the reals; nothing is computed in floating point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph, Node, interpret
from ...runtime.graph.batching import rebatch
from ...runtime.graph.ir import freeze_attrs
from ...spec.errors import UnsupportedOperation
from .confirm import exact_graph
from .exact_matmul import LIMB_WORK, Limbs, exact_dot, limbs_dot, split

__all__ = ["ExactChain", "ChainSlopes", "exact_chain"]

Obj = np.ndarray[Any, np.dtype[np.object_]]
Relax = tuple[Obj, Obj, Obj, Obj, int]  # a, s, -s*l, l, exponent of l
Interval = tuple[Obj, Obj, int]  # lower ints, upper ints, exponent
GRID = 48  # bits after the binary point kept in pre-activation bounds and upper slopes
_AFFINE = frozenset({"matmul", "add", "sub", "neg", "mul", "div", "reshape", "transpose",
                     "broadcast_to", "slice", "unslice", "concat", "sum", "mean"})
_ONE_VARIABLE = frozenset({"matmul", "mul", "div"})


def _dyadic(values: Sequence[Fraction], direction: int) -> tuple[Obj, int]:
    """Fractions as integers times 2^-e: exact where the denominators are powers of two,
    else rounded down (direction -1) or up (+1) to a multiple of 2^-GRID."""
    e = 0
    for q in values:
        d = q.denominator
        e = max(e, d.bit_length() - 1 if d & (d - 1) == 0 else GRID)
    out = np.empty(len(values), dtype=object)
    for i, q in enumerate(values):
        num = q.numerator << e
        out[i] = num // q.denominator if direction < 0 else -((-num) // q.denominator)
    return out, e


def _shift(a: Obj, e: int, to: int) -> Obj:
    """a * 2^-e written with exponent `to` >= e."""
    return a * (1 << (to - e)) if to > e else a


def _round(a: Obj, e: int, direction: int) -> tuple[Obj, int]:
    """a * 2^-e rounded down / up to a multiple of 2^-GRID (exact when e <= GRID)."""
    if e <= GRID:
        return a, e
    k = e - GRID
    if direction < 0:
        return np.asarray(a >> k, dtype=object), GRID
    return np.asarray(-((-a) >> k), dtype=object), GRID


@dataclass(frozen=True)
class ChainSlopes:
    """alpha-CROWN lower-line slopes for `ExactChain.lower_bound`, each array integers
    (object or int64) times 2^-exponent, exponent in [0, GRID], values in [0, 1].

    `final[i]`: the slopes of ReLU i (0-based) in the pass of the spec rows, shape
    (rows, width of ReLU i), or None for CROWN's adaptive slopes. `inner[k]`: for the
    pass bounding ReLU k's input, one array per earlier ReLU i < k, shape
    (2 * width of ReLU k, width of ReLU i): row j for neuron j's lower bound, row
    width + j for its upper bound; or None (adaptive). Only unstable neurons use them."""

    final: tuple[tuple[Any, int] | None, ...]
    inner: tuple[tuple[tuple[Any, int], ...] | None, ...]


def _slope_ints(arr: tuple[Any, int], shape: tuple[int, int], what: str) -> Obj:
    """The slope array as Python integers scaled to exponent GRID, checked: its shape,
    an exponent in [0, GRID] and every value in [0, 1]; raises ValueError naming `what`."""
    ints, e = arr
    a = np.asarray(ints)
    if a.shape != shape:
        raise ValueError(f"{what}: slopes of shape {a.shape}, the chain needs {shape}")
    if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e <= GRID:
        raise ValueError(f"{what}: slope exponent {e!r} outside [0, {GRID}]")
    if a.dtype != object and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what}: slopes are not integers")
    if a.dtype != object and a.dtype != np.bool_:  # numpy integers: checked at once
        bad = np.argwhere((a < 0) | (a > (1 << e)))
        if len(bad) == 0:
            return np.asarray(a.astype(object) * (1 << (GRID - e)), dtype=object)
    out = np.empty(shape, dtype=object)
    for idx, v in np.ndenumerate(a):
        v = int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None
        if v is None or not 0 <= v <= 1 << e:
            raise ValueError(f"{what}: slope {a[idx]!r} * 2^-{e} at {idx} outside [0, 1]")
        out[idx] = v << (GRID - e)
    return out


@dataclass(frozen=True)
class ExactChain:
    """z_1 = W_1 x + b_1, z_k = W_k relu(z_{k-1}) + b_k, output y = z_L; every W, b as
    integers with one exponent per layer (value = ints * 2^-e)."""

    weights: tuple[tuple[Obj, int], ...]  # (out, in) ints, exponent
    biases: tuple[tuple[Obj, int], ...]
    # by layer: the limbs of W, of its positive part and of its negative part (made once)
    _limbs: dict[int, tuple[Limbs, Limbs, Limbs]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def _weight_limbs(self, k: int) -> tuple[Limbs, Limbs, Limbs]:
        """Layer k's weights as limbs: W, max(W, 0), min(W, 0)."""
        if k not in self._limbs:
            w = self.weights[k][0]
            whole = split(w)
            self._limbs[k] = (whole, whole.positive(w > 0), whole.positive(w < 0))
        return self._limbs[k]

    def _checked(self, slopes: ChainSlopes | None, rows: int
                 ) -> tuple[list[Obj | None], list[list[Obj] | None]]:
        """The slopes as integers at exponent GRID (None: adaptive), checked against the
        chain's widths and the number of spec rows; raises ValueError."""
        widths = self.layer_widths()
        if slopes is None:
            return [None] * len(widths), [None] * len(widths)
        if len(slopes.final) != len(widths) or len(slopes.inner) != len(widths):
            raise ValueError(f"slopes for {len(slopes.final)} / {len(slopes.inner)} ReLU "
                             f"layers, the chain has {len(widths)}")
        final = [None if f is None else _slope_ints(f, (rows, widths[i]), f"final ReLU {i}")
                 for i, f in enumerate(slopes.final)]
        inner: list[list[Obj] | None] = []
        for k, per in enumerate(slopes.inner):
            if per is None:
                inner.append(None)
                continue
            if len(per) != k:
                raise ValueError(f"ReLU {k}'s pass has slopes for {len(per)} earlier ReLUs, "
                                 f"not {k}")
            inner.append([_slope_ints(a, (2 * widths[k], widths[i]), f"ReLU {k} pass, ReLU {i}")
                          for i, a in enumerate(per)])
        return final, inner

    def lower_bound(self, lower: Sequence[Fraction], upper: Sequence[Fraction],
                    rows: Sequence[Sequence[Fraction]], slopes: ChainSlopes | None = None
                    ) -> list[Fraction]:
        """Exact sound lower bounds of `c . y` over the box, for each row c; with
        `slopes`, the given alpha-CROWN lower lines replace the adaptive ones on unstable
        neurons (checked: ValueError for a wrong shape or a slope outside [0, 1])."""
        got = self.lower_bound_split(lower, upper, rows, {}, slopes=slopes)
        assert got is not None  # no sign constraint: never empty
        return got

    def layer_widths(self) -> tuple[int, ...]:
        """The neurons of each ReLU layer (the pre-activations z_1 .. z_{L-1})."""
        return tuple(int(w.shape[0]) for w, _ in self.weights[:-1])

    def lower_bound_split(self, lower: Sequence[Fraction], upper: Sequence[Fraction],
                          rows: Sequence[Sequence[Fraction]],
                          signs: Mapping[tuple[int, int], int],
                          betas: Sequence[Mapping[tuple[int, int], Fraction]] = (),
                          slopes: ChainSlopes | None = None,
                          floor: Sequence[Interval] | None = None) -> list[Fraction] | None:
        """Exact sound lower bounds of `c . y` over the points of the box whose
        pre-activations meet `signs` ((layer k, neuron j) -> +1: z_{k+1, j} >= 0, -1:
        z_{k+1, j} <= 0; k counts ReLU layers from 0); None when no point can meet them
        (a constraint contradicts a sound interval of its neuron). Each constraint
        clamps its neuron's interval (exactly: 0 is on every grid) before the ReLU is
        relaxed and before later layers are bounded, which the points meeting the
        constraints satisfy; keys out of range raise ValueError.

        `betas[i]` (beta-CROWN multipliers for row i, by constrained neuron; dyadic,
        >= 0) make the final back-substitution bound `c . y - sum beta * sign * z`,
        below c . y wherever the constraints hold; a beta on an unconstrained neuron, a
        negative or a non-dyadic one raises ValueError. `slopes` as in `lower_bound`.

        `floor` (from `intervals` over a box containing this one) gives per ReLU layer
        intervals that hold on every point of the box: each layer's IBP interval is
        intersected with it before CROWN tightens the neurons still unstable."""
        final, inner = self._checked(slopes, len(rows))
        widths = self.layer_widths()
        for (k, j), sign in signs.items():
            if not (0 <= k < len(widths) and 0 <= j < widths[k] and sign in (-1, 1)):
                raise ValueError(f"sign constraint {(k, j)}: {sign} is out of range")
        terms = self._beta_terms(betas, signs, len(rows)) if betas else {}
        got = self._layers(lower, upper, signs, inner, floor)
        if got is None:
            return None
        relax, box, (hl, hu, eh), _ = got
        # each row scaled by the lcm D of its denominators: integers, bounded exactly,
        # then divided by D > 0
        scale = [math.lcm(*(c.denominator for c in r)) for r in rows]
        spec = np.array([[int(c * d) for c in r] for r, d in zip(rows, scale, strict=True)],
                        dtype=object)
        e_c = 0
        low, e_low = self._back(len(self.weights) - 1, spec, e_c, relax, box, final, terms)
        # interval arithmetic on the output too: sometimes tighter than back-substitution
        yl, yu, ey = self._ibp(len(self.weights) - 1, hl, hu, eh)
        sp = np.where(spec > 0, spec, 0)
        by_interval = exact_dot(sp, yl) + exact_dot(spec - sp, yu)
        return [max(Fraction(int(v), 1 << e_low), Fraction(int(w), 1 << (e_c + ey))) / d
                for v, w, d in zip(low, by_interval, scale, strict=True)]

    def intervals(self, lower: Sequence[Fraction], upper: Sequence[Fraction],
                  slopes: ChainSlopes | None = None) -> list[Interval]:
        """Sound exact intervals (lower ints, upper ints, exponent) of every ReLU layer's
        pre-activations over the box, as `lower_bound_split` computes them with no
        constraint (IBP, then CROWN on the unstable neurons with `slopes`' inner
        passes; its final slopes are not used)."""
        _, inner = self._checked(slopes, 0)
        got = self._layers(lower, upper, {}, inner, None)
        assert got is not None  # no constraint: never empty
        return got[3]

    def _layers(self, lower: Sequence[Fraction], upper: Sequence[Fraction],
                signs: Mapping[tuple[int, int], int], inner: list[list[Obj] | None],
                floor: Sequence[Interval] | None
                ) -> tuple[list[Relax], tuple[Obj, Obj, int], tuple[Obj, Obj, int],
                           list[Interval]] | None:
        """The relaxation of every ReLU layer over the box's points meeting `signs`
        (None when none can), the box as integers, the last ReLU layer's output
        interval (integers, exponent), and every layer's pre-activation interval."""
        widths = self.layer_widths()
        if floor is not None and len(floor) != len(widths):
            raise ValueError(f"floor intervals for {len(floor)} ReLU layers, the chain has "
                             f"{len(widths)}")
        found: list[Interval] = []
        xl, el = _dyadic(lower, -1)
        xu, eu = _dyadic(upper, +1)
        e_x = max(el, eu)
        box = (_shift(xl, el, e_x), _shift(xu, eu, e_x), e_x)
        relax: list[Relax] = []
        hl, hu, eh = box
        for k in range(len(self.weights) - 1):
            zl, zu, ez = self._ibp(k, hl, hu, eh)
            zl, ez_l = _round(zl, ez, -1)
            zu, ez_u = _round(zu, ez, +1)
            e = max(ez_l, ez_u)
            zl, zu = _shift(zl, ez_l, e), _shift(zu, ez_u, e)
            if floor is not None:
                fl, fu, ef = floor[k]
                if len(fl) != len(zl) or len(fu) != len(zl):
                    raise ValueError(f"floor intervals of ReLU layer {k}: {len(fl)} "
                                     f"neurons, the chain has {len(zl)}")
                e2 = max(e, ef)
                zl, zu = _shift(zl, e, e2), _shift(zu, e, e2)
                fl, fu = _shift(fl, ef, e2), _shift(fu, ef, e2)
                zl = np.asarray(np.where(fl > zl, fl, zl), dtype=object)
                zu = np.asarray(np.where(fu < zu, fu, zu), dtype=object)
                e = e2
            unstable = [j for j in range(len(zl)) if zl[j] < 0 < zu[j]]
            if unstable:
                width = len(zl)
                spec = np.zeros((2 * len(unstable), width), dtype=object)
                for i, j in enumerate(unstable):
                    spec[i, j], spec[len(unstable) + i, j] = 1, -1
                picked = None if inner[k] is None else [
                    a[[*unstable, *(len(zl) + j for j in unstable)]]
                    for a in inner[k]]  # type: ignore[union-attr]
                low, e_low = self._back(k, spec, 0, relax, box, picked)
                low_l, el2 = _round(low[: len(unstable)], e_low, -1)
                neg_u, eu2 = _round(low[len(unstable):], e_low, -1)
                e2 = max(e, el2, eu2)
                zl, zu = _shift(zl, e, e2), _shift(zu, e, e2)
                low_l, neg_u = _shift(low_l, el2, e2), _shift(neg_u, eu2, e2)
                e = e2
                for i, j in enumerate(unstable):
                    zl[j] = max(zl[j], low_l[i])
                    zu[j] = min(zu[j], -neg_u[i])
            for (layer, j), sign in signs.items():
                if layer != k:
                    continue
                if sign > 0:
                    zl[j] = max(zl[j], 0)
                else:
                    zu[j] = min(zu[j], 0)
                if zl[j] > zu[j]:
                    return None
            if floor is not None and np.any(zl > zu):  # the floor meets no point here
                return None
            found.append((zl.copy(), zu.copy(), e))
            relax.append(self._relax(zl, zu, e))
            hl = np.asarray(np.where(zl > 0, zl, 0), dtype=object)
            hu = np.asarray(np.where(zu > 0, zu, 0), dtype=object)
            eh = e
        return relax, box, (hl, hu, eh), found

    def _ibp(self, k: int, hl: Obj, hu: Obj, eh: int) -> tuple[Obj, Obj, int]:
        (w, ew), (b, eb) = self.weights[k], self.biases[k]
        if w.size >= LIMB_WORK:
            _, wp_l, wn_l = self._weight_limbs(k)
            hl_l, hu_l = split(hl), split(hu)
            lo = limbs_dot(wp_l, hl_l).ints() + limbs_dot(wn_l, hu_l).ints()
            hi = limbs_dot(wp_l, hu_l).ints() + limbs_dot(wn_l, hl_l).ints()
        else:
            wp = np.where(w > 0, w, 0)
            wn = w - wp
            lo = wp.dot(hl) + wn.dot(hu)
            hi = wp.dot(hu) + wn.dot(hl)
        e = max(ew + eh, eb)
        return (_shift(lo, ew + eh, e) + _shift(b, eb, e),
                _shift(hi, ew + eh, e) + _shift(b, eb, e), e)

    @staticmethod
    def _relax(zl: Obj, zu: Obj, e: int) -> Relax:
        """Per neuron: lower slope a (0/1), upper slope s (ints, exponent GRID), the upper
        line's intercept -s*l (ints, exponent GRID + e), and l."""
        n = len(zl)
        a = np.zeros(n, dtype=object)
        s = np.zeros(n, dtype=object)
        c = np.zeros(n, dtype=object)
        one = 1 << GRID
        for j in range(n):
            lo, hi = zl[j], zu[j]
            if lo >= 0:
                a[j], s[j] = 1, one
            elif hi <= 0:
                a[j], s[j] = 0, 0
            else:
                a[j] = 1 if hi >= -lo else 0
                s[j] = -((-(hi << GRID)) // (hi - lo))  # ceil(u / (u - l) * 2^GRID)
                c[j] = -s[j] * lo
        return a, s, c, zl, e

    def _beta_terms(self, betas: Sequence[Mapping[tuple[int, int], Fraction]],
                    signs: Mapping[tuple[int, int], int], n_rows: int
                    ) -> dict[int, tuple[Obj, int]]:
        """By layer k: the integers (rows, width) and exponent of -beta * sign."""
        if len(betas) != n_rows:
            raise ValueError(f"{len(betas)} beta rows for {n_rows} rows")
        by_layer: dict[int, list[tuple[int, int, Fraction]]] = {}
        for i, row in enumerate(betas):
            for (k, j), beta in row.items():
                d = beta.denominator
                if (k, j) not in signs or beta < 0 or d & (d - 1):
                    raise ValueError(f"beta {beta} of row {i} on {(k, j)}: not a dyadic "
                                     "multiplier >= 0 of a constrained neuron")
                by_layer.setdefault(k, []).append((i, j, -signs[(k, j)] * beta))
        out = {}
        widths = self.layer_widths()
        for k, items in by_layer.items():
            e = max(q.denominator.bit_length() - 1 for _, _, q in items)
            t = np.zeros((n_rows, widths[k]), dtype=object)
            for i, j, q in items:
                t[i, j] = q.numerator << (e - (q.denominator.bit_length() - 1))
            out[k] = (t, e)
        return out

    def _back(self, k: int, spec: Obj, e_spec: int, relax: Sequence[Relax],
              box: tuple[Obj, Obj, int], slopes: Sequence[Obj | None] | None = None,
              terms: Mapping[int, tuple[Obj, int]] | None = None
              ) -> tuple[Obj, int]:
        """Lower bounds of spec . z_{k+1} (rows of spec over layer k's output) by
        back-substitution to the input box: integers and their exponent. `slopes[i]`
        (rows, width of ReLU i), at exponent GRID, replace ReLU i's adaptive lower slopes
        on its unstable neurons, row by row. `terms[k]` (integers (rows, width), exponent)
        are added to the coefficients of ReLU layer k's inputs (beta-CROWN's split terms)."""
        A, eA = spec, e_spec
        const = np.zeros(spec.shape[0], dtype=object)
        ec = 0
        prod: Limbs | None = None  # A W as limbs, where the product was done in limbs
        cols = np.arange(spec.shape[1])  # the neurons of layer k that A's columns stand for
        for j in range(k, -1, -1):
            (w, ew), (b, eb) = self.weights[j], self.biases[j]
            nonzero = np.any(A != 0, axis=0)
            live = cols[nonzero]  # zero columns (dead neurons) skipped
            A, b = A[:, nonzero], b[live]
            e_new = max(ec, eA + eb)
            const = _shift(const, ec, e_new) + _shift(A.dot(b), eA + eb, e_new)
            ec = e_new
            eA += ew
            if j == 0:
                if A.size * w.shape[1] >= LIMB_WORK:
                    prod = limbs_dot(split(A), self._weight_limbs(j)[0][live])
                else:
                    prod, A = None, A.dot(w[live])
                break
            a, s, c, _, ez = relax[j - 1]
            t, et = terms[j - 1] if terms and j - 1 in terms else (None, 0)
            # only neurons of ReLU j - 1 that are not dead (or carry a split term) get a
            # nonzero coefficient below: the others' columns are not made at all
            cols = np.flatnonzero((a != 0) | (s != 0) | (
                np.zeros(len(a), dtype=bool) if t is None else np.any(t != 0, axis=0)))
            if A.size * len(cols) >= LIMB_WORK:
                A = limbs_dot(split(A), self._weight_limbs(j)[0][live][:, cols]).ints()
            else:
                A = A.dot(w[np.ix_(live, cols)])
            a, s, c = a[cols], s[cols], c[cols]
            pos = np.where(A > 0, A, 0)
            neg = A - pos
            # lower line on positive coefficients, upper line on negative ones
            e_new = max(ec, eA + GRID + ez)
            const = _shift(const, ec, e_new) + _shift(neg.dot(c), eA + GRID + ez, e_new)
            ec = e_new
            given = None if slopes is None else slopes[j - 1]
            if given is None:
                A = pos * (a * (1 << GRID))[None, :] + neg * s[None, :]
            else:  # relu(z) >= alpha z for any alpha in [0, 1]: used where unstable (c > 0)
                lines = np.where((c != 0)[None, :], given[:, cols], (a * (1 << GRID))[None, :])
                A = pos * lines + neg * s[None, :]
            eA = eA + GRID
            if t is not None:  # -beta * sign on relu layer j - 1's inputs
                if et > eA:
                    A, eA = _shift(A, eA, et), et
                A = A + _shift(t[:, cols], et, eA)
        xl, xu, ex = box
        if prod is not None:  # the input coefficients stay limbs: their signs pick x
            positive, negative = prod.signs()
            val = (limbs_dot(prod.positive(positive), split(xl)).ints()
                   + limbs_dot(prod.positive(negative), split(xu)).ints())
        else:
            pos = np.where(A > 0, A, 0)
            val = pos.dot(xl) + (A - pos).dot(xu)
        e = max(ec, eA + ex)
        return _shift(val, eA + ex, e) + _shift(const, ec, e), e


def _segment(g: Graph, start: int, end: int) -> Graph:
    """The ancestors of `end` back to `start`, with `start` made the only input; raises
    unless every op on the way from `start` is affine in it."""
    need = {end}
    for n in reversed(g.nodes[: end + 1]):
        if n.id in need and n.id != start:
            need.update(n.args)
    if start not in need:
        raise UnsupportedOperation(g.nodes[end].op, "exact", f"node %{end} does not depend "
                                   f"on node %{start}: not a chain of ReLU layers")
    dep: dict[int, bool] = {}
    keep: list[Node] = []
    for n in g.nodes[: end + 1]:
        if n.id not in need:
            continue
        if n.id == start:
            dep[n.id] = True
            keep.append(Node(n.id, "input", (), freeze_attrs({"name": "h"}), n.shape))
            continue
        if n.op == "input" or n.op == "relu":
            raise UnsupportedOperation(n.op, "exact", f"node %{n.id} feeds a later layer "
                                       "past a ReLU: not a chain")
        dep[n.id] = any(dep[a] for a in n.args)
        if dep[n.id] and n.op not in _AFFINE:
            raise UnsupportedOperation(n.op, "exact", f"node %{n.id} between ReLUs is not "
                                       "affine: the exact chain checker needs affine maps "
                                       "and ReLUs")
        if dep[n.id] and n.op in _ONE_VARIABLE and (
                sum(dep[a] for a in n.args) != 1 or (n.op == "div" and dep[n.args[1]])):
            raise UnsupportedOperation(n.op, "exact", f"node %{n.id} multiplies two "
                                       "input-dependent values")
        keep.append(n)
    ids = {n.id: i for i, n in enumerate(keep)}
    nodes = tuple(Node(ids[n.id], n.op, tuple(ids[a] for a in n.args), n.attrs, n.shape)
                  for n in keep)
    return Graph(g.field, nodes, (("z", ids[end]),))


Form = tuple[str, Obj, Obj]  # ("diag", d, c): v = d * h + c entrywise; ("dense", M, c)


def _read_affine(seg: Graph, params: Mapping[str, Any]) -> tuple[Obj, Obj] | None:
    """The segment's map as exact (W (out, in), b (out,)) of Fractions, read off its ops
    without probing when its input goes through one matmul by a constant matrix and
    otherwise only reshapes and elementwise ops with constants (a linear layer, with an
    input normalisation before it); None for any other segment (probed instead). The
    constants are the segment's own, computed over `exact`."""
    dep = {n.id: False for n in seg.nodes}
    for n in seg.nodes:
        dep[n.id] = n.op == "input" or any(dep[a] for a in n.args)
    consts = sorted({a for n in seg.nodes if dep[n.id] for a in n.args if not dep[a]})
    inp = next(n for n in seg.nodes if n.op == "input")
    # only the constants are run (over exact): the nodes that do not depend on the input
    fixed = [n for n in seg.nodes if not dep[n.id]]
    ids = {n.id: i for i, n in enumerate(fixed)}
    names = {n.attr("name") for n in fixed if n.op == "param"}
    values = interpret(Graph(seg.field, tuple(
        Node(ids[n.id], n.op, tuple(ids[a] for a in n.args), n.attrs, n.shape) for n in fixed),
        tuple((f"c{i}", ids[i]) for i in consts)),
        {k: v for k, v in params.items() if k in names})
    const = {i: np.asarray(values[f"c{i}"].data, dtype=object) for i in consts}
    width = int(np.prod(inp.shape))
    one = np.empty(width, dtype=object)
    one[...] = Fraction(1)
    forms: dict[int, Form] = {inp.id: ("diag", one, np.zeros(width, dtype=object) + 0)}
    for n in seg.nodes:
        if not dep[n.id] or n.op == "input":
            continue
        var = [a for a in n.args if dep[a]]
        if len(var) != 1:
            return None
        kind, m, c = forms[var[0]]
        size = int(np.prod(n.shape))
        if n.op == "reshape":
            forms[n.id] = (kind, m, c)
        elif n.op == "neg":
            forms[n.id] = (kind, -m, -c)
        elif n.op in ("add", "sub", "mul", "div"):
            other = n.args[1] if n.args[0] == var[0] else n.args[0]
            k = np.broadcast_to(const[other], n.shape).reshape(-1)
            if size != len(c) or (n.op == "div" and other != n.args[1]):
                return None
            if n.op == "sub" and other == n.args[0]:  # k - v
                m, c, n_op = -m, -c, "add"
            else:
                n_op = n.op
            if n_op == "add":
                forms[n.id] = (kind, m, c + k)
            elif n_op == "sub":
                forms[n.id] = (kind, m, c - k)
            else:
                f = k if n_op == "mul" else np.array([Fraction(1) / v for v in k], dtype=object)
                forms[n.id] = (kind, m * (f if kind == "diag" else f[:, None]), c * f)
        elif n.op == "matmul" and kind == "diag" and n.args[0] == var[0]:
            w = const[n.args[1]]
            if w.ndim != 2 or len(n.shape) != 2 or n.shape[0] != 1:
                return None
            scaled = w if all(v == 1 for v in m) else w * m[:, None]
            if any(v != 0 for v in c):
                shift = c.dot(w)
            else:  # 0 . w, without a product of Fractions
                shift = np.empty(w.shape[1], dtype=object)
                shift[...] = Fraction(0)
            forms[n.id] = ("dense", scaled.T.copy(), shift)
        else:
            return None
    kind, m, c = forms[seg.outputs[0][1]]
    if kind != "dense":
        return None
    return m, c


def exact_chain(graph: Graph, params: Mapping[str, Any]) -> ExactChain:
    """The graph as an `ExactChain`; raises UnsupportedOperation when it is not a chain of
    affine maps and ReLUs (one input, batch axis 1, one output)."""
    g = exact_graph(graph)
    relus = [n.id for n in g.nodes if n.op == "relu"]
    for n in g.nodes:
        if n.op not in _AFFINE | {"relu", "input", "param", "const", "literal"}:
            raise UnsupportedOperation(n.op, "exact", f"node %{n.id}: the exact chain "
                                       "checker needs affine maps and ReLUs")
    starts = [g.inputs[0].id] + relus
    ends = [g.nodes[r].args[0] for r in relus] + [g.outputs[0][1]]
    ps = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64)
          for k, v in params.items()}
    weights, biases = [], []
    for s, e in zip(starts, ends, strict=True):
        seg = _segment(g, s, e)
        width = int(np.prod(g.nodes[s].shape))
        read = _read_affine(seg, ps)
        if read is not None:
            bias = [Fraction(v) for v in read[1]]
            w_flat = [Fraction(v) for v in read[0].reshape(-1)]
            if any(q.denominator & (q.denominator - 1) for q in w_flat + bias):
                raise UnsupportedOperation("param", "exact", "weights are not binary "
                                           "fractions")
            wi, ew = _dyadic(w_flat, -1)
            weights.append((wi.reshape(len(bias), width), ew))
            biases.append(_dyadic(bias, -1))
            continue
        rb = rebatch(seg, width + 1)
        basis = np.zeros((width + 1, width), dtype=object)
        basis[:] = Fraction(0)
        for i in range(width):
            basis[i + 1, i] = Fraction(1)
        names = {n.attr("name") for n in seg.nodes if n.op == "param"}
        out = interpret(rb, {"h": basis.reshape((width + 1, *g.nodes[s].shape[1:])),
                             **{k: v for k, v in ps.items() if k in names}})
        z = np.asarray(next(iter(out.values())).data, dtype=object).reshape(width + 1, -1)
        bias = [Fraction(v) for v in z[0]]
        cols = [[Fraction(v) - b for v, b in zip(z[i + 1], bias, strict=True)]
                for i in range(width)]
        w_flat = [cols[i][o] for o in range(len(bias)) for i in range(width)]
        wi, ew = _dyadic(w_flat, -1)
        if any(q.denominator & (q.denominator - 1) for q in w_flat + bias):
            raise UnsupportedOperation("param", "exact", "weights are not binary fractions")
        weights.append((wi.reshape(len(bias), width), ew))
        biases.append(_dyadic(bias, -1))
    return ExactChain(tuple(weights), tuple(biases))
