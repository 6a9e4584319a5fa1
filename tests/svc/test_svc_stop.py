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
