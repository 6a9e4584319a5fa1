"""A fleet under test, every part a real process: coordinators (``shipyard farm serve``
under Uvicorn), a signed repository served over HTTP by ``python -m http.server``, and
node agents (``shipyard node agent``), each node with its own ``SHIPYARD_HOME`` and its own
loopback address (127.0.1.N) as its advertised address. No node reads another's files."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import EXAMPLES, SHIPYARD, Result, make_env
from kit import net
from kit.cli import one_line_error, run  # noqa: F401  (one_line_error: re-exported)
from kit.coordinator import create_token, start_coordinator
from kit.dirs import public_tmpdir
from kit.manifest import amend_manifest
from kit.procs import Proc, Procs, kill_all, processes_under
from kit.repository import Repository

PACKAGE = "org.example:svc-script:1.0.0"


@dataclass
class Node:
    fleet: Fleet
    name: str
    address: str
    home: Path
    agent: Proc | None = None

    @property
    def env(self) -> dict[str, str]:
        env = make_env(self.home)
        env.update(self.fleet.repo_env)
        env["SHIPYARD_NODE_BACKOFF_MAX"] = "1"
        env["SHIPYARD_NODE_SOURCE_ADDRESS"] = self.address  # its own loopback address
        return env

    def cli(self, *args: str, check: bool = True) -> Result:
        return run(self.env, *args, check=check)

    def join(self, url: str, *labels: str) -> Result:
        extra = [arg for label in labels for arg in ("--label", label)]
        return self.cli("node", "join", "--coordinator", url, "--token",
                        self.fleet.token("node", fresh=True), "--name", self.name,
                        "--address", self.address, *extra)

    def start_agent(self, wait: float = 5.0) -> Proc:
        self.agent = self.fleet.spawn(f"agent-{self.name}", [
            "node", "agent", "--wait", str(wait), "--heartbeat", "0.5"], self.env)
        return self.agent

    def services(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.cli("svc", "status", "--json").stdout)
        return {row["service"]: row for row in rows}

    def state(self, service: str) -> str | None:
        row = self.services().get(service)
        return row["state"] if row else None

    def credential(self) -> str:
        return (self.home / "state" / "node" / "credential").read_text().strip()


@dataclass
class Fleet:
    base: Path
    db_url: str
    lease: float = 3.0
    poll: float = 0.5
    nodes: list[Node] = field(default_factory=list)
    repo_url: str = ""
    public_key: Path | None = None
    _admin: str = ""

    def __post_init__(self) -> None:
        self.running = Procs(self.base)

    @property
    def procs(self) -> list[Proc]:
        return self.running.started

    # -- the repository ------------------------------------------------------------------------

    def publish_examples(self, *names: str, versions: tuple[str, ...] = ()) -> None:
        """Publish examples (and, with ``versions``, svc-script again at those versions)."""
        repository = Repository(self.base)
        self.public_key = repository.public_key
        sources = [EXAMPLES / name for name in names]
        for version in versions:
            source = self.base / "src" / f"svc-script-{version}"
            shutil.copytree(EXAMPLES / "svc-script", source)
            amend_manifest(source / "shipyard.toml", package={"version": version})
            sources.append(source)
        repository.publish(*sources, out=self.base / "out")
        self.repo_url = repository.serve(self.running)

    @property
    def repo_env(self) -> dict[str, str]:
        return {"SHIPYARD_REPO_URL": self.repo_url, "SHIPYARD_REPO_KEY": str(self.public_key)}

    # -- coordinators --------------------------------------------------------------------------

    @property
    def coordinator_env(self) -> dict[str, str]:
        home = self.base / "coordinator"
        home.mkdir(exist_ok=True)
        env = make_env(home)
        env.update(self.repo_env)
        env.update({"SHIPYARD_FARM_DB": self.db_url,
                    "SHIPYARD_FLEET_LEASE_SECONDS": str(self.lease),
                    "SHIPYARD_FLEET_POLL_SECONDS": str(self.poll)})
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        return self.running.spawn(name, [*SHIPYARD, *args], env)

    def start_coordinator(self, port: int = 0, name: str = "coordinator",
                          **env: str) -> Proc:
        return start_coordinator(self.running, {**self.coordinator_env, **env},
                                 bind=f"127.0.0.1:{port}", name=name, timeout=60)

    def token(self, role: str, fresh: bool = False) -> str:
        if role == "admin" and self._admin and not fresh:
            return self._admin
        secret = create_token(self.coordinator_env, role)
        if role == "admin":
            self._admin = secret
        return secret

    def operator(self, url: str, *args: str, check: bool = True) -> Result:
        env = {**self.coordinator_env, "SHIPYARD_FARM_URL": url,
               "SHIPYARD_FARM_TOKEN": self.token("admin")}
        return run(env, "fleet", *args, check=check)

    def api(self, url: str, secret: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"},
                            timeout=30)

    def node_views(self, url: str) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.operator(url, "nodes", "--json").stdout)
        return {row["name"]: row for row in rows}

    # -- nodes -----------------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        home = self.base / f"node-{name}"
        home.mkdir()
        node = Node(self, name, f"127.0.1.{len(self.nodes) + 2}", home)
        self.nodes.append(node)
        return node

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        proc.kill(sig, timeout=60)

    def close(self) -> None:
        self.running.close()
        for node in self.nodes:
            kill_all(processes_under(node.home))


@pytest.fixture(name="make_fleet")
def _make_fleet() -> Iterator[Any]:
    fleets: list[Fleet] = []
    with public_tmpdir("shipyard-fleet-") as base:
        def make(db_url: str | None = None, **kwargs: Any) -> Fleet:
            root = base / f"fleet{len(fleets)}"
            root.mkdir()
            fleet = Fleet(root, db_url or f"sqlite:///{root / 'coordinator.sqlite'}",
                          **kwargs)
            fleets.append(fleet)
            return fleet

        try:
            yield make
        finally:
            for fleet in fleets:
                fleet.close()


def http_ok(port: int) -> bool:
    return net.http_ok(f"http://127.0.0.1:{port}/")
