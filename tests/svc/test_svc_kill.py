"""``kill -9`` of shipyard during register, start and boot, at seeded random moments.

Invariants after every kill: every registry file is whole (old or new, never half), the
next command works, and there is exactly one process per instance: a killed start never
leaves an untracked service behind that a second start would duplicate.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_src,
    fixture_svc,
    fixture_svc_home,
    install,
    install_example,
    kill_at_random,
    processes_with,
    runtime_dir,
    state_of,
    wait_until,
    write_package,
)

from conftest import Shipyard
from shipyard.svc.registry import parse_registration


def _registry_is_whole(svc: Shipyard) -> list[str]:
    directory = svc.home / "etc" / "services"
    names = []
    for path in sorted(directory.glob("*.ini")):
        registration = parse_registration(path)  # raises on a half-written file
        names.append(str(registration.coordinate))
    return names


def test_kill_during_register(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    rng = random.Random(3)
    params = ["--interval=1"]
    for iteration in range(25):
        name = f"{iteration % 5}.reg.test.local"
        args = ["svc", "register", name, "--package", package,
                "--after", f"{(iteration + 1) % 5}.other.test.local", "--", *params]
        code = kill_at_random(svc, args, rng, 0.05, 0.6)
        assert code in (None, 0)
        for registered in _registry_is_whole(svc):
            assert registered.endswith(".reg.test.local")
    result = svc.run("svc", "register", "9.reg.test.local", "--package", package, "--",
                     "--interval=1")
    assert "registered 9.reg.test.local" in result.stdout
    leftovers = [p.name for p in (svc.home / "etc" / "services").iterdir()
                 if p.name.endswith(".tmp")]
    assert leftovers == []
    assert "9.reg.test.local" in _registry_is_whole(svc)
    assert len(json.loads(svc.run("svc", "status", "--json").stdout)) >= 1


def test_kill_during_start(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    name = "1.kill.test.local"
    marker = f"--name={name}"
    svc.run("svc", "register", name, "--package", package, "--", "--interval=5")
    rng = random.Random(7)
    for _ in range(6):
        kill_at_random(svc, ["svc", "start", name], rng, 0.1, 1.0)
        result = svc.run("svc", "start", name)
        assert "started" in result.stdout or "already running" in result.stdout
        assert state_of(svc, name) == "running"
        assert len(processes_with(marker)) == 1, "a killed start left a duplicate"
        svc.run("svc", "stop", name)
        wait_until(lambda: not processes_with(marker), what="the service to be gone")


def test_kill_during_boot(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    names = [f"{i}.boot.test.local" for i in range(1, 5)]
    for index, name in enumerate(names):
        after = ["--after", names[0]] if index >= 2 else []  # two waves: 1 2, then 3 4
        svc.run("svc", "register", name, "--package", package, *after, "--",
                "--interval=5")
    rng = random.Random(11)
    for _ in range(4):
        kill_at_random(svc, ["svc", "boot"], rng, 0.2, 1.5)
        svc.run("svc", "boot")
        states = json.loads(svc.run("svc", "status", "--json").stdout)
        assert {e["state"] for e in states} == {"running"}
        for name in names:
            assert len(processes_with(f"--name={name}")) == 1, name
        svc.run("svc", "shutdown")
        for name in names:
            wait_until(lambda n=name: not processes_with(f"--name={n}"), what=name)


SLOW_START = """
    #!/bin/sh
    dir="${1#--runtime-dir=}"
    sleep 1.5
    setsid "$SHIPYARD_PACKAGE_DIR/bin/serve" "$dir" < /dev/null > /dev/null 2>&1 &
    echo $! > "$dir/run/start.pid"
"""
SERVE = """
    #!/bin/sh
    while :; do
        sleep 0.2 &
        wait $!
    done
"""


def test_kill_during_a_start_script(svc: Shipyard, src: Path, out: Path) -> None:
    """The killed shipyard's start script keeps running; the next start waits for it."""
    package = install(svc, write_package(src, "slow", 'start = "script.d/start"',
                                         {"script.d/start": SLOW_START, "bin/serve": SERVE}),
                      out)
    name = "1.slow.test.local"
    marker = str(runtime_dir(svc, name))
    svc.run("svc", "register", name, "--package", package)
    rng = random.Random(5)
    for _ in range(3):
        # Killed while the script sleeps: it writes its pid file after the next start began.
        kill_at_random(svc, ["svc", "start", name], rng, 0.5, 1.2)
        result = svc.run("svc", "start", name)
        assert "started" in result.stdout or "already running" in result.stdout
        assert len(processes_with(marker)) == 1, "two start scripts ran: a duplicate"
        assert state_of(svc, name) == "running"
        svc.run("svc", "stop", name)
        wait_until(lambda: not processes_with(marker), what="the service to be gone")
