"""Boot order: the ``after`` graph, its cycles, and a loop that runs it in parallel.

``after`` orders like systemd's ``After=``: an instance starts once every instance it
names has *finished* starting (or failed to), and stops before them at shutdown. It
orders and does not require: one instance failing never keeps the others down, and the
summary names every failure. Instances that are not part of the run (not registered, or
``boot = no`` at boot) impose no order.

:func:`run` drives the steps of :mod:`shipyard.svc.steps` for a whole set: launches go
to a small thread pool (they fork and write files), and the waiting (pid files, grace
periods, stop timeouts) happens in this one loop, so a boot of hundreds of instances costs
neither hundreds of threads nor one grace period per instance.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError
from shipyard.svc.steps import Outcome, Pending, Step

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of ``graph`` (node -> nodes it comes after) as a closed path, or None.

    graphlib finds it; the path is turned to read in ``after`` direction and to start at
    its smallest name, so the same registry always names the same cycle.
    """
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        found = list(reversed(exc.args[1]))[:-1]
        first = found.index(min(found))
        path = found[first:] + found[:first]
        return [*path, path[0]]
    return None


def describe_cycle(cycle: list[str]) -> str:
    return " -> ".join(cycle)


def restrict(graph: Mapping[str, Iterable[str]], nodes: Iterable[str]) -> dict[str, set[str]]:
    """The graph among ``nodes`` only (edges to others are dropped)."""
    keep = set(nodes)
    return {node: {dep for dep in graph.get(node, ()) if dep in keep and dep != node}
            for node in keep}


def reverse(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """Shutdown order: a node stops after every node that started after it."""
    result: dict[str, set[str]] = {node: set() for node in graph}
    for node, deps in graph.items():
        for dep in deps:
            result.setdefault(dep, set()).add(node)
    return result


@dataclass
class Result:
    name: str
    outcome: Outcome | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def run(graph: Mapping[str, set[str]], begin: Callable[[str], Step], *, workers: int,
        on_result: Callable[[Result], None] | None = None) -> dict[str, Result]:
    """Run ``begin`` for every node once its predecessors are done; drive the steps.

    ``workers`` threads run the ``begin`` calls (they fork); 0 runs them in this loop
    (and does not even import the thread pool: a shutdown pays for every import).
    """
    sorter = TopologicalSorter(graph)
    sorter.prepare()  # the callers refuse cycles first (find_cycle)
    ready = sorted(sorter.get_ready())
    results: dict[str, Result] = {}
    launching: dict[Future[Step], str] = {}
    pending: dict[str, Pending] = {}

    def finish(name: str, outcome: Outcome | None, error: str | None) -> None:
        result = Result(name, outcome, error)
        results[name] = result
        if on_result is not None:
            on_result(result)
        sorter.done(name)
        ready.extend(sorted(sorter.get_ready()))

    def settle(name: str, step_fn: Callable[[], Step]) -> None:
        try:
            step = step_fn()
        except ShipyardError as exc:
            pending.pop(name, None)
            finish(name, None, exc.message)
            return
        except Exception as exc:  # a bug in one instance must not stop the others
            pending.pop(name, None)
            finish(name, None, f"internal error: {type(exc).__name__}: {exc}")
            return
        if isinstance(step, Pending):
            pending[name] = step
        else:
            pending.pop(name, None)
            finish(name, step, None)

    pool = _pool(workers) if workers > 0 else None
    try:
        while len(results) < len(graph):
            while ready:
                name = ready.pop(0)
                if pool is None:  # cheap steps: the pool would only cost GIL switches
                    settle(name, functools.partial(begin, name))
                    continue
                launching[pool.submit(begin, name)] = name
            now = time.monotonic()
            due = [name for name, step in pending.items() if step.ready_at <= now]
            for name in due:
                settle(name, pending[name].poll)
            if ready or due:
                continue
            timeout = None
            if pending:
                timeout = max(0.0, min(s.ready_at for s in pending.values()) - now)
            if launching:
                for future in _first_done(launching, timeout):
                    name = launching.pop(future)
                    settle(name, future.result)
            elif pending:
                time.sleep(timeout or 0.0)
            elif len(results) < len(graph):  # pragma: no cover - guarded by prepare()
                raise ShipyardError("boot order is stuck: a cycle in 'after'")
    finally:
        for step in pending.values():
            step.abandon()
        if pool is not None:
            pool.shutdown(wait=True)
    return results


def _pool(workers: int) -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shipyard-svc")


def _first_done(launching: Mapping[Future[Step], str], timeout: float | None
                ) -> set[Future[Step]]:
    from concurrent.futures import FIRST_COMPLETED, wait

    done, _ = wait(list(launching), timeout=timeout, return_when=FIRST_COMPLETED)
    return done
