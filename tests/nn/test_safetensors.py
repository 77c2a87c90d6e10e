"""read_safetensors: files written by a test-local writer (built from the format's
description) and by the official `safetensors` package read back bit for bit; BF16 widens
exactly as torch's float() does; a PyTorch model saved as .safetensors loads into the
equivalent TorchLean model with the same outputs; every broken file raises DataFormatError
naming the file and the tensor or header field at fault."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec import nn
from torchlean.spec.errors import DataFormatError
from torchlean.spec.tensor import tensor

Arrays = dict[str, np.ndarray[Any, Any]]
# name -> (format dtype, shape, raw little-endian bytes)
Raw = dict[str, tuple[str, tuple[int, ...], bytes]]

# Format dtype -> the little-endian numpy dtype of its bytes and the dtype read back.
LAYOUT = {
    "F64": ("<f8", "float64"), "F32": ("<f4", "float32"), "F16": ("<f2", "float16"),
    "BF16": ("<u2", "float32"), "I64": ("<i8", "int64"), "I32": ("<i4", "int32"),
    "I16": ("<i2", "int16"), "I8": ("i1", "int8"), "U8": ("u1", "uint8"),
    "U16": ("<u2", "uint16"), "U32": ("<u4", "uint32"), "U64": ("<u8", "uint64"),
    "BOOL": ("u1", "bool"),
}


def write(tensors: Raw, metadata: dict[str, str] | None = None,
          order: list[str] | None = None, pad_to: int = 8) -> bytes:
    """A safetensors file: the header lists the tensors in their order, while their bytes
    are laid out in `order` (default: the same)."""
    at, chunks, offsets = 0, [], {}
    for name in order or list(tensors):
        data = tensors[name][2]
        offsets[name] = [at, at + len(data)]
        at += len(data)
        chunks.append(data)
    header: dict[str, Any] = {} if metadata is None else {"__metadata__": metadata}
    for name, (dtype, shape, _) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": offsets[name]}
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % pad_to)  # the format allows space padding
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def expected_array(dtype: str, shape: tuple[int, ...], data: bytes) -> np.ndarray[Any, Any]:
    stored, _ = LAYOUT[dtype]
    if dtype == "BF16":  # a bfloat16 is the high two bytes of a little-endian binary32
        widened = b"".join(b"\x00\x00" + data[i:i + 2] for i in range(0, len(data), 2))
        return np.frombuffer(widened, "<f4").astype(np.float32).reshape(shape)
    if dtype == "BOOL":
        return np.frombuffer(data, "u1").astype(bool).reshape(shape)
    return np.frombuffer(data, stored).reshape(shape)


def assert_same_bits(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> None:
    """Same dtype, shape and bits (so NaN payloads and -0.0 count)."""
    assert got.dtype == np.dtype(want.dtype).newbyteorder("=")
    assert got.shape == want.shape
    if got.dtype.kind == "f":
        bits = f"<u{got.dtype.itemsize}"
        assert np.array_equal(got.view(got.dtype.newbyteorder("<")).view(bits),
                              want.astype(got.dtype.newbyteorder("<")).view(bits))
    else:
        assert np.array_equal(got, want)


def assert_owned(arrays: Arrays) -> None:
    for a in arrays.values():
        assert a.flags.owndata and a.flags.writeable


names = st.text(st.characters(exclude_categories=["Cs"]), max_size=6).filter(
    lambda s: s != "__metadata__")
shapes = st.lists(st.integers(0, 4), max_size=3).map(tuple)


@st.composite
def raw_tensor(draw: st.DrawFn) -> tuple[str, tuple[int, ...], bytes]:
    dtype = draw(st.sampled_from(sorted(LAYOUT)))
    shape = draw(shapes)
    count = int(np.prod(shape))
    if dtype == "BOOL":
        data = bytes(draw(st.lists(st.integers(0, 1), min_size=count, max_size=count)))
    else:
        size = count * np.dtype(LAYOUT[dtype][0]).itemsize
        data = draw(st.binary(min_size=size, max_size=size))
    return dtype, shape, data


@settings(deadline=None, max_examples=60)
@given(tensors=st.dictionaries(names, raw_tensor(), max_size=5),
       metadata=st.none() | st.dictionaries(names, names, max_size=2),
       data=st.data())
def test_local_writer_round_trip_is_bit_exact(tensors: Raw, metadata: dict[str, str] | None,
                                              data: st.DataObject, tmp_path_factory: Any) -> None:
    order = data.draw(st.permutations(list(tensors)))  # the buffer in another order
    path = tmp_path_factory.mktemp("st") / "w.safetensors"
    path.write_bytes(write(tensors, metadata, order))
    got = nn.read_safetensors(path)
    assert set(got) == set(tensors)
    for name, (dtype, shape, raw) in tensors.items():
        assert_same_bits(got[name], expected_array(dtype, shape, raw))
    assert_owned(got)


numpy_dtypes = st.sampled_from(["<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "i1", "u1",
                                "<u2", "<u4", "<u8", "?"])


@st.composite
def numpy_array(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    dtype = np.dtype(draw(numpy_dtypes))
    shape = draw(shapes)
    count = int(np.prod(shape))
    if dtype.kind == "b":
        return np.array(draw(st.lists(st.booleans(), min_size=count, max_size=count)),
                        dtype=bool).reshape(shape)
    raw = draw(st.binary(min_size=count * dtype.itemsize, max_size=count * dtype.itemsize))
    return np.frombuffer(raw, dtype).reshape(shape).copy()


@settings(deadline=None, max_examples=40)
@given(arrays=st.dictionaries(names, numpy_array(), max_size=5))
def test_official_numpy_writer_round_trip_is_bit_exact(arrays: Arrays,
                                                       tmp_path_factory: Any) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path_factory.mktemp("st") / "o.safetensors"
    st_numpy.save_file(arrays, str(path), metadata={"format": "np"})
    got = nn.read_safetensors(path)
    assert set(got) == set(arrays)
    for name, want in arrays.items():
        assert_same_bits(got[name], want)
    assert_owned(got)


def test_bf16_widens_as_torch_does(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"),
                            1e-40, -3e38, 1 / 3], dtype=torch.float32)
    values = torch.cat([torch.randn(200) * 1e3, special]).to(torch.bfloat16).reshape(8, 26)
    path = tmp_path / "bf16.safetensors"
    st_torch.save_file({"w": values}, str(path))
    got = nn.read_safetensors(path)["w"]
    assert_same_bits(got, values.float().numpy())


# Both sides compute in binary64 (torch in float64, TorchLean in "float"), by different
# summation orders over at most a few hundred terms of size O(1): 1e-10 is far above
# their rounding differences (~1e-14) and far below any weight-mapping error (~1e-1).
TOL = 1e-10


def test_torch_model_saved_as_safetensors_agrees(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(3)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(3 * 5 * 5, 4),
    ).double()
    theirs.train()(torch.randn(6, 2, 5, 5, dtype=torch.float64))  # non-default statistics
    theirs.eval()
    path = tmp_path / "cnn.safetensors"
    # The state_dict includes batch norm's int64 num_batches_tracked, read as I64 and skipped.
    st_torch.save_file(theirs.state_dict(), str(path))
    ours = nn.build(nn.conv2d(2, 3, 3, padding=1) >> nn.batch_norm2d(3) >> nn.relu()
                    >> nn.flatten() >> nn.linear(3 * 5 * 5, 4), seed=1)
    loaded = nn.load_state_dict(ours, path)
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 5))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    got = loaded(tensor(x)).numpy().astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    # The seed-1 initialisation alone does not agree: the check sees the loaded weights.
    assert np.abs(ours(tensor(x)).numpy().astype(np.float64) - expected).max() > 1e-3


def test_bf16_state_dict_loads_exactly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    theirs = torch.nn.Linear(4, 3).to(torch.bfloat16)
    path = tmp_path / "l.safetensors"
    st_torch.save_file(theirs.state_dict(), str(path))
    loaded = nn.load_state_dict(nn.build(nn.linear(4, 3)), path)
    # bfloat16 -> float32 -> float64 is exact, so the loaded weights equal torch's.
    assert np.array_equal(loaded.params["weight"].numpy().astype(np.float64),
                          theirs.weight.detach().double().numpy())


def test_integer_parameters_are_refused_by_load_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "int.safetensors"
    path.write_bytes(write({"weight": ("I32", (1, 2), bytes(8)), "bias": ("F32", (1,), bytes(4))}))
    with pytest.raises(TypeError, match=r"'weight' \(int32\)"):
        nn.load_state_dict(nn.build(nn.linear(2, 1)), path)


def test_other_suffixes_are_refused_and_npz_still_loads(tmp_path: Path) -> None:
    weight, bias = np.array([[0.5, -0.25]]), np.array([0.125])
    built = nn.build(nn.linear(2, 1))
    pt = tmp_path / "model.pt"
    np.savez(tmp_path / "model.npz", weight=weight, bias=bias)
    (tmp_path / "model.npz").rename(pt)
    with pytest.raises(DataFormatError, match=r"model\.pt: .*'\.pt'.*\.npz, \.safetensors"):
        nn.load_state_dict(built, pt)
    np.savez(tmp_path / "w.npz", weight=weight, bias=bias)
    assert nn.load_state_dict(built, tmp_path / "w.npz")(tensor([[2.0, 4.0]])).item() == 0.125


# Corruptions of one valid file ------------------------------------------------------------

GOOD: Raw = {"weight": ("F32", (2, 3), bytes(range(24))),
             "bias": ("F32", (3,), bytes(range(24, 36)))}
META = {"format": "pt"}


def header_of(data: bytes) -> tuple[dict[str, Any], bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def with_header(header: bytes | str, buffer: bytes) -> bytes:
    raw = header.encode("utf-8") if isinstance(header, str) else header
    return struct.pack("<Q", len(raw)) + raw + buffer


def edit(change: Callable[[dict[str, Any]], None], extra: bytes = b"") -> Callable[[], bytes]:
    """The good file with its header changed by `change` (and `extra` bytes appended)."""
    def make() -> bytes:
        header, buffer = header_of(write(GOOD, META))
        change(header)
        return with_header(json.dumps(header), buffer + extra)
    return make


def set_field(tensor_name: str, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(header: dict[str, Any]) -> None:
        header[tensor_name][field] = value
    return change


def raw_edit(change: Callable[[bytes], bytes]) -> Callable[[], bytes]:
    return lambda: change(write(GOOD, META))


def header_text(text: bytes) -> Callable[[], bytes]:
    return lambda: with_header(text, header_of(write(GOOD, META))[1])


def duplicate(_: None = None) -> bytes:
    header, buffer = header_of(write(GOOD, META))
    text = json.dumps(header)
    bias = json.dumps({"bias": header["bias"]})[1:-1]
    return with_header(text[:-1] + ", " + bias + "}", buffer)


BAD: list[tuple[str, Callable[[], bytes], str]] = [
    ("short file", lambda: b"\x05\x00\x00", r"3 bytes is shorter than the 8-byte"),
    ("header past end", raw_edit(lambda d: struct.pack("<Q", len(d)) + d[8:]),
     r"header length \d+ runs past the end of the file"),
    ("header absurd", raw_edit(lambda d: struct.pack("<Q", 2**63 + 5) + d[8:]),
     r"header length 9223372036854775813 exceeds the limit"),
    ("not utf-8", header_text(b'{"w\xff": 1}'), r"header is not valid UTF-8"),
    ("not json", header_text(b'{"weight": {"dtype": "F32",'), r"column 28: not valid JSON"),
    ("not an object", header_text(b'[1, 2, 3]'), r"header does not begin with '\{'"),
    ("trailing text", header_text(b'{} x'), r"header: line 1 column 4: not valid JSON: Extra data"),
    ("duplicate key", duplicate, r"header: line 1 column \d+: the key 'bias' appears twice"),
    ("entry not object", edit(lambda h: h.update(bias=[1, 2])),
     r"tensor 'bias': entry is list, not an object"),
    ("entry extra field", edit(set_field("bias", "order", "C")),
     r"tensor 'bias': entry has fields \['data_offsets', 'dtype', 'order', 'shape'\]"),
    ("unknown dtype", edit(set_field("bias", "dtype", "F128")),
     r"tensor 'bias': dtype 'F128' is not a safetensors dtype"),
    ("dtype not str", edit(set_field("bias", "dtype", 4)),
     r"tensor 'bias': dtype 4 is not a safetensors dtype"),
    ("unsupported dtype", edit(set_field("bias", "dtype", "F8_E4M3")),
     r"tensor 'bias': dtype F8_E4M3 is not supported"),
    ("shape not list", edit(set_field("weight", "shape", 6)),
     r"tensor 'weight': shape 6 is not a list of non-negative integers"),
    ("shape negative", edit(set_field("weight", "shape", [-2, -3])),
     r"tensor 'weight': shape \[-2, -3\] is not a list"),
    ("shape float", edit(set_field("weight", "shape", [2.0, 3])),
     r"tensor 'weight': shape \[2\.0, 3\] is not a list"),
    ("shape bool", edit(set_field("bias", "shape", [True, 3])),
     r"tensor 'bias': shape \[True, 3\] is not a list"),
    ("offsets three", edit(set_field("bias", "data_offsets", [24, 30, 36])),
     r"tensor 'bias': data_offsets \[24, 30, 36\] is not a pair"),
    ("offsets negative", edit(set_field("weight", "data_offsets", [-1, 23])),
     r"tensor 'weight': data_offsets \[-1, 23\] is not a pair of non-negative"),
    ("offsets float", edit(set_field("weight", "data_offsets", [0, 24.0])),
     r"tensor 'weight': data_offsets \[0, 24\.0\] is not a pair"),
    ("begin after end", edit(set_field("bias", "data_offsets", [36, 24])),
     r"tensor 'bias': data_offsets \[36, 24\] begin after they end"),
    ("byte count", edit(set_field("bias", "shape", [2])),
     r"tensor 'bias': data_offsets \[24, 36\] span 12 bytes, but F32 of shape \[2\] takes 8"),
    ("past buffer", edit(set_field("bias", "data_offsets", [28, 40])),
     r"tensor 'bias': data_offsets \[28, 40\] run past the end of the 36-byte buffer"),
    ("overlap", edit(set_field("bias", "data_offsets", [20, 32]), extra=bytes(4)),
     r"tensor 'bias': data_offsets \[20, 32\] overlap tensor 'weight', which ends at 24"),
    ("gap", edit(set_field("bias", "data_offsets", [28, 40]), extra=bytes(4)),
     r"tensor 'bias': bytes \[24, 28\) of the buffer before it belong to no tensor"),
    ("trailing bytes", edit(lambda h: None, extra=b"hidden"),
     r"bytes \[36, 42\) at the end of the buffer belong to no tensor"),
    ("metadata not object", edit(lambda h: h.update(__metadata__=["pt"])),
     r"'__metadata__' is list, not an object of strings"),
    ("metadata value", edit(lambda h: h.update(__metadata__={"epoch": 3})),
     r"'__metadata__' entry 'epoch' is int, not a string"),
    ("bool byte", lambda: write({"mask": ("BOOL", (3,), b"\x00\x01\x02")}),
     r"tensor 'mask': BOOL byte 2 is neither 0 nor 1"),
]


@pytest.mark.parametrize(("make", "message"), [(m, msg) for _, m, msg in BAD],
                         ids=[case for case, _, _ in BAD])
def test_broken_files_name_the_file_and_field(tmp_path: Path, make: Callable[[], bytes],
                                              message: str) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(make())
    with pytest.raises(DataFormatError, match=message) as info:
        nn.read_safetensors(path)
    assert info.value.where.startswith(str(path))
    assert str(info.value).startswith(f"{path}: ")


def test_good_file_reads_and_metadata_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "good.safetensors"
    path.write_bytes(edit(lambda h: None)())  # the corruption helpers, changing nothing
    got = nn.read_safetensors(path)
    assert list(got) == ["weight", "bias"]
    assert_same_bits(got["bias"], np.frombuffer(bytes(range(24, 36)), "<f4"))
