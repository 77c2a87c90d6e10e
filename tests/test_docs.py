"""Every ```python block of the guide and the README runs, in order, one namespace per page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted((DOCS / "guide").glob("*.md")) + [DOCS.parent / "README.md"]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_guide_code_blocks_run(page: Path) -> None:
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name} has no python blocks"
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102
        except Exception as e:
            raise AssertionError(f"{page.name}, block {i} failed: {e!r}\n{code}") from e


def test_pages_exist() -> None:
    names = {p.name for p in PAGES}
    assert names >= {"training-from-scratch.md", "execution-modes.md", "README.md"}
