"""Debian's real redis-server as an instance (issue 13): a program no one here wrote.

Redis is what found these bugs: Debian's redis.conf daemonises it, its data must survive
an archive and a restore, and its clean stop is ``redis-cli -p PORT shutdown``, which needs
the instance's port in the stop script.
"""

from __future__ import annotations

import socket
from pathlib import Path

from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_src,
    fixture_svc,
    fixture_svc_home,
    install,
    one_line_error,
    processes_under,
    runtime_dir,
    state_of,
    wait_until,
    write_package,
)

from conftest import Shipyard
from helpers import free_port

REDIS = "/usr/bin/redis-server"


def _serves(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_a_program_that_daemonizes_itself_is_caught(svc: Shipyard, src: Path,
                                                    out: Path) -> None:
    """Item 4: with --daemonize yes the exec'd redis exits 0 and its daemon serves on,
    untracked. Start must fail with the reason, and leave nothing running."""
    name = "1.redisd.test.local"
    port = free_port()
    package = install(svc, write_package(src, "redisd", f"""
        exec = ["{REDIS}", "--port", "{{param.port}}", "--bind", "127.0.0.1",
                "--daemonize", "yes", "--dir", "{{runtime_dir}}/data", "--save", ""]
    """, {}), out)
    svc.run("svc", "register", name, "--package", package, "--", f"--port={port}")
    line = one_line_error(svc.run("svc", "start", name, check=False))
    assert "the program daemonized itself" in line, line
    assert "run it in the foreground (for redis: --daemonize no)" in line, line
    assert not _serves(port)
    assert processes_under(svc.home / "runtime") == []
    assert state_of(svc, name) == "stopped"
    assert "not running" in svc.run("svc", "stop", name).stdout
