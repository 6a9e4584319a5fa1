"""Bad adapters: each fails its own pair with a clear reason; the other pairs go on."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from linkkit import (
    ACCEPT,
    ANNOUNCE,
    calls,
    entries,
    install_package,
    register,
    runtime,
    wait_until,
)

from conftest import Shipyard

ENV = {"SHIPYARD_LINK_FQDN": "node1.example.org"}
ARGS = ACCEPT.split('d="$SHIPYARD_RUNTIME_DIR/entries"')[0]  # the option parsing only


def run(shipyard: Shipyard, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = shipyard.run("link", "reconcile", "--json", check=False, env={**ENV, **(env or {})})
    assert "Traceback" not in result.output
    return result.returncode, json.loads(result.stdout)


def by_pair(report: dict) -> dict[tuple[str, str], dict]:
    return {(p["announcer"], p["acceptor"]): p for p in report["pairs"]}


def listed(shipyard: Shipyard) -> dict[tuple[str, str], dict]:
    rows = json.loads(shipyard.run("link", "list", "--json").stdout)["links"]
    return {(r["announcer"], r["acceptor"]): r for r in rows}


def with_bad_announcer(home: Path, script: str, mode: int = 0o755) -> Path:
    echo = install_package(home, "echo", announce=ANNOUNCE)
    bad = install_package(home, "bad", announce=script)
    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.echo.t.local", echo)
    register(home, "1.bad.t.local", bad)
    register(home, "1.srv.t.local", server)
    adapter = bad.install_path(home / "software") / "link.d" / "announce"
    os.chmod(adapter, mode)
    return adapter


def with_bad_acceptor(home: Path, script: str, mode: int = 0o755) -> Path:
    echo = install_package(home, "echo", announce=ANNOUNCE)
    server = install_package(home, "server", accept=ACCEPT)
    bad = install_package(home, "bad", accept=script)
    register(home, "1.echo.t.local", echo)
    register(home, "1.srv.t.local", server)
    register(home, "1.bad.t.local", bad)
    adapter = bad.install_path(home / "software") / "link.d" / "accept"
    os.chmod(adapter, mode)
    return adapter


def assert_only_bad_pair_failed(shipyard: Shipyard, good: tuple[str, str],
                                bad: tuple[str, str], reason: str) -> dict:
    code, report = run(shipyard)
    assert code == 1
    pairs = by_pair(report)
    assert pairs[good]["action"] == "applied"
    assert pairs[bad]["action"] == "failed"
    assert pairs[bad]["error"] == reason
    row = listed(shipyard)[bad]
    assert row["state"] == "failed" and row["error"] == reason
    assert listed(shipyard)[good]["state"] == "linked"
    return report


def test_missing_announce_adapter(shipyard: Shipyard) -> None:
    adapter = with_bad_announcer(shipyard.home, ANNOUNCE)
    adapter.unlink()
    assert_only_bad_pair_failed(
        shipyard, ("1.echo.t.local", "1.srv.t.local"), ("1.bad.t.local", "1.srv.t.local"),
        f"announce adapter: adapter {adapter} does not exist")


def test_accept_adapter_not_executable(shipyard: Shipyard) -> None:
    adapter = with_bad_acceptor(shipyard.home, ACCEPT, mode=0o644)
    assert_only_bad_pair_failed(
        shipyard, ("1.echo.t.local", "1.srv.t.local"), ("1.echo.t.local", "1.bad.t.local"),
        f"accept adapter: adapter {adapter} is not executable")


def test_accept_adapter_exiting_non_zero_with_its_stderr_and_no_password(
        shipyard: Shipyard) -> None:
    script = ARGS + ('echo "starting" >&2\n'
                     'echo "cannot write config for $host (password $password)" >&2\n'
                     "exit 3\n")
    adapter = with_bad_acceptor(shipyard.home, script)
    home = shipyard.home
    code, report = run(shipyard)
    assert code == 1
    error = by_pair(report)[("1.echo.t.local", "1.bad.t.local")]["error"]
    assert error == (f"accept adapter {adapter} exited with return code 3: starting | "
                     "cannot write config for echo.node1.example.org (password ***)")
    assert listed(shipyard)[("1.echo.t.local", "1.bad.t.local")]["exit_code"] == 3
    assert set(entries(home, "1.srv.t.local")) == {"echo.node1.example.org"}
    # A failed pair is retried by the next run; the good one is left alone.
    before = len(calls(home, "accept"))
    code, report = run(shipyard)
    assert code == 1
    assert report["accept_runs"] == 1
    assert len(calls(home, "accept")) == before
    # Disabling another pair succeeds; the unrelated failure is only mentioned.
    result = shipyard.run("link", "disable", "1.echo.t.local", "1.srv.t.local", env=ENV)
    assert result.stderr == ("shipyard: warning: 1 other link problem(s); see "
                             "'shipyard link list'\n")
    assert entries(home, "1.srv.t.local") == {}


@pytest.mark.parametrize(("script", "reason"), [
    ("#!/bin/sh\necho '<<garbage>>'\necho 80\necho pw\n",
     "line 1 (host) '<<garbage>>' is not a host name"),
    ("#!/bin/sh\necho bad.example\necho eighty\necho pw\n",
     "line 2 (port) 'eighty' is not a port number from 1 to 65535"),
    ("#!/bin/sh\necho bad.example\necho 70000\necho pw\n",
     "line 2 (port) '70000' is not a port number from 1 to 65535"),
    ("#!/bin/sh\necho bad.example\necho 80\necho\n", "line 3 (password) is empty"),
    ("#!/bin/sh\necho bad.example\necho 80\n",
     "printed 2 line(s), expected 3 (host, port, password)"),
    ("#!/bin/sh\n", "printed 0 line(s), expected 3 (host, port, password)"),
    ("#!/bin/sh\nprintf 'a.example\\n1\\npw\\nextra\\n'\n",
     "printed 4 line(s), expected 3 (host, port, password)"),
], ids=["garbage-host", "garbage-port", "port-range", "empty-password", "too-little",
        "nothing", "too-much"])
def test_announce_output_is_validated(shipyard: Shipyard, script: str, reason: str) -> None:
    adapter = with_bad_announcer(shipyard.home, script)
    assert_only_bad_pair_failed(
        shipyard, ("1.echo.t.local", "1.srv.t.local"), ("1.bad.t.local", "1.srv.t.local"),
        f"announce adapter {adapter} {reason}")


def test_announce_adapter_exiting_non_zero(shipyard: Shipyard) -> None:
    adapter = with_bad_announcer(shipyard.home,
                                 "#!/bin/sh\necho 'no config here' >&2\nexit 4\n")
    assert_only_bad_pair_failed(
        shipyard, ("1.echo.t.local", "1.srv.t.local"), ("1.bad.t.local", "1.srv.t.local"),
        f"announce adapter {adapter} exited with return code 4: no config here")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("side", ["announce", "accept"])
def test_hanging_adapter_is_killed_with_its_process_group(shipyard: Shipyard,
                                                          side: str) -> None:
    home = shipyard.home
    pids = home / "pids"
    hang = ("#!/bin/sh\n"
            f"sleep 300 &\necho $! >> {pids}\necho $$ >> {pids}\nsleep 300\n")
    if side == "announce":
        adapter = with_bad_announcer(home, hang)
        bad = ("1.bad.t.local", "1.srv.t.local")
    else:
        adapter = with_bad_acceptor(home, hang)
        bad = ("1.echo.t.local", "1.bad.t.local")
    started = time.monotonic()
    code, report = run(shipyard, {"SHIPYARD_LINK_ADAPTER_TIMEOUT": "1"})
    assert time.monotonic() - started < 30
    assert code == 1
    kind = "announce" if side == "announce" else "accept"
    assert by_pair(report)[bad]["error"] == (
        f"{kind} adapter: timed out after 1s (its process group was killed)")
    assert by_pair(report)[("1.echo.t.local", "1.srv.t.local")]["action"] == "applied"
    numbers = [int(n) for n in pids.read_text().split()]
    assert len(numbers) == 2
    wait_until(lambda: not any(_alive(n) for n in numbers), 10, "the adapter's group to die")
    assert adapter.exists()


def test_password_with_shell_characters_passes_intact(shipyard: Shipyard) -> None:
    home = shipyard.home
    marker = home / "pwned"
    nasty = f" lead;$(touch {marker}) `touch {marker}` \"dq\" 'sq' |&><*?~ \\ $HOME trail "
    script = ("#!/bin/sh\nprintf '%s\\n%s\\n' nasty.example 4100\n"
              'cat "$SHIPYARD_PACKAGE_DIR/password.txt"\n')
    nasty_pkg = install_package(home, "nasty", announce=script,
                                extra={"password.txt": (nasty + "\n", 0o644)})
    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.nasty.t.local", nasty_pkg)
    register(home, "1.srv.t.local", server)
    code, report = run(shipyard)
    assert code == 0, report
    assert entries(home, "1.srv.t.local") == {"nasty.example": (4100, nasty)}
    assert not marker.exists()
    # Removal gets the very same value back.
    shipyard.run("link", "disable", "1.nasty.t.local", "1.srv.t.local", env=ENV)
    assert entries(home, "1.srv.t.local") == {}
    assert not marker.exists()


def test_announcer_package_not_installed_keeps_its_links(shipyard: Shipyard) -> None:
    import shutil

    home = shipyard.home
    echo = install_package(home, "echo", announce=ANNOUNCE)
    server = install_package(home, "server", accept=ACCEPT)
    register(home, "1.echo.t.local", echo)
    register(home, "1.srv.t.local", server)
    code, _ = run(shipyard)
    assert code == 0
    shutil.rmtree(echo.install_path(home / "software"))
    code, report = run(shipyard)
    assert code == 1
    pair = by_pair(report)[("1.echo.t.local", "1.srv.t.local")]
    assert pair["error"] == (f"announcer 1.echo.t.local: package {echo} is not installed; "
                             "its link is kept")
    assert set(entries(home, "1.srv.t.local")) == {"echo.node1.example.org"}
    assert runtime(home, "1.srv.t.local").is_dir()
