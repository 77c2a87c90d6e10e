"""Every file reader under mutation fuzzing: an input is accepted or refused with a
TorchLean typed error, never anything else. The targets and mutations are those of
bench/fuzz_readers.py (which prints the outcome table); here hypothesis draws the
mutations, a few dozen per reader by default and 10,000 per reader under `-m slow`.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parent.parent.parent / "bench" / "fuzz_readers.py"


def _load_fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_readers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


FUZZ = _load_fuzz_module()
NAMES = ["npy", "npz + load_state_dict", "safetensors", "csv", "text", "strict JSON",
         "graph JSON", "model file", "checkpoint", "certificate"]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    found = FUZZ.targets(tmp_path_factory.mktemp("fuzz"))
    yield {t.name: t for t in found}


def test_every_reader_is_a_target(targets: dict[str, Any]) -> None:
    assert sorted(targets) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_seed_files_are_accepted(targets: dict[str, Any], name: str) -> None:
    """The unmutated files read, so the fuzzing starts from valid input."""
    target = targets[name]
    for seed in target.seeds:
        assert FUZZ.run_one(target, seed) == "accepted"


def _check(target: Any, seed: int) -> None:
    rng = random.Random(seed)
    data = FUZZ.mutate(rng, rng.choice(target.seeds), target.json_like)
    outcome = FUZZ.run_one(target, data)
    assert outcome in ("accepted", "typed"), f"{target.name}: {outcome} on {data[:300]!r}"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**64 - 1))
def test_mutated_files_give_typed_errors(targets: dict[str, Any], name: str, seed: int) -> None:
    _check(targets[name], seed)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10_000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(seed=st.integers(0, 2**64 - 1))
def test_many_mutated_files_give_typed_errors(targets: dict[str, Any], name: str,
                                              seed: int) -> None:
    _check(targets[name], seed)
