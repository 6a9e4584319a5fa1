"""``svc upgrade``: a new version that does not come up is rolled back by itself; a good
one replaces the old, which is uninstalled only then; ``kill -9`` at any moment leaves a
node the next upgrade puts right.

Packages come from a signed ``file://`` repository through the real CLI; the service is a
real detached process whose ``data/version`` says which package started it.
"""

from __future__ import annotations

import configparser
import json
import random
import signal
import subprocess
from pathlib import Path

import pytest
from e2ekit import (  # noqa: F401
    Repository,
    fixture_public_dir,
    kill_all,
    node,
    one_line_error,
    processes_under,
    wait_until,
    write_package,
)

from conftest import Shipyard

GROUP = "org.test.e2e"
APP = "1.app.upgrade.test"
SHORT = {"SHIPYARD_SVC_START_TIMEOUT": "5", "SHIPYARD_SVC_STOP_TIMEOUT": "3",
         "SHIPYARD_SVC_START_GRACE": "0.2"}

GOOD = """
    #!/bin/sh
    echo {version} > "$1/data/version"
    exec sleep 600
"""
# The service starts, then dies before the grace period ends.
DIES = """
    #!/bin/sh
    echo "app {version}: cannot open data/db: corrupt header" >&2
    sleep 0.2
    exit 3
"""
# The start script itself refuses.
REFUSES = """
    #!/bin/sh
    echo "start: port 7 already in use" >&2
    exit 1
"""


def good(root: Path, version: str) -> Path:
    return write_package(root, "app", version, 'exec = ["bin/serve", "{runtime_dir}"]',
                         {"bin/serve": GOOD.format(version=version)})


@pytest.fixture(name="world")
def fixture_world(public_dir: Path) -> dict:
    src, out = public_dir / "src", public_dir / "out"
    src.mkdir()
    out.mkdir()
    repository = Repository(public_dir)
    repository.publish(
        good(src, "1.0"),
        write_package(src, "app", "2.0", 'start = "script.d/start"',
                      {"script.d/start": REFUSES}),
        write_package(src, "app", "2.1", 'exec = ["bin/serve", "{runtime_dir}"]',
                      {"bin/serve": DIES.format(version="2.1")}),
        good(src, "3.0"),
        out=out)
    shipyard = node(public_dir, repository, **SHORT)
    yield {"node": shipyard, "repository": repository}
    shipyard.run("svc", "shutdown", check=False, timeout=60)
    kill_all(processes_under(shipyard.home / "runtime"))


def registered_package(shipyard: Shipyard) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(shipyard.home / "etc" / "services" / f"{APP}.ini")
    return parser["instance"]["package"]


def status(shipyard: Shipyard) -> dict:
    result = shipyard.run("svc", "status", APP, "--json", check=False)
    (entry,) = json.loads(result.stdout)
    return entry


def version_file(shipyard: Shipyard) -> str:
    path = shipyard.home / "runtime" / APP / "data" / "version"
    return path.read_text().strip() if path.exists() else ""


def serving(shipyard: Shipyard) -> list[int]:
    return [p.pid for p in processes_under(shipyard.home / "runtime" / APP)]


def test_bad_versions_roll_back_and_a_good_one_replaces_the_old(world: dict) -> None:
    shipyard: Shipyard = world["node"]
    shipyard.run("pkg", "install", f"{GROUP}:app:1.0")
    shipyard.run("svc", "register", APP, "--package", f"{GROUP}:app:1.0")
    shipyard.run("svc", "start", APP)
    first = status(shipyard)
    assert first["state"] == "running" and version_file(shipyard) == "1.0"

    # 2.0's start script refuses: rolled back, 1.0 runs again (a new process), 2.0 is gone.
    result = shipyard.run("svc", "upgrade", APP, "--to", f"{GROUP}:app:2.0", check=False)
    line = one_line_error(result)
    assert f"upgrade of {APP} to {GROUP}:app:2.0 failed" in line
    assert "start script script.d/start exited with code 1: start: port 7 already in use" in line
    assert f"rolled back to {GROUP}:app:1.0 (running again, pid " in line
    assert f"rolling back {APP} to {GROUP}:app:1.0" in result.stdout
    assert registered_package(shipyard) == f"{GROUP}:app:1.0"
    after = status(shipyard)
    assert after["state"] == "running" and after["package"] == f"{GROUP}:app:1.0"
    assert after["pid"] != first["pid"] and serving(shipyard) == [after["pid"]]
    assert version_file(shipyard) == "1.0"
    assert not (shipyard.home / "software" / "org" / "test" / "e2e" / "app" / "2.0").exists()
    assert (shipyard.home / "software" / "org" / "test" / "e2e" / "app" / "1.0").is_dir()

    # 2.1 starts but dies within the grace period: rolled back too.
    result = shipyard.run("svc", "upgrade", APP, "--to", f"{GROUP}:app:2.1", "--grace", "1",
                          check=False)
    line = one_line_error(result)
    assert "exited with code 3 right after start: app 2.1: cannot open data/db" in line
    assert f"rolled back to {GROUP}:app:1.0 (running again" in line
    assert registered_package(shipyard) == f"{GROUP}:app:1.0"
    assert status(shipyard)["state"] == "running" and version_file(shipyard) == "1.0"
    assert len(serving(shipyard)) == 1

    # --latest: the channel's newest, 3.0, comes up; only then is 1.0 uninstalled.
    result = shipyard.run("svc", "upgrade", APP, "--latest")
    assert f"upgraded {APP} from {GROUP}:app:1.0 to {GROUP}:app:3.0 (pid " in result.stdout
    assert f"uninstalled {GROUP}:app:1.0" in result.stdout
    assert registered_package(shipyard) == f"{GROUP}:app:3.0"
    now = status(shipyard)
    assert now["state"] == "running" and version_file(shipyard) == "3.0"
    assert serving(shipyard) == [now["pid"]]
    assert not (shipyard.home / "software" / "org" / "test" / "e2e" / "app" / "1.0").exists()
    again = json.loads(shipyard.run("svc", "upgrade", APP, "--latest", "--json").stdout)
    assert again["result"] == "unchanged" and status(shipyard)["pid"] == now["pid"]

    # A stopped instance is switched, not started; --keep-old keeps 3.0.
    shipyard.run("svc", "stop", APP)
    data = json.loads(shipyard.run("svc", "upgrade", APP, "--to", f"{GROUP}:app:1.0",
                                   "--keep-old", "--json").stdout)
    assert (data["result"], data["from"], data["to"], data["uninstalled"]) == (
        "switched", f"{GROUP}:app:3.0", f"{GROUP}:app:1.0", None)
    assert status(shipyard)["state"] == "stopped" and serving(shipyard) == []
    for version in ("1.0", "3.0"):
        assert (shipyard.home / "software" / "org" / "test" / "e2e" / "app" / version).is_dir()


def test_upgrade_usage_errors(world: dict) -> None:
    shipyard: Shipyard = world["node"]
    shipyard.run("pkg", "install", f"{GROUP}:app:1.0")
    shipyard.run("svc", "register", APP, "--package", f"{GROUP}:app:1.0")
    line = one_line_error(shipyard.run("svc", "upgrade", APP, check=False), 2)
    assert "exactly one of --to group:id:version or --latest" in line
    line = one_line_error(shipyard.run("svc", "upgrade", APP, "--to", "org.other:app:1.0",
                                       check=False), 2)
    assert "an upgrade changes the version only" in line
    line = one_line_error(shipyard.run("svc", "upgrade", APP, "--to", f"{GROUP}:app:9.9",
                                       check=False))
    assert f"{GROUP}:app:9.9 is not in channel stable" in line
    assert registered_package(shipyard) == f"{GROUP}:app:1.0"
    line = one_line_error(shipyard.run("svc", "upgrade", "1.nope.upgrade.test", "--latest",
                                       check=False))
    assert "unknown service 1.nope.upgrade.test" in line


def test_kill_9_during_upgrade_then_the_next_upgrade_puts_it_right(world: dict) -> None:
    shipyard: Shipyard = world["node"]
    shipyard.run("pkg", "install", f"{GROUP}:app:1.0")
    shipyard.run("svc", "register", APP, "--package", f"{GROUP}:app:1.0")
    shipyard.run("svc", "start", APP)
    rng = random.Random(7)
    versions = ["3.0", "1.0"]
    app_dir = shipyard.home / "software" / "org" / "test" / "e2e" / "app"
    for iteration in range(12):
        target = versions[iteration % 2]
        other = versions[(iteration + 1) % 2]
        proc = shipyard.popen("svc", "upgrade", APP, "--to", f"{GROUP}:app:{target}",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.05, 1.2))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # Whatever moment it died at: the registration is whole and names one of the two,
        # that package is installed, and at most one service process runs.
        registered = registered_package(shipyard)
        assert registered in (f"{GROUP}:app:{target}", f"{GROUP}:app:{other}")
        assert (app_dir / registered.rsplit(":", 1)[1] / "shipyard.toml").is_file()
        assert len(serving(shipyard)) <= 1
        # The next upgrade finishes the job.
        shipyard.run("svc", "upgrade", APP, "--to", f"{GROUP}:app:{target}")
        assert registered_package(shipyard) == f"{GROUP}:app:{target}"
        now = status(shipyard)
        assert now["state"] == "running", now
        assert serving(shipyard) == [now["pid"]]
        assert version_file(shipyard) == target
        assert sorted(p.name for p in app_dir.iterdir() if not p.name.startswith(".")) == [
            target]
        assert not (shipyard.home / "state" / "svc-upgrades" / f"{APP}.json").exists()
