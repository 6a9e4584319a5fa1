"""Hosts and ports that are honest (issue 13 items 2 and 10): two announcers never share an
acceptor entry, a per-instance port comes from a parameter, and the FQDN is checked and
followed when link.fqdn changes."""

from __future__ import annotations

import json

from linkkit import (
    ACCEPT,
    ANNOUNCE,
    entries,
    generated,
    install_package,
    me,
    register,
    settings_for,
    unregister,
)

from conftest import Shipyard
from shipyard.coords import ServiceCoord
from shipyard.svc import registry
from shipyard.svc.registry import Registration

FQDN = {"SHIPYARD_LINK_FQDN": "node1.example.org"}


def reconcile(shipyard: Shipyard, env: dict[str, str] | None = None,
              check: bool = True) -> tuple[dict, str]:
    result = shipyard.run("link", "reconcile", "--json", check=check, env=env or FQDN)
    return json.loads(result.stdout), result.stderr


def pairs(report: dict) -> dict[str, dict]:
    return {p["announcer"]: p for p in report["pairs"]}


def test_two_announcers_with_one_host_and_port_do_not_share_an_entry(
        shipyard: Shipyard) -> None:
    home = shipyard.home
    echo = install_package(home, "echo", announce=ANNOUNCE, port=5347)
    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.srv.t.local", server)
    register(home, "1.echo.t.local", echo)
    reconcile(shipyard)
    first = generated(home, "1.echo.t.local")["password"]
    register(home, "2.echo.t.local", echo)  # a second instance: same host, same port
    report, _ = reconcile(shipyard, check=False)
    assert report["ok"] is False
    error = pairs(report)["2.echo.t.local"]["error"]
    assert error.startswith("announces echo.node1.example.org:5347 for chat, as "
                            "1.echo.t.local does already;"), error
    assert "its own port" in error
    # The first one's entry is intact: the acceptor still holds its password.
    assert entries(home, "1.srv.t.local") == {"echo.node1.example.org": (5347, first)}
    listed = {r["announcer"]: r for r in json.loads(
        shipyard.run("link", "list", "--json").stdout)["links"]}
    assert listed["2.echo.t.local"]["state"] == "failed"
    assert listed["1.echo.t.local"]["state"] == "linked"
    # Unregistering the second takes nothing from the first.
    unregister(home, "2.echo.t.local")
    report, _ = reconcile(shipyard)
    assert entries(home, "1.srv.t.local") == {"echo.node1.example.org": (5347, first)}


def test_generate_port_from_an_instance_parameter(shipyard: Shipyard) -> None:
    home = shipyard.home
    echo = install_package(home, "echo", announce=ANNOUNCE, port="{param.port}")
    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.srv.t.local", server)
    settings = settings_for(home)
    for instance, port in (("1.echo.t.local", 6001), ("2.echo.t.local", 6002)):
        registry.save(settings, Registration(ServiceCoord.parse(instance), echo, me(),
                                             params=[f"--port={port}"]))
    report, _ = reconcile(shipyard)
    assert report["ok"] is True, report
    assert generated(home, "2.echo.t.local")["port"] == "6002"
    held = entries(home, "1.srv.t.local")
    assert {port for port, _pw in held.values()} <= {6001, 6002}
    assert report["counts"] == {"applied": 2}


def test_localhost_fqdn_warns_once_and_a_new_fqdn_moves_the_hosts(shipyard: Shipyard) -> None:
    home = shipyard.home
    echo = install_package(home, "echo", announce=ANNOUNCE)
    upper = install_package(home, "upper", announce=ANNOUNCE, port=4001)
    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.srv.t.local", server)
    register(home, "1.echo.t.local", echo)
    register(home, "1.upper.t.local", upper)
    local = {"SHIPYARD_LINK_FQDN": "localhost"}
    report, stderr = reconcile(shipyard, local)
    assert stderr.count("shipyard: warning: link.fqdn is 'localhost'") == 1, stderr
    assert "set link.fqdn" in stderr
    assert report["warnings"] and report["ok"] is True
    _, again = reconcile(shipyard, local)
    assert "warning" not in again  # once: the configs are written already
    assert set(entries(home, "1.srv.t.local")) == {"echo.localhost", "upper.localhost"}
    shipyard.run("link", "hostname", "1.upper.t.local", "upper.pinned.example", env=local)
    # The operator sets link.fqdn: reconcile follows it for hosts that are not pinned.
    report, stderr = reconcile(shipyard, FQDN)
    assert "warning" not in stderr
    assert generated(home, "1.echo.t.local")["host"] == "echo.node1.example.org"
    assert set(entries(home, "1.srv.t.local")) == {"echo.node1.example.org",
                                                  "upper.pinned.example"}
