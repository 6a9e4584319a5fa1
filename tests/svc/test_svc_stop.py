"""Stopping: a service that ignores TERM dies after the timeout with all its children."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_src,
    fixture_svc,
    fixture_svc_home,
    install,
    pid_alive,
    runtime_dir,
    state_of,
    status,
    wait_until,
    write_package,
)

from conftest import Shipyard

STUBBORN = """
    #!/bin/sh
    # Ignores TERM, and so do its children (SIG_IGN is inherited): one in its process
    # group, one that left it for a session of its own.
    trap '' TERM
    data="$SHIPYARD_RUNTIME_DIR/data"
    sh -c 'while :; do sleep 1; done' &
    echo $! > "$data/child"
    setsid sh -c 'while :; do sleep 1; done' &
    echo $! > "$data/escaped"
    while :; do sleep 1; done
"""


def test_term_ignoring_service_and_children_are_killed(svc: Shipyard, src: Path,
                                                       out: Path) -> None:
    package = install(svc, write_package(src, "stubborn", 'exec = ["bin/run"]',
                                         {"bin/run": STUBBORN}), out)
    name = "1.stubborn.test.local"
    svc.run("svc", "register", name, "--package", package)
    svc.run("svc", "start", name)
    data = runtime_dir(svc, name) / "data"
    wait_until(lambda: (data / "escaped").exists() and (data / "escaped").read_text(),
               what="children to start")
    main = status(svc, name)["pid"]
    child = int((data / "child").read_text())
    escaped = int((data / "escaped").read_text())
    assert all(pid_alive(p) for p in (main, child, escaped))

    began = time.monotonic()
    result = svc.run("svc", "stop", name, env={"SHIPYARD_SVC_STOP_TIMEOUT": "1"})
    took = time.monotonic() - began
    assert result.stdout.strip() == (f"stopped {name} (pid {main}) (killed: it ignored "
                                     "SIGTERM for 1s)")
    assert took >= 1.0
    for pid in (main, child, escaped):
        assert not pid_alive(pid), pid
    assert state_of(svc, name) == "stopped"


def test_stop_script_that_does_not_stop_falls_back_to_signals(svc: Shipyard, src: Path,
                                                              out: Path) -> None:
    package = install(svc, write_package(
        src, "lazy", 'exec = ["bin/run"]\nstop = "script.d/stop"',
        {"bin/run": "#!/bin/sh\nexec sleep 1000\n",
         "script.d/stop": """
            #!/bin/sh
            echo "stop: did nothing with $1" >&2
            exit 5
         """}), out)
    name = "1.lazy.test.local"
    svc.run("svc", "register", name, "--package", package)
    svc.run("svc", "start", name)
    pid = status(svc, name)["pid"]
    result = svc.run("svc", "stop", name)
    assert result.stdout.strip() == f"stopped {name} (pid {pid})"
    rt = runtime_dir(svc, name)
    assert result.stderr.strip() == (
        f"shipyard: warning: stop script script.d/stop exited with code 5: "
        f"stop: did nothing with --runtime-dir={rt}")
    assert not pid_alive(pid)


def test_stop_after_a_crash_kills_what_the_service_left_in_its_group(
        svc: Shipyard, src: Path, out: Path) -> None:
    package = install(svc, write_package(src, "leaky", 'exec = ["bin/run"]', {"bin/run": """
        #!/bin/sh
        sh -c 'exec sleep 1001' &
        echo $! > "$SHIPYARD_RUNTIME_DIR/data/worker"
        exec sleep 1000
    """}), out)
    name = "1.leaky.test.local"
    svc.run("svc", "register", name, "--package", package)
    svc.run("svc", "start", name)
    data = runtime_dir(svc, name) / "data"
    wait_until(lambda: (data / "worker").exists() and (data / "worker").read_text(),
               what="the worker")
    main = status(svc, name)["pid"]
    worker = int((data / "worker").read_text())
    os.kill(main, signal.SIGKILL)  # the main process crashes, its worker lives on
    wait_until(lambda: state_of(svc, name) == "dead", what="the crash to show")
    assert pid_alive(worker)
    result = svc.run("svc", "stop", name)
    assert result.stdout.strip() == (f"{name} had exited (pid {main}); stopped 1 "
                                     "process(es) it left in its group")
    assert not pid_alive(worker)
    assert state_of(svc, name) == "stopped"


def test_reload_by_signal_and_after_a_link_change(svc: Shipyard, src: Path,
                                                  out: Path) -> None:
    """Item 9: [service] reload = "signal:HUP" through svc reload, and Shipyard's restart
    after an accept adapter changed the config (on_change = "restart")."""
    import json as json_

    serve = """
        #!/bin/sh
        trap 'echo reloaded >> "$SHIPYARD_RUNTIME_DIR/data/reloads"' HUP
        while :; do sleep 0.05; done
    """
    package = install(svc, write_package(
        src, "hup", 'exec = ["bin/run"]\nreload = "signal:HUP"', {"bin/run": serve}), out)
    name = "1.hup.test.local"
    svc.run("svc", "register", name, "--package", package)
    assert "not running" in svc.run("svc", "reload", name).stdout
    svc.run("svc", "start", name)
    pid = status(svc, name)["pid"]
    result = json_.loads(svc.run("svc", "reload", name, "--json").stdout)
    assert (result["result"], result["pid"]) == ("reloaded", pid)
    reloads = runtime_dir(svc, name) / "data" / "reloads"
    wait_until(lambda: reloads.exists() and "reloaded" in reloads.read_text(),
               what="the HUP to arrive")
    assert status(svc, name)["pid"] == pid  # reloaded, not restarted

    # A server whose package restarts on a link change; its adapter just succeeds.
    extra = ('\n[[link.accept]]\ninterface = "hup-link"\nadapter = "link.d/accept"\n'
             'on_change = "restart"\n')
    server = install(svc, write_package(
        src, "restarts", 'exec = ["bin/run"]', {
            "bin/run": "#!/bin/sh\nexec sleep 1000\n",
            "link.d/accept": "#!/bin/sh\necho \"wrote $1\"\n"}, extra=extra), out)
    announcer = install(svc, write_package(
        src, "announces", 'exec = ["bin/run"]', {
            "bin/run": "#!/bin/sh\nexec sleep 1000\n",
            "link.d/announce": "#!/bin/sh\nprintf 'a.example\\n4100\\nsecret\\n'\n"},
        extra='\n[[link.announce]]\ninterface = "hup-link"\nadapter = "link.d/announce"\n'),
        out)
    svc.run("svc", "register", "1.srv.test.local", "--package", server)
    svc.run("svc", "start", "1.srv.test.local")
    before = status(svc, "1.srv.test.local")["pid"]
    svc.run("svc", "register", "1.ann.test.local", "--package", announcer)  # reconciles
    after = status(svc, "1.srv.test.local")
    assert after["state"] == "running" and after["pid"] != before
    rows = json_.loads(svc.run("link", "list", "--json").stdout)["links"]
    row = next(r for r in rows if r["acceptor"] == "1.srv.test.local")
    assert row["said"] == "wrote --host=a.example", row
    assert row["change"] == f"restarted 1.srv.test.local (pid {after['pid']})", row
