"""A worker runs each build in a bubblewrap sandbox (real coordinator, real worker
processes): the build finds no token in its environment, cannot reach the coordinator,
cannot write outside its own directories, leaves no process behind, is held to the
worker's time and memory limits, and the same commit built twice gives the same bytes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import tarfile
from pathlib import Path

import httpx
from farmkit import (  # noqa: F401
    Farm,
    Proc,
    Source,
    _make_farm,
    _sqlite_farm,
    git,
    manifest,
    request_ids,
    wait_until,
)


def _worker_with_env_token(farm: Farm, url: str, name: str, *extra: str) -> Proc:
    """A worker given its token in the environment, as an operator's unit would."""
    env = {**farm.env, "SHIPYARD_FARM_TOKEN": farm.token("worker")}
    return farm._spawn(f"worker-{name}", [
        "farm", "worker", "--coordinator", url, "--name", name, "--capacity", "2",
        "--workdir", str(farm.root / f"workdir-{name}"), *extra], env)


def _sleepers(tag: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", tag.encode()]:
            found.append(int(entry.name))
    return found


def test_a_build_cannot_reach_secrets_network_host_or_outlive_itself(
        sqlite_farm: Farm, tmp_path: Path) -> None:
    farm = sqlite_farm
    coordinator = farm.start_coordinator()
    url = coordinator.url
    port = url.rsplit(":", 1)[1]
    worker = _worker_with_env_token(farm, url, "w1")
    source = Source.create(farm, url)
    outside = tmp_path / "outside"
    outside.mkdir()
    workdir = farm.root / "workdir-w1"
    tag = str(random.randint(100_000, 999_999))
    source.package("env", "org.example", "env", "1.0",
                   "env; echo x > $SHIPYARD_DESTDIR/made; echo y > $HOME/ok; "
                   "echo z > /tmp/ok; echo w > $SHIPYARD_SOURCE_DIR/ok")
    source.package("net", "org.example", "net", "1.0",
                   f"bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo reached-coordinator")
    # Asked for, the network is there (the same connection succeeds).
    source.write("netok/shipyard.toml", manifest(
        "org.example", "netok", "1.0",
        f"bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo reached-coordinator")
        + "network = true\n")
    source.package("out1", "org.example", "out1", "1.0", f"echo x > {outside}/escaped")
    source.package("out2", "org.example", "out2", "1.0", f"echo x > {workdir}/escaped")
    source.package("out3", "org.example", "out3", "1.0", "echo x > /etc/shipyard-escaped")
    # A sleeper that leaves the build's directory and session: the worker's own sweep
    # (process groups, working directories) does not find it; the PID namespace does.
    source.package("fork", "org.example", "fork", "1.0",
                   f"(cd / && setsid sleep {tag} </dev/null >/dev/null 2>&1 &); echo forked")
    _commit, output = source.push("builds that try things")
    ids = {farm.build(url, build)["package"].split(":")[1]: build
           for build in request_ids(output)}
    assert sorted(ids) == ["env", "fork", "net", "netok", "out1", "out2", "out3"]
    states = {name: farm.wait_state(url, build, "succeeded", "failed")["state"]
              for name, build in ids.items()}

    env_log = farm.log(url, ids["env"])
    assert states["env"] == "succeeded", env_log
    assert farm.token("worker") not in env_log
    assert "SHIPYARD_FARM_TOKEN" not in env_log
    assert "HOME=/build/home" in env_log and "SHIPYARD_DESTDIR=/build/dest" in env_log

    assert states["net"] == "failed"
    assert "reached-coordinator" not in farm.log(url, ids["net"])

    assert states["netok"] == "succeeded"
    assert "reached-coordinator" in farm.log(url, ids["netok"])

    for name in ("out1", "out2", "out3"):
        assert states[name] == "failed", farm.log(url, ids[name])
    assert not (outside / "escaped").exists()
    assert not (workdir / "escaped").exists()
    assert not Path("/etc/shipyard-escaped").exists()

    assert states["fork"] == "succeeded"
    assert "forked" in farm.log(url, ids["fork"])
    wait_until(lambda: not _sleepers(tag), 30, what=f"the build's sleeper {tag} to be gone")
    assert worker.alive()


def test_the_worker_enforces_its_time_and_memory_limits(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    url = farm.start_coordinator().url
    _worker_with_env_token(farm, url, "w1", "--build-time-limit", "2",
                           "--build-memory-limit", "64")
    source = Source.create(farm, url)
    source.package("slow", "org.example", "slow", "1.0", "echo started; sleep 120")
    source.package("big", "org.example", "big", "1.0",
                   "python3 -c 'bytearray(512 << 20)' || exit 7")
    _commit, output = source.push("a slow build and a big one")
    slow, big = sorted(request_ids(output),
                       key=lambda build: farm.build(url, build)["package"] != "org.example:slow")
    slow_build = farm.wait_state(url, slow, "succeeded", "failed")
    assert slow_build["state"] == "failed"
    assert "killed after 2 s (the worker's --build-time-limit)" in slow_build["reason"]
    big_build = farm.wait_state(url, big, "succeeded", "failed")
    assert big_build["state"] == "failed"
    assert "exited with code 7" in big_build["reason"]
    assert "MemoryError" in farm.log(url, big)


REPRO = ("printf '%s\\n' \"$PWD\" \"$HOME\" \"$SHIPYARD_DESTDIR\" \"$SOURCE_DATE_EPOCH\" "
         "> $SHIPYARD_DESTDIR/paths; touch $SHIPYARD_DESTDIR/stamp; "
         "mkdir -p $SHIPYARD_DESTDIR/bin && cp build.sh $SHIPYARD_DESTDIR/bin/")


def test_the_same_commit_built_twice_gives_the_same_bytes(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    url = farm.start_coordinator().url
    _worker_with_env_token(farm, url, "w1")
    source = Source.create(farm, url)
    source.package("r", "org.example", "repro", "1.0", REPRO)
    source.write("r/build.sh", "#!/bin/sh\necho tool\n", mode=0o755)
    commit, output = source.push("a package whose build records where it ran")
    (first,) = request_ids(output)
    assert farm.wait_state(url, first, "succeeded", "failed")["state"] == "succeeded"
    again = farm.cli("farm", "build", "request", "org.example:repro", "--commit", commit,
                     "--force", "--coordinator", url, "--token", farm.token("admin"), "--json")
    second = json.loads(again.stdout)["build"]["id"]
    assert second != first
    assert farm.wait_state(url, second, "succeeded", "failed")["state"] == "succeeded"

    def artifact(build_id: int) -> bytes:
        response = httpx.get(f"{url}/api/builds/{build_id}/artifact", timeout=30)
        assert response.status_code == 200
        return response.content

    one, two = artifact(first), artifact(second)
    assert hashlib.sha256(one).hexdigest() == hashlib.sha256(two).hexdigest()
    # SOURCE_DATE_EPOCH is the commit's time, and the member times follow it.
    with tarfile.open(fileobj=io.BytesIO(one)) as tar:
        paths = tar.extractfile("paths").read().decode().split()  # type: ignore[union-attr]
        stamp = tar.getmember("stamp")
    epoch = int(git("log", "-1", "--format=%ct", commit, cwd=source.work).stdout.strip())
    assert paths == ["/build/src/r", "/build/home", "/build/dest", str(epoch)]
    assert stamp.mtime == epoch and stamp.uid == 0 and stamp.uname == ""


def test_a_worker_without_bubblewrap_refuses_to_start_unless_told(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    url = farm.start_coordinator().url
    farm.extra_env["SHIPYARD_FARM_BWRAP"] = "/nonexistent/bwrap"
    # The token in the environment, as a unit gives it (--token would add its ps warning).
    farm.extra_env["SHIPYARD_FARM_TOKEN"] = farm.token("worker")
    try:
        refused = farm.cli("farm", "worker", "--coordinator", url, "--name", "nobwrap",
                           "--workdir", str(farm.root / "wd"), check=False, timeout=60)
    finally:
        del farm.extra_env["SHIPYARD_FARM_TOKEN"]
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "bubblewrap" in lines[0] and "--no-sandbox" in lines[0], lines
    assert "Traceback" not in refused.stderr

    # Told, it starts; the build still gets a scrubbed environment (no token).
    worker = _worker_with_env_token(farm, url, "plain", "--no-sandbox")
    source = Source.create(farm, url)
    source.package("env", "org.example", "env", "1.0", "env")
    _commit, output = source.push("env without a sandbox")
    (build,) = request_ids(output)
    assert farm.wait_state(url, build, "succeeded", "failed")["state"] == "succeeded"
    log = farm.log(url, build)
    assert "SHIPYARD_PACKAGE=org.example:env:1.0" in log
    assert farm.token("worker") not in log
    assert "NO SANDBOX" in worker.output()


def test_a_worker_killed_mid_build_takes_the_build_with_it(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    url = farm.start_coordinator().url
    worker = _worker_with_env_token(farm, url, "w1")
    source = Source.create(farm, url)
    tag = str(random.randint(100_000, 999_999))
    source.package("hang", "org.example", "hang", "1.0", f"echo started; sleep {tag}")
    _commit, output = source.push("a build that outlives nothing")
    (build,) = request_ids(output)
    wait_until(lambda: _sleepers(tag), 60, what="the build's sleeper to start")
    farm.kill(worker, signal.SIGKILL)
    wait_until(lambda: not _sleepers(tag), 30,
               what=f"the build's sleeper {tag} to die with its worker")
    assert farm.build(url, build)["state"] in ("running", "queued")
