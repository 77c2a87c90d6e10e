"""Elementwise fusion for the CuPy lowering, checked on the CPU.

- Planning (`fusion.plan_fusion`) on traced model graphs (MLP forward+backward, Adam
  updates) and on random programs: every node in at most one group, groups of
  elementwise ops of one shape, a schedule that stays topological (no cycle), and every
  member read outside its group exported.
- The emitted kernel text (`cuda_kernels`) compiled by gcc with the flags that mirror
  the GPU build (`-ffp-contract=off`, the counterpart of `--fmad=false`, and no fast
  math), wrapped in a loop over flat arrays and loaded with ctypes: bit-identical to
  NumPy eager for the correctly rounded ops on inputs full of NaN, ±inf, ±0 and
  subnormals; within a few ulps for the transcendentals.
- The fused lowering run end to end with those gcc-built kernels: bit-identical to the
  buffered NumPy lowering (and to eager) on graphs of exact ops.

The GPU run of the same lowering is in test_cuda.py.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_graph_cases import MLP_PARAMS, field_tensor, host_values, mlp_ce, mlp_mse
from test_graph_programs import inputs_for, programs, traced

import torchlean as tl
from torchlean.runtime.graph import (
    Graph,
    compile_graph,
    grad_graph,
    kernel_source,
    plan_fusion,
    simplify,
    trace,
)
from torchlean.runtime.graph.cuda_kernels import (
    C_OPS,
    EXACT_OPS,
    KernelCall,
    KernelSource,
    can_fuse,
)
from torchlean.runtime.graph.fusion import ELEMENTWISE, FusionGroup, FusionPlan
from torchlean.spec import OPS
from torchlean.spec import functional as F
from torchlean.spec.fields import NativeFloatField, get_field
from torchlean.spec.tensor import Tensor
from torchlean.spec.value import Value

NP = np.ndarray[Any, Any]
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc not found: the emitted C kernels "
                               "cannot be compiled on this machine")
DTYPES = {"float": np.float64, "float32": np.float32}


# -- running kernel text on the CPU --------------------------------------------------
_C_TYPES = {"float32": "float", "float64": "double"}
_LIBS: dict[str, Any] = {}
_TMP = tempfile.TemporaryDirectory(prefix="torchlean-fusion-")


def _c_function(src: KernelSource) -> str:
    """The kernel's operation in a C loop over flat arrays, as ElementwiseKernel runs it
    per element (inputs read by value, outputs written after the body)."""
    t = _C_TYPES[src.dtype]
    n_in, n_out = len(src.inputs), len(src.outputs)
    lines = [f"void {src.name}(long n, {t} *const *ins, {t} *const *outs) {{",
             "  for (long i = 0; i < n; ++i) {"]
    lines += [f"    const {t} in{k} = ins[{k}][i];" for k in range(n_in)]
    lines += [f"    {t} out{k};" for k in range(n_out)]
    lines += [f"    {line}" for line in src.operation.splitlines()]
    lines += [f"    outs[{k}][i] = out{k};" for k in range(n_out)]
    lines += ["  }", "}"]
    return "\n".join(lines)


def build_kernels(sources: Sequence[KernelSource]) -> dict[str, KernelCall]:
    """The kernels compiled together by gcc (one shared library, cached by source text),
    each as a runner call: inputs broadcast to the output shape, outputs written in
    place (whatever their layout)."""
    assert GCC is not None
    unique = {s.name: s for s in sources}
    text = "#include <math.h>\n\n" + "\n\n".join(_c_function(s) for s in unique.values())
    key = hashlib.sha256(text.encode()).hexdigest()[:20]
    lib = _LIBS.get(key)
    if lib is None:
        tmp = Path(_TMP.name)
        (tmp / f"{key}.c").write_text(text)
        subprocess.run([GCC, "-O2", "-shared", "-fPIC", "-ffp-contract=off",
                        "-fno-fast-math", "-o", str(tmp / f"{key}.so"),
                        str(tmp / f"{key}.c"), "-lm"], check=True, capture_output=True)
        lib = _LIBS[key] = ctypes.CDLL(str(tmp / f"{key}.so"))
    return {name: _caller(getattr(lib, name), s) for name, s in unique.items()}


def _caller(fn: Any, src: KernelSource) -> KernelCall:
    dtype = np.dtype(src.dtype)

    def call(inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        shape = outputs[0].shape
        ins = [np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=dtype), shape))
               for a in inputs]
        outs = [np.empty(shape, dtype) for _ in outputs]
        ptrs_in = (ctypes.c_void_p * max(len(ins), 1))(*[a.ctypes.data for a in ins])
        ptrs_out = (ctypes.c_void_p * len(outs))(*[a.ctypes.data for a in outs])
        fn(ctypes.c_long(int(np.prod(shape))), ptrs_in, ptrs_out)
        for o, tmp in zip(outputs, outs, strict=True):
            o[...] = tmp

    return call


def gcc_runner(src: KernelSource) -> KernelCall:
    """A KernelRunner running the kernel text compiled by gcc."""
    return build_kernels([src])[src.name]


# -- comparisons ---------------------------------------------------------------------
def _ordered(a: NP) -> NP:
    """Float bits mapped to integers in the order of the values (-0 and +0 adjacent), so
    that differences count ulps."""
    bits = np.dtype(f"i{a.dtype.itemsize}")
    i = np.ascontiguousarray(a).view(bits).astype(np.int64)
    return np.where(i < 0, np.iinfo(bits).min - i, i)


def same_up_to_nan(got: NP, want: NP) -> bool:
    """Identical bits, except that any NaN matches any NaN: NaN sign and payload are not
    specified by IEEE 754 for arithmetic results and differ across hardware (x86 gives
    the default NaN -nan for sqrt(-1), CUDA a positive one)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    if not np.array_equal(nan_g, nan_w):
        return False
    bits = np.dtype(f"u{got.dtype.itemsize}")
    return bool(np.array_equal(np.ascontiguousarray(got).view(bits)[~nan_g],
                               np.ascontiguousarray(want).view(bits)[~nan_w]))


# -- one op at a time ----------------------------------------------------------------
OP_FNS: dict[str, Callable[..., Value]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "neg": lambda a: -a, "abs": F.abs, "square": F.square,
    "sqrt": F.sqrt, "maximum": F.maximum, "minimum": F.minimum, "relu": F.relu,
    "step": F.step, "greater": F.greater, "where": F.where,
    "leaky_relu": lambda a: F.leaky_relu(a, 0.1),
    "exp": F.exp, "log": F.log, "log1p": F.log1p, "expm1": F.expm1, "tanh": F.tanh,
    "sigmoid": F.sigmoid, "silu": F.silu, "softplus": F.softplus,
}


def test_every_c_op_is_covered_and_elementwise() -> None:
    assert set(OP_FNS) == set(C_OPS)
    assert C_OPS <= ELEMENTWISE <= set(OPS)


@functools.cache
def single_op(tag: str, field: str, n: int) -> tuple[Graph, KernelSource]:
    """The graph of op `tag` on inputs of shape (n,), and its one-node kernel."""
    fn = OP_FNS[tag]
    arity = OPS[tag].arity
    g = trace(fn, {f"a{i}": (n,) for i in range(arity)}, field=field)
    plan = plan_fusion(g, can_fuse, min_size=1)
    (group,) = plan.groups
    ff = get_field(field)
    assert isinstance(ff, NativeFloatField)
    return g, kernel_source(g, group, ff)


def specials(dtype: Any) -> NP:
    """NaN, ±inf, ±0, the extremes of the normal and subnormal ranges, ±1."""
    fi = np.finfo(dtype)
    vals = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, fi.max, -fi.max, fi.tiny,
            -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal, fi.tiny / 2]
    return np.array(vals, dtype=dtype)


def float_arrays(dtype: Any, n: int) -> st.SearchStrategy[NP]:
    """Arrays of `n` floats of `dtype` with NaN, ±inf, ±0 and subnormals likely."""
    width = 8 * np.dtype(dtype).itemsize
    elements = st.one_of(
        st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True),
        st.sampled_from(list(specials(dtype))),
        st.floats(-30, 30, width=width),
    )
    return hnp.arrays(dtype, n, elements=elements)


def eager(tag: str, field: str, xs: Sequence[NP]) -> NP:
    """The op's forward rule on NumPy arrays (what eager computes)."""
    f = get_field(field)
    with np.errstate(all="ignore"):
        out = OPS[tag].forward(f, tuple(xs), {"negative_slope": 0.1} if tag == "leaky_relu"
                               else {})
    return np.asarray(out)


@functools.cache
def op_kernels(field: str) -> dict[str, KernelCall]:
    """Every op's one-node kernel in `field`, compiled together (one gcc run per field)."""
    sources = [single_op(t, field, 1)[1] for t in sorted(C_OPS)]
    return {t: build_kernels(sources)[s.name] for t, s in zip(sorted(C_OPS), sources,
                                                              strict=True)}


def run_single(tag: str, field: str, xs: Sequence[NP]) -> NP:
    """Op `tag`'s kernel on the arrays `xs` (of one shape)."""
    call = op_kernels(field)[tag]
    out = np.empty_like(xs[0])
    call(list(xs), [out])
    return out


N = 16
FIELDS = ["float", "float32"]


@needs_gcc
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("tag", sorted(EXACT_OPS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_exact_op_kernels_match_numpy_bit_for_bit(tag: str, field: str,
                                                  data: st.DataObject) -> None:
    # Correctly rounded ops (and comparisons / selection, which round nothing) have one
    # right answer per element: C with no FMA contraction must give NumPy's bits.
    dtype = DTYPES[field]
    xs = [data.draw(float_arrays(dtype, N), label=f"a{i}") for i in range(OPS[tag].arity)]
    got, want = run_single(tag, field, xs), eager(tag, field, xs)
    assert same_up_to_nan(got, want), (tag, xs, got, want)


@needs_gcc
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("tag", sorted(EXACT_OPS))
def test_exact_op_kernels_on_every_pair_of_specials(tag: str, field: str) -> None:
    dtype = DTYPES[field]
    s = specials(dtype)
    grid = np.meshgrid(*[s] * OPS[tag].arity, indexing="ij")
    xs = [np.ascontiguousarray(g.reshape(-1)) for g in grid]
    assert same_up_to_nan(run_single(tag, field, xs), eager(tag, field, xs)), tag


# glibc's libm and NumPy's own (SIMD) implementations of exp, log, tanh, ... are both
# accurate to about an ulp but are different approximations, so they may round a hard
# case differently (measured: up to 3 ulps for float32 tanh, 2 for exp and log);
# composites (sigmoid, silu, softplus) add correctly rounded steps after one
# transcendental, which carry its difference along. 4 ulps bounds that while still
# catching a wrong formula (an error of 1e-6 relative is ~8 ulps in float32, ~4e9 in
# float64). One exception: where exp's result is subnormal its ulp is a large relative
# step, and silu multiplies that value by `a` (e.g. silu(-92) in float32: a 1-ulp
# difference in exp(-92) becomes 92 subnormal ulps), so an absolute difference of
# 4 * max(1, |a|) smallest subnormals is accepted as well.
TRANSCENDENTAL_ULPS = 4


def close_to_libm(got: NP, want: NP, x: NP, ulps: int = TRANSCENDENTAL_ULPS) -> bool:
    """Within `ulps`, or within the subnormal allowance, elementwise (x: the input)."""
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    ok = ~np.isnan(want)
    g, w, a = got[ok], want[ok], x[ok]
    apart = np.abs(_ordered(g) - _ordered(w))
    tiny = float(np.finfo(x.dtype).smallest_subnormal)
    with np.errstate(all="ignore"):  # inf - inf is NaN (not accepted), |a| * 4 may be inf
        diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
        allow = np.maximum(1.0, np.abs(a.astype(np.float64))) * ulps * tiny
    return bool(np.all((apart <= ulps) | (diff <= allow)))


@needs_gcc
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("tag", sorted(C_OPS - EXACT_OPS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_transcendental_kernels_match_numpy_within_ulps(tag: str, field: str,
                                                        data: st.DataObject) -> None:
    dtype = DTYPES[field]
    x = data.draw(float_arrays(dtype, N), label="a0")
    got, want = run_single(tag, field, [x]), eager(tag, field, [x])
    assert close_to_libm(got, want, x), (tag, x, got, want)


@needs_gcc
@pytest.mark.parametrize("field", FIELDS)
def test_transcendental_kernels_on_a_wide_sweep(field: str) -> None:
    # 100k values over the whole range that matters (tiny to overflow, both signs),
    # where hypothesis' few examples would rarely land on a hard case
    dtype = DTYPES[field]
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(20000) * 10, rng.uniform(-100, 100, 20000),
                        np.exp(rng.uniform(-80, 80, 20000)),
                        -np.exp(rng.uniform(-80, 80, 20000)),
                        rng.uniform(-1e-3, 1e-3, 20000), specials(dtype)]).astype(dtype)
    for tag in sorted(C_OPS - EXACT_OPS):
        assert close_to_libm(run_single(tag, field, [x]), eager(tag, field, [x]), x), tag


# -- planning ------------------------------------------------------------------------
def check_plan(graph: Graph, plan: FusionPlan) -> None:
    """The plan's invariants: disjoint groups of fusable elementwise nodes of one shape,
    connected, with exactly their outside operands as inputs and every member that is
    read outside (or returned) as an output, run in an order that stays topological."""
    nodes = graph.nodes
    consumers: dict[int, set[int]] = {n.id: set() for n in nodes}
    for n in nodes:
        for a in n.args:
            consumers[a].add(n.id)
    returned = {i for _, i in graph.outputs}
    seen: set[int] = set()
    for gi, grp in enumerate(plan.groups):
        members = set(grp.nodes)
        assert len(members) == len(grp.nodes) >= 2 and list(grp.nodes) == sorted(members)
        assert not members & seen, "a node in two groups"
        seen |= members
        for m in grp.nodes:
            assert plan.group_of[m] == gi
            assert nodes[m].op in ELEMENTWISE and can_fuse(nodes[m])
            assert nodes[m].shape == grp.shape
        outside = [a for m in grp.nodes for a in nodes[m].args if a not in members]
        assert grp.inputs == tuple(dict.fromkeys(outside))
        assert grp.outputs == tuple(m for m in grp.nodes
                                    if m in returned or consumers[m] - members)
        reach, todo = {grp.nodes[0]}, [grp.nodes[0]]  # connected (edges either way)
        while todo:
            m = todo.pop()
            for k in (*nodes[m].args, *consumers[m]):
                if k in members and k not in reach:
                    reach.add(k)
                    todo.append(k)
        assert reach == members, "a group that is not connected"
    assert {i for i, g in enumerate(plan.group_of) if g >= 0} == seen
    done: set[int] = set()
    for step in plan.schedule():
        ids = set(step.nodes) if isinstance(step, FusionGroup) else {step}
        needs = {a for m in ids for a in nodes[m].args} - ids
        assert needs <= done, f"{step} runs before {sorted(needs - done)}"
        done |= ids
    assert done == set(range(len(nodes)))


def mlp_graph(loss: Callable[..., Value], field: str) -> Graph:
    """An MLP's loss and parameter gradients as one graph (simplified, as the runner
    traces it)."""
    other = {"labels": (3,)} if loss is mlp_ce else {"y": (3, 4)}
    g = trace(loss, {"x": (3, 5), **other}, MLP_PARAMS, field=field)
    return simplify(grad_graph(g, list(MLP_PARAMS)))


def mlp_values(loss: Callable[..., Value], field: str, seed: int) -> dict[str, Tensor]:
    rng = np.random.default_rng(seed)
    shapes = {**MLP_PARAMS, "x": (3, 5)}
    values = {k: field_tensor(host_values(rng, s, "real", False), field)
              for k, s in shapes.items()}
    if loss is mlp_ce:
        values["labels"] = field_tensor(host_values(rng, (3,), "labels", False), field)
    else:
        values["y"] = field_tensor(host_values(rng, (3, 4), "real", False), field)
    return values


OPTIMIZERS = {
    "adam": tl.optim.adam(0.01),
    "adam_l2": tl.optim.adam(0.01, weight_decay=0.1),
    "adamw": tl.optim.adamw(0.01, weight_decay=0.1),
}


def update_graph(name: str, field: str, size: int) -> tuple[Graph, dict[str, Any]]:
    """An optimizer's update of a flat vector as `CompiledUpdate` traces it, and values
    for its leaves (the coefficients of update 3)."""
    opt = OPTIMIZERS[name]
    slots = opt.slots()
    rng = np.random.default_rng(0)
    like = tl.tensor(rng.standard_normal(size), field)
    coeffs = opt.coefficients(like, 2)
    inputs = {"params": (size,), "grads": (size,), **{f"state:{s}": (size,) for s in slots},
              **{f"coef:{c}": () for c in coeffs}}

    def fn(p: Value, g: Value, *rest: Value) -> list[Value]:
        bufs = {s: {"p": b} for s, b in zip(slots, rest[:len(slots)], strict=True)}
        cs = dict(zip(coeffs, rest[len(slots):], strict=True))
        new, new_bufs = opt.tensor_update({"p": p}, {"p": g}, bufs, cs, False)
        return [new["p"], *(new_bufs[s]["p"] for s in slots)]

    g = trace(fn, inputs, None, field)
    values: dict[str, Any] = {"params": like, "grads": tl.tensor(rng.standard_normal(size),
                                                                  field)}
    values.update({f"state:{s}": tl.tensor(np.abs(rng.standard_normal(size)), field)
                   for s in slots})
    values.update({f"coef:{c}": v for c, v in coeffs.items()})
    return g, values


MODEL_GRAPHS = [(f"{loss.__name__}-{field}", field) for loss in (mlp_mse, mlp_ce)
                for field in FIELDS] + [(f"{opt}-{field}", field) for opt in OPTIMIZERS
                                        for field in FIELDS]


def model_graph(key: str, field: str) -> tuple[Graph, dict[str, Any]]:
    name = key.rsplit("-", 1)[0]
    if name.startswith("mlp"):
        loss = mlp_mse if name == "mlp_mse" else mlp_ce
        return mlp_graph(loss, field), mlp_values(loss, field, 0)
    return update_graph(name, field, 37)


@pytest.mark.parametrize(("key", "field"), MODEL_GRAPHS, ids=[k for k, _ in MODEL_GRAPHS])
def test_plans_of_model_graphs_keep_their_invariants(key: str, field: str) -> None:
    g, _ = model_graph(key, field)
    plan = plan_fusion(g, can_fuse)
    check_plan(g, plan)
    assert plan == plan_fusion(g, can_fuse), "planning is not deterministic"
    assert plan.groups, "nothing fused"
    if not key.startswith("mlp"):  # an Adam update is one elementwise chain
        assert len(plan.groups) == 1
        assert len(plan.groups[0].nodes) == g.op_count


def test_a_merge_that_would_need_a_value_too_early_is_refused() -> None:
    # u = x * 2 is read by s = sum(u) (not fusable) before v = u + 1 joins: fusing u
    # with v would run u after s. The plan keeps u apart; w = exp(v) still joins v.
    def fn(x: Value) -> tuple[Value, Value]:
        u = x * 2
        s = F.sum(u, axis=0, keepdims=True)
        v = F.exp(u + 1)
        return v, v * s

    g = trace(fn, {"x": (2, 3)})
    plan = plan_fusion(g, can_fuse)
    check_plan(g, plan)
    mul_u = next(n.id for n in g.nodes if n.op == "mul")
    assert plan.group_of[mul_u] < 0


# -- the fused lowering on the CPU -----------------------------------------------------
def interpreter_runner(graph: Graph) -> Callable[[KernelSource], KernelCall]:
    """A KernelRunner that evaluates a kernel's nodes with their NumPy forward rules
    (eager's own arithmetic): it checks the lowering's plumbing (schedule, buffers,
    outputs, aliasing) independently of the C text."""
    field = get_field(graph.field)

    def runner(src: KernelSource) -> KernelCall:
        def call(inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
            env: dict[int, Any] = dict(zip(src.inputs, inputs, strict=True))

            def value(i: int) -> Any:
                if i not in env:
                    n = graph.nodes[i]
                    env[i] = field.constant(n.attr("value")) if n.op == "const" else (
                        OPS[n.op].forward(field, tuple(value(a) for a in n.args), n.attr_dict))
                return env[i]

            with np.errstate(all="ignore"):
                for o, out in zip(src.outputs, outputs, strict=True):
                    out[...] = value(o)

        return call

    return runner


def fused_and_buffered(g: Graph, values: dict[str, Any], runner: Any
                       ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    fused = compile_graph(g, backend="fused", kernel_runner=runner)
    arrays = [v.data if isinstance(v, Tensor) else v for v in values.values()]
    assert fused.mode_for(arrays) == "fused"
    with np.errstate(all="ignore"):
        return fused(values), compile_graph(g)(values)


def assert_same(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    assert got.keys() == want.keys()
    for k in want:
        assert same_up_to_nan(got[k].numpy(), want[k].numpy()), (k, got[k], want[k])


# Where a fused group calls libm (mlp_ce's backward has exp in its softmax gradient),
# the C exp may differ from NumPy's by a few ulps (see TRANSCENDENTAL_ULPS); the few
# correctly rounded ops and one small matmul after it keep the difference within a few
# hundred ulps of the largest magnitude of each result.
LIBM_RTOL = {"float": 1e-13, "float32": 1e-5}


@needs_gcc
@pytest.mark.parametrize(("key", "field"), MODEL_GRAPHS, ids=[k for k, _ in MODEL_GRAPHS])
def test_fused_lowering_with_c_kernels_equals_buffered(key: str, field: str) -> None:
    # graphs whose fused ops are all exact ops: the same bits as NumPy's lowering
    g, values = model_graph(key, field)
    fused_ops = {g.nodes[m].op for grp in plan_fusion(g, can_fuse).groups for m in grp.nodes}
    got, want = fused_and_buffered(g, values, gcc_runner)
    if fused_ops <= EXACT_OPS:
        assert_same(got, want)
    else:
        assert key.startswith("mlp_ce"), fused_ops
        for k in want:
            w = want[k].numpy()
            np.testing.assert_allclose(got[k].numpy(), w, rtol=LIBM_RTOL[field],
                                       atol=LIBM_RTOL[field] * float(np.max(np.abs(w))))
    got_again, _ = fused_and_buffered(g, values, gcc_runner)  # buffers reused: same again
    for k in got:
        assert same_up_to_nan(got_again[k].numpy(), got[k].numpy()), k


@pytest.mark.parametrize(("key", "field"), MODEL_GRAPHS, ids=[k for k, _ in MODEL_GRAPHS])
def test_fused_lowering_plumbing_equals_buffered(key: str, field: str) -> None:
    # groups evaluated by NumPy's own forward rules: any difference is the lowering's
    g, values = model_graph(key, field)
    got, want = fused_and_buffered(g, values, interpreter_runner(g))
    assert_same(got, want)


@settings(deadline=None, max_examples=40)
@given(field=st.sampled_from(FIELDS), seed=st.integers(0, 2**16), data=st.data())
def test_random_programs_plan_and_run_like_buffered(field: str, seed: int,
                                                    data: st.DataObject) -> None:
    # arbitrary chains of elementwise ops, reductions, views, matmuls and constants
    # (non-finite ones included, which become kernel inputs), on inputs with NaN, ±inf,
    # ±0 and subnormals
    p = data.draw(programs())
    g = traced(p, field)
    plan = plan_fusion(g, can_fuse)
    check_plan(g, plan)
    values = inputs_for(p, field, seed, specials=True)
    got, want = fused_and_buffered(g, values, interpreter_runner(g))
    assert_same(got, want)
    exact = all(g.nodes[m].op in EXACT_OPS for grp in plan.groups for m in grp.nodes)
    if GCC is not None and exact and plan.groups:
        got, _ = fused_and_buffered(g, values, gcc_runner)
        assert_same(got, want)


@needs_gcc
@settings(deadline=None, max_examples=25)
@given(field=st.sampled_from(FIELDS), seed=st.integers(0, 2**16), data=st.data())
def test_random_exact_programs_with_c_kernels_equal_buffered(field: str, seed: int,
                                                             data: st.DataObject) -> None:
    # programs of exact ops only (neg, abs, relu, square, step, leaky_relu, add, sub, mul,
    # maximum, minimum, greater, finite constants): the C kernels give NumPy's bits
    p = data.draw(programs(rational=True))
    g = traced(p, field)
    values = inputs_for(p, field, seed, specials=True)
    got, want = fused_and_buffered(g, values, gcc_runner)
    assert_same(got, want)


# Elementwise chains: many exact ops over a (3, 4) shape, reading full-shape values, a
# bias row (4,), a 0-d value and constants, with sums in between that break groups
# (and whose results broadcast back into them).
CHAIN_UNARY = ["neg", "abs", "relu", "square", "step", "sqrt", "leaky_relu"]
CHAIN_BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "greater"]
CHAIN_LEAVES = {"x0": (3, 4), "x1": (3, 4), "bias": (4,), "s": ()}


@st.composite
def chains(draw: st.DrawFn) -> tuple[tuple[Any, ...], ...]:
    steps: list[tuple[Any, ...]] = []
    n = len(CHAIN_LEAVES)
    for _ in range(draw(st.integers(2, 14))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "where", "const", "sum"]))
        i, j, k = (draw(st.integers(0, n - 1)) for _ in range(3))
        op = draw(st.sampled_from(CHAIN_UNARY if kind == "unary" else CHAIN_BINARY))
        steps.append((kind, op, i, j, k, draw(st.sampled_from([0.5, -3.0, 1e-40, 0.1]))))
        n += 1
    return tuple(steps)


def run_chain(steps: tuple[tuple[Any, ...], ...], *leaves: Value) -> list[Value]:
    vals = list(leaves)
    for kind, op, i, j, k, c in steps:
        a, b = vals[i], vals[j]
        if kind == "unary":
            out = F.leaky_relu(a, c) if op == "leaky_relu" else OP_FNS[op](a)
        elif kind == "binary":
            out = OP_FNS[op](a, b)
        elif kind == "where":
            out = F.where(a, b, vals[k])
        elif kind == "const":
            out = a * c
        else:
            out = F.sum(a, axis=0, keepdims=True) if a.shape else a
        vals.append(out)
    return [vals[-1], *vals[len(leaves)::3]]


@needs_gcc
@settings(deadline=None, max_examples=30)
@given(field=st.sampled_from(FIELDS), seed=st.integers(0, 2**16), steps=chains())
def test_random_exact_chains_with_c_kernels_equal_buffered_and_eager(
        field: str, seed: int, steps: tuple[tuple[Any, ...], ...]) -> None:
    g = trace(functools.partial(run_chain, steps), CHAIN_LEAVES, field=field)
    check_plan(g, plan_fusion(g, can_fuse))
    rng = np.random.default_rng(seed)
    values = {k: field_tensor(host_values(rng, s, "real", True), field)
              for k, s in CHAIN_LEAVES.items()}
    got, want = fused_and_buffered(g, values, gcc_runner)
    assert_same(got, want)
    with np.errstate(all="ignore"):
        direct = run_chain(steps, *values.values())
    assert_same(got, {name: t for (name, _), t in zip(g.outputs, direct, strict=True)})


@needs_gcc
@pytest.mark.parametrize("field", FIELDS)
def test_constants_that_overflow_the_dtype_become_kernel_inputs(field: str) -> None:
    # 1e39 is finite in binary64 but inf in float32; NaN and inf have no C literal: all
    # are passed as 0-d kernel inputs, finite ones are written into the text. A
    # leaky_relu slope beyond float32's range is not fused at all.
    def fn(x: Value) -> Value:
        y = F.leaky_relu(x, 0.25) * 1e39 + float("nan")
        return F.maximum(y * float("inf"), F.leaky_relu(x, 1e39)) + F.pi(x)

    g = trace(fn, {"x": (2, 3)}, field=field)
    ff = get_field(field)
    assert isinstance(ff, NativeFloatField)
    plan = plan_fusion(g, can_fuse)
    check_plan(g, plan)
    (group,) = plan.groups
    src = kernel_source(g, group, ff)
    passed = {g.nodes[i].attr("value") for i in src.inputs if g.nodes[i].op == "const"}
    big = {1e39} if field == "float32" else set()
    assert {str(v) for v in passed} == {"nan", "inf", *map(str, big)}
    assert [g.nodes[m].attr("negative_slope") for m in group.nodes
            if g.nodes[m].op == "leaky_relu"] == [0.25]
    x = field_tensor(np.array([[1.5, -2.0, 0.0], [-0.0, 3e-39, -1e-30]]), field)
    got, want = fused_and_buffered(g, {"x": x}, gcc_runner)
    assert_same(got, want)
