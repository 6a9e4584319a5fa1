"""The coordinator's one ASGI app: the farm's JSON API with the web pages, bound and served.

The farm does not know its pages (``web`` sits above ``farm`` and reads through its face),
so the two are put together here, in the layer above both. What this adds to the farm's
app is only the pages' routes, after the API's, on the same state (``app.state``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from shipyard.config import Settings
from shipyard.errors import ShipyardError, UsageError
from shipyard.farm import app as farm_app
from shipyard.fleet.api import install as install_fleet
from shipyard.web.pages import install as install_pages


def create_app(settings: Settings, db_url: str, repo_dir: str | os.PathLike[str] | None = None,
               *, bind: str | None = None, publish: bool = True) -> FastAPI:
    """The farm coordinator's API (:func:`shipyard.farm.app.create_app`), the fleet's API
    (:func:`shipyard.fleet.api.install`, started and stopped with the farm) and the pages."""
    app = farm_app.create_app(settings, db_url, repo_dir, bind=bind, publish=publish)
    fleet = install_fleet(app, settings, db_url,
                          Path(repo_dir).absolute() if repo_dir else None)
    farm_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(inner: FastAPI) -> AsyncIterator[None]:
        async with farm_lifespan(inner):
            await fleet.start()
            try:
                yield
            finally:
                await fleet.stop()

    app.router.lifespan_context = lifespan
    install_pages(app)
    return app


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as a host and a port number."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--bind {bind!r}: expected HOST:PORT, e.g. 127.0.0.1:8470")
    return host.strip("[]"), int(port)


def listen(bind: str) -> tuple[socket.socket, str]:
    """A listening socket on ``bind`` (port 0 picks a free one) and the ``host:port`` it
    listens on, as a URL would show it."""
    host, port = parse_bind(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ShipyardError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(512)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"{shown}:{actual}"


def adopt(fd: int) -> tuple[socket.socket, str]:
    """The listening TCP socket a supervisor (or the demo) bound and handed over as ``fd``,
    and the ``host:port`` it listens on."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise UsageError(f"--socket-fd {fd}: not an open socket ({exc.strerror})") from None
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET,
                                                              socket.AF_INET6):
        raise UsageError(f"--socket-fd {fd}: not a TCP socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise UsageError(f"--socket-fd {fd}: the socket is not listening")
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    return sock, f"{shown}:{port}"


def serve(app: FastAPI, sock: socket.socket, *, access_log: bool = False,
          trusted_proxies: list[str] | None = None) -> None:
    """Run ``app`` under Uvicorn on ``sock`` until it is told to stop.

    X-Forwarded-For/-Proto are believed only from ``trusted_proxies``: Uvicorn would
    otherwise believe them from 127.0.0.1, and any local client could pick its address
    (and dodge the sign-in limit, which counts per address)."""
    trusted = list(trusted_proxies or [])
    config = uvicorn.Config(app, log_config=None,  # the CLI configured logging (logsetup)
                            proxy_headers=bool(trusted),
                            forwarded_allow_ips=",".join(trusted) if trusted else "",
                            access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=3, timeout_keep_alive=75)
    uvicorn.Server(config).run(sockets=[sock])
