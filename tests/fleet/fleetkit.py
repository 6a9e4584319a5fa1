"""A fleet under test, every part a real process: coordinators (``shipyard farm serve``
under Uvicorn), a signed repository served over HTTP by ``python -m http.server``, and
node agents (``shipyard node agent``), each node with its own ``SHIPYARD_HOME`` and its own
loopback address (127.0.1.N) as its advertised address. No node reads another's files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import EXAMPLES, SHIPYARD, Result, make_env
from helpers import free_port, kill_all, processes_under, public_tmpdir, wait_until

PACKAGE = "org.example:svc-script:1.0.0"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None


def run(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120) -> Result:
    proc = subprocess.run([*SHIPYARD, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"shipyard {' '.join(args)} exited {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return result


def one_line_error(result: Result, code: int = 1) -> str:
    assert result.returncode == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shipyard: error: "), result.stderr
    return lines[0]


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
    procs: list[Proc] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    repo_url: str = ""
    public_key: Path | None = None
    _admin: str = ""

    # -- the repository ------------------------------------------------------------------------

    def publish_examples(self, *names: str, versions: tuple[str, ...] = ()) -> None:
        """Publish examples (and, with ``versions``, svc-script again at those versions)."""
        from shipyard.pkg.pack import pack_directory
        from shipyard.repo.keys import keygen
        from shipyard.repo.layout import init_repository
        from shipyard.repo.publish import publish
        from shipyard.repo.upload import upload

        repo = self.base / "repository"
        key = keygen(self.base / "keys" / "repository.key")
        self.public_key = key.public_path
        init_repository(repo, signing_key=key.private_path)
        for name in names:
            upload(None, repo, pack_directory(EXAMPLES / name, self.base / "out"))
        for version in versions:
            source = self.base / "src" / f"svc-script-{version}"
            shutil.copytree(EXAMPLES / "svc-script", source)
            manifest = source / "shipyard.toml"
            manifest.write_text(manifest.read_text().replace('version = "1.0.0"',
                                                             f'version = "{version}"'))
            upload(None, repo, pack_directory(source, self.base / "out"))
        publish(None, repo)
        port = free_port()
        log = self.base / "http.log"
        with open(log, "wb") as handle:
            popen = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                      "127.0.0.1", "--directory", str(repo)],
                                     stdout=handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.procs.append(Proc("http", popen, log))
        self.repo_url = f"http://127.0.0.1:{port}/"

        def up() -> bool:
            try:
                return httpx.get(self.repo_url + "current/release.json",
                                 timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the repository's web server")

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
        log = self.base / f"{name}.{len(self.procs)}.log"
        with open(log, "wb") as handle:
            popen = subprocess.Popen([*SHIPYARD, *args], env=env, stdout=handle,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_coordinator(self, port: int = 0, name: str = "coordinator",
                          **env: str) -> Proc:
        proc = self.spawn(name, ["farm", "serve", "--bind", f"127.0.0.1:{port}"],
                          {**self.coordinator_env, **env})

        def listening() -> str | None:
            if not proc.alive():
                raise AssertionError(f"coordinator exited: {proc.output()}")
            for line in proc.output().splitlines():
                if "listening on " in line:
                    return line.split("listening on ", 1)[1].split()[0]
            return None

        proc.url = wait_until(listening, 60, "the coordinator to listen")

        def healthy() -> bool:
            try:
                return httpx.get(f"{proc.url}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "the coordinator to answer")
        return proc

    def token(self, role: str, fresh: bool = False) -> str:
        if role == "admin" and self._admin and not fresh:
            return self._admin
        result = run(self.coordinator_env, "farm", "token", "create", "--role", role)
        secret = result.stdout.strip()
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
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.popen.pid, sig)
        proc.popen.wait(timeout=60)

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=30)
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
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
