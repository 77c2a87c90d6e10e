"""torchlean.spec.nn: model structure as pure descriptions, initialisation, and losses.

    model = nn.sequential(nn.linear(2, 8), nn.relu(), nn.linear(8, 1))   # or with >>
    net = nn.build(model, seed=0, dtype="float")      # parameters: "0.weight", "0.bias", ...
    y = net.apply(net.params, x)                      # a pure function of the parameters
    loss = nn.mse(y, target)

A model's static type is `Layer[In, Out]` over shape types (`Vec[N]` = (..., N), `Mat`,
`Chw`, `Scalar`), so mypy rejects layers whose shapes do not meet, an input of the wrong
shape type passed to `apply`, and a loss on the wrong output shape type. Layers compute
only through the op table, so one definition runs on every field and every Value kind.
Imports: numpy and torchlean.spec only.
"""

from __future__ import annotations

from .activations import (
    Activation,
    LeakyReLU,
    Softmax,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    silu,
    softmax,
    tanh,
)
from .attention import Embedding, MultiHeadAttention, embedding, multi_head_attention
from .build import Built, build, check_input_shape, initial_values
from .compose import Residual, SameResidual, SameSequential, Sequential, residual, sequential
from .context import ConstantHook, Context, Mode, host_constant
from .conv import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    GlobalAvgPool,
    MaxPool2d,
    avg_pool2d,
    batch_norm2d,
    conv2d,
    global_avg_pool,
    max_pool2d,
)
from .dropout import Dropout, dropout, dropout_mask
from .forward import forward, state_specs
from .interop import load_state_dict, read_npz
from .layer import Layer, LayerLike, Module, ParamSpec, SameShape, Scope
from .linear import Linear, linear
from .losses import (
    Reduction,
    bce_with_logits,
    cross_entropy,
    huber,
    label_targets,
    mae,
    mse,
    one_hot_cross_entropy,
)
from .norms import BatchNorm, LayerNorm, batch_norm, layer_norm
from .recurrent import GRU, LSTM, GRUCell, LSTMCell, gru, gru_cell, lstm, lstm_cell
from .reshape import Flatten, Reshape, flatten, reshape
from .safetensors import read_safetensors
from .shapetypes import Chw, Mat, Scalar, Vec
from .transformer import TransformerEncoderBlock, transformer_encoder_block
from .typed import shaped, untyped

__all__ = [
    # layers
    "linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "softmax",
    "log_softmax", "flatten", "reshape", "dropout", "layer_norm", "batch_norm", "residual",
    "sequential", "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool", "batch_norm2d",
    "embedding", "multi_head_attention", "gru_cell", "lstm_cell", "gru", "lstm",
    "transformer_encoder_block",
    # building and running
    "build", "check_input_shape", "Built", "forward", "Context", "Mode", "ConstantHook",
    "host_constant",
    "dropout_mask", "state_specs", "initial_values",
    # weights from PyTorch
    "load_state_dict", "read_npz", "read_safetensors",
    # losses
    "mse", "mae", "huber", "cross_entropy", "one_hot_cross_entropy", "bce_with_logits",
    "label_targets",
    "Reduction",
    # static shape types
    "Layer", "LayerLike", "SameShape", "Vec", "Mat", "Chw", "Scalar", "shaped", "untyped",
    # layer classes
    "Module", "ParamSpec", "Scope", "Linear", "Activation", "LeakyReLU", "Softmax", "Dropout",
    "LayerNorm", "BatchNorm", "Flatten", "Reshape", "Sequential", "SameSequential",
    "Residual", "SameResidual", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool",
    "BatchNorm2d", "Embedding", "MultiHeadAttention", "GRUCell", "LSTMCell", "GRU", "LSTM",
    "TransformerEncoderBlock",
]
