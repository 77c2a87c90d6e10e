"""load_state_dict: PyTorch state_dicts saved as .npz load into the equivalent TorchLean
models (linear, conv2d, batch_norm2d, gru, multi-head attention with its name map), whose
outputs then agree with PyTorch's; bad files and mismatches raise errors naming them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from torchlean.spec import nn
from torchlean.spec.errors import DataFormatError, ShapeError
from torchlean.spec.tensor import tensor

torch = pytest.importorskip("torch", reason="torch is needed to produce the state_dicts")

# Both sides compute in binary64 (torch in float64, TorchLean in "float"), by different
# summation orders over at most a few hundred terms of size O(1): 1e-10 is far above
# their rounding differences (~1e-14) and far below any weight-mapping error (~1e-1).
TOL = 1e-10

MHA_NAMES = {"out_proj_weight": "out_proj.weight", "out_proj_bias": "out_proj.bias"}


def save(module: Any, path: Path) -> Path:
    np.savez(path, **{k: v.detach().numpy() for k, v in module.state_dict().items()})
    return path


def run_ours(built: Any, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = built(tensor(x)).numpy().astype(np.float64)
    return out


def test_linear_conv_batchnorm_sequential_agrees_with_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(3 * 5 * 5, 4),
    ).double()
    # One train-mode pass so the running statistics are not the defaults 0 and 1.
    theirs.train()(torch.randn(6, 2, 5, 5, dtype=torch.float64))
    theirs.eval()
    ours = nn.build(nn.conv2d(2, 3, 3, padding=1) >> nn.batch_norm2d(3) >> nn.relu()
                    >> nn.flatten() >> nn.linear(3 * 5 * 5, 4), seed=1)
    loaded = nn.load_state_dict(ours, save(theirs, tmp_path / "cnn.npz"))
    assert np.array_equal(loaded.buffers["1.running_var"].numpy().astype(float),
                          theirs[1].running_var.numpy())
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(run_ours(loaded, x), expected, rtol=0, atol=TOL)
    # The seed-1 initialisation alone does not agree: the check sees the loaded weights.
    assert np.abs(run_ours(ours, x) - expected).max() > 1e-3


def test_gru_agrees_with_torch(tmp_path: Path) -> None:
    torch.manual_seed(1)
    theirs = torch.nn.GRU(3, 5, batch_first=True).double()
    loaded = nn.load_state_dict(nn.build(nn.gru(3, 5)), save(theirs, tmp_path / "gru.npz"))
    x = np.random.default_rng(1).standard_normal((2, 4, 3))
    expected = theirs(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(run_ours(loaded, x), expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_name_map_agrees_with_torch(tmp_path: Path, causal: bool) -> None:
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():  # PyTorch's biases start at 0; make them count
        for p in (theirs.in_proj_bias, theirs.out_proj.bias):
            p.uniform_(-1, 1)
    path = save(theirs, tmp_path / "mha.npz")
    ours = nn.build(nn.multi_head_attention(8, 2, causal=causal))
    loaded = nn.load_state_dict(ours, path, MHA_NAMES)
    x = np.random.default_rng(2).standard_normal((2, 5, 8))
    xt = torch.from_numpy(x)
    # PyTorch's boolean mask marks the positions that may NOT be attended to.
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1) if causal else None
    expected = theirs(xt, xt, xt, attn_mask=mask, need_weights=False)[0].detach().numpy()
    np.testing.assert_allclose(run_ours(loaded, x), expected, rtol=0, atol=TOL)


def test_float32_state_dict_loads_exactly_into_float64(tmp_path: Path) -> None:
    theirs = torch.nn.Linear(3, 2)  # float32
    loaded = nn.load_state_dict(nn.build(nn.linear(3, 2)), save(theirs, tmp_path / "l.npz"))
    assert np.array_equal(loaded.params["weight"].numpy().astype(np.float64),
                          theirs.weight.detach().numpy().astype(np.float64))


def test_loads_into_other_fields() -> None:
    arrays = {"weight": np.array([[0.5, -0.25]]), "bias": np.array([0.125])}
    for dtype in ("float32", "exact"):
        loaded = nn.load_state_dict(nn.build(nn.linear(2, 1), dtype=dtype), arrays)
        assert loaded.field.name == dtype
        assert float(loaded(tensor([[2.0, 4.0]], dtype=dtype)).item()) == 0.125


def test_missing_unused_and_mismatched_entries_are_named() -> None:
    built = nn.build(nn.linear(2, 3) >> nn.relu() >> nn.linear(3, 1))
    good = {k: v.numpy().astype(np.float64) for k, v in built.params.items()}
    with pytest.raises(KeyError, match=r"lacks '2\.bias'"):
        nn.load_state_dict(built, {k: v for k, v in good.items() if k != "2.bias"})
    with pytest.raises(KeyError, match=r"does not use: \['extra'\]"):
        nn.load_state_dict(built, {**good, "extra": np.zeros(1)})
    with pytest.raises(KeyError, match=r"lacks '0\.weight' \(as 'fc\.weight'\)"):
        nn.load_state_dict(built, good, {"0.weight": "fc.weight"})
    with pytest.raises(KeyError, match="no parameter or buffer"):
        nn.load_state_dict(built, good, {"9.weight": "x"})
    with pytest.raises(ShapeError, match=r"'0\.weight': model \(3, 2\), state_dict \(2, 3\)"):
        nn.load_state_dict(built, {**good, "0.weight": good["0.weight"].T})
    with pytest.raises(TypeError, match=r"'2\.bias' \(int64\)"):
        nn.load_state_dict(built, {**good, "2.bias": np.array([1], dtype=np.int64)})
    # The counter of PyTorch's batch norm is skipped, not reported as unused.
    nn.load_state_dict(built, {**good, "1.num_batches_tracked": np.array(3)})


def test_files_needing_pickle_or_not_archives_are_refused(tmp_path: Path) -> None:
    objects = tmp_path / "objects.npz"
    np.savez(objects, weight=np.array([object()], dtype=object))
    with pytest.raises(DataFormatError, match="pickle"):
        nn.read_npz(objects)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(2))
    with pytest.raises(DataFormatError, match="not an .npz archive"):
        nn.read_npz(single)
    text = tmp_path / "text.npz"
    text.write_text("not numpy")
    with pytest.raises(DataFormatError, match="text.npz"):
        nn.read_npz(text)
