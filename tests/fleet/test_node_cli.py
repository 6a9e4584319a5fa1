"""``node init-system`` writes a unit systemd accepts; ``node`` commands on a host that has
not joined fail in one line; a forged credential stops the agent at once."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from fleetkit import _make_fleet, one_line_error  # noqa: F401

from conftest import Shipyard


def test_init_system_unit_verifies(shipyard: Shipyard, tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), ".ci/run installs systemd for this test"
    units = tmp_path / "units"
    result = shipyard.run("node", "init-system", "--dir", str(units), "--json")
    assert json.loads(result.stdout) == {"written": [str(units / "shipyard-node.service")]}
    text = (units / "shipyard-node.service").read_text()
    assert re.search(r"^ExecStart=/\S+.* node agent$", text, re.M)
    for line in ("KillMode=process", "RestartPreventExitStatus=3", "NoNewPrivileges=yes",
                 "ProtectSystem=full", f'Environment="SHIPYARD_HOME={shipyard.home}"'):
        assert line + "\n" in text, line
    assert f"-{shipyard.home / 'state'}" in text  # its own roots stay writable
    verify = subprocess.run(["systemd-analyze", "verify", str(units / "shipyard-node.service")],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert verify.returncode == 0, verify.stderr
    assert [line for line in verify.stderr.splitlines() if "shipyard-node" in line] == [], \
        verify.stderr


def test_node_commands_need_a_joined_host(shipyard: Shipyard) -> None:
    for args in (("node", "status"), ("node", "leave"), ("node", "agent")):
        line = one_line_error(shipyard.run(*args, check=False), code=2)
        assert "has not joined a fleet" in line
    line = one_line_error(shipyard.run("node", "join", "--coordinator", "ftp://x", "--token",
                                       "t", "--name", "a", "--address", "h", check=False))
    assert "http://" in line
    line = one_line_error(shipyard.run("node", "join", "--coordinator", "http://127.0.0.1:1",
                                       "--token", "t", "--name", "a", "--address", "h",
                                       "--label", "novalue", check=False), code=2)
    assert "--label" in line
    line = one_line_error(shipyard.run("node", "join", "--coordinator", "http://127.0.0.1:1",
                                       "--token", "t", "--name", "a", "--address", "h",
                                       check=False))
    assert "unreachable" in line
    assert not (shipyard.home / "state" / "node" / "node.json").exists()


def test_forged_credential_stops_the_agent(make_fleet) -> None:
    fleet = make_fleet()
    fleet.publish_examples("svc-script")
    url = fleet.start_coordinator().url
    node = fleet.node("n1")
    node.join(url)
    (node.home / "state" / "node" / "credential").write_text("shn_forged\n")
    agent = node.start_agent()
    assert agent.popen.wait(timeout=60) == 3
    assert "invalid node credential" in agent.output()
    status = json.loads(node.cli("node", "status", "--json").stdout)
    assert status["name"] == "n1" and status["revision"] is None
