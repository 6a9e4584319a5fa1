"""The three example services through register, start, status, restart, stop, for real."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.request
from pathlib import Path

import psutil
from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_src,
    fixture_svc,
    fixture_svc_home,
    install,
    install_example,
    one_line_error,
    pid_alive,
    processes_with,
    runtime_dir,
    state_of,
    status,
    wait_until,
    write_package,
)

from conftest import Shipyard
from helpers import free_port


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return response.read().decode()


def test_script_pair_start_status_restart_stop(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-script", out)
    port = free_port()
    name = "1.web.test.local"
    result = svc.run("svc", "register", name, "--package", package, "--",
                     f"--port={port}", "--greeting=ahoy")
    assert f"registered {name}" in result.stdout
    ini = (svc.home / "etc" / "services" / f"{name}.ini").read_text()
    assert f"package = {package}" in ini and f"--port={port}" in ini
    assert state_of(svc, name) == "stopped"

    started = svc.run("svc", "start", name)
    assert started.stdout.startswith(f"started {name} (pid ")
    entry = status(svc, name)
    assert entry["state"] == "running" and entry["package"] == package
    assert entry["boot"] is True and entry["user"] == "shipyard"
    pid = entry["pid"]
    assert _get(port) == f"ahoy from {name}\n"
    proc = psutil.Process(pid)
    assert proc.username() == "shipyard"
    assert proc.environ()["SHIPYARD_COORDINATE"] == name
    assert proc.environ()["SHIPYARD_PLATFORM"].startswith("linux-")
    rt = runtime_dir(svc, name)
    assert (rt / "run" / "start.pid").read_text().strip() == str(pid)
    for sub in ("log", "etc", "console", "data", "run"):
        st = (rt / sub).stat()
        assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == proc.uids().real, sub
    assert stat.S_IMODE(rt.stat().st_mode) == 0o750

    again = svc.run("svc", "start", name)
    assert f"already running (pid {pid})" in again.stdout

    svc.run("svc", "restart", name)
    new_pid = status(svc, name)["pid"]
    assert new_pid != pid and not pid_alive(pid)
    assert _get(port) == f"ahoy from {name}\n"

    stopped = svc.run("svc", "stop", name)
    assert stopped.stdout.strip() == f"stopped {name} (pid {new_pid})"
    assert not pid_alive(new_pid)
    assert "SIGTERM: stopping" in (rt / "log" / "access.log").read_text()
    assert state_of(svc, name) == "stopped"
    assert not (rt / "run" / "start.pid").exists()
    assert "not running" in svc.run("svc", "stop", name).stdout


def test_exec_service_console_and_placeholders(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    name = "2.tick.test.local"
    svc.run("svc", "register", name, "--package", package, "--no-boot", "--",
            "--interval=0.05")
    svc.run("svc", "start", name)
    entry = status(svc, name)
    assert entry["boot"] is False
    proc = psutil.Process(entry["pid"])
    rt = runtime_dir(svc, name)
    assert proc.cmdline()[-3:] == [f"--runtime-dir={rt}", f"--name={name}",
                                   "--interval=0.05"]
    assert os.getpgid(proc.pid) == proc.pid and os.getsid(proc.pid) == proc.pid
    wait_until(lambda: "tick 3 from" in (rt / "console" / "stdout.log").read_text(),
               what="ticks on stdout")
    assert "starting, interval 0.05s" in (rt / "console" / "stderr.log").read_text()
    logs = svc.run("svc", "logs", name, "-n", "2").stdout
    assert f"==> {rt / 'console' / 'stdout.log'} <==" in logs
    assert f"==> {rt / 'log' / 'ticker.log'} <==" in logs
    svc.run("svc", "stop", name)
    assert "stopping after" in (rt / "console" / "stderr.log").read_text()
    assert state_of(svc, name) == "stopped"


def test_platform_binary_is_picked_by_platform(svc: Shipyard, out: Path) -> None:
    import platform as _platform

    package = install_example(svc, "svc-platform", out)
    name = "3.plat.test.local"
    svc.run("svc", "register", name, "--package", package, "--", "--label=first")
    svc.run("svc", "start", name)
    rt = runtime_dir(svc, name)
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(_platform.machine().lower(),
                                                          _platform.machine().lower())
    expected = f"linux-{machine}"
    wait_until(lambda: (rt / "data" / "platform").exists(), what="platform file")
    assert (rt / "data" / "platform").read_text().strip() == expected
    pid = status(svc, name)["pid"]
    children = psutil.Process(pid).children(recursive=True)
    svc.run("svc", "stop", name)  # no stop script: TERM to the group
    assert not pid_alive(pid)
    assert not any(pid_alive(child.pid) for child in children)
    log = (rt / "log" / "server.log").read_text()
    assert f"server for {expected} started first" in log
    assert f"server for {expected} stopping" in log


def test_status_table_json_and_exit_codes(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    svc.run("svc", "register", "1.a.test.local", "--package", package, "--", "--interval=1")
    svc.run("svc", "register", "1.b.test.local", "--package", package, "--", "--interval=1")
    svc.run("svc", "start", "1.a.test.local")
    table = svc.run("svc", "status")
    for column in ("service", "package", "state", "pid", "uptime", "boot"):
        assert column in table.stdout
    everything = json.loads(svc.run("svc", "status", "--json").stdout)
    assert [e["state"] for e in everything] == ["running", "stopped"]
    assert everything[0]["uptime"] >= 0
    assert svc.run("svc", "status", "1.a.test.local").returncode == 0
    both = svc.run("svc", "status", "1.a.test.local", "1.b.test.local", check=False)
    assert both.returncode == 3
    assert svc.run("svc", "status", "1.b.test.local", check=False).returncode == 3


def test_unregister_refused_while_running_then_with_stop(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    name = "1.gone.test.local"
    svc.run("svc", "register", name, "--package", package, "--", "--interval=1")
    svc.run("svc", "start", name)
    pid = status(svc, name)["pid"]
    line = one_line_error(svc.run("svc", "unregister", name, check=False))
    assert line == f"shipyard: error: {name} is running; stop it first or pass --stop"
    assert pid_alive(pid)
    result = svc.run("svc", "unregister", name, "--stop")
    assert f"stopped {name}" in result.stdout and f"unregistered {name}" in result.stdout
    assert not pid_alive(pid)
    assert not (svc.home / "etc" / "services" / f"{name}.ini").exists()
    assert json.loads(svc.run("svc", "status", "--json").stdout) == []
    assert not processes_with(f"--name={name}")


def test_register_checks_params_of_exec_line(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    line = one_line_error(svc.run("svc", "register", "1.p.test.local", "--package", package,
                                  check=False))
    assert "needs parameter --interval=VALUE for {param.interval}" in line
    line = one_line_error(svc.run("svc", "register", "1.p.test.local", "--package", package,
                                  "--", "plain", check=False), code=2)
    assert "invalid parameter 'plain'" in line
    line = one_line_error(svc.run("svc", "register", "1.p.test.local", "--package", package,
                                  "--", "--runtime-dir=/x", check=False), code=2)
    assert "--runtime-dir is reserved" in line
    assert not (svc.home / "etc" / "services" / "1.p.test.local.ini").exists()


def test_status_reads_starting_while_a_start_runs(svc: Shipyard, src: Path, out: Path) -> None:
    package = install(svc, write_package(src, "slow", 'start = "script.d/start"', {
        "script.d/start": """
            #!/bin/sh
            dir="${1#--runtime-dir=}"
            touch "$dir/data/begun"
            n=0
            while [ ! -e "$dir/data/go" ] && [ $n -lt 400 ]; do
                sleep 0.05
                n=$((n + 1))
            done
            setsid sleep 1000 < /dev/null > /dev/null 2>&1 &
            echo $! > "$dir/run/start.pid"
        """}), out)
    name = "1.slow.test.local"
    svc.run("svc", "register", name, "--package", package)
    svc.env["SHIPYARD_SVC_START_TIMEOUT"] = "30"
    starter = svc.popen("svc", "start", name, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data = runtime_dir(svc, name) / "data"
    try:
        wait_until(lambda: (data / "begun").exists(), timeout=30,
                   what="the start script to run")
        entry = status(svc, name)
        assert entry["state"] == "starting" and entry["pid"] is None
        (data / "go").touch()
        assert starter.wait(timeout=60) == 0
    finally:
        if starter.poll() is None:
            starter.kill()
        starter.wait()
    assert state_of(svc, name) == "running"
