"""A model graph run over batches of points and boxes: the float evaluation and input
gradient the search uses (untrusted), and the sound bounds branch and bound uses.

The model graph declares a batch of 1 (as ONNX files do); `runtime.graph.batching.rebatch`
gives the same graph over N rows, compiled once per size. Sizes are rounded up to a power
of two (the last rows padded with copies of the first) so a handful of graphs serve every
batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...runtime.graph import Graph, compile_graph
from ...runtime.graph.autodiff import grad_graph, grad_name
from ...runtime.graph.batching import rebatch
from ...runtime.graph.tracing import GraphBuilder, Var
from ...spec.errors import ShapeError, UnsupportedOperation
from .. import bounds as _bounds
from ..bounds.alpha_crown import relu_chain

__all__ = ["BatchedModel"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
_WEIGHTS = "torchlean:row_weights"


def _size(k: int) -> int:
    return 1 << max(0, (k - 1).bit_length())


def _pad(a: Arr, size: int) -> Arr:
    if a.shape[0] == size:
        return a
    return np.concatenate([a, np.repeat(a[:1], size - a.shape[0], axis=0)])


def _host(v: Any) -> Arr:
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64)


class BatchedModel:
    """`graph` (one input with a leading axis of 1, one output) with its parameters."""

    def __init__(self, graph: Graph, params: Mapping[str, Any], max_batch: int = 256) -> None:
        self.graph = graph
        self.params = {k: _host(v) for k, v in params.items()}
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise UnsupportedOperation("graph", graph.field, "the engine needs one input and "
                                       f"one output, got {len(graph.inputs)} and "
                                       f"{len(graph.outputs)}")
        self.shape = graph.inputs[0].shape
        if not self.shape or self.shape[0] != 1:
            raise ShapeError(f"the model input must lead with a batch axis of 1, got "
                             f"{self.shape}")
        self.input = graph.inputs[0].name
        self.n = int(np.prod(self.shape))
        self.m = int(np.prod(graph.nodes[graph.outputs[0][1]].shape))
        self.max_batch = _size(max_batch)
        self._graphs: dict[int, Graph] = {}
        self._run: dict[int, Any] = {}
        self._grad: dict[int, Any] = {}
        self.batching_error: str | None = None
        self._chain: Any = None  # the float affine-ReLU chain, for beta multipliers

    # -- graphs per batch size --------------------------------------------------------
    def graph_for(self, size: int) -> Graph:
        """The model graph over `size` rows (the graph itself for 1)."""
        if size not in self._graphs:
            self._graphs[size] = self.graph if size == 1 else rebatch(self.graph, size)
        return self._graphs[size]

    def _chunks(self, k: int) -> list[tuple[int, int, int]]:
        """(start, stop, graph size) covering k rows in chunks of at most max_batch;
        graph size 1 row at a time when the graph cannot be re-batched."""
        if self.batching_error is None and k > 1:
            try:
                self.graph_for(min(_size(k), self.max_batch))
            except (UnsupportedOperation, ShapeError) as e:
                self.batching_error = str(e)
        if self.batching_error is not None:
            return [(i, i + 1, 1) for i in range(k)]
        out = []
        for s in range(0, k, self.max_batch):
            t = min(k, s + self.max_batch)
            out.append((s, t, min(_size(t - s), self.max_batch)))
        return out

    # -- float evaluation and gradients (untrusted) -----------------------------------
    def _search_graph(self, size: int) -> Graph:
        """The graph over `size` rows in binary64 when it holds no literals (closer to the
        real-number function the verdicts are about, and faster than emulated float32);
        else in its own field."""
        g = self.graph_for(size)
        if g.field == "float" or any(n.op == "literal" for n in g.nodes):
            return g
        return Graph("float", g.nodes, g.outputs)

    def evaluate(self, x: Arr) -> Arr:
        """The outputs (N, m) at points x (N, n), in binary64 (see `_search_graph`)."""
        x = np.asarray(x, np.float64).reshape(-1, self.n)
        out = np.empty((x.shape[0], self.m))
        for s, t, size in self._chunks(x.shape[0]):
            if size not in self._run:
                self._run[size] = compile_graph(self._search_graph(size))
            rows = _pad(x[s:t], size).reshape((size, *self.shape[1:]))
            res = self._run[size]({self.input: rows, **self.params})
            out[s:t] = _host(next(iter(res.values()))).reshape(size, -1)[: t - s]
        return out

    def _grad_fn(self, size: int) -> Any:
        """The compiled graph of d/dx sum(W * y) for weights W (size, m)."""
        if size not in self._grad:
            g = self._search_graph(size)
            b = GraphBuilder(g.field_def)
            vs: list[Var] = []
            for node in g.nodes:
                vs.append(b.copy(node, [vs[a] for a in node.args]))
            w = b.leaf("input", _WEIGHTS, (size, self.m))
            y = vs[g.outputs[0][1]].reshape(size, self.m)
            loss = (y * w).sum()
            lg = b.finish([("loss", loss)])
            self._grad[size] = compile_graph(grad_graph(lg, [self.input]))
        return self._grad[size]

    def gradient(self, x: Arr, weights: Arr) -> Arr:
        """The gradient at each point x (N, n) of `weights[i] . y(x[i])` (N, m)."""
        x = np.asarray(x, np.float64).reshape(-1, self.n)
        out = np.empty_like(x)
        for s, t, size in self._chunks(x.shape[0]):
            rows = _pad(x[s:t], size).reshape((size, *self.shape[1:]))
            w = _pad(np.asarray(weights[s:t], np.float64), size)
            res = self._grad_fn(size)({self.input: rows, _WEIGHTS: w, **self.params})
            out[s:t] = _host(res[grad_name(self.input)]).reshape(size, -1)[: t - s]
        return out

    # -- sound bounds ------------------------------------------------------------------
    def ibp(self, lo: Arr, hi: Arr, C: Arr) -> Arr:
        """Sound lower bounds of `C . y` over each box by interval arithmetic (cheap)."""
        lo = np.asarray(lo, np.float64).reshape(-1, self.n)
        hi = np.asarray(hi, np.float64).reshape(-1, self.n)
        low = np.empty((lo.shape[0], C.shape[0]))
        for s, t, size in self._chunks(lo.shape[0]):
            g = self.graph_for(size)
            a = _pad(lo[s:t], size).reshape((size, *self.shape[1:]))
            b = _pad(hi[s:t], size).reshape((size, *self.shape[1:]))
            low[s:t] = _bounds.ibp(g, self.params, a, b, C=C).lower[: t - s]
        return low

    def bound(self, lo: Arr, hi: Arr, C: Arr) -> tuple[Arr, Arr, str]:
        """Sound (outward rounded) lower and upper bounds of `C . y` (N, R) over each box
        [lo[i], hi[i]] (N, n): CROWN, or IBP where CROWN lacks an op; and the method."""
        lo = np.asarray(lo, np.float64).reshape(-1, self.n)
        hi = np.asarray(hi, np.float64).reshape(-1, self.n)
        k = lo.shape[0]
        low, up = np.empty((k, C.shape[0])), np.empty((k, C.shape[0]))
        method = "crown"
        for s, t, size in self._chunks(k):
            g = self.graph_for(size)
            a = _pad(lo[s:t], size).reshape((size, *self.shape[1:]))
            b = _pad(hi[s:t], size).reshape((size, *self.shape[1:]))
            try:
                # ALPHA-CROWN HOOK: once the sound crown takes slopes (bounds branch), pass
                # relu_slopes=verify.bounds.alpha_crown.optimize_slopes(...) here; any
                # slopes in [0, 1] keep it sound. Until then: plain CROWN.
                res = _bounds.crown(g, self.params, a, b, C=C)
            except UnsupportedOperation:
                res = _bounds.ibp(g, self.params, a, b, C=C)
                method = "ibp"
            low[s:t] = res.lower[: t - s]
            up[s:t] = res.upper[: t - s]
        return low, up, method

    # -- ReLU branch and bound ----------------------------------------------------------
    def relu_nodes(self) -> tuple[tuple[int, int], ...]:
        """(node id, neurons) of every relu node, in graph order."""
        return tuple((n.id, int(np.prod(n.shape[1:]))) for n in self.graph.nodes
                     if n.op == "relu")

    def bound_splits(self, lo: Arr, hi: Arr, C: Arr, signs: np.ndarray[Any, Any],
                     beta_iterations: int = 0,
                     known: tuple[Arr, Arr, np.ndarray[Any, Any]] | None = None
                     ) -> tuple[Arr, Arr, Arr, Arr, Arr, Arr]:
        """Sound CROWN lower bounds of `C . y` (N, R) over the subdomains of the box
        [lo, hi] (n,) given by `signs` (N, W): +1 / -1 / 0 per relu neuron, the relu nodes
        of `relu_nodes()` concatenated (see `bounds.crown_with_layers`, `relu_splits`);
        +inf for an empty subdomain. Also (untrusted, for branching) the pre-activation
        intervals (N, W) and the relu outputs' coefficients in the lower-bound rows
        (N, R, W); the beta multipliers (N, R, W) the bounds used: found by
        `beta_iterations` steps of `relu_bab.optimize_betas` (zero when 0); and the
        input's coefficients in the lower-bound rows (N, R, n).

        `known` = (zl, zu (N, W), depth (N,)): for row i, the intervals of the first
        depth[i] relu layers are known to hold on its subdomain (its parent's, in branch
        and bound) and are used instead of computed (`relu_intervals`); rows are bounded
        in groups of one depth."""
        if known is not None and np.any(known[2] > 0):
            zl0, zu0, depth = known
            outs = [np.empty((signs.shape[0],) + shape) for shape in (
                (C.shape[0],), (signs.shape[1],), (signs.shape[1],),
                (C.shape[0], signs.shape[1]), (C.shape[0], signs.shape[1]),
                (C.shape[0], self.n))]
            for d in np.unique(depth):
                idx = np.flatnonzero(depth == d)
                got = self._bound_splits(lo, hi, C, signs[idx], beta_iterations,
                                         zl0[idx], zu0[idx], int(d))
                for o, g in zip(outs, got, strict=True):
                    o[idx] = g
            return outs[0], outs[1], outs[2], outs[3], outs[4], outs[5]
        return self._bound_splits(lo, hi, C, signs, beta_iterations, None, None, 0)

    def _bound_splits(self, lo: Arr, hi: Arr, C: Arr, signs: np.ndarray[Any, Any],
                      beta_iterations: int, zl0: Arr | None, zu0: Arr | None, depth: int
                      ) -> tuple[Arr, Arr, Arr, Arr, Arr, Arr]:
        """`bound_splits` for rows that all reuse the first `depth` relu layers' intervals
        from zl0, zu0."""
        from .relu_bab import optimize_betas

        relus = self.relu_nodes()
        if beta_iterations > 0 and self._chain is None:
            self._chain = relu_chain(self.graph, self.params)
        betas = np.zeros((signs.shape[0], C.shape[0], signs.shape[1]))
        inputs = np.zeros((signs.shape[0], C.shape[0], self.n))
        lo = np.asarray(lo, np.float64).reshape(1, self.n)
        hi = np.asarray(hi, np.float64).reshape(1, self.n)
        k, width = signs.shape[0], signs.shape[1]
        low = np.empty((k, C.shape[0]))
        zl, zu = np.empty((k, width)), np.empty((k, width))
        coeff = np.zeros((k, C.shape[0], width))
        for s, t, size in self._chunks(k):
            g = self.graph_for(size)
            a = np.repeat(lo, size, axis=0).reshape((size, *self.shape[1:]))
            b = np.repeat(hi, size, axis=0).reshape((size, *self.shape[1:]))
            part = _pad(signs[s:t], size)
            splits, at = {}, 0
            for node, w in relus:
                splits[node] = part[:, at: at + w].reshape((size, *g.nodes[node].shape[1:]))
                at += w
            coeffs: dict[int, Arr] = {}

            def beta_fn(intervals: Mapping[int, tuple[Arr, Arr]], s: int = s, t: int = t,
                        size: int = size, part: Any = part, g: Graph = g) -> dict[int, Arr]:
                assert self._chain is not None
                il = np.concatenate([intervals[r][0].reshape(size, -1) for r, _ in relus], 1)
                iu = np.concatenate([intervals[r][1].reshape(size, -1) for r, _ in relus], 1)
                got = optimize_betas(self._chain, il, iu, part, C, lo[0], hi[0],
                                     iterations=beta_iterations)
                betas[s:t] = got[: t - s]
                out, at = {}, 0
                for node, w in relus:
                    both = np.concatenate([got[:, :, at: at + w], np.zeros_like(
                        got[:, :, at: at + w])], axis=1)
                    out[node] = both.reshape((size, 2 * C.shape[0], *g.nodes[node].shape[1:]))
                    at += w
                return out

            given: dict[int, tuple[Arr, Arr]] | None = None
            if depth > 0 and zl0 is not None and zu0 is not None:
                given, at = {}, 0
                for node, w in relus[:depth]:
                    shape = (size, *g.nodes[node].shape[1:])
                    given[node] = (_pad(zl0[s:t, at: at + w], size).reshape(shape),
                                   _pad(zu0[s:t, at: at + w], size).reshape(shape))
                    at += w
            res, pre = _bounds.crown_with_layers(
                g, self.params, a, b, C=C, relu_splits=splits, relu_coefficients=coeffs,
                relu_betas=beta_fn if beta_iterations > 0 else None, relu_intervals=given)
            low[s:t] = res.lower[: t - s]
            if g.inputs[0].id in coeffs:
                inputs[s:t] = coeffs[g.inputs[0].id].reshape(
                    size, C.shape[0], -1)[: t - s]
            at = 0
            for node, w in relus:
                z = g.nodes[node].args[0]
                zl[s:t, at: at + w] = np.asarray(pre[z][0]).reshape(size, -1)[: t - s]
                zu[s:t, at: at + w] = np.asarray(pre[z][1]).reshape(size, -1)[: t - s]
                if node in coeffs:
                    coeff[s:t, :, at: at + w] = coeffs[node].reshape(
                        size, C.shape[0], -1)[: t - s]
                at += w
        return low, zl, zu, coeff, betas, inputs
