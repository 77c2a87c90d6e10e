"""Bench: `data.load_csv_matrix` (strict: every cell checked, nan/inf refused, rounded once)
against `numpy.loadtxt` on the same files, in the same run: interleaved rounds, best of N.

    python bench/bench_csv.py [--rows 1000000] [--repeat 5]

Files: N one-cell rows, one line of N cells, and N/10 rows of ten cells, of random
binary64 values written by repr (shortest round-trip decimals, some with exponents).
Both readers produce float64 here; the test for equal results is bit for bit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from torchlean.runtime import data


def write_files(folder: Path, n: int) -> dict[str, Path]:
    """The three bench files of `n` cells each, in `folder`."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
    cells = [repr(float(v)) for v in values]
    shapes = {"rows (N x 1)": 1, "line (1 x N)": n, "table (N/10 x 10)": 10}
    out = {}
    for name, width in shapes.items():
        path = folder / (name.split()[0] + ".csv")
        lines = [",".join(cells[i : i + width]) for i in range(0, n, width)]
        path.write_text("\n".join(lines) + "\n", encoding="ascii")
        out[name] = path
    return out


def best_of(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Best wall time of each function, the functions interleaved round by round."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main() -> None:
    """Print, per file shape, both readers' best times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="cells per file")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.rows)
        print(f"{args.rows} cells per file, best of {args.repeat} interleaved rounds")
        print(f"{'file':<20}{'torchlean s':>13}{'loadtxt s':>12}{'ratio':>8}")
        for name, path in files.items():
            ours = data.load_csv_matrix(path, header=False).numpy()
            theirs = np.loadtxt(path, delimiter=",", ndmin=2)
            assert ours.tobytes() == theirs.tobytes(), f"{name}: results differ"
            times = best_of({
                "torchlean": partial(data.load_csv_matrix, path, header=False),
                "loadtxt": partial(np.loadtxt, path, delimiter=",", ndmin=2),
            }, args.repeat)
            ratio = times["torchlean"] / times["loadtxt"]
            print(f"{name:<20}{times['torchlean']:>13.3f}{times['loadtxt']:>12.3f}"
                  f"{ratio:>8.2f}")


if __name__ == "__main__":
    main()
