"""Step 6's tables: builds, publications, instances and links, read from the real state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from shipyard.demo.farmview import PublicationRow
from shipyard.formats.farm import BuildView


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    return table


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def builds_table(builds: list[BuildView]) -> Table:
    rows = [(b.id, b.package, b.version or "", b.status or b.state,
             b.worker or "", b.publish_state or "",
             _cut(b.reason or b.publish_error or "", 90))
            for b in sorted(builds, key=lambda b: b.id)]
    return _table("Builds (farm)", ["id", "package", "version", "state", "worker",
                                    "publication", "reason"], rows)


def publications_table(publications: list[PublicationRow]) -> Table:
    rows = [(p.serial, p.priority, ", ".join(p.channels) or "(re-signed)", p.status,
             p.finished) for p in publications]
    return _table("Publications (repository generations)",
                  ["generation", "priority", "channels", "status", "finished"], rows)


def instances_table(status: list[dict[str, Any]]) -> Table:
    rows = [(s["service"], s["package"], s["state"], s.get("pid") or "", s.get("user") or "")
            for s in status]
    return _table("Instances (node)", ["service", "package", "state", "pid", "user"], rows)


def links_table(links: list[dict[str, Any]]) -> Table:
    rows = [(r.get("interface") or "*", r["announcer"], r.get("acceptor") or "-", r["state"],
             r.get("error") or "") for r in links]
    return _table("Links (node)", ["interface", "announcer", "acceptor", "state", "error"],
                  rows)


def fleet_links_table(rows: list[dict[str, Any]]) -> Table:
    return _table("Links across hosts (fleet links)",
                  ["interface", "announcer", "node", "acceptor", "node", "state", "error"],
                  [(r.get("interface") or "", r["announcer"], r.get("announcer_node") or "",
                    r["acceptor"], r.get("acceptor_node") or "", r["state"],
                    r.get("last_error") or "") for r in rows])


def print_all(console: Console, builds: list[BuildView],
              publications: list[PublicationRow], status: list[dict[str, Any]],
              links: list[dict[str, Any]], fleet_links: list[dict[str, Any]]) -> None:
    for table in (builds_table(builds), publications_table(publications),
                  instances_table(status), links_table(links),
                  fleet_links_table(fleet_links)):
        console.print(table)
