"""Checkpoints: a runner's parameters, buffers, optimizer state and step in one JSON file.

Numbers are stored exactly in their field's notation (float hex, "p/q", dyadic interval
endpoints; see `graph.encoding`), so a resumed run continues bit for bit. Files are
written to a temporary name and renamed, so a crash never leaves half a checkpoint; on
load, everything is parsed and checked (format, version, model fingerprint, field,
names, shapes, optimizer) before the runner is touched, and nothing is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..spec import strict_json
from ..spec.errors import DataFormatError
from ..spec.tensor import Tensor
from .graph.encoding import Literal, decode_literal, encode_literal
from .optim import OptState

if TYPE_CHECKING:
    from .runner import Runner

__all__ = ["save", "load", "fingerprint", "FORMAT", "VERSION"]

FORMAT = "torchlean.checkpoint"
VERSION = 1


def fingerprint(runner: Runner) -> str:
    """A hash of the model's structure and its parameter and buffer names and shapes."""
    model = runner.model
    text = (
        repr(model.model)
        + "|"
        + "|".join(
            f"{kind}:{name}:{t.shape}"
            for kind, state in (("p", model.params), ("b", model.buffers))
            for name, t in state.items()
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(tensors: Mapping[str, Tensor]) -> dict[str, Any]:
    return {
        name: {"shape": list(t.shape), "data": list(encode_literal(t.field, t.data).items)}
        for name, t in tensors.items()
    }


def save(runner: Runner, path: str | os.PathLike[str]) -> None:
    """Write `runner`'s state to `path` atomically (a temporary file, then a rename)."""
    opt = None
    if runner.optimizer is not None and runner.opt_state is not None:
        opt = {
            "repr": repr(runner.optimizer),
            "step": runner.opt_state.step,
            "buffers": {slot: _encode(bufs) for slot, bufs in runner.opt_state.buffers.items()},
        }
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": fingerprint(runner),
        "field": runner.field.name,
        "step": runner.step,
        "mode": runner.mode,
        "params": _encode(runner.params),
        "buffers": _encode(runner.buffers),
        "optimizer": opt,
    }
    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(target) or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise DataFormatError(where, f"missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise DataFormatError(f"{where}.{key}", f"expected {kind}, got {type(value).__name__}")
    return value


def _decode(
    runner: Runner, doc: Any, expected: Mapping[str, Tensor], where: str
) -> dict[str, Tensor]:
    if not isinstance(doc, dict):
        raise DataFormatError(where, "expected an object of named tensors")
    if list(doc) != list(expected):
        raise DataFormatError(
            where,
            f"names differ from the model's: checkpoint has {sorted(doc)}, "
            f"model has {sorted(expected)}",
        )
    out = {}
    for name, ref in expected.items():
        entry, at = doc[name], f"{where}.{name}"
        if not isinstance(entry, dict):
            raise DataFormatError(at, "expected {shape, data}")
        shape = tuple(_require(entry, "shape", list, at))
        if shape != ref.shape:
            raise DataFormatError(at, f"shape {shape} differs from the model's {ref.shape}")
        items = _require(entry, "data", list, at)
        if not all(isinstance(s, str) for s in items):
            raise DataFormatError(f"{at}.data", "items must be strings")
        data = decode_literal(runner.field, Literal(tuple(items)), shape, f"{at}.data")
        out[name] = Tensor(data, runner.field)
    return out


def load(runner: Runner, path: str | os.PathLike[str]) -> None:
    """Restore `runner`'s state from `path`, after checking that it fits this runner."""
    where = os.fspath(path)
    doc = strict_json.read_json_file(where)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataFormatError(where, f"not a TorchLean checkpoint (format must be {FORMAT!r})")
    version = _require(doc, "version", int, where)
    if version != VERSION:
        raise DataFormatError(
            where, f"checkpoint version {version}; this TorchLean reads {VERSION}"
        )
    if _require(doc, "fingerprint", str, where) != fingerprint(runner):
        raise DataFormatError(where, "the checkpoint is of a different model (fingerprint differs)")
    field = _require(doc, "field", str, where)
    if field != runner.field.name:
        raise DataFormatError(
            where, f"checkpoint dtype {field!r}, runner dtype {runner.field.name!r}"
        )
    step = _require(doc, "step", int, where)
    mode = _require(doc, "mode", str, where)
    if mode not in ("train", "eval"):
        raise DataFormatError(f"{where}.mode", f"must be 'train' or 'eval', got {mode!r}")
    params = _decode(runner, doc.get("params"), runner.params, f"{where}: params")
    buffers = _decode(runner, doc.get("buffers"), runner.buffers, f"{where}: buffers")
    opt_doc, state = doc.get("optimizer"), None
    if opt_doc is not None:
        if runner.optimizer is None or runner.opt_state is None:
            raise DataFormatError(
                where,
                "the checkpoint has optimizer state; call "
                "set_optimizer with the same optimizer before load",
            )
        if _require(opt_doc, "repr", str, f"{where}.optimizer") != repr(runner.optimizer):
            raise DataFormatError(
                f"{where}.optimizer",
                f"saved with {opt_doc['repr']}, the runner uses {runner.optimizer!r}",
            )
        slots = _require(opt_doc, "buffers", dict, f"{where}.optimizer")
        current = runner.opt_state.buffers
        if sorted(slots) != sorted(current):
            raise DataFormatError(
                f"{where}.optimizer", f"slots {sorted(slots)} differ from {sorted(current)}"
            )
        state = OptState(
            _require(opt_doc, "step", int, f"{where}.optimizer"),
            {s: _decode(runner, slots[s], current[s], f"{where}: optimizer.{s}") for s in current},
        )
    # Everything parsed and checked: now change the runner.
    runner.set_flat(runner.layout.flatten(params))
    runner.set_buffers(buffers)
    runner.step = step
    runner.mode = "train" if mode == "train" else "eval"
    if state is not None:
        runner.opt_state = state
