"""The issue's end-to-end: a running chat server, two running transports, real TCP.

Everything goes through the real CLI: ``pkg pack``/``pkg install`` the three examples,
``svc register``/``start``, ``link reconcile``/``disable`` and ``svc unregister``. The proof
comes from the *server* (its STATUS answer and the messages it routes), never from an
adapter's exit status.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import pwd
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from linkkit import me, wait_until

from conftest import Shipyard, copy_example, make_env
from kit.dirs import public_tmpdir
from kit.net import free_ports

ENV = {"SHIPYARD_LINK_FQDN": "node1.example.org"}
ECHO_HOST = "echo.node1.example.org"
UPPER_HOST = "upper.node1.example.org"
CHAT, ECHO, UPPER = "1.chat.e2e.local", "1.echo.e2e.local", "1.upper.e2e.local"


class Client:
    """A chat client of the server under test."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rw", encoding="utf-8", newline="\n")

    def send(self, line: str) -> None:
        self.file.write(line + "\n")
        self.file.flush()

    def read(self) -> str:
        return self.file.readline().rstrip("\n")

    def status(self) -> dict:
        self.send("STATUS")
        return json.loads(self.read())

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def authenticate(port: int, host: str, password: str) -> str:
    """Try the component handshake ourselves; the server's answer (or why there was none)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionRefusedError:
        return "connection refused"
    with sock, sock.makefile("rw", encoding="utf-8", newline="\n") as file:
        challenge = file.readline().split()
        proof = hashlib.sha256((challenge[1] + password).encode()).hexdigest()
        file.write(f"AUTH {host} {proof}\n")
        file.flush()
        return file.readline().strip() or "connection closed"


def link_config(home: Path, coordinate: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(home / "runtime" / coordinate / "etc" / "link-jabber-component.ini")
    return dict(parser["link"])


def server_components(home: Path) -> dict[str, tuple[int, str]]:
    import shlex

    out = {}
    text = (home / "runtime" / CHAT / "etc" / "chat-server.conf").read_text()
    for line in text.splitlines():
        if line.startswith("component "):
            _, host, port, secret = shlex.split(line)
            out[host] = (int(port), secret)
    return out


@pytest.fixture
def public_shipyard() -> Iterator[Shipyard]:
    """A home that service users can reach (pytest's tmp_path is private to its owner), so
    the instances run as svc's default service user, as they would on a node."""
    with public_tmpdir("shipyard-link-e2e-") as base:
        home = base / "home"
        home.mkdir(mode=0o755)
        yield Shipyard(home, make_env(home))


def test_transports_really_authenticate_then_disable_and_unregister(
        public_shipyard: Shipyard, tmp_path: Path) -> None:
    shipyard = public_shipyard
    home = shipyard.home
    client_port, echo_port, upper_port = free_ports(3)
    dist = tmp_path / "dist"
    for name, port in (("chat-server", None), ("jabber-echo", echo_port),
                       ("jabber-upper", upper_port)):
        source = copy_example(name, tmp_path / "src")
        if port is not None:  # the static port of the example may be taken on this machine
            manifest = source / "shipyard.toml"
            text, count = re.subn(r"port = \d+,", f"port = {port},", manifest.read_text())
            assert count == 1
            manifest.write_text(text)
        shipyard.run("pkg", "pack", str(source), "--out", str(dist))
        shipyard.run("pkg", "install", str(dist / f"{name}-1.0.0.tar.gz"), env=ENV)

    group = "org.shipyard.examples"
    result = shipyard.run("svc", "register", CHAT, "--package", f"{group}:chat-server:1.0.0",
                          "--", f"--port={client_port}", env=ENV)
    user = re.search(r", user ([^,]+),", result.stdout).group(1)
    assert user == ("shipyard" if os.geteuid() == 0 else me())
    for coordinate, ident in ((ECHO, "jabber-echo"), (UPPER, "jabber-upper")):
        result = shipyard.run("svc", "register", coordinate, "--package",
                              f"{group}:{ident}:1.0.0", env=ENV)
        assert "link" not in result.stderr, result.stderr  # no link warnings
    config_file = home / "runtime" / ECHO / "etc" / "link-jabber-component.ini"
    assert config_file.stat().st_uid == pwd.getpwnam(user).pw_uid
    try:
        for coordinate in (CHAT, ECHO, UPPER):
            shipyard.run("svc", "start", coordinate, env=ENV)
        report = json.loads(shipyard.run("link", "reconcile", "--json", env=ENV).stdout)
        assert report["ok"] is True
        # register already reconciled: this run finds nothing to do
        assert report["counts"] == {"unchanged": 2} and report["accept_runs"] == 0

        echo, upper = link_config(home, ECHO), link_config(home, UPPER)
        assert (echo["host"], int(echo["port"])) == (ECHO_HOST, echo_port)
        assert server_components(home) == {
            ECHO_HOST: (echo_port, echo["password"]),
            UPPER_HOST: (upper_port, upper["password"]),
        }
        client = Client(client_port)
        wait_until(lambda: client.status()["authenticated"] == [ECHO_HOST, UPPER_HOST], 20,
                   "both transports to authenticate to the server")
        client.send(f"SEND {ECHO_HOST} hello; $(world)")
        assert client.read() == f"FROM {ECHO_HOST} hello; $(world)"
        client.send(f"SEND {UPPER_HOST} hello")
        assert client.read() == f"FROM {UPPER_HOST} HELLO"
        assert authenticate(echo_port, ECHO_HOST, "not-the-password") == "DENIED wrong secret"

        # The administrator comments the echo transport out of this server.
        shipyard.run("link", "disable", ECHO, CHAT, "--reason", "abuse", env=ENV)
        wait_until(lambda: client.status()["authenticated"] == [UPPER_HOST], 20,
                   "the echo transport to be disconnected")
        assert authenticate(echo_port, ECHO_HOST, echo["password"]) in (
            "connection refused", "DENIED unknown component")
        assert set(server_components(home)) == {UPPER_HOST}
        client.send(f"SEND {ECHO_HOST} anyone?")
        assert client.read() == f"ERROR no component {ECHO_HOST}"
        log = home / "runtime" / ECHO / "log" / "transport.log"
        wait_until(lambda: "disconnected: removed from config" in log.read_text(), 10,
                   "the transport to log its disconnection")
        rows = json.loads(shipyard.run("link", "list", "--json").stdout)["links"]
        states = {(r["announcer"], r["acceptor"]): (r["state"], r["error"]) for r in rows}
        assert states == {(ECHO, CHAT): ("disabled", "disabled: abuse"),
                          (UPPER, CHAT): ("linked", None)}
        # The adapter only edited the config; Shipyard reloaded the server (on_change =
        # "reload"), which kept the client connected, and link list shows both.
        row = next(r for r in rows if r["announcer"] == ECHO)
        assert row["said"].startswith(f"removed component {ECHO_HOST} on port"), row
        assert row["change"] == f"reloaded {CHAT} (script.d/reload.py)", row
        table = shipyard.run("link", "list").stdout
        assert f"reloaded {CHAT}" in " ".join(table.split())

        # The other transport goes away: its entry leaves the server's config.
        shipyard.run("svc", "stop", UPPER, env=ENV)
        shipyard.run("svc", "unregister", UPPER, env=ENV)
        assert server_components(home) == {}
        status = client.status()
        assert status["configured"] == [] and status["authenticated"] == []
        rows = json.loads(shipyard.run("link", "list", "--json").stdout)["links"]
        assert [(r["announcer"], r["state"]) for r in rows] == [(ECHO, "disabled")]
        client.close()
    finally:
        for coordinate in (UPPER, ECHO, CHAT):
            shipyard.run("svc", "stop", coordinate, check=False, env=ENV)
