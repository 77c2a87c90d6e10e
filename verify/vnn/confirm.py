"""Confirming a counterexample before it is reported (the trusted side of the search).

A float point proposed by the search is a counterexample of a case when

1. as an exact rational it lies in the case's input box (strict bounds kept strict);
2. the model's outputs there meet the case's unsafe condition in exact arithmetic: the
   graph evaluated over `exact` (its weights read as the exact rationals they hold: the
   real-number network, for rational ops such as affine maps and ReLU), or, where an op is
   not rational (tanh, sigmoid, ...), over `interval` (mpmath, 113 bits), where the
   condition must hold for every point of the output enclosure;
3. and, when the model came from an ONNX file and onnxruntime is installed, the outputs
   onnxruntime computes in float32 at the same point meet it too. Steps 1-2 decide; a
   float32 disagreement is reported, not hidden.

The point is tried as binary32 first (rounded into the box), so that onnxruntime runs on
exactly the point the exact check saw.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph, Literal, Node, interpret
from ...runtime.graph.encoding import decode_literal
from ...spec.errors import UnsupportedOperation
from .vnnlib import Case, LinearConstraint

__all__ = ["Confirmation", "Confirmer", "exact_graph", "literal_graph"]

Arr = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Confirmation:
    """A confirmed counterexample: exact inputs and outputs (the midpoints of the output
    enclosure when `method` is "interval"), how it was checked, and `float32`: True /
    False when onnxruntime agreed / disagreed, None when it was not run."""

    x: tuple[Fraction, ...]
    y: tuple[Fraction, ...]
    method: str
    float32: bool | None
    note: str = ""


def literal_graph(g: Graph, field: str) -> Graph:
    """`g` over `field` ("exact" or "interval"): every literal becomes the rational (for
    interval: the point interval) of exactly the number it holds."""
    if g.field == field:
        return g
    nodes: list[Node] = []
    for n in g.nodes:
        if n.op == "literal":
            lit = n.attr("data")
            assert isinstance(lit, Literal)
            flat = np.asarray(decode_literal(g.field_def, lit, n.shape, f"literal %{n.id}"),
                              dtype=np.float64).reshape(-1)
            if not np.all(np.isfinite(flat)):
                raise UnsupportedOperation("literal", field, f"node %{n.id} holds inf or NaN")
            items = []
            for v in flat:
                num, den = float(v).as_integer_ratio()
                if field == "exact":
                    items.append(f"{num}/{den}")
                else:
                    e = den.bit_length() - 1  # den is a power of two
                    items.append(f"[{num}p{-e},{num}p{-e}]")
            n = Node(n.id, "literal", (), (("data", Literal(tuple(items))),), n.shape)
        nodes.append(n)
    return Graph(field, tuple(nodes), g.outputs)


def exact_graph(g: Graph) -> Graph:
    """`g` over `exact` (see `literal_graph`)."""
    return literal_graph(g, "exact")


def _row_range(k: LinearConstraint, ys: Sequence[Any]) -> tuple[Fraction, Fraction]:
    """The range of `k.coefficients . y` over output intervals `ys` (mpmath ivs)."""
    lo = hi = Fraction(0)
    for c, v in zip(k.coefficients, ys, strict=True):
        if not c:
            continue
        a, b = _iv_ends(v)
        lo += c * a if c > 0 else c * b
        hi += c * b if c > 0 else c * a
    return lo, hi


def _iv_ends(v: Any) -> tuple[Fraction, Fraction]:
    from mpmath.libmp import to_rational

    a, b = v._mpi_
    return Fraction(*to_rational(a)), Fraction(*to_rational(b))


def _surely_unsafe(case: Case, ys: Sequence[Any]) -> bool:
    """Whether every point of the output enclosure meets some unsafe conjunction."""
    for conj in case.unsafe:
        ok = True
        for k in conj:
            _, hi = _row_range(k, ys)
            if not (hi < k.bound if k.strict else hi <= k.bound):
                ok = False
                break
        if ok:
            return True
    return False


def _exact_in_box(case: Case, x: Arr) -> tuple[Fraction, ...] | None:
    """The float point as Fractions clamped into the exact box; None if only the closure
    holds it."""
    out = [min(max(Fraction(float(v)), lo), hi)
           for v, lo, hi in zip(x, case.box.lower, case.box.upper, strict=True)]
    return tuple(out) if case.box.contains(out) else None


def _float32_in_box(case: Case, x: Arr) -> Arr | None:
    """x rounded to binary32, stepped inside the exact box where rounding left it."""
    x32 = np.asarray(x, np.float64).astype(np.float32)
    for i, (lo, hi) in enumerate(zip(case.box.lower, case.box.upper, strict=True)):
        for _ in range(2):
            q = Fraction(float(x32[i]))
            if q < lo or (q == lo and case.box.lower_strict[i]):
                x32[i] = np.nextafter(x32[i], np.float32(np.inf))
            elif q > hi or (q == hi and case.box.upper_strict[i]):
                x32[i] = np.nextafter(x32[i], np.float32(-np.inf))
    pts = [Fraction(float(v)) for v in x32]
    return x32 if case.box.contains(pts) else None


class Confirmer:
    """Checks proposed points of a model (graph, params; optional ONNX path)."""

    def __init__(self, graph: Graph, params: dict[str, Arr], onnx_path: str | None = None,
                 onnx_input_shape: Sequence[int] | None = None) -> None:
        self.graph = graph
        self.params = params
        self.shape = graph.inputs[0].shape
        self.input = graph.inputs[0].name
        self._exact: Graph | None = None
        self._interval: Graph | None = None
        self.method = "exact"
        self._session: Any = None
        self._ort_shape = tuple(onnx_input_shape or self.shape)
        self.float32_note = ""
        self.unusable = ""  # why no point can be confirmed, once that is known
        if onnx_path is not None:
            try:
                ort = importlib.import_module("onnxruntime")
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                self._session = ort.InferenceSession(onnx_path, opts,
                                                     providers=["CPUExecutionProvider"])
            except ModuleNotFoundError:
                self.float32_note = "onnxruntime is not installed: no float32 check"
            except Exception as e:  # noqa: BLE001  (onnxruntime's own error types)
                self.float32_note = f"onnxruntime cannot load the model: {e}"

    def outputs(self, x: Sequence[Fraction]) -> tuple[str, list[Any]]:
        """The model's outputs at the exact point x: ("exact", Fractions) or ("interval",
        mpmath intervals) when an op is not rational."""
        xs = np.empty(len(x), dtype=object)
        xs[:] = list(x)
        if self.method == "exact":
            try:
                if self._exact is None:
                    self._exact = exact_graph(self.graph)
                out = interpret(self._exact, {self.input: xs.reshape(self.shape),
                                              **self.params})
                y = np.asarray(next(iter(out.values())).data, dtype=object).reshape(-1)
                return "exact", [Fraction(v) for v in y]
            except UnsupportedOperation:
                self.method = "interval"
        if self._interval is None:
            self._interval = literal_graph(self.graph, "interval")
        out = interpret(self._interval, {self.input: xs.reshape(self.shape), **self.params},
                        field="interval")
        return "interval", list(np.asarray(next(iter(out.values())).data,
                                           dtype=object).reshape(-1))

    def _unsafe(self, case: Case, x: Sequence[Fraction]) -> tuple[bool, str, list[Any]]:
        method, ys = self.outputs(x)
        if method == "exact":
            return case.is_unsafe(ys), method, ys
        return _surely_unsafe(case, ys), method, ys

    def float32_outputs(self, x32: Arr) -> Arr | None:
        """onnxruntime's float32 outputs at the binary32 point x32 (None without it)."""
        if self._session is None:
            return None
        feed = {self._session.get_inputs()[0].name:
                np.asarray(x32, np.float32).reshape(self._ort_shape)}
        out = self._session.run(None, feed)[0]
        return np.asarray(out, np.float64).reshape(-1)

    def confirm(self, case: Case, x: Arr) -> Confirmation | None:
        """The confirmed counterexample near the float point x, or None (see module)."""
        x32 = _float32_in_box(case, x)
        cands: list[tuple[tuple[Fraction, ...], Arr | None]] = []
        if x32 is not None:
            cands.append((tuple(Fraction(float(v)) for v in x32), x32))
        q = _exact_in_box(case, x)
        if q is not None and (not cands or cands[0][0] != q):
            cands.append((q, None))
        if self.unusable:
            return None
        for xq, pt32 in cands:
            try:
                ok, method, ys = self._unsafe(case, xq)
            except UnsupportedOperation as e:  # neither exact nor interval can run it
                self.unusable = f"points cannot be checked exactly or by intervals: {e}"
                return None
            if not ok:
                continue
            yq = [y if isinstance(y, Fraction) else sum(_iv_ends(y), Fraction(0)) / 2
                  for y in ys]
            if self._session is None:
                return Confirmation(xq, tuple(yq), method, None, self.float32_note)
            if pt32 is None:
                return Confirmation(xq, tuple(yq), method, None, "the point is not a binary32 "
                                    "value inside the box: no float32 check")
            y32 = self.float32_outputs(pt32)
            assert y32 is not None
            agree = case.is_unsafe([Fraction(float(v)) for v in y32])
            note = "" if agree else (
                "float32 under onnxruntime DISAGREES: its outputs "
                f"{[float(v) for v in y32]} are not in the unsafe region; the exact "
                "verdict decides")
            return Confirmation(xq, tuple(yq), method, agree, note)
        return None
