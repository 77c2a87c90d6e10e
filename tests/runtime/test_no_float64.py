"""The eager runtime on a device without float64: array-api-strict's "no_float64" device.

That device (array-api-strict >= 2.3, standing in for accelerators such as Apple's MPS)
refuses to hold a float64 array at all, so any binary64 intermediate our float32 code
made (a constant lifted in float64, a host round trip, a promotion) raises there. Every
op's forward rule and tape gradient, and whole Adam training steps of an MLP, run on it;
their results are also compared bit for bit with the same computation on NumPy float32
arrays, since array-api-strict evaluates with NumPy's own kernels (any difference would
mean a different computation, not rounding noise: no tolerance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import torchlean.spec as S
from torchlean import nn, optim
from torchlean.runtime import autograd as ad
from torchlean.spec import float32
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor

xp = pytest.importorskip("array_api_strict")
try:
    DEVICE = xp.Device("no_float64")
except ValueError:  # pragma: no cover  (older array-api-strict)
    pytest.skip("array-api-strict has no 'no_float64' device", allow_module_level=True)
NP = np.ndarray
Make = Callable[[Any], Tensor]


def on_device(a: Any) -> Tensor:
    """A float32 Tensor on the no-float64 device."""
    return Tensor(xp.asarray(np.asarray(a, dtype=np.float32), device=DEVICE), float32)


def on_numpy(a: Any) -> Tensor:
    """The same float32 Tensor as plain NumPy."""
    return Tensor(np.asarray(a, dtype=np.float32), float32)


def check_float32_on_device(t: Tensor, what: str) -> None:
    assert type(t.data) is type(xp.asarray(0.0, device=DEVICE)), f"{what}: left the namespace"
    assert t.data.dtype == xp.float32, f"{what}: dtype {t.data.dtype}"
    assert t.data.device == DEVICE, f"{what}: device {t.data.device}"


def same_bits(got: Tensor, want: Tensor, what: str) -> None:
    check_float32_on_device(got, what)
    g, w = got.numpy(), want.numpy()
    assert g.shape == w.shape, f"{what}: shape {g.shape} vs {w.shape}"
    assert np.array_equal(g.view(np.uint32), w.view(np.uint32)), f"{what}: {g} vs {w}"


RNG = np.random.default_rng(7)
A = RNG.uniform(0.5, 2.0, (2, 3)).astype(np.float32)  # positive: in every op's domain
B = RNG.uniform(0.5, 2.0, (3,)).astype(np.float32)
M = RNG.uniform(-1.0, 1.0, (3, 4)).astype(np.float32)
LABELS = np.array([1, 0], dtype=np.int64)

# One case per op of the table: (function of the tensors, inputs). Inputs are float32
# arrays; the labels of one_hot stay integers on the device.
CASES: dict[str, tuple[Callable[..., Any], list[NP]]] = {
    **{tag: (getattr(F, tag), [A]) for tag in (
        "neg", "abs", "square", "sqrt", "exp", "log", "log1p", "expm1", "tanh", "sigmoid",
        "softplus", "sin", "cos", "erf", "gelu", "silu", "relu", "leaky_relu", "step")},
    **{tag: (getattr(F, tag), [A, B]) for tag in (
        "add", "sub", "mul", "div", "maximum", "minimum", "greater")},
    "power": (lambda x: F.power(x, 3), [A]),
    "where": (lambda c, x, y: F.where(F.greater(c, 1.0), x, y), [A, A * 2, B]),
    "sum": (lambda x: F.sum(x, 1), [A]),
    "mean": (lambda x: F.mean(x), [A]),
    "max": (lambda x: F.max(x, 0), [A]),
    "argmax_mask": (lambda x: F.argmax_mask(x, 1), [A]),
    "matmul": (F.matmul, [A, M]),
    "transpose": (F.transpose, [A]),
    "reshape": (lambda x: F.reshape(x, (3, 2)), [A]),
    "broadcast_to": (lambda x: F.broadcast_to(x, (2, 3)), [B]),
    "concat": (lambda x, y: F.concat([x, y], 0), [A, A]),
    "slice": (lambda x: x[:, 1:], [A]),
    "unslice": (lambda x: F.apply_unslice(x, (4, 3), [(1, 3, 1), (0, 3, 1)]), [A]),
    "softmax": (lambda x: F.softmax(x, 1), [A]),
    "log_softmax": (lambda x: F.log_softmax(x, 1), [A]),
    "one_hot": (lambda x: F.one_hot(x, 3), [LABELS]),
}


def _inputs(arrays: list[NP], make: Make) -> list[Tensor]:
    out = []
    for a in arrays:
        if a.dtype.kind == "i":  # labels: integers, on the device when `make` is
            data = xp.asarray(a, device=DEVICE) if make is on_device else a
            out.append(Tensor(data, float32))
        else:
            out.append(make(a))
    return out


def _forward_and_grads(tag: str, make: Make) -> tuple[Tensor, list[Tensor]]:
    fn, arrays = CASES[tag]
    xs = _inputs(arrays, make)
    out = fn(*xs)
    if tag == "one_hot":  # labels are not differentiable
        return out, []
    weights = make(np.linspace(-1.0, 1.0, int(np.prod(out.shape))).reshape(out.shape))
    grads = ad.grad(lambda *v: F.sum(fn(*v) * weights), argnums=tuple(range(len(xs))))(*xs)
    return out, list(grads)


def test_every_op_is_covered() -> None:
    assert set(S.OPS) <= set(CASES), f"ops without a no-float64 case: {set(S.OPS) - set(CASES)}"


@pytest.mark.parametrize("tag", sorted(CASES))
def test_op_and_gradient_stay_float32_on_device(tag: str) -> None:
    out, grads = _forward_and_grads(tag, on_device)
    want_out, want_grads = _forward_and_grads(tag, on_numpy)
    same_bits(out, want_out, f"{tag} forward")
    for i, (g, w) in enumerate(zip(grads, want_grads, strict=True)):
        same_bits(g, w, f"{tag} gradient of input {i}")


def test_float64_is_refused_on_the_device() -> None:
    """The premise of this file: the device really has no float64."""
    with pytest.raises(ValueError, match="float64"):
        xp.asarray(1.0, dtype=xp.float64, device=DEVICE)


def _train(make: Make, steps: int) -> tuple[dict[str, Tensor], list[Tensor]]:
    """Adam steps of a 4-8-3 MLP with cross entropy, every array made by `make`."""
    built = nn.build(nn.sequential(nn.linear(4, 8), nn.relu(), nn.linear(8, 3)), seed=0,
                     dtype="float32")
    params = {k: make(v.numpy()) for k, v in built.params.items()}
    rng = np.random.default_rng(0)
    x = make(rng.standard_normal((5, 4)))
    labels = rng.integers(0, 3, 5)
    y = Tensor(xp.asarray(labels, device=DEVICE) if make is on_device else labels, float32)
    opt = optim.adam(1e-2)
    state = opt.init(params)

    def loss_of(p: dict[str, Any]) -> Any:
        out, _ = built.forward(p, x)
        return nn.cross_entropy(out, y)

    losses = []
    for _ in range(steps):
        loss, grads = ad.value_and_grad(loss_of)(params)
        losses.append(loss)
        params, state = opt.update(params, grads, state)
    return {**params, **{f"{s}.{k}": v for s, b in state.buffers.items() for k, v in b.items()}
            }, losses


def test_adam_training_steps_stay_float32_on_device() -> None:
    got, got_losses = _train(on_device, 3)
    want, want_losses = _train(on_numpy, 3)
    assert got.keys() == want.keys()
    for name in got:
        same_bits(got[name], want[name], name)
    for i, (a, b) in enumerate(zip(got_losses, want_losses, strict=True)):
        same_bits(a, b, f"loss at step {i}")
    assert got_losses[-1].numpy() < got_losses[0].numpy()  # it did train
