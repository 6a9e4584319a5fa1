"""Helpers of the whole-flow tests: homes service users can reach, a signed file://
repository filled through the real CLI, process checks."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Shipyard, make_env
from helpers import (  # noqa: F401  (re-exported)
    kill_all,
    processes_under,
    public_tmpdir,
    wait_until,
)


@pytest.fixture(name="public_dir")
def fixture_public_dir() -> Iterator[Path]:
    """A 0755 directory under /tmp: pytest's 0700 tmp_path keeps service users out."""
    with public_tmpdir("shipyard-e2e-") as base:
        yield base


def write_package(root: Path, ident: str, version: str, service: str,
                  files: dict[str, str], group: str = "org.test.e2e") -> Path:
    """A package source directory with executable ``files``."""
    directory = root / f"{ident}-{version}"
    directory.mkdir(parents=True)
    (directory / "shipyard.toml").write_text(
        f'[package]\ngroup = "{group}"\nid = "{ident}"\nversion = "{version}"\n'
        f'summary = "upgrade test package"\n\n[service]\n{textwrap.dedent(service).strip()}\n')
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        path.chmod(0o755)
    return directory


class Repository:
    """A signed repository on disk. Built with the library, not the CLI: it is the
    fixture of these tests, not their subject, and eleven interpreter starts cost more
    than the tests themselves."""

    def __init__(self, base: Path) -> None:
        from shipyard.repo.keys import keygen
        from shipyard.repo.layout import init_repository

        self.dir = base / "repository"
        key = keygen(base / "keys" / "repository.key")
        self.public_key = key.public_path
        init_repository(self.dir, signing_key=key.private_path)

    def publish(self, *sources: Path, out: Path) -> None:
        from shipyard.pkg.pack import pack_directory
        from shipyard.repo.publish import publish
        from shipyard.repo.upload import upload

        for source in sources:
            upload(None, self.dir, pack_directory(source, out))
        publish(None, self.dir)

    def node_env(self) -> dict[str, str]:
        return {"SHIPYARD_REPO_URL": self.dir.as_uri(),
                "SHIPYARD_REPO_KEY": str(self.public_key)}


def node(base: Path, repository: Repository, **extra: str) -> Shipyard:
    home = base / "node"
    home.mkdir()
    env = make_env(home)
    env.update(repository.node_env())
    env.update(extra)
    return Shipyard(home, env)


def one_line_error(result: Any, code: int = 1) -> str:
    assert result.returncode == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shipyard: error: "), result.stderr
    return lines[0]
