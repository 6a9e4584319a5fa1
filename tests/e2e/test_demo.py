"""``shipyard demo --no-wait``: the whole pipeline, then every step's outcome read back from
what it left on disk (the farm's database, the repository, the node's registry and link
state, the instances' logs, the caught mail), and no process left behind.

The demo stops everything before it exits, so these checks read files and databases and
run the CLI against the homes the demo used; none of them trusts the demo's own output.
"""

from __future__ import annotations

import configparser
import json
import mailbox
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import psutil
from e2ekit import fixture_public_dir, wait_until  # noqa: F401

from conftest import EXAMPLES, SHIPYARD, Shipyard, make_env
from kit.manifest import amend_manifest

EXAMPLES_GROUP = "org.shipyard.examples"
UPPER = "1.upper.demo.local"


def run_demo(directory: Path, *extra: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return subprocess.run([*SHIPYARD, "demo", "--no-wait", "--dir", str(directory), *extra],
                          env=env, capture_output=True, text=True, timeout=timeout)


def builds(directory: Path) -> list[dict]:
    with sqlite3.connect(directory / "farm" / "state" / "farm.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(
            "SELECT id, package, version, state, worker, publish_state FROM farm_builds "
            "ORDER BY id")]


def leftover_processes(directory: Path) -> list[str]:
    """Live processes that mention the demo directory (servers, workers, instances)."""
    needle = str(directory)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            command = " ".join(proc.info["cmdline"] or [])
            with open(f"/proc/{proc.pid}/environ", "rb") as handle:
                environ = handle.read().decode("utf-8", "replace")
        except (OSError, psutil.Error):
            continue
        if needle in command or needle in environ:
            found.append(f"{proc.pid} {command}")
    return found


def test_demo_runs_every_step_and_leaves_the_real_state(public_dir: Path) -> None:
    directory = public_dir / "demo"
    result = run_demo(directory)
    assert result.returncode == 0, result.stdout + result.stderr
    for number in range(1, 8):
        assert f"✓ [{number}/7]" in result.stdout, result.stdout
    farm = Shipyard(directory / "farm", make_env(directory / "farm"))
    node = Shipyard(directory / "node", make_env(directory / "node"))

    # 1 + 2: two workers built every example from the push; all were published.
    rows = builds(directory)
    examples = sorted(p.name for p in EXAMPLES.iterdir() if (p / "shipyard.toml").is_file())
    first = rows[:len(examples)]
    assert sorted(r["package"].split(":")[1] for r in first) == examples
    assert all(r["state"] == "succeeded" and r["publish_state"] == "published" for r in first)
    assert {r["worker"] for r in rows} <= {"worker-1", "worker-2"}
    with sqlite3.connect(directory / "farm" / "state" / "farm.sqlite") as db:
        assert sorted(n for (n,) in db.execute("SELECT name FROM farm_workers")) == [
            "worker-1", "worker-2"]
    listed = farm.run("repo", "list", "--json", "--repo", str(directory / "repository"))
    channels: dict[str, set[str]] = {}
    for entry in json.loads(listed.stdout)["packages"]:
        channels.setdefault(entry["channel"], set()).add(entry["coordinate"])
    assert channels["security"] == {"org.example:svc-exec:1.0.0"}
    assert f"{EXAMPLES_GROUP}:jabber-upper:1.1.0" in channels["stable"]
    assert "org.example:hello:1.0.0" in channels["stable"]
    assert not any(c.startswith("org.example:hello:1.1") for c in channels["stable"])
    # Security first: the generation that first listed svc-exec was a priority-0 pass.
    from shipyard.demo.farmview import publications
    from shipyard.repo.channels import first_listed

    serial = first_listed(directory / "repository", "security", "org.example:svc-exec")
    by_serial = {p.serial: p for p in publications(directory / "repository")}
    assert by_serial[serial].priority == 0 and by_serial[serial].channels == ["security"]

    # 3: the node installed over HTTP, verified with the key, and ran six instances.
    installed = json.loads(node.run("pkg", "list", "--json").stdout)
    sources = {r["coordinate"]: r["source"] for r in installed}
    assert all(s.startswith("http://127.0.0.1:") for s in sources.values()), sources
    assert all(r["signed_by"] for r in installed)
    assert f"{EXAMPLES_GROUP}:chat-server:1.0.0" in sources
    assert "org.example:hello-lib:1.0.0" in sources  # pulled in by hello's requires
    # ... and the transports authenticated to the server (its own log says so).
    chat_log = (directory / "node" / "runtime" / "1.chat.demo.local" / "log" /
                "chat-server.log").read_text()
    for host in ("echo.node1.demo.test", "upper.node1.demo.test"):
        assert f"component {host} authenticated" in chat_log

    # 4: the upgraded transport: registration, packages, a second authentication.
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(directory / "node" / "etc" / "services" / f"{UPPER}.ini")
    assert parser["instance"]["package"] == f"{EXAMPLES_GROUP}:jabber-upper:1.1.0"
    assert f"{EXAMPLES_GROUP}:jabber-upper:1.1.0" in sources
    assert f"{EXAMPLES_GROUP}:jabber-upper:1.0.0" not in sources
    transport_log = (directory / "node" / "runtime" / UPPER / "log" /
                     "transport.log").read_text()
    assert transport_log.count("authenticated as upper.node1.demo.test") >= 2
    links = json.loads(node.run("link", "list", "--json").stdout)["links"]
    assert {(r["announcer"], r["state"]) for r in links} == {
        ("1.echo.demo.local", "linked"), (UPPER, "linked")}

    # 5: the broken build failed, and its mail reached the sink.
    broken = rows[-1]
    assert (broken["package"], broken["version"], broken["state"]) == (
        "org.example:hello", "1.1.0", "failed")
    subjects = [m["Subject"] for m in mailbox.Maildir(directory / "mail", create=False)]
    assert f"[shipyard] build {broken['id']} failed: org.example:hello 1.1.0" in subjects

    # 6: two fleet nodes (own homes, own agents, 127.0.1.2 and .3) linked across hosts:
    # the transport on b learned a's address and authenticated to the server on a.
    chat_a = (directory / "fleet-a" / "runtime" / "1.chat.fleet.demo" / "log" /
              "chat-server.log").read_text()
    assert "component echo.b.fleet.demo.test authenticated" in chat_a
    link_b = configparser.ConfigParser(interpolation=None)
    link_b.read(directory / "fleet-b" / "runtime" / "1.echo.fleet.demo" / "etc" /
                "link-jabber-component.ini")
    assert link_b["link"]["acceptor_host"] == "127.0.1.2"
    assert not (directory / "fleet-a" / "runtime" / "1.echo.fleet.demo").exists()
    with sqlite3.connect(directory / "farm" / "state" / "farm.sqlite") as db:
        assert sorted(db.execute("SELECT name, address FROM fleet_nodes")) == [
            ("a", "127.0.1.2"), ("b", "127.0.1.3")]
    assert "Links across hosts (fleet links)" in result.stdout
    assert "✓ [6/7] fleet" in result.stdout
    for home in ("fleet-a", "fleet-b"):
        fleet_status = json.loads(Shipyard(directory / home, make_env(directory / home)).run(
            "svc", "status", "--json").stdout)
        assert len(fleet_status) == 1 and fleet_status[0]["state"] == "stopped"

    # 7: the summary, then a clean stop: instances down, no process left.
    assert "web UI: http://127.0.0.1:" in result.stdout
    status = json.loads(node.run("svc", "status", "--json").stdout)
    assert len(status) == 6 and {s["state"] for s in status} == {"stopped"}
    assert not (directory / "processes.json").exists()
    assert leftover_processes(directory) == []

    # The next run wipes the directory it made (and only a directory it made).
    stranger = public_dir / "not-a-demo"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep me\n")
    refused = run_demo(stranger, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert f"refusing to wipe {stranger}" in refused.stderr
    assert (stranger / "precious.txt").read_text() == "keep me\n"


def test_a_failing_step_is_named_and_everything_is_stopped(public_dir: Path) -> None:
    examples = public_dir / "examples"
    shutil.copytree(EXAMPLES, examples)
    amend_manifest(examples / "chat-server" / "shipyard.toml",
                   build={"command": "echo no compiler here >&2; exit 4"})
    directory = public_dir / "demo"
    result = run_demo(directory, "--examples", str(examples))
    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("shipyard: error: demo step 2 (push) failed: build 1 of "
                            f"{EXAMPLES_GROUP}:chat-server failed"), error
    assert "no compiler here" in error
    assert "✓ [1/7]" in result.stdout and "✗ [2/7]" in result.stdout
    assert "[3/7]" not in result.stdout
    assert not (directory / "processes.json").exists()
    assert leftover_processes(directory) == []


def test_ctrl_c_in_the_middle_stops_everything(public_dir: Path) -> None:
    directory = public_dir / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    proc = subprocess.Popen([*SHIPYARD, "demo", "--no-wait", "--dir", str(directory)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("✓ [1/7]" in line for line in seen), 240,
                   "the demo to finish its first step")
        assert (directory / "processes.json").exists()  # the farm is running now
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert "Traceback" not in proc.stderr.read()
    assert any("interrupted: stopping everything" in line for line in seen), seen
    assert not any("steps done" in line for line in seen), seen
    assert not (directory / "processes.json").exists()
    assert leftover_processes(directory) == []
