"""A running coordinator: the real ``shipyard farm serve`` (Uvicorn) on a loopback port,
with the home and database its ``env`` names, waited on until it answers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from kit.cli import SHIPYARD, run
from kit.net import http_ok
from kit.procs import Popen, Proc, Procs


def listening_url(proc: Proc, timeout: float = 30.0, what: str = "the coordinator") -> str:
    """The URL a ``farm serve`` printed it listens on (the port was maybe 0)."""
    def listening() -> str | None:
        found = re.search(r"listening on (\S+)", proc.output())
        return found.group(1) if found else None

    return proc.wait_for(listening, timeout, f"{what} to listen")


def start_coordinator(procs: Procs, env: dict[str, str], *, bind: str = "127.0.0.1:0",
                      args: Sequence[str] = (), name: str = "coordinator",
                      timeout: float = 30.0, popen: Popen | None = None) -> Proc:
    """Start a coordinator among ``procs`` (which stop it) and return it once its health
    check answers; its ``url`` is set."""
    extra = {"popen": popen} if popen is not None else {}
    proc = procs.spawn(name, [*SHIPYARD, "farm", "serve", "--bind", bind, *args], env,
                       **extra)
    proc.url = listening_url(proc, timeout)
    proc.wait_for(lambda: http_ok(f"{proc.url}/api/health"), timeout,
                  "the coordinator to answer")
    return proc


def create_token(env: dict[str, str], role: str, name: str | None = None) -> str:
    """A new token of ``role`` from the coordinator's own CLI (``farm token create``)."""
    named = ("--name", name) if name else ()
    return run(env, "farm", "token", "create", "--role", role, *named).stdout.strip()
