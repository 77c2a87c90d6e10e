"""Importing `torchlean` from a source checkout's root.

There, Python finds the front-door folder `torchlean/` before any installed package, and
that folder holds no `spec/`, `runtime/` or `verify/`: pyproject's setuptools package-dir
maps the checkout's top-level folders of those names to `torchlean.spec`,
`torchlean.runtime` and `torchlean.verify` only when installed. `map_layers` makes the
same mapping at import time, so the checkout's root behaves as an installed copy of itself
(`python -c "import torchlean"`, scripts saved there, `python -m pytest`).

An installed package (plain or strict editable) has the layers inside its own folder and
is left untouched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["LAYERS", "map_layers"]

# Sub-package name -> the checkout folder pyproject.toml's package-dir maps it to.
LAYERS = {"spec": "spec", "runtime": "runtime", "verify": "verify"}


class _LayerFinder(importlib.abc.MetaPathFinder):
    """Finds exactly `<package>.spec`, `.runtime` and `.verify` in the checkout's folders."""

    def __init__(self, package: str, folders: dict[str, Path]) -> None:
        self.names = {f"{package}.{layer}": folder for layer, folder in folders.items()}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        folder = self.names.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def checkout_layers(front_door: Path) -> dict[str, Path] | None:
    """The layer folders when `front_door` is a source checkout's `torchlean/` folder
    (pyproject.toml beside it, the layers not inside it); None for an installed package."""
    root = front_door.parent
    if any((front_door / layer).is_dir() for layer in LAYERS):
        return None
    if not (root / "pyproject.toml").is_file():
        return None
    folders = {layer: root / rel for layer, rel in LAYERS.items()}
    if not all((folder / "__init__.py").is_file() for folder in folders.values()):
        return None
    return folders


def map_layers(package: str, front_door: Path) -> bool:
    """Map `package`'s layers to the checkout's folders when `front_door` is a checkout's
    front-door folder; returns whether it did."""
    folders = checkout_layers(front_door)
    if folders is None:
        return False
    if not any(isinstance(f, _LayerFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LayerFinder(package, folders))
    return True
