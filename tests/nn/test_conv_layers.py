"""Image and sequence layers: building, parameter shapes and init bounds, agreement with
PyTorch's modules given the same parameters, batch-norm buffers, and errors naming the layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from torchlean.spec import ShapeError, float64, nn
from torchlean.spec.tensor import Tensor

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None  # type: ignore[assignment]

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
TOL = 1e-12  # float64, differences only in summation order


def t64(a: Any) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64), float64)


def cnn() -> Any:
    return nn.sequential(
        nn.conv2d(1, 4, 3, padding=1), nn.batch_norm2d(4), nn.relu(), nn.max_pool2d(2),
        nn.conv2d(4, 6, (2, 3), groups=2), nn.avg_pool2d(2, 1), nn.global_avg_pool(),
        nn.linear(6, 3),
    )


def test_cnn_builds_with_pytorch_shapes_and_init_bounds() -> None:
    net = nn.build(cnn(), seed=0)
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes["0.weight"] == (4, 1, 3, 3) and shapes["4.weight"] == (6, 2, 2, 3)
    assert np.abs(net.params["0.weight"].numpy()).max() <= 1 / 3  # 1/sqrt(1*3*3)
    assert np.abs(net.params["4.bias"].numpy()).max() <= 1 / np.sqrt(6)
    y, _ = net.forward(net.params, t64(np.ones((2, 1, 8, 8))), buffers=net.buffers)
    assert y.shape == (2, 3)


def test_too_small_input_names_the_layer() -> None:
    net = nn.build(cnn(), seed=0)
    with pytest.raises(ShapeError, match="layer 4 \\(conv2d 4->6 2x3\\)"):
        net.forward(net.params, t64(np.ones((1, 1, 2, 2))), buffers=net.buffers)
    with pytest.raises(ShapeError, match="layer 0 \\(conv2d 1->4 3x3\\).*\\(N, 1, H, W\\)"):
        net.forward(net.params, t64(np.ones((1, 2, 8, 8))), buffers=net.buffers)
    with pytest.raises(ValueError, match="conv2d.*groups=3 must divide"):
        nn.conv2d(4, 6, 3, groups=3)


@needs_torch
def test_layers_match_torch_modules() -> None:
    tnn = torch.nn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6))
    conv = tnn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    net = nn.build(nn.conv2d(4, 6, 3, stride=2, padding=1, groups=2), seed=0)
    params = {"weight": t64(conv.weight.detach().numpy()), "bias": t64(conv.bias.detach().numpy())}
    y, _ = net.forward(params, t64(x))
    np.testing.assert_allclose(y.numpy(), conv(torch.tensor(x)).detach().numpy(), atol=TOL)

    bn = tnn.BatchNorm2d(4).double()
    built = nn.build(nn.batch_norm2d(4), seed=0)
    out, bufs = built.forward(built.params, t64(x), mode="train")
    ref = bn(torch.tensor(x)).detach().numpy()
    # a division by sqrt(var + eps) vs PyTorch's multiply by rsqrt: a few ulps apart
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(bufs["running_var"].numpy(), bn.running_var.numpy(), atol=TOL)
    np.testing.assert_allclose(bufs["running_mean"].numpy(), bn.running_mean.numpy(), atol=TOL)

    mha = tnn.MultiheadAttention(8, 2, batch_first=True).double()
    seq = rng.standard_normal((2, 5, 8))
    att = nn.build(nn.multi_head_attention(8, 2, causal=True), seed=0)
    p = {
        "in_proj_weight": t64(mha.in_proj_weight.detach().numpy()),
        "in_proj_bias": t64(mha.in_proj_bias.detach().numpy()),
        "out_proj_weight": t64(mha.out_proj.weight.detach().numpy()),
        "out_proj_bias": t64(mha.out_proj.bias.detach().numpy()),
    }
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    ts = torch.tensor(seq)
    ref_att = mha(ts, ts, ts, attn_mask=mask, need_weights=False)[0].detach().numpy()
    np.testing.assert_allclose(att.forward(p, t64(seq))[0].numpy(), ref_att, atol=TOL)

    emb = nn.build(nn.embedding(5, 3), seed=0)
    table = emb.params["weight"].numpy()
    assert np.abs(table).max() <= np.sqrt(3)
    ids = np.array([[4.0, 0.0, 4.0]])
    np.testing.assert_array_equal(emb.forward(emb.params, t64(ids))[0].numpy(),
                                  table[[[4, 0, 4]]])

