"""A signed package repository on disk, filled and published with the library (it is the
fixture of the tests that use it, not their subject), and served over HTTP by
``python -m http.server`` where nodes fetch it by URL."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from kit.net import free_port, http_ok
from kit.procs import Procs


class Repository:
    def __init__(self, base: Path) -> None:
        from shipyard.repo.keys import keygen
        from shipyard.repo.layout import init_repository

        self.dir = base / "repository"
        key = keygen(base / "keys" / "repository.key")
        self.public_key = key.public_path
        init_repository(self.dir, signing_key=key.private_path)

    def publish(self, *sources: Path, out: Path) -> None:
        """Pack each source directory, upload it, and publish a generation of them all."""
        from shipyard.pkg.pack import pack_directory
        from shipyard.repo.publish import publish
        from shipyard.repo.upload import upload

        for source in sources:
            upload(None, self.dir, pack_directory(source, out))
        publish(None, self.dir)

    def node_env(self) -> dict[str, str]:
        return {"SHIPYARD_REPO_URL": self.dir.as_uri(),
                "SHIPYARD_REPO_KEY": str(self.public_key)}

    def serve(self, procs: Procs, address: str = "127.0.0.1") -> str:
        """Serve the repository among ``procs`` (which stop it); its URL."""
        return serve_directory(procs, self.dir, address)


def serve_directory(procs: Procs, directory: Path, address: str = "127.0.0.1") -> str:
    """Serve a repository directory on a free port of ``address`` among ``procs`` (which
    stop it); its URL, once the current release answers."""
    port = free_port(address)
    proc = procs.spawn("http", [sys.executable, "-m", "http.server", str(port), "--bind",
                                address, "--directory", str(directory)], dict(os.environ))
    url = f"http://{address}:{port}/"
    proc.wait_for(lambda: http_ok(url + "current/release.json"), 30,
                  "the repository's web server")
    return url


@contextlib.contextmanager
def served(directory: Path, logs: Path) -> Iterator[str]:
    """:func:`serve_directory` for the length of a ``with`` block (its log in ``logs``)."""
    procs = Procs(logs)
    try:
        yield serve_directory(procs, directory)
    finally:
        procs.close()
