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


STOP = """
    #!/bin/sh
    # The same options start gets: the port comes from [service.params] or the registration.
    for arg in "$@"; do
      case "$arg" in --port=*) port="${arg#--port=}" ;; esac
    done
    echo "stop script: port $port" >&2
    exec redis-cli -p "$port" shutdown save
"""


def _redis_package(src: Path, out: Path, svc: Shipyard, port: int) -> str:
    return install(svc, write_package(src, "redis", f"""
        exec = ["{REDIS}", "--port", "{{param.port}}", "--bind", "127.0.0.1",
                "--daemonize", "no", "--dir", "{{runtime_dir}}/data", "--save", ""]
        stop = "script.d/stop"

        [service.params]
        port = {{ type = "port", default = {port} }}
    """, {"script.d/stop": STOP}), out)


def _cli(port: int, *args: str) -> str:
    import subprocess

    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


def test_params_defaults_stop_script_and_archive_round_trip(svc: Shipyard, src: Path,
                                                            out: Path,
                                                            tmp_path: Path) -> None:
    """Items 11, 8 and 6 with a real server: the port is a [service.params] default (no
    parameter at register time), the stop script gets it to run redis-cli shutdown, and
    the data that shutdown saved survives svc cleanup --archive and svc restore."""
    name = "1.redis.test.local"
    port = free_port()
    package = _redis_package(src, out, svc, port)
    bad = svc.run("svc", "register", name, "--package", package, "--", "--port=http",
                  check=False)
    assert one_line_error(bad, code=2).endswith(
        "parameter --port: expected an integer (a port), got 'http'")
    svc.run("svc", "register", name, "--package", package)  # the default port
    svc.run("svc", "start", name)
    wait_until(lambda: _serves(port), what="redis to serve")
    assert _cli(port, "SET", "answer", "42") == "OK"
    stopped = svc.run("svc", "stop", name)
    assert "stopped" in stopped.stdout, stopped.output
    rt = runtime_dir(svc, name)
    assert f"stop script: port {port}" in (rt / "console" / "stderr.log").read_text()
    logs = [(rt / "console" / n).read_text() for n in ("stdout.log", "stderr.log")]
    assert (rt / "data" / "dump.rdb").is_file(), logs  # written by redis-cli shutdown save
    secret = rt / "etc" / "secret.conf"
    secret.write_text("requirepass nobody-else\n")
    secret.chmod(0o600)
    owner = rt.stat().st_uid, rt.stat().st_gid

    archives = tmp_path / "archives"
    cleaned = svc.run("svc", "cleanup", name, "--archive", str(archives))
    assert "archived etc/, log/ and data/" in cleaned.stdout
    assert not rt.exists()
    (archive,) = archives.glob("*.tar.gz")
    restored = svc.run("svc", "restore", name, str(archive))
    assert f"restored data/, etc/, log/ of {name}" in restored.stdout, restored.output
    assert (rt.stat().st_uid, rt.stat().st_gid) == owner
    for path in [rt / "data", rt / "data" / "dump.rdb", secret]:
        assert (path.stat().st_uid, path.stat().st_gid) == owner, path
    assert secret.stat().st_mode & 0o777 == 0o600
    again = svc.run("svc", "restore", name, str(archive), check=False)
    assert "run 'shipyard svc cleanup" in one_line_error(again)

    svc.run("svc", "start", name)
    wait_until(lambda: _serves(port), what="redis to serve again")
    assert _cli(port, "GET", "answer") == "42"
    svc.run("svc", "stop", name)
