"""The example chat server on its own: its config syntax, SIGHUP reload, refusals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from linkkit import wait_until

from conftest import EXAMPLES
from kit.net import free_port


def status(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"STATUS\n")
        return json.loads(sock.makefile("r").readline())


def test_chat_server_reloads_its_config_on_sighup(tmp_path: Path) -> None:
    runtime = tmp_path / "rt"
    (runtime / "etc").mkdir(parents=True)
    config = runtime / "etc" / "chat-server.conf"
    client_port, component_port = free_port(), free_port()
    config.write_text("# nothing yet\n")
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "chat-server" / "bin" / "chat_server.py"),
         "--runtime-dir", str(runtime), "--port", str(client_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (runtime / "run" / "ready").exists(), 10, "the server to start")
        assert status(client_port)["configured"] == []
        config.write_text(f"component 'a.example' {component_port} 'se cr\"et;$x'\n"
                          "# a comment\n")
        server.send_signal(signal.SIGHUP)
        wait_until(lambda: status(client_port)["configured"] == [
            {"host": "a.example", "port": component_port}], 10, "the reload")
        assert status(client_port)["listening"] == [component_port]
        # A broken config is refused and the old one stays in force.
        config.write_text("component only-two-tokens\n")
        with socket.create_connection(("127.0.0.1", client_port), timeout=5) as sock:
            sock.sendall(b"RELOAD\n")
            answer = sock.makefile("r").readline().strip()
        assert answer == (f"ERROR {config}: line 1: expected 'component HOST PORT SECRET'")
        assert status(client_port)["listening"] == [component_port]
    finally:
        server.terminate()
        server.wait(10)
