"""Checkpoints: a `RunnerState` (parameters, buffers, step, mode, optimizer state) in one
JSON file.

Numbers are stored exactly in their field's notation (float hex, "p/q", dyadic interval
endpoints; see `graph.encoding`), so a resumed run continues bit for bit. Files go through
`write_atomically`, so a crash never leaves half a checkpoint, and a state holding NaN or
infinity is refused unless asked for, so a diverged run cannot overwrite a good file. On
`read`, everything is parsed and checked (format, version, field, tensors) and nothing is
evaluated; `check_fits` then compares the state with a model's before anything changes.

This module knows states, not runners: `Runner.save` and `Runner.load` call it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..spec import strict_json
from ..spec.errors import DataFormatError
from ..spec.fields import Field, get_field
from ..spec.tensor import Tensor
from .atomic_write import write_atomically
from .graph.encoding import Literal, decode_literal, encode_literal
from .nonfinite import NonFiniteError
from .optim import OptState
from .runner_state import RunnerState, SavedOptimizer

__all__ = ["save", "read", "check_fits", "first_nonfinite", "FORMAT", "VERSION"]

FORMAT = "torchlean.checkpoint"
VERSION = 1


def _encode(tensors: Mapping[str, Tensor]) -> dict[str, Any]:
    return {
        name: {"shape": list(t.shape), "data": list(encode_literal(t.field, t.data).items)}
        for name, t in tensors.items()
    }


def _tensors(state: RunnerState) -> list[tuple[str, Mapping[str, Tensor]]]:
    groups: list[tuple[str, Mapping[str, Tensor]]] = [
        ("params", state.params), ("buffers", state.buffers)]
    if state.optimizer is not None:
        groups += [(f"optimizer.{slot}", bufs)
                   for slot, bufs in state.optimizer.state.buffers.items()]
    return groups


def first_nonfinite(state: RunnerState) -> str | None:
    """The name (e.g. "params.0.weight") of the first tensor of `state` holding a NaN or an
    infinity, or None. Fields whose numbers cannot be such (exact) are always finite."""
    for group, tensors in _tensors(state):
        for name, t in tensors.items():
            a = t.numpy()
            if a.dtype.kind == "f" and not bool(np.isfinite(a).all()):
                return f"{group}.{name}"
    return None


def save(state: RunnerState, path: str | os.PathLike[str], *,
         allow_nonfinite: bool = False) -> None:
    """Write `state` to `path` atomically. A state holding NaN or infinity raises
    NonFiniteError (naming the tensor, writing nothing) unless `allow_nonfinite`."""
    if not allow_nonfinite:
        bad = first_nonfinite(state)
        if bad is not None:
            raise NonFiniteError(state.step, bad,
                f"save {os.fspath(path)}: {bad} holds NaN or infinity, so the state is not "
                "saved (a diverged run must not replace a good checkpoint); pass "
                "allow_nonfinite=True to write it anyway")
    opt = None
    if state.optimizer is not None:
        opt = {
            "repr": state.optimizer.name,
            "step": state.optimizer.state.step,
            "buffers": {slot: _encode(bufs)
                        for slot, bufs in state.optimizer.state.buffers.items()},
        }
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": state.fingerprint,
        "field": state.field.name,
        "step": state.step,
        "mode": state.mode,
        "params": _encode(state.params),
        "buffers": _encode(state.buffers),
        "optimizer": opt,
    }
    write_atomically(path, lambda f: json.dump(doc, f))


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise DataFormatError(where, f"missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise DataFormatError(f"{where}.{key}", f"expected {kind}, got {type(value).__name__}")
    return value


def _decode(field: Field, doc: Any, where: str) -> dict[str, Tensor]:
    if not isinstance(doc, dict):
        raise DataFormatError(where, "expected an object of named tensors")
    out = {}
    for name, entry in doc.items():
        at = f"{where}.{name}"
        if not isinstance(entry, dict):
            raise DataFormatError(at, "expected {shape, data}")
        shape = _require(entry, "shape", list, at)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise DataFormatError(f"{at}.shape", f"dims must be ints >= 0, got {shape}")
        items = _require(entry, "data", list, at)
        if not all(isinstance(s, str) for s in items):
            raise DataFormatError(f"{at}.data", "items must be strings")
        data = decode_literal(field, Literal(tuple(items)), tuple(shape), f"{at}.data")
        out[name] = Tensor(data, field)
    return out


def read(path: str | os.PathLike[str]) -> RunnerState:
    """The state saved at `path` (host tensors of the saved field); a file that is not a
    well-formed checkpoint of this version raises DataFormatError naming what is wrong."""
    where = os.fspath(path)
    doc = strict_json.read_json_file(where)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataFormatError(where, f"not a TorchLean checkpoint (format must be {FORMAT!r})")
    version = _require(doc, "version", int, where)
    if version != VERSION:
        raise DataFormatError(
            where, f"checkpoint version {version}; this TorchLean reads {VERSION}"
        )
    fp = _require(doc, "fingerprint", str, where)
    field_name = _require(doc, "field", str, where)
    try:
        field = get_field(field_name)
    except ValueError as e:
        raise DataFormatError(f"{where}.field", str(e)) from None
    step = _require(doc, "step", int, where)
    if step < 0:
        raise DataFormatError(f"{where}.step", f"must be >= 0, got {step}")
    mode = _require(doc, "mode", str, where)
    if mode not in ("train", "eval"):
        raise DataFormatError(f"{where}.mode", f"must be 'train' or 'eval', got {mode!r}")
    params = _decode(field, doc.get("params"), f"{where}: params")
    buffers = _decode(field, doc.get("buffers"), f"{where}: buffers")
    opt_doc, saved = doc.get("optimizer"), None
    if opt_doc is not None:
        at = f"{where}.optimizer"
        if not isinstance(opt_doc, dict):
            raise DataFormatError(at, "expected an object or null")
        slots = _require(opt_doc, "buffers", dict, at)
        saved = SavedOptimizer(
            _require(opt_doc, "repr", str, at),
            OptState(_require(opt_doc, "step", int, at),
                     {s: _decode(field, slots[s], f"{where}: optimizer.{s}") for s in slots}),
        )
    return RunnerState(fp, field, params, buffers, step,
                       "train" if mode == "train" else "eval", saved)


def _same_tensors(saved: Mapping[str, Tensor], model: Mapping[str, Tensor], where: str) -> None:
    if list(saved) != list(model):
        raise DataFormatError(
            where,
            f"names differ from the model's: checkpoint has {sorted(saved)}, "
            f"model has {sorted(model)}",
        )
    for name, t in saved.items():
        if t.shape != model[name].shape:
            raise DataFormatError(f"{where}.{name}",
                                  f"shape {t.shape} differs from the model's {model[name].shape}")


def check_fits(saved: RunnerState, current: RunnerState, where: str) -> None:
    """Raise DataFormatError (naming `where`) unless `saved` is a state of the same model,
    field, parameter and buffer names and shapes as `current`."""
    if saved.fingerprint != current.fingerprint:
        raise DataFormatError(where, "the checkpoint is of a different model (fingerprint differs)")
    if saved.field.name != current.field.name:
        raise DataFormatError(
            where, f"checkpoint dtype {saved.field.name!r}, runner dtype {current.field.name!r}"
        )
    _same_tensors(saved.params, current.params, f"{where}: params")
    _same_tensors(saved.buffers, current.buffers, f"{where}: buffers")


def check_optimizer_fits(saved: OptState[Tensor], fresh: OptState[Any], where: str) -> None:
    """Raise DataFormatError unless `saved` has the slots, names and shapes of `fresh` (the
    state the optimizer starts from)."""
    if sorted(saved.buffers) != sorted(fresh.buffers):
        raise DataFormatError(
            f"{where}.optimizer", f"slots {sorted(saved.buffers)} differ from "
            f"{sorted(fresh.buffers)}")
    for slot, bufs in fresh.buffers.items():
        _same_tensors(saved.buffers[slot], bufs, f"{where}: optimizer.{slot}")
