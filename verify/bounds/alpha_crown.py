"""alpha-CROWN slopes: the lower relaxation slope of every unstable ReLU, chosen per spec
row by projected gradient ascent on the CROWN lower bound (Xu et al., "Fast and Complete:
Enabling Complete Neural Network Verification with Rapid and Massively Parallel
Incomplete Verifiers", ICLR 2021), for graphs that are chains of affine segments and
activations; for tanh, sigmoid, erf and the convex / concave smooth activations, the
tangent points of their lines instead (`optimize_lines`, `relaxations.tangent_family`).

Nothing here is trusted. The optimisation runs in plain floats over the chain's affine
maps, measured by running each segment of the graph on basis vectors; only the slopes and
points it finds are kept. Any slope in [0, 1] gives a valid lower line `a z <= relu(z)`,
and the sound pass makes a valid line of any tangent point (`relaxations.tangent_lines`),
so the sound CROWN pass (outward rounded) re-run with them is sound whatever they are.

`optimize_slopes` / `optimize_lines` optimise one pass (the final one, per spec row);
`optimize_intermediate` the pass bounding one layer's inputs, per neuron and side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...runtime.graph import Graph, interpret
from ...runtime.graph.ir import Node
from ...spec.errors import UnsupportedOperation
from .functions import SMOOTH
from .problem import batched_nodes, depends_on_input
from .relaxations import TangentFamily, tangent_family

__all__ = ["Chain", "SparseMap", "relu_chain", "activation_chain", "optimize_slopes",
           "optimize_lines", "optimize_intermediate", "times", "times_transposed",
           "S_SHAPED", "TANGENT_OPS"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]
Relaxation = tuple[Arr, Arr, Mask, Mask]

# Ops a segment between two ReLUs may hold: each is affine in its input-dependent operand
# when the other operands are constants (checked below).
_AFFINE = frozenset({"matmul", "add", "sub", "neg", "mul", "div", "reshape", "transpose",
                     "broadcast_to", "slice", "unslice", "concat", "sum", "mean"})
_ONE_VARIABLE = frozenset({"matmul", "mul", "div"})


@dataclass(frozen=True)
class SparseMap:
    """A matrix (out, in) held by its nonzero entries (a convolution's map is mostly
    zeros): `rows`, `cols`, `values`, sorted by column; `by_row` orders them by row."""

    shape: tuple[int, int]
    rows: np.ndarray[Any, np.dtype[np.intp]]
    cols: np.ndarray[Any, np.dtype[np.intp]]
    values: Arr
    by_row: np.ndarray[Any, np.dtype[np.intp]]

    @staticmethod
    def of(shape: tuple[int, int], rows: Any, cols: Any, values: Arr) -> SparseMap:
        """The map with these entries (any order)."""
        order = np.lexsort((rows, cols))
        rows, cols, values = rows[order], cols[order], values[order]
        return SparseMap(shape, rows, cols, values, np.argsort(rows, kind="stable"))

    def astype(self, dtype: Any) -> SparseMap:
        """The same map with values of `dtype`."""
        return SparseMap(self.shape, self.rows, self.cols, self.values.astype(dtype),
                         self.by_row)

    def left(self, lam: Arr) -> Arr:
        """lam @ M for lam (..., out): (..., in)."""
        return _segment_sums(lam[..., self.rows] * self.values, self.cols, self.shape[1])

    def right(self, g: Arr) -> Arr:
        """g @ M.T for g (..., in): (..., out)."""
        idx = self.by_row
        return _segment_sums(g[..., self.cols[idx]] * self.values[idx], self.rows[idx],
                             self.shape[0])


def _segment_sums(terms: Arr, keys: Any, size: int) -> Arr:
    """Sums of `terms` along the last axis over runs of equal sorted `keys`, placed at
    those keys in an axis of `size` (zero elsewhere)."""
    out = np.zeros(terms.shape[:-1] + (size,), dtype=terms.dtype)
    if keys.size:
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        out[..., keys[starts]] = np.add.reduceat(terms, starts, axis=-1)
    return out


Weights = Arr | SparseMap


def times(lam: Arr, w: Weights) -> Arr:
    """lam @ w."""
    return w.left(lam) if isinstance(w, SparseMap) else lam @ w


def times_transposed(g: Arr, w: Weights) -> Arr:
    """g @ w.T."""
    return w.right(g) if isinstance(w, SparseMap) else g @ w.T


@dataclass(frozen=True)
class Chain:
    """`relus[k]` is the node id of the k-th activation (a ReLU unless `ops` says
    otherwise); segment k maps the previous activation's output (the graph input for
    k = 0), flattened, to the k-th activation's input (the graph output for the last
    segment): `z = W[k] h + b[k]`."""

    relus: tuple[int, ...]
    weights: tuple[Weights, ...]
    biases: tuple[Arr, ...]
    # the op of each activation ("relu" or one of TANGENT_OPS) when not all are relu;
    # else ()
    ops: tuple[str, ...] = ()

    def op(self, k: int) -> str:
        """The op of the k-th activation."""
        return self.ops[k] if self.ops else "relu"


def _depends(g: Graph, start: int) -> list[bool]:
    dep = [False] * len(g.nodes)
    dep[start] = True
    for n in g.nodes[start + 1:]:
        dep[n.id] = any(dep[a] for a in n.args)
    return dep


def _segment(g: Graph, start: int, end: int) -> Graph:
    """The sub-graph computing node `end` from node `start` (an input leaf named "cut")."""
    dep = _depends(g, start)
    keep: set[int] = set()
    todo = [end]
    while todo:
        i = todo.pop()
        if i in keep:
            continue
        keep.add(i)
        if i != start:
            todo.extend(g.nodes[i].args)
    renum: dict[int, int] = {}
    nodes: list[Node] = []
    for n in g.nodes:
        if n.id not in keep:
            continue
        new_id = len(nodes)
        renum[n.id] = new_id
        if n.id == start:
            nodes.append(Node(new_id, "input", (), (("name", "cut"),), n.shape))
            continue
        if n.op == "input":
            raise UnsupportedOperation("graph", "float", f"node %{end} depends on the input "
                                       "other than through the ReLU before it (not a chain)",
                                       analysis="alpha-crown")
        if not n.is_leaf and not n.is_constant:
            if n.op not in _AFFINE:
                raise UnsupportedOperation(n.op, "float", f"node %{n.id}: not affine between "
                                           "two ReLUs", analysis="alpha-crown")
            variable = [a for a in n.args if dep[a]]
            if n.op in _ONE_VARIABLE and len(variable) > 1:
                raise UnsupportedOperation(n.op, "float", f"node %{n.id}: a product of two "
                                           "input-dependent values", analysis="alpha-crown")
        nodes.append(Node(new_id, n.op, tuple(renum[a] for a in n.args), n.attrs, n.shape))
    return Graph("float", tuple(nodes), (("out", renum[end]),))


def _affine_map(seg: Graph, params: Mapping[str, Arr]) -> tuple[Weights, Arr]:
    """(W, b) with seg(h) = W h + b per batch row, for flattened h and output, by probing
    basis vectors (one per batch row of the cut, so a batch of B probes B at a time);
    W as a `SparseMap` when under a tenth of its entries are nonzero."""
    cut = next(n for n in seg.nodes if n.op == "input")
    used = {n.name: params[n.name] for n in seg.nodes if n.op == "param"}
    rows, width = cut.shape[0], int(np.prod(cut.shape[1:]))

    def run(h: Arr) -> Arr:
        out = interpret(seg, {**used, "cut": h.reshape(cut.shape)})["out"]
        return np.asarray(out.numpy(), dtype=np.float64).reshape(rows, -1)

    b = run(np.zeros((rows, width)))[0]
    ins, outs, vals = [], [], []
    for start in range(0, width, rows):
        k = min(rows, width - start)
        h = np.zeros((rows, width))
        h[np.arange(k), start + np.arange(k)] = 1.0
        cols = run(h)[:k] - b
        i, o = np.nonzero(cols)
        ins.append(start + i)
        outs.append(o)
        vals.append(cols[i, o])
    i, o, v = np.concatenate(ins), np.concatenate(outs), np.concatenate(vals)
    if v.size * 10 < width * b.size:
        return SparseMap.of((b.size, width), o, i, v), b
    w = np.zeros((b.size, width))
    w[o, i] = v
    return w, b


def relu_chain(g: Graph, params: Mapping[str, Any]) -> Chain:
    """The affine-ReLU chain of a graph with one input and one output whose nodes keep
    the batch rows apart (each row of the result depends on the same input row only)."""
    return _chain(g, params, frozenset({"relu"}))


def activation_chain(g: Graph, params: Mapping[str, Any]) -> Chain:
    """`relu_chain`, with the activations that have a tangent-point family allowed
    between the affine segments too: S-shaped tanh, sigmoid, erf; convex exp, expm1,
    softplus, square; concave log, log1p, sqrt (each activation's op in `Chain.ops`)."""
    return _chain(g, params, frozenset({"relu"}) | TANGENT_OPS)


def _chain(g: Graph, params: Mapping[str, Any], allowed: frozenset[str]) -> Chain:
    host = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64)
            for k, v in params.items()}
    [inp] = [n for n in g.nodes if n.op == "input"]
    if not inp.shape:
        raise UnsupportedOperation("graph", "float", "the input has no batch axis",
                                   analysis="alpha-crown")
    others = [n for n in g.nodes if not n.is_leaf and not n.is_constant
              and n.op not in _AFFINE and n.op not in allowed]
    if others:
        n = others[0]
        raise UnsupportedOperation(n.op, "float", f"node %{n.id}: alpha-CROWN slopes are "
                                   f"optimised for chains of affine maps and "
                                   f"{', '.join(sorted(allowed))}", analysis="alpha-crown")
    if inp.shape[0] > 1:
        dep = depends_on_input(g)
        bat = batched_nodes(g, dep, inp.shape[0])
        mixed = [n for n in g.nodes if dep[n.id] and not bat[n.id]]
        if mixed:
            raise UnsupportedOperation(mixed[0].op, "float", f"node %{mixed[0].id} mixes "
                                       "batch rows", analysis="alpha-crown")
    acts = tuple(n.id for n in g.nodes if n.op in allowed)
    starts = (inp.id, *acts)
    ends = (*(g.nodes[r].args[0] for r in acts), g.outputs[0][1])
    maps = [_affine_map(_segment(g, s, e), host) for s, e in zip(starts, ends, strict=True)]
    ops = tuple(g.nodes[r].op for r in acts)
    return Chain(acts, tuple(w for w, _ in maps), tuple(b for _, b in maps),
                 () if all(op == "relu" for op in ops) else ops)


def _relaxation(lo: Arr, hi: Arr) -> Relaxation:
    """Upper line slope s and intercept t of ReLU over [lo, hi], and masks of the
    unstable and the active neurons."""
    unstable = (lo < 0) & (hi > 0)
    active = lo >= 0
    s = np.where(unstable, hi / np.where(unstable, hi - lo, 1.0), active.astype(np.float64))
    t = np.where(unstable, -s * lo, 0.0)
    return s, t, unstable, active


FloatArr = np.ndarray[Any, Any]  # float64 or float32 (the tangent-point optimiser's)


def _adam_step(m: FloatArr, v: FloatArr, g: FloatArr, c1: float, c2: float) -> FloatArr:
    """One Adam ascent step for gradient `g` (beta1 0.9, beta2 0.999; `c1` is the learning
    rate over 1 - beta1^t, `c2` is 1 / (1 - beta2^t)), updating the moments `m` and `v` in
    place; returned in `g`'s buffer, which it overwrites."""
    m *= 0.9
    m += 0.1 * g
    v *= 0.999
    g *= g
    g *= 0.001
    v += g
    denom = np.sqrt(v * c2, out=g)
    denom += 1e-12
    return np.divide(m * c1, denom, out=denom)


def optimize_slopes(chain: Chain, pre: Sequence[tuple[Arr, Arr]], spec: Arr, lower: Arr,
                    upper: Arr, *, iterations: int = 20, lr: float = 0.1) -> list[Arr]:
    """Slopes in [0, 1], one array (batch, rows, width) per ReLU of the chain, that raise
    the CROWN lower bound of `spec . y` over the boxes [lower, upper] (batch, inputs).

    `pre[k]` are the k-th ReLU's input bounds, flattened (batch, width); `spec` is
    (batch, rows, outputs). Starts from CROWN's adaptive slopes (1 where u >= -l) and
    runs Adam on the bound, projecting onto [0, 1] after every step. The search runs in
    float32 (half the memory traffic of float64; its slopes are only candidates, which
    the caller's sound pass re-bounds); the slopes come back in float64.
    """
    work = np.float32
    relax = [tuple(x.astype(work) if x.dtype == np.float64 else x
                   for x in _relaxation(lo, hi)) for lo, hi in pre]
    small = Chain(chain.relus, tuple(w.astype(work) for w in chain.weights),
                  tuple(b.astype(work) for b in chain.biases))
    spec32 = spec.astype(work)
    alphas = []
    for lo, hi in pre:
        a0 = (hi >= -lo).astype(work)
        alphas.append(np.broadcast_to(a0[:, None, :], (lo.shape[0], spec.shape[1],
                                                        lo.shape[1])).copy())
    mid = (0.5 * (lower + upper)).astype(work)
    rad = (0.5 * (upper - lower)).astype(work)
    m = [np.zeros_like(a) for a in alphas]
    v = [np.zeros_like(a) for a in alphas]
    best = [a.copy() for a in alphas]
    best_value = np.full(spec.shape[:2], -np.inf, dtype=work)
    for step in range(1, iterations + 2):
        value, grads = _bound_and_grad(small, relax, alphas, spec32, mid, rad)  # type: ignore[arg-type]
        better = value > best_value
        np.copyto(best_value, value, where=better)
        for k, a in enumerate(alphas):
            np.copyto(best[k], a, where=better[:, :, None])
        if step > iterations:
            break
        c1, c2 = lr / (1 - 0.9**step), 1 / (1 - 0.999**step)
        for k, g in enumerate(grads):  # Adam ascent, then projection onto [0, 1]
            a = alphas[k]
            a += _adam_step(m[k], v[k], g, c1, c2)
            np.clip(a, 0.0, 1.0, out=a)
    return [b.astype(np.float64) for b in best]


def optimize_intermediate(chain: Chain, j: int, pre: Sequence[tuple[Arr, Arr]], lower: Arr,
                          upper: Arr, *, unstable: Mask | None = None, iterations: int = 20,
                          lr: float = 0.1) -> list[Arr] | None:
    """Slopes for the pass that bounds the input of the chain's j-th ReLU (j >= 1): one
    array (batch, 2 * width, width of ReLU i) per earlier ReLU i, rows [0, width) raising
    each neuron's lower bound and rows [width, 2 width) lowering its upper bound, by
    `optimize_slopes`. Only the neurons marked in `unstable` (batch, width; default all)
    are optimised, the others keep CROWN's adaptive slopes; None when no earlier ReLU is
    unstable or no neuron is marked (nothing to optimise). A chain with other
    activations goes through `optimize_lines`: such an entry is its tangent points
    (2, batch, 2 * width, width of activation i), plain CROWN's where not optimised."""
    width = chain.weights[j].shape[0]
    batch = lower.shape[0]
    general = bool(chain.ops)
    if not general and not any(np.any((lo < 0) & (hi > 0)) for lo, hi in pre):
        return None
    marked = np.ones((batch, width), bool) if unstable is None else unstable
    # every marked (box, neuron) pair is its own problem with two rows (its lower and
    # upper bound): no padding where the boxes have different numbers of them
    box, neuron = np.nonzero(marked)
    if box.size == 0:
        return None
    pairs = box.size
    spec = np.zeros((pairs, 2, width))
    spec[np.arange(pairs), 0, neuron] = 1.0
    spec[np.arange(pairs), 1, neuron] = -1.0
    sub = Chain(chain.relus[:j], chain.weights[: j + 1], chain.biases[: j + 1],
                chain.ops[:j])
    fams = [None if chain.op(k) == "relu" else tangent_family(SMOOTH[chain.op(k)], lo, hi)
            for k, (lo, hi) in enumerate(pre)]
    boxed = [(lo[box], hi[box]) for lo, hi in pre]
    if general:
        # the pairs are independent problems: in chunks of at most _CHUNK parameter
        # entries per array (a wide layer's pairs would otherwise hold pairs x 2 x width
        # entries in each of the optimiser's arrays at once)
        step = max(1, _CHUNK // (2 * sum(lo.shape[1] for lo, _ in pre)))
        parts = []
        for c in range(0, pairs, step):
            at = slice(c, c + step)
            rows_of = box[at]
            parts.append(optimize_lines(
                sub, [(lo[at], hi[at]) for lo, hi in boxed], spec[at], lower[rows_of],
                upper[rows_of], iterations=iterations, lr=lr,
                # the families of the boxes' rows, not recomputed for each pair
                families=[None if f is None else _take(f, rows_of) for f in fams]))
        got = [np.concatenate(ps, axis=-3) for ps in zip(*parts, strict=True)]
    else:
        got = optimize_slopes(sub, boxed, spec, lower[box], upper[box],
                              iterations=iterations, lr=lr)
    out = []
    for k, ((lo, hi), s) in enumerate(zip(pre, got, strict=True)):
        fam = fams[k]
        if fam is None:
            full = np.broadcast_to((hi >= -lo).astype(np.float64)[:, None, :],
                                   (batch, 2 * width, lo.shape[1])).copy()
        else:  # plain CROWN's tangent points where not optimised
            full = np.stack([np.broadcast_to(v[:, None, :], (batch, 2 * width, lo.shape[1]))
                             for v in (fam.init_l, fam.init_u)])
        full[..., box, neuron, :] = s[..., :, 0, :]
        full[..., box, width + neuron, :] = s[..., :, 1, :]
        out.append(full)
    return out


def _bound_and_grad(chain: Chain, relax: list[Relaxation], alphas: list[Arr],
                    spec: Arr, mid: Arr, rad: Arr) -> tuple[Arr, list[Arr]]:
    """The float CROWN lower bound (batch, rows) for the given slopes, and its gradient
    with respect to each slope array (zero on stable neurons), in spec's float type."""

    def rowdot(a: Arr, x: Arr) -> Arr:  # (batch, rows, n) . (batch, n) -> (batch, rows)
        return (a @ x[:, :, None])[:, :, 0]

    n_layers = len(chain.weights)
    lam = spec  # coefficients on the current segment's output
    const = np.zeros(spec.shape[:2], dtype=spec.dtype)
    saved = []
    for k in range(n_layers - 1, -1, -1):
        const += lam @ chain.biases[k]
        pre_lam = times(lam, chain.weights[k])  # on the previous ReLU's output (the input)
        if k == 0:
            lam = pre_lam
            break
        s, t, unstable, active = relax[k - 1]
        neg = np.minimum(pre_lam, 0.0)
        lower_slope = np.where(unstable[:, None, :], alphas[k - 1],
                               active[:, None, :]).astype(spec.dtype, copy=False)
        const += rowdot(neg, t)
        saved.append((k, pre_lam, lower_slope))
        lam = np.maximum(pre_lam, 0.0)
        lam *= lower_slope
        neg *= s[:, None, :]
        lam += neg
    value = const + rowdot(lam, mid) - rowdot(np.abs(lam), rad)
    # reverse pass: g = d value / d (coefficients on z_k), walked back up the chain
    g = mid[:, None, :] - np.sign(lam) * rad[:, None, :]
    g = times_transposed(g, chain.weights[0]) + chain.biases[0]
    grads = [np.zeros_like(a) for a in alphas]
    for k, pre_lam, lower_slope in reversed(saved):
        s, t, unstable, _ = relax[k - 1]
        pos_mask = pre_lam > 0
        grads[k - 1] = np.where(unstable[:, None, :] & pos_mask, g * pre_lam, 0.0)
        g_pre = np.where(pos_mask, g * lower_slope, g * s[:, None, :] + t[:, None, :])
        g = times_transposed(g_pre, chain.weights[k]) + chain.biases[k]
    return value, grads


# -- chains with tangent-family activations (S-shaped, convex, concave) ----------------
# Float models of f for the optimiser only (value, f', f''); its lines are
# candidates, made valid by the sound pass (`relaxations.tangent_lines`).
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)


def _tanh_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    v = np.tanh(z)
    d = 1.0 - v * v
    return v, d, -2.0 * v * d


def _sigmoid_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    with np.errstate(over="ignore"):
        v = 1.0 / (1.0 + np.exp(-z))
    d = v * (1.0 - v)
    return v, d, d * (1.0 - 2.0 * v)


def _erf_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    # erf by Abramowitz and Stegun 7.1.26 (absolute error <= 1.5e-7): a guide only
    t = 1.0 / (1.0 + _ERF_P * np.abs(z))
    poly = t * (_ERF_A[0] + t * (_ERF_A[1] + t * (_ERF_A[2] + t * (_ERF_A[3]
                                                                    + t * _ERF_A[4]))))
    e = np.exp(-z * z)
    d = _TWO_OVER_SQRT_PI * e
    return np.sign(z) * (1.0 - poly * e), d, -2.0 * z * d


def _exp_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    e = np.exp(z)
    return e, e, e


def _expm1_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    e = np.exp(z)
    return np.expm1(z), e, e


def _softplus_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    _, d, dd = _sigmoid_model(z)
    return np.logaddexp(0.0, z), d, dd


def _square_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    return z * z, 2.0 * z, np.full_like(z, 2.0)


def _log_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    r = 1.0 / z
    return np.log(z), r, -r * r


def _log1p_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    r = 1.0 / (1.0 + z)
    return np.log1p(z), r, -r * r


def _sqrt_model(z: Arr) -> tuple[Arr, Arr, Arr]:
    q = np.sqrt(z)
    return q, 0.5 / q, -0.25 / (q * z)


_MODELS = {"tanh": _tanh_model, "sigmoid": _sigmoid_model, "erf": _erf_model,
           "exp": _exp_model, "expm1": _expm1_model, "softplus": _softplus_model,
           "square": _square_model, "log": _log_model, "log1p": _log1p_model,
           "sqrt": _sqrt_model}
S_SHAPED = frozenset({"tanh", "sigmoid", "erf"})
# the activations with a tangent-point family (`relaxations.tangent_family`)
TANGENT_OPS = frozenset(_MODELS)
_WORK = np.float32  # the optimiser's float type (half the memory traffic of float64)
_CHUNK = 1 << 21  # entries per parameter array in one intermediate optimisation


class _Relu:
    """A ReLU layer's lines for the optimiser: the lower slope alpha in [0, 1] on the
    unstable neurons (one parameter array), CROWN's upper line."""

    def __init__(self, lo: Arr, hi: Arr, dtype: Any = None) -> None:
        self.dtype = _WORK if dtype is None else dtype
        s, t, self.unstable, self.active = _relaxation(lo, hi)
        self.s, self.t = s.astype(self.dtype), t.astype(self.dtype)
        self.start = (hi >= -lo).astype(self.dtype)

    def init(self, rows: int) -> list[Arr]:
        return [np.broadcast_to(self.start[:, None, :], (self.start.shape[0], rows,
                                                          self.start.shape[1])).copy()]

    def lines(self, p: list[Arr]) -> tuple[Arr, Arr, Arr, Arr]:
        al = np.where(self.unstable[:, None, :], p[0], self.active[:, None, :])
        return al.astype(self.dtype, copy=False), np.zeros((1, 1, 1), self.dtype), \
            self.s[:, None, :], self.t[:, None, :]

    def grads(self, p: list[Arr], pos: Arr, neg: Arr, g: Arr) -> list[Arr]:
        out = g * pos
        out *= self.unstable[:, None, :]
        return [out]

    def project(self, p: list[Arr]) -> None:
        np.clip(p[0], 0.0, 1.0, out=p[0])

    def scales(self) -> list[Arr | None]:
        """Each parameter's range width (None: 1, the slopes' range [0, 1])."""
        return [None]


class _Tangents:
    """A layer's lines for the optimiser where its activation has a tangent-point family
    (S-shaped, convex or concave): tangent points d_l, d_u (two parameter arrays) in the
    ranges of `relaxations.tangent_family`."""

    def __init__(self, op: str, fam: TangentFamily, dtype: Any = None) -> None:
        self.model = _MODELS[op]
        self.fam = fam
        self.dtype = _WORK if dtype is None else dtype
        self._at: list[tuple[Arr, Arr, Arr]] = []

    def init(self, rows: int) -> list[Arr]:
        # every per-neuron array expanded to the parameters' full shape once: the
        # iterations then run on same-shape contiguous arrays (broadcasting the middle
        # axis would cut each operation into loops of one row's length)
        fam = self.fam
        b, n = fam.init_l.shape

        def full(v: Arr) -> Arr:
            return np.broadcast_to(v[:, None, :], (b, rows, n)).astype(self.dtype)

        self.fixed = tuple(full(v) for v in fam.fixed)
        self.opt_l, self.opt_u = full(fam.opt_l) != 0, full(fam.opt_u) != 0
        self.on_l, self.on_u = full(fam.opt_l), full(fam.opt_u)  # as 0 / 1
        self.box = [(full(fam.lo_l), full(fam.hi_l)), (full(fam.lo_u), full(fam.hi_u))]
        return [full(fam.init_l), full(fam.init_u)]

    def lines(self, p: list[Arr]) -> tuple[Arr, Arr, Arr, Arr]:
        self._at = [self.model(d) for d in p]
        out = []
        for d, (v, dv, _), opt, (fa, fb) in zip(
                p, self._at, (self.opt_l, self.opt_u),
                (self.fixed[:2], self.fixed[2:]), strict=True):
            b = dv * d
            np.subtract(v, b, out=b)
            a = np.copy(dv)
            np.copyto(a, fa, where=~opt)
            np.copyto(b, fb, where=~opt)
            out += [a, b]
        return out[0], out[1], out[2], out[3]

    def grads(self, p: list[Arr], pos: Arr, neg: Arr, g: Arr) -> list[Arr]:
        # d/dd of the line's value at z: f''(d) (z - d), z the point the bound takes
        out = []
        for d, (_, _, dd), lam, on in zip(p, self._at, (pos, neg), (self.on_l, self.on_u),
                                          strict=True):
            gr = g - d
            gr *= dd
            gr *= lam
            gr *= on
            out.append(gr)
        return out

    def project(self, p: list[Arr]) -> None:
        for d, (a, b) in zip(p, self.box, strict=True):
            np.maximum(d, a, out=d)
            np.minimum(d, b, out=d)

    def scales(self) -> list[Arr | None]:
        """Each tangent point's range width: Adam's steps (about lr in size) are taken
        in units of the range, as for the slopes in [0, 1]."""
        return [np.maximum(b - a, 0.0) for a, b in self.box]


def optimize_lines(chain: Chain, pre: Sequence[tuple[Arr, Arr]], spec: Arr, lower: Arr,
                   upper: Arr, *, iterations: int = 20, lr: float = 0.1,
                   families: Sequence[TangentFamily | None] | None = None) -> list[Arr]:
    """`optimize_slopes` for chains with other activations too: per activation, a
    ReLU's lower slopes (batch, rows, width) in [0, 1], or another's tangent points
    stacked (2, batch, rows, width), lower line's then upper line's (see
    `relaxations.tangent_family`; `families`, when given, are those of `pre`), that
    raise the CROWN lower bound of `spec . y`. Starts from plain CROWN's lines;
    projected Adam in float32 (candidates only), the best per row kept; float64 out.
    """
    rows = spec.shape[1]
    layers: list[_Relu | _Tangents] = []
    for k, (lo, hi) in enumerate(pre):
        op = chain.op(k)
        if op == "relu":
            layers.append(_Relu(lo, hi))
            continue
        fam = families[k] if families is not None else None
        layers.append(_Tangents(op, tangent_family(SMOOTH[op], lo, hi) if fam is None else fam))
    small = Chain(chain.relus, tuple(w.astype(_WORK) for w in chain.weights),
                  tuple(b.astype(_WORK) for b in chain.biases), chain.ops)
    params = [layer.init(rows) for layer in layers]
    mid, rad = (0.5 * (lower + upper)).astype(_WORK), (0.5 * (upper - lower)).astype(_WORK)
    flat = [p for ps in params for p in ps]
    m = [np.zeros_like(p) for p in flat]
    v = [np.zeros_like(p) for p in flat]
    best = [p.copy() for p in flat]
    best_value = np.full(spec.shape[:2], -np.inf, dtype=_WORK)
    scale = [s for layer in layers for s in layer.scales()]
    for step in range(1, iterations + 2):
        with np.errstate(all="ignore"):  # a point outside f's domain (log of a negative
            # number: its neuron keeps the fixed line) or overflow gives NaN or inf there
            value, grads = _lines_bound_and_grad(small, layers, params, spec.astype(_WORK),
                                                 mid, rad)
        better = value > best_value
        np.copyto(best_value, value, where=better)
        for b, p in zip(best, flat, strict=True):
            np.copyto(b, p, where=better[:, :, None])
        if step > iterations:
            break
        c1, c2 = lr / (1 - 0.9**step), 1 / (1 - 0.999**step)
        for k, gr in enumerate(g for gs in grads for g in gs):  # Adam ascent
            stride = _adam_step(m[k], v[k], gr, c1, c2)
            unit = scale[k]
            if unit is not None:
                stride *= unit
            flat[k] += stride
        for layer, ps in zip(layers, params, strict=True):
            layer.project(ps)
    out, i = [], 0
    for ps in params:
        got = best[i] if len(ps) == 1 else np.stack(best[i: i + len(ps)])
        out.append(got.astype(np.float64))
        i += len(ps)
    return out


def _lines_bound_and_grad(chain: Chain, layers: Sequence[_Relu | _Tangents],
                          params: list[list[Arr]], spec: Arr, mid: Any, rad: Any
                          ) -> tuple[Arr, list[list[Arr]]]:
    """The float CROWN lower bound (batch, rows) with each layer's lines from its
    parameters, and its gradient with respect to every parameter array."""
    lam = spec
    const = np.zeros(spec.shape[:2], dtype=spec.dtype)
    saved = []
    for k in range(len(chain.weights) - 1, -1, -1):
        const += lam @ chain.biases[k]
        pre_lam = times(lam, chain.weights[k])
        if k == 0:
            lam = pre_lam
            break
        lines = layers[k - 1].lines(params[k - 1])
        al, bl, au, bu = lines
        pos, neg = np.maximum(pre_lam, 0.0), np.minimum(pre_lam, 0.0)
        const += np.sum(pos * bl + neg * bu, axis=2)
        saved.append((k, pos, neg, lines))
        lam = pos * al + neg * au
    value = const + np.sum(lam * mid[:, None, :], axis=2) \
        - np.sum(np.abs(lam) * rad[:, None, :], axis=2)
    # g: d value / d (coefficients on z_k), the point where the bound is attained
    g = mid[:, None, :] - np.sign(lam) * rad[:, None, :]
    g = times_transposed(g, chain.weights[0]) + chain.biases[0]
    grads: list[list[Arr]] = [[] for _ in layers]
    for k, pos, neg, (al, bl, au, bu) in reversed(saved):
        grads[k - 1] = layers[k - 1].grads(params[k - 1], pos, neg, g)
        g_pre = np.where(pos > 0, al * g + bl, au * g + bu)
        g = times_transposed(g_pre, chain.weights[k]) + chain.biases[k]
    return value, grads


def _take(fam: TangentFamily, rows: Any) -> TangentFamily:
    """The family of the batch rows `rows` (an index array)."""
    return TangentFamily(tuple(v[rows] for v in fam.fixed),
                         *(getattr(fam, k)[rows] for k in (
                             "opt_l", "lo_l", "hi_l", "init_l", "opt_u", "lo_u", "hi_u",
                             "init_u")))
