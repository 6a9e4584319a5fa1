"""The one writer of package manifests (``shipyard.toml``) for the tests: plain dicts in,
TOML out through tomli-w, so no test hand-quotes TOML (a summary with a quote in it, or
a build command with a backslash, is written right without thinking about it)."""

from __future__ import annotations

import textwrap
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w


def _present(table: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in table.items() if value is not None}


def manifest_text(group: str | None, ident: str | None, version: Any = None, *,
                  tables: Mapping[str, Any] | None = None, **fields: Any) -> str:
    """A manifest: ``[package]`` with ``group``, ``id``, ``version`` and ``fields``, then
    ``tables`` (``{"build": {...}, "service": {...}, "link": {...}}``). A value of None
    is left out, so a test can write a manifest that lacks something on purpose (and a
    ``version`` of the wrong type is written as given)."""
    package = _present({"group": group, "id": ident, "version": version, **fields})
    return tomli_w.dumps({"package": package, **_present(tables or {})})


def write_manifest(directory: Path, group: str | None, ident: str | None,
                   version: Any = None, **kwargs: Any) -> Path:
    """:func:`manifest_text` written to ``directory/shipyard.toml`` (made as needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "shipyard.toml"
    path.write_text(manifest_text(group, ident, version, **kwargs))
    return path


def tables(fragment: str) -> dict[str, Any]:
    """The tables of a TOML fragment (``[service]\\nexec = [...]``), for the kits whose
    callers describe a section as text; indented text is fine."""
    return tomllib.loads(textwrap.dedent(fragment))


def amend_manifest(path: Path, *, package: Mapping[str, Any] | None = None,
                   **tables: Any) -> None:
    """Rewrite an existing manifest with ``package`` fields changed and ``tables`` set."""
    document = tomllib.loads(path.read_text())
    document["package"].update(package or {})
    document.update(tables)
    path.write_text(tomli_w.dumps(document))


def write_scripts(directory: Path, files: Mapping[str, str]) -> None:
    """Executable ``files`` (path: text, dedented) in a package source ``directory``."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        path.chmod(0o755)
