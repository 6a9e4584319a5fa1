"""A node's identity in a fleet: its key pairs, its credential and what it joined with.

Everything lives in ``<paths.state>/node/``, private files 0600 in a 0700 directory:

* ``signing.key``: Ed25519 private key (PEM), to sign what the node says;
* ``sealing.key``: X25519 private key (``formats.sealing`` text form), to open secrets
  sealed for this node;
* ``credential``: the per-node credential the coordinator handed out at join (it keeps
  only a hash);
* ``node.json``: name, coordinator URL, advertised address, labels (written last: a node
  is joined exactly when this file exists);
* ``desired.json``: the last desired document received (last known good).

The private keys never leave the node: only the public halves go to the coordinator.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from shipyard.config import Settings
from shipyard.errors import ShipyardError, UsageError
from shipyard.formats import sealing
from shipyard.formats.fleet import DesiredDocument
from shipyard.fsutil import atomic_write


def node_dir(settings: Settings) -> Path:
    return settings.path("paths.state") / "node"


@dataclass
class Identity:
    dir: Path
    name: str
    coordinator: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)
    heartbeat_seconds: float = 10.0

    @property
    def credential(self) -> str:
        return _read_private(self.dir / "credential")

    def sealing_private(self) -> X25519PrivateKey:
        return sealing.load_private_key(_read_private(self.dir / "sealing.key"))

    def signing_private(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(
            _read_private(self.dir / "signing.key").encode("ascii"), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "coordinator": self.coordinator, "address": self.address,
                "labels": self.labels, "heartbeat_seconds": self.heartbeat_seconds}


def _read_private(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ShipyardError(f"cannot read {path}: {exc.strerror}") from None


def load_identity(settings: Settings) -> Identity:
    directory = node_dir(settings)
    path = directory / "node.json"
    if not path.is_file():
        raise UsageError("this host has not joined a fleet (shipyard node join --coordinator "
                         "URL --token T --name N)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Identity(directory, str(data["name"]), str(data["coordinator"]),
                        str(data["address"]), dict(data.get("labels") or {}),
                        float(data.get("heartbeat_seconds") or 10.0))
    except (ValueError, KeyError, TypeError) as exc:
        raise ShipyardError(f"{path}: not a node identity ({exc})") from None


def public_text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


@dataclass
class NewKeys:
    signing: Ed25519PrivateKey
    sealing: X25519PrivateKey

    @classmethod
    def generate(cls) -> NewKeys:
        return cls(Ed25519PrivateKey.generate(), sealing.generate_private_key())

    @property
    def signing_public(self) -> str:
        return public_text(self.signing.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @property
    def sealing_public(self) -> str:
        return sealing.public_key_text(self.sealing)


def save_identity(settings: Settings, keys: NewKeys, credential: str, identity: Identity) -> None:
    """Write keys and credential (0600), then ``node.json`` last."""
    directory = node_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pem = keys.signing.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    atomic_write(directory / "signing.key", pem, mode=0o600)
    atomic_write(directory / "sealing.key", sealing.private_key_text(keys.sealing) + "\n",
                 mode=0o600)
    atomic_write(directory / "credential", credential + "\n", mode=0o600)
    atomic_write(directory / "node.json",
                 json.dumps(identity.as_dict(), indent=2, sort_keys=True) + "\n", mode=0o600)


def ensure_not_joined(settings: Settings) -> None:
    if (node_dir(settings) / "node.json").is_file():
        current = load_identity(settings)
        raise UsageError(f"this host has joined already as {current.name!r} at "
                         f"{current.coordinator} (shipyard node leave first)")


def forget(settings: Settings) -> None:
    """Remove the node's identity (after leaving): node.json first, so a crash half-way
    leaves a host that is plainly not joined."""
    directory = node_dir(settings)
    for name in ("node.json", "credential", "sealing.key", "signing.key", "desired.json",
                 "managed.json"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


# -- last known good ---------------------------------------------------------------------------


def save_desired(identity: Identity, doc: DesiredDocument) -> None:
    atomic_write(identity.dir / "desired.json", doc.model_dump_json(indent=2) + "\n",
                 mode=0o600)


def load_desired(identity: Identity) -> DesiredDocument | None:
    path = identity.dir / "desired.json"
    try:
        return DesiredDocument.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def load_managed(identity: Identity) -> set[str]:
    """Instances this agent created (only those are ever stopped or unregistered by it)."""
    try:
        return set(json.loads((identity.dir / "managed.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return set()


def save_managed(identity: Identity, managed: set[str]) -> None:
    atomic_write(identity.dir / "managed.json", json.dumps(sorted(managed)) + "\n", mode=0o600)


# -- joining and leaving --------------------------------------------------------------------


def join(settings: Settings, coordinator: str, token: str, name: str,
         labels: dict[str, str], address: str) -> Identity:
    """Make this host a node: new key pairs, the join token exchanged for a credential.
    Nothing is written unless the coordinator accepted the join."""
    from pydantic import ValidationError

    from shipyard import __version__
    from shipyard.formats.fleet import JoinRequest
    from shipyard.node.client import FleetClient

    ensure_not_joined(settings)
    keys = NewKeys.generate()
    try:
        request = JoinRequest(name=name, labels=labels, address=address,
                              agent_version=__version__, signing_key=keys.signing_public,
                              sealing_key=keys.sealing_public)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ()))
        shown = {"name": "--name", "address": "--address"}.get(where.split(".")[0], "--label")
        raise UsageError(f"{shown}: {error.get('msg')} "
                         f"(got {error.get('input')!r})") from None
    with FleetClient(coordinator, token) as client:
        answer = client.join(request)
    identity = Identity(node_dir(settings), answer.name, coordinator.rstrip("/"), address,
                        labels, answer.heartbeat_seconds)
    save_identity(settings, keys, answer.credential, identity)
    return identity


def leave(settings: Settings, *, force: bool = False) -> Identity:
    """Tell the coordinator this node leaves (its credential dies there), then forget the
    identity here. Instances keep running: unassign them first to remove them."""
    from shipyard.node.client import ApiError, FleetClient

    identity = load_identity(settings)
    with FleetClient(identity.coordinator, identity.credential) as client:
        try:
            client.leave(identity.name)
        except ApiError as exc:
            if not (force and exc.status in (401, 403)):
                raise
    forget(settings)
    return identity
