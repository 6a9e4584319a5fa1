"""Loopback ports and HTTP probes."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx


def free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``address`` now (all held open until all are
    chosen, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((address, 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port(address: str = "127.0.0.1") -> int:
    return free_ports(1, address)[0]


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now (a refused or timed-out connection is a no)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app under a real Uvicorn in a thread, on a free loopback port (the socket
    bound before it starts, so nothing can take the port meanwhile); its URL."""
    import uvicorn

    from kit.wait import wait_until

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
