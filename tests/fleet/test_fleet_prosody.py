"""Debian's prosody on one host, XEP-0114 components on two others, wired by the fleet.

Software no one here wrote: /usr/bin/prosody (apt install prosody, its own service never
started) runs on host a from examples/prosody-server; examples/xmpp-echo runs on b and c.
Each host is its own network namespace, home and agent. The components learn a's address
from the coordinator, authenticate to the real prosody with secrets that crossed sealed,
and a test component on a exchanges real stanzas with b's through prosody. Disabling one
pair takes its Component out of prosody's config (prosody then refuses it as an unknown
host) and leaves the other alone; enabling it lets it in again.
"""

from __future__ import annotations

import configparser
import hashlib
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import netkit
import pytest
from crosskit import CrossFleet

from helpers import wait_until

PROSODY = "org.shipyard.examples:prosody-server:1.0.0"
ECHO = "org.shipyard.examples:xmpp-echo:1.0.0"
SERVER, ECHO_B, ECHO_C = "1.xmpp.prod.a", "1.echo.prod.b", "1.echo.prod.c"
PROBE = "1.probe.test.a"  # registered by hand on a, never started: the test plays it
HOST_B, HOST_C, HOST_PROBE = "echo.b.fleet.test", "echo.c.fleet.test", "echo.a.fleet.test"
COMPONENT_PORT = 5349  # a's component-port: not the 5347 the components announce
STREAMS = "http://etherx.jabber.org/streams"


@pytest.fixture(name="fleet")
def _fleet():
    if not Path("/usr/bin/prosody").exists():
        pytest.fail("Debian's prosody is not installed (.ci/run installs it)")
    with netkit.NetKit() as kit:
        fleet = CrossFleet(kit)
        try:
            yield fleet
        finally:
            fleet.close()
            # every process crosskit started is gone (its web server included)
            assert [p.name for p in fleet.procs if p.alive()] == []


def test_prosody_and_components_across_hosts(fleet: CrossFleet) -> None:
    kit = fleet.kit
    a, b, c = kit.add_host("a"), kit.add_host("b"), kit.add_host("c")
    fleet.publish_examples("prosody-server", "xmpp-echo")
    fleet.start_coordinator()
    for host in (a, b, c):
        fleet.join(host)
        fleet.start_agent(host)
    fleet.fleet("assign", SERVER, "--package", PROSODY, "--nodes", "a", "--",
                "--bind={node.address}", "--domain=a.fleet.test",
                f"--component-port={COMPONENT_PORT}")
    fleet.fleet("assign", ECHO_B, "--package", ECHO, "--nodes", "b")
    fleet.fleet("assign", ECHO_C, "--package", ECHO, "--nodes", "c")

    # prosody itself says each component authenticated, and each component says where
    wait_until(lambda: _authenticated(a, HOST_B) and _authenticated(a, HOST_C), 90,
               message="prosody on a to log both components as authenticated")
    for host, name, service in ((b, HOST_B, ECHO_B), (c, HOST_C, ECHO_C)):
        wait_until(lambda h=host, s=service, n=name: f"authenticated as {n} at "
                   f"{a.address}:{COMPONENT_PORT}" in _echo_log(h, s), 30,
                   message=f"{name} to log its handshake with prosody at a")
    link_b = _link(b, ECHO_B)
    assert (link_b["acceptor_host"], link_b["acceptor_port"], link_b["port"]) == (
        a.address, str(COMPONENT_PORT), "5347")
    main_cfg = _read(_runtime(a, SERVER) / "etc" / "prosody.cfg.lua")
    assert f"component_ports = {{ {COMPONENT_PORT} }}" in main_cfg  # its own, no other
    assert f'component_interfaces = {{ "{a.address}" }}' in main_cfg  # {node.address}
    config = _components(a)
    assert set(re.findall(r'^Component "([^"]+)"', config, re.M)) == {HOST_B, HOST_C}
    assert "/etc/prosody" not in (_runtime(a, SERVER) / "etc" / "prosody.cfg.lua").read_text()
    wait_until(lambda: {k: v["state"] for k, v in fleet.pairs().items()} == {
        (ECHO_B, SERVER): "linked", (ECHO_C, SERVER): "linked"}, 60,
        message="fleet links to show both pairs linked")

    # a real exchange through prosody: a local announcer on a, registered by hand (so the
    # agent leaves it alone) and wired by link reconcile, is played by this test
    fleet.host_cli(a, "pkg", "install", ECHO)
    fleet.host_cli(a, "svc", "register", PROBE, "--package", ECHO, "--no-boot")
    assert f'Component "{HOST_PROBE}"' in _components(a)
    probe = wait_until(lambda: _component(a.address, HOST_PROBE, _link(a, PROBE)["password"]),
                       60, message="the test's own component to authenticate to prosody")
    with probe:
        assert _echo(probe, HOST_B, "hello from a <&> back") == "hello from a <&> back"

    # disable b's pair: its Component leaves prosody's config, prosody (restarted, since
    # 0.12 drops no Component on SIGHUP) refuses it as an unknown host; c is untouched
    mark_a, mark_b = len(_prosody_log(a)), len(_echo_log(b, ECHO_B))
    fleet.fleet("links", "disable", ECHO_B, SERVER)
    wait_until(lambda: f"{HOST_B} does not match any configured external components"
               in _prosody_log(a)[mark_a:], 60,
               message="prosody to refuse b's component as an unknown host")
    assert f'"{HOST_B}"' not in _components(a)
    wait_until(lambda: "refused: host-unknown" in _echo_log(b, ECHO_B)[mark_b:], 30,
               message="b's component to log prosody's refusal")
    wait_until(lambda: _authenticated(a, HOST_C, since=mark_a), 60,
               message="c's component to be back after prosody's restart")
    assert fleet.pairs()[(ECHO_B, SERVER)]["disabled"] is True

    # enable it: the entry is back and b's component authenticates again, by itself
    mark_a = len(_prosody_log(a))
    fleet.fleet("links", "enable", ECHO_B, SERVER)
    wait_until(lambda: _authenticated(a, HOST_B, since=mark_a), 60,
               message="b's component to authenticate again after enable")
    assert f'Component "{HOST_B}"' in _components(a)


# -- what the hosts' files say (the test runs as root in the root namespace) ----------------

def _runtime(host: netkit.Host, service: str) -> Path:
    return host.home / "runtime" / service


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _prosody_log(host: netkit.Host) -> str:
    return _read(_runtime(host, SERVER) / "log" / "prosody.log")


def _authenticated(host: netkit.Host, name: str, since: int = 0) -> bool:
    return f"{name}:component\tinfo\tExternal component successfully authenticated" in (
        _prosody_log(host)[since:])


def _components(host: netkit.Host) -> str:
    return _read(_runtime(host, SERVER) / "etc" / "components.cfg.lua")


def _echo_log(host: netkit.Host, service: str) -> str:
    return _read(_runtime(host, service) / "console" / "stdout.log")


def _link(host: netkit.Host, service: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(_runtime(host, service) / "etc" / "link-xmpp-component.ini")
    return dict(parser["link"])


# -- a component played by the test (XEP-0114 by hand, to check xmpp-echo's answers) -------

class _Stream:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.stream_id = ""
        self.stanzas: list[ET.Element] = []

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def read(self) -> ET.Element:
        """The next top-level element (or the stream header); raises on a closed stream."""
        while not self.stanzas:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("prosody closed the stream")
            self.parser.feed(data)
            for event, elem in self.parser.read_events():
                self.depth += 1 if event == "start" else -1
                if (event, self.depth) in (("start", 1), ("end", 1)):
                    self.stanzas.append(elem)
        return self.stanzas.pop(0)


def _component(address: str, name: str, secret: str) -> _Stream | None:
    """A stream authenticated as component ``name``, or None while prosody refuses it."""
    try:
        sock = socket.create_connection((address, COMPONENT_PORT), timeout=10)
    except OSError:
        return None  # prosody is restarting
    stream = _Stream(sock)
    try:
        sock.sendall(f"<stream:stream xmlns='jabber:component:accept' xmlns:stream='{STREAMS}'"
                     f" to='{name}'>".encode())
        header = stream.read()
        proof = hashlib.sha1((header.get("id", "") + secret).encode()).hexdigest()
        sock.sendall(f"<handshake>{proof}</handshake>".encode())
        if stream.read().tag.endswith("}handshake"):
            return stream
    except OSError:
        pass
    sock.close()
    return None


def _echo(stream: _Stream, to: str, body: str) -> str:
    """Send ``body`` to component ``to`` through prosody until its answer comes back (an
    error stanza means it is not connected yet: a restart of prosody just happened)."""
    text = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def exchange() -> str | None:
        stream.sock.sendall(f"<message from='{HOST_PROBE}' to='{to}' type='chat'>"
                            f"<body>{text}</body></message>".encode())
        reply = stream.read()
        if reply.get("type") == "error":
            return None
        assert reply.get("from") == to, ET.tostring(reply)
        return reply.findtext("{jabber:component:accept}body")

    return wait_until(exchange, 30, message=f"{to} to answer through prosody")
