"""docs/data.md cannot rot: its Python code blocks run, in order, in one namespace, in an
empty temporary directory (they write the files they load)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_doc_has_code() -> None:
    assert len(BLOCK.findall(DOC.read_text(encoding="utf-8"))) >= 6


def test_doc_code_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for i, code in enumerate(BLOCK.findall(DOC.read_text(encoding="utf-8"))):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)  # noqa: S102
