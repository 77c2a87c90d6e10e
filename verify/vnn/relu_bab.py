"""Branch and bound over ReLU splits: prove that no point of an input box meets an
unsafe condition by splitting unstable ReLUs (each into z >= 0 and z <= 0) instead of the
box, for inputs too wide to split (beta-CROWN's search: Wang et al., NeurIPS 2021).

A *subdomain* is the root box with a sign fixed for some ReLU pre-activations. Subdomains
are bounded in batches by a caller's sound bound (CROWN with the splits clamping the
pre-activation intervals, beta multipliers on the split constraints and, optionally,
the final pass's lower ReLU slopes, found jointly by `optimize_alpha_betas` from the
parent's slopes, only for the rows of conjunctions no ancestor refutes:
`BatchedModel.bound_splits`; the engine also meets every subdomain's intervals with the
root's full alpha-CROWN ones). CROWN is not monotone in its intervals
(a child's bound can be below its parent's); a subdomain's bound also holds on its
children, so a child keeps, row by row, the larger of its own and its parent's lower
bound, and a conjunction refuted at a node is refuted for its whole subtree.

Search is best first: the open subdomains with the lowest margin are split next. The
neuron split is the BaBSR-like choice (Bunel et al. 2020): the unstable free neuron whose
upper-line intercept `-l u / (u - l)` weighs most in the back-substituted coefficients of
the open rows (the loss that splitting it removes). After each batch, the box corner that
minimises each open subdomain's relaxed bound is tried as a counterexample.

Nothing here is trusted: the result is a `ReluTree` (splits, and per node the rows that
refute conjunctions there), which the certificate checker re-derives exactly.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..bounds.alpha_crown import Chain, times, times_transposed
from .bab import Problem, unsafe

__all__ = ["ReluSplit", "ReluTree", "ReluBabResult", "SplitBounds", "SLOPE_BITS",
           "relu_branch_and_bound", "split_choice", "optimize_betas", "optimize_alpha_betas",
           "adaptive_slopes", "on_slope_grid"]

SLOPE_BITS = 16  # alpha-CROWN slopes kept for certificates: multiples of 2^-16

Arr = np.ndarray[Any, np.dtype[np.float64]]
MAX_CONFIRMS = 2  # float-unsafe points confirmed exactly per batch
Signs = np.ndarray[Any, np.dtype[np.int8]]
# one ReLU layer of the float search: upper slope, upper intercept, adaptive lower slope,
# split signs (float32 or float64), and the unstable mask
Layer = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any],
              np.ndarray[Any, Any], np.ndarray[Any, np.dtype[np.bool_]]]
# lower (N, R), zl, zu (N, W), coeff (N, R, W), betas (N, R, W), input coeff (N, R, n),
# and the final pass's lower slopes (N, R, W) when they were tuned (else None)
SplitBounds = tuple[Arr, Arr, Arr, Arr, Arr, Arr, Arr | None]
# what a child knows from its parent: zl, zu (N, W), and how many leading relu layers
# of them hold for it (those before and at the split neuron's layer)
Known = tuple[Arr, Arr, np.ndarray[Any, Any]]
# bound(signs, known, alphas, live): alphas (N, R, W) are the parents' slopes to start
# from, live (N, R) marks the rows whose bound still matters (the rows of conjunctions no
# ancestor refutes; None: all)
SplitBoundFn = Callable[[Signs, Known | None, Arr | None, Arr | None], SplitBounds]
EvalFn = Callable[[Arr], Arr]
ConfirmFn = Callable[[Arr], bool]


@dataclass(frozen=True)
class ReluSplit:
    """Subdomain `node` split on neuron `neuron` (flat over the ReLU layers) into the
    subdomains `active` (z >= 0) and `inactive` (z <= 0)."""

    node: int
    neuron: int
    active: int
    inactive: int


@dataclass
class ReluTree:
    """The splits in order, by node the refuting row of each conjunction it refutes
    (-1 where that node refutes nothing for the conjunction), by node and refuting
    row the nonzero beta multipliers (neuron, beta) its bound used, and by node and
    refuting row the lower slopes (W,) its bound used when they were tuned (multiples of
    2^-SLOPE_BITS in [0, 1])."""

    splits: list[ReluSplit] = field(default_factory=list)
    refuted: dict[int, tuple[int, ...]] = field(default_factory=dict)
    betas: dict[int, dict[int, tuple[tuple[int, float], ...]]] = field(default_factory=dict)
    slopes: dict[int, dict[int, Arr]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReluBabResult:
    """`status` is "holds", "violated" (a confirmed counterexample), "unknown" (a
    subdomain with no neuron left to split, or the subdomain budget spent) or
    "timeout"; `note` says why when not "holds"."""

    status: str
    tree: ReluTree
    subdomains_bounded: int
    seconds: float
    note: str = ""
    counterexample: Arr | None = None


def _margins(lower: Arr, problem: Problem) -> list[tuple[float, int]]:
    """Per group: the best (largest) lower bound minus d over its rows, and that row."""
    out = []
    for g in problem.groups:
        gap = lower[list(g)] - problem.d_up[list(g)]
        k = int(np.argmax(gap))
        out.append((float(gap[k]), g[k]))
    return out


def split_choice(signs: Signs, zl: Arr, zu: Arr, coeff: Arr, rows: list[int]) -> int:
    """The neuron to split (flat index), or -1 when no free neuron is unstable: the
    largest `sum over rows of max(-A, 0) * (-l u / (u - l))` (A the coefficient of the
    neuron's output in the row's bound), else the widest `min(u, -l)`."""
    free = (signs == 0) & (zl < 0) & (zu > 0)
    if not np.any(free):
        return -1
    width = np.where(free, zu - zl, 1.0)
    intercept = np.where(free, -zl * zu / width, 0.0)
    a = coeff[rows].sum(axis=0) if len(rows) > 1 else coeff[rows[0]]
    loss = np.where(free, np.maximum(-a, 0.0) * intercept, -1.0)
    best = int(np.argmax(loss))
    if loss[best] > 0:
        return best
    return int(np.argmax(np.where(free, np.minimum(zu, -zl), -1.0)))


@dataclass(order=True)
class _Open:
    key: float
    node: int
    signs: Signs = field(compare=False)
    lower: Arr = field(compare=False)
    refuted: frozenset[int] = field(compare=False)
    neuron: int = field(compare=False)
    zl: Arr = field(compare=False)
    zu: Arr = field(compare=False)
    alphas: Arr | None = field(compare=False)  # its tuned slopes (R, W), float16


def relu_branch_and_bound(problem: Problem, bound: SplitBoundFn, width: int, *,
                          deadline: float, batch: int = 64, max_subdomains: int = 10**6,
                          seconds_per_subdomain: float = 0.0,
                          evaluate: EvalFn | None = None,
                          confirm: ConfirmFn | None = None,
                          layers: Sequence[int] = ()) -> ReluBabResult:
    """Split ReLUs (`width` of them, flat over the layers) until every subdomain is
    refuted ("holds"), `deadline` (a `time.monotonic()` value) passes ("timeout"), or no
    progress is possible ("unknown", e.g. a subdomain with no unstable neuron left).

    `bound(signs, known, alphas, live)` takes (N, width) signs (+1 active, -1 inactive,
    0 free), when `layers` (the neurons per relu layer) is given what each child knows
    from its parent (`Known`: the parent's intervals hold on the child up to the split
    layer; else None), the parents' tuned slopes (N, R, width) to start from (None at
    the root or when the bound tunes none) and the rows (N, R) of the conjunctions still
    open (None at the root: all; a bound may spend less on the others), and returns
    sound lower bounds of the rows (N, R) (+inf for a subdomain with no point), with the
    pre-activation intervals and the relu outputs' row coefficients (untrusted, for the
    choice of split), the beta multipliers the bounds used and the slopes when tuned
    (both kept in the tree for the certificate). Batches hold at most `batch`
    subdomains and, near the deadline, only as many as the time left (less 0.2 s)
    allows at 1.5 times the slowest seconds per subdomain seen in batches of 8 or more
    (or smaller ones, or
    `seconds_per_subdomain`, before any): a batch is never interrupted.

    With `evaluate` (rows' values (N, R) at points (N, n), float) and `confirm` (exact,
    the caller's), the corner of the box that minimises each open subdomain's relaxed
    bound of its lowest row is tried as a counterexample ("violated" when confirmed).
    """
    t0 = time.monotonic()
    tree = ReluTree()
    groups = len(problem.groups)

    def result(status: str, note: str = "", x: Arr | None = None) -> ReluBabResult:
        return ReluBabResult(status, tree, bounded, time.monotonic() - t0, note, x)

    def attack(low: Arr, inputs: Arr, rows: list[int]) -> Arr | None:
        """A confirmed counterexample among the relaxed minimisers of `rows`' rows."""
        if evaluate is None or confirm is None or not rows:
            return None
        worst = [int(np.argmin(low[i] - problem.d_up)) for i in rows]
        a = inputs[rows, worst]  # (k, n): the input coefficients of each worst row
        pts = np.where(a > 0, problem.lower, problem.upper)
        hits = np.flatnonzero(unsafe(np.asarray(evaluate(pts), np.float64), problem))
        for h in hits[:MAX_CONFIRMS]:  # exact confirmations cost: a few per batch
            if confirm(pts[h]):
                return np.asarray(pts[h], np.float64)
        return None

    per = seconds_per_subdomain
    layer_of = np.repeat(np.arange(len(layers)), layers) if layers else np.zeros(0, int)
    if layers and sum(layers) != width:
        raise ValueError(f"layers {list(layers)} do not add up to {width} neurons")
    per_full = False  # whether `per` comes from batches of 8 subdomains or more
    heap: list[_Open] = []
    bounded = 0
    next_id = 1

    def settle(node: int, signs: Signs, own: Arr, inherited: Arr, refuted: frozenset[int],
               zl: Arr, zu: Arr, coeff: Arr, betas: Arr, slopes: Arr | None) -> str:
        """Record node's refutations; push it when open. Returns "done", "open", "stuck"."""
        if np.all(np.isposinf(own)):  # no point: every conjunction is refuted here
            tree.refuted[node] = tuple(g[0] for g in problem.groups)
            return "done"
        here = [row if gap > 0 else -1 for gap, row in _margins(own, problem)]
        new = frozenset(i for i, r in enumerate(here) if r >= 0) - refuted
        if new:
            tree.refuted[node] = named = tuple(r if i in new else -1
                                               for i, r in enumerate(here))
            used = {r: tuple((int(j), float(betas[r, j])) for j in np.flatnonzero(betas[r]))
                    for r in named if r >= 0}
            if any(used.values()):
                tree.betas[node] = {r: b for r, b in used.items() if b}
            if slopes is not None:
                # float32: exact for multiples of 2^-16 in [0, 1], half the memory
                tree.slopes[node] = {r: slopes[r].astype(np.float32) for r in named
                                     if r >= 0}
        now = refuted | new
        if len(now) == groups:
            return "done"
        lower = np.maximum(own, inherited)
        margins = _margins(lower, problem)
        open_groups = [i for i in range(groups) if i not in now]
        rows = [margins[i][1] for i in open_groups]
        neuron = split_choice(signs, zl, zu, coeff, rows)
        if neuron < 0:
            return "stuck"
        key = min(margins[i][0] for i in open_groups)
        heapq.heappush(heap, _Open(key, node, signs, lower, now, neuron, zl, zu,
                                   None if slopes is None else slopes.astype(np.float16)))
        return "open"

    if time.monotonic() > deadline:
        return result("timeout")
    t_b = time.monotonic()
    root_signs = np.zeros((1, width), dtype=np.int8)
    low, zl, zu, coeff, betas, inputs, slopes = bound(root_signs, None, None, None)
    per = max(per, time.monotonic() - t_b)
    bounded = 1
    state = settle(0, root_signs[0], low[0], np.full(low.shape[1], -np.inf), frozenset(),
                   zl[0], zu[0], coeff[0], betas[0], None if slopes is None else slopes[0])
    x = attack(low, inputs, [0] if state != "done" else [])
    if x is not None:
        return result("violated", "", x)
    if state == "stuck":
        return result("unknown", "the root has no unstable neuron to split")
    while heap:
        left = deadline - time.monotonic()
        if left <= 0:
            return result("timeout")
        if bounded >= max_subdomains:
            return result("unknown", f"the budget of {max_subdomains} subdomains is spent")
        # the time a batch takes varies (a loaded machine, threaded BLAS): plan for 1.5x
        # the slowest rate seen, and keep 0.2 s in hand
        room = int((left - 0.2) / (3 * per)) if per > 0 else 1
        if room < 1:
            return result("timeout")
        pairs = min(batch // 2, len(heap), room)
        parents = [heapq.heappop(heap) for _ in range(pairs)]
        signs = np.empty((2 * pairs, width), dtype=np.int8)
        for k, p in enumerate(parents):
            signs[2 * k] = p.signs
            signs[2 * k + 1] = p.signs
            signs[2 * k, p.neuron] = 1
            signs[2 * k + 1, p.neuron] = -1
            tree.splits.append(ReluSplit(p.node, p.neuron, next_id + 2 * k,
                                         next_id + 2 * k + 1))
        known: Known | None = None
        if layers:
            reuse = np.repeat([layer_of[p.neuron] + 1 for p in parents], 2)
            known = (np.repeat(np.stack([p.zl for p in parents]), 2, axis=0),
                     np.repeat(np.stack([p.zu for p in parents]), 2, axis=0), reuse)
        warm = None
        if all(p.alphas is not None for p in parents):
            warm = np.repeat(np.stack([np.asarray(p.alphas, np.float64) for p in parents]),
                             2, axis=0)
        live = np.ones((2 * pairs, low.shape[1]), dtype=bool)
        for k, p in enumerate(parents):
            for i in p.refuted:
                live[2 * k: 2 * k + 2, list(problem.groups[i])] = False
        t_b = time.monotonic()
        low, zl, zu, coeff, betas, inputs, slopes = bound(signs, known, warm, live)
        bounded += 2 * pairs
        stuck, still_open = False, []
        for k, p in enumerate(parents):
            for c in (2 * k, 2 * k + 1):
                state = settle(next_id + c, signs[c], low[c], p.lower, p.refuted,
                               zl[c], zu[c], coeff[c], betas[c],
                               None if slopes is None else slopes[c])
                stuck = stuck or state == "stuck"
                if state != "done":
                    still_open.append(c)
        next_id += 2 * pairs
        x = attack(low, inputs, still_open)
        if x is not None:
            return result("violated", "", x)
        rate = (time.monotonic() - t_b) / (2 * pairs)  # the whole round, attack included
        if 2 * pairs >= 8:  # a batch of a few pays a fixed cost: rates from 8 on plan
            per = max(rate, per if per_full else 0.0)
            per_full = True
        elif not per_full:
            per = max(per, rate)
        if stuck:
            return result("unknown", "a subdomain with every unstable neuron split is "
                          "still open")
    return result("holds")


# -- alpha slopes and beta multipliers (alpha-beta-CROWN; untrusted float search) ------


def adaptive_slopes(zl: Arr, zu: Arr, rows: int) -> Arr:
    """CROWN's adaptive lower slopes (N, rows, W) for intervals zl, zu (N, W): 1 where
    u >= -l (so on every active neuron), else 0 (so on every inactive one)."""
    a = (zu >= -zl).astype(np.float64)
    return np.repeat(a[:, None, :], rows, axis=1)


def on_slope_grid(alphas: Arr, zl: Arr, zu: Arr) -> Arr:
    """The slopes (N, R, W) as the sound pass and the certificate use them: rounded down
    to multiples of 2^-SLOPE_BITS in [0, 1] on the unstable neurons of zl, zu (N, W), and
    elsewhere the adaptive slope (1 on active neurons, 0 on inactive ones), which is the
    line the sound pass takes there, so an exact re-derivation whose intervals differ by
    roundings at a stable neuron's edge lands on the same line."""
    grid = float(1 << SLOPE_BITS)
    unstable = ((zl < 0) & (zu > 0))[:, None, :]
    snapped = np.floor(np.clip(alphas, 0.0, 1.0) * grid) / grid
    return np.where(unstable, snapped, adaptive_slopes(zl, zu, alphas.shape[1]))


def optimize_alpha_betas(chain: Chain, zl: Arr, zu: Arr, signs: Signs, spec: Arr,
                         lower: Arr, upper: Arr, *, alphas: Arr | None = None,
                         live: np.ndarray[Any, Any] | None = None, iterations: int = 20,
                         lr_alpha: float = 0.1, lr_beta: float = 0.05) -> tuple[Arr, Arr]:
    """Lower slopes alpha in [0, 1] and multipliers beta >= 0 (both (N, R, W)) that raise
    the float CROWN lower bound of `spec . y` minus `sum beta * sign * z` over the box
    [lower, upper] (n,), for the subdomains' pre-activation intervals zl, zu (N, W) and
    signs (N, W); spec is (R, m). Projected Adam on both jointly (alpha-beta-CROWN), from
    `alphas` (a parent's, say; default CROWN's adaptive slopes) and beta = 0, keeping
    the best pair seen per row. Betas are nonzero only on split neurons; alphas matter
    only on unstable ones. With `live` (N, R), only the marked (subdomain, row) pairs
    are tuned (the others keep their start and beta = 0): a row's bound depends on its
    own slopes and betas only, so each marked pair is searched as a subdomain of one
    row, and rows whose bound no longer matters cost nothing."""
    start = adaptive_slopes(zl, zu, spec.shape[0]) if alphas is None else np.clip(
        np.asarray(alphas, np.float64), 0.0, 1.0)
    if live is None or bool(np.all(live)):
        return _optimize(chain, zl, zu, signs, spec, lower, upper, start, True, iterations,
                         lr_alpha, lr_beta)
    betas = np.zeros(start.shape)
    sub, row = np.nonzero(live)
    if sub.size == 0:
        return start, betas
    got_a, got_b = _optimize(chain, zl[sub], zu[sub], signs[sub], spec[row][:, None],
                             lower, upper, start[sub, row][:, None], True, iterations,
                             lr_alpha, lr_beta)
    start[sub, row] = got_a[:, 0]
    betas[sub, row] = got_b[:, 0]
    return start, betas


def optimize_betas(chain: Chain, zl: Arr, zu: Arr, signs: Signs, spec: Arr, lower: Arr,
                   upper: Arr, *, iterations: int = 20, lr: float = 0.05) -> Arr:
    """Multipliers beta >= 0 (N, R, W) on the split neurons of each subdomain that raise
    the float CROWN lower bound of `spec . y` minus `sum beta * sign * z` over the box
    [lower, upper] (n,), for the subdomains' pre-activation intervals zl, zu (N, W) and
    signs (N, W); spec is (R, m), CROWN's adaptive slopes held fixed. Projected Adam
    from beta = 0, keeping the best seen."""
    start = adaptive_slopes(zl, zu, spec.shape[0])
    return _optimize(chain, zl, zu, signs, spec, lower, upper, start, False, iterations,
                     0.0, lr)[1]


def _optimize(chain: Chain, zl: Arr, zu: Arr, signs: Signs, spec: Arr, lower: Arr,
              upper: Arr, alphas: Arr, tune_alpha: bool, iterations: int, lr_alpha: float,
              lr_beta: float) -> tuple[Arr, Arr]:
    """Projected Adam on (alphas, betas) from (alphas, 0); alphas stay fixed unless
    `tune_alpha`; spec is (R, m), or (N, R, m) per subdomain. Returns the best pair
    seen per subdomain and row (float64). The search runs in float32 (half the memory
    traffic; its results are only candidates, which the caller's sound pass re-bounds)."""
    work = np.float32
    chain = _float32(chain)
    zl, zu, spec = zl.astype(work), zu.astype(work), spec.astype(work)
    lower, upper, alphas = lower.astype(work), upper.astype(work), alphas.astype(work)
    widths = [w.shape[0] for w in chain.weights[:-1]]
    cuts = np.cumsum([0, *widths])
    n_sub, rows = signs.shape[0], spec.shape[-2]
    split = signs != 0
    unstable = (zl < 0) & (zu > 0)
    betas = np.zeros((n_sub, rows, signs.shape[1]), dtype=work)
    tune_alpha = tune_alpha and bool(unstable.any())
    if (not split.any() and not tune_alpha) or iterations <= 0:
        return alphas.astype(np.float64), betas.astype(np.float64)
    layers: list[Layer] = []
    for k in range(len(widths)):
        lo, hi = zl[:, cuts[k]: cuts[k + 1]], zu[:, cuts[k]: cuts[k + 1]]
        unst = unstable[:, cuts[k]: cuts[k + 1]]
        slope = np.where(unst, hi / np.where(unst, hi - lo, 1.0), (lo >= 0) * 1.0)
        cut = np.where(unst, -slope * lo, 0.0)
        low_slope = np.where(unst, (hi >= -lo) * 1.0, (lo >= 0) * 1.0)
        sign = signs[:, cuts[k]: cuts[k + 1]].astype(work)
        layers.append((slope.astype(work), cut.astype(work), low_slope.astype(work), sign,
                       unst))
    mid, rad = 0.5 * (lower + upper), 0.5 * (upper - lower)
    state = [np.zeros_like(betas) for _ in range(4)]  # Adam moments: beta m, v; alpha m, v
    best_a, best_b = alphas.copy(), betas.copy()
    best_value = np.full((n_sub, rows), -np.inf, dtype=work)
    free_alpha = unstable[:, None, :]
    for step in range(1, iterations + 2):
        value, g_beta, g_alpha = _alpha_beta_bound_and_grad(chain, layers, cuts, alphas,
                                                            betas, spec, mid, rad)
        better = (value > best_value)[:, :, None]
        best_value = np.maximum(value, best_value)
        best_b = np.where(better, betas, best_b)
        best_a = np.where(better, alphas, best_a)
        if step > iterations:
            break
        betas = np.where(split[:, None, :], np.maximum(
            betas + _adam(state[0], state[1], g_beta, step, lr_beta), 0.0), 0.0)
        if tune_alpha:
            alphas = np.where(free_alpha, np.clip(
                alphas + _adam(state[2], state[3], g_alpha, step, lr_alpha), 0.0, 1.0),
                alphas)
    return best_a.astype(np.float64), best_b.astype(np.float64)


_FLOAT32: dict[int, tuple[Chain, Chain]] = {}  # by id: a chain and its float32 copy


def _float32(chain: Chain) -> Chain:
    """The chain with float32 weights and biases (made once per chain)."""
    got = _FLOAT32.get(id(chain))
    if got is None or got[0] is not chain:
        small = Chain(chain.relus, tuple(w.astype(np.float32) for w in chain.weights),
                      tuple(b.astype(np.float32) for b in chain.biases))
        _FLOAT32.clear()  # one model at a time: no chain outlives its search here
        got = _FLOAT32[id(chain)] = (chain, small)
    return got[1]


def _adam(m1: Arr, m2: Arr, grad: Arr, step: int, lr: float) -> Arr:
    """One Adam ascent step for `grad` (moments m1, m2 updated in place)."""
    m1 *= 0.9
    m1 += 0.1 * grad
    m2 *= 0.999
    m2 += 0.001 * grad * grad
    out: Arr = lr * (m1 / (1 - 0.9**step)) / (np.sqrt(m2 / (1 - 0.999**step)) + 1e-12)
    return out


def _alpha_beta_bound_and_grad(chain: Chain, layers: list[Layer],
                               cuts: Arr, alphas: Arr, betas: Arr, spec: Arr, mid: Arr,
                               rad: Arr) -> tuple[Arr, Arr, Arr]:
    """The float CROWN lower bound (N, R) with lower slopes `alphas` on unstable neurons
    and the beta terms, and its gradients in the betas and the alphas (at the relaxed
    optimum, relaxation choices held fixed: -sign * z for beta, the positive part of
    the coefficient times z for an unstable neuron's alpha). In spec's float type; spec
    is (R, m), or (N, R, m) per subdomain."""
    n_sub, rows = betas.shape[0], spec.shape[-2]

    def mat(a: Arr, w: Any, transposed: bool) -> Arr:
        """(N, R, k) times a layer's map as one (N R, k) matrix product."""
        flat = a.reshape(n_sub * rows, a.shape[-1])
        out = times_transposed(flat, w) if transposed else times(flat, w)
        return out.reshape(n_sub, rows, -1)

    lam = spec if spec.ndim == 3 else np.broadcast_to(spec, (n_sub,) + spec.shape)
    const = np.zeros(lam.shape[:2], dtype=spec.dtype)
    pres, lows = [], []
    for k in range(len(chain.weights) - 1, -1, -1):
        const += lam @ chain.biases[k]
        pre = mat(lam, chain.weights[k], False)  # on relu k - 1's output (k = 0: the input)
        if k == 0:
            lam = pre
            break
        slope, cut, low_slope, sign, unst = layers[k - 1]
        low = np.where(unst[:, None], alphas[:, :, cuts[k - 1]: cuts[k]], low_slope[:, None])
        pos, neg = np.maximum(pre, 0.0), np.minimum(pre, 0.0)
        const += (neg @ cut[:, :, None])[:, :, 0]
        lam = (pos * low + neg * slope[:, None]
               - betas[:, :, cuts[k - 1]: cuts[k]] * sign[:, None])
        pres.append(pre)
        lows.append(low)
    value = const + lam @ mid - np.abs(lam) @ rad
    g = mid[None, None, :] - np.sign(lam) * rad[None, None, :]  # the relaxed optimum x
    g = mat(g, chain.weights[0], True) + chain.biases[0]  # its z of relu 0
    g_beta = np.zeros_like(betas)
    g_alpha = np.zeros_like(betas)
    for k, (pre, low) in enumerate(zip(reversed(pres), reversed(lows), strict=True)):
        slope, cut, low_slope, sign, unst = layers[k]
        part = slice(cuts[k], cuts[k + 1])
        g_beta[:, :, part] = -sign[:, None] * g
        g_alpha[:, :, part] = np.where(unst[:, None] & (pre > 0), pre * g, 0.0)
        g_pre = np.where(pre > 0, g * low, g * slope[:, None] + cut[:, None])
        g = mat(g_pre, chain.weights[k + 1], True) + chain.biases[k + 1]
    return value, g_beta, g_alpha
