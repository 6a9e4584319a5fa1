"""Abort: a queued build is cancelled; a running one is killed on its worker with its whole
process group (grandchildren included) within seconds, marked aborted, never retried."""

from __future__ import annotations

import os
from pathlib import Path

from farmkit import Farm, Source, _farm, _make_farm, request_ids, wait_until  # noqa: F401

# The builds here report to files of the test (pids, runs): without the sandbox, which
# would hide those paths (tests/farm/test_sandbox.py covers the sandboxed worker).
HOST_VISIBLE = ("--no-sandbox",)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_abort_kills_the_build_and_its_grandchildren(farm: Farm, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    coordinator = farm.start_coordinator()
    url = coordinator.url
    farm.start_worker("w1", url, extra=HOST_VISIBLE)
    source = Source.create(farm, url)
    # The build starts a child shell that starts a grandchild, and waits for both.
    command = (f"echo $$ > {pids}/shell; "
               f"sh -c 'sleep 300 & echo $! > {pids}/grandchild; wait' & "
               f"echo $! > {pids}/child; wait")
    source.package("hang", "org.example", "hang", "1.0", command)
    source.package("next", "org.example", "next", "1.0", "echo next")
    _commit, output = source.push("a build that hangs, and one queued behind it")
    hang, queued = request_ids(output)
    wait_until(lambda: (pids / "grandchild").exists() and (pids / "grandchild").read_text(),
               30, what="the grandchild to start")
    procs = {name: int((pids / name).read_text()) for name in ("shell", "child", "grandchild")}
    assert all(_alive(pid) for pid in procs.values())

    # The queued one is cancelled at once and never runs.
    cancelled = farm.cli("farm", "build", "abort", str(queued), "--coordinator", url,
                         "--token", farm.token("admin"))
    assert f"build {queued} cancelled" in cancelled.stdout
    assert farm.build(url, queued)["state"] == "cancelled"

    aborted = farm.cli("farm", "build", "abort", str(hang), "--coordinator", url,
                       "--token", farm.token("admin"))
    assert "abort requested" in aborted.stdout
    build = farm.wait_state(url, hang, "aborted", "failed", "succeeded", timeout=15)
    assert build["state"] == "aborted" and build["attempt"] == 1
    assert "aborted by test-admin" in build["reason"]
    wait_until(lambda: not any(_alive(pid) for pid in procs.values()), 10,
               what=f"the build's processes {procs} to be gone")

    # Not retried, even after the lease would have run out; the next build runs.
    farm.start_worker("w2", url, extra=HOST_VISIBLE)
    source.package("next", "org.example", "next", "1.1", "echo next")
    _commit, output = source.push("next 1.1")
    (later,) = request_ids(output)
    assert farm.wait_state(url, later, "succeeded", "failed")["state"] == "succeeded"
    assert farm.build(url, hang)["state"] == "aborted"
    assert farm.build(url, queued)["state"] == "cancelled"
    log = farm.log(url, hang)
    assert "abort requested by test-admin" in log and "attempt 2" not in log

    # Aborting a finished build is refused with one line.
    again = farm.cli("farm", "build", "abort", str(hang), "--coordinator", url,
                     "--token", farm.token("admin"), check=False)
    assert again.returncode == 1
    assert again.stderr.strip().endswith(f"409 build {hang} is already aborted")
