"""Fixtures every test may use: an isolated Shipyard home, the real CLI in a subprocess,
and a PostgreSQL database of its own per test run."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kit.cli import SHIPYARD, Result, run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PG_ADMIN_URL = os.environ.get("SHIPYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Shipyard:
    """The real ``shipyard`` command, run in a subprocess against an isolated home."""

    home: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            input: str | None = None, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> Result:
        return run({**self.env, **(env or {})}, *args, check=check, timeout=timeout,
                   input=input, cwd=cwd)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([*SHIPYARD, *args], env=self.env, **kwargs)


def make_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def shipyard(tmp_path: Path) -> Shipyard:
    home = tmp_path / "home"
    home.mkdir()
    return Shipyard(home, make_env(home))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The PostgreSQL server; skipped with a reason where there is none, failed under CI."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI and not reachable: {exc}")
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL}: {exc}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


def copy_example(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(EXAMPLES / name, target)
    return target


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium per test process for every module that asks (tests/web/webkit.py)."""
    from webkit import launch_browser

    yield from launch_browser()
