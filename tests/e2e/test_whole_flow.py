"""The whole flow an operator runs, as one test, on SQLite and on PostgreSQL: a real
PyPI-style sdist (built here, no download) pushed to a bare repository with the farm's
hook, built by two real workers, published to a signed repository and installed on a node;
a forced rebuild the repository refuses (failed to publish, mailed); a broken release
(failed, mailed with the cause); the fix, installed. Every part is a real process: the
coordinator under Uvicorn, workers, git, aiosmtpd, the CLI."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import httpx

from conftest import Shipyard
from farm.farmkit import (  # noqa: F401  (fixtures)
    Farm,
    Mailbox,
    Source,
    _farm,
    _make_farm,
    _smtp,
    manifest,
    request_ids,
    wait_until,
)

NAME = "sixlike"
GROUP = "org.example"
PACKAGE = f"{GROUP}:{NAME}"
MAINTAINER = "Ada Maintainer <ada@example.org>"
# The package's recipe: unpack the sdist, build it with setuptools as pip would, and stamp
# the build (so a rebuild of one version has other bytes, as real rebuilds often do).
# It runs in the worker's sandbox, which shows the system (/usr) but not this test's venv:
# the system's python3 builds it, as on a real build host.
BUILD = (f"set -e; tar xzf {NAME}-*.tar.gz; cd {NAME}-*/; "
         "python3 setup.py -q build --build-lib \"$SHIPYARD_DESTDIR/lib\"; "
         "date +%s%N > \"$SHIPYARD_DESTDIR/lib/BUILD_STAMP\"")


def sdist(version: str, *, broken: bool = False) -> bytes:
    """``sixlike-<version>.tar.gz`` laid out as setuptools' sdist makes it."""
    close = "" if broken else ")"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n"
                    "Summary: Python 2 and 3 compatibility utilities (a small likeness)\n"
                    "Author: Ada Maintainer\nAuthor-email: ada@example.org\n"
                    "License: MIT\nRequires-Python: >=3.8\n",
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
                          'build-backend = "setuptools.build_meta"\n',
        "setup.py": textwrap.dedent(f"""\
            from setuptools import setup
            setup(name="{NAME}", version="{version}", py_modules=["{NAME}"]{close}
            """),
        "setup.cfg": "[egg_info]\ntag_build =\ntag_date = 0\n",
        f"{NAME}.py": f'"""Utilities."""\n__version__ = "{version}"\n\n'
                      "def ensure_str(value):\n"
                      "    return value.decode() if isinstance(value, bytes) else str(value)\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for relpath, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{NAME}-{version}/{relpath}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def release(source: Source, version: str, *, broken: bool = False) -> tuple[str, int]:
    """Replace the sdist with ``version``'s, push; returns (commit, the requested build)."""
    for old in (source.work / NAME).glob("*.tar.gz") if (source.work / NAME).is_dir() else ():
        old.unlink()
    (source.work / NAME).mkdir(exist_ok=True)
    (source.work / NAME / f"{NAME}-{version}.tar.gz").write_bytes(sdist(version,
                                                                       broken=broken))
    source.package(NAME, GROUP, NAME, version, BUILD, maintainer=MAINTAINER)
    commit, output = source.push(f"{NAME} {version}")
    (build_id,) = request_ids(output)
    return commit, build_id


def installed_version(node: Shipyard, version: str) -> str:
    lib = node.home / "software" / "org" / "example" / NAME / version / "lib"
    result = subprocess.run([sys.executable, "-I", "-c",
                             f"import sys; sys.path.insert(0, {str(lib)!r}); import {NAME}; "
                             f"print({NAME}.__version__, {NAME}.ensure_str(b'ok'))"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def mail_about(box: Mailbox, build_id: int) -> str:
    found = wait_until(lambda: next((m for m in box.messages
                                     if f"build {build_id} " in m["Subject"]), None),
                       60, what=f"the mail about build {build_id}")
    assert found["X-Envelope-To"] == "ada@example.org"
    return f"{found['Subject']}\n{found.get_payload(decode=True).decode()}"


def test_push_build_publish_install_break_mail_fix(
        farm: Farm, shipyard: Shipyard, smtp: tuple[Mailbox, int], tmp_path: Path) -> None:
    box, port = smtp
    farm.extra_env.update(SHIPYARD_SMTP_HOST="127.0.0.1", SHIPYARD_SMTP_PORT=str(port),
                          SHIPYARD_SMTP_SENDER="farm@example.org")
    farm.cli("repo", "keygen")
    repo = tmp_path / "repository"
    farm.cli("repo", "init", str(repo))
    coordinator = farm.start_coordinator(repo=repo)
    url = coordinator.url
    farm.start_worker("w1", url)
    farm.start_worker("w2", url)
    source = Source.create(farm, url)

    node_home = tmp_path / "node"
    node_home.mkdir()
    node = Shipyard(node_home, {**shipyard.env, "SHIPYARD_HOME": str(node_home),
                                "SHIPYARD_REPO_URL": repo.as_uri(),
                                "SHIPYARD_REPO_KEY": str(shipyard.home / "state" / "keys" /
                                                         "repository.key.pub")})

    def published(build_id: int) -> None:
        wait_until(lambda: farm.build(url, build_id)["publish_state"] == "published", 60,
                   what=f"build {build_id} to be published")

    # 1. Push the release: built by a worker, published, installable on the node.
    commit, first = release(source, "1.16.0")
    build = farm.wait_state(url, first, "succeeded", "failed")
    assert build["state"] == "succeeded", farm.log(url, first)
    assert build["commit"] == commit and build["worker"] in ("w1", "w2")
    published(first)
    node.run("pkg", "install", PACKAGE)
    assert installed_version(node, "1.16.0") == "1.16.0 ok"

    # 2. A forced rebuild of the published version has other bytes: the repository keeps
    #    the published ones, and the build is visibly failed to publish, and mailed.
    rebuilt = int(subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "farm", "build", "request", PACKAGE,
         "--force", "--coordinator", url],
        env={**farm.env, "SHIPYARD_FARM_TOKEN": farm.token("admin")}, capture_output=True,
        text=True, timeout=120, check=True).stdout.split()[1])
    wait_until(lambda: farm.build(url, rebuilt)["status"] == "publish-failed", 90,
               what="the rebuild to fail to publish")
    view = farm.build(url, rebuilt)
    assert view["state"] == "succeeded" and "with other content" in view["publish_error"]
    shown = farm.cli("farm", "build", "show", str(rebuilt), "--coordinator", url, check=False)
    assert shown.returncode == 1 and "publish-failed" in shown.stdout
    mail = mail_about(box, rebuilt)
    assert "could not be published" in mail and "with other content" in mail
    for page in ("/repository", f"/builds/{rebuilt}", "/", "/builds?state=publish-failed"):
        answer = httpx.get(f"{url}{page}", timeout=30)
        assert answer.status_code == 200, f"{page}: {answer.status_code}"
        assert f'href="/builds/{rebuilt}"' in answer.text or page == f"/builds/{rebuilt}"
    assert "failed to publish" in httpx.get(f"{url}/builds/{rebuilt}", timeout=30).text
    node.run("pkg", "install", PACKAGE)  # still the published bytes
    assert installed_version(node, "1.16.0") == "1.16.0 ok"

    # 3. A broken release fails; its maintainer learns the cause by mail.
    _commit, broken = release(source, "1.16.1", broken=True)
    build = farm.wait_state(url, broken, "succeeded", "failed")
    assert build["state"] == "failed"
    assert build["reason"].startswith("build command exited with code 1: SyntaxError"), \
        build["reason"]
    mail = mail_about(box, broken)
    assert "could not build org.example:sixlike 1.16.1" in mail
    assert "SyntaxError" in mail and f"/builds/{broken}" in mail

    # 4. The fix builds, is published, and the node installs it.
    _commit, fixed = release(source, "1.16.2")
    assert farm.wait_state(url, fixed, "succeeded", "failed")["state"] == "succeeded"
    published(fixed)
    node.run("pkg", "install", PACKAGE)
    assert installed_version(node, "1.16.2") == "1.16.2 ok"
    failures = {b["id"] for b in farm.builds(url, state="failed")}
    assert failures == {broken}
    assert {b["id"] for b in farm.builds(url, state="publish-failed")} == {rebuilt}
    assert len(box.messages) == 2
