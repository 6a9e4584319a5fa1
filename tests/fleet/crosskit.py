"""A fleet whose nodes are separate "hosts": each in its own network namespace (netkit),
with its own SHIPYARD_HOME (0711: not listable) and its own agent process; the coordinator and the
signed repository's web server run in the root namespace, bound to the bridge address,
the only address the hosts share."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netkit

from conftest import EXAMPLES, SHIPYARD, Result
from kit.coordinator import start_coordinator
from kit.net import free_port
from kit.procs import Proc, Procs
from kit.repository import Repository


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
    repo_url: str = ""
    public_key: Path | None = None
    url: str = ""
    admin: str = ""
    agents: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.running = Procs(self.kit.base)

    @property
    def procs(self) -> list[Proc]:
        return self.running.started

    @property
    def base(self) -> Path:
        return self.kit.base

    # -- the root namespace: repository and coordinator ------------------------------------------

    def publish_examples(self, *names: str) -> None:
        repository = Repository(self.base)
        self.public_key = repository.public_key
        repository.publish(*(EXAMPLES / name for name in names), out=self.base / "out")
        self.repo_url = repository.serve(self.running, self.kit.coordinator_address)

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
        if host is None:
            return self.running.spawn(name, argv, env)
        return self.running.spawn(name, argv, env, popen=host.popen)

    def start_coordinator(self) -> Proc:
        proc = start_coordinator(self.running, self.coordinator_env,
                                 bind=f"{self.kit.coordinator_address}:0", timeout=60)
        self.url = proc.url
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
        self.agents.pop(host.name).kill()

    def close(self) -> None:
        for proc in self.procs:  # shown by pytest only when the test failed
            print(f"===== {proc.name} =====\n" + "\n".join(proc.output().splitlines()[-40:]))
        self.running.close()


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


__all__ = ["CrossFleet", "chat", "chat_status", "free_port"]
