"""The push hook installed by root on a repository another user owns (the usual ``git``
user of a git server): a real system user pushes with ``runuser``, and the hook, running as
that user, can read its config and keep requests in its spool. When it can neither send
nor keep a request, the push says so in one line.

The hook runs the Python that installed it; these tests install it with an interpreter the
pushing user can run (Debian's python3 reading this checkout and the test environment's
packages), since the test runner's own may live under root's 0700 home."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from farmkit import Farm, _make_farm, _sqlite_farm, manifest, wait_until  # noqa: F401

from conftest import ROOT
from helpers import public_tmpdir

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _reachable_by_others(path: Path) -> bool:
    """Every directory on the way is searchable and the file readable by other users."""
    real = path.resolve()
    for parent in real.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(real.stat().st_mode & stat.S_IROTH)


@pytest.fixture(scope="module")
def public() -> Iterator[Path]:
    with public_tmpdir("shipyard-hook-owner-") as base:
        yield base


@pytest.fixture(scope="module")
def python(public: Path) -> str:
    """An interpreter another user can run, with this checkout and its dependencies."""
    if _reachable_by_others(Path(sys.executable)) and _reachable_by_others(ROOT / "src"):
        return sys.executable
    if os.geteuid() != 0:
        pytest.fail("these tests make a system user: run them as root (CI does)")
    purelib = Path(sysconfig.get_paths()["purelib"])
    version = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == str(tuple(sys.version_info[:2])), (
        f"{SYSTEM_PYTHON} is {version}, the tests run {sys.version_info[:2]}")
    assert _reachable_by_others(purelib / "httpx" / "__init__.py"), purelib
    venv = public / "python"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "000-shipyard-tests.pth").write_text(
        f"{ROOT / 'src'}\nimport site; site.addsitedir({str(purelib)!r})\n")
    return str(venv / "bin" / "python")


@pytest.fixture(scope="module")
def git_user(public: Path) -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.fail("these tests make a system user: run them as root (CI does)")
    name = f"shipgit{uuid.uuid4().hex[:6]}"
    home = public / name
    subprocess.run(["/usr/sbin/useradd", "--system", "--create-home", "--home-dir", str(home),
                    "--shell", "/bin/sh", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["/usr/sbin/userdel", name], capture_output=True)


def as_user(user: pwd.struct_passwd, *argv: str, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir, "LC_ALL": "C.UTF-8",
           "GIT_AUTHOR_NAME": "Git User", "GIT_AUTHOR_EMAIL": "git@example.org",
           "GIT_COMMITTER_NAME": "Git User", "GIT_COMMITTER_EMAIL": "git@example.org"}
    return subprocess.run(["/usr/sbin/runuser", "-u", user.pw_name, "--", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _push(user: pwd.struct_passwd, work: Path, version: str) -> str:
    (work / "p" / "shipyard.toml").write_text(manifest("org.example", "p", version,
                                                       "echo built"))
    for step in (["git", "add", "-A"], ["git", "commit", "-q", "-m", f"p {version}"]):
        assert as_user(user, *step, cwd=work).returncode == 0
    pushed = as_user(user, "git", "push", "-q", "origin", "HEAD:refs/heads/master", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    return pushed.stderr


def _hook_lines(stderr: str) -> list[str]:
    return [line.removeprefix("remote: ").strip() for line in stderr.splitlines()
            if "shipyard farm" in line]


def test_root_installs_the_hook_for_the_repository_owner(
        sqlite_farm: Farm, public: Path, python: str, git_user: pwd.struct_passwd) -> None:
    farm = sqlite_farm
    coordinator = farm.start_coordinator()
    url = coordinator.url
    bare, work = Path(git_user.pw_dir) / "r.git", Path(git_user.pw_dir) / "work"
    assert as_user(git_user, "git", "init", "-q", "--bare", str(bare)).returncode == 0
    # What an earlier, root-owned install left behind is handed over too.
    (bare / "shipyard-spool").mkdir()
    (bare / "shipyard-spool" / ".lock").touch()
    installed = subprocess.run(
        [python, "-m", "shipyard.cli.main", "farm", "hook", "install", str(bare),
         "--coordinator", url, "--token-file", farm.token_file("hook")],
        env=farm.env, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr

    config, spool = bare / "shipyard-hook.json", bare / "shipyard-spool"
    for path in (config, spool, spool / ".lock", bare / "hooks" / "post-receive"):
        assert (path.stat().st_uid, path.stat().st_gid) == (git_user.pw_uid, git_user.pw_gid)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    assert as_user(git_user, "git", "clone", "-q", str(bare), str(work)).returncode == 0
    (work / "p").mkdir()
    lines = _hook_lines(_push(git_user, work, "1.0"))
    assert len(lines) == 1 and "queued: org.example:p 1.0" in lines[0], lines
    assert [b["version"] for b in farm.builds(url)] == ["1.0"]

    # An install that the pushing user cannot read (as the old one was: root-owned 0600)
    # loses nothing silently: the push says, in one line, what is wrong and what fixes it.
    os.chown(config, 0, 0)
    lines = _hook_lines(_push(git_user, work, "1.1"))
    assert len(lines) == 1, lines
    assert "no build was requested for this push" in lines[0]
    assert f"{config} is not readable by {git_user.pw_name} (owned by root, mode 0600)" \
        in lines[0]
    os.chown(config, git_user.pw_uid, git_user.pw_gid)

    # A spool the user cannot write: the requests go out directly, with a warning ...
    os.chown(spool, 0, 0)
    lines = _hook_lines(_push(git_user, work, "1.2"))
    assert any("queued: org.example:p 1.2" in line for line in lines), lines
    assert any(f"warning: cannot keep build requests in {spool}" in line
               for line in lines), lines
    # ... and when the coordinator is down as well, the push names what was lost.
    farm.kill(coordinator)
    lines = _hook_lines(_push(git_user, work, "1.3"))
    lost = [line for line in lines if "NOT sent and NOT kept" in line]
    assert len(lost) == 1 and "org.example:p 1.3" in lost[0], lines
    assert f"cannot keep build requests in {spool}" in lost[0]
    assert "shipyard farm build request" in lost[0]


def test_a_user_cannot_install_on_someone_elses_repository(
        sqlite_farm: Farm, public: Path, python: str, git_user: pwd.struct_passwd) -> None:
    bare = public / f"{git_user.pw_name}-other.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)  # root's
    token = public / f"{git_user.pw_name}.token"
    token.write_text("shy_x\n")
    shutil.chown(token, git_user.pw_name)
    token.chmod(0o600)
    refused = as_user(git_user, python, "-m", "shipyard.cli.main", "farm", "hook", "install",
                      str(bare), "--coordinator", "http://127.0.0.1:9", "--token-file",
                      str(token))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"shipyard: error: {bare} belongs to root: run 'shipyard farm hook install' as root, "
        "so the hook (which runs as the pushing user) can read its config and keep requests "
        "in its spool")
    assert not (bare / "shipyard-hook.json").exists()
