"""Running a graph many times: `CompiledGraph`, with lowered programs cached per signature.

A program is compiled per (graph fingerprint, field, leaf shapes, dtypes, memory layouts,
array namespace, mode) and kept in a bounded LRU cache shared by all CompiledGraphs, so
re-wrapping the same graph costs nothing. Native float fields on NumPy use the buffered
lowering, and on CuPy the fused lowering (elementwise chains as single kernels); every
other field or namespace uses the direct-call lowering (bit-identical to eager by
construction).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ...spec.fields import Field, NativeFloatField, get_field
from ...spec.fields.base import Array
from ...spec.tensor import Tensor
from .cuda_kernels import KernelRunner
from .interpreter import bind_leaves, interpret
from .ir import Graph
from .lowering import Mode, Program, lower

__all__ = ["CompiledGraph", "compile_graph", "clear_cache", "cache_size", "Backend"]

Backend = Literal["auto", "calls", "fused", "interpret"]
_CACHE_LIMIT = 128
_PROGRAMS: OrderedDict[tuple[Any, ...], Program] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every compiled program."""
    with _CACHE_LOCK:
        _PROGRAMS.clear()


def cache_size() -> int:
    """Number of compiled programs held."""
    return len(_PROGRAMS)


def _array_signature(a: Any) -> tuple[Any, ...]:
    if isinstance(a, (np.ndarray, np.generic)):
        return ("numpy", a.dtype.str, a.shape, a.strides)
    ns = a.__array_namespace__() if hasattr(a, "__array_namespace__") else type(a)
    return (getattr(ns, "__name__", repr(ns)), str(a.dtype), tuple(a.shape),
            str(getattr(a, "device", "")))


def _is_cupy(a: Any) -> bool:
    return type(a).__module__.partition(".")[0] == "cupy"


class CompiledGraph:
    """A graph ready to run many times; call it with the leaf values by name.

    `backend="auto"` lowers `float`/`float32` to NumPy buffers on NumPy arrays and to
    fused kernels on CuPy arrays, and to direct forward-rule calls otherwise; `"calls"`
    forces the latter; `"fused"` forces fused kernels (native float fields only) on any
    arrays its `kernel_runner` can run (CuPy's by default); `"interpret"` runs the
    reference interpreter (for comparison).
    """

    def __init__(self, graph: Graph, *, backend: Backend = "auto",
                 kernel_runner: KernelRunner | None = None) -> None:
        if backend not in ("auto", "calls", "fused", "interpret"):
            raise ValueError("backend must be 'auto', 'calls', 'fused' or 'interpret', "
                             f"got {backend!r}")
        self.graph = graph
        self.field: Field = get_field(graph.field)
        if backend == "fused" and not isinstance(self.field, NativeFloatField):
            raise ValueError(f"backend 'fused' needs field 'float' or 'float32', not "
                             f"{graph.field!r}")
        self.backend = backend
        self.kernel_runner = kernel_runner
        # programs built with an injected runner are cached apart from CuPy's
        self._key = (graph.fingerprint, graph.field, kernel_runner)
        self._names = tuple(name for name, _ in graph.outputs)
        self._recent: dict[tuple[Any, ...], Program] = {}

    def __call__(self, values: Mapping[str, Any]) -> dict[str, Tensor]:
        """The named outputs for the named leaf values (Tensors or raw data)."""
        if self.backend == "interpret":
            return interpret(self.graph, values)
        arrays = bind_leaves(self.graph, values, self.field)
        outs = self.run_arrays(arrays)
        return {name: Tensor(a, self.field) for name, a in zip(self._names, outs, strict=True)}

    def mode_for(self, arrays: Sequence[Array]) -> Mode:
        """The lowering these leaf arrays get."""
        if self.backend == "fused":
            return "fused"
        if self.backend == "auto" and isinstance(self.field, NativeFloatField):
            if all(isinstance(a, (np.ndarray, np.generic)) for a in arrays):
                return "buffered"
            if arrays and all(_is_cupy(a) for a in arrays):
                return "fused"
        return "calls"

    def program(self, arrays: Sequence[Array]) -> Program:
        """The compiled program for leaf arrays like these (compiling it if needed)."""
        mode = self.mode_for(arrays)
        key = (*self._key, mode, tuple(_array_signature(a) for a in arrays))
        with _CACHE_LOCK:
            prog = _PROGRAMS.get(key)
            if prog is not None:
                _PROGRAMS.move_to_end(key)
                return prog
        prog = lower(self.graph, self.field, arrays, mode, self.kernel_runner)
        with _CACHE_LOCK:
            _PROGRAMS[key] = prog
            while len(_PROGRAMS) > _CACHE_LIMIT:
                _PROGRAMS.popitem(last=False)
        return prog

    def run_arrays(self, arrays: Sequence[Array]) -> tuple[Any, ...]:
        """The outputs (in graph order) for leaf arrays in leaf order, unchecked: the fast
        path for callers that already hold arrays of the right field and shapes."""
        # A per-instance memo in front of the shared cache: building the full key costs
        # more than running a tiny graph.
        quick = tuple([(a.shape, a.strides, a.dtype) if type(a) is np.ndarray else id(a)
                       for a in arrays])
        prog = self._recent.get(quick)
        if prog is None:
            prog = self.program(arrays)
            if all(type(a) is np.ndarray for a in arrays):
                if len(self._recent) > 8:
                    self._recent.clear()
                self._recent[quick] = prog
        return prog.run(arrays)


def compile_graph(graph: Graph, *, backend: Backend = "auto",
                  kernel_runner: KernelRunner | None = None) -> CompiledGraph:
    """A `CompiledGraph` for `graph` (see CompiledGraph)."""
    return CompiledGraph(graph, backend=backend, kernel_runner=kernel_runner)
