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


def bind_preferred(preferred: int, taken: set[int] | None = None,
                   host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on ``preferred`` if it is free, else on a free port. Bound here
    and handed to the server process as is (``farm serve --socket-fd``): between choosing
    the port and serving on it there is no moment another process could take it."""
    taken = taken or set()
    # IPPROTO_TCP explicitly, as farm serve does: asyncio sets TCP_NODELAY only then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if preferred in taken:
            raise OSError("taken by this demo")
        sock.bind((host, preferred))
    except OSError:
        sock.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind((host, 0))
    sock.listen(512)
    taken.add(int(sock.getsockname()[1]))
    return sock


def answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Something accepts connections on ``port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
