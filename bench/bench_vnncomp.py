"""VNN-COMP 2021 instances through the verdict engine: solved counts, times and the time
split per category, next to the published table, with every verdict re-checked.

    python bench/bench_vnncomp.py --category acasxu --max-timeout 6 --out acas.csv --check

Reads `<root>/<category>/instances.csv` (root: --root, else ../shared/benchmarks/vnncomp2021
beside the repository, else /work/shared/benchmarks/vnncomp2021). Each instance runs with
its CSV timeout, capped by --max-timeout. Wrong verdicts: there are no published per-
instance results in the repository, so each verdict is re-checked instead: a `violated`
counterexample is re-evaluated exactly (`Property.is_counterexample` on the exact outputs),
and with --check every `holds` certificate goes through `check_tree_certificate` (exact;
trees of more than --check-max-leaves leaves are counted as unchecked, never as passed).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

CATEGORIES = ("acasxu", "mnistfc", "eran", "verivital")
HERE = os.path.dirname(os.path.abspath(__file__))


def _default_root() -> str | None:
    for cand in (os.path.join(HERE, "..", "..", "shared", "benchmarks", "vnncomp2021"),
                 "/work/shared/benchmarks/vnncomp2021"):
        if os.path.isdir(cand):
            return os.path.abspath(cand)
    return None


def _published(root: str, category: str) -> str:
    """The category's row of the published table in the benchmarks README."""
    readme = os.path.join(root, "..", "README.md")
    try:
        with open(readme, encoding="utf-8") as f:
            for line in f:
                if line.startswith(f"| {category} ("):
                    cells = [c.strip() for c in line.strip().strip("|").split("|")]
                    return (f"published: alpha-beta-CROWN {cells[1]}; nnenum {cells[4]} "
                            "(VNN-COMP 2021)")
    except OSError:
        pass
    return "published: (table not found)"


def _recheck_violated(inst: Any, v: Any) -> bool:
    """The counterexample re-evaluated exactly and checked against the property."""
    from torchlean.verify.vnn.confirm import Confirmer
    from torchlean.verify.vnn.engine import fit_property, load_model, model_sizes
    from torchlean.verify.vnn.vnnlib import read_vnnlib

    graph, params = load_model(inst.onnx_path)
    n, m = model_sizes(graph)
    prop = fit_property(read_vnnlib(inst.vnnlib_path), n, m)
    x, _ = v.counterexample
    method, ys = Confirmer(graph, params).outputs(x)
    if method != "exact":  # interval enclosure: every point must be unsafe
        from torchlean.verify.vnn.confirm import _surely_unsafe

        return any(c.box.contains(x) and _surely_unsafe(c, ys) for c in prop.cases)
    return prop.is_counterexample(x, ys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None, help="the vnncomp2021 folder")
    ap.add_argument("--category", action="append", choices=CATEGORIES,
                    help="category to run (repeatable; default: all)")
    ap.add_argument("--limit", type=int, default=None, help="first N instances per category")
    ap.add_argument("--stride", type=int, default=1, help="every K-th instance (a sample)")
    ap.add_argument("--max-timeout", type=float, default=None,
                    help="cap on each instance's timeout, seconds")
    ap.add_argument("--out", default="vnncomp_results.csv", help="results CSV")
    ap.add_argument("--check", action="store_true", help="re-check holds certificates")
    ap.add_argument("--check-max-leaves", type=int, default=2000)
    ap.add_argument("--match", action="append", default=None,
                    help="only instances whose 'onnx vnnlib' contains this (repeatable)")
    ap.add_argument("--alpha-after", type=int, default=None,
                    help="boxes input splitting bounds before alpha-CROWN joins (default: "
                         "the engine's ALPHA_AFTER_BOXES; a huge value: CROWN alone)")
    args = ap.parse_args(argv)

    from torchlean.verify.vnn import engine
    from torchlean.verify.vnn.engine import verify_instance
    from torchlean.verify.vnn.results import read_instances
    from torchlean.verify.vnn.tree_certificate import check_tree_certificate

    root = args.root or _default_root()
    if root is None or not os.path.isdir(root):
        where = args.root or "../shared/benchmarks/vnncomp2021 and /work/shared/..."
        print(f"the VNN-COMP 2021 benchmarks are absent (looked in {where}); nothing to run",
              file=sys.stderr)
        return 1
    cats = args.category or list(CATEGORIES)
    rows: list[dict[str, Any]] = []
    certdir = tempfile.mkdtemp(prefix="torchlean-vnncomp-")
    for cat in cats:
        csv_path = os.path.join(root, cat, "instances.csv")
        if not os.path.isfile(csv_path):
            print(f"{cat}: {csv_path} is absent; skipped")
            continue
        insts = read_instances(csv_path)[:: max(1, args.stride)][: args.limit]
        if args.match:
            insts = [i for i in insts if any(m in f"{i.onnx} {i.vnnlib}" for m in args.match)]
        if args.alpha_after is not None:
            engine.ALPHA_AFTER_BOXES = args.alpha_after
        for k, inst in enumerate(insts):
            limit = inst.timeout if args.max_timeout is None else min(inst.timeout,
                                                                       args.max_timeout)
            cert = os.path.join(certdir, f"{cat}-{k}.json")
            t0 = time.monotonic()
            try:
                v = verify_instance(inst.onnx_path, inst.vnnlib_path, limit, certificate=cert)
                status, detail, phases = v.status, v.detail, dict(v.phases)
            except Exception as e:  # noqa: BLE001  (a bench row records any failure)
                v, status, detail, phases = None, "error", f"{type(e).__name__}: {e}", {}
            secs = time.monotonic() - t0
            check = ""
            if status == "violated" and v is not None:
                check = "ok" if _recheck_violated(inst, v) else "WRONG"
            elif status == "holds" and args.check:
                import json

                with open(cert, encoding="utf-8") as f:
                    leaves = sum(len(c.get("leaves", c.get("refuted", [])))
                             for c in json.load(f)["cases"])
                if leaves > args.check_max_leaves:
                    check = f"unchecked ({leaves} leaves)"
                else:
                    res = check_tree_certificate(cert, inst.onnx_path, inst.vnnlib_path)
                    check = (f"ok ({res.leaves} leaves, {res.seconds:.1f} s)" if res.ok
                             else f"WRONG: {res.reason}")
            rows.append({"category": cat, "onnx": inst.onnx, "vnnlib": inst.vnnlib,
                         "timeout": limit, "verdict": status, "seconds": round(secs, 3),
                         "attack_s": round(phases.get("attack", 0.0), 3),
                         "bounds_s": round(phases.get("bounds", 0.0), 3),
                         "branching_s": round(phases.get("branching", 0.0), 3),
                         "check": check, "detail": detail[:200]})
            print(f"{cat} {k + 1}/{len(insts)} {inst.onnx} {inst.vnnlib}: {status} "
                  f"{secs:.2f} s {check}", flush=True)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["category"])
        w.writeheader()
        w.writerows(rows)
    _summary(rows, root, args.max_timeout)
    return 0


def _summary(rows: list[dict[str, Any]], root: str, cap: float | None) -> None:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["category"]].append(r)
    print(f"\nper-instance timeout: the CSV's{'' if cap is None else f', capped at {cap:g} s'}")
    print("category   run solved holds violated unknown timeout error  s/solved  "
          "attack/bounds/branching s")
    for cat, rs in by.items():
        count: dict[str, int] = defaultdict(int)
        for r in rs:
            count[r["verdict"]] += 1
        solved = [r for r in rs if r["verdict"] in ("holds", "violated")]
        mean = sum(r["seconds"] for r in solved) / len(solved) if solved else float("nan")
        split = "/".join(f"{sum(r[k] for r in rs):.0f}"
                         for k in ("attack_s", "bounds_s", "branching_s"))
        print(f"{cat:10} {len(rs):3} {len(solved):6} {count['holds']:5} {count['violated']:8} "
              f"{count['unknown']:7} {count['timeout']:7} {count['error']:5} {mean:9.2f}  "
              f"{split}")
        print(f"           {_published(root, cat)}")
    wrong = [r for r in rows if str(r["check"]).startswith("WRONG")]
    checked = [r for r in rows if str(r["check"]).startswith("ok")]
    holds = [r for r in rows if r["verdict"] == "holds"]
    print(f"wrong verdicts found by re-checking: {len(wrong)} ({len(checked)} verdicts "
          f"re-checked: every violated, and {sum(1 for r in checked if r['verdict'] == 'holds')}"
          f" of {len(holds)} holds certificates)")


if __name__ == "__main__":
    sys.exit(main())
