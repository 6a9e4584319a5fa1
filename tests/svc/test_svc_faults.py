"""Bad input and faults: each a one-line error, a non-zero exit, and a truthful status."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_src,
    fixture_svc,
    fixture_svc_home,
    install,
    install_example,
    one_line_error,
    processes_under,
    runtime_dir,
    state_of,
    status,
    write_package,
)

from conftest import Shipyard

# A service that stays up: writes its pid and sleeps (the daemonised child of a script).
LAUNCH = """
    #!/bin/sh
    # start script: $1 = --runtime-dir=DIR
    dir="${1#--runtime-dir=}"
    setsid sleep 1000 >/dev/null 2>&1 < /dev/null &
    echo $! > "$dir/run/start.pid"
"""


def _registered(svc: Shipyard, src: Path, out: Path, name: str, ident: str,
                service: str | None, files: dict[str, str]) -> str:
    package = install(svc, write_package(src, ident, service, files), out)
    if service is not None:
        svc.run("svc", "register", name, "--package", package)
    return package


def test_unknown_service_and_bad_coordinates(svc: Shipyard) -> None:
    for verb in ("start", "stop", "restart", "status", "unregister", "logs"):
        line = one_line_error(svc.run("svc", verb, "9.nope.test.local", check=False))
        assert line.startswith("shipyard: error: unknown service 9.nope.test.local: "
                               "not registered"), (verb, line)
    line = one_line_error(svc.run("svc", "start", "not-a-coordinate", check=False), code=2)
    assert "invalid service coordinate 'not-a-coordinate'" in line
    line = one_line_error(svc.run("svc", "register", "1.x.test.Local", "--package",
                                  "org.example:x:1", check=False), code=2)
    assert "label 'Local'" in line
    line = one_line_error(svc.run("svc", "cleanup", "9.nope.test.local", check=False))
    assert "unknown service 9.nope.test.local" in line


def test_unknown_package_and_package_without_service(svc: Shipyard, src: Path,
                                                      out: Path) -> None:
    line = one_line_error(svc.run("svc", "register", "1.x.test.local", "--package",
                                  "org.example:missing:1.0", check=False))
    assert line.startswith("shipyard: error: package org.example:missing:1.0 is not "
                           "installed")
    line = one_line_error(svc.run("svc", "register", "1.x.test.local", "--package",
                                  "org.example:missing", check=False), code=2)
    assert "needs a version" in line
    package = _registered(svc, src, out, "1.x.test.local", "plain", None, {"README": "x\n"})
    line = one_line_error(svc.run("svc", "register", "1.x.test.local", "--package", package,
                                  check=False))
    assert line == (f"shipyard: error: package {package} has no [service] table in its "
                    "shipyard.toml: it cannot run as an instance")
    assert not (svc.home / "etc" / "services").exists() or not list(
        (svc.home / "etc" / "services").glob("*.ini"))


def test_start_script_exiting_non_zero(svc: Shipyard, src: Path, out: Path) -> None:
    name = "1.fail.test.local"
    _registered(svc, src, out, name, "failing", 'start = "script.d/start"', {
        "script.d/start": """
            #!/bin/sh
            echo "checking options"
            echo "start: --port is required" >&2
            exit 3
        """})
    line = one_line_error(svc.run("svc", "start", name, check=False))
    assert line == (f"shipyard: error: {name}: start script script.d/start exited with "
                    "code 3: start: --port is required")
    assert state_of(svc, name) == "stopped"


def test_no_pid_file_within_timeout(svc: Shipyard, src: Path, out: Path) -> None:
    name = "1.nopid.test.local"
    _registered(svc, src, out, name, "nopid", 'start = "script.d/start"', {
        "script.d/start": "#!/bin/sh\nexit 0\n"})
    result = svc.run("svc", "start", name, check=False,
                     env={"SHIPYARD_SVC_START_TIMEOUT": "0.5"})
    line = one_line_error(result)
    pid_file = runtime_dir(svc, name) / "run" / "start.pid"
    assert line == (f"shipyard: error: {name}: start script script.d/start wrote no "
                    f"{pid_file} within 0.5s")
    assert state_of(svc, name) == "stopped"


def test_garbage_pid_file(svc: Shipyard, src: Path, out: Path) -> None:
    name = "1.garbage.test.local"
    _registered(svc, src, out, name, "garbage", 'start = "script.d/start"', {
        "script.d/start": """
            #!/bin/sh
            dir="${1#--runtime-dir=}"
            echo "twelve" > "$dir/run/start.pid"
        """})
    line = one_line_error(svc.run("svc", "start", name, check=False))
    pid_file = runtime_dir(svc, name) / "run" / "start.pid"
    assert line == f"shipyard: error: {name}: {pid_file} does not hold a pid: 'twelve'"
    assert state_of(svc, name) == "stopped"
    # A pid file naming a process of another user is refused as well.
    other = subprocess.Popen(["sleep", "1000"])
    try:
        _registered(svc, src, out, "2.garbage.test.local", "rootpid",
                    'start = "script.d/start"', {"script.d/start": f"""
                #!/bin/sh
                dir="${{1#--runtime-dir=}}"
                echo {other.pid} > "$dir/run/start.pid"
            """})
        line = one_line_error(svc.run("svc", "start", "2.garbage.test.local", check=False))
        assert f"names pid {other.pid} (sleep), a process of root, not of service user " \
               "shipyard; refusing to adopt it" in line
        assert other.poll() is None
        assert state_of(svc, "2.garbage.test.local") == "stopped"
    finally:
        other.kill()
        other.wait()


def test_service_dying_right_after_start(svc: Shipyard, src: Path, out: Path) -> None:
    # The services die 0.1 s in; a long grace keeps that "right after start" under load.
    svc.env["SHIPYARD_SVC_START_GRACE"] = "2"
    name = "1.dies.test.local"
    _registered(svc, src, out, name, "dies", 'exec = ["bin/run"]', {
        "bin/run": """
            #!/bin/sh
            sleep 0.1
            echo "fatal: cannot bind port" >&2
            exit 4
        """})
    line = one_line_error(svc.run("svc", "start", name, check=False))
    assert line.startswith(f"shipyard: error: {name}: the service (pid ")
    assert line.endswith("exited with code 4 right after start: fatal: cannot bind port")
    entry = status(svc, name)
    assert entry["state"] == "dead"
    # Without an argument, status still fails on a dead instance (monitoring checks).
    whole = svc.run("svc", "status", check=False)
    assert whole.returncode == 3, whole.output
    assert "dead" in whole.stdout
    # Same through a start script whose daemon dies at once.
    _registered(svc, src, out, "2.dies.test.local", "dies-script",
                'start = "script.d/start"', {"script.d/start": """
            #!/bin/sh
            dir="${1#--runtime-dir=}"
            sh -c 'sleep 0.1; echo "daemon: config missing" >&2; exit 1' &
            echo $! > "$dir/run/start.pid"
        """})
    line = one_line_error(svc.run("svc", "start", "2.dies.test.local", check=False))
    assert "exited right after start: daemon: config missing" in line
    assert state_of(svc, "2.dies.test.local") == "dead"
    # A dead instance starts again once the cause is gone, and stop clears it.
    assert "was not running" in svc.run("svc", "stop", name).stdout
    assert state_of(svc, name) == "stopped"
    assert svc.run("svc", "status", check=False).returncode == 3  # 2.dies is still dead
    svc.run("svc", "stop", "2.dies.test.local")
    assert svc.run("svc", "status", "--json").returncode == 0  # stopped is not a failure


def test_runtime_dir_not_writable(svc: Shipyard, src: Path, out: Path) -> None:
    name = "1.ro.test.local"
    _registered(svc, src, out, name, "ro", 'start = "script.d/start"',
                {"script.d/start": LAUNCH})
    rt = runtime_dir(svc, name)
    rt.mkdir(parents=True)
    os.chmod(rt, 0o755)  # root's, and the service user may not write it
    line = one_line_error(svc.run("svc", "start", name, check=False))
    assert line == (f"shipyard: error: runtime dir {rt} is not writable by user shipyard "
                    "(owner root, mode 0755)")
    assert state_of(svc, name) == "stopped"
    # A runtime root the service user cannot even reach is named with the culprit.
    rt.rmdir()
    runtime_root = rt.parent
    os.chmod(runtime_root, 0o700)
    line = one_line_error(svc.run("svc", "start", name, check=False))
    assert line == (f"shipyard: error: runtime dir {rt} is not reachable by user shipyard: "
                    f"{runtime_root} is mode 0700 (owner root)")
    os.chmod(runtime_root, 0o755)
    # As root for a root instance: a file where the directory should be.
    package = install(svc, write_package(src, "ro-root", 'start = "script.d/start"',
                                         {"script.d/start": LAUNCH}), out)
    svc.run("svc", "register", "2.ro.test.local", "--package", package, "--user", "root")
    (runtime_root / "2.ro.test.local").write_text("in the way\n")
    line = one_line_error(svc.run("svc", "start", "2.ro.test.local", check=False))
    assert line == (f"shipyard: error: runtime dir {runtime_root / '2.ro.test.local'} is "
                    "not a directory")
    assert state_of(svc, "2.ro.test.local") == "stopped"
    assert not processes_under(runtime_root)


def test_missing_platform_binary(svc: Shipyard, src: Path, out: Path) -> None:
    name = "1.noplat.test.local"
    _registered(svc, src, out, name, "noplat", 'exec = ["bin/{platform}/server"]',
                {"bin/solaris-sparc/server": "#!/bin/sh\nexec sleep 1000\n"})
    line = one_line_error(svc.run("svc", "start", name, check=False))
    assert "[service] exec program bin/linux-" in line
    assert "is missing from package org.test.svc:noplat:1.0 (platform linux-" in line
    assert state_of(svc, name) == "stopped"
