"""torchlean.runtime.graph: the compiled runtime.

An op-tagged SSA graph IR (`ir`), built by tracing functions of Values with symbolic
`Var`s or from an eager tape (`tracing`); passes over it (`passes`: shape checking,
DCE, CSE, constant folding) and reverse-mode differentiation into one forward+backward
graph (`autodiff`); one run loop that graph analyses specialise per kind of node
(`interpreter.GraphInterpreter`) and the reference interpreter built on it
(`interpreter.interpret`), and a lowered executor that
compiles the graph once per signature into straight-line NumPy code with reusable
buffers (`lowering`, `numpy_kernels`, `executor`), or on CuPy with elementwise chains
fused into single kernels (`fusion`, `cuda_kernels`); text, DOT and versioned JSON views
(`display`, `json_text` and `serialize`, `encoding`).

Imports `torchlean.spec`, `torchlean.runtime.tape` and `torchlean.runtime.reverse` only.
"""

from __future__ import annotations

from .autodiff import NotDifferentiableError, grad_graph, grad_name
from .cuda_kernels import FusedKernel, KernelRunner, KernelSource, kernel_source
from .encoding import Literal
from .executor import CompiledGraph, cache_size, clear_cache, compile_graph
from .fusion import FusionGroup, FusionPlan, plan_fusion
from .interpreter import GraphInterpreter, interpret
from .ir import Graph, GraphError, Node
from .lowering import Program
from .passes import (
    check_shapes,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    simplify,
)
from .serialize import VERSION, from_json
from .tracing import GraphBuilder, TracingError, Var, as_graph, graph_from_tape, trace, trace_model

__all__ = [
    "Graph",
    "GraphBuilder",
    "GraphError",
    "GraphInterpreter",
    "Literal",
    "Node",
    "NotDifferentiableError",
    "CompiledGraph",
    "FusedKernel",
    "FusionGroup",
    "FusionPlan",
    "KernelRunner",
    "KernelSource",
    "Program",
    "TracingError",
    "VERSION",
    "Var",
    "cache_size",
    "check_shapes",
    "clear_cache",
    "compile_graph",
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "fold_constants",
    "from_json",
    "graph_from_tape",
    "as_graph",
    "trace_model",
    "grad_graph",
    "grad_name",
    "interpret",
    "kernel_source",
    "plan_fusion",
    "simplify",
    "trace",
]
