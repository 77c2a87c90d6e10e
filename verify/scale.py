"""Scale out: a VNN-COMP instance list, or a data set's robustness, over many workers.

    run = run_vnncomp("instances.csv", out="RESULTS.csv", workers=2)   # or scheduler=/client=
    run.rows                        # ResultRow per instance, in input order
    ds = certify_dataset("net.model.json", xs, labels, ["1/100"], workers=2, out="cert.csv")
    ds.certified                    # frozenset of (input index, eps) certified

Work runs through `verify.workers.WorkPool`: in this process (`workers=1`, the default),
in N local processes, or on an existing Dask cluster (`scheduler="tcp://host:8786"`, or a
`dask.distributed.Client`). A work unit is one instance, or a batch of inputs (`batch`);
each model travels once per worker (`WorkPool.share`), never once per unit.

Results are appended to the results CSV atomically as units finish (any order), so a run
stopped at any moment leaves a whole file of the units done; `resume=True` skips them and
refuses a file whose rows are not units of this run, naming the first such row. At the end
the file is rewritten in input order. A unit that raises counts as `unknown` (a data set:
`error`) with its cause in `errors` and, for a VNN-COMP run, in the side file
`RESULTS.csv.errors.csv`; the other units go on.

Determinism: a unit is a pure function of its inputs (the engine's search is seeded), and
each instance's timeout is measured inside its unit, from its start; so verdicts and the
certified set do not depend on the number of workers or the scheduler (except for an
instance whose run time is close to its timeout, which is inherent in any wall-clock limit).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ..runtime.graph import Graph
from ..spec.errors import DataFormatError, ShapeError, UnsupportedOperation
from .bounds.certificate import Certificate, certify_robustness, check_certificate
from .bounds.propagate import as_graph
from .vnn.engine import load_model, verify_instance
from .vnn.results import (
    AtomicCsv,
    Instance,
    ResultRow,
    ResultsCsv,
    match_rows,
    read_csv_rows,
    read_instances,
)
from .vnn.vnnlib import Property, read_vnnlib
from .workers import Shared, UnitError, WorkPool

__all__ = ["VnncompRun", "DatasetRow", "DatasetRun", "run_vnncomp", "certify_dataset",
           "load_model", "errors_path", "DATASET_HEADER"]

Model = tuple[Graph, dict[str, Any]]
ERRORS_HEADER = ("onnx", "vnnlib", "error")
DATASET_HEADER = ("index", "label", "eps", "input_sha256", "certified", "margin_lower",
                  "seconds", "error")


def _pool(workers: int, scheduler: str | None, client: Any) -> WorkPool:
    return WorkPool(workers, scheduler=scheduler, client=client)


# -- VNN-COMP instance lists -------------------------------------------------------------
def errors_path(results: str | os.PathLike[str]) -> str:
    """The side file that holds the cause of each instance that failed with an error."""
    return os.fspath(results) + ".errors.csv"


@dataclass(frozen=True)
class VnncompRun:
    """A finished run: one row per instance in input order, the causes of the instances
    that failed (by index), and how many rows came from the resumed file."""

    rows: list[ResultRow]
    errors: dict[int, str]
    resumed: int


def _verify_unit(prop: Property, timeout: float, model: Model) -> tuple[str, float, str]:
    """One instance: (verdict, seconds, error cause or ""); the clock runs in the unit."""
    t0 = time.monotonic()
    try:
        v = verify_instance(model, prop, timeout)
        return v.status, v.seconds, ""
    except Exception as e:  # noqa: BLE001  (one instance's failure is its outcome)
        return "unknown", time.monotonic() - t0, _cause(e)


def _cause(e: Exception) -> str:
    """A failure's cause: the message of a bad file, else marked as an internal error."""
    if isinstance(e, (DataFormatError, UnsupportedOperation, ShapeError, OSError)):
        return str(e)
    return f"internal error {type(e).__name__}: {e}"


def run_vnncomp(instances: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
                out: str | os.PathLike[str] = "RESULTS.csv", *, workers: int = 1,
                scheduler: str | None = None, client: Any = None, resume: bool = False,
                on_row: Callable[[Instance, ResultRow, str], None] | None = None
                ) -> VnncompRun:
    """Verify every row of a VNN-COMP instances CSV (module docstring); `on_row(instance,
    row, cause)` is called as each instance finishes (cause "" unless it failed).

    Bad CSVs raise DataFormatError; a cluster that cannot be used, ClusterError; `resume`
    on a results file of another instance list, DataFormatError naming its row."""
    source = os.fspath(instances)
    insts = read_instances(source, root)
    out_path = os.fspath(out)
    keys = [(i.onnx, i.vnnlib) for i in insts]
    done: dict[int, ResultRow] = {}
    errors: dict[int, str] = {}
    if resume:
        results, indices = ResultsCsv.resume(out_path, insts, source)
        done = dict(zip(indices, results.rows, strict=True))
        errors = _resumed_errors(out_path, keys, done)
    else:
        results = ResultsCsv.create(out_path)
    resumed = len(done)
    side = AtomicCsv(errors_path(out_path), ERRORS_HEADER,
                     [[*keys[i], why] for i, why in errors.items()])

    def finish(i: int, verdict: str, seconds: float, cause: str) -> None:
        row = ResultRow(insts[i].onnx, insts[i].vnnlib, verdict, seconds)
        done[i] = row
        results.append(row)
        if cause:
            errors[i] = cause
            side.append([*keys[i], cause])
        if on_row is not None:
            on_row(insts[i], row, cause)

    todo = [i for i in range(len(insts)) if i not in done]
    with _pool(workers, scheduler, client) as pool:
        order: list[int] = []  # the instance of each unit, filled as units are submitted

        def units() -> Iterator[tuple[Property, float, Shared]]:
            for i, prop, timeout, model in _vnncomp_units(pool, insts, todo, finish):
                order.append(i)
                yield prop, timeout, model

        for k, outcome in pool.run(_verify_unit, units()):
            i = order[k]
            if isinstance(outcome, UnitError):
                finish(i, "unknown", 0.0, str(outcome))
            else:
                verdict, seconds, cause = outcome
                finish(i, verdict, seconds, cause)
    rows = [done[i] for i in range(len(insts))]
    results.replace(rows)
    side.replace([[*keys[i], errors[i]] for i in sorted(errors)])
    return VnncompRun(rows, dict(sorted(errors.items())), resumed)


def _vnncomp_units(pool: WorkPool, insts: Sequence[Instance], todo: Sequence[int],
                   finish: Callable[[int, str, float, str], None]
                   ) -> Iterator[tuple[int, Property, float, Shared]]:
    """(index, property, timeout, shared model) per instance to run; each model is read and
    shared once. An instance whose files cannot be read is finished here as `unknown`.
    Models are shared in chunks of doubling size: the first units start at once, and a
    long list costs a few round trips to the cluster, not one per model."""
    models: dict[str, Shared | str] = {}
    start, size = 0, 1
    while start < len(todo):
        chunk = todo[start:start + size]
        start, size = start + size, size * 2
        loaded: dict[str, Model] = {}
        for i in chunk:
            path = insts[i].onnx_path
            if path not in models and path not in loaded:
                try:
                    loaded[path] = load_model(path)
                except Exception as e:  # noqa: BLE001  (a bad model fails its instances)
                    models[path] = _cause(e)
        models.update(zip(loaded, pool.share_many(list(loaded.values())), strict=True))
        for i in chunk:
            inst = insts[i]
            t0 = time.monotonic()
            model = models[inst.onnx_path]
            if isinstance(model, str):
                finish(i, "unknown", 0.0, model)
                continue
            try:
                prop = read_vnnlib(inst.vnnlib_path)
            except Exception as e:  # noqa: BLE001  (a bad property fails its instance only)
                finish(i, "unknown", time.monotonic() - t0, _cause(e))
                continue
            yield i, prop, inst.timeout, model


def _resumed_errors(out: str, keys: Sequence[tuple[str, str]],
                    done: Mapping[int, ResultRow]) -> dict[int, str]:
    """The causes recorded for the resumed rows (the side file, when there is one)."""
    path = errors_path(out)
    if not os.path.exists(path):
        return {}
    rows = read_csv_rows(path, ERRORS_HEADER, "errors CSV")
    failed = [i for i in sorted(done) if done[i].verdict == "unknown"]
    sub = [keys[i] for i in failed]
    try:
        at = match_rows(path, [line for line, _ in rows], [(r[0], r[1]) for _, r in rows],
                        sub, out)
    except DataFormatError:  # a stale side file only loses old causes
        return {}
    return {failed[k]: rows[n][1][2] for n, k in enumerate(at)}


# -- data sets ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetRow:
    """One input at one radius: whether it is certified, the smallest claimed margin lower
    bound (exact, as "p/q"), seconds, and the cause when the unit failed."""

    index: int
    label: int
    eps: Fraction
    digest: str
    certified: bool
    margin_lower: str
    seconds: float
    error: str = ""

    def fields(self) -> list[str]:
        """The row as written in the results CSV (`DATASET_HEADER`)."""
        status = "error" if self.error else ("yes" if self.certified else "no")
        return [str(self.index), str(self.label), _rational(self.eps), self.digest, status,
                self.margin_lower, f"{self.seconds:.3f}", self.error]


@dataclass(frozen=True)
class DatasetRun:
    """A finished data-set certification: one row per (input, eps), inputs in order for
    each eps in the order given; how many rows came from the resumed file."""

    rows: list[DatasetRow]
    radii: list[Fraction]
    resumed: int = 0
    certificates: dict[tuple[int, Fraction], str] = field(default_factory=dict)

    @property
    def certified(self) -> frozenset[tuple[int, Fraction]]:
        """The certified set: (input index, eps) pairs."""
        return frozenset((r.index, r.eps) for r in self.rows if r.certified)

    def summary(self) -> dict[Fraction, tuple[int, int, int]]:
        """Per eps: (certified, errors, inputs)."""
        return {e: (sum(r.certified for r in self.rows if r.eps == e),
                    sum(bool(r.error) for r in self.rows if r.eps == e),
                    sum(r.eps == e for r in self.rows)) for e in self.radii}


def _rational(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def _digest(x: np.ndarray[Any, Any]) -> str:
    """A short fingerprint of one input (shape and binary64 bytes), for resume checks."""
    a = np.ascontiguousarray(x, dtype=np.float64)
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def _certify_unit(items: Sequence[tuple[int, np.ndarray[Any, Any], int]],
                  radii: Sequence[Fraction], method: str, check: bool,
                  model: Model) -> list[tuple[int, Fraction, bool, str, float, str,
                                              dict[str, Any] | None]]:
    """A batch of inputs at every radius: (index, eps, certified, min margin, seconds,
    error, certificate document when `check`). With `check` each certificate is re-checked
    exactly here, and counts as certified only when the checker accepts it."""
    graph, params = model
    out: list[tuple[int, Fraction, bool, str, float, str, dict[str, Any] | None]] = []
    for index, x, label in items:
        for eps in radii:
            t0 = time.monotonic()
            try:
                cert, ok = _certify_one(graph, params, x, eps, label, method, check)
                margin = _rational(min(cert.margin_lower))
                out.append((index, eps, ok, margin, time.monotonic() - t0, "",
                            cert.doc if check else None))
            except Exception as e:  # noqa: BLE001  (one input's failure is its outcome)
                out.append((index, eps, False, "", time.monotonic() - t0, _cause(e), None))
    return out


def _certify_one(graph: Graph, params: Mapping[str, Any], x: np.ndarray[Any, Any],
                 eps: Fraction, label: int, method: str, check: bool
                 ) -> tuple[Certificate, bool]:
    if not check:
        cert = certify_robustness(graph, params, x, eps, label, method)
        return cert, cert.certified
    with tempfile.TemporaryDirectory(prefix="torchlean-cert-") as tmp:
        path = os.path.join(tmp, "cert.json")
        cert = certify_robustness(graph, params, x, eps, label, method, path)
        accepted = check_certificate(path, graph, params).accepted
    return cert, cert.certified and accepted


def certify_dataset(model: Any, xs: Any, labels: Any, eps: Sequence[Any], *,
                    params: Mapping[str, Any] | None = None, method: str = "crown",
                    batch: int = 1, workers: int = 1, scheduler: str | None = None,
                    client: Any = None, out: str | os.PathLike[str] | None = None,
                    certificates: str | os.PathLike[str] | None = None,
                    resume: bool = False,
                    on_row: Callable[[DatasetRow], None] | None = None) -> DatasetRun:
    """Certify L-inf robustness of every input `xs[i]` (no batch axis) with label
    `labels[i]` at each radius in `eps` (module docstring).

    `model`: a model file path (`load_model`), a Graph with `params`, or anything
    `certify_robustness` takes (an nn.Built with its `params`). `batch` inputs make one work
    unit. `out`: the results CSV (`DATASET_HEADER`), appended as units finish; with
    `certificates` a folder, each certificate is re-checked exactly and written there as
    `cert-INDEX-P_Q.json`. `on_row` is called as each row finishes."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if method not in ("ibp", "crown"):
        raise ValueError(f"method must be 'ibp' or 'crown', got {method!r}")
    graph, prm = _dataset_model(model, params, xs)
    images = np.asarray(xs, dtype=np.float64)
    ys = [int(v) for v in np.asarray(labels).reshape(-1)]
    if len(ys) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} inputs but {len(ys)} labels")
    radii = list(dict.fromkeys(_fraction(e) for e in eps))
    digests = [_digest(x) for x in images]
    keys = [(str(i), str(ys[i]), _rational(e), digests[i]) for e in radii
            for i in range(len(ys))]
    slot = {(i, e): k * len(ys) + i for k, e in enumerate(radii) for i in range(len(ys))}
    done: dict[int, DatasetRow] = {}
    file: AtomicCsv | None = None
    if out is not None:
        file, done = _open_dataset_csv(os.fspath(out), keys, resume)
    resumed = len(done)
    cert_dir = os.fspath(certificates) if certificates is not None else None
    if cert_dir is not None:
        os.makedirs(cert_dir, exist_ok=True)
    cert_paths: dict[tuple[int, Fraction], str] = {}
    todo = sorted({int(keys[n][0]) for n in range(len(keys)) if n not in done})
    todo_radii = {i: [e for e in radii if slot[(i, e)] not in done] for i in todo}

    def finish(row: DatasetRow, doc: dict[str, Any] | None) -> None:
        n = slot[(row.index, row.eps)]
        done[n] = row
        if doc is not None and cert_dir is not None:
            path = os.path.join(cert_dir, f"cert-{row.index}-{row.eps.numerator}_"
                                f"{row.eps.denominator}.json")
            Certificate(doc).write(path)
            cert_paths[(row.index, row.eps)] = path
        if file is not None:
            file.append(row.fields())
        if on_row is not None:
            on_row(row)

    with _pool(workers, scheduler, client) as pool:
        shared = pool.share((graph, prm))
        groups: dict[tuple[Fraction, ...], list[int]] = {}
        for i in todo:
            groups.setdefault(tuple(todo_radii[i]), []).append(i)
        units: list[tuple[list[tuple[int, np.ndarray[Any, Any], int]], list[Fraction]]] = []
        for radii_left, members in groups.items():
            for s in range(0, len(members), batch):
                part = members[s:s + batch]
                units.append(([(i, images[i], ys[i]) for i in part], list(radii_left)))
        work = [(items, rs, method, cert_dir is not None) for items, rs in units]
        for k, outcome in pool.run(_certify_unit, work, shared):
            items, rs = units[k]
            if isinstance(outcome, UnitError):
                outcome = [(i, e, False, "", 0.0, str(outcome), None)
                           for i, _, _ in items for e in rs]
            for index, e, ok, margin, seconds, error, doc in outcome:
                finish(DatasetRow(index, ys[index], e, digests[index], ok, margin, seconds,
                                  error), doc)
    rows = [done[n] for n in range(len(keys))]
    if file is not None:
        file.replace([r.fields() for r in rows])
    return DatasetRun(rows, radii, resumed, cert_paths)


def _fraction(e: Any) -> Fraction:
    q = Fraction(e.strip()) if isinstance(e, str) else Fraction(e)
    if q < 0:
        raise ValueError(f"eps must be >= 0, got {e!r}")
    return q


def _dataset_model(model: Any, params: Mapping[str, Any] | None, xs: Any) -> Model:
    """(graph, params) of the model given to `certify_dataset`, ready to ship to workers."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    prm = dict(params or {})
    if isinstance(model, Graph):
        return model, prm
    shape = (1, *np.shape(np.asarray(xs))[1:])
    return as_graph(model, prm, shape), prm


def _open_dataset_csv(path: str, keys: Sequence[tuple[str, ...]], resume: bool
                      ) -> tuple[AtomicCsv, dict[int, DatasetRow]]:
    """The results CSV (continued when `resume` and it exists) and the rows it holds, by
    position in `keys`; a row of another data set is refused, naming its line."""
    if not (resume and os.path.exists(path)):
        return AtomicCsv(path, DATASET_HEADER), {}
    rows = read_csv_rows(path, DATASET_HEADER, "results CSV")
    at = match_rows(path, [line for line, _ in rows], [tuple(r[:4]) for _, r in rows], keys,
                    "this data set and these radii")
    done = {}
    for n, (_, r) in zip(at, rows, strict=True):
        done[n] = DatasetRow(int(r[0]), int(r[1]), Fraction(r[2]), r[3], r[4] == "yes", r[5],
                             float(r[6]), r[7])
    return AtomicCsv(path, DATASET_HEADER, [r for _, r in rows]), done
