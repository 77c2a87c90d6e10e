"""Branch and bound over input boxes: prove that no point of a box meets an unsafe
condition, or find a candidate point that does.

The unsafe condition is a disjunction of conjunctions of linear output constraints
(VNN-LIB's form): the point x is unsafe when, for some group g, every row r of g has
`C[r] . f(x) <= d[r]`. A box is *refuted* for group g when a sound lower bound of some
row's `C[r] . f(x) - d[r]` over the box is > 0; the box is safe when every group is
refuted. What this module trusts nothing about: it takes

- `bound(lo, hi) -> (N, R)`: sound lower bounds of `C . f(x)` for each of N boxes,
- `evaluate(x) -> (N, R)`: `C . f(x)` at N points (float64; only steers the search),
- `confirm(x) -> bool`: whether x really is a counterexample (exact, the caller's),

and optionally `refine(lo, hi) -> ((N, R), data)`: tighter (dearer) sound lower bounds,
alpha-CROWN say, asked only for the boxes `bound` leaves open, whose verdict is taken from
`refine`'s bounds alone (a leaf it refutes keeps its `data`, the slopes a checker needs
to re-derive that very bound), and only where a box's float margin at its centre says a
tighter bound could refute it (`_worth_refining`: a box near a counterexample never is,
and refining it slows the search that finds the counterexample), once `refine_after`
boxes were bounded (a search that `bound` settles soon, or that soon finds a
counterexample, does not pay for it). It returns a `Tree`:
the root box, every split (box, axis, point), and every leaf with the row that refutes
each group. Children of a split are `[lo, point]` and `[point, hi]` along the axis, so
the leaves cover the root by construction; a checker re-derives each leaf's bound on its
own (see `check_tree`'s contract in the certificate module).

Search order: batches (bounding N boxes costs little more than one) of the open boxes
whose centre comes nearest to unsafe in floats (counterexamples early; a proof bounds
the same tree in any order), the newest first among equals; depth first once more than
`_MAX_OPEN` boxes are open, so memory stays bounded.
The split axis: given a cheap `split_bound` (IBP, say: sound or not, it only steers), the
axis whose halves it bounds best (the worse half's margin first, the sum of both next):
splitting where the *bound* is loosest, not where the function varies most, matters
when an input barely moves the output yet widens every relaxation (the ACAS Xu heading
angle). Without one, width times the sensitivity of the unrefuted rows, from central
differences of `evaluate`. Both are cheap for the low-dimensional inputs where input
splitting pays; high-dimensional inputs want activation splitting instead.

Steps: all per-box work of a batch (the bound, the refinement when due, the split axis,
the float margins at the box's centre and its children's) is one pure function of the
boxes, `box_step`, run over chunks of `unit` boxes; a caller may pass `steps` to run the
chunks elsewhere (a work pool: `verify.vnn.engine`). The chunks depend on the batch and
`unit` only, so the tree is the same however and wherever the chunks run; the driver keeps
the tree, the order, the probes and the deadline.

Time: every bounds call is sized to the time left before the deadline, from the slowest
seconds per box (bounding, splitting and the centre checks together) seen so far, plus
the refinement's slowest seconds per box times the largest share of a batch it was asked
for; a refinement is asked for only as many boxes as its slowest cost says fit; and the
deadline is checked before every confirmation, so a search returns "timeout" at most
about one box's cost, or one confirmation, after its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Problem", "Split", "Tree", "BabResult", "Step", "box_step", "branch_and_bound",
           "refuted_rows"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
BoundFn = Callable[[Arr, Arr], Arr]
RefineFn = Callable[[Arr, Arr], tuple[Arr, Sequence[Any]]]
EvalFn = Callable[[Arr], Arr]
ConfirmFn = Callable[[Arr], bool]
Chunk = tuple[Arr, Arr, int]  # boxes' lower and upper corners; how many lead may be refined
StepsFn = Callable[[Sequence[Chunk]], list["Step"]]


@dataclass(frozen=True)
class Problem:
    """An input box and an unsafe condition `OR_g AND_{r in g} C[r] . y <= d[r]`.

    `d_up` holds float64 values >= the exact right-hand sides (so a float bound above
    `d_up` is above the exact `d`); `groups` lists the row indices of each conjunction.
    """

    lower: Arr
    upper: Arr
    groups: tuple[tuple[int, ...], ...]
    d_up: Arr

    def __post_init__(self) -> None:
        lo, hi = self.lower, self.upper
        if lo.ndim != 1 or lo.shape != hi.shape:
            raise ValueError(f"box bounds must be 1-d of one shape, got {lo.shape}, {hi.shape}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
            raise ValueError("the box needs finite lower <= upper everywhere")
        rows = {r for g in self.groups for r in g}
        if not self.groups or any(not g for g in self.groups):
            raise ValueError("the unsafe condition needs at least one non-empty group")
        if not rows <= set(range(self.d_up.shape[0])):
            raise ValueError(f"groups name rows {sorted(rows)}, d has {self.d_up.shape[0]}")


@dataclass(frozen=True)
class Split:
    """Box `box` was split along `axis` at `point`, into boxes `left` and `right`."""

    box: int
    axis: int
    point: float
    left: int
    right: int


@dataclass
class Tree:
    """The search tree: splits in order, and each leaf box with its refuting rows
    (one row per group whose lower bound was above its right-hand side); `refined`: for
    the leaves refuted by the refining bound, the data it returned with their bounds."""

    splits: list[Split] = field(default_factory=list)
    leaves: dict[int, tuple[int, ...]] = field(default_factory=dict)
    refined: dict[int, Any] = field(default_factory=dict)

    def boxes(self, lower: Arr, upper: Arr) -> dict[int, tuple[Arr, Arr]]:
        """Every box of the tree by id, re-derived from the root and the splits."""
        out = {0: (lower, upper)}
        for s in self.splits:
            lo, hi = out[s.box]
            mid_hi, mid_lo = hi.copy(), lo.copy()
            mid_hi[s.axis] = s.point
            mid_lo[s.axis] = s.point
            out[s.left] = (lo, mid_hi)
            out[s.right] = (mid_lo, hi)
        return out


@dataclass(frozen=True)
class BabResult:
    """`status` is "holds", "violated", "unknown" (budget spent) or "timeout"."""

    status: str
    tree: Tree
    counterexample: Arr | None
    boxes_bounded: int
    seconds: float


@dataclass(frozen=True)
class Step:
    """What `box_step` found for N boxes: each box's refuting rows (None: open), the
    refinement's data for the leaves it refuted (by index), the split axis of each open
    box (-1 for a leaf), the float margins at each open box's centre and at the centres of
    its left and right halves along that axis (NaN for a leaf), and the seconds the
    refinement took of the step's `seconds`, over `refined` boxes."""

    leaves: list[tuple[int, ...] | None]
    refined: dict[int, Any]
    axes: np.ndarray[Any, Any]
    centre: Arr
    children: Arr
    refine_seconds: float
    refined_count: int
    seconds: float

    @staticmethod
    def join(parts: Sequence[Step]) -> Step:
        """The steps of consecutive chunks as one step over all their boxes."""
        offsets = np.cumsum([0] + [len(p.leaves) for p in parts])
        return Step([v for p in parts for v in p.leaves],
                    {int(o) + i: d for p, o in zip(parts, offsets, strict=False)
                     for i, d in p.refined.items()},
                    np.concatenate([p.axes for p in parts]),
                    np.concatenate([p.centre for p in parts]),
                    np.concatenate([p.children for p in parts]),
                    sum(p.refine_seconds for p in parts), sum(p.refined_count for p in parts),
                    sum(p.seconds for p in parts))


def box_step(lo: Arr, hi: Arr, eligible: int, problem: Problem, bound: BoundFn,
             evaluate: EvalFn, split_bound: BoundFn | None = None,
             refine: RefineFn | None = None, refine_reach: float = 8.0) -> Step:
    """All per-box work of a search step over the boxes [lo[i], hi[i]]: bound them,
    refine the open ones among the first `eligible` that `_worth_refining` picks (their
    verdict is the refinement's alone), and for each box still open the split axis and
    the float margins at its centre and at its two halves' centres (module docstring).
    A pure function of its arguments, so it may run on any worker."""
    t0 = time.monotonic()
    n = lo.shape[0]
    lower = np.asarray(bound(lo, hi), dtype=np.float64)
    leaves = refuted_rows(lower, problem)
    open_idx = [i for i, v in enumerate(leaves) if v is None]
    refined: dict[int, Any] = {}
    refine_s = 0.0
    count = 0
    due = [i for i in open_idx if i < eligible] if refine is not None else []
    if due:
        worth = _worth_refining(due, lo, hi, lower, problem, evaluate, refine_reach)
        if worth and refine is not None:
            t = time.monotonic()
            better, data = refine(lo[worth], hi[worth])
            refine_s = time.monotonic() - t
            count = len(worth)
            verdicts = refuted_rows(np.asarray(better, dtype=np.float64), problem)
            for i, v, d in zip(worth, verdicts, data, strict=True):
                if v is not None:
                    leaves[i] = v
                    refined[i] = d
            open_idx = [i for i in open_idx if i not in refined]
    axes = np.full(n, -1, dtype=np.int64)
    centre = np.full(n, np.nan)
    children = np.full((n, 2), np.nan)
    if open_idx:
        olo, ohi = lo[open_idx], hi[open_idx]
        centre[open_idx] = _margins(np.asarray(evaluate(0.5 * (olo + ohi)), np.float64),
                                    problem)
        a = np.asarray(_split_axes(olo, ohi, lower[open_idx], problem, evaluate, split_bound))
        rows = np.arange(len(open_idx))
        point = 0.5 * olo[rows, a] + 0.5 * ohi[rows, a]
        left_hi, right_lo = ohi.copy(), olo.copy()
        left_hi[rows, a] = point
        right_lo[rows, a] = point
        mids = np.concatenate([0.5 * (olo + left_hi), 0.5 * (right_lo + ohi)])
        margin = _margins(np.asarray(evaluate(mids), np.float64), problem)
        axes[open_idx] = a
        children[open_idx] = margin.reshape(2, -1).T
    return Step(leaves, refined, axes, centre, children, refine_s, count,
                time.monotonic() - t0)


def refuted_rows(lower: Arr, problem: Problem) -> list[tuple[int, ...] | None]:
    """For each box's row lower bounds (N, R): one refuting row per group, the one whose
    bound is furthest above its right-hand side (the first such), or None when some
    group is not refuted. The furthest, because a certificate's checker re-derives the
    bound its own way: the widest margin is the likeliest to survive that."""
    excess = lower - problem.d_up[None, :]
    best = []
    refuted = np.ones(lower.shape[0], dtype=bool)
    for g in problem.groups:
        rows = np.asarray(g)
        ex = np.where(np.isnan(excess[:, rows]), -np.inf, excess[:, rows])
        refuted &= np.any(ex > 0, axis=1)
        best.append(rows[np.argmax(ex, axis=1)])
    table = np.stack(best, axis=1).tolist()
    return [tuple(table[b]) if refuted[b] else None for b in range(lower.shape[0])]


def unsafe(values: Arr, problem: Problem) -> Arr:
    """Which points (their rows' values (N, R)) meet some group, by float evaluation (a
    guide for the search; only an exact confirmation decides)."""
    return np.asarray(_margins(values, problem) <= 0)


def _margins(lower: Arr, problem: Problem) -> Arr:
    """How far each box (row lower bounds (N, R)) is from being refuted: min over groups
    of max over the group's rows of lower - d; > 0 exactly when the box is refuted."""
    per_group = [np.max(lower[:, list(g)] - problem.d_up[list(g)], axis=1)
                 for g in problem.groups]
    return np.asarray(np.min(np.stack(per_group, axis=1), axis=1))


def _split_axes(lo: Arr, hi: Arr, lower: Arr, problem: Problem, evaluate: EvalFn,
                split_bound: BoundFn | None = None) -> np.ndarray[Any, Any]:
    """The axis to split for each box (module docstring): by `split_bound` on the halves
    when given, else by width times the summed sensitivity of the rows not yet refuted."""
    if split_bound is not None:
        return _split_axes_by_bound(lo, hi, problem, split_bound)
    n, dim = lo.shape
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    pts = np.repeat(centre[:, None, :], 2 * dim, axis=1)
    idx = np.arange(dim)
    pts[:, idx, idx] += half
    pts[:, dim + idx, idx] -= half
    vals = evaluate(pts.reshape(n * 2 * dim, dim)).reshape(n, 2 * dim, -1)
    slope = np.abs(vals[:, :dim, :] - vals[:, dim:, :])  # (n, dim, R): change over the width
    open_rows = (lower <= problem.d_up[None, :]).astype(np.float64)  # (n, R)
    score = np.einsum("ndr,nr->nd", slope, open_rows)
    score = np.where(hi > lo, score + 1e-300, -1.0)  # never split a zero-width axis
    widest = np.argmax(np.where(hi > lo, (hi - lo) / np.maximum(problem.upper - problem.lower,
                                                                 1e-300), -1.0), axis=1)
    best = np.argmax(score, axis=1)
    flat = np.max(score, axis=1) <= 1e-300  # no sensitivity seen: split the widest
    return np.asarray(np.where(flat, widest, best))


def _split_axes_by_bound(lo: Arr, hi: Arr, problem: Problem,
                         split_bound: BoundFn) -> np.ndarray[Any, Any]:
    """For each box, the axis whose two halves `split_bound` bounds best: the largest
    margin of the worse half, ties (a flat or saturated bound) broken by the sum of both
    halves' margins, then by the widest axis relative to the root."""
    n, dim = lo.shape
    mid = 0.5 * lo + 0.5 * hi
    idx = np.arange(dim)
    left_hi = np.repeat(hi[:, None, :], dim, axis=1)
    right_lo = np.repeat(lo[:, None, :], dim, axis=1)
    left_hi[:, idx, idx] = mid
    right_lo[:, idx, idx] = mid
    halves_lo = np.concatenate([np.repeat(lo[:, None, :], dim, axis=1), right_lo], axis=1)
    halves_hi = np.concatenate([left_hi, np.repeat(hi[:, None, :], dim, axis=1)], axis=1)
    low = np.asarray(split_bound(halves_lo.reshape(-1, dim), halves_hi.reshape(-1, dim)),
                     dtype=np.float64)
    margin = np.nan_to_num(_margins(low, problem), nan=-np.inf, neginf=-1e300,
                           posinf=1e300).reshape(n, 2, dim)
    worse = np.minimum(margin[:, 0], margin[:, 1])
    both = np.clip(margin[:, 0], -1e300, 1e300) * 0.5 + np.clip(margin[:, 1], -1e300, 1e300) * 0.5
    rel = (hi - lo) / np.maximum(problem.upper - problem.lower, 1e-300)
    splittable = mid > lo  # an axis no float can split any further scores last
    keys = [np.where(splittable, k, -np.inf) for k in (worse, both, rel)]
    order = np.lexsort((keys[2], keys[1], keys[0]), axis=-1)  # ascending: last is best
    return np.asarray(order[:, -1])


_Open = tuple[int, Arr, Arr, float]  # a box to bound: id, lower, upper, priority
_PROBED_BOXES = 32  # open boxes nearest to unsafe, per batch, probed at random points
_PROBES_PER_BOX = 8
_MAX_CONFIRMS = 8  # float-unsafe points confirmed per batch (an exact check is slow)
_MAX_OPEN = 200_000  # open boxes kept in priority order (a few hundred bytes each)


def _fill(stack: list[_Open], tree: Tree, next_id: int, batch: int,
          problem: Problem, evaluate: EvalFn, split_bound: BoundFn | None = None) -> int:
    """Split the boxes on the stack, unbounded, until a batch is about half full: bounding
    a full batch costs little more than a few boxes, and a box whose parent was not refuted
    is seldom refuted itself. Returns the next free box id."""
    while stack and 2 * len(stack) <= batch:
        lo = np.stack([t[1] for t in stack])
        hi = np.stack([t[2] for t in stack])
        open_rows = np.full((len(stack), problem.d_up.shape[0]), -np.inf)
        axes = _split_axes(lo, hi, open_rows, problem, evaluate, split_bound)
        grown: list[_Open] = []
        for k, (box, _, _, prio) in enumerate(stack):
            a = int(axes[k])
            point = 0.5 * float(lo[k, a]) + 0.5 * float(hi[k, a])
            if not lo[k, a] < point < hi[k, a]:
                return next_id  # a box no float can split further: leave it to the bound
            left_hi, right_lo = hi[k].copy(), lo[k].copy()
            left_hi[a] = point
            right_lo[a] = point
            tree.splits.append(Split(box, a, point, next_id, next_id + 1))
            grown.append((next_id + 1, right_lo, hi[k].copy(), prio))
            grown.append((next_id, lo[k].copy(), left_hi, prio))
            next_id += 2
        stack[:] = grown
    return next_id


def branch_and_bound(problem: Problem, bound: BoundFn, evaluate: EvalFn, confirm: ConfirmFn,
                     *, deadline: float, batch: int = 256, max_boxes: int = 10**7,
                     starts: Sequence[Arr] = (), split_bound: BoundFn | None = None,
                     refine: RefineFn | None = None, refine_reach: float = 8.0,
                     refine_after: int = 0, seed: int = 0, unit: int | None = None,
                     steps: StepsFn | None = None) -> BabResult:
    """Split the problem's box until every leaf is refuted ("holds"), a confirmed
    counterexample is found ("violated"), `deadline` (a `time.monotonic()` value) passes
    ("timeout") or `max_boxes` boxes were bounded ("unknown").

    `starts` are extra candidate points (from an attack) checked first; `split_bound`, a
    cheap bound like `bound`'s, steers the choice of split axis; `refine` bounds the boxes
    `bound` leaves open, as many as fit in the time left, those whose float margin at the
    centre is positive and at least 1/`refine_reach` of `bound`'s shortfall, once more
    than `refine_after` boxes were bounded (module docstring). Each
    open box's centre, and `seed`-ed random points in the open boxes nearest to unsafe,
    are checked in floats; those that look unsafe go to `confirm`. The
    search returns about one box's cost, or one confirmation, after the deadline at most.

    Each batch's per-box work runs as `box_step` over chunks of `unit` boxes (default: the
    whole batch); `steps`, when given, runs them instead (`steps(chunks)` returns their
    `Step`s in order; it must compute what `box_step` with these functions would, e.g. on
    a work pool), and `bound`, `split_bound` and `refine` then serve only where the stack
    is split before bounding (`split_bound`) and to say whether refinement is on (`refine`).
    """
    t0 = time.monotonic()
    tree = Tree()
    clock = _Budget(deadline)
    unit = batch if unit is None else unit
    if unit < 1:
        raise ValueError(f"unit must be a positive number of boxes, got {unit}")

    def local(chunks: Sequence[Chunk]) -> list[Step]:
        return [box_step(lo, hi, k, problem, bound, evaluate, split_bound, refine, refine_reach)
                for lo, hi, k in chunks]

    run_steps = local if steps is None else steps

    def result(status: str, cex: Arr | None = None) -> BabResult:
        return BabResult(status, tree, cex, bounded, time.monotonic() - t0)

    bounded = 0
    for x in starts:
        if not clock.may_confirm():
            return result("timeout")
        if clock.confirm(confirm, np.asarray(x, dtype=np.float64)):
            return result("violated", np.asarray(x, np.float64))
    stack: list[_Open] = [(0, problem.lower.copy(), problem.upper.copy(), 0.0)]
    rng = np.random.default_rng(seed)
    next_id = 1
    while stack:
        if time.monotonic() > deadline:
            return result("timeout")
        if bounded >= max_boxes:
            return result("unknown")
        t_iter = time.monotonic()
        next_id = _fill(stack, tree, next_id, batch, problem, evaluate, split_bound)
        size = clock.batch_size(batch)
        take = _take(stack, size)
        ids = [t[0] for t in take]
        lo = np.stack([t[1] for t in take])
        hi = np.stack([t[2] for t in take])
        n = len(take)
        # the boxes at the head of the batch that may be refined: a count fixed before
        # the step, so the chunks (and the tree) do not depend on where they run
        eligible = (clock.refine_count(n) if refine is not None and bounded + n > refine_after
                    else 0)
        t_step = time.monotonic()
        step = Step.join(run_steps([(lo[s:s + unit], hi[s:s + unit],
                                     max(0, min(unit, eligible - s)))
                                    for s in range(0, n, unit)]))
        step_s = time.monotonic() - t_step
        bounded += n
        # the refinement's share of the step's wall time (the chunks may run in parallel)
        refine_s = step_s * step.refine_seconds / step.seconds if step.seconds > 0 else 0.0
        if step.refined_count:
            clock.refined(refine_s, step.refined_count, n)
        for i, v in enumerate(step.leaves):
            if v is not None:
                tree.leaves[ids[i]] = v
                if i in step.refined:
                    tree.refined[ids[i]] = step.refined[i]
        open_idx = [i for i, v in enumerate(step.leaves) if v is None]
        if not open_idx:
            clock.measured(t_iter, n, refine_s)
            continue
        olo, ohi = lo[open_idx], hi[open_idx]
        centre = 0.5 * (olo + ohi)
        centre_margin = step.centre[open_idx]
        near = np.argsort(centre_margin, kind="stable")[:_PROBED_BOXES]
        probes = olo[near, None, :] + (ohi - olo)[near, None, :] * rng.random(
            (len(near), _PROBES_PER_BOX, olo.shape[1]))
        probes = np.concatenate([centre, probes.reshape(-1, olo.shape[1])])
        probe_margin = np.concatenate([
            centre_margin, _margins(np.asarray(evaluate(probes[len(centre):]), np.float64),
                                    problem)])
        clock.measured(t_iter, n, refine_s)
        for hit in np.flatnonzero(probe_margin <= 0)[:_MAX_CONFIRMS]:
            if not clock.may_confirm():
                return result("timeout")
            if clock.confirm(confirm, probes[hit]):
                return result("violated", probes[hit])
        for k, i in enumerate(open_idx):
            a = int(step.axes[i])
            a_lo, a_hi = float(olo[k, a]), float(ohi[k, a])
            point = 0.5 * a_lo + 0.5 * a_hi
            if not a_lo < point < a_hi:  # a box no float can split further
                return result("unknown")
            left_hi, right_lo = ohi[k].copy(), olo[k].copy()
            left_hi[a] = point
            right_lo[a] = point
            tree.splits.append(Split(ids[i], a, point, next_id, next_id + 1))
            # each child's priority: the float margin at its own centre
            left_prio, right_prio = (float(m) for m in step.children[i])
            stack.append((next_id + 1, right_lo, ohi[k].copy(), right_prio))
            stack.append((next_id, olo[k].copy(), left_hi, left_prio))
            next_id += 2
    return result("holds")


def _worth_refining(open_idx: list[int], lo: Arr, hi: Arr, lower: Arr, problem: Problem,
                    evaluate: EvalFn, reach: float) -> list[int]:
    """The open boxes (indices into the batch) a tighter bound might refute: the float
    margin m at the centre is positive (else the box looks unsafe: no sound bound
    refutes it) and the bound's shortfall below zero is under `reach` times m (a
    relaxation's gap grows with the box; one far below the centre's value is rarely
    closed). An untrusted steer: a box left out is split, never claimed."""
    centre = 0.5 * (lo[open_idx] + hi[open_idx])
    at_centre = _margins(np.asarray(evaluate(centre), np.float64), problem)
    bound_margin = np.nan_to_num(_margins(lower[open_idx], problem), nan=-np.inf)
    keep = (at_centre > 0) & (bound_margin + reach * at_centre > 0)
    return [i for i, k in zip(open_idx, keep.tolist(), strict=True) if k]


def _take(stack: list[_Open], size: int) -> list[_Open]:
    """Remove and return the `size` boxes of least priority (the float margin at the
    box's centre, or its parent's: nearest to unsafe first, so counterexamples turn up
    early), the newest first among equals (depth first). Past _MAX_OPEN open boxes, the
    newest (depth first), which keeps memory bounded by the depth times the batch."""
    if len(stack) <= size:
        out = stack[::-1]
        stack.clear()
        return out
    if len(stack) > _MAX_OPEN:
        out = stack[-size:][::-1]
        del stack[-size:]
        return out
    prio = np.array([t[3] for t in stack])
    order = np.lexsort((-np.arange(len(stack)), prio))
    chosen = set(order[:size].tolist())
    out = [stack[i] for i in order[:size]]
    stack[:] = [t for i, t in enumerate(stack) if i not in chosen]
    return out


class _Budget:
    """The time left before a deadline, and the costs seen so far: the slowest seconds
    per box of a whole search step (refinement aside), the slowest seconds per refined
    box, the largest share of a batch refined, and the slowest confirmation."""

    FIRST_BATCH = 16  # boxes bounded (or refined) before any cost is known

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.per_box = 0.0
        self.per_refine = 0.0
        self.refine_share = 0.0
        self.per_confirm = 0.0

    def batch_size(self, batch: int) -> int:
        """How many boxes to bound next: `batch`, fewer when the time left allows fewer
        at the slowest cost per box seen, refinement's share included (at least one)."""
        if self.per_box <= 0:
            return min(batch, self.FIRST_BATCH)
        left = self.deadline - time.monotonic()
        cost = self.per_box + self.refine_share * self.per_refine
        return int(max(1, min(batch, left / cost)))

    def refine_count(self, boxes: int) -> int:
        """How many of `boxes` open boxes to refine: those whose refinement, at the slowest
        cost per box seen, ends before the deadline with the rest of the step's cost for
        them (at most FIRST_BATCH before any cost is known)."""
        if self.per_refine <= 0:
            return min(boxes, self.FIRST_BATCH)
        left = self.deadline - time.monotonic() - self.per_box * boxes
        return int(max(0, min(boxes, left / self.per_refine)))

    def refined(self, seconds: float, boxes: int, batch: int) -> None:
        """Record a refinement of `boxes` of a batch of `batch` boxes that took `seconds`
        of the step's wall time."""
        self.per_refine = max(self.per_refine, seconds / max(1, boxes))
        self.refine_share = max(self.refine_share, boxes / max(1, batch))

    def measured(self, since: float, boxes: int, refining: float = 0.0) -> None:
        """Record a step over `boxes` boxes that began at `since` and spent `refining`
        seconds of it refining."""
        spent = time.monotonic() - since - refining
        self.per_box = max(self.per_box, spent / max(1, boxes))

    def may_confirm(self) -> bool:
        """Whether the slowest confirmation seen so far still fits before the deadline."""
        return time.monotonic() + self.per_confirm <= self.deadline

    def confirm(self, confirm: ConfirmFn, x: Arr) -> bool:
        """`confirm(x)`, timed."""
        t = time.monotonic()
        try:
            return confirm(x)
        finally:
            self.per_confirm = max(self.per_confirm, time.monotonic() - t)
