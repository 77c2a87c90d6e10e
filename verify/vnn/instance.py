"""The model and the property an instance names: loading a model file (ONNX or the
library's own), its input and output sizes, and a property fitted to them.

Imports `torchlean.spec`, `torchlean.runtime` and `torchlean.verify.bounds`.
"""

from __future__ import annotations

import importlib
import os
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph
from ...spec.errors import DataFormatError, ShapeError, UnsupportedOperation
from ..bounds import model_file as _model_file
from .vnnlib import Case, LinearConstraint, Property, read_vnnlib

__all__ = ["load_model", "model_sizes", "fit_property"]


def load_model(path: str | os.PathLike[str]) -> tuple[Graph, dict[str, Any]]:
    """The (graph, params) of the ONNX file at `path`, through the ONNX importer (raises
    UnsupportedOperation when it, or a package it needs, is not installed); a `.json` path
    is read as the library's own model file (`verify.model_file`)."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataFormatError(name, "cannot read the model file: no such file")
    if name.endswith(".json"):
        return _model_file.load_model(name), {}
    try:
        onnx_import = importlib.import_module("torchlean.verify.vnn.onnx_import")
    except ModuleNotFoundError as e:
        missing = e.name or "torchlean.verify.vnn.onnx_import"
        raise UnsupportedOperation("onnx", "float", f"ONNX import is unavailable: module "
                                   f"{missing!r} is not installed") from None
    loaded = onnx_import.load_onnx(name)
    return loaded.graph, dict(loaded.params)


def model_sizes(graph: Graph) -> tuple[int, int]:
    """(inputs, outputs) of a graph the engine takes: one input of batch 1, one output."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOperation("graph", graph.field, f"the engine needs one input and one "
                                   f"output, got {len(graph.inputs)} and {len(graph.outputs)}")
    shape = graph.inputs[0].shape
    if not shape or shape[0] != 1:
        raise ShapeError(f"the model input must have a leading batch axis of 1, got {shape}")
    out = graph.nodes[graph.outputs[0][1]].shape
    return int(np.prod(shape)), int(np.prod(out))


def fit_property(prop: Property, n: int, m: int) -> Property:
    """`prop` checked against a model with n inputs and m outputs, rows padded to m
    (DataFormatError naming the line when it names inputs or outputs the model lacks)."""
    if prop.num_inputs != n or prop.num_outputs > m:
        if os.path.isfile(prop.path):  # re-read for the error with its line
            read_vnnlib(prop.path, num_inputs=n, num_outputs=m)
        raise DataFormatError(prop.path, f"the property has {prop.num_inputs} inputs and "
                              f"{prop.num_outputs} outputs, the model {n} and {m}")
    if prop.num_outputs == m:
        return prop
    pad = (Fraction(0),) * (m - prop.num_outputs)
    cases = tuple(Case(c.box, tuple(tuple(LinearConstraint(k.coefficients + pad, k.bound,
                                                           k.strict) for k in conj)
                                    for conj in c.unsafe), c.line) for c in prop.cases)
    return Property(prop.path, n, m, cases)
