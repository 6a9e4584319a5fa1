"""Loopback ports and HTTP probes."""

from __future__ import annotations

import contextlib
import socket

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
