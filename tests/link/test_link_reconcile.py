"""``shipyard link``: pairs, no-op runs, removal, disable/enable, changed data, hostnames."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from linkkit import (
    ACCEPT,
    ANNOUNCE,
    calls,
    entries,
    generated,
    install_package,
    me,
    register,
    runtime,
    settings_for,
    unregister,
)

from conftest import Shipyard
from helpers import public_tmpdir, wait_until

FQDN = {"SHIPYARD_LINK_FQDN": "node1.example.org"}


def reconcile(shipyard: Shipyard, *args: str, check: bool = True) -> dict:
    result = shipyard.run("link", "reconcile", "--json", *args, check=check, env=FQDN)
    return json.loads(result.stdout)


def listing(shipyard: Shipyard) -> dict[tuple[str, str], dict]:
    rows = json.loads(shipyard.run("link", "list", "--json").stdout)["links"]
    return {(r["announcer"], r["acceptor"]): r for r in rows}


def two_by_two(home: Path) -> None:
    echo = install_package(home, "echo", announce=ANNOUNCE, port=5347)
    upper = install_package(home, "upper", announce=ANNOUNCE, port=5348)
    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.echo.t.local", echo)
    register(home, "1.upper.t.local", upper)
    register(home, "1.srv.t.local", server)
    register(home, "2.srv.t.local", server)


def test_every_announcer_is_linked_to_every_acceptor_and_a_second_run_runs_nothing(
        shipyard: Shipyard) -> None:
    home = shipyard.home
    two_by_two(home)
    report = reconcile(shipyard)
    assert report["ok"] is True
    assert report["counts"] == {"applied": 4}
    assert report["announce_runs"] == 2 and report["accept_runs"] == 4
    for announcer, host in (("1.echo.t.local", "echo.node1.example.org"),
                            ("1.upper.t.local", "upper.node1.example.org")):
        config = generated(home, announcer)
        assert config["host"] == host
        path = runtime(home, announcer) / "etc" / "link-chat.ini"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for acceptor in ("1.srv.t.local", "2.srv.t.local"):
            assert entries(home, acceptor)[host] == (int(config["port"]), config["password"])
    rows = listing(shipyard)
    assert {r["state"] for r in rows.values()} == {"linked"}
    assert len(rows) == 4

    accept_before = calls(home, "accept")
    announce_before = calls(home, "announce")
    second = reconcile(shipyard)
    assert second["counts"] == {"unchanged": 4}
    assert second["accept_runs"] == 0 and second["announce_runs"] == 0
    assert calls(home, "accept") == accept_before
    assert calls(home, "announce") == announce_before


def test_passwords_never_appear_in_output_or_state_listing(shipyard: Shipyard) -> None:
    home = shipyard.home
    two_by_two(home)
    outputs = [shipyard.run("link", "reconcile", env=FQDN).output,
               shipyard.run("link", "reconcile", "--json", "--force", env=FQDN).output,
               shipyard.run("link", "list").output,
               shipyard.run("link", "list", "--json").output]
    state = home / "state" / "links.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    for announcer in ("1.echo.t.local", "1.upper.t.local"):
        password = generated(home, announcer)["password"]
        assert len(password) >= 24
        for output in outputs:
            assert password not in output


def test_unregistered_announcer_is_removed_from_every_acceptor(shipyard: Shipyard) -> None:
    home = shipyard.home
    two_by_two(home)
    reconcile(shipyard)
    unregister(home, "1.upper.t.local")
    report = reconcile(shipyard)
    assert report["counts"] == {"removed": 2, "unchanged": 2}
    assert report["accept_runs"] == 2
    for acceptor in ("1.srv.t.local", "2.srv.t.local"):
        assert set(entries(home, acceptor)) == {"echo.node1.example.org"}
    assert set(listing(shipyard)) == {("1.echo.t.local", "1.srv.t.local"),
                                      ("1.echo.t.local", "2.srv.t.local")}
    removes = [c for c in calls(home, "accept") if " yes " in c]
    assert sorted(removes) == [
        "1.srv.t.local 1.upper.t.local yes upper.node1.example.org",
        "2.srv.t.local 1.upper.t.local yes upper.node1.example.org",
    ]


def test_disable_removes_one_pair_and_enable_links_it_again(shipyard: Shipyard) -> None:
    home = shipyard.home
    two_by_two(home)
    reconcile(shipyard)
    result = shipyard.run("link", "disable", "1.echo.t.local", "1.srv.t.local",
                          "--reason", "maintenance window", "--json", env=FQDN)
    report = json.loads(result.stdout)
    assert report["counts"] == {"removed": 1, "unchanged": 3}
    assert set(entries(home, "1.srv.t.local")) == {"upper.node1.example.org"}
    assert set(entries(home, "2.srv.t.local")) == {"upper.node1.example.org",
                                                   "echo.node1.example.org"}
    row = listing(shipyard)[("1.echo.t.local", "1.srv.t.local")]
    assert row["state"] == "disabled"
    assert row["error"] == "disabled: maintenance window"

    again = reconcile(shipyard)
    assert again["accept_runs"] == 0
    assert again["counts"] == {"disabled": 1, "unchanged": 3}

    shipyard.run("link", "enable", "1.echo.t.local", "1.srv.t.local", env=FQDN)
    assert set(entries(home, "1.srv.t.local")) == {"upper.node1.example.org",
                                                   "echo.node1.example.org"}
    assert listing(shipyard)[("1.echo.t.local", "1.srv.t.local")]["state"] == "linked"


def test_disable_of_an_unknown_pair_and_bad_coordinates_are_one_line_errors(
        shipyard: Shipyard) -> None:
    two_by_two(shipyard.home)
    result = shipyard.run("link", "disable", "1.srv.t.local", "1.echo.t.local", check=False)
    assert result.returncode == 1
    assert result.stderr == ("shipyard: error: no link between 1.srv.t.local and "
                             "1.echo.t.local: 1.srv.t.local announces no interface that "
                             "1.echo.t.local accepts (see 'shipyard link list')\n")
    result = shipyard.run("link", "disable", "echo", "1.srv.t.local", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("shipyard: error: announcer: invalid service coordinate")
    result = shipyard.run("link", "enable", "1.echo.t.local", "1.srv.t.local", check=False)
    assert result.returncode == 1
    assert "is not disabled" in result.stderr


def test_only_the_changed_announcer_is_asked_and_reapplied(shipyard: Shipyard) -> None:
    home = shipyard.home
    two_by_two(home)
    reconcile(shipyard)
    path = runtime(home, "1.echo.t.local") / "etc" / "link-chat.ini"
    old = generated(home, "1.echo.t.local")["password"]
    path.write_text(path.read_text().replace(old, "a-new-password"))
    announce_before = len(calls(home, "announce"))
    report = reconcile(shipyard)
    assert report["announce_runs"] == 1
    assert calls(home, "announce")[announce_before:] == ["1.echo.t.local"]
    assert report["counts"] == {"applied": 2, "unchanged": 2}
    assert entries(home, "1.srv.t.local")["echo.node1.example.org"] == (5347, "a-new-password")


def test_a_new_host_name_removes_the_old_entry_and_survives_reregistration(
        shipyard: Shipyard) -> None:
    from shipyard.link import hooks
    from shipyard.svc import registry

    home = shipyard.home
    two_by_two(home)
    reconcile(shipyard)
    password = generated(home, "1.echo.t.local")["password"]
    result = shipyard.run("link", "hostname", "1.echo.t.local", "chat.example.net", env=FQDN)
    assert result.stdout.startswith("1.echo.t.local announces chat.example.net\n")
    for acceptor in ("1.srv.t.local", "2.srv.t.local"):
        assert set(entries(home, acceptor)) == {"chat.example.net", "upper.node1.example.org"}
        assert entries(home, acceptor)["chat.example.net"] == (5347, password)

    settings = settings_for(home).with_overrides({"link.fqdn": "node2.example.org"})
    registration = registry.load(settings, registration_coord("1.echo.t.local"))
    assert registration is not None
    assert hooks.after_register(settings, registration) == []
    assert generated(home, "1.echo.t.local")["host"] == "chat.example.net"
    assert generated(home, "1.echo.t.local")["password"] == password

    shipyard.run("link", "hostname", "1.echo.t.local", "--reset", env=FQDN)
    assert generated(home, "1.echo.t.local")["host"] == "echo.node1.example.org"
    assert "echo.node1.example.org" in entries(home, "1.srv.t.local")
    assert "chat.example.net" not in entries(home, "1.srv.t.local")


def registration_coord(text: str):
    from shipyard.coords import ServiceCoord

    return ServiceCoord.parse(text)


def test_reregistering_keeps_the_password_and_follows_the_fqdn(shipyard: Shipyard) -> None:
    from shipyard.link import hooks

    home = shipyard.home
    package = install_package(home, "echo", announce=ANNOUNCE, port=5347)
    registration = register(home, "1.echo.t.local", package)
    first = settings_for(home).with_overrides({"link.fqdn": "a.example.org"})
    assert hooks.after_register(first, registration) == []
    config = generated(home, "1.echo.t.local")
    assert config["host"] == "echo.a.example.org" and config["port"] == "5347"
    second = settings_for(home).with_overrides({"link.fqdn": "b.example.org"})
    assert hooks.after_register(second, registration) == []
    again = generated(home, "1.echo.t.local")
    assert again["host"] == "echo.b.example.org"
    assert again["password"] == config["password"]


def test_the_hooks_never_raise(shipyard: Shipyard) -> None:
    from shipyard.coords import PackageCoord
    from shipyard.link import hooks

    home = shipyard.home
    settings = settings_for(home)
    missing = register(home, "1.ghost.t.local", PackageCoord("org.test.links", "ghost", "9"))
    assert hooks.after_register(settings, missing) == []
    state = home / "state" / "links.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    problems = hooks.after_change(settings)
    assert len(problems) == 1
    assert problems[0].startswith(f"link reconcile: {state}: not valid link state")


def test_an_interface_without_acceptors_is_pending_not_an_error(shipyard: Shipyard) -> None:
    home = shipyard.home
    echo = install_package(home, "echo", announce=ANNOUNCE)
    register(home, "1.echo.t.local", echo)
    report = reconcile(shipyard)
    assert report["ok"] is True
    assert report["counts"] == {"pending": 1}
    assert report["announce_runs"] == 0
    row = listing(shipyard)[("1.echo.t.local", None)]
    assert row["state"] == "pending" and row["interface"] == "chat"
    assert (runtime(home, "1.echo.t.local") / "etc" / "link-chat.ini").exists()

    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.srv.t.local", server)
    report = reconcile(shipyard)
    assert report["counts"] == {"applied": 1}
    assert set(listing(shipyard)) == {("1.echo.t.local", "1.srv.t.local")}


def test_a_broken_registration_is_reported_and_does_not_block_the_others(
        shipyard: Shipyard) -> None:
    home = shipyard.home
    two_by_two(home)
    bad = home / "etc" / "services" / "9.bad.t.local.ini"
    bad.write_text("[instance]\ncoordinate = 9.bad.t.local\n")
    report = reconcile(shipyard, check=False)
    assert report["ok"] is False
    assert report["counts"] == {"applied": 4}
    assert len(report["problems"]) == 1 and str(bad) in report["problems"][0]
    result = shipyard.run("link", "reconcile", check=False, env=FQDN)
    assert result.returncode == 1
    assert result.stderr.endswith("shipyard: error: 1 link problem(s); see 'shipyard link list'\n")


def test_force_reapplies_everything(shipyard: Shipyard) -> None:
    home = shipyard.home
    two_by_two(home)
    reconcile(shipyard)
    # Drift made by hand: an entry vanished from an acceptor. --force repairs it.
    (runtime(home, "2.srv.t.local") / "entries" / "echo.node1.example.org").unlink()
    report = reconcile(shipyard, "--force")
    assert report["announce_runs"] == 2 and report["accept_runs"] == 4
    assert "echo.node1.example.org" in entries(home, "2.srv.t.local")


def test_adapters_get_their_own_instance_environment(shipyard: Shipyard) -> None:
    home = shipyard.home
    probe = ACCEPT.replace("#!/bin/sh\n", "#!/bin/sh\n"
                           'mkdir -p "$SHIPYARD_RUNTIME_DIR"\n'
                           'env | grep "^SHIPYARD_" | sort > "$SHIPYARD_RUNTIME_DIR/env"\n'
                           'pwd >> "$SHIPYARD_RUNTIME_DIR/env"\n')
    echo = install_package(home, "echo", announce=ANNOUNCE)
    server = install_package(home, "server", accept=probe)
    register(home, "1.echo.t.local", echo)
    register(home, "1.srv.t.local", server)
    reconcile(shipyard)
    env = (runtime(home, "1.srv.t.local") / "env").read_text().splitlines()
    package_dir = server.install_path(home / "software")
    password = generated(home, "1.echo.t.local")["password"]
    assert env == [
        "SHIPYARD_COORDINATE=1.srv.t.local",
        "SHIPYARD_LINK_ACTION=apply",
        "SHIPYARD_LINK_ANNOUNCER=1.echo.t.local",
        "SHIPYARD_LINK_HOST=echo.node1.example.org",
        "SHIPYARD_LINK_INTERFACE=chat",
        "SHIPYARD_LINK_ON_CHANGE=none",
        f"SHIPYARD_LINK_PASSWORD={password}",
        "SHIPYARD_LINK_PORT=4000",
        f"SHIPYARD_PACKAGE_DIR={package_dir}",
        "SHIPYARD_PARAMS=",
        f"SHIPYARD_RUNTIME_DIR={runtime(home, '1.srv.t.local')}",
        str(package_dir),  # the working directory
    ]


def test_password_is_not_on_a_running_adapters_command_line(shipyard: Shipyard) -> None:
    """Any local user reads /proc/PID/cmdline: the accept adapter gets the password in its
    environment unless its package says password_via = "argv"."""
    import threading

    home = shipyard.home
    gate = home / "go"
    waits = ACCEPT.replace("#!/bin/sh\n", "#!/bin/sh\n"
                           'echo $$ > "$SHIPYARD_PACKAGE_DIR/../pid"\n'
                           f'while [ ! -e {gate} ]; do sleep 0.05; done\n')
    echo = install_package(home, "echo", announce=ANNOUNCE)
    server = install_package(home, "server", accept=waits)
    register(home, "1.echo.t.local", echo)
    register(home, "1.srv.t.local", server)
    pid_file = server.install_path(home / "software").parent / "pid"
    done: list[dict] = []
    worker = threading.Thread(target=lambda: done.append(reconcile(shipyard)))
    worker.start()
    try:
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(),
                             what="the adapter to run"))
        password = generated(home, "1.echo.t.local")["password"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"--host=echo.node1.example.org" in cmdline
        assert password.encode() not in cmdline
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert f"SHIPYARD_LINK_PASSWORD={password}".encode() in environ.split(b"\0")
    finally:
        gate.touch()
        worker.join(60)
    assert done and done[0]["counts"] == {"applied": 1}
    assert entries(home, "1.srv.t.local")["echo.node1.example.org"][1] == password


def test_adapters_run_as_the_instance_user(tmp_path: Path) -> None:
    """As root, an announcer registered for 'nobody' runs its adapter as nobody, and its
    generated 0600 config is nobody's (else the adapter could not read it)."""
    from conftest import make_env

    # pytest's tmp_path is private to root; nobody must be able to reach its runtime dir.
    with public_tmpdir("shipyard-link-user-") as base:
        home = base / "home"
        home.mkdir(mode=0o755)
        shipyard = Shipyard(home, make_env(home))
        who = ("#!/bin/sh\nprintf 'u%s.example\\n' \"$(id -u)\"\n"
               "sed -n 's/^port = //p' \"$SHIPYARD_LINK_CONFIG\"\n"
               "sed -n 's/^password = //p' \"$SHIPYARD_LINK_CONFIG\"\n")
        # The acceptor's adapter may write only in its own runtime dir, which svc's rules
        # create for it (owned by nobody) before the adapter runs.
        call_log = ACCEPT[ACCEPT.index("echo \"$SHIPYARD_COORDINATE"):ACCEPT.index("if [")]
        own_dir_only = ACCEPT.replace(call_log, "")
        echo = install_package(home, "echo", announce=who)
        server = install_package(home, "server", accept=own_dir_only)
        user = "nobody" if os.geteuid() == 0 else me()
        register(home, "1.echo.t.local", echo, user=user)
        register(home, "1.srv.t.local", server, user=user)
        report = reconcile(shipyard)
        assert report["ok"] is True, report
        uid = 65534 if os.geteuid() == 0 else os.geteuid()
        config = runtime(home, "1.echo.t.local") / "etc" / "link-chat.ini"
        assert config.stat().st_uid == uid
        assert entries(home, "1.srv.t.local") == {
            f"u{uid}.example": (4000, generated(home, "1.echo.t.local")["password"])}
        assert (runtime(home, "1.srv.t.local") / "entries").stat().st_uid == uid


def test_accept_adapter_sees_the_instance_parameters(shipyard: Shipyard) -> None:
    """Item 8: an adapter can write a full server config before the first start, because
    it gets the acceptor's parameters (with [service.params] defaults) as start does."""
    from shipyard.coords import ServiceCoord
    from shipyard.svc import registry
    from shipyard.svc.registry import Registration

    home = shipyard.home
    probe = ACCEPT.replace("#!/bin/sh\n", "#!/bin/sh\n"
                           'mkdir -p "$SHIPYARD_RUNTIME_DIR"\n'
                           'env | grep "^SHIPYARD_PARAM" | sort > "$SHIPYARD_RUNTIME_DIR/env"\n')
    echo = install_package(home, "echo", announce=ANNOUNCE)
    server = install_package(home, "server", accept=probe, tables={"service": {
        "exec": ["/bin/true"], "params": {"c2s": {"type": "port", "default": 5222},
                                          "domain": {"type": "string"}}}})
    register(home, "1.echo.t.local", echo)
    registry.save(settings_for(home), Registration(
        ServiceCoord.parse("1.srv.t.local"), server, me(),
        params=["--domain=chat example.org"]))
    reconcile(shipyard)
    env = (runtime(home, "1.srv.t.local") / "env").read_text().splitlines()
    assert env == [
        "SHIPYARD_PARAMS=--c2s=5222 '--domain=chat example.org'",
        "SHIPYARD_PARAM_C2S=5222",
        "SHIPYARD_PARAM_DOMAIN=chat example.org",
    ]
