"""What the demo's steps share: the :class:`Demo` they all act on, and the checks more
than one of them makes (a build succeeded, every instance runs, the transports are
authenticated), each asking the real thing and raising a :class:`ShipyardError` that names
what did not happen."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from shipyard.demo import source
from shipyard.demo.commands import Runner
from shipyard.demo.farmview import FarmView
from shipyard.demo.layout import Layout
from shipyard.demo.machine import Machine
from shipyard.demo.mail import Mail
from shipyard.demo.node import Node, server_status
from shipyard.demo.procs import Processes
from shipyard.demo.waiting import until
from shipyard.errors import ShipyardError
from shipyard.formats.farm import BuildView

BUILD_TIMEOUT = 150.0
PUBLISH_TIMEOUT = 60.0


@dataclass
class Demo:
    layout: Layout
    console: Console
    procs: Processes
    farm: Runner
    node_cli: Runner
    machine: Machine
    node: Node
    packages: dict[str, Path] = field(default_factory=dict)
    first_push: list[int] = field(default_factory=list)
    upgrade: dict[str, Any] = field(default_factory=dict)
    failed_build: BuildView | None = None
    mail: Mail | None = None
    fleet_links: list[dict[str, Any]] = field(default_factory=list)
    fleet_admin: str = ""

    @property
    def view(self) -> FarmView:
        return FarmView(self.machine.url)

    @classmethod
    def create(cls, layout: Layout, console: Console, verbose: bool) -> Demo:
        echo: Callable[[str], None] | None = None
        if verbose:
            def echo(line: str) -> None:
                console.print(f"    [dim]{line}[/dim]", highlight=False, markup=True)
        log = layout.logs / "commands.log"
        farm = Runner(layout.farm_home, log, echo)
        node_cli = Runner(layout.node_home, log, echo)
        procs = Processes(layout.process_book)
        machine = Machine(layout, farm, procs)
        node = Node(layout, node_cli, "", machine.taken)
        return cls(layout, console, procs, farm, node_cli, machine, node)


def parallel(actions: list[Callable[[], object]], workers: int = 4) -> list[object]:
    """Run ``actions`` in threads (most of their time is spent in child processes);
    the first failure is raised once all have ended."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(action) for action in actions]
        wait(futures)
    return [future.result() for future in futures]


def require_success(demo: Demo, builds: list[BuildView]) -> None:
    for build in builds:
        if build.state != "succeeded":
            tail = " | ".join(demo.view.log(build.id).strip().splitlines()[-3:])
            raise ShipyardError(f"build {build.id} of {build.package} "
                                f"{build.state}: {build.reason} ({tail})")


def one_build(demo: Demo, pushed: source.Push, package: str) -> BuildView:
    ids = pushed.build_ids()
    if len(ids) != 1:
        raise ShipyardError(f"the push hook requested {len(ids)} build(s), expected one of "
                            f"{package}: {pushed.output.strip()}")
    (build,) = demo.view.wait_finished(ids, BUILD_TIMEOUT)
    return build


def running(demo: Demo) -> list[dict[str, Any]]:
    status = demo.node.status()
    down = [s for s in status if s["state"] != "running"]
    if down:
        raise ShipyardError(", ".join(f"{s['service']} is {s['state']}" for s in down))
    return status


def authenticated(demo: Demo, hosts: list[str]) -> dict[str, Any]:
    port = demo.node.chat_port

    def ready() -> dict[str, Any] | None:
        status = server_status(port)
        return status if status and sorted(status["authenticated"]) == sorted(hosts) else None

    return until(ready, 30, f"the chat server to report {', '.join(hosts)} authenticated",
                 lambda: f"the server says {server_status(port)}")
