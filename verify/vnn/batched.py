"""A model graph run over batches of points and boxes: the float evaluation and input
gradient the search uses (untrusted), and the sound bounds branch and bound uses.

The model graph declares a batch of 1 (as ONNX files do); `runtime.graph.batching.rebatch`
gives the same graph over N rows, compiled once per size. Sizes are powers of two (a batch
is cut into power-of-two chunks, the last small one padded with copies of its first row)
so a handful of graphs serve every batch.
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
from ..bounds.alpha_crown import Chain, relu_chain
from ..bounds.api import alpha_crown_with_slopes as _alpha_crown_with_slopes
from .exact_chain import ChainSlopes
from .relu_bab import SLOPE_BITS, on_slope_grid, optimize_alpha_betas, optimize_betas

__all__ = ["BatchedModel"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
_WEIGHTS = "torchlean:row_weights"
_SMALLEST_CHUNK = 32  # below this a graph's fixed cost outweighs padding's waste
# the exact certificate checker back-substitutes every unstable ReLU in rational
# arithmetic: beyond a few thousand ReLUs (a conv layer on an image) it is out of reach
ALPHA_MAX_RELUS = 4096


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

    def __getstate__(self) -> dict[str, Any]:
        """The model without its compiled programs (closures, which do not pickle): a
        work pool may copy a model from one worker to another after it was used."""
        state = dict(self.__dict__)
        state["_run"], state["_grad"] = {}, {}
        return state

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
        # whole graphs of max_batch rows, then the rest in powers of two down to
        # _SMALLEST_CHUNK, the last padded: padding k rows up to one power of two would
        # bound up to twice as many rows as asked
        out = []
        s = 0
        while s < k:
            left = k - s
            size = self.max_batch if left >= self.max_batch else (
                1 << (left.bit_length() - 1) if left >= _SMALLEST_CHUNK else _size(left))
            t = min(k, s + size)
            out.append((s, t, size))
            s = t
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
                # alpha-CROWN costs several CROWN passes a box: branch and bound asks for
                # it (`alpha_bounds`) only on the boxes CROWN leaves open
                res = _bounds.crown(g, self.params, a, b, C=C)
            except UnsupportedOperation:
                res = _bounds.ibp(g, self.params, a, b, C=C)
                method = "ibp"
            low[s:t] = res.lower[: t - s]
            up[s:t] = res.upper[: t - s]
        return low, up, method

    def alpha_bound(self, lo: Arr, hi: Arr, C: Arr) -> tuple[Arr, dict[Any, Arr]] | None:
        """Sound lower bounds (1, R) of `C . y` over one box by full alpha-CROWN, with the
        slopes the bound used (keyed as `bounds.crown`'s `relu_slopes`, each rounded down
        to a multiple of 2^-SLOPE_BITS, so exactly `slope_ints(...) * 2^-SLOPE_BITS`);
        None when alpha-CROWN does not apply (not an affine-ReLU chain, too large) or the
        net has over ALPHA_MAX_RELUS ReLUs (the exact checker could not re-derive it)."""
        got = self.alpha_bounds(np.asarray(lo, np.float64).reshape(1, self.n),
                                np.asarray(hi, np.float64).reshape(1, self.n), C)
        if got is None:
            return None
        return got[0], {k: v.astype(np.float64) for k, v in got[1][0].items()}

    def alpha_bounds(self, lo: Arr, hi: Arr, C: Arr, *, keep_slopes: bool = True,
                     iterations: int = 20) -> tuple[Arr, list[dict[Any, Arr]]] | None:
        """`alpha_bound` for each box [lo[i], hi[i]] (N, n), bounded in batches: lower
        bounds (N, R) and each box's slopes (float32 arrays with a batch axis of 1; empty dicts
        when not `keep_slopes`: a search that writes no certificate needs none), the
        slopes found by `iterations` optimiser steps. Each bound is the sound CROWN pass
        with exactly those grid slopes. None where `alpha_bound` is None."""
        if sum(int(np.prod(n.shape)) for n in self.graph.nodes if n.op == "relu") \
                > ALPHA_MAX_RELUS:
            return None
        lo = np.asarray(lo, np.float64).reshape(-1, self.n)
        hi = np.asarray(hi, np.float64).reshape(-1, self.n)
        low = np.empty((lo.shape[0], C.shape[0]))
        per_box: list[dict[Any, Arr]] = []
        grid = float(1 << SLOPE_BITS)
        for s, t, size in self._chunks(lo.shape[0]):
            g = self.graph_for(size)
            a = _pad(lo[s:t], size).reshape((size, *self.shape[1:]))
            b = _pad(hi[s:t], size).reshape((size, *self.shape[1:]))
            _, slopes = _alpha_crown_with_slopes(g, self.params, a, b, C=C,
                                                 iterations=iterations)
            if not slopes:
                return None
            on_grid = {k: np.floor(v * grid) / grid for k, v in slopes.items()}
            # the bound claimed is the one with exactly the slopes the certificate will
            # carry (not intersected with plain CROWN: its rows could need other slopes)
            tuned = _bounds.crown(g, self.params, a, b, C=C, relu_slopes=on_grid)
            low[s:t] = tuned.lower[: t - s]
            # float32 copies: exact (multiples of 2^-16 in [0, 1]), half the memory, and
            # no view keeps a whole chunk's slopes alive for one leaf
            per_box.extend({k: v[i: i + 1].astype(np.float32) for k, v in on_grid.items()}
                           if keep_slopes else {} for i in range(t - s))
        return low, per_box

    def chain_slopes(self, slopes: Mapping[Any, Arr], rows: tuple[int, ...]) -> ChainSlopes:
        """`alpha_bound`'s slopes in the layout of the exact chain checker
        (`exact_chain.ChainSlopes`), the final pass restricted to the spec rows `rows`."""
        g = self.graph_for(1)
        relus = [n.id for n in g.nodes if n.op == "relu"]

        def ints(a: Arr, n_rows: int) -> tuple[Any, int]:
            return np.rint(a.reshape(n_rows, -1) * (1 << SLOPE_BITS)).astype(np.int64), \
                SLOPE_BITS

        final = tuple(None if r not in slopes else ints(slopes[r][0, list(rows)], len(rows))
                      for r in relus)
        inner: list[tuple[tuple[Any, int], ...] | None] = []
        for k, r in enumerate(relus):
            z = g.nodes[r].args[0]
            per = [slopes.get((z, e)) for e in relus[:k]]
            inner.append(None if k == 0 or any(p is None for p in per) else tuple(
                ints(p[0], p.shape[1]) for p in per if p is not None))
        return ChainSlopes(final, tuple(inner))

    # -- ReLU branch and bound ----------------------------------------------------------
    def chain(self) -> Chain:
        """The float affine-ReLU chain of the graph (`alpha_crown.relu_chain`; raises
        UnsupportedOperation when the graph is not one), made once. It is probed on the
        re-batched graph, many basis vectors a run: one at a time, a conv layer's tens of
        thousands of probes took minutes."""
        if self._chain is None:
            size = 1
            if self.batching_error is None:
                try:
                    size = self.max_batch
                    self.graph_for(size)
                except (UnsupportedOperation, ShapeError) as e:
                    self.batching_error, size = str(e), 1
            self._chain = relu_chain(self.graph_for(size), self.params)
        chain: Chain = self._chain
        return chain

    def split_floor(self, lo: Arr, hi: Arr, slopes: Mapping[Any, Arr]) -> tuple[Arr, Arr]:
        """Sound intervals (W,) of every relu neuron's pre-activation over the box
        [lo, hi] (n,), computed as `bound_splits` computes a subdomain's with no split
        (so as the exact checker does), CROWN's passes using the intermediate slopes of
        `slopes` (`alpha_bound`'s, keys (z, relu); its final ones are not used): a floor
        for every subdomain's intervals (`bound_splits(floor=)`)."""
        g = self.graph_for(1)
        relus = self.relu_nodes()
        inner = {k: v for k, v in slopes.items() if isinstance(k, tuple)}
        zero = {node: np.zeros((1, *g.nodes[node].shape[1:]), np.int8) for node, _ in relus}
        _, pre = _bounds.crown_with_layers(
            g, self.params, np.asarray(lo, np.float64).reshape(self.shape),
            np.asarray(hi, np.float64).reshape(self.shape), C=np.zeros((1, self.m)),
            relu_splits=zero, relu_slopes=inner)
        zl = np.concatenate([np.asarray(pre[g.nodes[r].args[0]][0]).reshape(-1)
                             for r, _ in relus])
        zu = np.concatenate([np.asarray(pre[g.nodes[r].args[0]][1]).reshape(-1)
                             for r, _ in relus])
        return zl, zu

    def _per_node(self, flat: tuple[Arr, Arr], g: Graph) -> dict[int, tuple[Arr, Arr]]:
        """Flat intervals (W,) by relu node, each (1, *node shape without the batch)."""
        out, at = {}, 0
        for node, w in self.relu_nodes():
            shape = (1, *g.nodes[node].shape[1:])
            out[node] = (flat[0][at: at + w].reshape(shape), flat[1][at: at + w].reshape(shape))
            at += w
        return out

    def relu_nodes(self) -> tuple[tuple[int, int], ...]:
        """(node id, neurons) of every relu node, in graph order."""
        return tuple((n.id, int(np.prod(n.shape[1:]))) for n in self.graph.nodes
                     if n.op == "relu")

    def bound_splits(self, lo: Arr, hi: Arr, C: Arr, signs: np.ndarray[Any, Any],
                     beta_iterations: int = 0,
                     known: tuple[Arr, Arr, np.ndarray[Any, Any]] | None = None,
                     rows: tuple[int, ...] | None = None, *,
                     alphas: Arr | None = None, tune_alphas: bool = False,
                     live: np.ndarray[Any, Any] | None = None,
                     floor: tuple[Arr, Arr] | None = None
                     ) -> tuple[Arr, Arr, Arr, Arr, Arr, Arr, Arr | None]:
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
        in groups of one depth.

        `rows`: the rows of C bounded (None: all); the others get lower bound -inf (true
        of any row) and zero coefficients, betas and slopes. Every pass costs about in
        proportion to the rows, and branch and bound needs only those its root leaves open.

        With `tune_alphas` (and `beta_iterations` > 0) the final pass's lower slopes of
        the unstable neurons are optimised jointly with the betas
        (`relu_bab.optimize_alpha_betas`), from `alphas` (N, R, W) when given (a parent's)
        else CROWN's adaptive ones; the slopes used, on the 2^-16 grid of
        `relu_bab.on_slope_grid`, come back as a seventh entry (N, R, W) (None without
        `tune_alphas`). `live` (N, R) marks the rows worth tuning (default all); the
        others keep their starting slopes and no betas (their bounds stay sound, only
        looser). `floor` (zl, zu (W,), from `split_floor`) are intervals that hold on the
        whole box, met by every subdomain's (`bounds.crown_with_layers`' `relu_floor`)."""
        tune = tune_alphas and beta_iterations > 0
        if rows is not None:
            return self._bound_rows(lo, hi, C, signs, beta_iterations, known, rows,
                                    alphas, tune, live, floor)
        if known is not None and np.any(known[2] > 0):
            zl0, zu0, depth = known
            outs = [np.empty((signs.shape[0],) + shape) for shape in (
                (C.shape[0],), (signs.shape[1],), (signs.shape[1],),
                (C.shape[0], signs.shape[1]), (C.shape[0], signs.shape[1]),
                (C.shape[0], self.n), (C.shape[0], signs.shape[1]))]
            for d in np.unique(depth):
                idx = np.flatnonzero(depth == d)
                got = self._bound_splits(lo, hi, C, signs[idx], beta_iterations,
                                         zl0[idx], zu0[idx], int(d),
                                         None if alphas is None else alphas[idx], tune,
                                         None if live is None else live[idx], floor)
                for o, g in zip(outs, got, strict=True):
                    if g is not None:
                        o[idx] = g
            return (outs[0], outs[1], outs[2], outs[3], outs[4], outs[5],
                    outs[6] if tune else None)
        return self._bound_splits(lo, hi, C, signs, beta_iterations, None, None, 0, alphas,
                                  tune, live, floor)

    def _bound_rows(self, lo: Arr, hi: Arr, C: Arr, signs: np.ndarray[Any, Any],
                    beta_iterations: int, known: tuple[Arr, Arr, np.ndarray[Any, Any]] | None,
                    rows: tuple[int, ...], alphas: Arr | None, tune: bool,
                    live: np.ndarray[Any, Any] | None, floor: tuple[Arr, Arr] | None
                    ) -> tuple[Arr, Arr, Arr, Arr, Arr, Arr, Arr | None]:
        """`bound_splits` on the rows `rows` of C only; the other rows get what its `rows`
        argument says."""
        picked = sorted(set(rows))
        if any(not 0 <= r < C.shape[0] for r in picked):
            raise ValueError(f"rows {rows} outside the {C.shape[0]} rows of C")
        n_sub, width = signs.shape
        full = (np.full((n_sub, C.shape[0]), -np.inf),
                np.empty((n_sub, width)), np.empty((n_sub, width)),
                np.zeros((n_sub, C.shape[0], width)), np.zeros((n_sub, C.shape[0], width)),
                np.zeros((n_sub, C.shape[0], self.n)),
                np.zeros((n_sub, C.shape[0], width)) if tune else None)
        if not picked:  # the intervals alone
            got = self.bound_splits(lo, hi, C[:1], signs, 0, known, floor=floor)
            full[1][...], full[2][...] = got[1], got[2]
            return full
        got = self.bound_splits(
            lo, hi, C[picked], signs, beta_iterations, known,
            alphas=None if alphas is None else alphas[:, picked], tune_alphas=tune,
            live=None if live is None else live[:, picked], floor=floor)
        full[0][:, picked], full[1][...], full[2][...] = got[0], got[1], got[2]
        full[3][:, picked], full[4][:, picked], full[5][:, picked] = got[3], got[4], got[5]
        if full[6] is not None and got[6] is not None:
            full[6][:, picked] = got[6]
        return full

    def _bound_splits(self, lo: Arr, hi: Arr, C: Arr, signs: np.ndarray[Any, Any],
                      beta_iterations: int, zl0: Arr | None, zu0: Arr | None, depth: int,
                      alphas: Arr | None = None, tune: bool = False,
                      live: np.ndarray[Any, Any] | None = None,
                      floor: tuple[Arr, Arr] | None = None
                      ) -> tuple[Arr, Arr, Arr, Arr, Arr, Arr, Arr | None]:
        """`bound_splits` for rows that all reuse the first `depth` relu layers' intervals
        from zl0, zu0."""
        relus = self.relu_nodes()
        chain = self.chain() if beta_iterations > 0 else None
        betas = np.zeros((signs.shape[0], C.shape[0], signs.shape[1]))
        slopes = np.zeros((signs.shape[0], C.shape[0], signs.shape[1])) if tune else None
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

            pending: list[Arr] = []  # the betas alpha_fn found with the slopes

            def beta_fn(intervals: Mapping[int, tuple[Arr, Arr]], s: int = s, t: int = t,
                        size: int = size, part: Any = part, g: Graph = g,
                        pending: list[Arr] = pending) -> dict[int, Arr]:
                assert chain is not None
                if tune:  # found with the slopes (alpha_fn), before this is called
                    got = pending.pop()
                else:
                    il, iu = _flat_intervals(intervals, relus, size)
                    got = optimize_betas(chain, il, iu, part, C, lo[0], hi[0],
                                         iterations=beta_iterations)
                betas[s:t] = got[: t - s]
                out, at = {}, 0
                for node, w in relus:
                    both = np.concatenate([got[:, :, at: at + w], np.zeros_like(
                        got[:, :, at: at + w])], axis=1)
                    out[node] = both.reshape((size, 2 * C.shape[0], *g.nodes[node].shape[1:]))
                    at += w
                return out

            def alpha_fn(intervals: Mapping[int, tuple[Arr, Arr]], s: int = s, t: int = t,
                         size: int = size, part: Any = part, g: Graph = g,
                         pending: list[Arr] = pending) -> dict[int, Arr]:
                assert chain is not None and slopes is not None
                il, iu = _flat_intervals(intervals, relus, size)
                start = None if alphas is None else _pad(alphas[s:t], size)
                marked = None
                if live is not None:  # the padding rows tuned for nothing
                    marked = np.zeros((size, C.shape[0]), dtype=bool)
                    marked[: t - s] = live[s:t]
                found, got = optimize_alpha_betas(chain, il, iu, part, C, lo[0],
                                                  hi[0], alphas=start, live=marked,
                                                  iterations=beta_iterations)
                pending.append(got)
                grid = on_slope_grid(found, il, iu)
                slopes[s:t] = grid[: t - s]
                out, at = {}, 0
                for node, w in relus:
                    one = grid[:, :, at: at + w]
                    out[node] = np.concatenate([one, one], axis=1).reshape(
                        (size, 2 * C.shape[0], *g.nodes[node].shape[1:]))
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
                relu_betas=beta_fn if beta_iterations > 0 else None,
                relu_alphas=alpha_fn if tune else None, relu_intervals=given,
                relu_floor=None if floor is None else self._per_node(floor, g))
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
        return low, zl, zu, coeff, betas, inputs, slopes


def _flat_intervals(intervals: Mapping[int, tuple[Arr, Arr]],
                    relus: tuple[tuple[int, int], ...], size: int) -> tuple[Arr, Arr]:
    """The relu nodes' pre-activation intervals, flattened and concatenated: (size, W)."""
    il = np.concatenate([np.asarray(intervals[r][0]).reshape(size, -1) for r, _ in relus], 1)
    iu = np.concatenate([np.asarray(intervals[r][1]).reshape(size, -1) for r, _ in relus], 1)
    return il, iu
