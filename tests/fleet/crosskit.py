"""A fleet whose nodes are separate "hosts": each in its own network namespace (netkit),
with its own SHIPYARD_HOME (0711: not listable) and its own agent process; the coordinator and the
signed repository's web server run in the root namespace, bound to the bridge address,
the only address the hosts share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import netkit

from conftest import EXAMPLES, SHIPYARD, Result
from helpers import free_port, wait_until


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None


def check(result: subprocess.CompletedProcess[str], what: str) -> Result:
    if result.returncode != 0:
        raise AssertionError(f"{what} exited {result.returncode}\n{result.stdout}\n"
                             f"{result.stderr}")
    return Result(result.returncode, result.stdout, result.stderr)


@dataclass
class CrossFleet:
    kit: netkit.NetKit
    db_url: str = ""
    lease: float = 3.0
    procs: list[Proc] = field(default_factory=list)
    repo_url: str = ""
    public_key: Path | None = None
    url: str = ""
    admin: str = ""
    agents: dict[str, Proc] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.kit.base

    # -- the root namespace: repository and coordinator ------------------------------------------

    def publish_examples(self, *names: str) -> None:
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
        publish(None, repo)
        port = _free_port(self.kit.coordinator_address)
        log = self.base / "http.log"
        with open(log, "wb") as handle:
            popen = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                      self.kit.coordinator_address, "--directory", str(repo)],
                                     stdout=handle, stderr=subprocess.STDOUT)
        self.procs.append(Proc("http", popen, log))
        self.repo_url = f"http://{self.kit.coordinator_address}:{port}/"
        wait_until(lambda: _http_ok(self.repo_url + "current/release.json"), 30,
                   "the repository's web server")

    @property
    def repo_env(self) -> dict[str, str]:
        return {"SHIPYARD_REPO_URL": self.repo_url, "SHIPYARD_REPO_KEY": str(self.public_key),
                "PYTHONUNBUFFERED": "1"}

    @property
    def coordinator_env(self) -> dict[str, str]:
        home = self.base / "coordinator"
        home.mkdir(exist_ok=True, mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env.update(self.repo_env)
        env.update({"SHIPYARD_HOME": str(home),
                    "SHIPYARD_FARM_DB": self.db_url or f"sqlite:///{home / 'fleet.sqlite'}",
                    "SHIPYARD_FLEET_LEASE_SECONDS": str(self.lease),
                    "SHIPYARD_FLEET_POLL_SECONDS": "0.5"})
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str],
              host: netkit.Host | None = None) -> Proc:
        log = self.base / f"{name}.{len(self.procs)}.log"
        with open(log, "wb") as handle:
            if host is None:
                popen = subprocess.Popen(argv, env=env, stdout=handle,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            else:
                popen = host.popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_coordinator(self) -> Proc:
        port = _free_port(self.kit.coordinator_address)
        bind = f"{self.kit.coordinator_address}:{port}"
        proc = self.spawn("coordinator", [*SHIPYARD, "farm", "serve", "--bind", bind],
                          self.coordinator_env)
        self.url = f"http://{bind}"

        def healthy() -> bool:
            if not proc.alive():
                raise AssertionError(f"coordinator exited: {proc.output()}")
            return _http_ok(f"{self.url}/api/health")

        wait_until(healthy, 60, "the coordinator to answer")
        return proc

    def root_cli(self, *args: str) -> Result:
        return check(subprocess.run([*SHIPYARD, *args], capture_output=True, text=True,
                                    env=self.coordinator_env, timeout=120),
                     "shipyard " + " ".join(args))

    def token(self, role: str) -> str:
        secret = self.root_cli("farm", "token", "create", "--role", role).stdout.strip()
        if role == "admin":
            self.admin = secret
        return secret

    def fleet(self, *args: str, ok: bool = True) -> Result:
        env = {**self.coordinator_env, "SHIPYARD_FARM_URL": self.url,
               "SHIPYARD_FARM_TOKEN": self.admin or self.token("admin")}
        result = subprocess.run([*SHIPYARD, "fleet", *args], capture_output=True, text=True,
                                env=env, timeout=120)
        if ok:
            return check(result, "shipyard fleet " + " ".join(args))
        return Result(result.returncode, result.stdout, result.stderr)

    def pairs(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = json.loads(self.fleet("links", "--json").stdout)
        return {(row["announcer"], row["acceptor"]): row for row in rows}

    # -- hosts -------------------------------------------------------------------------------------

    def host_cli(self, host: netkit.Host, *args: str, ok: bool = True) -> Result:
        result = host.run([*SHIPYARD, *args], env=self.repo_env)
        if ok:
            return check(result, f"{host.name}: shipyard " + " ".join(args))
        return Result(result.returncode, result.stdout, result.stderr)

    def join(self, host: netkit.Host) -> None:
        self.host_cli(host, "node", "join", "--coordinator", self.url, "--token",
                      self.token("node"), "--name", host.name, "--address", host.address)

    def start_agent(self, host: netkit.Host) -> Proc:
        proc = self.spawn(f"agent-{host.name}",
                          [*SHIPYARD, "node", "agent", "--wait", "5", "--heartbeat", "0.5"],
                          {**self.repo_env, "SHIPYARD_NODE_BACKOFF_MAX": "1"}, host)
        self.agents[host.name] = proc
        return proc

    def kill_agent(self, host: netkit.Host) -> None:
        proc = self.agents.pop(host.name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=30)

    def close(self) -> None:
        for proc in self.procs:  # shown by pytest only when the test failed
            print(f"===== {proc.name} =====\n" + "\n".join(proc.output().splitlines()[-40:]))
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=30)


def chat(address: str, port: int, *lines: str) -> list[str]:
    """Send client commands to a chat-server; one answer line per command."""
    with socket.create_connection((address, port), timeout=10) as sock:
        reader = sock.makefile("r", encoding="utf-8")
        answers = []
        for line in lines:
            sock.sendall((line + "\n").encode())
            answers.append(reader.readline().strip())
        return answers


def chat_status(address: str, port: int) -> dict[str, Any] | None:
    try:
        return json.loads(chat(address, port, "STATUS")[0])
    except (OSError, ValueError):
        return None


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


__all__ = ["CrossFleet", "chat", "chat_status", "free_port"]
