"""Runtime dirs and what surrounds them: users, FHS layout, logs, cleanup, init systems."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import tarfile
import uuid
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
    runtime_dir,
    state_of,
    status,
    user_exists,
    wait_until,
    write_package,
)

from conftest import Shipyard


def test_service_user_is_created_as_a_system_user(svc: Shipyard, out: Path) -> None:
    user = f"sy{uuid.uuid4().hex[:8]}"
    assert not user_exists(user)
    package = install_example(svc, "svc-exec", out)
    name = "1.user.test.local"
    try:
        svc.run("svc", "register", name, "--package", package, "--", "--interval=1",
                env={"SHIPYARD_SVC_USER": user})
        assert not user_exists(user)  # created when first needed, at start
        svc.run("svc", "start", name)
        entry = pwd.getpwnam(user)
        assert entry.pw_uid < 1000, "not a system user"
        assert entry.pw_shell.endswith("nologin")
        assert not os.path.exists(entry.pw_dir)
        proc = psutil.Process(status(svc, name)["pid"])
        assert proc.uids().real == entry.pw_uid and proc.gids().real == entry.pw_gid
        assert proc.environ()["USER"] == user
        rt = runtime_dir(svc, name)
        for path in (rt, rt / "log", rt / "data"):
            st = path.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (entry.pw_uid, 0o750)
        console = (rt / "console" / "stdout.log").stat()
        assert console.st_uid == entry.pw_uid
        svc.run("svc", "stop", name)
    finally:
        svc.run("svc", "shutdown", check=False)
        subprocess.run(["userdel", user], capture_output=True, check=False)


def test_root_needs_an_explicit_user_root(svc: Shipyard, src: Path, out: Path) -> None:
    package = install(svc, write_package(src, "wants-root", 'exec = ["bin/run"]\nuser = "root"',
                                         {"bin/run": "#!/bin/sh\nexec sleep 1000\n"}), out)
    name = "1.root.test.local"
    line = one_line_error(svc.run("svc", "register", name, "--package", package, check=False))
    assert line == (f"shipyard: error: package {package} would run as root (its manifest "
                    "says 'root'); pass --user root to allow that explicitly")
    line = one_line_error(svc.run("svc", "register", name, "--package", package, check=False,
                                  env={"SHIPYARD_SVC_USER": "root"}))
    assert "pass --user root" in line
    svc.run("svc", "register", name, "--package", package, "--user", "root")
    svc.run("svc", "start", name)
    assert psutil.Process(status(svc, name)["pid"]).uids().real == 0
    svc.run("svc", "stop", name)


def test_fhs_layout_links_and_cleanup_with_archive(svc: Shipyard, svc_home: Path,
                                                   out: Path) -> None:
    fhs = svc_home / "fhs"
    env = {"SHIPYARD_SVC_LAYOUT": "fhs", "SHIPYARD_SVC_FHS_ROOT": str(fhs)}
    svc.env.update(env)
    package = install_example(svc, "svc-exec", out)
    name = "1.fhs.test.local"
    svc.run("svc", "register", name, "--package", package, "--", "--interval=0.05")
    svc.run("svc", "start", name)
    rt = runtime_dir(svc, name)
    places = {"log": fhs / "var/log" / name, "data": fhs / "var/lib" / name,
              "spool": fhs / "var/spool" / name, "run": fhs / "run" / name}
    uid = pwd.getpwnam("shipyard").pw_uid
    for sub, target in places.items():
        assert (rt / sub).is_symlink() and Path(os.readlink(rt / sub)) == target
        st = target.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, 0o750), sub
    for sub in ("etc", "console"):
        assert (rt / sub).is_dir() and not (rt / sub).is_symlink()
    pid = status(svc, name)["pid"]
    assert (places["run"] / "start.pid").read_text().strip() == str(pid)
    wait_until(lambda: (places["log"] / "ticker.log").exists()
               and (places["data"] / "ticks").exists(), what="the ticker's files")

    line = one_line_error(svc.run("svc", "cleanup", name, check=False))
    assert line == f"shipyard: error: {name} is running (pid {pid}); stop it before cleaning up"
    svc.run("svc", "stop", name)
    archives = svc_home / "saved"
    result = svc.run("svc", "cleanup", name, "--archive", str(archives))
    (archive,) = list(archives.iterdir())
    assert re.fullmatch(rf"{re.escape(name)}-\d{{8}}T\d{{6}}Z\.tar\.gz", archive.name)
    assert str(archive) in result.stdout
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
    assert f"{name}/log/ticker.log" in members and f"{name}/data/ticks" in members
    assert not rt.exists()
    assert not any(target.exists() for target in places.values())
    assert state_of(svc, name) == "stopped"
    svc.run("svc", "start", name)  # the layout is made again
    assert state_of(svc, name) == "running"


def test_layout_change_on_an_existing_instance_is_explained(svc: Shipyard, svc_home: Path,
                                                            out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    name = "1.flat.test.local"
    svc.run("svc", "register", name, "--package", package, "--", "--interval=1")
    svc.run("svc", "start", name)
    svc.run("svc", "stop", name)
    result = svc.run("svc", "start", name, check=False,
                     env={"SHIPYARD_SVC_LAYOUT": "fhs",
                          "SHIPYARD_SVC_FHS_ROOT": str(svc_home / "fhs")})
    line = one_line_error(result)
    assert line == (f"shipyard: error: runtime dir {runtime_dir(svc, name) / 'log'} is a "
                    f"directory but svc.layout is fhs (expected a link to "
                    f"{svc_home / 'fhs' / 'var/log' / name}); move its content there or set "
                    "svc.layout = flat")


def test_logs_rotate_bounded_and_follow(svc: Shipyard, src: Path, out: Path) -> None:
    package = install(svc, write_package(src, "chatty", 'exec = ["bin/run"]', {
        "bin/run": """
            #!/bin/sh
            n=0
            while :; do
                n=$((n + 1))
                echo "line $n ................................................................"
                sleep 0.002
            done
        """}), out)
    name = "1.chatty.test.local"
    svc.env.update({"SHIPYARD_SVC_LOG_MAX_BYTES": "4000", "SHIPYARD_SVC_LOG_KEEP": "2"})
    svc.run("svc", "register", name, "--package", package)
    svc.run("svc", "start", name)
    console = runtime_dir(svc, name) / "console"
    stdout = console / "stdout.log"
    for _ in range(4):
        wait_until(lambda: stdout.stat().st_size > 4000, what="the console to grow")
        rotated = svc.run("svc", "rotate", name).stdout
        assert f"rotated {stdout}" in rotated
    names = sorted(p.name for p in console.iterdir())
    assert names == ["stderr.log", "stdout.log", "stdout.log.1", "stdout.log.2"]
    first = int(re.search(r"line (\d+)", (console / "stdout.log.1").read_text())[1])
    second = int(re.search(r"line (\d+)", (console / "stdout.log.2").read_text())[1])
    assert second < first, "the newest copy is .1"
    uid = pwd.getpwnam("shipyard").pw_uid
    assert (console / "stdout.log.1").stat().st_uid == uid

    follower = svc.popen("svc", "logs", name, "-f", "-n", "1", stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        seen = []
        for line in follower.stdout:
            seen.append(line)
            if len([s for s in seen if s.startswith("line ")]) >= 20:
                break
        assert seen[0] == f"==> {console / 'stderr.log'} <==\n"
        numbers = [int(s.split()[1]) for s in seen if s.startswith("line ")]
        assert numbers[-1] > numbers[0], "follow shows new lines"
    finally:
        follower.kill()
        follower.wait()
    pid = status(svc, name)["pid"]
    svc.run("svc", "stop", name)
    assert not pid_alive(pid)


def _systemd_analyze(directory: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", *[str(directory / u) for u in units]],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})


def test_init_system_units_verify_and_sysv_script_runs(svc: Shipyard, svc_home: Path,
                                                       out: Path) -> None:
    assert shutil.which("systemd-analyze"), ".ci/run installs systemd for this test"
    units = svc_home / "units"
    result = svc.run("svc", "init-system", "--systemd", "--dir", str(units))
    assert f"wrote {units / 'shipyard.service'}" in result.stdout
    names = sorted(p.name for p in units.iterdir())
    assert names == ["shipyard-rotate.service", "shipyard-rotate.timer", "shipyard.service",
                     "shipyard@.service"]
    text = (units / "shipyard@.service").read_text()
    assert "Type=forking\n" in text and "Restart=on-failure\n" in text
    assert f"PIDFile={svc.home / 'runtime'}/%i/run/start.pid\n" in text
    assert f'Environment="SHIPYARD_HOME={svc.home}"' in text
    boot_unit = (units / "shipyard.service").read_text()
    assert "Type=oneshot\nRemainAfterExit=yes\n" in boot_unit
    assert re.search(r"^ExecStart=/\S+ svc boot$", boot_unit, re.M)
    assert re.search(r"^ExecStop=/\S+ svc shutdown$", boot_unit, re.M)
    verify = _systemd_analyze(units, "shipyard.service", "shipyard@.service",
                              "shipyard-rotate.timer")
    assert verify.returncode == 0, verify.stderr
    complaints = [line for line in verify.stderr.splitlines() if "shipyard" in line]
    assert complaints == [], verify.stderr
    # A broken unit must fail the same check (the check is not a no-op).
    (units / "broken.service").write_text(boot_unit.replace("Type=oneshot", "Type=oneshoot")
                                          .replace("svc boot", "svc boot\nBogusKey=1"))
    broken = _systemd_analyze(units, "broken.service")
    assert "BogusKey" in broken.stderr or "oneshoot" in broken.stderr

    # The SysV script: LSB header, valid sh, and it really boots and shuts down.
    initd = svc_home / "init.d"
    svc.run("svc", "init-system", "--sysv", "--dir", str(initd))
    script = initd / "shipyard"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "### BEGIN INIT INFO" in text and "# Default-Stop:      0 1 6" in text
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    package = install_example(svc, "svc-exec", out)
    svc.run("svc", "register", "1.init.test.local", "--package", package, "--",
            "--interval=1")
    clean_env = {k: v for k, v in svc.env.items() if k != "SHIPYARD_HOME"}
    started = subprocess.run([str(script), "start"], capture_output=True, text=True,
                             env=clean_env, timeout=120)
    assert started.returncode == 0, started.stderr
    assert "started 1.init.test.local" in started.stdout
    assert state_of(svc, "1.init.test.local") == "running"
    stopped = subprocess.run([str(script), "stop"], capture_output=True, text=True,
                             env=clean_env, timeout=120)
    assert "stopped 1.init.test.local" in stopped.stdout
    usage = subprocess.run([str(script), "bogus"], capture_output=True, text=True,
                           env=clean_env)
    assert usage.returncode == 3
    line = one_line_error(svc.run("svc", "init-system", "--dir", str(units), check=False),
                          code=2)
    assert "choose one of --systemd or --sysv" in line
