"""Pid files that lie: reused pids, stale records after a reboot, a killed service.

Each case puts on disk exactly what the real situation leaves there (a record or a pid
file naming a pid that now belongs to another program), then checks that Shipyard tells
the truth and signals nothing it did not start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_svc,
    fixture_svc_home,
    install_example,
    one_line_error,
    runtime_dir,
    state_file,
    state_of,
    status,
    wait_until,
)

from conftest import Shipyard

NAME = "1.tick.test.local"


def _started(svc: Shipyard, out: Path) -> int:
    package = install_example(svc, "svc-exec", out)
    if not (svc.home / "etc" / "services" / f"{NAME}.ini").exists():
        svc.run("svc", "register", NAME, "--package", package, "--", "--interval=1")
    svc.run("svc", "start", NAME)
    return status(svc, NAME)["pid"]


def _as_service_user(*argv: str) -> subprocess.Popen[bytes]:
    """Another program, of the service user, so only the identity check can tell."""
    import pwd

    entry = pwd.getpwnam("shipyard")
    proc = subprocess.Popen(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                             "--init-groups", *argv])
    wait_until(lambda: psutil.Process(proc.pid).name() == argv[0], what="the exec")
    return proc


def test_reused_pid_in_the_record_is_never_signalled(svc: Shipyard, out: Path) -> None:
    pid = _started(svc, out)
    os.killpg(pid, signal.SIGKILL)  # the service crashes behind Shipyard's back
    wait_until(lambda: state_of(svc, NAME) == "dead", what="dead state")
    stranger = _as_service_user("sleep", "1000")
    try:
        # The pid is reused by another program: the record names it, start time differs.
        path = state_file(svc, NAME)
        record = json.loads(path.read_text())
        record["pid"] = stranger.pid
        record["pgid"] = stranger.pid
        path.write_text(json.dumps(record))
        assert state_of(svc, NAME) == "dead"
        line = one_line_error(svc.run("svc", "stop", NAME, check=False))
        assert line.startswith(f"shipyard: error: {NAME}: not signalling pid "
                               f"{stranger.pid}: it is now 'sleep' (started ")
        assert "the pid was reused and the service is not running" in line
        assert stranger.poll() is None
        assert state_of(svc, NAME) == "stopped"
        # Start does not adopt the stranger either.
        svc.run("svc", "start", NAME)
        assert status(svc, NAME)["pid"] != stranger.pid
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_pid_file_older_than_its_process_is_not_adopted(svc: Shipyard, out: Path) -> None:
    pid = _started(svc, out)
    svc.run("svc", "stop", NAME)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    stranger = _as_service_user("sleep", "1000")
    try:
        pid_file = runtime_dir(svc, NAME) / "run" / "start.pid"
        pid_file.write_text(f"{stranger.pid}\n")
        # Written (this boot) before the process that now has the pid was created.
        written = psutil.Process(stranger.pid).create_time() - 5
        assert written > psutil.boot_time()
        os.utime(pid_file, (written, written))
        assert state_of(svc, NAME) == "stopped"
        line = one_line_error(svc.run("svc", "stop", NAME, check=False))
        assert f"names pid {stranger.pid}, but that process (sleep, started " in line
        assert "the pid was reused by another program" in line
        assert stranger.poll() is None
        assert "not running" in svc.run("svc", "stop", NAME).stdout
    finally:
        stranger.kill()
        stranger.wait()


def test_record_from_an_earlier_boot_reads_as_stopped(svc: Shipyard, out: Path) -> None:
    pid = _started(svc, out)
    survivor = _as_service_user("sleep", "1000")
    try:
        path = state_file(svc, NAME)
        record = json.loads(path.read_text())
        os.killpg(pid, signal.SIGKILL)
        # After a reboot the recorded pid may name anything; here a live process whose
        # exact start time we even copy, so only the boot id tells them apart.
        ident = psutil.Process(survivor.pid)
        raw = Path(f"/proc/{survivor.pid}/stat").read_text()
        record.update(pid=survivor.pid, pgid=survivor.pid, boot_id="an-earlier-boot",
                      start=raw.rsplit(")", 1)[1].split()[19],
                      create_time=ident.create_time())
        path.write_text(json.dumps(record))
        (runtime_dir(svc, NAME) / "run" / "start.pid").unlink(missing_ok=True)
        entry = status(svc, NAME)
        assert entry["state"] == "stopped" and entry["pid"] is None
        assert "not running" in svc.run("svc", "stop", NAME).stdout
        assert survivor.poll() is None
        # A pid file from before the reboot naming a live process reads as stopped too.
        pid_file = runtime_dir(svc, NAME) / "run" / "start.pid"
        pid_file.write_text(f"{survivor.pid}\n")
        before_boot = psutil.boot_time() - 3600
        os.utime(pid_file, (before_boot, before_boot))
        assert state_of(svc, NAME) == "stopped"
        stopped = svc.run("svc", "stop", NAME)
        assert "removed a pid file left from an earlier boot" in stopped.stdout
        assert survivor.poll() is None and not pid_file.exists()
        svc.run("svc", "start", NAME)
        assert state_of(svc, NAME) == "running"
    finally:
        survivor.kill()
        survivor.wait()


def test_live_pid_file_without_record_is_adopted(svc: Shipyard, out: Path) -> None:
    """What a kill -9 of shipyard between the pid file and the record leaves behind."""
    pid = _started(svc, out)
    state_file(svc, NAME).unlink()
    entry = status(svc, NAME)
    assert entry["state"] == "running" and entry["pid"] == pid
    assert "already running" in svc.run("svc", "start", NAME).stdout
    svc.run("svc", "stop", NAME)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_restart_outside_shipyard_is_one_process_for_all(svc: Shipyard, out: Path) -> None:
    """Issue 13 item 3: the service was restarted by hand, its new pid in run/start.pid.
    Status, stop and start must all mean that process: stop stops it (not "was not
    running"), and start refuses to launch a second copy."""
    pid = _started(svc, out)
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: state_of(svc, NAME) == "dead", what="dead state")
    again = _as_service_user("sleep", "1000")  # the hand-restarted service
    try:
        (runtime_dir(svc, NAME) / "run" / "start.pid").write_text(f"{again.pid}\n")
        entry = status(svc, NAME)
        assert (entry["state"], entry["pid"]) == ("running", again.pid)
        stopped = svc.run("svc", "stop", NAME)
        assert f"stopped {NAME} (pid {again.pid})" in stopped.stdout, stopped.output
        wait_until(lambda: again.poll() is not None, what="the adopted process to end")
        assert state_of(svc, NAME) == "stopped"
        # Once more, and this time start is asked first: it finds the same process.
        pid = _started(svc, out)
        os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: state_of(svc, NAME) == "dead", what="dead state")
        again = _as_service_user("sleep", "1000")
        (runtime_dir(svc, NAME) / "run" / "start.pid").write_text(f"{again.pid}\n")
        started = json.loads(svc.run("svc", "start", NAME, "--json").stdout)
        assert (started["result"], started["pid"]) == ("running", again.pid)
        svc.run("svc", "stop", NAME)
        wait_until(lambda: again.poll() is not None, what="the adopted process to end")
    finally:
        if again.poll() is None:
            again.kill()
        again.wait()
