"""Building blocks for service tests: homes services can reach, packages, process checks.

Packages go through the real ``shipyard pkg pack`` and ``shipyard pkg install``; instances
through the real ``shipyard svc`` commands. Tests run as root, so services run as the
service user: every directory they use must be reachable by it, which pytest's 0700
``tmp_path`` is not, hence homes of our own under ``/tmp``.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import EXAMPLES, Shipyard, make_env
from kit.cli import one_line_error  # noqa: F401  (re-exported)
from kit.dirs import public_tmpdir
from kit.manifest import tables as manifest_tables
from kit.manifest import write_manifest, write_scripts
from kit.procs import kill_all, processes_under
from kit.wait import wait_until  # noqa: F401  (re-exported)

GROUP = "org.test.svc"

SHORT_TIMEOUTS = {
    "SHIPYARD_SVC_START_TIMEOUT": "5",
    "SHIPYARD_SVC_STOP_TIMEOUT": "3",
    "SHIPYARD_SVC_START_GRACE": "0.3",
}


# ---------------------------------------------------------------------------------------
# Packages


def write_package(root: Path, ident: str, service: str | None, files: dict[str, str],
                  version: str = "1.0", extra: str = "") -> Path:
    """A package source dir: ``shipyard.toml`` (``service`` and ``extra`` are TOML text of
    its [service] table and of further tables) plus executable ``files``."""
    directory = root / f"{ident}-{version}"
    service_table = (manifest_tables(f"[service]\n{textwrap.dedent(service).strip()}")
                     if service is not None else {})
    write_manifest(directory, GROUP, ident, version, summary="test package",
                   tables={**service_table, **manifest_tables(extra)})
    write_scripts(directory, files)
    return directory


_PACKED: dict[Path, Path] = {}


def install(shipyard: Shipyard, source: Path, out: Path) -> str:
    """``pkg pack`` then ``pkg install`` the archive; returns the package coordinate.

    The examples are packed once per test process (packing is reproducible), test
    packages once per test; every test installs into its own home.
    """
    import tomllib

    data = tomllib.loads((source / "shipyard.toml").read_text())["package"]
    archive = _PACKED.get(source)
    if archive is None or not archive.exists():
        target = out
        if source.parent == EXAMPLES:
            target = Path(tempfile.gettempdir()) / f"shipyard-svc-examples-{os.getpid()}"
            if not target.exists():
                atexit.register(shutil.rmtree, target, True)
        target.mkdir(parents=True, exist_ok=True)
        shipyard.run("pkg", "pack", str(source), "--out", str(target))
        archive = target / f"{data['id']}-{data['version']}.tar.gz"
        _PACKED[source] = archive
    shipyard.run("pkg", "install", str(archive))
    return f"{data['group']}:{data['id']}:{data['version']}"


def install_example(shipyard: Shipyard, name: str, out: Path) -> str:
    return install(shipyard, EXAMPLES / name, out)


# ---------------------------------------------------------------------------------------
# Instances


def status(shipyard: Shipyard, svc: str) -> dict[str, Any]:
    result = shipyard.run("svc", "status", svc, "--json", check=False)
    assert result.returncode in (0, 3), result.output
    (entry,) = json.loads(result.stdout)
    assert (entry["state"] == "running") == (result.returncode == 0), result.output
    return entry


def state_of(shipyard: Shipyard, svc: str) -> str:
    return status(shipyard, svc)["state"]


def runtime_dir(shipyard: Shipyard, svc: str) -> Path:
    return shipyard.home / "runtime" / svc


def state_file(shipyard: Shipyard, svc: str) -> Path:
    return shipyard.home / "run" / "svc" / f"{svc}.state"


# ---------------------------------------------------------------------------------------
# Processes


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_with(marker: str) -> list[int]:
    """Pids of live processes with ``marker`` as a whole command-line argument."""
    needle = marker.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in args and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        return _alive(psutil.Process(pid))
    except psutil.Error:
        return False


def kill_at_random(shipyard: Shipyard, args: list[str], rng: random.Random, low: float,
                   high: float) -> int | None:
    """Start the real CLI, SIGKILL it after a random delay; its exit code if it won."""
    proc = shipyard.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=rng.uniform(low, high))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


def user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Fixtures (imported by the test modules)


@pytest.fixture(name="svc_home")
def fixture_svc_home() -> Iterator[Path]:
    """A 0755 directory under /tmp (pytest's tmp_path is 0700: no service user gets in)."""
    with public_tmpdir("shipyard-svc-") as base:
        yield base


@pytest.fixture(name="svc")
def fixture_svc(svc_home: Path) -> Iterator[Shipyard]:
    """The real CLI on an isolated home with short timeouts; every instance is stopped
    afterwards, and anything that escaped is killed, so no test leaks a process."""
    home = svc_home / "home"
    home.mkdir()
    env = make_env(home)
    env.update(SHORT_TIMEOUTS)
    shipyard = Shipyard(home, env)
    try:
        yield shipyard
    finally:
        shipyard.run("svc", "shutdown", check=False, timeout=60)
        kill_all(processes_under(home / "runtime"))


@pytest.fixture(name="out")
def fixture_out(svc_home: Path) -> Path:
    """Where packed archives go."""
    path = svc_home / "archives"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(name="src")
def fixture_src(svc_home: Path) -> Path:
    """Where test package sources go."""
    path = svc_home / "src"
    path.mkdir(exist_ok=True)
    return path
