"""Helpers of the whole-flow tests: homes service users can reach, a signed file://
repository filled through the real CLI, process checks."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Shipyard, make_env
from kit.cli import one_line_error  # noqa: F401  (re-exported)
from kit.dirs import public_tmpdir
from kit.manifest import tables as manifest_tables
from kit.manifest import write_manifest, write_scripts
from kit.procs import kill_all, processes_under  # noqa: F401  (re-exported)
from kit.repository import Repository
from kit.wait import wait_until  # noqa: F401  (re-exported)


@pytest.fixture(name="public_dir")
def fixture_public_dir() -> Iterator[Path]:
    """A 0755 directory under /tmp: pytest's 0700 tmp_path keeps service users out."""
    with public_tmpdir("shipyard-e2e-") as base:
        yield base


def write_package(root: Path, ident: str, version: str, service: str,
                  files: dict[str, str], group: str = "org.test.e2e") -> Path:
    """A package source directory with executable ``files``."""
    directory = root / f"{ident}-{version}"
    write_manifest(directory, group, ident, version, summary="upgrade test package",
                   tables=manifest_tables(f"[service]\n{textwrap.dedent(service).strip()}"))
    write_scripts(directory, files)
    return directory


def node(base: Path, repository: Repository, **extra: str) -> Shipyard:
    home = base / "node"
    home.mkdir()
    env = make_env(home)
    env.update(repository.node_env())
    env.update(extra)
    return Shipyard(home, env)
