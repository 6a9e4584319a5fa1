"""``farm init-system``: the coordinator's and a worker's systemd units, their user, and
what systemd itself says of them (``systemd-analyze verify`` and ``security``)."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import Shipyard

MAX_EXPOSURE = 4.0  # systemd's "OK" band ends at 4.9; the issue asks for 4.0 or lower


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("systemd-analyze"), ".ci/run installs systemd for this test"
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})


def exposure(unit: Path) -> float:
    result = analyze("security", "--offline=yes", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def verify(unit: Path) -> None:
    result = analyze("verify", str(unit))
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stderr.splitlines() if "shipyard" in line]
    assert complaints == [], result.stderr


@pytest.fixture
def service_user() -> str:
    """An existing unprivileged user, so that most tests create none."""
    for name in ("daemon", "bin", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise AssertionError("no unprivileged system user on this machine")


def test_units_verify_and_score_ok(shipyard: Shipyard, tmp_path: Path,
                                   service_user: str) -> None:
    units = tmp_path / "units"
    repo = tmp_path / "repository"
    result = shipyard.run("farm", "init-system", "--dir", str(units), "--user", service_user,
                          "--repo", str(repo), "--coordinator", "https://farm.example.org",
                          "--capacity", "2")
    assert sorted(p.name for p in units.iterdir()) == ["shipyard-coordinator.service",
                                                       "shipyard-worker.service"]
    assert f"wrote {units / 'shipyard-worker.service'}" in result.stdout
    for unit in units.iterdir():
        verify(unit)
        score = exposure(unit)
        assert score <= MAX_EXPOSURE, f"{unit.name}: exposure {score}"

    coordinator = (units / "shipyard-coordinator.service").read_text()
    worker = (units / "shipyard-worker.service").read_text()
    for text in (coordinator, worker):
        assert f"\nUser={service_user}\n" in text
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                     "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_INET"):
            assert line in text
    assert re.search(r"^ExecStart=/\S+ farm serve --repo " + re.escape(str(repo)) + "$",
                     coordinator, re.M)
    assert "RestrictNamespaces=yes\n" in coordinator
    assert "MemoryDenyWriteExecute=yes\n" in coordinator
    # The state the coordinator writes: the SQLite directory, artifacts, the repository
    # (all below /tmp here, so bound into the private /tmp rather than made writable).
    state = shipyard.home / "state"
    for path in (state, state / "farm-artifacts", repo):
        assert f"BindPaths={path}\n" in coordinator
    # bubblewrap's needs stay allowed in the worker, and are explained there.
    assert "RestrictNamespaces=user mnt pid net ipc uts cgroup\n" in worker
    assert "SystemCallFilter=@system-service @mount @debug\n" in worker
    assert "bubblewrap" in worker and "ProtectKernelTunables" in worker
    assert not re.search(r"^ProtectKernelTunables=", worker, re.M)
    assert re.search(r"^ExecStart=/\S+ farm worker --capacity 2 --coordinator "
                     r"https://farm\.example\.org$", worker, re.M)


def test_worker_token_lives_in_a_root_only_file(shipyard: Shipyard, tmp_path: Path,
                                                service_user: str) -> None:
    units = tmp_path / "units"
    result = shipyard.run("farm", "init-system", "--role", "worker", "--dir", str(units),
                          "--user", service_user, "--json")
    report = json.loads(result.stdout)
    assert [Path(p).name for p in report["written"]] == ["shipyard-worker.service"]
    env_file = shipyard.home / "etc" / "worker.env"
    assert report["env_files"] == [str(env_file)]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    worker = (units / "shipyard-worker.service").read_text()
    assert f"EnvironmentFile={env_file}\n" in worker
    exec_line = next(line for line in worker.splitlines() if line.startswith("ExecStart="))
    assert "--token" not in exec_line
    # The operator's token survives a second run; the state directory is the user's.
    env_file.write_text("SHIPYARD_FARM_TOKEN=shy_secret\n")
    env_file.chmod(0o600)
    shipyard.run("farm", "init-system", "--role", "worker", "--dir", str(units),
                 "--user", service_user)
    assert env_file.read_text() == "SHIPYARD_FARM_TOKEN=shy_secret\n"
    workdir = shipyard.home / "state" / "farm-worker"
    assert workdir.stat().st_uid == pwd.getpwnam(service_user).pw_uid
    assert "shy_secret" not in worker


def test_init_system_creates_the_service_user(shipyard: Shipyard, tmp_path: Path) -> None:
    assert os.geteuid() == 0, "CI runs as root: creating a system user needs it"
    name = "shyt" + uuid.uuid4().hex[:8]
    try:
        shipyard.run("farm", "init-system", "--dir", str(tmp_path / "units"), "--user", name)
        entry = pwd.getpwnam(name)
        assert entry.pw_uid < 1000 and entry.pw_shell.endswith(("nologin", "false"))
        artifacts = shipyard.home / "state" / "farm-artifacts"
        assert artifacts.stat().st_uid == entry.pw_uid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "janitor"], "--role 'janitor': expected one of both, coordinator, worker"),
    (["--user", "Not A User"],
     "--user: invalid user name 'Not A User': expected [a-z_][a-z0-9_-]*"),
])
def test_bad_input_is_one_line(shipyard: Shipyard, tmp_path: Path, args: list[str],
                               message: str) -> None:
    units = tmp_path / "units"
    result = shipyard.run("farm", "init-system", "--dir", str(units), *args, check=False)
    assert result.returncode == 2, result.output
    assert result.stderr.strip().splitlines() == [f"shipyard: error: {message}"]
    assert not units.exists()
