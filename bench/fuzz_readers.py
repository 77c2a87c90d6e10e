"""Mutation fuzzing of every file reader: each must accept a file or raise TorchLean's
typed errors (`TorchLeanError` subclasses), never another exception.

    python bench/fuzz_readers.py [--examples 2000] [--seed 0]

Each reader starts from valid files it wrote itself (or NumPy wrote), and each input is
one of them after one to four mutations: random bytes changed, inserted or deleted, a
slice repeated, the file cut short, a little-endian size (2**32 - 1, 10**12, 2**63, ...)
written over the bytes, or a JSON number or string replaced by a hostile one (5,000
digits, NaN, 1e400, "0x1p+99999", a NaN of 68 bits, deep nesting). The table printed
counts, per reader, the inputs, those accepted, those refused with a typed error, and
the untyped exceptions (which must be 0); untyped ones are listed by type.

tests/runtime/test_readers_fuzz.py runs the same targets under hypothesis.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import struct
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import torchlean as tl
from torchlean.runtime.data import load_csv, load_text, read_npy
from torchlean.runtime.graph import from_json
from torchlean.spec import TorchLeanError, nn, strict_json
from torchlean.verify.bounds import certificate, model_file

__all__ = ["Target", "targets", "mutate", "run_one", "main"]


@dataclass(frozen=True)
class Target:
    """A reader under test: valid seed files, and `read(data)` that parses one input
    (writing it to a file first where the reader takes a path). `refusal` says whether
    a returned value counts as a refusal (a checker that answers "rejected")."""

    name: str
    seeds: tuple[bytes, ...]
    read: Callable[[bytes], Any]
    json_like: bool
    refusal: Callable[[Any], bool] = lambda _: False


# -- mutations ------------------------------------------------------------------------

_SIZES = (2**16 - 1, 2**31 - 1, 2**32 - 1, 10**12, 2**63 - 1, 2**63, 2**64 - 1, 0)
_HOSTILE = (
    b"9" * 5000, b"-" + b"1" * 4400, b"NaN", b"-Infinity", b"1e400", b"-1e999", b"1e-400",
    b'"0x1p+99999"', b'"nan:0x' + b"f" * 17 + b'"', b'"nan:0x17fc00000"', b"[" * 5000,
    b"{" * 300, b'"\\ud800"', b"0", b"-0", b"1" * 30, b"[]", b"{}", b"null", b"true",
    b'"' + b"9" * 5000 + b'"', b'"1/0"', b'"[1p0,0p0]"', b'"0x1.8p+0"', b"1.5",
    b"[" + b"0," * 70 + b"0]", b'"' + b"1" * 4500 + b'/3"', b'{"float": "0x1p+99999"}',
    b'{"fraction": "1/0"}', b'{"symbol": "e"}', b"-1", b"1e308", b"2.5", b"65", b"[1, 2]",
    b"[" + b"1," * 64 + b"1]", b'"inf"', b'"nan"', b'"-0x0p+0"', b'"nan:0x1"',
    b'"' + b"x" * 100 + b'"', b"100000000000000000000000000000",
)
_CELLS = (b"1e400", b"nan", b"-inf", b"1e999999", b"1_0", b'"1"', b"", b" ", b"\r", b"\n",
          b",", b"9" * 5000, b"3.4028236e38", b"1e-400", b"\xff", b"0x10", b"1e39")
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*')


def mutate(rng: random.Random, seed: bytes, json_like: bool) -> bytes:
    """`seed` after one to four random mutations (see the module docstring)."""
    data = bytearray(seed)
    if json_like and rng.random() < 0.5:  # values only: the JSON stays JSON, checks go deeper
        for _ in range(rng.randint(1, 3)):
            tokens = list(_JSON_TOKEN.finditer(bytes(data)))
            if tokens:
                m = rng.choice(tokens)
                data[m.start() : m.end()] = rng.choice(_HOSTILE)
        return bytes(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif kind == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            del data[at : at + rng.randint(1, 64)]
        elif kind == 3:
            data = data[: rng.randrange(len(data) + 1)]
        elif kind == 4:
            end = min(len(data), at + rng.randint(1, 256))
            data[at:at] = data[at:end] * rng.randint(1, 4)
        elif kind == 5:
            fmt = rng.choice(("<H", "<I", "<Q"))
            size = rng.choice(_SIZES) % (256 ** struct.calcsize(fmt))
            data[at : at + struct.calcsize(fmt)] = struct.pack(fmt, size)
        else:
            tokens = list(_JSON_TOKEN.finditer(bytes(data))) if json_like else []
            payload = rng.choice(_HOSTILE if json_like else _HOSTILE + _CELLS)
            if tokens:
                m = rng.choice(tokens)
                data[m.start() : m.end()] = payload
            else:
                data[at:at] = rng.choice(_CELLS) if rng.random() < 0.5 else payload
    return bytes(data)


def run_one(target: Target, data: bytes) -> str:
    """'accepted', 'typed' or the name of the untyped exception `target` raised on `data`."""
    try:
        result = target.read(data)
    except TorchLeanError:
        return "typed"
    except Exception as e:  # noqa: BLE001  (the point: any other exception is a finding)
        return type(e).__name__
    return "typed" if target.refusal(result) else "accepted"


# -- targets ----------------------------------------------------------------------------


def _npy_bytes(arr: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _npz_bytes(compressed: bool, arrays: dict[str, np.ndarray[Any, Any]]) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _safetensors_bytes(arrays: dict[str, np.ndarray[Any, Any]]) -> bytes:
    names = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    body, at = b"", 0
    for key, arr in arrays.items():
        raw = arr.tobytes()
        header[key] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                       "data_offsets": [at, at + len(raw)]}
        body, at = body + raw, at + len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def targets(folder: Path) -> list[Target]:
    """Every reader with its seed files; `folder` holds the files readers read by path."""
    rng = np.random.default_rng(0)

    def at(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    def csv_read(data: bytes) -> Any:
        dtype = ("float", "float32", "exact")[len(data) % 3]
        return load_csv(at("t.csv", data), dtype=dtype)

    built = nn.build(nn.linear(3, 2) >> nn.relu() >> nn.linear(2, 2), seed=0)
    weights = {k: v.numpy().astype(np.float32) for k, v in built.params.items()}
    graph_text = model_file.model_graph(built, (3,)).to_json().encode()
    model_path = folder / "seed.model.json"
    model_file.export_model(built, model_path, (3,))
    x = tl.tensor(np.array([0.5, -0.25, 1.0]))
    cert_path = folder / "seed.cert.json"
    certificate.certify_robustness(built, built.params, x, eps="1/100", label=0,
                                   path=cert_path)
    task = tl.train.regression(tl.nn.build(
        tl.nn.sequential(tl.nn.linear(2, 3), tl.nn.relu(), tl.nn.linear(3, 1)), seed=0))
    runner = tl.train.runner(task, dtype="float32").set_optimizer(tl.optim.adam(0.01))
    runner.save(folder / "seed.ck.json")
    json_seed = json.dumps({"a": [1, 2.5, {"b": None, "c": "x"}], "d": True}).encode()

    return [
        Target("npy", (_npy_bytes(rng.standard_normal((2, 3)).astype("<f4")),
                       _npy_bytes(np.arange(6, dtype="<i8")),
                       _npy_bytes(np.asfortranarray(np.ones((2, 2))))),
               lambda d: read_npy(at("t.npy", d)), False),
        Target("npz + load_state_dict", (_npz_bytes(False, weights), _npz_bytes(True, weights)),
               lambda d: nn.load_state_dict(built, at("t.npz", d)), False),
        Target("safetensors", (_safetensors_bytes(weights),),
               lambda d: nn.read_safetensors(at("t.safetensors", d)), False),
        Target("csv", (b"x1,x2,y\n1,2,3\n4,5.5,-6\n", b"1.5,0\n-2e-3,1\n7,1\n",
                       b'a,b\n"1",2\r\n3,4\n'), csv_read, False),
        Target("text", ("héllo, wörld\n".encode(), b"\xef\xbb\xbfab\n"),
               lambda d: load_text(at("t.txt", d)), False),
        Target("strict JSON", (json_seed,), lambda d: strict_json.loads(d, "t.json"), True),
        Target("graph JSON", (graph_text,), from_json, True),
        Target("model file", (model_path.read_bytes(),),
               lambda d: model_file.load_model(at("t.model.json", d)), True),
        Target("checkpoint", ((folder / "seed.ck.json").read_bytes(),),
               lambda d: runner.load(at("t.ck.json", d)), True),
        Target("certificate", (cert_path.read_bytes(),),
               lambda d: certificate.check_certificate(at("t.cert.json", d), built,
                                                       built.params),
               True, refusal=lambda r: not r.accepted),
    ]


def main() -> None:
    """Fuzz every reader and print the table of outcomes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="inputs per reader")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found = targets(Path(tmp))
        print(f"{'reader':<24}{'inputs':>8}{'accepted':>10}{'typed':>8}{'untyped':>9}")
        for target in found:
            rng = random.Random(f"{args.seed}:{target.name}")
            outcomes: Counter[str] = Counter()
            for _ in range(args.examples):
                seed = rng.choice(target.seeds)
                outcomes[run_one(target, mutate(rng, seed, target.json_like))] += 1
            untyped = {k: v for k, v in outcomes.items() if k not in ("accepted", "typed")}
            print(f"{target.name:<24}{args.examples:>8}{outcomes['accepted']:>10}"
                  f"{outcomes['typed']:>8}{sum(untyped.values()):>9}"
                  + (f"  {untyped}" if untyped else ""))


if __name__ == "__main__":
    main()
