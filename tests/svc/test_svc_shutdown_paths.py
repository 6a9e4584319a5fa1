"""``svc shutdown`` runs without Typer; it must say and do exactly what the Typer path does.

``shipyard svc shutdown`` (and ``--json``) skip the CLI framework; any other spelling of
the same command, here ``--home H svc shutdown``, goes through Typer. Both are run on the
same scene (running instances and one whose record names a reused pid) and must agree on
stdout, stderr and exit code, pids and times aside.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from svckit import (  # noqa: F401 - fixtures, used by name
    fixture_out,
    fixture_src,
    fixture_svc,
    fixture_svc_home,
    install,
    install_example,
    runtime_dir,
    state_file,
    state_of,
    status,
    wait_until,
    write_package,
)

from conftest import SHIPYARD, Result, Shipyard

GOOD = ["1.tick.test.local", "2.tick.test.local", "3.tick.test.local"]
BAD = "4.tick.test.local"


def _typer_path(svc: Shipyard, *args: str) -> Result:
    return svc.run("--home", str(svc.home), "svc", "shutdown", *args, check=False)


def _fast_path(svc: Shipyard, *args: str) -> Result:
    return svc.run("svc", "shutdown", *args, check=False)


def _scene(svc: Shipyard, stranger: subprocess.Popen[bytes]) -> None:
    """All running, but BAD's record now names ``stranger``: a pid reused after a crash."""
    svc.run("svc", "boot")
    pid = status(svc, BAD)["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: state_of(svc, BAD) == "dead", what="dead state")
    path = state_file(svc, BAD)
    record = json.loads(path.read_text())
    record.update(pid=stranger.pid, pgid=stranger.pid)
    path.write_text(json.dumps(record))


def _same(text: str) -> str:
    text = re.sub(r"pid \d+", "pid N", text)
    text = re.sub(r'"pid": \d+', '"pid": N', text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", text)


def _agree(fast: Result, typer: Result) -> None:
    assert fast.returncode == typer.returncode
    assert sorted(_same(fast.stdout).splitlines()) == sorted(_same(typer.stdout).splitlines())
    assert _same(fast.stderr) == _same(typer.stderr)


def test_both_paths_agree_on_output_and_exit_code(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    for name in [*GOOD, BAD]:
        svc.run("svc", "register", name, "--package", package, "--", "--interval=1")
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        runs = {}
        for args in ((), ("--json",)):
            for path in (_fast_path, _typer_path):
                _scene(svc, stranger)
                runs[path, args] = path(svc, *args)
                assert stranger.poll() is None
                assert all(state_of(svc, name) == "stopped" for name in [*GOOD, BAD])
            _agree(runs[_fast_path, args], runs[_typer_path, args])
    finally:
        stranger.kill()
        stranger.wait()

    text = runs[_fast_path, ()]
    assert text.returncode == 1
    for name in GOOD:
        assert f"stopped {name} (pid " in text.stdout
    (error,) = text.stderr.splitlines()
    assert error.startswith(f"shipyard: error: shutdown: 1 of 4 instance(s) failed: {BAD}: "
                            f"not signalling pid {stranger.pid}: it is now 'sleep'")
    data = json.loads(runs[_fast_path, ("--json",)].stdout)
    assert data["failed"] == [BAD]
    assert [i["result"] for i in data["instances"] if i["ok"]] == ["stopped"] * 3

    # Nothing left to stop: the same single line from both.
    idle = [_fast_path(svc), _typer_path(svc)]
    assert [r.stdout for r in idle] == ["shutdown: 0 instance(s) stopped\n"] * 2
    assert [r.returncode for r in idle] == [0, 0]


def test_fast_path_imports_neither_typer_nor_manifests(svc: Shipyard, out: Path) -> None:
    package = install_example(svc, "svc-exec", out)
    svc.run("svc", "register", GOOD[0], "--package", package, "--", "--interval=1")
    svc.run("svc", "start", GOOD[0])
    imports = {"PYTHONPROFILEIMPORTTIME": "1"}

    def modules(result: Result) -> set[str]:
        assert result.returncode == 0, result.output
        return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}

    fast = modules(svc.run("svc", "shutdown", env=imports))
    assert not {"typer", "shipyard.manifest", "concurrent.futures"} & fast
    assert state_of(svc, GOOD[0]) == "stopped"
    through_typer = svc.run("--home", str(svc.home), "svc", "shutdown", env=imports)
    assert "typer" in modules(through_typer)  # the check above can fail
    # Anything but the exact command line goes through Typer: --help still works.
    helped = svc.run("svc", "shutdown", "--help")
    assert "Usage" in helped.stdout and "--json" in helped.stdout


def _close_stdout() -> None:
    os.close(1)


def test_broken_or_missing_stdout_ends_both_paths_alike(svc: Shipyard) -> None:
    broken, missing = [], []
    for args in (["svc", "shutdown"], ["--home", str(svc.home), "svc", "shutdown"]):
        read, write = os.pipe()
        os.close(read)  # every write fails with EPIPE
        try:
            proc = subprocess.run([*SHIPYARD, *args], stdout=write, stderr=subprocess.PIPE,
                                  env=svc.env, timeout=60)
        finally:
            os.close(write)
        broken.append((proc.returncode, proc.stderr))
        # No stdout at all (Python's sys.stdout is None): the lines are dropped.
        proc = subprocess.run([*SHIPYARD, *args], stderr=subprocess.PIPE, env=svc.env,
                              timeout=60, preexec_fn=_close_stdout)
        missing.append((proc.returncode, proc.stderr))
    assert broken == [(1, b""), (1, b"")]
    assert missing == [(0, b""), (0, b"")]


def test_a_reader_that_goes_away_does_not_stop_the_shutdown(svc: Shipyard, out: Path) -> None:
    """``svc shutdown | head -1`` breaks the pipe while instances are still to be stopped.
    Here it is broken from the first line on (the reader is gone before the command
    starts): every instance is still stopped, and the command ends as a broken pipe does
    (exit 1, nothing on stderr)."""
    package = install_example(svc, "svc-exec", out)
    for name in GOOD:
        svc.run("svc", "register", name, "--package", package, "--", "--interval=1")
    for args in (["svc", "shutdown"], ["--home", str(svc.home), "svc", "shutdown"]):
        svc.run("svc", "boot")
        assert all(state_of(svc, name) == "running" for name in GOOD)
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run([*SHIPYARD, *args], stdout=write, stderr=subprocess.PIPE,
                                  env=svc.env, timeout=60)
        finally:
            os.close(write)
        assert (proc.returncode, proc.stderr) == (1, b""), proc.stderr
        assert [state_of(svc, name) for name in GOOD] == ["stopped"] * len(GOOD)


STOP_SCRIPT = """
    #!/bin/sh
    echo stopped > "${1#--runtime-dir=}/data/stop-script-ran"
"""


def test_shutdown_runs_stop_scripts_whether_the_record_names_them_or_not(
        svc: Shipyard, src: Path, out: Path) -> None:
    package = install(svc, write_package(
        src, "polite", 'exec = ["bin/run"]\nstop = "script.d/stop"',
        {"bin/run": "#!/bin/sh\nexec sleep 1000\n", "script.d/stop": STOP_SCRIPT}), out)
    names = ["1.polite.test.local", "2.polite.test.local"]
    for name in names:
        svc.run("svc", "register", name, "--package", package)
        svc.run("svc", "start", name)
        assert json.loads(state_file(svc, name).read_text())["stop"] == "script.d/stop"
    # A record written before records named the stop script: the manifest says it.
    path = state_file(svc, names[1])
    record = json.loads(path.read_text())
    del record["stop"]
    path.write_text(json.dumps(record))

    result = svc.run("svc", "shutdown")
    assert "shutdown: 2 instance(s) stopped" in result.stdout
    for name in names:
        marker = runtime_dir(svc, name) / "data" / "stop-script-ran"
        assert marker.read_text() == "stopped\n"
        assert state_of(svc, name) == "stopped"
