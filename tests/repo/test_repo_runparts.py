"""run-parts in Python against debianutils' /usr/bin/run-parts on the same directories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shipyard.repo.runparts import RunPartsError, run_parts, select_parts

RUN_PARTS = "/usr/bin/run-parts"


def _part(directory: Path, name: str, body: str = "", mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho {name!r} \"$@\" >> \"$LOG\"\n{body}")
    path.chmod(mode)
    return path


@pytest.fixture
def hookdir(tmp_path: Path) -> Path:
    d = tmp_path / "hooks.d"
    d.mkdir()
    for name in ("50-b", "10-a", "B", "a", "_under", "-dash", "9", "10", "Zz_9-x"):
        _part(d, name)
    _part(d, "foo.sh")  # dot: skipped
    _part(d, ".hidden")  # dot: skipped
    _part(d, "backup~")  # tilde: skipped
    _part(d, "notexec", mode=0o644)  # not executable: skipped
    _part(d, "ünicode")  # not in [A-Za-z0-9_-]: skipped
    (d / "subdir").mkdir()  # a directory: skipped
    os.symlink(d / "10-a", d / "link")  # a symlink to an executable: run
    return d


def test_selection_and_order_match_debianutils(hookdir: Path) -> None:
    ours = [p.name for p in select_parts(hookdir)]
    theirs = subprocess.run([RUN_PARTS, "--test", str(hookdir)], capture_output=True,
                            text=True, check=True, env={"LC_ALL": "C.UTF-8"}).stdout.split()
    assert ours == [Path(p).name for p in theirs]
    assert ours == ["-dash", "10", "10-a", "50-b", "9", "B", "Zz_9-x", "_under", "a", "link"]


def test_runs_with_arguments_like_debianutils(hookdir: Path, tmp_path: Path) -> None:
    ours_log, theirs_log = tmp_path / "ours.log", tmp_path / "theirs.log"
    env = {"PATH": "/usr/bin:/bin", "LOG": str(ours_log)}
    ran = run_parts(hookdir, ["0"], env, stdout=None)
    assert len(ran) == 10
    subprocess.run([RUN_PARTS, "--exit-on-error", "--arg", "0", str(hookdir)], check=True,
                   env={**env, "LOG": str(theirs_log)})
    assert ours_log.read_text() == theirs_log.read_text()
    assert ours_log.read_text().splitlines()[0] == "-dash 0"


def test_dangling_symlink_fails_in_place_like_debianutils(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    _part(d, "a")
    os.symlink(d / "missing", d / "m")
    _part(d, "z")
    log = tmp_path / "log"
    assert [p.name for p in select_parts(d)] == ["a", "z"]  # as `run-parts --test`
    with pytest.raises(RunPartsError) as caught:
        run_parts(d, [], {"LOG": str(log), "PATH": "/usr/bin:/bin"})
    assert caught.value.message == f"failed to stat component {d / 'm'}: No such file or directory"
    assert log.read_text().splitlines() == ["a"]
    theirs = subprocess.run([RUN_PARTS, "--exit-on-error", str(d)], capture_output=True,
                            text=True, env={"LOG": str(tmp_path / "log2"),
                                            "PATH": "/usr/bin:/bin"})
    assert theirs.returncode == 1 and caught.value.message in theirs.stderr
    assert (tmp_path / "log2").read_text() == log.read_text()


def test_stops_at_first_failure_with_its_return_code(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    log = tmp_path / "log"
    _part(d, "10-ok")
    bad = _part(d, "20-bad", "exit 7\n")
    _part(d, "30-never")
    with pytest.raises(RunPartsError) as caught:
        run_parts(d, ["1"], {"LOG": str(log), "PATH": "/usr/bin:/bin"})
    assert caught.value.message == f"{bad} exited with return code 7"
    assert caught.value.returncode == 7
    assert log.read_text().splitlines() == ["10-ok 1", "20-bad 1"]
    theirs = subprocess.run([RUN_PARTS, "--exit-on-error", "--arg", "1", str(d)],
                            capture_output=True, text=True,
                            env={"LOG": str(tmp_path / "log2"), "PATH": "/usr/bin:/bin"})
    assert theirs.returncode != 0
    assert f"{bad} exited with return code 7" in theirs.stderr


def test_no_shell_and_umask(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    out = tmp_path / "umask"
    script = d / "10-umask"
    script.write_text(f"#!/bin/sh\numask > {out}\n")
    script.chmod(0o755)
    old = os.umask(0o077)
    try:
        run_parts(d, [], {"PATH": "/usr/bin:/bin"})
    finally:
        os.umask(old)
    assert out.read_text().strip() == "0022"
    # Without a #! line a shell would run it; execv refuses, and so does run-parts.
    noshebang = d / "20-plain"
    noshebang.write_text(f"touch {tmp_path / 'ran'}\n")
    noshebang.chmod(0o755)
    with pytest.raises(RunPartsError) as caught:
        run_parts(d, [], {"PATH": "/usr/bin:/bin"})
    assert caught.value.message.startswith(f"failed to exec {noshebang}: ")
    assert not (tmp_path / "ran").exists()


def test_missing_directory_runs_nothing(tmp_path: Path) -> None:
    assert run_parts(tmp_path / "absent", ["0"]) == []
