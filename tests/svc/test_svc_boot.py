"""Boot and shutdown: ``after`` order, parallel starts, cycles, one failure among many."""

from __future__ import annotations

import json
from pathlib import Path

from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_src,
    fixture_svc,
    fixture_svc_home,
    install,
    one_line_error,
    processes_under,
    runtime_dir,
    state_of,
    write_package,
)

from conftest import Shipyard

# Start script: waits --delay, then daemonises a server that notes when it is stopped.
STAMP_START = """
    #!/bin/sh
    for arg in "$@"; do
        case "$arg" in
            --runtime-dir=*) dir="${arg#--runtime-dir=}" ;;
            --delay=*) delay="${arg#--delay=}" ;;
        esac
    done
    date +%s.%N > "$dir/data/begin"
    sleep "${delay:-0}"
    setsid "$SHIPYARD_PACKAGE_DIR/bin/serve" "$dir" < /dev/null &
    echo $! > "$dir/run/start.pid"
    date +%s.%N > "$dir/data/end"
"""
SERVE = """
    #!/bin/sh
    trap 'date +%s.%N > "$1/data/stopped"; exit 0' TERM
    while :; do
        sleep 0.2 &
        wait $!
    done
"""


def _stamp(svc: Shipyard, name: str, what: str) -> float:
    return float((runtime_dir(svc, name) / "data" / what).read_text())


def test_boot_order_parallelism_failure_and_shutdown_order(svc: Shipyard, src: Path,
                                                           out: Path) -> None:
    stamp = install(svc, write_package(src, "stamp", 'start = "script.d/start"', {
        "script.d/start": STAMP_START, "bin/serve": SERVE}), out)
    failing = install(svc, write_package(src, "broken", 'start = "script.d/start"', {
        "script.d/start": "#!/bin/sh\necho 'broken: no config' >&2\nexit 3\n"}), out)
    chain = ["1.db.test.local", "1.app.test.local", "1.web.test.local"]
    svc.run("svc", "register", chain[0], "--package", stamp, "--", "--delay=0.5")
    svc.run("svc", "register", chain[1], "--package", stamp, "--after", chain[0])
    svc.run("svc", "register", chain[2], "--package", stamp, "--after", chain[1])
    wide = [f"{i}.wide.test.local" for i in range(1, 5)]
    for name in wide:
        svc.run("svc", "register", name, "--package", stamp, "--", "--delay=1")
    svc.run("svc", "register", "1.bad.test.local", "--package", failing)
    svc.run("svc", "register", "1.manual.test.local", "--package", stamp, "--no-boot")

    result = svc.run("svc", "boot", check=False)
    line = one_line_error(result)
    assert line == ("shipyard: error: boot: 1 of 8 instance(s) failed: 1.bad.test.local: "
                    "start script script.d/start exited with code 3: broken: no config")
    for name in [*chain, *wide]:
        assert f"started {name} (pid " in result.stdout
    states = {e["service"]: e["state"]
              for e in json.loads(svc.run("svc", "status", "--json", check=False).stdout)}
    assert states == {**{n: "running" for n in [*chain, *wide]},
                      "1.bad.test.local": "stopped", "1.manual.test.local": "stopped"}
    grace = 0.3
    assert _stamp(svc, chain[1], "begin") >= _stamp(svc, chain[0], "end") + grace - 0.05
    assert _stamp(svc, chain[2], "begin") >= _stamp(svc, chain[1], "end") + grace - 0.05
    begins = [_stamp(svc, name, "begin") for name in wide]
    # Each start takes 1.3 s, so one after the other they would span 3.9 s.
    assert max(begins) - min(begins) < 2.0, begins

    again = svc.run("svc", "boot", check=False)
    assert f"{chain[0]} is already running" in again.stdout

    svc.run("svc", "start", "1.manual.test.local")
    down = svc.run("svc", "shutdown")
    assert "shutdown: 8 instance(s) stopped" in down.stdout
    stopped = [_stamp(svc, name, "stopped") for name in chain]
    assert stopped[2] <= stopped[1] <= stopped[0], stopped
    assert not processes_under(svc.home / "runtime")


def test_cycles_are_named_and_refused(svc: Shipyard, src: Path, out: Path) -> None:
    stamp = install(svc, write_package(src, "stamp", 'start = "script.d/start"', {
        "script.d/start": STAMP_START, "bin/serve": SERVE}), out)
    a, b, c = "1.a.test.local", "1.b.test.local", "1.c.test.local"
    first = svc.run("svc", "register", a, "--package", stamp, "--after", c)
    assert first.stderr.strip() == ("shipyard: warning: --after names instances that are "
                                    f"not registered (yet): {c}")
    svc.run("svc", "register", b, "--package", stamp, "--after", a)
    line = one_line_error(svc.run("svc", "register", c, "--package", stamp, "--after", b,
                                  check=False))
    assert line == (f"shipyard: error: {c}: --after would close a cycle in 'after': "
                    f"{a} -> {c} -> {b} -> {a}")
    assert not (svc.home / "etc" / "services" / f"{c}.ini").exists()
    line = one_line_error(svc.run("svc", "register", c, "--package", stamp, "--after", c,
                                  check=False), code=2)
    assert "cannot come after itself" in line
    # A cycle written by hand into the registry stops the boot before anything starts.
    svc.run("svc", "register", c, "--package", stamp)
    ini = svc.home / "etc" / "services" / f"{c}.ini"
    ini.write_text(ini.read_text().replace("after = \n", f"after = {b}\n"))
    line = one_line_error(svc.run("svc", "boot", check=False))
    assert line == f"shipyard: error: boot: cycle in 'after': {a} -> {c} -> {b} -> {a}"
    assert all(state_of(svc, n) == "stopped" for n in (a, b, c))
    # Shutdown still works with a cycle: it warns and stops without order.
    for name in (a, b, c):
        svc.run("svc", "start", name)
    down = svc.run("svc", "shutdown")
    assert all(f"stopped {name}" in down.stdout for name in (a, b, c))
    assert "stopping without order" in down.stderr
