"""The farm under test: real coordinators (``shipyard farm serve`` under Uvicorn), real
workers, a real bare git repository with the installed hook, all on loopback."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest

import helpers
from conftest import SHIPYARD, Shipyard
from kit.cli import Result, run
from kit.coordinator import start_coordinator
from kit.git import GIT_ID, git  # noqa: F401  (re-exported)
from kit.manifest import manifest_text
from kit.procs import Proc, Procs
from shipyard.errors import ShipyardError
from shipyard.farm.client import FarmClient


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """:func:`helpers.wait_until` with the farm's longer default deadline."""
    return helpers.wait_until(predicate, timeout, what, interval=interval)


def manifest(group: str, ident: str, version: str, command: str | None = None,
             maintainer: str = "Pat Maintainer <pat@example.org>") -> str:
    build = {"command": command} if command is not None else None
    return manifest_text(group, ident, version, maintainer=maintainer,
                         tables={"build": build})


@dataclass
class Farm:
    shipyard: Shipyard
    root: Path
    db_url: str
    lease: float = 3.0
    extra_env: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.running = Procs(self.root)

    @property
    def procs(self) -> list[Proc]:
        return self.running.started

    @property
    def env(self) -> dict[str, str]:
        return {**self.shipyard.env, "SHIPYARD_FARM_DB": self.db_url,
                "SHIPYARD_FARM_LEASE_SECONDS": str(self.lease),
                "SHIPYARD_FARM_POLL_SECONDS": "0.2", **self.extra_env}

    def cli(self, *args: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> Result:
        return run(self.env, *args, check=check, timeout=timeout, input=input)

    def token(self, role: str) -> str:
        """A token of ``role`` (made with the library: the CLI has tests of its own)."""
        if role not in self._tokens:
            from shipyard.farm.db import FarmDB
            from shipyard.farm.tokens import create_token

            db = FarmDB(self.db_url)
            try:
                self._tokens[role] = create_token(db, role, f"test-{role}")[0]
            finally:
                db.dispose()
        return self._tokens[role]

    def token_file(self, role: str) -> str:
        """A 0600 file holding a token of ``role``, as the docs say to pass one (never on
        the command line, where ps shows it)."""
        path = self.root / f"{role}.token"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(self.token(role) + "\n")
        return str(path)

    # -- processes ------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        return self.running.spawn(name, [*SHIPYARD, *args], env or self.env)

    def start_coordinator(self, port: int = 0, repo: Path | None = None,
                          name: str = "coordinator", env: dict[str, str] | None = None) -> Proc:
        args = ["--repo", str(repo)] if repo is not None else []
        return start_coordinator(self.running, env or self.env, bind=f"127.0.0.1:{port}",
                                 args=args, name=name)

    def start_worker(self, name: str, url: str, capacity: int = 1,
                     extra: tuple[str, ...] = ()) -> Proc:
        return self._spawn(f"worker-{name}", [
            "farm", "worker", "--coordinator", url, "--token-file", self.token_file("worker"),
            "--name", name, "--capacity", str(capacity),
            "--workdir", str(self.root / f"workdir-{name}"), *extra])

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        proc.kill(sig)

    def close(self) -> None:
        self.running.close()

    # -- API --------------------------------------------------------------------------------

    def api(self, url: str, role: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(role)}"} if role else {}
        return httpx.Client(base_url=url, headers=headers, timeout=30)

    def build(self, url: str, build_id: int) -> dict[str, Any]:
        with FarmClient(url, timeout=10) as client:
            return client.get(f"/api/builds/{build_id}")

    def builds(self, url: str, **params: Any) -> list[dict[str, Any]]:
        with FarmClient(url) as client:
            return client.get("/api/builds", params={"limit": 1000, **params})

    def wait_state(self, url: str, build_id: int, *states: str,
                   timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            try:
                build = self.build(url, build_id)
            except ShipyardError:  # not answering yet, or no such build yet
                return None
            return build if build.get("state") in states else None

        return wait_until(done, timeout, what=f"build {build_id} to be {' or '.join(states)}")

    def log(self, url: str, build_id: int) -> str:
        with FarmClient(url, timeout=10) as client:
            return client.get(f"/api/builds/{build_id}/log")["text"]


@dataclass
class Source:
    """A bare repository with the farm's hook, and a clone developers push from."""

    farm: Farm
    bare: Path
    work: Path

    @classmethod
    def create(cls, farm: Farm, url: str, name: str = "src") -> Source:
        bare = farm.root / f"{name}.git"
        work = farm.root / f"{name}-work"
        git("init", "-q", "--bare", str(bare))
        farm.cli("farm", "hook", "install", str(bare), "--coordinator", url,
                 "--token-file", farm.token_file("hook"))
        git("init", "-q", str(work))
        git("remote", "add", "origin", str(bare), cwd=work)
        return cls(farm, bare, work)

    def write(self, relpath: str, text: str, mode: int = 0o644) -> None:
        path = self.work / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)

    def package(self, subdir: str, group: str, ident: str, version: str,
                command: str | None = None, **kwargs: Any) -> None:
        self.write(f"{subdir}/shipyard.toml", manifest(group, ident, version, command,
                                                       **kwargs))

    def push(self, message: str = "change") -> tuple[str, str]:
        """Commit everything and push; returns (commit, the push's stderr)."""
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        commit = git("rev-parse", "HEAD", cwd=self.work).stdout.strip()
        pushed = git("push", "origin", "HEAD:refs/heads/master", cwd=self.work,
                     env=self.farm.env)
        return commit, pushed.stderr

    def spool(self) -> list[Path]:
        spool = self.bare / "shipyard-spool"
        return sorted(spool.glob("*.json")) if spool.is_dir() else []


def request_ids(push_output: str) -> list[int]:
    """Build ids the hook reported as created."""
    ids = []
    for line in push_output.splitlines():
        if "shipyard farm: build " in line:
            ids.append(int(line.split("shipyard farm: build ", 1)[1].split()[0]))
    return ids


# ---------------------------------------------------------------------------------------
# Fixtures: a test module imports the ones it uses (``from farmkit import _farm``)


@pytest.fixture(name="make_farm")
def _make_farm(shipyard: Shipyard, tmp_path: Path) -> Iterator[Callable[..., Farm]]:
    farms: list[Farm] = []

    def make(db_url: str, **kwargs: Any) -> Farm:
        root = tmp_path / f"farm{len(farms)}"
        root.mkdir()
        farm = Farm(shipyard, root, db_url, **kwargs)
        farms.append(farm)
        return farm

    yield make
    for farm in farms:
        farm.close()


@pytest.fixture(name="farm")
def _farm(make_farm: Callable[..., Farm], db_url: str) -> Farm:
    """A farm on SQLite and, in a second run, on PostgreSQL."""
    return make_farm(db_url)


@pytest.fixture(name="sqlite_farm")
def _sqlite_farm(make_farm: Callable[..., Farm], tmp_path: Path) -> Farm:
    return make_farm(f"sqlite:///{tmp_path / 'farm.sqlite'}")


class Mailbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture(name="smtp")
def _smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    from aiosmtpd.controller import Controller

    port = helpers.free_port()
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
