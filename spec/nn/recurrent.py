"""Recurrent layers: `gru_cell`, `lstm_cell` and their unrolled forms `gru`, `lstm`.

Gate equations, gate order, parameter names and initialisation are PyTorch's
(torch.nn.GRUCell / LSTMCell / GRU / LSTM documentation):

    GRU   r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
          n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))      h' = (1 - z) ⊙ n + z ⊙ h
    LSTM  i, f, o = σ(W_i* x + b_i* + W_h* h + b_h*)   g = tanh(W_ig x + b_ig + W_hg h + b_hg)
          c' = f ⊙ c + i ⊙ g      h' = o ⊙ tanh(c')

with weight_ih = [W_ir; W_iz; W_in] (GRU, 3H x I) or [W_ii; W_if; W_ig; W_io] (LSTM,
4H x I), likewise weight_hh, bias_ih, bias_hh, every entry U(-1/sqrt(H), 1/sqrt(H)).

A layer takes one input, so a cell takes its state concatenated to the input along the
last axis: `gru_cell(I, H)` maps (batch, I + H) = [x, h] to h' (batch, H), and
`lstm_cell(I, H)` maps (batch, I + 2H) = [x, h, c] to [h', c'] (batch, 2H). The unrolled
layers take (batch, time, I) (PyTorch's batch_first=True), start from a zero state, and
return every hidden state (batch, time, H); their parameters carry PyTorch's single-layer
names ("weight_ih_l0", ...), so a state_dict of nn.GRU / nn.LSTM maps one to one.

σ and tanh have no exact value: over `exact` these layers raise UnsupportedOperation
naming the layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .. import functional as F
from ..errors import ShapeError, UnsupportedOperation
from ..value import Value
from .checks import call_text, positive_int
from .layer import Layer, Module, ParamSpec, Scope
from .shapetypes import M, Mat, N, Vec

__all__ = ["GRUCell", "LSTMCell", "GRU", "LSTM", "gru_cell", "lstm_cell", "gru", "lstm"]

V = TypeVar("V", bound=Value)


def _specs(gates: int, inp: int, hidden: int, suffix: str) -> tuple[ParamSpec, ...]:
    bound = 1.0 / math.sqrt(hidden)
    return (
        ParamSpec("weight_ih" + suffix, (gates * hidden, inp), "uniform", bound),
        ParamSpec("weight_hh" + suffix, (gates * hidden, hidden), "uniform", bound),
        ParamSpec("bias_ih" + suffix, (gates * hidden,), "uniform", bound),
        ParamSpec("bias_hh" + suffix, (gates * hidden,), "uniform", bound),
    )


def _cols(a: V, lo: int, hi: int) -> V:
    """Columns lo:hi of the last axis."""
    return F.slice_axes(a, [(0, d, 1) for d in a.shape[:-1]] + [(lo, hi, 1)])


def _gates(a: V, hidden: int, count: int) -> list[V]:
    """The `count` gate blocks of width `hidden` along the last axis, in order."""
    return [_cols(a, k * hidden, (k + 1) * hidden) for k in range(count)]


def _hh(h: V | None, w_hh: V, b_hh: V) -> V:
    """W_hh h + b_hh; a zero state (None) contributes the bias alone."""
    return b_hh if h is None else F.matmul(h, F.transpose(w_hh)) + b_hh


def gru_step(xi: V, h: V | None, w_hh: V, b_hh: V, hidden: int) -> V:
    """One GRU update from xi = W_ih x + b_ih (batch, 3H) and state h (None: zeros)."""
    ir, iz, in_ = _gates(xi, hidden, 3)
    hr, hz, hn = _gates(_hh(h, w_hh, b_hh), hidden, 3)
    r = F.sigmoid(ir + hr)
    z = F.sigmoid(iz + hz)
    n = F.tanh(in_ + r * hn)
    return n - z * n if h is None else n - z * n + z * h


def lstm_step(
    xi: V, h: V | None, c: V | None, w_hh: V, b_hh: V, hidden: int
) -> tuple[V, V]:
    """One LSTM update from xi = W_ih x + b_ih (batch, 4H) and state (h, c) (None: zeros)."""
    ii, if_, ig, io = _gates(xi, hidden, 4)
    hi, hf, hg, ho = _gates(_hh(h, w_hh, b_hh), hidden, 4)
    i = F.sigmoid(ii + hi)
    g = F.tanh(ig + hg)
    o = F.sigmoid(io + ho)
    c_new = i * g if c is None else F.sigmoid(if_ + hf) * c + i * g
    return o * F.tanh(c_new), c_new


def _guard(layer: Module, scope: Scope[V], fn: Callable[[], V]) -> V:
    """Run `fn`, naming the layer in a refusal of σ/tanh by the field."""
    try:
        return fn()
    except UnsupportedOperation as e:
        raise UnsupportedOperation(
            e.op, e.field,
            f"{scope.where(layer)} needs sigmoid and tanh, which this field cannot evaluate "
            "(use float, float32, ieee32exec or interval)",
        ) from None


def _check_sizes(where: str, inp: object, hidden: object) -> None:
    positive_int(where, "input_size", inp)
    positive_int(where, "hidden_size", hidden)


@dataclass(frozen=True, slots=True, repr=False)
class GRUCell(Layer[Vec[Any], Vec[M]], Generic[N, M]):
    """One GRU step (PyTorch's nn.GRUCell): [x, h] (batch, I + H) -> h' (batch, H).
    Parameters "weight_ih" (3H, I), "weight_hh" (3H, H), "bias_ih" (3H,), "bias_hh" (3H,),
    gates in the order r, z, n."""

    input_size: N
    hidden_size: M

    def __post_init__(self) -> None:
        where = call_text("gru_cell", input_size=self.input_size, hidden_size=self.hidden_size)
        _check_sizes(where, self.input_size, self.hidden_size)

    def describe(self) -> str:
        return f"gru_cell {self.input_size}->{self.hidden_size}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return _specs(3, self.input_size, self.hidden_size, "")

    def forward(self, x: V, scope: Scope[V]) -> V:
        i, h = self.input_size, self.hidden_size
        if x.ndim < 1 or x.shape[-1] != i + h:
            raise ShapeError(
                f"{scope.where(self)}: expected input [x, h] of shape (..., {i} + {h}), "
                f"got {x.shape}"
            )
        xi = F.matmul(_cols(x, 0, i), F.transpose(scope.param("weight_ih"))) + scope.param(
            "bias_ih")
        state = _cols(x, i, i + h)
        return _guard(self, scope, lambda: gru_step(
            xi, state, scope.param("weight_hh"), scope.param("bias_hh"), h))

    def input_width(self) -> int | None:
        return self.input_size + self.hidden_size

    def output_width(self, width: int | None) -> int | None:
        return self.hidden_size

    def __repr__(self) -> str:
        return f"gru_cell({self.input_size}, {self.hidden_size})"


@dataclass(frozen=True, slots=True, repr=False)
class LSTMCell(Layer[Vec[Any], Vec[Any]], Generic[N, M]):
    """One LSTM step (PyTorch's nn.LSTMCell): [x, h, c] (batch, I + 2H) -> [h', c']
    (batch, 2H). Parameters "weight_ih" (4H, I), "weight_hh" (4H, H), "bias_ih" (4H,),
    "bias_hh" (4H,), gates in the order i, f, g, o."""

    input_size: N
    hidden_size: M

    def __post_init__(self) -> None:
        where = call_text("lstm_cell", input_size=self.input_size, hidden_size=self.hidden_size)
        _check_sizes(where, self.input_size, self.hidden_size)

    def describe(self) -> str:
        return f"lstm_cell {self.input_size}->{self.hidden_size}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return _specs(4, self.input_size, self.hidden_size, "")

    def forward(self, x: V, scope: Scope[V]) -> V:
        i, h = self.input_size, self.hidden_size
        if x.ndim < 1 or x.shape[-1] != i + 2 * h:
            raise ShapeError(
                f"{scope.where(self)}: expected input [x, h, c] of shape (..., {i} + 2*{h}), "
                f"got {x.shape}"
            )
        xi = F.matmul(_cols(x, 0, i), F.transpose(scope.param("weight_ih"))) + scope.param(
            "bias_ih")

        def step() -> V:
            hn, cn = lstm_step(xi, _cols(x, i, i + h), _cols(x, i + h, i + 2 * h),
                               scope.param("weight_hh"), scope.param("bias_hh"), h)
            return F.concat([hn, cn], axis=-1)

        return _guard(self, scope, step)

    def input_width(self) -> int | None:
        return self.input_size + 2 * self.hidden_size

    def output_width(self, width: int | None) -> int | None:
        return 2 * self.hidden_size

    def __repr__(self) -> str:
        return f"lstm_cell({self.input_size}, {self.hidden_size})"


def _unroll(
    layer: GRU[Any, Any] | LSTM[Any, Any], x: V, scope: Scope[V]
) -> V:
    """Run the cell over the time axis of (batch, time, I) from a zero state; all h."""
    i, h = layer.input_size, layer.hidden_size
    if x.ndim != 3 or x.shape[-1] != i:
        raise ShapeError(
            f"{scope.where(layer)}: expected input (batch, time, {i}), got {x.shape}")
    batch, steps = x.shape[0], x.shape[1]
    if steps == 0:
        raise ShapeError(f"{scope.where(layer)}: the sequence has no time steps, got {x.shape}")
    # The input projection of every time step at once: one matmul instead of `steps`.
    xi_all = F.matmul(x, F.transpose(scope.param("weight_ih_l0"))) + scope.param("bias_ih_l0")
    w_hh, b_hh = scope.param("weight_hh_l0"), scope.param("bias_hh_l0")
    width = xi_all.shape[-1]

    def run() -> V:
        hs: list[V] = []
        state: V | None = None
        cell: V | None = None
        for t in range(steps):
            xi = F.reshape(
                F.slice_axes(xi_all, [(0, batch, 1), (t, t + 1, 1), (0, width, 1)]),
                (batch, width))
            if isinstance(layer, GRU):
                state = gru_step(xi, state, w_hh, b_hh, h)
            else:
                state, cell = lstm_step(xi, state, cell, w_hh, b_hh, h)
            hs.append(F.reshape(state, (batch, 1, h)))
        return F.concat(hs, axis=1)

    return _guard(layer, scope, run)


@dataclass(frozen=True, slots=True, repr=False)
class GRU(Layer[Mat[Any, N], Mat[Any, M]], Generic[N, M]):
    """A one-layer GRU over (batch, time, I) from a zero state (PyTorch's
    nn.GRU(I, H, batch_first=True)), returning every hidden state (batch, time, H).
    Parameters "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"."""

    input_size: N
    hidden_size: M

    def __post_init__(self) -> None:
        where = call_text("gru", input_size=self.input_size, hidden_size=self.hidden_size)
        _check_sizes(where, self.input_size, self.hidden_size)

    def describe(self) -> str:
        return f"gru {self.input_size}->{self.hidden_size}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return _specs(3, self.input_size, self.hidden_size, "_l0")

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _unroll(self, x, scope)

    def input_width(self) -> int | None:
        return self.input_size

    def output_width(self, width: int | None) -> int | None:
        return self.hidden_size

    def __repr__(self) -> str:
        return f"gru({self.input_size}, {self.hidden_size})"


@dataclass(frozen=True, slots=True, repr=False)
class LSTM(Layer[Mat[Any, N], Mat[Any, M]], Generic[N, M]):
    """A one-layer LSTM over (batch, time, I) from a zero state (PyTorch's
    nn.LSTM(I, H, batch_first=True)), returning every hidden state (batch, time, H).
    Parameters "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"."""

    input_size: N
    hidden_size: M

    def __post_init__(self) -> None:
        where = call_text("lstm", input_size=self.input_size, hidden_size=self.hidden_size)
        _check_sizes(where, self.input_size, self.hidden_size)

    def describe(self) -> str:
        return f"lstm {self.input_size}->{self.hidden_size}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return _specs(4, self.input_size, self.hidden_size, "_l0")

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _unroll(self, x, scope)

    def input_width(self) -> int | None:
        return self.input_size

    def output_width(self, width: int | None) -> int | None:
        return self.hidden_size

    def __repr__(self) -> str:
        return f"lstm({self.input_size}, {self.hidden_size})"


def gru_cell(input_size: N, hidden_size: M) -> GRUCell[N, M]:
    """One GRU step as PyTorch's nn.GRUCell(input_size, hidden_size): input [x, h]
    concatenated on the last axis (..., I + H), output h' (..., H). Non-positive sizes
    raise ValueError."""
    return GRUCell(input_size, hidden_size)


def lstm_cell(input_size: N, hidden_size: M) -> LSTMCell[N, M]:
    """One LSTM step as PyTorch's nn.LSTMCell(input_size, hidden_size): input [x, h, c]
    (..., I + 2H), output [h', c'] (..., 2H). Non-positive sizes raise ValueError."""
    return LSTMCell(input_size, hidden_size)


def gru(input_size: N, hidden_size: M) -> GRU[N, M]:
    """A GRU unrolled over (batch, time, input_size) from a zero state, returning all
    hidden states (batch, time, hidden_size) (PyTorch's nn.GRU, batch_first=True)."""
    return GRU(input_size, hidden_size)


def lstm(input_size: N, hidden_size: M) -> LSTM[N, M]:
    """An LSTM unrolled over (batch, time, input_size) from a zero state, returning all
    hidden states (batch, time, hidden_size) (PyTorch's nn.LSTM, batch_first=True)."""
    return LSTM(input_size, hidden_size)
