"""Shared helpers of the ONNX tests: toy models built with onnx.helper, and the comparison
against onnxruntime.

Tolerance (`agree`): onnxruntime computes in binary32, TorchLean here in binary64 or
binary32 with other summation orders. Each binary32 operation has relative error at most
u = 2**-24 ~ 6e-8, and a dot product of n terms errs by at most ~n u times the sum of the
magnitudes of its terms. The toy models accumulate at most ~100 terms over at most five
layers, so both sides stay within ~1e-5 of the real result relative to the size of the
values; a wrong translation (an axis, a pad, a transposed weight, an off-by-one window)
changes outputs by a large fraction of their size and fails the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from torchlean.verify.vnn import OnnxModel, load_onnx  # noqa: E402

RTOL = 1e-5


def make_model(path: Path, nodes: Sequence[Any], inputs: Mapping[str, Sequence[int | str]],
               outputs: Sequence[str] = ("y",), inits: Mapping[str, Any] | None = None,
               opset: int = 13, inits_as_inputs: bool = False, ir_version: int | None = None
               ) -> Path:
    """Write a model with float32 inputs of the given shapes and initializers (float
    arrays become FLOAT, int arrays INT64, bool arrays BOOL) to `path`."""
    tensors = []
    for name, value in (inits or {}).items():
        arr = np.asarray(value)
        if arr.dtype.kind != "b":
            arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float32)
        tensors.append(numpy_helper.from_array(arr, name))
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))
           for n, s in inputs.items()]
    if inits_as_inputs:
        ins += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                for t in tensors]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    graph = helper.make_graph(list(nodes), "toy", ins, outs, tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version if ir_version is not None else (
        3 if opset < 8 else 4 if opset < 9 else 5 if opset < 11 else 6 if opset < 12 else
        7 if opset < 13 else 8)
    path.write_bytes(model.SerializeToString())
    return path


def ort_run(path: Path, feeds: Mapping[str, np.ndarray[Any, Any]]) -> list[Any]:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no shape-inference warnings in test logs
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, {k: np.asarray(v, np.float32) for k, v in feeds.items()}))


def random_inputs(model: OnnxModel, seed: int = 0, low: float = -2.0, high: float = 2.0
                  ) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return {n.name: rng.uniform(low, high, n.shape).astype(np.float32)
            for n in model.graph.inputs}


def agree(path: Path, rtol: float = RTOL, seed: int = 0, fields: Sequence[str] = (
        "float", "float32"), **load: Any) -> OnnxModel:
    """Load `path`, run it in onnxruntime and in TorchLean (each of `fields`) on the same
    random input, and assert every output agrees within rtol * max(1, max |output|)."""
    model = load_onnx(path, **load)
    feeds = random_inputs(model, seed)
    expected = ort_run(path, feeds)
    assert len(expected) == len(model.output_names)
    for field in fields:
        got = model.run(feeds, field=field)
        for name, ref in zip(model.output_names, expected, strict=True):
            ours = np.asarray(got[name].numpy(), dtype=np.float64)
            assert ours.shape == ref.shape, (field, name, ours.shape, ref.shape)
            scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
            np.testing.assert_allclose(ours, ref, rtol=0, atol=rtol * scale,
                                       err_msg=f"{path.name} output {name} in {field}")
    return model


def weights(shape: Sequence[int], seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).uniform(-1, 1, tuple(shape)).astype(np.float32)
