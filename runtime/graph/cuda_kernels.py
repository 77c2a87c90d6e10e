"""Fusion groups as CUDA C elementwise kernels (the text `cupy.ElementwiseKernel` takes).

Each op's C form reproduces the per-element IEEE semantics of the NumPy primitive in
`spec/fields/native.py`, in the field's own precision:

- every op's result is stored in a local of the field's type, so it is rounded exactly
  where NumPy rounds it (float32 stays float: literals carry the `f` suffix and the
  float functions `expf`, `sqrtf`, ... are called);
- kernels are compiled with `--fmad=false`: a multiply followed by an add is not
  contracted into one FMA (which rounds once instead of twice), so add, sub, mul, div,
  sqrt, neg, abs, max/min, comparisons and select give NumPy's bits;
- NumPy's `maximum`/`minimum` propagate NaN and, for equal operands (+0 and -0), return
  the second one; C's fmax does neither, so they are written out;
- constants are exact hexadecimal literals of the field's value (`0x1.8p+1f`).

Transcendentals (exp, log, log1p, expm1, tanh and the composites built on them) call
the device libm, which may differ from NumPy's by an ulp or so.

`FusedKernel` builds and runs the kernel through CuPy, imported only when a kernel is
first run, so this module imports on machines without CuPy.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...spec.fields import NativeFloatField
from ...spec.fields.base import SymbolicPi
from ...spec.ops.rules import RuleTable
from .fusion import FusionGroup, is_elementwise
from .ir import Graph, Node

__all__ = [
    "KernelSource",
    "FusedKernel",
    "KernelRunner",
    "C_OPS",
    "C_FORM_TABLE",
    "EXACT_OPS",
    "can_fuse",
    "kernel_source",
    "cupy_runner",
]

_C_TYPES = {"float32": "float", "float64": "double"}


@dataclass(frozen=True)
class _Ctx:
    """What an op's C form needs: the C type, the libm suffix, the node and a temp prefix."""

    field: NativeFloatField
    node: Node
    tmp: str

    @property
    def t(self) -> str:
        return _C_TYPES[self.field.dtype_name]

    def fn(self, name: str) -> str:
        return name + ("f" if self.field.dtype_name == "float32" else "")

    def lit(self, value: float) -> str:
        return c_literal(value, self.field.dtype_name)


# An op's C form: (operand expressions) -> (statements, result expression).
CForm = Callable[[_Ctx, list[str]], tuple[list[str], str]]


def c_literal(value: float, dtype_name: str) -> str:
    """`value`, rounded to the dtype, as an exact C hexadecimal literal (finite only)."""
    v = float(np.dtype(dtype_name).type(value))
    if not math.isfinite(v):
        raise ValueError(f"no C literal for the non-finite constant {v!r}")
    return f"({v.hex()}{'f' if dtype_name == 'float32' else ''})"


def _binop(sym: str) -> CForm:
    return lambda c, a: ([], f"{a[0]} {sym} {a[1]}")


def _call(name: str) -> CForm:
    return lambda c, a: ([], f"{c.fn(name)}({a[0]})")


def _max_expr(a: str, b: str) -> str:
    # NumPy maximum: a NaN operand wins; otherwise the larger, and b on a tie (+0 vs -0)
    return f"({a} > {b} || {a} != {a}) ? {a} : {b}"


def _min_expr(a: str, b: str) -> str:
    return f"({a} < {b} || {a} != {a}) ? {a} : {b}"


def _sigmoid_stmts(c: _Ctx, a: str) -> tuple[list[str], str]:
    # native: e = exp(-|a|); where(a >= 0, 1 / (1 + e), e / (1 + e))
    e, d = f"{c.tmp}e", f"{c.tmp}d"
    one = c.lit(1.0)
    return ([f"{c.t} {e} = {c.fn('exp')}(-{c.fn('fabs')}({a}));",
             f"{c.t} {d} = {one} + {e};"],
            f"({a} >= {c.lit(0.0)}) ? ({one} / {d}) : ({e} / {d})")


def _silu(c: _Ctx, a: list[str]) -> tuple[list[str], str]:
    # spec: mul(a, sigmoid(a)), two roundings
    stmts, s = _sigmoid_stmts(c, a[0])
    return [*stmts, f"{c.t} {c.tmp}s = {s};"], f"{a[0]} * {c.tmp}s"


def _softplus(c: _Ctx, a: list[str]) -> tuple[list[str], str]:
    # native: maximum(a, 0) + log1p(exp(-|a|))
    m, e = f"{c.tmp}m", f"{c.tmp}e"
    return ([f"{c.t} {m} = {_max_expr(a[0], c.lit(0.0))};",
             f"{c.t} {e} = {c.fn('exp')}(-{c.fn('fabs')}({a[0]}));",
             f"{c.t} {c.tmp}l = {c.fn('log1p')}({e});"],
            f"{m} + {c.tmp}l")


def _leaky_relu(c: _Ctx, a: list[str]) -> tuple[list[str], str]:
    # native: select(step(a), a, a * slope)
    slope = c.lit(_as_float(c.node.attr("negative_slope")))
    return [f"{c.t} {c.tmp}p = {a[0]} * {slope};"], f"({a[0]} > {c.lit(0.0)}) ? {a[0]} : {c.tmp}p"


EXACT_FORMS: dict[str, CForm] = {
    "add": _binop("+"), "sub": _binop("-"), "mul": _binop("*"), "div": _binop("/"),
    "neg": lambda c, a: ([], f"-{a[0]}"),
    "abs": _call("fabs"),
    "square": lambda c, a: ([], f"{a[0]} * {a[0]}"),
    "sqrt": _call("sqrt"),
    "maximum": lambda c, a: ([], _max_expr(a[0], a[1])),
    "minimum": lambda c, a: ([], _min_expr(a[0], a[1])),
    "relu": lambda c, a: ([], _max_expr(a[0], c.lit(0.0))),
    "step": lambda c, a: ([], f"({a[0]} > {c.lit(0.0)}) ? {c.lit(1.0)} : {c.lit(0.0)}"),
    "greater": lambda c, a: ([], f"({a[0]} > {a[1]}) ? {c.lit(1.0)} : {c.lit(0.0)}"),
    "where": lambda c, a: ([], f"({a[0]} != {c.lit(0.0)}) ? {a[1]} : {a[2]}"),
    "leaky_relu": _leaky_relu,
}
"""C forms of the ops whose every step is correctly rounded (IEEE basic operations,
comparisons, selection): bit-identical to NumPy."""

LIBM_FORMS: dict[str, CForm] = {
    "exp": _call("exp"), "log": _call("log"), "log1p": _call("log1p"),
    "expm1": _call("expm1"), "tanh": _call("tanh"),
    "sigmoid": lambda c, a: _sigmoid_stmts(c, a[0]),
    "silu": _silu, "softplus": _softplus,
}
"""C forms that call the C library's transcendental functions."""

C_FORMS: dict[str, CForm] = {**EXACT_FORMS, **LIBM_FORMS}
C_OPS = frozenset(C_FORMS)
EXACT_OPS = frozenset(EXACT_FORMS)
assert all(is_elementwise(t) for t in C_OPS), "C forms for ops that are not elementwise"

C_FORM_TABLE: RuleTable[CForm] = RuleTable("cuda C form", field="float32")
"""Each op's C form, or why it has none (then it runs op by op, unfused)."""
for _tag, _form in C_FORMS.items():
    C_FORM_TABLE.add(_tag, _form)
C_FORM_TABLE.refuse("no C form written (erf and the functions built on it, sin, cos)",
                    "erf", "gelu", "sin", "cos")
C_FORM_TABLE.refuse("not elementwise: fusion groups hold elementwise ops only",
                    "sum", "mean", "max", "argmax_mask", "softmax", "log_softmax", "matmul",
                    "transpose", "reshape", "broadcast_to", "concat", "slice", "unslice",
                    "one_hot")


def _as_float(value: Any) -> float:
    """A constant as `NativeFloatField.constant` reads it (before rounding to the dtype)."""
    return math.pi if isinstance(value, SymbolicPi) else float(value)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def can_fuse(node: Node) -> bool:
    """Whether `node` has a C form (leaky_relu only with a slope finite in float32)."""
    if node.op not in C_FORM_TABLE.rules:
        return False
    if node.op == "leaky_relu":
        slope = _as_float(node.attr("negative_slope"))
        return math.isfinite(slope) and abs(slope) <= _FLOAT32_MAX
    return True


def _inlined(node: Node, dtype_name: str) -> float | None:
    """The value of a const node written into the kernel text (those finite in the dtype),
    else None."""
    if node.op != "const":
        return None
    v = _as_float(node.attr("value"))
    limit = _FLOAT32_MAX if dtype_name == "float32" else math.inf
    return v if math.isfinite(v) and abs(v) <= limit else None  # not NaN, inf, overflow


@dataclass(frozen=True)
class KernelSource:
    """One fused kernel in `cupy.ElementwiseKernel`'s terms, and the node ids it reads
    (`inputs`, in parameter order) and writes (`outputs`, in parameter order)."""

    name: str
    dtype: str
    in_params: str
    out_params: str
    operation: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def text(self) -> str:
        """The whole kernel as one string (the key kernels are cached by)."""
        return f"{self.name}\n{self.in_params}\n{self.out_params}\n{self.operation}"


def kernel_source(graph: Graph, group: FusionGroup, field: NativeFloatField) -> KernelSource:
    """The kernel computing `group` of `graph` in `field` (every member must pass
    `can_fuse`). Finite 0-d constants are written into the text; every other outside
    value is an input parameter."""
    dtype = field.dtype_name
    if dtype not in _C_TYPES:
        raise ValueError(f"no C type for dtype {dtype!r}")
    ctype = _C_TYPES[dtype]
    names: dict[int, str] = {}
    params: list[int] = []
    for i in group.inputs:
        value = _inlined(graph.nodes[i], dtype)
        if value is None:
            names[i] = f"in{len(params)}"
            params.append(i)
        else:
            names[i] = c_literal(value, dtype)
    body: list[str] = []
    for m in group.nodes:
        node = graph.nodes[m]
        if not can_fuse(node):
            raise ValueError(f"node %{m} ({node.op}) has no C form")
        ctx = _Ctx(field, node, f"t{m}_")
        form = C_FORM_TABLE.get(node.op, f"node %{node.id}")
        stmts, expr = form(ctx, [names[a] for a in node.args])
        body.extend(stmts)
        body.append(f"{ctype} t{m} = {expr};")
        names[m] = f"t{m}"
    for k, o in enumerate(group.outputs):
        body.append(f"out{k} = t{o};")
    in_params = ", ".join(f"{dtype} in{k}" for k in range(len(params)))
    out_params = ", ".join(f"{dtype} out{k}" for k in range(len(group.outputs)))
    operation = "\n".join(body)
    digest = hashlib.sha256(f"{in_params}|{out_params}|{operation}".encode()).hexdigest()
    return KernelSource(f"tl_fused_{digest[:16]}", dtype, in_params, out_params, operation,
                        tuple(params), group.outputs)


KernelCall = Callable[[Sequence[Any], Sequence[Any]], None]
KernelRunner = Callable[[KernelSource], KernelCall]
"""Turns a kernel's source into a callable `(inputs, outputs) -> None` that writes the
outputs (preallocated arrays of the group's shape) from the inputs (broadcastable)."""

_BUILT: dict[str, Any] = {}
_BUILT_LOCK = threading.Lock()


class FusedKernel:
    """A fused kernel run through CuPy: built on first use (cached by source text, so
    equal kernels of different graphs share one build), then run into given outputs."""

    def __init__(self, source: KernelSource) -> None:
        self.source = source
        self._kernel: Any = None

    def _build(self) -> Any:
        import cupy  # lazily: this module must import without CuPy

        src = self.source
        with _BUILT_LOCK:
            kernel = _BUILT.get(src.text)
            if kernel is None:
                kernel = cupy.ElementwiseKernel(
                    src.in_params, src.out_params, src.operation, src.name,
                    options=("--fmad=false",), no_return=True,
                )
                _BUILT[src.text] = kernel
        self._kernel = kernel
        return kernel

    def __call__(self, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        """Compute the outputs (preallocated CuPy arrays) from the inputs."""
        kernel = self._kernel if self._kernel is not None else self._build()
        kernel(*inputs, *outputs)


def cupy_runner(source: KernelSource) -> KernelCall:
    """The default kernel runner: the kernel built and run by CuPy."""
    return FusedKernel(source)
