"""The demo's fleet step (issue 16): two more "hosts" on this machine, each its own
Shipyard home with its own node agent and its own loopback address (127.0.1.N; no network
namespaces in the demo), joined to the demo's coordinator with one-time tokens. The chat
server is assigned to one and a transport to the other through ``fleet assign``; the
coordinator pairs them across hosts, the password crosses sealed for the server's node,
and the transport really authenticates to the server at the address it learned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.demo.commands import SHIPYARD, Runner, clean_env
from shipyard.demo.context import Demo
from shipyard.demo.node import EXAMPLES_GROUP, server_status
from shipyard.demo.waiting import until
from shipyard.errors import ShipyardError

NODES = (("a", "127.0.1.2"), ("b", "127.0.1.3"))
SERVER = "1.chat.fleet.demo"
TRANSPORT = "1.echo.fleet.demo"


@dataclass
class FleetHost:
    name: str
    address: str
    home: Path

    @property
    def fqdn(self) -> str:
        return f"{self.name}.fleet.demo.test"


def homes(root: Path) -> list[Path]:
    return [root / f"fleet-{name}" for name, _ in NODES]


def _free_port(address: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _configure(host: FleetHost, repo_url: str, key: Path) -> None:
    config = host.home / "etc" / "shipyard.ini"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "# Written by 'shipyard demo': a fleet node's settings.\n"
        f"[repo]\nurl = {repo_url}\nchannel = stable\nkey = {key}\n\n"
        f"[link]\nfqdn = {host.fqdn}\n\n"
        "[svc]\nstop_timeout = 5\n\n"
        f"[node]\nsource_address = {host.address}\nbackoff_max = 2\n", encoding="utf-8")
    host.home.chmod(0o755)


def fleet_cli(demo: Any, admin: str, *args: str) -> Any:
    """``shipyard fleet ...`` as the operator on the farm host (``farm.url`` from its
    shipyard.ini, the admin token from the environment)."""
    return demo.farm.run("fleet", *args, secret_env={"SHIPYARD_FARM_TOKEN": admin})


def step_fleet(demo: Demo) -> list[str]:
    layout, machine = demo.layout, demo.machine
    log = layout.logs / "commands.log"
    admin = demo.farm.run("farm", "token", "create", "--role", "admin", "--name",
                          "demo-fleet-admin").stdout.strip()
    hosts = [FleetHost(name, address, layout.root / f"fleet-{name}")
             for name, address in NODES]
    for host in hosts:
        _configure(host, machine.repo_url, layout.node_key)
        token = demo.farm.run("farm", "token", "create", "--role", "node", "--name",
                              f"demo-{host.name}").stdout.strip()
        Runner(host.home, log).run("node", "join", "--coordinator", machine.url, "--name",
                                   host.name, "--address", host.address,
                                   secret_env={"SHIPYARD_NODE_TOKEN": token})
        demo.procs.spawn(f"agent-{host.name}", [*SHIPYARD, "node", "agent", "--wait", "10"],
                         clean_env(host.home), layout.logs / f"agent-{host.name}.log")
    server, transport = hosts
    port = _free_port(server.address)
    chat = f"{EXAMPLES_GROUP}:chat-server:1.0.0"
    echo = f"{EXAMPLES_GROUP}:jabber-echo:1.0.0"
    fleet_cli(demo, admin, "assign", SERVER, "--package", chat, "--nodes", server.name,
              "--", f"--bind={server.address}", f"--port={port}")
    fleet_cli(demo, admin, "assign", TRANSPORT, "--package", echo, "--nodes", transport.name)
    component = f"echo.{transport.fqdn}"

    def authenticated() -> bool:
        status = server_status(port, server.address)
        return bool(status and status.get("authenticated") == [component])

    until(authenticated, 120, f"{component} on {transport.name} to authenticate to the chat "
          f"server on {server.name} ({server.address}:{port})",
          lambda: f"the server says {server_status(port, server.address)}")

    def linked() -> list[dict[str, Any]] | None:
        rows = json.loads(fleet_cli(demo, admin, "links", "--json").stdout)
        return rows if [(r["announcer"], r["acceptor"], r["state"]) for r in rows] == [
            (TRANSPORT, SERVER, "linked")] else None

    rows = until(linked, 60, "fleet links to show the pair linked")
    demo.fleet_links = rows
    demo.fleet_admin = admin
    nodes = json.loads(fleet_cli(demo, admin, "nodes", "--json").stdout)
    if sorted(n["name"] for n in nodes if n["lease_state"] == "alive") != ["a", "b"]:
        raise ShipyardError(f"fleet nodes: {nodes}")
    return [
        f"nodes a ({server.address}) and b ({transport.address}) joined "
        f"{machine.url}, each with its own home and agent",
        f"fleet assign {SERVER} -> a (port {port}), {TRANSPORT} -> b",
        f"{component} on b learned a's address and authenticated to the chat server on a",
        f"fleet links: {TRANSPORT} (b) -> {SERVER} (a): linked",
    ]
