"""Work pools: run independent work units in this process, in N local processes, or on
an existing Dask cluster, with one interface.

    with WorkPool(workers=2) as pool:                     # or scheduler="tcp://host:8786"
        shared = pool.share(model)                        # travels once per worker
        for index, outcome in pool.run(certify_one, units, shared):
            ...                                           # as units finish, any order

`workers=1` (the default) runs in-process, in order, with no Dask at all. Otherwise the
pool uses `dask.distributed` (the optional extra `[distributed]`): a `LocalCluster` of
single-threaded worker processes, or a `Client` to the scheduler at `scheduler` (or one
the caller passes). Dask re-runs the units of a worker that dies elsewhere, so each
unit's outcome is yielded exactly once; a unit that raises yields a `UnitError` with the
cause and the other units go on. Units must be pure functions of their arguments, so the
outcomes do not depend on the number of workers or the scheduler.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = ["WorkPool", "UnitError", "ClusterError", "Shared"]

CONNECT_TIMEOUT_S = 6.0  # the error must come within 10 s, imports and CLI start included
_RESUBMIT = 5  # reruns of a unit whose finished result was lost with its worker


class ClusterError(RuntimeError):
    """The cluster cannot be used: unreachable scheduler, mismatched versions, no Dask."""


@dataclass(frozen=True)
class UnitError:
    """A unit that raised: the exception's type and message, and the traceback text."""

    kind: str
    message: str
    trace: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class Shared:
    """A value placed once per worker (`WorkPool.share`); pass it among a unit's arguments."""

    value: Any


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run one unit; an exception becomes a `UnitError` value (so it reaches the driver
    as an outcome, not as a failed future that Dask might retry)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  (the unit's failure is its outcome)
        return UnitError(type(e).__name__, str(e), traceback.format_exc())


def _values(unit: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(a.value if isinstance(a, Shared) else a for a in unit)


def _dask() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise ClusterError("running on several workers needs Dask: "
                           "pip install 'torchlean[distributed]'") from None


class WorkPool:
    """N local workers, or a Dask cluster, behind `share` and `run` (see the module)."""

    def __init__(self, workers: int = 1, *, scheduler: str | None = None,
                 client: Any = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if scheduler is not None and client is not None:
            raise ValueError("give a scheduler address or a client, not both")
        self.workers = workers
        self.scheduler = scheduler
        self._client = client
        self._own_client = False
        self._cluster: Any = None
        self._runs = 0  # run() calls so far: part of each unit's key, unique per pool
        self._shared: dict[Any, Any] = {}  # scattered key -> its value, to place it again
        self._renewed: dict[Any, Any] = {}  # lost scattered key -> its replacement future

    # -- lifecycle -------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The `dask.distributed.Client` in use (None in-process or outside `with`)."""
        return self._client

    @property
    def in_process(self) -> bool:
        """Whether units run in this process (one worker, no cluster)."""
        return self.workers == 1 and self.scheduler is None and self._client is None

    def __enter__(self) -> WorkPool:
        if self.in_process or self._client is not None:
            if self._client is not None:
                self._check_versions()
            return self
        dd = _dask()
        if self.scheduler is not None:
            try:
                self._client = dd.Client(self.scheduler, timeout=CONNECT_TIMEOUT_S,
                                         set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise ClusterError(f"cannot reach the Dask scheduler at {self.scheduler} "
                                   f"within {CONNECT_TIMEOUT_S:g} s: {e}") from None
        else:
            dask = importlib.import_module("dask")
            # Dask's statistical profiler samples each worker's stack every 10 ms: in
            # these pure-Python units it costs more than it tells; and the nanny's
            # MALLOC_TRIM_THRESHOLD_ (65536) turns off glibc's adaptive mmap threshold, so
            # every large NumPy temporary is a fresh mmap: CROWN bounds ran 1.5x slower
            # (docs/scale.md). None leaves the variable unset in the worker.
            with dask.config.set({
                    "distributed.worker.profile.enabled": False,
                    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = dd.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, host="127.0.0.1",
                    worker_dashboard_address=None)
            self._client = dd.Client(self._cluster, set_as_default=False)
        self._own_client = True
        self._check_versions()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and the local cluster this pool started (not a given client)."""
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def _check_versions(self) -> None:
        """Refuse a cluster whose Python or Dask versions differ from this client's."""
        versions = self._client.get_versions(check=False)
        mine = versions.get("client", {}).get("packages", {})
        places = [("scheduler", versions.get("scheduler", {}))]
        places += [(f"worker {w}", v) for w, v in versions.get("workers", {}).items()]
        for where, info in places:
            theirs = (info or {}).get("packages", {})
            for pkg in ("python", "dask", "distributed", "numpy"):
                a, b = mine.get(pkg), theirs.get(pkg)
                if a is not None and b is not None and a != b:
                    raise ClusterError(f"version mismatch for {pkg}: this client has {a}, "
                                       f"the {where} has {b}")

    # -- work --------------------------------------------------------------------------
    def share(self, value: Any) -> Shared:
        """`value`, placed once on every worker (in-process: kept as it is)."""
        [shared] = self.share_many([value])
        return shared

    def share_many(self, values: Sequence[Any]) -> list[Shared]:
        """Each of `values` placed once on every worker, in one round trip."""
        if self.in_process or not values:
            return [Shared(v) for v in values]
        if self._client is None:
            raise RuntimeError("use the pool inside a `with` block")
        futures = self._client.scatter(list(values), broadcast=True, hash=False)
        for future, value in zip(futures, values, strict=True):
            self._shared[future.key] = value
        return [Shared(f) for f in futures]

    def _reshare(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """`args` with every shared value whose data the cluster lost placed again. (Dask
        may keep a scattered value on one worker only, e.g. its memory manager trims
        replicas; if that worker dies, units that need it are cancelled.)"""
        out = []
        for a in args:
            key = getattr(a, "key", None)
            while key in self._renewed:  # already placed again for another unit
                a = self._renewed[key]
                key = a.key
            if key in self._shared and a.status != "finished":
                [a] = self._client.scatter([self._shared[key]], broadcast=True, hash=False)
                self._shared[a.key] = self._shared[key]
                self._renewed[key] = a
            out.append(a)
        return tuple(out)

    def run(self, fn: Callable[..., Any], units: Iterable[Sequence[Any]],
            *shared: Shared) -> Iterator[tuple[int, Any]]:
        """Run `fn(*unit, *shared values)` for every unit; yield (index, outcome) as each
        finishes. An outcome is fn's result or a `UnitError`. A `Shared` among a unit's
        own arguments is passed as its value too (e.g. each unit's model of several)."""
        extra = tuple(s.value for s in shared)
        if self.in_process:
            for i, unit in enumerate(units):
                yield i, _call(fn, (*_values(unit), *extra))
            return
        if self._client is None:
            raise RuntimeError("use the pool inside a `with` block")
        dd = _dask()
        self._runs += 1
        run = f"unit-{os.getpid()}-{id(self)}-{self._runs}"
        futures: dict[Any, int] = {}
        calls: dict[int, tuple[Any, ...]] = {}
        for i, unit in enumerate(units):
            calls[i] = (*_values(unit), *extra)
            futures[self._client.submit(_call, fn, calls[i], pure=False,
                                        key=f"{run}-{i}")] = i
        tries = dict.fromkeys(calls, 0)
        # results come with the completions (gathered on the client's loop, not one
        # blocking round trip per unit)
        pending = dd.as_completed(list(futures), loop=self._client.loop, with_results=True,
                                  raise_errors=False)
        for fut, result in pending:
            i = futures.pop(fut)
            if fut.status == "finished":
                outcome = result
            else:
                # A finished result held only by a worker that died can come back
                # cancelled or lost rather than recomputed; the unit is pure, so run it
                # again (a bounded number of times). Each index is still yielded once.
                if fut.status != "error" and tries[i] < _RESUBMIT:
                    tries[i] += 1
                    calls[i] = self._reshare(calls[i])
                    again = self._client.submit(_call, fn, calls[i], pure=False,
                                                key=f"{run}-{i}-again{tries[i]}")
                    futures[again] = i
                    pending.add(again)
                    continue
                e = result if isinstance(result, BaseException) else fut.exception()
                outcome = UnitError(type(e).__name__, str(e), "")
            del calls[i]
            yield i, outcome
