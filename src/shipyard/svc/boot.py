"""``svc boot`` and ``svc shutdown``: every instance at once, in ``after`` order.

Boot starts the ``boot = yes`` instances; shutdown stops every registered instance that is
not stopped (an instance started by hand must not outlive the machine's shutdown either),
in reverse order. A cycle refuses the boot before anything starts, naming it; at shutdown
a cycle only costs the ordering (stopping must not be refused when the machine goes down).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shipyard.errors import ShipyardError
from shipyard.svc import order, registry, state
from shipyard.svc.context import Context
from shipyard.svc.registry import Registration
from shipyard.svc.status import may_be_active
from shipyard.svc.stop import begin_stop


@dataclass
class Summary:
    action: str
    results: list[order.Result]
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[order.Result]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "instances": [
                {"service": r.name, "ok": r.ok, "error": r.error,
                 **({"result": r.outcome.action, "pid": r.outcome.pid}
                    if r.outcome is not None else {})}
                for r in self.results
            ],
            "failed": [r.name for r in self.failed],
            "warnings": self.warnings,
        }

    def error(self) -> ShipyardError | None:
        if not self.failed:
            return None
        # One line an operator can read: the first few failures, then how many more (all
        # of them are in `svc status` and in --json).
        shown = self.failed[:ERRORS_SHOWN]
        parts = "; ".join(f"{r.name}: {_strip(r.name, r.error or '')}" for r in shown)
        more = len(self.failed) - len(shown)
        if more:
            parts += f"; and {more} more (see 'shipyard svc status')"
        return ShipyardError(f"{self.action}: {len(self.failed)} of {len(self.results)} "
                             f"instance(s) failed: {parts}")


ERRORS_SHOWN = 3


def _strip(name: str, message: str) -> str:
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def after_graph(registrations: list[Registration]) -> dict[str, set[str]]:
    return {str(r.coordinate): set(r.after) for r in registrations}


def check_cycles(graph: dict[str, set[str]], what: str) -> None:
    cycle = order.find_cycle(graph)
    if cycle is not None:
        raise ShipyardError(f"{what}: cycle in 'after': {order.describe_cycle(cycle)}")


def _workers(ctx: Context) -> int:
    return max(1, ctx.settings.svc.boot_workers)


def _has_stop_script(ctx: Context, registration: Registration) -> bool:
    if not ctx.knows_stop(registration.package):
        # One record per package, read without the lock (this only sizes the thread pool),
        # usually answers without reading the package's manifest.
        ctx.learn_stop(state.load(ctx.state_path(registration.coordinate)))
    return ctx.has_stop_script(registration)


def boot(ctx: Context, on_result: Callable[[order.Result], None] | None = None) -> Summary:
    # Here, not at the top: a shutdown (at the machine's shutdown) loads no start code.
    from shipyard.svc.start import begin_start

    registrations = registry.load_all(ctx.settings)
    by_name = {str(r.coordinate): r for r in registrations if r.boot}
    graph = order.restrict(after_graph(registrations), by_name)
    check_cycles(graph, "boot")
    results = order.run(
        graph, lambda name: begin_start(ctx, by_name[name].coordinate, by_name[name]),
        workers=_workers(ctx), on_result=on_result)
    return Summary("boot", [results[name] for name in sorted(results)])


def shutdown(ctx: Context, on_result: Callable[[order.Result], None] | None = None
             ) -> Summary:
    registrations = registry.load_all(ctx.settings)
    by_name = {str(r.coordinate): r for r in registrations if may_be_active(ctx, r)}
    graph = order.restrict(after_graph(registrations), by_name)
    warnings = []
    cycle = order.find_cycle(graph)
    if cycle is not None:
        warnings.append(f"cycle in 'after' ({order.describe_cycle(cycle)}): "
                        "stopping without order")
        graph = {node: set() for node in graph}
    # Signalling is a few system calls; only stop scripts are worth threads.
    workers = _workers(ctx) if any(_has_stop_script(ctx, r) for r in by_name.values()) else 0
    results = order.run(
        order.reverse(graph),
        lambda name: begin_stop(ctx, by_name[name].coordinate, registration=by_name[name]),
        workers=workers, on_result=on_result)
    done = [r for r in (results[name] for name in sorted(results))
            if not (r.outcome and r.outcome.action == "not-running")]
    return Summary("shutdown", done, warnings)
