"""transformer_encoder_block agrees with PyTorch's nn.TransformerEncoderLayer (dropout 0,
batch_first) in float64, post-norm and pre-norm, with and without a causal mask.

(Kept next to the recurrent tests: the sequence-model layers of issue [8].)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.errors import ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is needed for the reference layer")

# Same formulas in binary64 with different summation orders (softmax, layer norm's mean
# and variance, matmuls of width <= 16): a few ulps of O(1) values. 1e-9 is far below
# what a wrong residual, norm placement or mask would cause (O(0.1)).
TOL = 1e-9

# ours -> PyTorch's names; only the output projection is spelled differently.
NAMES = {
    "self_attn.in_proj_weight": "self_attn.in_proj_weight",
    "self_attn.in_proj_bias": "self_attn.in_proj_bias",
    "self_attn.out_proj_weight": "self_attn.out_proj.weight",
    "self_attn.out_proj_bias": "self_attn.out_proj.bias",
    **{f"{m}.{p}": f"{m}.{p}" for m in ("linear1", "linear2", "norm1", "norm2")
       for p in ("weight", "bias")},
}


def _reference(net: nn.Built[Any, Any], d: int, heads: int, ff: int, norm_first: bool) -> Any:
    layer = torch.nn.TransformerEncoderLayer(
        d, heads, ff, dropout=0.0, batch_first=True, norm_first=norm_first).double()
    state = {theirs: torch.from_numpy(net.params[ours].numpy().astype(float))
             for ours, theirs in NAMES.items()}
    layer.load_state_dict(state, strict=True)
    return layer


@settings(deadline=None, max_examples=10)
@given(
    st.sampled_from([(4, 1), (4, 2), (6, 3), (8, 2)]), st.integers(1, 8), st.integers(1, 2),
    st.integers(1, 5), st.booleans(), st.booleans(), st.integers(0, 2**16),
)
def test_block_matches_torch(
    dh: tuple[int, int], ff: int, batch: int, length: int, causal: bool, norm_first: bool,
    seed: int,
) -> None:
    d, heads = dh
    net = nn.build(nn.transformer_encoder_block(d, heads, ff, causal, norm_first),
                   seed=seed, dtype="float")
    # PyTorch initialises norms to 1/0 and attention biases to 0: randomise them too, so
    # a swapped weight/bias or a dropped bias shows.
    rng = np.random.default_rng(seed)
    params = {k: tl.tensor(rng.normal(size=v.shape)) for k, v in net.params.items()}
    net = net.with_state(params)
    x = rng.normal(size=(batch, length, d))
    ours = net(tl.tensor(x)).numpy().astype(float)
    ref = _reference(net, d, heads, ff, norm_first)
    ref.train()  # dropout is 0; train mode avoids the inference fast path's other kernels
    mask = torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=torch.float64)
    with torch.no_grad():
        theirs = ref(torch.from_numpy(x), src_mask=mask if causal else None).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)


def test_names_follow_pytorch_and_errors_name_the_block() -> None:
    net = nn.build(nn.transformer_encoder_block(4, 2, 8), seed=0)
    assert list(net.params) == list(NAMES)
    with pytest.raises(ShapeError, match=r"transformer_encoder_block d=4.*\(batch, length, 4\)"):
        net(tl.tensor(np.ones((1, 3, 5))))
    with pytest.raises(ValueError, match="heads must divide d_model"):
        nn.transformer_encoder_block(6, 4, 8)
    with pytest.raises(ValueError, match="ff must be a positive int"):
        nn.transformer_encoder_block(4, 2, 0)
