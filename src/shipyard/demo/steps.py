"""The demo's seven steps (issue 7), in order. Each returns the lines it wants shown under its
progress line and raises a :class:`ShipyardError` naming what did not happen; every check
asks the real thing: the coordinator's API, the repository's database, the node's CLI, the
chat server over TCP.

The steps live in :mod:`.farmsteps` (set up, push, broken build) and :mod:`.nodesteps`
(node, upgrade) and :mod:`.fleet` (two nodes linked across hosts), on the
:class:`~.context.Demo` of :mod:`.context`; the summary is here.
"""

from __future__ import annotations

from collections.abc import Callable

from shipyard.demo import summary
from shipyard.demo.context import Demo
from shipyard.demo.farmsteps import step_broken, step_push, step_setup
from shipyard.demo.farmview import publications
from shipyard.demo.fleet import step_fleet
from shipyard.demo.nodesteps import step_node, step_upgrade

__all__ = ["STEPS", "Demo", "step_summary"]


def step_summary(demo: Demo) -> list[str]:
    builds = demo.view.builds()
    pubs = publications(demo.layout.repository)
    status = demo.node.status()
    links = demo.node.links()
    summary.print_all(demo.console, builds, pubs, status, links, demo.fleet_links)
    counts: dict[str, int] = {}
    for build in builds:
        counts[build.state] = counts.get(build.state, 0) + 1
    shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return [
        f"{len(builds)} builds ({shown}), {len(pubs)} publications, {len(status)} instances, "
        f"{len(links)} links, {len(demo.fleet_links)} cross-host link(s)",
        f"web UI: {demo.machine.url}/  (API: {demo.machine.url}/docs)",
        f"repository: {demo.machine.repo_url}/current/release.json",
        f"everything lives in {demo.layout.root}; commands run: "
        f"{demo.layout.logs / 'commands.log'}",
    ]


STEPS: list[tuple[str, str, Callable[[Demo], list[str]]]] = [
    ("set up", "set up: git repository, push hook, signed repository, coordinator and two "
     "workers", step_setup),
    ("push", "push: the hook requests builds, two workers build them, the publisher "
     "publishes (security first)", step_push),
    ("node", "node: install over HTTP, register, boot, link; the transports authenticate",
     step_node),
    ("upgrade", "upgrade: a new transport version is built, published, upgraded and "
     "relinked", step_upgrade),
    ("broken build", "a broken build: the failure is shown and its mail caught",
     step_broken),
    ("fleet", "fleet: two nodes with their own agents, a link across hosts",
     step_fleet),
    ("summary", "summary", step_summary),
]
