"""Loopback ports: the demo prefers the well-known ones and falls back to free ones."""

from __future__ import annotations

import socket


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_or_free(preferred: int, taken: set[int] | None = None) -> int:
    """``preferred`` when nobody listens there (and it is not ``taken``), else a free one."""
    taken = taken or set()
    if preferred not in taken and port_free(preferred):
        taken.add(preferred)
        return preferred
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port


def answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Something accepts connections on ``port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
