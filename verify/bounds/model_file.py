"""Model files for verification: a built model as one self-contained `Graph` JSON.

    export_model(net, "bands.model.json", input_shape=(4, 4))
    g = load_model("bands.model.json")          # a Graph with no parameters
    bounds.crown(g, {}, lo, hi)                 # params: {} (they are literals)

The file is exactly the versioned graph JSON of `runtime.graph.serialize` (format
"torchlean.graph"): the model traced in eval mode over one example (batch axis 1 first,
then `input_shape`), with every parameter and buffer replaced by a `literal` node holding
its exact binary64 value in hex. Nothing else: no pickle, no code, parse-only reading, and
the graph's own version check. Because the values are literals, the graph alone is the
model: bounds and certificates take it with `params = {}`, and a certificate's fingerprint
covers the weights through the graph text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ...runtime.atomic_write import write_atomically
from ...runtime.graph import Graph, Literal, Node, from_json
from ...spec import strict_json
from ...spec.errors import DataFormatError, ShapeError
from . import propagate as _bounds

__all__ = ["export_model", "load_model", "model_graph"]


def model_graph(built: Any, input_shape: tuple[int, ...],
                params: Mapping[str, Any] | None = None) -> Graph:
    """The eval-mode graph of `built` over one example of `input_shape` (no batch axis),
    with its parameters (`built.params` unless given) inlined as exact literals."""
    shape = (1, *(int(d) for d in input_shape))
    p = dict(built.params if params is None else params)
    g = _bounds.as_graph(built, p, shape)
    nodes = []
    for n in g.nodes:
        if n.op == "param":
            v = _bounds._host(p[n.name])
            items = tuple(float(x).hex() for x in v.reshape(-1))
            n = Node(n.id, "literal", (), (("data", Literal(items)),), n.shape)
        nodes.append(n)
    return Graph("float", tuple(nodes), g.outputs)


def export_model(built: Any, path: str | os.PathLike[str], input_shape: tuple[int, ...],
                 params: Mapping[str, Any] | None = None) -> Graph:
    """Write the model file of `built` (see the module docstring) atomically; returns the
    graph written."""
    g = model_graph(built, input_shape, params)
    text = g.to_json()
    write_atomically(path, lambda f: f.write(text))
    return g


def load_model(path: str | os.PathLike[str]) -> Graph:
    """The graph in the model file at `path`; a file that is not one (bad JSON, a newer
    version, parameters left as inputs, not one input of batch 1 and one output) raises
    DataFormatError naming the file and the place."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > strict_json.MAX_BYTES:  # refused before it is read into memory
                raise DataFormatError(name, f"{size} bytes exceed the limit of "
                                            f"{strict_json.MAX_BYTES} for a model file")
            text = f.read()
    except OSError as e:
        raise DataFormatError(name, f"cannot read the model file: {e.strerror}") from None
    try:
        g = from_json(text)
    except (DataFormatError, ShapeError) as e:
        raise DataFormatError(name, str(e)) from None
    params = [n.name for n in g.params]
    if params:
        raise DataFormatError(f"{name}: nodes", f"parameters {params} are not inlined; "
                              "write model files with verify.model_file.export_model")
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise DataFormatError(name, f"a model file has one input and one output, this graph "
                              f"has {len(g.inputs)} and {len(g.outputs)}")
    x = g.inputs[0]
    if not x.shape or x.shape[0] != 1:
        raise DataFormatError(f"{name}: nodes[{x.id}].shape", f"the input must have batch "
                              f"axis 1 first, got shape {list(x.shape)}")
    if g.field != "float":
        raise DataFormatError(f"{name}: field", f"a model file computes in 'float', got "
                              f"{g.field!r}")
    return g

