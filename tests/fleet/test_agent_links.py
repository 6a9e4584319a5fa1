"""The agent's links step in-process, with real adapter processes and two node homes: the
announcer seals for the acceptor's node and writes the acceptor's address; the acceptor
opens its copy, runs the accept adapter, and ``--remove`` when the announcement goes."""

from __future__ import annotations

import configparser
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from kit.links import ACCEPT, ANNOUNCE, calls, install_package, register
from shipyard.config import Settings, load_settings
from shipyard.coords import PackageCoord
from shipyard.formats import fleet as wire
from shipyard.formats import sealing
from shipyard.node import agent_links

GROUP = "org.test.fleet"
IFACE = "chat"
SERVER, TRANSPORT = "1.srv.p.a", "1.tr.p.b"

# An accept adapter's reading of its arguments (into $remove, $host and $port), for the
# adapters tests/fleet/test_agent_links_reload.py writes.
ACCEPT_ARGS = """remove=no
for arg in "$@"; do
  case "$arg" in
    --remove) remove=yes ;;
    --host=*) host="${arg#--host=}" ;;
    --port=*) port="${arg#--port=}" ;;
  esac
done
"""


@dataclass
class Identity:
    dir: Path
    name: str
    key: object

    def sealing_private(self):
        return self.key


class Client:
    def __init__(self) -> None:
        self.published: list[wire.AnnouncementPublish] = []

    def publish(self, name: str, body: wire.AnnouncementPublish) -> bool:
        changed = not self.published or self.published[-1] != body
        self.published.append(body)
        return changed


def node(tmp_path: Path, name: str) -> tuple[Settings, Identity]:
    home = tmp_path / name
    (home / "state" / "node").mkdir(parents=True)
    settings = load_settings(home=home, env={"SHIPYARD_LINK_FQDN": f"{name}.test"})
    return settings, Identity(home / "state" / "node", name, sealing.generate_private_key())


def accept_calls(settings: Settings) -> list[str]:
    """The accept adapter's calls as "<remove> <host>" (yes/no, then the host linked)."""
    return [" ".join(line.split()[-2:]) for line in calls(settings.runtime_root.parent, "accept")]


def setup(tmp_path: Path):
    a_settings, a = node(tmp_path, "a")
    b_settings, b = node(tmp_path, "b")
    register(a_settings, SERVER, install_package(
        a_settings.software_root, PackageCoord(GROUP, "server", "1.0"), accept=ACCEPT,
        interface=IFACE))
    register(b_settings, TRANSPORT, install_package(
        b_settings.software_root, PackageCoord(GROUP, "transport", "1.0"), announce=ANNOUNCE,
        interface=IFACE, port=5347, prefix="tr"))
    return a_settings, a, b_settings, b


def transport_doc(a: Identity, revision: int = 1) -> wire.DesiredDocument:
    return wire.DesiredDocument(node="b", revision=revision, instances=[wire.DesiredInstance(
        service=TRANSPORT, package="org.test.fleet:transport:1.0",
        acceptors=[wire.AcceptorAddress(
            acceptor=SERVER, acceptor_node="a", interface=IFACE, host="10.0.0.1",
            node_key=sealing.public_key_text(a.key))])])


def server_doc(announcements: list[wire.Announcement]) -> wire.DesiredDocument:
    return wire.DesiredDocument(node="a", revision=2, instances=[wire.DesiredInstance(
        service=SERVER, package="org.test.fleet:server:1.0", announcements=announcements)])


def generated(settings: Settings) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(settings.runtime_root / TRANSPORT / "etc" / f"link-{IFACE}.ini")
    return dict(parser["link"])


def test_both_ends_of_a_pair_across_two_nodes(tmp_path: Path) -> None:
    a_settings, a, b_settings, b = setup(tmp_path)
    client = Client()

    # the announcer's node: seal for a, publish, learn where to connect
    assert agent_links.converge(b_settings, client, b, transport_doc(a)) == []
    (item,) = client.published[-1].announcements
    config = generated(b_settings)
    password = config["password"]
    assert (item.instance, item.host, item.port) == (TRANSPORT, "tr.b.test", 5347)
    assert list(item.sealed) == ["a"] and password not in item.sealed["a"]
    assert (config["acceptor_host"], config["acceptor_port"]) == ("10.0.0.1", "5347")
    seals = b.dir / agent_links.SEALS_NAME
    assert stat.S_IMODE(seals.stat().st_mode) == 0o600
    assert password not in seals.read_text()
    # nothing changed: byte-identical ciphertext, so the fleet's revision does not move
    agent_links.converge(b_settings, client, b, transport_doc(a, 2))
    assert client.published[-1] == client.published[-2]

    # the acceptor's node: open its copy, run the accept adapter with the password
    announcement = wire.Announcement(announcer=TRANSPORT, announcer_node="b", interface=IFACE,
                                     host=item.host, port=item.port,
                                     password_sealed=item.sealed["a"])
    (report,) = agent_links.converge(a_settings, Client(), a, server_doc([announcement]))
    assert (report.state, report.last_error) == ("linked", "")
    runtime = a_settings.runtime_root / SERVER
    assert (runtime / "entries" / "tr.b.test").read_text() == f"5347\n{password}\n"
    state = a_settings.state_dir / "fleet-links.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    # again: unchanged, no adapter run
    agent_links.converge(a_settings, Client(), a, server_doc([announcement]))
    assert accept_calls(a_settings) == ["no tr.b.test"]

    # the announcement goes (announcer unassigned, node lost or pair disabled): --remove
    assert agent_links.converge(a_settings, Client(), a, server_doc([])) == []
    assert not (runtime / "entries" / "tr.b.test").exists()
    assert accept_calls(a_settings) == ["no tr.b.test", "yes tr.b.test"]
    assert json.loads(state.read_text())["pairs"] == []


def test_a_copy_sealed_for_another_node_or_pair_is_refused(tmp_path: Path) -> None:
    a_settings, a, _b_settings, _b = setup(tmp_path)
    public = sealing.public_key_text(a.key)
    for context in (agent_links.context(IFACE, TRANSPORT, "c"),        # for another node
                    agent_links.context(IFACE, "1.other.p.b", "a")):   # for another pair
        forged = wire.Announcement(
            announcer=TRANSPORT, announcer_node="b", interface=IFACE, host="tr.b.test",
            port=5347, password_sealed=sealing.seal("stolen-password", public, context))
        (report,) = agent_links.converge(a_settings, Client(), a, server_doc([forged]))
        assert report.state == "failed" and "could not be opened" in report.last_error
        assert "stolen-password" not in report.last_error
    assert not (a_settings.runtime_root / SERVER / "entries").exists()


def test_an_unsealed_announcement_waits(tmp_path: Path) -> None:
    a_settings, a, _b_settings, _b = setup(tmp_path)
    waiting = wire.Announcement(announcer=TRANSPORT, announcer_node="b", interface=IFACE,
                                host="tr.b.test", port=5347, password_sealed=None)
    (report,) = agent_links.converge(a_settings, Client(), a, server_doc([waiting]))
    assert report.state == "pending" and "seal" in report.last_error


KILLED_RUN = """
import json, sys
from pathlib import Path
from shipyard.config import load_settings
from shipyard.formats import fleet as wire
from shipyard.formats import sealing
from shipyard.node import agent_links

home, key, doc = sys.argv[1:4]

class Identity:
    dir = Path(home) / "state" / "node"
    name = "a"
    def sealing_private(self):
        return sealing.load_private_key(Path(key).read_text())

class Client:
    def publish(self, name, body):
        return False

settings = load_settings(home=home, env={})
agent_links.converge(settings, Client(), Identity(),
                     wire.DesiredDocument.model_validate_json(Path(doc).read_text()))
"""


def test_a_killed_agent_leaves_nothing_applied_unknown(tmp_path: Path) -> None:
    """kill -9 while the accept adapter runs (after it wrote its entry): the next converge
    kills the orphaned adapter and, the announcement being gone, removes the entry, which
    it knows of only from the intent saved before the adapter started."""
    import signal
    import subprocess
    import sys

    from kit.procs import processes_under
    from kit.wait import wait_until

    a_settings, a, _b_settings, _b = setup(tmp_path)
    adapter = PackageCoord(GROUP, "server", "1.0").install_path(
        a_settings.software_root) / "link.d" / "accept"
    adapter.write_text(ACCEPT + 'if [ "$remove" = no ]; then sleep 120; fi\n')
    key = tmp_path / "a.key"
    key.write_text(sealing.private_key_text(a.key))
    sealed = sealing.seal("pw-killed-run", sealing.public_key_text(a.key),
                          agent_links.context(IFACE, TRANSPORT, "a"))
    doc = tmp_path / "doc.json"
    doc.write_text(server_doc([wire.Announcement(
        announcer=TRANSPORT, announcer_node="b", interface=IFACE, host="tr.b.test",
        port=5347, password_sealed=sealed)]).model_dump_json())
    runtime = a_settings.runtime_root / SERVER
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "a"), str(key),
                             str(doc)], env={**os.environ, "SHIPYARD_LINK_FQDN": "a.test"})
    try:
        wait_until(lambda: (runtime / "entries" / "tr.b.test").exists(), 60,
                   message="the accept adapter to write its entry")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert processes_under(a_settings.runtime_root)  # the adapter outlived the agent

    assert agent_links.converge(a_settings, Client(), a, server_doc([])) == []
    assert not (runtime / "entries" / "tr.b.test").exists()
    assert accept_calls(a_settings) == ["no tr.b.test", "yes tr.b.test"]
    assert processes_under(a_settings.runtime_root) == []
