"""The verdict engine: is a VNN-LIB property `holds`, `violated`, `unknown` or `timeout`?

    v = verify_instance("net.onnx", "prop.vnnlib", timeout=60)
    v = verify_instance((graph, params), prop)        # a graph of the library, a Property
    v.status, v.counterexample, v.seconds

What it does today, small on purpose (a later engine replaces steps 1 and 2 with PGD,
alpha-CROWN and branch and bound behind the same `verify_instance`):

1. Search (untrusted): the corners (all of them up to 8 inputs), centre and seeded random
   points of each case's box run through the graph in binary64. A point that the float
   outputs place in the unsafe region is re-checked exactly (trusted): its inputs as
   Fractions inside the exact box, the graph evaluated over `exact` (the weights read as
   the exact numbers they hold, so this is the real-number network; it needs rational ops,
   as piecewise-linear nets have), and `Property.is_counterexample` with strict comparisons
   kept strict. Only a point that passes is reported as `violated`.
2. Bounds: per case, `verify.bounds.crown` (IBP where CROWN lacks an op) over a binary64 box
   that contains the exact box gives sound lower bounds of every constraint row `c . Y`.
   A conjunction is empty when one of its rows has lower bound > d (>= d for a strict row);
   the rows are rounded to binary64 for CROWN and the rounding is charged exactly (|c - c64|
   times the output magnitudes). `holds` when every conjunction of every case is empty.
3. Otherwise `unknown`; `timeout` when the wall-clock limit passes between steps (a single
   bounds call or exact evaluation is not interrupted).

Verdicts are about the real-number function the graph denotes (weights read exactly, the
semantics `verify.bounds` and the `exact` field share), not a float32 execution of it.

Models come from `torchlean.verify.vnn.onnx_import.load_onnx`, imported only when an ONNX
path is given, from the library's own model files (`verify.model_file`, `.json`), or as a
`(graph, params)` pair: one input with a leading batch axis of 1, one output;
`X_i` / `Y_i` index the input / output flattened row-major.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from typing import Any

import numpy as np

from ...runtime.graph import Graph, Literal, Node, compile_graph, interpret
from ...runtime.graph.encoding import decode_literal
from ...spec.errors import DataFormatError, ShapeError, UnsupportedOperation
from .. import bounds as _bounds
from ..bounds import model_file as _model_file
from .vnnlib import Case, LinearConstraint, Property, read_vnnlib

__all__ = ["Verdict", "STATUSES", "verify_instance", "load_model", "model_sizes"]

STATUSES = ("holds", "violated", "unknown", "timeout")
Array = np.ndarray[Any, Any]
Counterexample = tuple[tuple[Fraction, ...], tuple[Fraction, ...]]
_CORNER_INPUTS = 8  # all 2^n corners up to this many inputs
_CONFIRM = 4  # exact re-checks per case: the float points deepest in the unsafe region


@dataclass(frozen=True)
class Verdict:
    """The answer for one instance.

    `status` is one of `STATUSES`; `counterexample` is the exact (inputs, outputs) of a
    `violated` verdict (None otherwise); `seconds` the wall-clock time; `detail` a short
    human-readable reason; `certificate` the path of a certificate file when one is written.
    """

    status: str
    counterexample: Counterexample | None
    seconds: float
    detail: str = ""
    certificate: str | None = None

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
def load_model(path: str | os.PathLike[str]) -> tuple[Graph, dict[str, Any]]:
    """The (graph, params) of the ONNX file at `path`, through the ONNX importer (raises
    UnsupportedOperation when it, or a package it needs, is not installed); a `.json` path
    is read as the library's own model file (`verify.model_file`)."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataFormatError(name, "cannot read the model file: no such file")
    if name.endswith(".json"):
        return _model_file.load_model(name), {}
    try:
        onnx_import = importlib.import_module("torchlean.verify.vnn.onnx_import")
    except ModuleNotFoundError as e:
        missing = e.name or "torchlean.verify.vnn.onnx_import"
        raise UnsupportedOperation("onnx", "float", f"ONNX import is unavailable: module "
                                   f"{missing!r} is not installed") from None
    graph, params = onnx_import.load_onnx(name)
    return graph, dict(params)


def model_sizes(graph: Graph) -> tuple[int, int]:
    """(inputs, outputs) of a graph the engine takes: one input of batch 1, one output."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOperation("graph", graph.field, f"the engine needs one input and one "
                                   f"output, got {len(graph.inputs)} and {len(graph.outputs)}")
    shape = graph.inputs[0].shape
    if not shape or shape[0] != 1:
        raise ShapeError(f"the model input must have a leading batch axis of 1, got {shape}")
    out = graph.nodes[graph.outputs[0][1]].shape
    return int(np.prod(shape)), int(np.prod(out))


def _host(v: Any) -> Array:
    data = v.numpy() if hasattr(v, "numpy") else v
    return np.asarray(data, dtype=np.float64)


def _fit(prop: Property, n: int, m: int) -> Property:
    """`prop` checked against a model with n inputs and m outputs, rows padded to m."""
    if prop.num_inputs != n or prop.num_outputs > m:
        if os.path.isfile(prop.path):  # re-read for the error with its line
            read_vnnlib(prop.path, num_inputs=n, num_outputs=m)
        raise DataFormatError(prop.path, f"the property has {prop.num_inputs} inputs and "
                              f"{prop.num_outputs} outputs, the model {n} and {m}")
    if prop.num_outputs == m:
        return prop
    pad = (Fraction(0),) * (m - prop.num_outputs)
    cases = tuple(Case(c.box, tuple(tuple(LinearConstraint(k.coefficients + pad, k.bound,
                                                           k.strict) for k in conj)
                                    for conj in c.unsafe), c.line) for c in prop.cases)
    return Property(prop.path, n, m, cases)


def _exact_graph(g: Graph) -> Graph:
    """The same graph over `exact`: float literals become the rationals they hold."""
    if g.field == "exact":
        return g
    nodes: list[Node] = []
    for n in g.nodes:
        if n.op == "literal":
            lit = n.attr("data")
            assert isinstance(lit, Literal)
            values = decode_literal(g.field_def, lit, n.shape, f"literal %{n.id}")
            flat = np.asarray(values, dtype=np.float64).reshape(-1)
            if not np.all(np.isfinite(flat)):
                raise UnsupportedOperation("literal", "exact", f"node %{n.id} holds inf or NaN")
            qs = (Fraction(float(v)) for v in flat)
            n = Node(n.id, "literal", (), (("data", Literal(tuple(
                f"{q.numerator}/{q.denominator}" for q in qs))),), n.shape)
        nodes.append(n)
    return Graph("exact", tuple(nodes), g.outputs)


class _Model:
    """A graph with its parameters, run in binary64 (search) and over Fractions (checks)."""

    def __init__(self, graph: Graph, params: Mapping[str, Any]) -> None:
        self.graph = graph
        self.params = {k: _host(v) for k, v in params.items()}
        self.n, self.m = model_sizes(graph)
        self.shape = graph.inputs[0].shape
        self.input = graph.inputs[0].name
        self._fast = compile_graph(graph)
        self._exact: Graph | None = None

    def run_float(self, x: Array) -> Array:
        out = self._fast({self.input: x.reshape(self.shape), **self.params})
        return np.array(next(iter(out.values())).numpy(), dtype=np.float64).reshape(-1)

    def run_exact(self, x: Sequence[Fraction]) -> tuple[Fraction, ...]:
        if self._exact is None:
            self._exact = _exact_graph(self.graph)
        xs = np.empty(len(x), dtype=object)
        xs[:] = list(x)
        out = interpret(self._exact, {self.input: xs.reshape(self.shape), **self.params})
        y = np.asarray(next(iter(out.values())).data, dtype=object).reshape(-1)
        return tuple(Fraction(v) for v in y)


# -- 1. search ----------------------------------------------------------------------------
def _float_box(case: Case) -> tuple[Array, Array]:
    """The binary64 box inside the exact closed box nearest to it (lo rounded up, hi down;
    where no float lies inside, the nearest float)."""
    lo = np.array([float(q) for q in case.box.lower])
    hi = np.array([float(q) for q in case.box.upper])
    exact_lo = [Fraction(v) < q for v, q in zip(lo, case.box.lower, strict=True)]
    exact_hi = [Fraction(v) > q for v, q in zip(hi, case.box.upper, strict=True)]
    lo = np.where(exact_lo, np.nextafter(lo, np.inf), lo)
    hi = np.where(exact_hi, np.nextafter(hi, -np.inf), hi)
    return np.minimum(lo, hi), np.maximum(lo, hi)


def _points(case: Case, samples: int, rng: np.random.Generator) -> Array:
    lo, hi = _float_box(case)
    n = lo.size
    pts = [(lo + hi) / 2, lo, hi]
    if 0 < n <= _CORNER_INPUTS:
        pts += [np.where(np.array(bits, dtype=bool), hi, lo)
                for bits in product((0, 1), repeat=n)]
    pts += list(lo + rng.random((samples, n)) * (hi - lo))
    return np.clip(np.array(pts, dtype=np.float64).reshape(len(pts), n), lo, hi)


def _depth(case: Case, rows: Array, bounds: Array, y: Array) -> float:
    """How deep float outputs y lie in the unsafe region (>= 0: inside, by the floats)."""
    slack = bounds - rows @ y
    best = -np.inf
    start = 0
    for conj in case.unsafe:
        k = len(conj)
        best = max(best, float(np.min(slack[start:start + k])) if k else np.inf)
        start += k
    return best


def _exact_point(case: Case, x: Array) -> tuple[Fraction, ...] | None:
    """The float point as Fractions, clamped into the exact box; None if only the closure
    holds it (a strict bound met)."""
    out = []
    for v, lo, hi in zip(x, case.box.lower, case.box.upper, strict=True):
        out.append(min(max(Fraction(float(v)), lo), hi))
    return tuple(out) if case.box.contains(out) else None


def _search(model: _Model, prop: Property, clock: _Clock, samples: int,
            seed: int) -> tuple[Counterexample | None, str]:
    rng = np.random.default_rng(seed)
    per_case = max(16, samples // max(1, len(prop.cases)))
    notes = ""
    for case in prop.cases:
        rows = np.array([[float(c) for c in k.coefficients] for conj in case.unsafe
                         for k in conj], dtype=np.float64).reshape(-1, model.m)
        bnds = np.array([float(k.bound) for conj in case.unsafe for k in conj])
        scored = []
        for x in _points(case, per_case, rng):
            clock.check()
            y = model.run_float(x)
            if np.all(np.isfinite(y)):
                scored.append((_depth(case, rows, bnds, y), x))
        scored.sort(key=lambda t: -t[0])
        for depth, x in scored[:_CONFIRM]:
            if depth < 0:
                break
            clock.check()
            xq = _exact_point(case, x)
            if xq is None:
                continue
            try:
                yq = model.run_exact(xq)
            except UnsupportedOperation as e:
                return None, f"a float point looks unsafe but cannot be checked exactly ({e})"
            if case.is_unsafe(yq):
                return (xq, yq), "counterexample confirmed exactly"
            notes = "float points looked unsafe; the exact check rejected them"
    return None, notes


# -- 2. bounds ----------------------------------------------------------------------------
def _outward_box(case: Case, shape: tuple[int, ...]) -> tuple[Array, Array]:
    """A binary64 box containing the exact closed box."""
    lo = np.array([float(q) for q in case.box.lower])
    hi = np.array([float(q) for q in case.box.upper])
    lo = np.where([Fraction(v) > q for v, q in zip(lo, case.box.lower, strict=True)],
                  np.nextafter(lo, -np.inf), lo)
    hi = np.where([Fraction(v) < q for v, q in zip(hi, case.box.upper, strict=True)],
                  np.nextafter(hi, np.inf), hi)
    return lo.reshape(shape), hi.reshape(shape)


def _case_proven(model: _Model, case: Case) -> tuple[bool, str]:
    """Whether bounds show every conjunction of the case's unsafe region empty."""
    rows = sorted({k.coefficients for conj in case.unsafe for k in conj})
    if not rows or any(not conj for conj in case.unsafe):
        return False, "an unsafe disjunct has no output constraint"
    floats = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    C = np.vstack([floats, np.eye(model.m)])  # the identity rows bound |Y_j|
    lo, hi = _outward_box(case, model.shape)
    b, method, reasons = None, "", []
    for method, run in (("crown", _bounds.crown), ("ibp", _bounds.ibp)):
        try:
            b = run(model.graph, model.params, lo, hi, C=C)
            break
        except (UnsupportedOperation, ShapeError) as e:  # an op the method cannot bound
            reasons.append(f"{method}: {e}")
    if b is None:
        return False, f"no bounds for this model ({'; '.join(reasons)})"
    low = b.lower.reshape(-1)
    ylo, yhi = low[len(rows):], b.upper.reshape(-1)[len(rows):]
    finite = bool(np.all(np.isfinite(ylo)) and np.all(np.isfinite(yhi)))
    mag = [Fraction(float(max(abs(a), abs(z)))) for a, z in zip(ylo, yhi, strict=True)] \
        if finite else []
    lower: dict[tuple[Fraction, ...], Fraction] = {}
    for i, r in enumerate(rows):
        if not np.isfinite(low[i]):
            continue
        # c . y = c64 . y + (c - c64) . y >= lower(c64 . y) - sum |c - c64| max|y|
        residual = [abs(c - Fraction(float(f))) for c, f in zip(r, floats[i], strict=True)]
        if any(residual) and not finite:
            continue
        err = sum((d * mj for d, mj in zip(residual, mag, strict=False) if d), Fraction(0))
        lower[r] = Fraction(float(low[i])) - err
    for conj in case.unsafe:
        if not any(k.coefficients in lower and (lower[k.coefficients] >= k.bound if k.strict
                                                else lower[k.coefficients] > k.bound)
                   for k in conj):
            return False, f"{method} bounds leave an unsafe disjunct open"
    return True, f"{method} bounds"


# -- the engine ---------------------------------------------------------------------------
_FLOAT_RANGE = Fraction(2) ** 1000  # well inside binary64, so nothing rounds to inf


def _in_float_range(prop: Property) -> bool:
    """Whether every number of the property converts to a finite binary64."""
    for case in prop.cases:
        nums = [*case.box.lower, *case.box.upper]
        nums += [q for conj in case.unsafe for k in conj for q in (*k.coefficients, k.bound)]
        if any(abs(q) > _FLOAT_RANGE for q in nums):
            return False
    return True


def verify_instance(model: str | os.PathLike[str] | tuple[Graph, Mapping[str, Any]],
                    prop: str | os.PathLike[str] | Property, timeout: float | None = None,
                    *, samples: int = 256, seed: int = 0) -> Verdict:
    """The verdict for `model` (an ONNX path, or a (graph, params) pair) against `prop` (a
    VNN-LIB path or a parsed Property), within `timeout` wall-clock seconds (None: none).

    `holds`: the unsafe region is empty (proven by sound bounds); `violated`: a counterexample
    checked exactly; `unknown`: neither; `timeout`: the limit passed first. Bad files raise
    DataFormatError; an unavailable ONNX importer or an unusable graph UnsupportedOperation or
    ShapeError (module docstring)."""
    clock = _Clock(timeout)
    parsed = prop if isinstance(prop, Property) else read_vnnlib(prop)
    if isinstance(model, tuple):
        graph, params = model
    else:
        graph, params = load_model(model)
    m = _Model(graph, params)
    parsed = _fit(parsed, m.n, m.m)
    if not parsed.cases:
        return Verdict("holds", None, clock.seconds, "the asserts cannot all hold: no cases")
    if not _in_float_range(parsed):
        return Verdict("unknown", None, clock.seconds, "the property holds numbers beyond "
                       "2^1000, out of the search's and the bounds' binary64 range")
    try:
        cex, note = _search(m, parsed, clock, samples, seed)
        if cex is not None:
            return Verdict("violated", cex, clock.seconds, note)
        reasons = []
        for i, case in enumerate(parsed.cases):
            clock.check()
            ok, why = _case_proven(m, case)
            if not ok:
                detail = f"case {i + 1} of {len(parsed.cases)}: {why}"
                return Verdict("unknown", None, clock.seconds,
                               f"{detail}; {note}" if note else detail)
            reasons.append(why)
        return Verdict("holds", None, clock.seconds,
                       f"every unsafe disjunct of {len(parsed.cases)} case(s) is empty by "
                       f"{', '.join(sorted(set(reasons)))}")
    except _Timeout:
        return Verdict("timeout", None, clock.seconds, f"no verdict within {timeout} s")
