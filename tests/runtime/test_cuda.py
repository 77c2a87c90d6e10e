"""GPU tests: runners on a CUDA device through CuPy (skipped without CuPy or a GPU).

The same API as the stand-in tests (tests/runtime/test_devices.py), with `device="cuda"`.
Run them alone with `pytest -m cupy tests/runtime/test_cuda.py` (or `bash scripts/gpu_check.sh`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_fusion import (
    DTYPES,
    MODEL_GRAPHS,
    close_to_libm,
    model_graph,
    same_up_to_nan,
    single_op,
    specials,
)
from test_fusion import eager as eager_op

import torchlean as tl
from torchlean.runtime import devices
from torchlean.runtime.devices import ArrayDevice, DeviceError, HostTransferError
from torchlean.runtime.graph import compile_graph
from torchlean.runtime.graph.cuda_kernels import C_OPS, EXACT_OPS, FusedKernel
from torchlean.runtime.runner import Runner, runner
from torchlean.spec import OPS


def _cuda() -> ArrayDevice | None:
    try:
        return devices.cuda()
    except DeviceError:  # CuPy missing, or no CUDA device
        return None


CUDA = _cuda()
pytestmark = [pytest.mark.cupy,
              pytest.mark.skipif(CUDA is None, reason="CuPy/CUDA not available")]

RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 16))
Y = RNG.standard_normal((32, 4))
STEPS = 5


def make(device: str, backend: str = "eager", dtype: str = "float") -> Runner:
    model = tl.nn.sequential(tl.nn.linear(16, 32), tl.nn.batch_norm(32), tl.nn.relu(),
                             tl.nn.linear(32, 4))
    r = runner(tl.train.regression(tl.nn.build(model, seed=0)), dtype, backend,
               device)  # type: ignore[arg-type]
    r.set_optimizer(tl.optim.adam(0.01))
    return r


def on_gpu(r: Runner) -> bool:
    assert CUDA is not None
    state: list[Any] = [r.flat, *r.buffers.values()]
    assert r.opt_state is not None
    state += [t for bufs in r.opt_state.buffers.values() for t in bufs.values()]
    return all(CUDA.holds(t.data) for t in state)


def run(r: Runner) -> tuple[list[float], np.ndarray[Any, Any]]:
    losses = [float(r.train_step(X, Y).numpy()) for _ in range(STEPS)]
    return losses, r.flat.numpy()


@pytest.mark.parametrize("dtype", ["float", "float32"])
def test_eager_equals_compiled_on_cupy(dtype: str) -> None:
    # The compiled backend on CuPy runs each op's forward rule, in eager's order: the same
    # kernels on the same data, so the same bits (cuBLAS and CuPy reductions are
    # deterministic for a fixed shape on one device).
    eager, compiled = make("cuda", "eager", dtype), make("cuda", "compiled", dtype)
    a, b = run(eager), run(compiled)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert on_gpu(eager) and on_gpu(compiled)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_cupy_equals_numpy_within_float64_tolerance(backend: str) -> None:
    # float64 on both; they differ only in summation order (cuBLAS blocking and CUB
    # reductions vs NumPy's pairwise sums and OpenBLAS), a few ulps per op. Over 5 Adam
    # steps of this 16-32-4 net that stays far below 1e-9 relative (an Adam update is
    # lr * m / (sqrt(v) + eps): no cancellation amplifies it while |g| >> eps).
    gpu, cpu = run(make("cuda", backend)), run(make("cpu", backend))
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-9, atol=0)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", ["ieee32exec", "exact", "interval"])
def test_cpu_only_fields_are_refused_on_cuda(dtype: str) -> None:
    # ieee32exec's bit-exact binary32 kernels exist on NumPy only: refused, never run with
    # a silently different semantics.
    with pytest.raises(DeviceError, match=f"field '{dtype}' runs on the CPU only"):
        make("cuda", dtype=dtype)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_a_training_step_makes_no_host_transfers(backend: str) -> None:
    assert CUDA is not None
    r = make("cuda", backend)
    r.train_step(X, Y)  # compiles on the first call
    with devices.no_host_transfers(CUDA):
        loss = r.train_step(X, Y)
        with pytest.raises(HostTransferError):
            float(loss.data)  # the guard bites on CuPy too
    assert on_gpu(r) and np.isfinite(float(loss.numpy()))


def test_predict_and_loss_stay_on_the_gpu() -> None:
    assert CUDA is not None
    r = make("cuda").eval()
    assert CUDA.holds(r.predict(X).data) and CUDA.holds(r.loss(X, Y).data)
    assert CUDA.holds(r.as_input(CUDA.to_device(X)).data)


# -- the fused lowering (elementwise chains as single kernels) ---------------------------
@pytest.mark.parametrize(("key", "field"), MODEL_GRAPHS, ids=[k for k, _ in MODEL_GRAPHS])
def test_fused_lowering_on_cupy_equals_numpy(key: str, field: str) -> None:
    # The compiled runner on CuPy fuses elementwise chains into ElementwiseKernels. Graphs
    # of elementwise exact ops only (the optimizer updates) give NumPy's bits: compiled
    # without FMA contraction, every op rounds once, as NumPy's does. The MLP graphs also
    # hold matmuls and sums (cuBLAS / CUB summation order) and, for mlp_ce, exp (CUDA's
    # libm): float64 to 1e-12 relative to each output's largest magnitude (a few hundred
    # ulps over these 3x5x6x4 graphs), float32 to 1e-4.
    assert CUDA is not None
    g, values = model_graph(key, field)
    host = [np.asarray(values[n.name].numpy()) for n in g.leaves]
    gpu = [CUDA.to_device(a) for a in host]
    program = compile_graph(g)
    assert program.mode_for(gpu) == "fused"
    lowered = program.program(gpu)
    assert lowered.mode == "fused" and "K0(" in lowered.source  # a fused kernel runs
    assert any(isinstance(v, FusedKernel) for v in lowered._fn.__globals__.values())
    want = program.run_arrays(host)  # the buffered NumPy lowering: eager's bits
    for _ in range(2):  # the second run reuses the buffers
        got = [CUDA.to_host(a) for a in program.run_arrays(gpu)]
        for (name, _), a, w in zip(g.outputs, got, want, strict=True):
            if key.startswith("mlp"):
                tol = 1e-12 if field == "float" else 1e-4
                np.testing.assert_allclose(a, w, rtol=tol, atol=tol * float(np.max(np.abs(w))),
                                           err_msg=name)
            else:
                assert same_up_to_nan(a, w), (name, a, w)


# CUDA's documented libm error bounds are 1-2 ulps, NumPy's about as much, and
# sigmoid / silu / softplus add correctly rounded steps after one transcendental.
CUDA_LIBM_ULPS = 8


@pytest.mark.parametrize("field", ["float", "float32"])
def test_fused_op_kernels_on_cupy_match_numpy_on_specials(field: str) -> None:
    # Each op alone as a CUDA kernel on every combination of NaN, ±inf, ±0, subnormals
    # and extremes: exact ops bit for bit (NaN as a class: CUDA's default NaN is
    # positive, x86's negative); transcendentals within CUDA_LIBM_ULPS or the subnormal
    # allowance of test_fusion.close_to_libm.
    assert CUDA is not None
    s = specials(DTYPES[field])
    for tag in sorted(C_OPS):
        grid = np.meshgrid(*[s] * OPS[tag].arity, indexing="ij")
        xs = [np.ascontiguousarray(g.reshape(-1)) for g in grid]
        _, src = single_op(tag, field, 1)
        out = CUDA.to_device(np.empty_like(xs[0]))
        FusedKernel(src)([CUDA.to_device(x) for x in xs], [out])
        got, want = CUDA.to_host(out), eager_op(tag, field, xs)
        if tag in EXACT_OPS:
            assert same_up_to_nan(got, want), (tag, xs, got, want)
        else:
            assert close_to_libm(got, want, xs[0], CUDA_LIBM_ULPS), (tag, xs[0], got, want)
