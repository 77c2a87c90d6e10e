"""The hostile inputs that once escaped the readers as untyped errors (BadZipFile,
RecursionError, OverflowError, NumPy's ValueError, ...), each now a DataFormatError that
names the file and the place; and the NPZ reader agreeing with `np.load` on good files."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime import checkpoint
from torchlean.runtime.graph import from_json
from torchlean.spec import DataFormatError, nn
from torchlean.spec.npz_format import parse_npz
from torchlean.verify.bounds import certificate, model_file

BUILT = nn.build(nn.linear(3, 2) >> nn.relu() >> nn.linear(2, 2), seed=0)
WEIGHTS = {k: v.numpy() for k, v in BUILT.params.items()}


def npz_bytes(arrays: dict[str, np.ndarray[Any, Any]], compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def npy_bytes(arr: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


# -- npz ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_reads_what_np_load_reads(compressed: bool) -> None:
    arrays = {"w": np.arange(12.0).reshape(3, 4), "b": np.ones(3, np.float32),
              "i": np.arange(5, dtype=np.int16), "empty": np.zeros((0, 3))}
    got = parse_npz(npz_bytes(arrays, compressed), "x.npz")
    assert list(got) == list(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].tobytes() == v.tobytes()


def test_truncated_member_is_reported_as_truncated_not_as_pickle() -> None:
    member = npy_bytes(np.arange(10.0))
    with pytest.raises(DataFormatError) as info:
        parse_npz(zip_of({"w.npy": member[:-8]}), "x.npz")
    assert info.value.where == "x.npz: member 'w.npy'" and "pickle" not in str(info.value)
    assert "needs 208 bytes, but the archive says 200" in str(info.value)


def test_a_member_claiming_1e12_elements_is_refused_before_allocation() -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 64
    with pytest.raises(DataFormatError, match="needs 8000000000128 bytes"):
        parse_npz(zip_of({"w.npy": member}), "x.npz")


def test_sizes_the_archive_cannot_back_are_refused() -> None:
    raw = bytearray(zip_of({"w.npy": npy_bytes(np.zeros(4))}))
    local_size = 22  # uncompressed size in the local header, repeated in the central one
    central = raw.rindex(b"PK\x01\x02")
    for at in (local_size, central + 24):
        raw[at : at + 4] = struct.pack("<I", 10**9)
    with pytest.raises(DataFormatError, match="more than its 160 stored bytes can hold"):
        parse_npz(bytes(raw), "x.npz")


@pytest.mark.parametrize("members, method, words", [
    ({"w.txt": b"hello"}, zipfile.ZIP_STORED, "must be an .npy array"),
    ({"w.npy": npy_bytes(np.zeros(2))}, zipfile.ZIP_BZIP2, "compression method 12"),
    ({"w.npy": b"not npy at all"}, zipfile.ZIP_STORED, "not an NPY array"),
    ({"w.npy": npy_bytes(np.array([object()], dtype=object))}, zipfile.ZIP_STORED, "pickle"),
])
def test_bad_members_are_named(members: dict[str, bytes], method: int, words: str) -> None:
    with pytest.raises(DataFormatError, match=words) as info:
        parse_npz(zip_of(members, method), "x.npz")
    assert info.value.where.startswith("x.npz: member 'w.")


@pytest.mark.parametrize("data, words", [
    (b"", "not an .npz archive"), (b"PK\x03\x04" + b"\0" * 40, "not an .npz archive"),
    (npy_bytes(np.zeros(2)), "a single .npy array"),
])
def test_non_archives_are_named(data: bytes, words: str) -> None:
    with pytest.raises(DataFormatError, match=words) as info:
        parse_npz(data, "x.npz")
    assert info.value.where == "x.npz"


def test_corrupt_deflate_stream_is_a_format_error() -> None:
    raw = bytearray(npz_bytes({"w": np.arange(100.0)}, compressed=True))
    raw[60:70] = b"\xff" * 10
    with pytest.raises(DataFormatError, match="x.npz: member 'w.npy'"):
        parse_npz(bytes(raw), "x.npz")


def test_nonfinite_weights_are_refused_unless_allowed(tmp_path: Path) -> None:
    bad = {**WEIGHTS, "2.bias": np.array([0.0, np.nan])}
    path = tmp_path / "w.npz"
    path.write_bytes(npz_bytes(bad))
    with pytest.raises(DataFormatError) as info:
        nn.load_state_dict(BUILT, path)
    assert info.value.where == f"{path}: '2.bias' element (1,)"
    with pytest.raises(DataFormatError) as info:
        nn.read_npz(path)
    assert info.value.where == f"{path}: member '2.bias.npy': element (1,)"
    loaded = nn.load_state_dict(BUILT, path, allow_nonfinite=True)
    assert np.isnan(loaded.params["2.bias"].numpy()[1])


def test_state_dict_name_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    path.write_bytes(npz_bytes({**WEIGHTS, "extra": np.zeros(1)}))
    with pytest.raises(KeyError) as info:
        nn.load_state_dict(BUILT, path)
    assert isinstance(info.value, DataFormatError) and info.value.where == str(path)


# -- JSON readers ---------------------------------------------------------------------------

GRAPH_TEXT = model_file.model_graph(BUILT, (3,)).to_json()


def hostile(kind: str) -> str:
    """The graph text with one hostile JSON value in place of the first node's id."""
    value = {"deep": "[" * 5000 + "]" * 5000, "digits": "9" * 5000, "nan": "NaN"}[kind]
    return GRAPH_TEXT.replace('"id": 0', f'"id": {value}', 1)


@pytest.mark.parametrize("kind", ["deep", "digits", "nan"])
def test_json_readers_refuse_hostile_values(tmp_path: Path, kind: str) -> None:
    text = hostile(kind)
    with pytest.raises(DataFormatError, match=r"line \d+ column \d+"):
        from_json(text)
    path = tmp_path / "m.model.json"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        model_file.load_model(path)
    assert str(info.value).startswith(str(path))
    path.write_text(text.replace("torchlean.graph", "torchlean.robustness-certificate"))
    result = certificate.check_certificate(path, BUILT, BUILT.params)
    assert not result.accepted and "DataFormatError" in result.reason


@pytest.mark.parametrize("item, words", [
    ('"0x1p+99999"', "overflows a binary64"),
    ('"nan:0x' + "f" * 17 + '"', "more than the 64 bits"),
    ('"nan:0x17ff8000000000000"', "more than the 64 bits"),
])
def test_graph_literals_out_of_range(item: str, words: str) -> None:
    doc = json.loads(GRAPH_TEXT)
    literal = next(n for n in doc["nodes"] if n["op"] == "literal")
    literal["data"][0] = json.loads(item)
    with pytest.raises(DataFormatError, match=words) as info:
        from_json(json.dumps(doc))
    assert f"nodes[{literal['id']}].data[0]" in info.value.where


def test_checkpoint_refuses_hostile_json(tmp_path: Path) -> None:
    task = tl.train.regression(tl.nn.build(tl.nn.sequential(tl.nn.linear(2, 1)), seed=0))
    runner = tl.train.runner(task, dtype="float32")
    path = tmp_path / "ck.json"
    runner.save(path)
    text = path.read_text()
    for bad in (text.replace('"step": 0', '"step": ' + "9" * 5000),
                text.replace('"step": 0', '"step": ' + "[" * 5000 + "]" * 5000),
                text.replace('"step": 0', '"step": 0, "step": 1')):
        path.write_text(bad)
        with pytest.raises(DataFormatError, match=rf"{path}: line 1 column \d+"):
            checkpoint.read(path)


# -- safetensors ----------------------------------------------------------------------------


def safetensors_with_shape(shape: str) -> bytes:
    header = ('{"w": {"dtype": "F32", "shape": ' + shape + ', "data_offsets": [0, 0]}}')
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize("shape, words", [
    ("[" + ", ".join(["1"] * 65) + "]", "65 dimensions"),
    ("[" + "1" + "0" * 30 + ", 0]", "too big for any array"),
    ("[" + "9" * 5000 + ", 0]", "5000 digits"),
])
def test_safetensors_impossible_shapes(tmp_path: Path, shape: str, words: str) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_with_shape(shape))
    with pytest.raises(DataFormatError, match=words) as info:
        nn.read_safetensors(path)
    assert info.value.where.startswith(str(path))
