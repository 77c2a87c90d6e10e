"""The `torchlean` command: small demos of the training flow.

torchlean --help
torchlean mlp --steps 100 --dtype ieee32exec --backend compiled
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from . import demos, verify_cli

__all__ = ["main", "DEMOS"]

DEMOS: dict[str, tuple[str, Callable[[Sequence[str]], object]]] = {
    "mlp": ("train the 2-8-1 MLP on the 5x5 grid regression (the quickstart)", demos.mlp),
    "verify": ("certify robustness, check VNN-LIB properties: `torchlean verify --help`",
               verify_cli.main),
}


def _usage() -> str:
    lines = ["usage: torchlean DEMO [flags]", "", "demos:"]
    lines += [f"  {name:<8} {text}" for name, (text, _) in DEMOS.items()]
    lines += ["", "Each demo takes the common flags; `torchlean DEMO --help` lists them."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo named by the first argument; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in DEMOS:
        print(f"torchlean: unknown demo {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    status = DEMOS[name][1](rest)
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
