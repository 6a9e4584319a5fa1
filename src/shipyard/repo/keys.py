"""Where the publisher's signing key lives, and ``repo keygen``.

The private key is kept outside the repository tree (default ``<state>/keys/repository.key``)
so no web server configuration mistake can publish it. A repository's ``repo.ini`` names the
key it signs with; ``keygen`` writes there unless told otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.formats import signing
from shipyard.repo.layout import CONFIG_NAME, RepoConfig


@dataclass(frozen=True)
class GeneratedKey:
    private_path: Path
    public_path: Path
    key_id: str


def signing_key_path(settings: Settings, repo_dir: Path | None) -> Path:
    """The key ``repo_dir`` is configured with, else the ``repo.signing_key`` setting."""
    if repo_dir is not None and (repo_dir / CONFIG_NAME).exists():
        config = RepoConfig.load(repo_dir / CONFIG_NAME)
        if config.signing_key is not None:
            return config.signing_key
    return settings.repo.signing_key


def keygen(path: str | os.PathLike[str], *, force: bool = False, comment: str = ""
           ) -> GeneratedKey:
    """Write a new Ed25519 pair: ``path`` (0600) and ``path.pub``. Refuses to replace an
    existing key unless ``force``: a lost private key means re-keying every node."""
    private = Path(path).expanduser().absolute()
    public = private.with_name(private.name + ".pub")
    if not force:
        for existing in (private, public):
            if existing.exists():
                raise ShipyardError(
                    f"{existing} already exists; refusing to replace a signing key "
                    "(nodes trust the old one): use --force to overwrite")
    if private.is_dir():
        raise ShipyardError(f"{private} is a directory")
    key = signing.generate_key()
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signing.write_keypair(private, key, comment or "shipyard repository")
    return GeneratedKey(private, public, key.public.key_id)


def load_signing_key(path: Path | None) -> signing.PrivateKey:
    """The publisher's key, or an error that tells the operator how to make one."""
    if path is None or not path.exists():
        where = path or "(repo.ini names none)"
        raise ShipyardError(
            f"no signing key at {where}: run 'shipyard repo keygen' first, "
            "or publish without signatures with --unsigned")
    return signing.load_private_key(path)
