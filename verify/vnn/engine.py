"""The verdict engine: is a VNN-LIB property `holds`, `violated`, `unknown` or `timeout`?

    v = verify_instance("net.onnx", "prop.vnnlib", timeout=60, certificate="cert.json")
    v = verify_instance((graph, params), prop)        # a graph of the library, a Property
    v.status, v.counterexample, v.seconds, v.phases

Per case of the property (an input box and a disjunction of conjunctions of output rows
`c . Y <= d`), within one wall-clock deadline passed down to every step:

1. Attack (untrusted search, `attack.py`): the centre, the corners (up to 12 inputs) and
   seeded random points, then signed-gradient descent on the margin of the unsafe
   condition (input gradients from `runtime.graph.autodiff.grad_graph` on the re-batched
   graph, compiled). Every proposal goes through `confirm.Confirmer`: in the exact box,
   unsafe in exact arithmetic (rigorous intervals for tanh / sigmoid) and, for ONNX files
   with onnxruntime installed, unsafe in float32 there too (a disagreement is reported in
   the detail; the exact check decides). Only a confirmed point makes `violated`.
2. Bounds: CROWN (IBP where CROWN lacks an op) over a binary64 box containing the exact
   box, outward rounded (`verify.bounds`). A conjunction is refuted when one of its rows
   has a lower bound above `d` (rows that are not binary64 numbers are charged their
   rounding times the output magnitudes). For wider inputs than input splitting takes,
   full alpha-CROWN is tried next (its slopes travel in the certificate).
3. Branch and bound (`bab.py`) over input splits when the input has at most
   `max_split_inputs` entries: boxes bounded in batches through the re-batched graph
   (each batch in work units that do all per-box work, optionally on a
   `verify.workers.WorkPool`; the tree does not depend on it), IBP then CROWN, and full
   alpha-CROWN (batched, slopes on the 2^-16 grid, kept for the certificate) on the
   boxes CROWN leaves open when the model is an affine-ReLU chain. Every leaf is
   refuted, or a confirmed counterexample is found, or the deadline passes. Wider inputs get branch
   and bound over ReLU splits instead (`relu_bab.py`: subdomains fixing the signs of
   unstable pre-activations, bounded in batches by CROWN with the splits), when the
   model is a chain of affine maps and ReLUs (what the exact checker reads); other
   models answer `unknown` when CROWN alone cannot prove them.

`holds` when every case's tree is refuted; the trees are written as a certificate when
asked (`tree_certificate.py`: re-checked exactly by `check_tree_certificate`).
`timeout` when the deadline passes first: every batch of boxes or subdomains is sized to
the time left and every exact confirmation must fit in it (the slowest so far), so an
instance overruns its limit by about one batch's or one confirmation's cost.

Verdicts are about the real-number function the graph denotes (weights read exactly),
the semantics `verify.bounds` and the `exact` field share.

Models come from `torchlean.verify.vnn.onnx_import.load_onnx`, imported only when an ONNX
path is given, from the library's own model files (`verify.model_file`, `.json`), or as a
`(graph, params)` pair: one input with a leading batch axis of 1, one output;
`X_i` / `Y_i` index the input / output flattened row-major.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph
from ...runtime.graph.autodiff import NotDifferentiableError
from ...spec.errors import ShapeError, UnsupportedOperation
from ..bounds.alpha_crown import relu_chain
from ..workers import Shared, UnitError, WorkPool
from .attack import attack
from .bab import Problem, Step, Tree, box_step, branch_and_bound, refuted_rows
from .batched import ALPHA_MAX_RELUS, BatchedModel
from .confirm import Confirmation, Confirmer
from .exact_chain import ChainSlopes
from .instance import fit_property, load_model, model_sizes
from .relu_bab import SLOPE_BITS, relu_branch_and_bound
from .tree_certificate import CaseTree, ReluCaseTree, case_rows, write_tree_certificate
from .vnnlib import Case, Property, read_vnnlib

__all__ = ["Verdict", "STATUSES", "verify_instance", "load_model", "model_sizes",
           "fit_property"]

STATUSES = ("holds", "violated", "unknown", "timeout")
Array = np.ndarray[Any, Any]
Counterexample = tuple[tuple[Fraction, ...], tuple[Fraction, ...]]
MAX_SPLIT_INPUTS = 16  # input splitting pays for low-dimensional inputs only
RELU_BATCH = 64  # subdomains per ReLU-splitting batch: CROWN's cost grows with it
BETA_ITERATIONS = 20  # projected Adam steps on the split multipliers per batch
# ... and on slopes and multipliers together where slopes are tuned: on mnistfc 256x4
# prop_0_0.03 20 / 30 / 50 steps took 1325 / 849 / 611 subdomains, 40 / 34 / 30 s
ALPHA_BETA_ITERATIONS = 50
# rounds of targeted PGD (one start per unsafe group) before ReLU splitting, for inputs
# too wide to split: on the 60 mnistfc instances the untargeted attack confirms 15
# violations, 2 rounds one more, 10 rounds two more (about 1.5 s on 256x4)
ATTACK_RESTARTS = 10
# ReLUs beyond which subdomains get no beta search: on the verivital conv net (23328
# ReLUs) a batch's search cost ~20x its CROWN pass (15 s against 0.7 s for 64 subdomains
# on a loaded machine) and did not raise the worst subdomains' bounds more per second;
# prop_13 eps 0.04 holds after 53 subdomains in 0.6 s without it, 39 in 2.4 s with 5 steps
BETA_MAX_RELUS = ALPHA_MAX_RELUS
# alpha-CROWN steps on the boxes input splitting leaves open: on ACAS Xu boxes 10 steps
# refute nearly as many as 20 (0.50 against 0.55 of them) at 2/3 of the cost
ALPHA_SPLIT_ITERATIONS = 10
# boxes input splitting bounds with CROWN alone before alpha-CROWN joins: the ACAS Xu
# counterexamples it finds take up to ~3000 (1_5 prop_2: 2968, 5_3 prop_2: 2296), and
# alpha-CROWN on every open box there made those searches 3-5x slower
ALPHA_AFTER_BOXES = 4096
# chunks (work units) per input-splitting batch: fixed by the batch, never by the workers,
# so the tree is the same on any pool; 4 of 64 boxes cost about 10% more than one of 256
UNITS_PER_BATCH = 4


@dataclass(frozen=True)
class Verdict:
    """The answer for one instance.

    `status` is one of `STATUSES`; `counterexample` is the exact (inputs, outputs) of a
    `violated` verdict (None otherwise); `seconds` the wall-clock time; `detail` a short
    human-readable reason; `certificate` the path of a certificate file when one is written;
    `phases` the seconds spent per phase ("attack", "bounds", "branching").
    """

    status: str
    counterexample: Counterexample | None
    seconds: float
    detail: str = ""
    certificate: str | None = None
    phases: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if (self.status == "violated") != (self.counterexample is not None):
            raise ValueError("a counterexample comes with a 'violated' verdict, and only then")


class _Timeout(Exception):
    pass


class _Clock:
    def __init__(self, timeout: float | None) -> None:
        self.start = time.monotonic()
        self.deadline = None if timeout is None else self.start + timeout

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Timeout

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start


# -- models ----------------------------------------------------------------------------
_FLOAT_RANGE = Fraction(2) ** 1000  # well inside binary64, so nothing rounds to inf


def _in_float_range(prop: Property) -> bool:
    """Whether every number of the property converts to a finite binary64."""
    for case in prop.cases:
        nums = [*case.box.lower, *case.box.upper]
        nums += [q for conj in case.unsafe for k in conj for q in (*k.coefficients, k.bound)]
        if any(abs(q) > _FLOAT_RANGE for q in nums):
            return False
    return True


# -- per-case problems ---------------------------------------------------------------------
def _up(q: Fraction) -> float:
    """The least binary64 >= q."""
    f = float(q)
    return float(np.nextafter(f, np.inf)) if Fraction(f) < q else f


def _outward_box(case: Case) -> tuple[Array, Array]:
    """A binary64 box containing the exact closed box."""
    lo = np.array([float(q) for q in case.box.lower])
    hi = np.array([float(q) for q in case.box.upper])
    lo = np.where([Fraction(v) > q for v, q in zip(lo, case.box.lower, strict=True)],
                  np.nextafter(lo, -np.inf), lo)
    hi = np.where([Fraction(v) < q for v, q in zip(hi, case.box.upper, strict=True)],
                  np.nextafter(hi, np.inf), hi)
    return lo, hi


class _Phases:
    def __init__(self) -> None:
        self.seconds = {"attack": 0.0, "bounds": 0.0, "branching": 0.0}

    def add(self, name: str, t0: float) -> None:
        self.seconds[name] += time.monotonic() - t0

    def items(self) -> tuple[tuple[str, float], ...]:
        return tuple(self.seconds.items())


class _Case:
    """One case as a branch-and-bound problem over float rows, with its exact rows."""

    def __init__(self, case: Case, model: BatchedModel, bound: Callable[[Array, Array, Array],
                                                                       Array]) -> None:
        self.case = case
        self.rows, groups = case_rows(case)
        self.empty_group = any(not g for g in groups)
        self.C = np.array([[float(c) for c in k.coefficients] for k in self.rows],
                          dtype=np.float64).reshape(-1, model.m)
        self.lo, self.hi = _outward_box(case)
        self.problem: Problem | None = None
        if self.empty_group:
            return
        exact_rows = all(Fraction(f) == c for k, r in zip(self.rows, self.C, strict=True)
                         for c, f in zip(k.coefficients, r, strict=True))
        err = [Fraction(0)] * len(self.rows)
        if not exact_rows:
            # c . y >= c64 . y - sum |c - c64| max|y| over the root box, which holds every
            # box branch and bound will bound
            both = np.vstack([np.eye(model.m), -np.eye(model.m)])
            low = bound(self.lo[None], self.hi[None], both)[0]
            mag = np.maximum(np.abs(low[: model.m]), np.abs(low[model.m:]))
            finite = bool(np.all(np.isfinite(mag)))
            for i, (k, r) in enumerate(zip(self.rows, self.C, strict=True)):
                res = [abs(c - Fraction(float(f))) for c, f in zip(k.coefficients, r,
                                                                   strict=True)]
                if any(res):
                    err[i] = (sum((d * Fraction(float(mj)) for d, mj in
                                   zip(res, mag, strict=True) if d), Fraction(0))
                              if finite else Fraction(2) ** 1100)
        d_up = np.array([_up(k.bound + e) if e < Fraction(2) ** 1000 else np.inf
                         for k, e in zip(self.rows, err, strict=True)])
        self.problem = Problem(self.lo, self.hi, tuple(tuple(g) for g in groups), d_up)


# -- the engine ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _StepSpec:
    """What a search step's unit needs besides its boxes and the model: the case's
    problem and rows, whether IBP steers the split axis, whether alpha-CROWN refines open
    boxes and whether its leaves keep their slopes."""

    problem: Problem
    C: Array
    steer: bool
    refine: bool
    keep_slopes: bool


def _step_unit(lo: Array, hi: Array, eligible: int, spec: _StepSpec, m: BatchedModel) -> Step:
    """`bab.box_step` over the boxes with the engine's functions: IBP, then CROWN on the
    boxes IBP leaves open; alpha-CROWN on the open boxes due for it; IBP of the halves for
    the split axis (a unit of work for a WorkPool: pure, so its result does not depend on
    where it runs)."""
    C, problem = spec.C, spec.problem

    def bound(lo: Array, hi: Array) -> Array:
        try:
            low = m.ibp(lo, hi, C)
        except (UnsupportedOperation, ShapeError):
            return m.bound(lo, hi, C)[0]
        open_ = [i for i, r in enumerate(refuted_rows(low, problem)) if r is None]
        if open_:  # both are sound, so their maximum is
            low[open_] = np.maximum(low[open_], m.bound(lo[open_], hi[open_], C)[0])
        return low

    def evaluate(x: Array) -> Array:
        return np.asarray(m.evaluate(x) @ C.T, np.float64)

    def split_bound(lo: Array, hi: Array) -> Array:
        return m.ibp(lo, hi, C)

    return box_step(lo, hi, eligible, problem, bound, evaluate,
                    split_bound if spec.steer else None,
                    _alpha_refine(m, C, spec.keep_slopes) if spec.refine else None)


def _steps(m: BatchedModel, spec: _StepSpec, pool: WorkPool | None, shared: Shared | None,
           phases: _Phases) -> Callable[[Sequence[tuple[Array, Array, int]]], list[Step]]:
    """Run a batch's chunks as `_step_unit`s: in this process, or one unit per chunk on
    the pool's workers; results in chunk order (timed as the "bounds" phase)."""
    def steps(chunks: Sequence[tuple[Array, Array, int]]) -> list[Step]:
        t0 = time.monotonic()
        try:
            if pool is None or shared is None:
                return [_step_unit(lo, hi, k, spec, m) for lo, hi, k in chunks]
            out: list[Step | None] = [None] * len(chunks)
            for i, res in pool.run(_step_unit, [(lo, hi, k, spec) for lo, hi, k in chunks],
                                   shared):
                if isinstance(res, UnitError):
                    raise RuntimeError(f"a branch-and-bound unit failed on a worker: {res}")
                out[i] = res
            return [s for s in out if s is not None]
        finally:
            phases.add("bounds", t0)
    return steps


def verify_instance(model: str | os.PathLike[str] | tuple[Graph, Mapping[str, Any]],
                    prop: str | os.PathLike[str] | Property, timeout: float | None = None,
                    *, samples: int = 256, seed: int = 0,
                    certificate: str | os.PathLike[str] | None = None,
                    pool: WorkPool | None = None, batch: int = 256,
                    unit_boxes: int | None = None,
                    max_split_inputs: int = MAX_SPLIT_INPUTS) -> Verdict:
    """The verdict for `model` (an ONNX path, a `.json` model file or a (graph, params)
    pair) against `prop` (a VNN-LIB path or a parsed Property), within `timeout`
    wall-clock seconds (None: none).

    `holds`: the unsafe region is empty (sound outward-rounded bounds over a tree of input
    boxes; the tree is written to `certificate` when given); `violated`: a counterexample
    confirmed exactly (module docstring); `unknown`: neither; `timeout`: the limit passed
    first. Input splitting bounds `batch` boxes a step, in work units of `unit_boxes`
    (default batch / UNITS_PER_BATCH) that do all per-box work (bounds, alpha-CROWN, the
    split axis); `pool` runs the units on its workers: the same tree and certificate
    as with no pool, for any number of workers (they depend on `batch` and `unit_boxes`).
    Bad files raise DataFormatError; an unavailable ONNX importer or an unusable
    graph UnsupportedOperation or ShapeError."""
    clock = _Clock(timeout)
    phases = _Phases()
    parsed = prop if isinstance(prop, Property) else read_vnnlib(prop)
    onnx_path: str | None = None
    if isinstance(model, tuple):
        graph, params = model
    else:
        graph, params = load_model(model)
        onnx_path = None if os.fspath(model).endswith(".json") else os.fspath(model)
    m = BatchedModel(graph, params, max_batch=batch)
    parsed = fit_property(parsed, m.n, m.m)

    def done(status: str, detail: str, cex: Counterexample | None = None,
             cert: str | None = None) -> Verdict:
        return Verdict(status, cex, clock.seconds, detail, cert, phases.items())

    if not parsed.cases:
        cert = None
        if certificate is not None:  # an empty tree list: the checker re-reads no cases
            write_tree_certificate(certificate, parsed, [])
            cert = os.fspath(certificate)
        return done("holds", "the asserts cannot all hold: no cases", cert=cert)
    if not _in_float_range(parsed):
        return done("unknown", "the property holds numbers beyond 2^1000, out of the "
                    "search's and the bounds' binary64 range")
    confirmer = Confirmer(graph, m.params, onnx_path)
    shared = pool.share(BatchedModel(graph, params, max_batch=batch)) if pool else None

    unit = unit_boxes if unit_boxes is not None else max(1, batch // UNITS_PER_BATCH)
    if unit < 1:
        raise ValueError(f"unit_boxes must be a positive number of boxes, got {unit}")

    def bound3(lo: Array, hi: Array, C: Array) -> Array:
        t0 = time.monotonic()
        try:
            return m.bound(lo, hi, C)[0]
        finally:
            phases.add("bounds", t0)

    def steps(spec: _StepSpec) -> Callable[[Sequence[tuple[Array, Array, int]]], list[Step]]:
        return _steps(m, spec, pool, shared, phases)

    try:
        cases = [_Case(c, m, bound3) for c in parsed.cases]
        # 1. attack every case first: counterexamples are cheap to find when they exist
        for i, pc in enumerate(cases):
            clock.check()
            found = _attack_case(pc, m, confirmer, clock, phases, samples, seed + i)
            if found is not None:
                return done("violated", _cex_detail(found, i, len(cases)),
                            (found.x, found.y))
        # 2-3. bounds, then branch and bound, per case
        trees: list[CaseTree | ReluCaseTree] = []
        notes: list[str] = []
        unknown = ""
        for i, pc in enumerate(cases):
            clock.check()
            status, tree, found, note = _prove_case(pc, m, confirmer, clock, phases,
                                                    bound3, steps, batch, unit,
                                                    max_split_inputs, certificate is not None)
            where = f"case {i + 1} of {len(cases)}"
            if status == "violated":
                assert found is not None
                return done("violated", _cex_detail(found, i, len(cases)), (found.x, found.y))
            if status == "timeout":
                raise _Timeout
            if status == "unknown":
                unknown = unknown or f"{where}: {note}"
                continue
            assert tree is not None
            trees.append(tree)
            notes.append(note)
        if unknown:
            if confirmer.unusable:
                unknown += f"; {confirmer.unusable}"
            return done("unknown", unknown)
        cert = None
        if certificate is not None:
            write_tree_certificate(certificate, parsed, trees)
            cert = os.fspath(certificate)
        leaves = sum(len(t.leaves) if isinstance(t, CaseTree) else len(t.refuted)
                     for t in trees)
        return done("holds", f"every unsafe disjunct of {len(cases)} case(s) is refuted "
                    f"on {leaves} box(es) or subdomain(s) by "
                    f"{', '.join(sorted(set(notes)))}", cert=cert)
    except _Timeout:
        return done("timeout", f"no verdict within {timeout} s")


def _cex_detail(c: Confirmation, case: int, cases: int) -> str:
    text = f"counterexample in case {case + 1} of {cases}, confirmed in {c.method} arithmetic"
    if c.float32 is True:
        text += " and in float32 under onnxruntime"
    return f"{text}; {c.note}" if c.note else text


def _confirm_fn(pc: _Case, confirmer: Confirmer, found: list[Confirmation],
                clock: _Clock) -> Callable[[Array], bool]:
    """`confirm` for the search; it raises _Timeout instead of starting a confirmation
    that the slowest one seen so far says would end past the deadline (an exact check
    takes a good part of a second on ACAS Xu)."""
    slowest = [0.0]

    def confirm(x: Array) -> bool:
        t = time.monotonic()
        if clock.deadline is not None and t + slowest[0] > clock.deadline:
            raise _Timeout
        c = confirmer.confirm(pc.case, np.asarray(x, np.float64))
        slowest[0] = max(slowest[0], time.monotonic() - t)
        if c is not None:
            found.append(c)
        return c is not None
    return confirm


def _attack_case(pc: _Case, m: BatchedModel, confirmer: Confirmer, clock: _Clock,
                 phases: _Phases, samples: int, seed: int, restarts: int = 0
                 ) -> Confirmation | None:
    """A confirmed counterexample of the case by `attack` (with `restarts` rounds of
    targeted PGD after the untargeted search), or None."""
    t0 = time.monotonic()
    found: list[Confirmation] = []
    confirm = _confirm_fn(pc, confirmer, found, clock)
    try:
        if pc.problem is None:  # an empty conjunction: every point of the box is unsafe
            for x in (0.5 * (pc.lo + pc.hi), pc.lo, pc.hi):
                if confirm(x):
                    return found[-1]
            return None
        C = pc.C

        def evaluate(x: Array) -> Array:
            return np.asarray(m.evaluate(x) @ C.T, np.float64)

        def gradient(x: Array, w: Array) -> Array:
            return m.gradient(x, w @ C)

        grad: Any = gradient
        try:
            m.gradient(pc.lo[None], np.zeros((1, C.shape[0])) @ C)
        except (NotDifferentiableError, UnsupportedOperation, ShapeError):
            grad = None
        hit = attack(pc.problem, evaluate, grad, confirm, seed=seed, samples=samples,
                     restarts=restarts, deadline=clock.deadline)
        return found[-1] if hit is not None and found else None
    finally:
        phases.add("attack", t0)


def _prove_case(pc: _Case, m: BatchedModel, confirmer: Confirmer, clock: _Clock,
                phases: _Phases, bound3: Callable[[Array, Array, Array], Array],
                steps: Callable[[_StepSpec], Callable[[Sequence[tuple[Array, Array, int]]],
                                                      list[Step]]],
                batch: int, unit: int, max_split: int, keep_slopes: bool = True
                ) -> tuple[str, CaseTree | ReluCaseTree | None, Confirmation | None, str]:
    """(status, tree, counterexample, note) for one case after the attack; the slopes of
    leaves that alpha-CROWN refutes are kept for the certificate when `keep_slopes`; each
    search step's per-box work runs through `steps`, in chunks of `unit` boxes."""
    if pc.problem is None:
        return "unknown", None, None, "an unsafe disjunct has no output constraint"
    problem, C = pc.problem, pc.C
    try:
        low = bound3(pc.lo[None], pc.hi[None], C)
    except (UnsupportedOperation, ShapeError) as e:
        return "unknown", None, None, f"no bounds for this model ({e})"
    method = "crown" if m.batching_error is None else "bounds"
    root = refuted_rows(low, problem)[0]
    if root is not None:
        return "holds", _case_tree(pc, Tree(leaves={0: root})), None, f"{method} bounds"
    if m.n > max_split:
        # bounds failed at the root: a stronger search before the costly ones
        hit = _attack_case(pc, m, confirmer, clock, phases, 0, 0, ATTACK_RESTARTS)
        if hit is not None:
            return "violated", None, hit, ""
        proved, root_slopes = _alpha_root(pc, m, problem, C, phases)
        if proved is not None:
            return "holds", proved, None, "alpha-crown bounds"
        clock.check()
        return _relu_split_case(pc, m, confirmer, clock, phases, batch, max_split,
                                root_slopes)
    found: list[Confirmation] = []

    def evaluate(x: Array) -> Array:
        return np.asarray(m.evaluate(x) @ C.T, np.float64)

    def split_bound(lo: Array, hi: Array) -> Array:  # IBP: cheap, steers the splits
        return m.ibp(lo, hi, C)

    try:
        split_bound(pc.lo[None], pc.hi[None])
        steer: Callable[[Array, Array], Array] | None = split_bound
    except (UnsupportedOperation, ShapeError):
        steer = None
    refine = _alpha_refine(m, C, keep_slopes) if _alpha_applies(m) else None
    spec = _StepSpec(problem, C, steer is not None, refine is not None, keep_slopes)
    t0 = time.monotonic()
    before = phases.seconds["bounds"]
    res = branch_and_bound(problem, lambda lo, hi: bound3(lo, hi, C), evaluate,
                           _confirm_fn(pc, confirmer, found, clock),
                           deadline=clock.deadline if clock.deadline is not None else np.inf,
                           batch=batch, split_bound=steer, refine=refine,
                           refine_after=ALPHA_AFTER_BOXES, unit=unit, steps=steps(spec))
    phases.seconds["branching"] += (time.monotonic() - t0) - (phases.seconds["bounds"] - before)
    if res.status == "violated":
        return "violated", None, found[-1], ""
    if res.status == "holds":
        tree = _case_tree(pc, res.tree)
        if not res.tree.refined:
            return "holds", tree, None, "input splitting with crown bounds"
        # without a certificate to write, the search kept no slopes (nothing to convert)
        slopes = tuple((leaf, m.chain_slopes(res.tree.refined[leaf], rows))
                       for leaf, rows in tree.leaves
                       if keep_slopes and leaf in res.tree.refined)
        return "holds", CaseTree(tree.lower, tree.upper, tree.splits, tree.leaves, slopes), \
            None, (f"input splitting with crown and alpha-crown bounds "
                   f"({len(res.tree.refined)} alpha-crown leaves)")
    if res.status == "timeout":
        return "timeout", None, None, ""
    return "unknown", None, None, (f"branch and bound stopped after {res.boxes_bounded} boxes "
                                   "(a box no binary64 point can split further)")


def _alpha_applies(m: BatchedModel) -> bool:
    """Whether full alpha-CROWN can refine the model's boxes: an affine-ReLU chain the
    exact checker reads, not too many ReLUs, a graph that can be re-batched."""
    if m.batching_error is not None or sum(w for _, w in m.relu_nodes()) > ALPHA_MAX_RELUS:
        return False
    try:
        relu_chain(m.graph, m.params)
    except UnsupportedOperation:
        return False
    return True


def _alpha_refine(m: BatchedModel, C: Array, keep_slopes: bool
                  ) -> Callable[[Array, Array], tuple[Array, list[Any]]]:
    """Full alpha-CROWN over the boxes input splitting leaves open after CROWN (each leaf
    it refutes keeps its grid slopes for the certificate when `keep_slopes`); where it
    fails, no refutation is claimed and the boxes stay open."""
    def refine(lo: Array, hi: Array) -> tuple[Array, list[Any]]:
        try:
            got = m.alpha_bounds(lo, hi, C, keep_slopes=keep_slopes,
                                 iterations=ALPHA_SPLIT_ITERATIONS)
        except (UnsupportedOperation, ShapeError):
            got = None
        if got is None:
            return np.full((lo.shape[0], C.shape[0]), -np.inf), [None] * lo.shape[0]
        return got[0], list(got[1])
    return refine


def _alpha_root(pc: _Case, m: BatchedModel, problem: Problem, C: Array, phases: _Phases
                ) -> tuple[CaseTree | None, dict[Any, Array] | None]:
    """A one-leaf tree whose leaf carries the slopes, when full alpha-CROWN refutes the
    case over its root box (where CROWN did not); else None. Also the slopes (None when
    alpha-CROWN does not apply)."""
    t0 = time.monotonic()
    try:
        got = m.alpha_bound(pc.lo[None], pc.hi[None], C)
    except (UnsupportedOperation, ShapeError):
        return None, None
    finally:
        phases.add("bounds", t0)
    if got is None:
        return None, None
    low, slopes = got
    rows = refuted_rows(low, problem)[0]
    if rows is None:
        return None, slopes
    tree = _case_tree(pc, Tree(leaves={0: rows}))
    return CaseTree(tree.lower, tree.upper, tree.splits, tree.leaves,
                    ((0, m.chain_slopes(slopes, rows)),)), slopes


def open_rows(lower: Array, problem: Problem) -> tuple[int, ...]:
    """The rows of the conjunctions that the row lower bounds `lower` (R,) leave open
    (none of their rows above its right-hand side), in order."""
    return tuple(r for g in problem.groups
                 if not np.any(lower[list(g)] > problem.d_up[list(g)]) for r in g)


def _relu_split_case(pc: _Case, m: BatchedModel, confirmer: Confirmer, clock: _Clock,
                     phases: _Phases, batch: int, max_split: int,
                     root_slopes: dict[Any, Array] | None = None
                     ) -> tuple[str, CaseTree | ReluCaseTree | None, Confirmation | None, str]:
    """(status, tree, counterexample, note) by branch and bound over ReLU splits (the
    relaxed minimisers of open subdomains tried as counterexamples), for models that are
    chains of affine maps and ReLUs (the exact checker's reach). `root_slopes` (full
    alpha-CROWN's at the root) tighten the root's intervals, a floor for every
    subdomain's; the certificate carries their intermediate part."""
    assert pc.problem is not None
    too_many = (f"bounds leave an unsafe disjunct open; {m.n} inputs are too many to split "
                f"(at most {max_split})")
    width = sum(w for _, w in m.relu_nodes())
    beta_steps = BETA_ITERATIONS if width <= BETA_MAX_RELUS else 0
    t0 = time.monotonic()
    try:
        m.chain()  # an affine-ReLU chain (what the checker reads), made before the search
        # times its batches; the beta search reads it
    except UnsupportedOperation as e:
        return "unknown", None, None, (f"{too_many}, and ReLU splitting needs a chain of "
                                       f"affine maps and ReLUs ({e})")
    finally:
        phases.add("bounds", t0)
    relus = m.relu_nodes()
    if not relus or m.batching_error is not None:
        return "unknown", None, None, f"{too_many}, and the model has no ReLU to split"

    problem = pc.problem
    # alpha slopes tuned with the betas where the exact checker can re-derive them
    tune = width <= ALPHA_MAX_RELUS and beta_steps > 0
    steps = ALPHA_BETA_ITERATIONS if tune else beta_steps
    floor: tuple[Array, Array] | None = None
    inner: ChainSlopes | None = None
    if root_slopes is not None and any(isinstance(k, tuple) for k in root_slopes):
        t0 = time.monotonic()
        try:
            floor = m.split_floor(pc.lo, pc.hi, root_slopes)
            got = m.chain_slopes(root_slopes, (0,))  # its final part unused
            inner = ChainSlopes((None,) * len(relus), got.inner)
        except (UnsupportedOperation, ShapeError):
            floor = inner = None
        finally:
            phases.add("bounds", t0)
    root: list[tuple[Array, Array]] = []  # the root's row lower bounds and input coefficients

    def bound(signs: np.ndarray[Any, Any], known: Any, alphas: Array | None,
              live: Array | None
              ) -> tuple[Array, Array, Array, Array, Array, Array, Array | None]:
        t0 = time.monotonic()
        try:
            if not root:  # the root, bounded first, on every row
                got = m.bound_splits(pc.lo, pc.hi, pc.C, signs, steps, known, alphas=alphas,
                                     tune_alphas=tune, live=live, floor=floor)
                root.append((got[0][0], got[5][0]))
                return got
            # its subdomains inherit its refutations: they bound only the rows of the
            # conjunctions it leaves open, and keep its bounds (sound on every subdomain)
            # on the others
            rows = open_rows(root[0][0], problem)
            low, zl, zu, coeff, betas, inputs, slopes = m.bound_splits(
                pc.lo, pc.hi, pc.C, signs, steps, known, rows, alphas=alphas,
                tune_alphas=tune, live=live, floor=floor)
            skipped = np.ones(low.shape[1], dtype=bool)
            skipped[list(rows)] = False
            low[:, skipped] = root[0][0][skipped]
            inputs[:, skipped] = root[0][1][skipped]
            return low, zl, zu, coeff, betas, inputs, slopes
        finally:
            phases.add("bounds", t0)

    found: list[Confirmation] = []
    C = pc.C

    def evaluate(x: Array) -> Array:
        return np.asarray(m.evaluate(x) @ C.T, np.float64)

    t0 = time.monotonic()
    before = phases.seconds["bounds"]
    try:
        res = relu_branch_and_bound(
            pc.problem, bound, sum(w for _, w in relus),
            deadline=clock.deadline if clock.deadline is not None else np.inf,
            batch=min(batch, RELU_BATCH), evaluate=evaluate,
            confirm=_confirm_fn(pc, confirmer, found, clock), layers=[w for _, w in relus])
    except (UnsupportedOperation, ShapeError) as e:
        return "unknown", None, None, f"{too_many}; ReLU splitting found no bounds ({e})"
    finally:
        phases.seconds["branching"] += ((time.monotonic() - t0)
                                        - (phases.seconds["bounds"] - before))
    if res.status == "timeout":
        return "timeout", None, None, ""
    if res.status == "violated" and found:
        return "violated", None, found[-1], ""
    if res.status != "holds":
        return "unknown", None, None, (f"ReLU splitting stopped after "
                                       f"{res.subdomains_bounded} subdomains: {res.note}")
    layer_of = [(k, j) for k, (_, w) in enumerate(relus) for j in range(w)]
    tree = ReluCaseTree(
        tuple(Fraction(float(v)) for v in pc.lo), tuple(Fraction(float(v)) for v in pc.hi),
        tuple((s.node, *layer_of[s.neuron], s.active, s.inactive) for s in res.tree.splits),
        tuple(sorted(res.tree.refuted.items())),
        tuple((node, r, *layer_of[j], Fraction(beta))
              for node, by_row in sorted(res.tree.betas.items())
              for r, used in sorted(by_row.items()) for j, beta in used),
        tuple((node, _relu_node_slopes(by_row, res.tree.refuted[node], relus))
              for node, by_row in sorted(res.tree.slopes.items())), inner)
    return "holds", tree, None, (f"ReLU splitting with crown bounds "
                                 f"({res.subdomains_bounded} subdomains)")


def _relu_node_slopes(by_row: dict[int, Array], refuting: tuple[int, ...],
                      relus: tuple[tuple[int, int], ...]) -> ChainSlopes:
    """A relu-split node's slopes (by refuting row, (W,) multiples of 2^-SLOPE_BITS) in
    the exact checker's layout: final rows its named rows in order, per ReLU layer."""
    rows = [r for r in refuting if r >= 0]
    ints = np.rint(np.stack([by_row[r] for r in rows]).astype(np.float64)
                   * (1 << SLOPE_BITS)).astype(np.int64)
    cuts = np.cumsum([0, *(w for _, w in relus)])
    return ChainSlopes(tuple((ints[:, cuts[k]: cuts[k + 1]], SLOPE_BITS)
                             for k in range(len(relus))), (None,) * len(relus))


def _case_tree(pc: _Case, tree: Tree) -> CaseTree:
    return CaseTree(tuple(Fraction(float(v)) for v in pc.lo),
                    tuple(Fraction(float(v)) for v in pc.hi),
                    tuple((s.box, s.axis, Fraction(s.point), s.left, s.right)
                          for s in tree.splits),
                    tuple(sorted(tree.leaves.items())))
