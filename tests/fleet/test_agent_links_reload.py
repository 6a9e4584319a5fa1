"""The agent's links step reloads an acceptor only when its accept adapter changed the
configuration: a real running instance (``svc start``), a real accept adapter that says
"unchanged" when its file already holds the entry, and a real reload script that counts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_agent_links import ACCEPT_ARGS, GROUP, IFACE, SERVER, TRANSPORT, Client, node

from conftest import SHIPYARD, make_env
from kit.links import register
from kit.manifest import write_manifest
from shipyard.coords import PackageCoord
from shipyard.formats import fleet as wire
from shipyard.formats import sealing
from shipyard.link import remote
from shipyard.node import agent_links

# Like chat-server's adapter: one line per announcer host; "unchanged" when already so.
ACCEPT = "#!/bin/sh\n" + ACCEPT_ARGS + """conf="$SHIPYARD_RUNTIME_DIR/entries.conf"
touch "$conf"
grep -v "^$host " "$conf" > "$conf.new"
if [ "$remove" = no ]; then echo "$host $port $SHIPYARD_LINK_PASSWORD" >> "$conf.new"; fi
if cmp -s "$conf" "$conf.new"; then rm "$conf.new"; echo "unchanged: $host"; exit 0; fi
mv "$conf.new" "$conf"
echo "wrote $host"
"""

RUN = "#!/bin/sh\nexec sleep 1000\n"

RELOAD = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in --runtime-dir=*) dir="${arg#--runtime-dir=}" ;; esac
done
echo reload >> "$dir/reloads"
"""


def svc(home: Path, *args: str) -> str:
    proc = subprocess.run([*SHIPYARD, "svc", *args], capture_output=True, text=True,
                          env=make_env(home), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_an_unchanged_accept_reloads_nothing(tmp_path: Path) -> None:
    settings, a = node(tmp_path, "a")
    package = PackageCoord(GROUP, "server", "1.0")
    root = package.install_path(settings.software_root)
    root.mkdir(parents=True)
    write_manifest(root, package.group, package.id, package.version, tables={
        "service": {"exec": ["bin/run"], "reload": "script.d/reload"},
        "link": {"accept": [{"interface": IFACE, "adapter": "link.d/accept",
                             "on_change": "reload"}]}})
    for name, text in (("bin/run", RUN), ("script.d/reload", RELOAD),
                       ("link.d/accept", ACCEPT)):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(text)
        (root / name).chmod(0o755)
    register(settings, SERVER, package)
    home = tmp_path / "a"
    svc(home, "start", SERVER)
    pid = json.loads(svc(home, "status", SERVER, "--json"))[0]["pid"]
    runtime = settings.runtime_root / SERVER
    public = sealing.public_key_text(a.key)

    def doc(*passwords: str) -> wire.DesiredDocument:
        return wire.DesiredDocument(node="a", revision=2, instances=[wire.DesiredInstance(
            service=SERVER, package=str(package), announcements=[wire.Announcement(
                announcer=TRANSPORT, announcer_node="b", interface=IFACE, host="tr.b.test",
                port=5347, password_sealed=sealing.seal(
                    password, public, agent_links.context(IFACE, TRANSPORT, "a")))
                for password in passwords])])

    def reloads() -> int:  # the reload script has exited when converge returns
        path = runtime / "reloads"
        return len(path.read_text().splitlines()) if path.exists() else 0

    try:
        (report,) = agent_links.converge(settings, Client(), a, doc("pw-one"))
        assert report.state == "linked", report
        assert reloads() == 1  # the adapter wrote the entry: one reload

        # The node's link state is lost (restored from an old backup, say): the agent runs
        # the adapter again for the same announcement; the adapter finds its entry already
        # there and says so. The configuration did not change: no reload.
        remote.state_path(settings).unlink()
        (report,) = agent_links.converge(settings, Client(), a, doc("pw-one"))
        assert report.state == "linked", report
        assert (runtime / "entries.conf").read_text() == "tr.b.test 5347 pw-one\n"
        assert reloads() == 1

        # A new password changes the entry: reloaded again; then the announcement goes and
        # --remove takes the entry out: reloaded once more.
        agent_links.converge(settings, Client(), a, doc("pw-two"))
        assert reloads() == 2
        assert agent_links.converge(settings, Client(), a, doc()) == []
        assert (runtime / "entries.conf").read_text() == ""
        assert reloads() == 3
        assert json.loads(svc(home, "status", SERVER, "--json"))[0]["pid"] == pid  # reloads
    finally:
        svc(home, "stop", SERVER)
