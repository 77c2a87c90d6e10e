"""Scale-out figures: the shipped ACAS Xu instances on 2 local workers against 1, the
overhead of one work unit, a simulation of 8 and 32 workers, and the memory of one unit.

    python bench/bench_scale.py [--limit 180] [--cap 10] [--units 400] [--skip-memory]

1. Wall time of `run_vnncomp` over the ACAS Xu instances (`shared/benchmarks/vnncomp2021/
   acasxu/instances.csv`, found above the repository; the first `--limit` rows, each
   timeout capped at `--cap` s) in this process, and on 2 local worker processes of an
   already started `LocalCluster` (its start is reported apart). The verdicts must agree.
2. Overhead per unit: `--units` trivial units (return their argument) through the pool,
   (wall time x workers) / units, in ms.
3. Simulation of N = 1, 2, 8, 32 workers from the measured per-instance seconds (as each
   unit measured itself) plus the measured overhead: units go in input order to the first
   free worker (what Dask's scheduler does for independent tasks of equal priority); the
   makespan is the finish time of the last worker. An instance is one unit, so the slowest
   instance bounds every N. Splitting one instance: `--sub-onnx`/`--sub-prop` (default
   4_2 prop_2, the slowest the engine solves within its CSV timeout on one core) run with
   its CSV timeout through `verify_instance(..., pool=)` with no pool, `WorkPool(1)` (in
   process) and `WorkPool(workers=2)`: wall time, the driver's CPU time, each unit's wall
   and CPU (its thread) time, whether verdicts and trees agree (the leaf counts; with
   `--certificates` the certificate bytes, which hold every alpha-CROWN leaf's slopes,
   about 300 kB a leaf), the overhead per unit (a batch's wall time beyond its busiest
   worker's units, per unit), and the model of `_model` for 1, 2, 8, 32 workers.
   `--subdomains-only` runs just this part.
4. Memory of one unit, in a fresh process after the model is loaded: the peak of the
   Python and NumPy allocations (tracemalloc) while it runs, and the growth of the
   resident set; for one ACAS Xu instance unit and one MNIST (256x2) robustness unit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path("benchmarks") / "vnncomp2021"
# the slowest ACAS Xu instance the engine solves within its CSV timeout (116 s) on one core
# (docs/verify-vnncomp.md: holds in about 45 s, 5337 leaves, 3136 of them alpha-CROWN's)
SUB_ONNX, SUB_PROP = "ACASXU_run2a_4_2_batch_2000.onnx", "prop_2.vnnlib"


def _shared_benchmarks() -> Path | None:
    for up in [ROOT, *ROOT.parents]:
        if (up / "shared" / BENCH / "acasxu" / "instances.csv").exists():
            return up / "shared" / BENCH
    return None


def _subset(src: Path, limit: int, cap: float, folder: str) -> Path:
    rows = [r for r in src.read_text().splitlines() if r.strip()][:limit]
    out = []
    for r in rows:
        onnx, prop, limit_s = r.split(",")
        out.append(f"{onnx},{prop},{min(float(limit_s), cap):g}")
    path = Path(folder) / "instances.csv"
    path.write_text("\n".join(out) + "\n")
    return path


def _makespan(times: list[float], workers: int, overhead: float) -> float:
    free = [0.0] * workers
    for t in times:
        k = min(range(workers), key=free.__getitem__)
        free[k] += t + overhead
    return max(free)


def _trivial(i: int) -> int:
    return i


def _process_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _cpu_of(client: Any) -> float:
    """The CPU seconds the client's worker processes have used so far, summed."""
    return float(sum(client.run(_process_cpu).values()))


def _memory(kind: str, bench: Path) -> tuple[float, float]:
    """(peak traced allocation, resident-set growth) in MiB of one unit in a fresh process
    (module docstring)."""
    code = f"""
import tracemalloc, numpy as np, psutil
from fractions import Fraction
from torchlean.verify.scale import load_model, _verify_unit, _certify_unit
from torchlean.verify.vnn.vnnlib import read_vnnlib
kind, bench = {kind!r}, {str(bench)!r}
me = psutil.Process()
if kind == "acasxu":
    model = load_model(bench + "/acasxu/ACASXU_run2a_1_1_batch_2000.onnx")
    prop = read_vnnlib(bench + "/acasxu/prop_1.vnnlib")
    run = lambda: _verify_unit(prop, 30.0, model)
else:
    model = load_model(bench + "/mnistfc/mnist-net_256x2.onnx")
    x = np.random.default_rng(0).uniform(0, 1, size=model[0].inputs[0].shape[1:])
    run = lambda: _certify_unit([(0, x, 0)], [Fraction(1, 100)], "crown", False, model)
before = me.memory_info().rss
tracemalloc.start()
run()
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(peak / 2**20, (me.memory_info().rss - before) / 2**20)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir(), timeout=300, check=True)
    peak, rss = out.stdout.strip().splitlines()[-1].split()
    return float(peak), float(rss)


def main(argv: list[str] | None = None) -> int:
    """Print the figures of the module docstring."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=180, help="instances (first rows)")
    p.add_argument("--cap", type=float, default=10.0, help="per-instance timeout cap, s")
    p.add_argument("--units", type=int, default=400, help="trivial units for the overhead")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--sub-onnx", default=SUB_ONNX, help="instance for the subdomain part")
    p.add_argument("--sub-prop", default=SUB_PROP)
    p.add_argument("--subdomains-only", action="store_true", help="only that part")
    p.add_argument("--unit-boxes", type=int, default=None,
                   help="boxes per subdomain work unit (default: the engine's, 64 of 256)")
    p.add_argument("--certificates", action="store_true",
                   help="write the subdomain runs' certificates and compare their bytes")
    args = p.parse_args(argv)

    from torchlean.verify.scale import load_model, run_vnncomp
    from torchlean.verify.vnn import engine
    from torchlean.verify.workers import WorkPool

    bench = _shared_benchmarks()
    if bench is None:
        print("the ACAS Xu benchmark (shared/benchmarks/vnncomp2021/acasxu) is not here")
        return 1
    print(f"machine: {os.cpu_count()} cores; instances: {bench / 'acasxu'}")
    sub_label, sub = _subdomain_instance(engine, bench / "acasxu", args.sub_onnx,
                                         args.sub_prop, args.certificates, args.unit_boxes)
    if args.subdomains_only:
        _report_subdomains(sub, sub_label)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        csv = _subset(bench / "acasxu" / "instances.csv", args.limit, args.cap, tmp)
        root = bench / "acasxu"
        load_model(root / "ACASXU_run2a_1_1_batch_2000.onnx")  # imports onnx: not timed
        t0, c0 = time.perf_counter(), time.process_time()
        serial = run_vnncomp(csv, root, Path(tmp) / "R1.csv")
        t1, cpu1 = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        with WorkPool(workers=2) as local:  # the library's own local cluster
            client = local.client
            client.wait_for_workers(2)
            start = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), _cpu_of(client)
            two = run_vnncomp(csv, root, Path(tmp) / "R2.csv", client=client)
            t2, cpu2 = time.perf_counter() - t0, _cpu_of(client) - c0
            same = [r.verdict for r in two.rows] == [r.verdict for r in serial.rows]
            with WorkPool(client=client) as pool:
                t0 = time.perf_counter()
                done = sum(1 for _ in pool.run(_trivial, [(i,) for i in range(args.units)]))
                trivial = time.perf_counter() - t0
            overhead_ms = trivial * 2 / done * 1000
            slow = max(range(len(serial.rows)), key=lambda i: serial.rows[i].seconds)
    n = len(serial.rows)
    print(f"\n1. {n} ACAS Xu instances (timeouts capped at {args.cap:g} s)")
    print(f"   1 worker (in process): {t1:8.2f} s")
    print(f"   2 workers            : {t2:8.2f} s   speedup {t1 / t2:.2f}x   "
          f"(+ {start:.2f} s to start the local cluster, not counted)")
    busy1, busy2 = sum(r.seconds for r in serial.rows), sum(r.seconds for r in two.rows)
    print(f"   unit seconds summed  : {busy1:8.2f} s (1 worker), {busy2:8.2f} s (2 workers): "
          f"a ratio near 2 means the two workers did not get two free cores")
    print(f"   CPU seconds          : {cpu1:8.2f} s (this process), {cpu2:8.2f} s (the 2 "
          f"worker processes): {cpu2 / t2:.2f} cores busy on 2 workers")
    print(f"   load average now     : {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    counts = ", ".join(f"{s} {sum(r.verdict == s for r in serial.rows)}"
                       for s in engine.STATUSES)
    print(f"   verdicts identical: {same}   ({counts})")
    print(f"\n2. overhead per unit: {overhead_ms:.2f} ms  ({done} trivial units on 2 workers, "
          f"wall x workers / units)")
    times = [r.seconds for r in serial.rows]
    print(f"\n3. simulated makespan of the {n} instances (per-unit overhead {overhead_ms:.2f} ms)")
    base = _makespan(times, 1, overhead_ms / 1000)
    for w in (1, 2, 8, 32):
        m = _makespan(times, w, overhead_ms / 1000)
        print(f"   {w:>3} workers: {m:8.2f} s   speedup {base / m:6.2f}x")
    print(f"   slowest instance: {serial.rows[slow].onnx} {serial.rows[slow].vnnlib} "
          f"{times[slow]:.2f} s ({serial.rows[slow].verdict}): one unit, so it takes "
          f"{times[slow]:.2f} s at any N")
    _report_subdomains(sub, sub_label)
    if not args.skip_memory:
        print("\n4. memory of one unit in a fresh process, model loaded: peak of the traced "
              "allocations (tracemalloc) / growth of the resident set")
        kinds = [("ACAS Xu instance (prop_1, 1_1)", "acasxu")]
        if (bench / "mnistfc" / "mnist-net_256x2.onnx").exists():
            kinds.append(("MNIST 256x2 robustness, crown", "mnist"))
        for label, kind in kinds:
            peak, rss = _memory(kind, bench)
            print(f"   {label:<32}: {peak:7.2f} MiB / {rss:7.2f} MiB")
    return 0


def _subdomain_instance(engine: Any, root: Path, onnx: str, prop: str,
                        certificates: bool, unit: int | None
                        ) -> tuple[str, dict[str, _Run]]:
    """The subdomain runs of one instance of the CSV, with its CSV timeout."""
    rows = [r.split(",") for r in (root / "instances.csv").read_text().split()]
    limit = next(float(t) for o, v, t in rows if o == onnx and v == prop)
    with tempfile.TemporaryDirectory() as tmp:
        runs = _subdomain_runs(engine, root / onnx, root / prop, limit,
                               tmp if certificates else None, unit)
    return f"{onnx} {prop} (CSV timeout {limit:g} s)", runs


def _timed(fn: Any, *args: Any) -> tuple[Any, float, float, int]:
    """fn(*args) with the wall and CPU seconds it took where it ran (the CPU time of its
    own thread: a Dask worker's process time also counts its event loop and heartbeats),
    and the id of the process it ran in."""
    w, c = time.perf_counter(), time.thread_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.thread_time() - c, os.getpid()


Unit = tuple[float, float, int, int]  # wall s, CPU s, boxes, process id


class _TimedPool:
    """A WorkPool that records, for each `run` (one search step), its wall time, and each
    unit's wall and CPU seconds where it ran, its boxes and its process."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.workers = pool.workers
        self.batches: list[tuple[float, list[Unit]]] = []

    def share(self, value: Any) -> Any:
        return self.pool.share(value)

    def run(self, fn: Any, units: Any, *shared: Any) -> Any:
        from torchlean.verify.workers import UnitError
        units = list(units)
        t0 = time.perf_counter()
        seen: list[Unit] = []
        for i, out in self.pool.run(_timed, [(fn, *u) for u in units], *shared):
            if isinstance(out, UnitError):
                yield i, out
                continue
            res, wall, cpu, pid = out
            seen.append((wall, cpu, int(units[i][0].shape[0]), pid))
            yield i, res
        self.batches.append((time.perf_counter() - t0, seen))


@dataclass
class _Run:
    """One run of the subdomain instance: verdict and its detail, certificate bytes, wall
    and driver CPU seconds, and the pool's per-batch record."""

    status: str
    detail: str
    cert: bytes
    wall: float
    driver_cpu: float
    batches: list[tuple[float, list[Unit]]]

    @property
    def unit_cpu(self) -> float:
        return sum(u[1] for _, us in self.batches for u in us)

    @property
    def unit_wall(self) -> float:
        return sum(u[0] for _, us in self.batches for u in us)

    @property
    def units(self) -> int:
        return sum(len(us) for _, us in self.batches)


def _subdomain_runs(engine: Any, onnx: Path, prop: Path, timeout: float,
                    tmp: str | None, unit: int | None) -> dict[str, _Run]:
    """The instance with pool=None, WorkPool(1) (in process) and WorkPool(workers=2);
    certificates in `tmp` when given; `unit` boxes a work unit (None: the engine's)."""
    from torchlean.verify.scale import load_model
    from torchlean.verify.workers import WorkPool
    model = load_model(onnx)
    out: dict[str, _Run] = {}
    for name, workers in (("no pool", 0), ("WorkPool(1)", 1), ("WorkPool(2)", 2)):
        cert = Path(tmp) / f"cert{workers}.json" if tmp is not None else None
        with WorkPool(workers=max(workers, 1)) as pool:
            if pool.client is not None:
                pool.client.wait_for_workers(workers)
            timed = _TimedPool(pool) if workers else None
            w, c = time.perf_counter(), time.process_time()
            v = engine.verify_instance(model, prop, timeout, certificate=cert, pool=timed,
                                       unit_boxes=unit)
            w, c = time.perf_counter() - w, time.process_time() - c
        out[name] = _Run(v.status, v.detail,
                         cert.read_bytes() if cert is not None and cert.exists() else b"",
                         w, c, timed.batches if timed else [])
    return out


def _model(one: _Run, two: _Run, n: int, cpu: bool = False) -> float:
    """Predicted seconds on n workers: T(n) = D + sum_b (makespan of batch b's units on n
    workers, each unit's seconds plus o); D the driver's own seconds and the units'
    seconds from the in-process run (their CPU seconds when `cpu`: free cores), o the
    per-unit overhead from the 2-worker run."""
    o = _overhead(two)
    k = 1 if cpu else 0
    driver = (one.driver_cpu if cpu else one.wall) - sum(u[k] for _, us in one.batches
                                                         for u in us)
    return driver + sum(_makespan([u[k] for u in us], n, o) for _, us in one.batches)


def _overhead(run: _Run) -> float:
    """Seconds per unit the pool adds: each batch's wall time beyond its busiest worker's
    units (summed per process), over its units, averaged over the batches."""
    per = []
    for wall, us in run.batches:
        if us:
            busy: dict[int, float] = {}
            for u in us:
                busy[u[3]] = busy.get(u[3], 0.0) + u[0]
            per.append((wall - max(busy.values())) / len(us))
    return sum(per) / max(len(per), 1)


def _report_subdomains(runs: dict[str, _Run], label: str) -> None:
    base, one, two = runs["no pool"], runs["WorkPool(1)"], runs["WorkPool(2)"]
    print(f"\n   subdomains of {label} (branch-and-bound batches on the pool):")
    for name, r in runs.items():
        extra = (f"; {len(r.batches)} batches, {r.units} units, unit wall / CPU "
                 f"{r.unit_wall:.2f} / {r.unit_cpu:.2f} s" if r.batches else "")
        print(f"   {name:<12}: {r.status:<8} {r.wall:7.2f} s wall, driver CPU "
              f"{r.driver_cpu:6.2f} s{extra}")
    print(f"   speedup 2 workers vs no pool: {base.wall / two.wall:.2f}x "
          f"(vs WorkPool(1): {one.wall / two.wall:.2f}x); load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    same_v = len({(r.status, r.detail) for r in runs.values()}) == 1
    certs = {r.cert for r in runs.values()}
    same_t = ("not written (--certificates)" if certs == {b""} else
              str(len(certs) == 1))
    print(f"   verdicts and details (leaf counts) identical: {same_v}; certificates "
          f"byte-identical: {same_t}")
    units = two.units / max(len(two.batches), 1)
    print(f"   overhead per unit on 2 workers: {_overhead(two) * 1000:.2f} ms "
          f"(batch wall beyond its busiest worker's units, per unit; {units:.1f} units "
          f"a batch)")
    print("   model T(N) = D + sum_b makespan_N(batch b's unit seconds + o): D driver s and "
          "unit s from WorkPool(1), o the per-unit overhead")
    print("   (wall: the in-process unit seconds as measured; CPU: their CPU seconds, i.e. "
          "free cores)")
    free1 = _model(one, two, 1, cpu=True)
    for n in (1, 2, 8, 32):
        t, c = _model(one, two, n), _model(one, two, n, cpu=True)
        print(f"   {n:>3} workers: wall {t:7.2f} s  speedup {one.wall / t:5.2f}x;   CPU "
              f"{c:7.2f} s  speedup {free1 / c:5.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
