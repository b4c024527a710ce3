"""Where parallel work runs: local processes (the default) or a Ray cluster, behind one interface.

Dataset labelling, probe sweeps, opening-book building and multi-seed training hand
independent, idempotent work items to an `Engine`::

    with make_engine("local", jobs=2) as engine:          # or make_engine("ray", address=...)
        for result in engine.map_unordered(work, items):   # results as they finish
            ...

* `LocalEngine`: ``jobs`` spawned worker processes on this machine (``jobs=1``: in this
  process). Workers die with their parent, even after ``kill -9``; Ctrl-C and SIGTERM stop
  them at once.
* `RayEngine`: one Ray actor per worker slot. With no address (and no ``RAY_ADDRESS`` in the
  environment) it starts a private local Ray instance with ``jobs`` CPUs and no dashboard,
  and stops it on close; with an address it joins that cluster and leaves it running. Work
  is scheduled dynamically: items are handed out in the order given, two queued per actor
  (to hide the round trip), the next one to whichever actor finishes, so a caller that sorts
  items by expected cost (most expensive first) gets the longest tasks started first. An actor whose process dies is restarted and its item
  retried, so items must be idempotent (write their outputs atomically).

Worker state persists across items in both engines (a worker is a long-lived process):
module-level caches in the work function's module keep, e.g., a compiled solver and its
transposition table warm.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
Initializer = Callable[[], None] | None


class EngineTerminated(SystemExit):
    """Raised in the driver on SIGTERM while a local pool runs, so that the pool is stopped on the way out."""


class Engine:
    """Runs ``fn(item)`` for many items in parallel; see the module docstring."""

    name = "engine"

    def __init__(self, jobs: int) -> None:
        if not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
        self.jobs = jobs

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any], initializer: Initializer = None,
                      ) -> Iterator[Any]:
        """Yield ``fn(item)`` for every item, as each finishes (not in order).

        :param fn: a module-level function (it is pickled by reference).
        :param items: picklable work items, started in this order.
        :param initializer: run once in each worker before its first item (e.g. thread limits).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (and a Ray instance this engine started)."""

    def describe(self) -> str:
        return f"{self.name} engine, {self.jobs} worker(s)"

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _local_worker_init(parent_pid: int, initializer: Initializer) -> None:
    from common.processes import die_with_parent

    die_with_parent(parent_pid, signal.SIGKILL, ignore_ctrl_c=True)
    if initializer is not None:
        initializer()


class LocalEngine(Engine):
    """``jobs`` spawned processes on this machine (1: in this process)."""

    name = "local"

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any], initializer: Initializer = None,
                      ) -> Iterator[Any]:
        items = list(items)
        if self.jobs <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
            return
        import multiprocessing as mp

        previous = None
        if threading.current_thread() is threading.main_thread():
            def on_sigterm(signum, frame):
                raise EngineTerminated(128 + signum)

            previous = signal.signal(signal.SIGTERM, on_sigterm)
        pool = mp.get_context("spawn").Pool(min(self.jobs, len(items)),
                                            initializer=partial(_local_worker_init, os.getpid(), initializer))
        try:
            results = pool.imap_unordered(fn, items)
            for _ in range(len(items)):
                while True:
                    try:
                        item = results.next(timeout=0.5)  # short waits keep Ctrl-C and SIGTERM prompt
                        break
                    except mp.TimeoutError:
                        continue
                yield item
            pool.close()
        finally:
            pool.terminate()
            pool.join()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


class RayEngine(Engine):
    """Ray actors, one per worker slot, on a private local instance or on the cluster at `address`.

    :param jobs: worker slots (actors); with no address also the CPUs of the local instance.
    :param address: a Ray cluster address (``ray://host:10001`` or ``host:6379``); default
        ``$RAY_ADDRESS``, else a private local instance.
    :param max_retries: times an item is retried when its worker's process dies (-1: always).
    """

    name = "ray"

    def __init__(self, jobs: int, address: str | None = None, max_retries: int = 3) -> None:
        super().__init__(jobs)
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a dependency
            raise RuntimeError("the ray engine needs the 'ray' package (pip install ray)") from exc
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.max_retries = max_retries
        self._owns = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "logging_level": logging.WARNING, "configure_logging": False}
            if self.address:
                ray.init(address=self.address, **options)
                log.info("joined the Ray cluster at %s", self.address)
            else:
                # work items and results are small: a modest object store suits laptops and containers with
                # a small /dev/shm
                ray.init(num_cpus=jobs, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **options)
                log.info("started a local Ray instance with %d CPUs", jobs)
            self._owns = True

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any], initializer: Initializer = None,
                      ) -> Iterator[Any]:
        import ray

        items = list(items)
        if not items:
            return
        worker_class = _ray_worker_class()
        actors = [worker_class.options(max_restarts=-1, max_task_retries=self.max_retries).remote(initializer)
                  for _ in range(min(self.jobs, len(items)))]
        pending: dict[Any, Any] = {}
        upcoming = iter(items)
        try:
            # two items queued per actor hide the round trip between items; the second waits in the actor's
            # queue, so scheduling stays dynamic to within one item per worker
            for actor in [*actors, *actors]:
                item = next(upcoming, _DONE)
                if item is _DONE:
                    break
                pending[actor.run.remote(fn, item)] = actor
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                if not ready:
                    continue
                ref = ready[0]
                actor = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the item's own error, as the local engine raises it
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None
                    raise
                item = next(upcoming, _DONE)
                if item is not _DONE:
                    pending[actor.run.remote(fn, item)] = actor
                yield result
        finally:
            for actor in actors:
                ray.kill(actor)

    def close(self) -> None:
        import ray

        if self._owns and ray.is_initialized():
            ray.shutdown()
            self._owns = False

    def describe(self) -> str:
        where = f"the cluster at {self.address}" if self.address else "a local instance"
        return f"ray engine, {self.jobs} worker(s) on {where}"


_DONE = object()
_WORKER_CLASS = None


def _ray_worker_class():
    """The Ray actor class (defined once, when the ray engine is first used)."""
    global _WORKER_CLASS
    if _WORKER_CLASS is None:
        import ray

        @ray.remote(num_cpus=1)
        class EngineWorker:
            """A long-lived worker: runs the initializer once, then any number of items."""

            def __init__(self, initializer: Initializer) -> None:
                if initializer is not None:
                    initializer()

            def run(self, fn: Callable[[Any], Any], item: Any) -> Any:
                return fn(item)

            def pid(self) -> int:
                return os.getpid()

        _WORKER_CLASS = EngineWorker
    return _WORKER_CLASS


def check_engine_options(name: str | Engine, address: str | None = None) -> None:
    """Raise ValueError for an unknown engine name or an address given to the local engine (before any work)."""
    if isinstance(name, Engine):
        return
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; engines: {', '.join(ENGINES)}")
    if name == "local" and address:
        raise ValueError(f"--address {address} is for the ray engine; add --engine ray")


def make_engine(name: str | Engine = "local", jobs: int = 2, address: str | None = None) -> Engine:
    """An engine by name (``local`` or ``ray``); an `Engine` passes through.

    :param address: Ray cluster address (``ray`` only; default ``$RAY_ADDRESS``).
    :raises ValueError: an unknown name, or an address for the local engine.
    """
    check_engine_options(name, address)
    if isinstance(name, Engine):
        return name
    return LocalEngine(jobs) if name == "local" else RayEngine(jobs, address)


@contextmanager
def engine_scope(name: str | Engine = "local", jobs: int = 2, address: str | None = None) -> Iterator[Engine]:
    """`make_engine` as a context: an engine made here is closed on exit; an `Engine` passed in is left open
    (its owner closes it)."""
    engine = make_engine(name, jobs, address)
    try:
        yield engine
    finally:
        if engine is not name:
            engine.close()


def one_thread_per_worker() -> None:
    """Worker initializer: one torch and one BLAS thread per worker, so that workers share the cores."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
