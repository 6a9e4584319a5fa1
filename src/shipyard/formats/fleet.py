"""The fleet's wire models (DESIGN.md "Fleet (many hosts)"), used by the coordinator's
routes and by the node agent alike, so both ends agree on every field and its bounds.

The protocol (docs/fleet.md):

* ``POST /api/fleet/join``: :class:`JoinRequest` with a one-time join token ->
  :class:`JoinAnswer` carrying the node's credential (shown once, stored hashed);
* ``GET /api/fleet/nodes/{name}/desired?index=N&wait=S``: long poll -> :class:`DesiredDocument`;
* ``POST /api/fleet/nodes/{name}/report``: :class:`NodeReport`;
* ``POST /api/fleet/nodes/{name}/heartbeat``: :class:`Heartbeat` -> :class:`HeartbeatAnswer`;
* ``POST /api/fleet/nodes/{name}/announcements``: :class:`AnnouncementPublish`;
* operator routes: :class:`AssignRequest`, :class:`UnassignRequest`, :class:`LinkPairRequest`
  -> :class:`ChangeAnswer`; views :class:`NodeView`, :class:`StatusRow`, :class:`LinkPairView`.

Link passwords never appear in clear: an announcer seals its password for each acceptor
node's X25519 key (``shipyard.formats.sealing``) and only that ciphertext, as an opaque
ASCII string, travels through the coordinator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# A node name is used in URLs, file names and log lines: a DNS-label-like word.
NODE_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
LABEL_KEY_PATTERN = r"^[a-z0-9][a-z0-9._/-]{0,62}$"
SERVICE_PATTERN = r"^[^./\s]+\.[^./\s]+\.[^./\s]+\.[^./\s]+$"  # checked fully by ServiceCoord
INTERFACE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
# Raw 32-byte public keys (Ed25519, X25519) as URL-safe base64 (formats.sealing's text form).
PUBLIC_KEY_PATTERN = r"^[A-Za-z0-9_-]{43}=$"

NodeName = Annotated[str, StringConstraints(pattern=NODE_NAME_PATTERN)]
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=200)]
ServiceName = Annotated[str, StringConstraints(pattern=SERVICE_PATTERN, max_length=400)]
PackageName = Annotated[str, StringConstraints(min_length=3, max_length=400)]
Interface = Annotated[str, StringConstraints(pattern=INTERFACE_PATTERN)]
Host = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Port = Annotated[int, Field(ge=1, le=65535)]
PublicKey = Annotated[str, StringConstraints(pattern=PUBLIC_KEY_PATTERN)]
# A sealed secret (see shipyard.formats.sealing): opaque ASCII, bounded.
Sealed = Annotated[str, StringConstraints(min_length=1, max_length=4096,
                                          pattern=r"^[A-Za-z0-9_.:=-]+$")]
Param = Annotated[str, StringConstraints(max_length=4096)]

LeaseState = Literal["alive", "lost", "revoked"]
InstanceState = Literal["running", "stopped", "starting", "failed", "absent", "unknown"]
PairState = Literal["linked", "pending", "failed", "disabled", "removed"]


class Wire(BaseModel):
    """Every wire model refuses unknown fields: a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


# -- joining --------------------------------------------------------------------------------


class JoinRequest(Wire):
    name: NodeName
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    address: Host = Field(description="the address other nodes reach this node at")
    agent_version: str = Field(default="", max_length=100)
    signing_key: PublicKey = Field(description="Ed25519 public key (raw, base64url)")
    sealing_key: PublicKey = Field(description="X25519 public key (raw, base64url)")


class JoinAnswer(Wire):
    name: NodeName
    credential: str = Field(description="the node's own credential; shown only here")
    revision: int = Field(ge=0, description="the fleet's revision at the time of joining")
    lease_seconds: float = Field(gt=0)
    heartbeat_seconds: float = Field(gt=0)


# -- the desired document -------------------------------------------------------------------


class Announcement(Wire):
    """An announcer's link data, addressed to one accepting instance on this node."""

    announcer: ServiceName
    announcer_node: NodeName
    interface: Interface
    host: Host
    port: Port
    password_sealed: Sealed | None = Field(
        default=None, description="the link password sealed for THIS node's X25519 key")


class AcceptorAddress(Wire):
    """Where an announcing instance on this node must connect: an accepting instance of
    its interface, at its node's advertised address and the port it accepts on."""

    acceptor: ServiceName
    acceptor_node: NodeName
    interface: Interface
    host: Host
    port: Port | None = None
    node_key: PublicKey = Field(description="the acceptor node's X25519 key: seal for it")


class DesiredInstance(Wire):
    service: ServiceName
    package: PackageName = Field(description="group:id:version")
    params: list[Param] = Field(default_factory=list, max_length=256)
    boot: bool = True
    announcements: list[Announcement] = Field(default_factory=list)
    acceptors: list[AcceptorAddress] = Field(default_factory=list)


class DesiredDocument(Wire):
    """What one node should run, as of ``revision`` (the fleet's global revision)."""

    node: NodeName
    revision: int = Field(ge=0)
    instances: list[DesiredInstance] = Field(default_factory=list)


# -- what a node reports -------------------------------------------------------------------


class InstanceReport(Wire):
    service: ServiceName
    package: str = Field(default="", max_length=400)
    state: InstanceState
    since: datetime | None = None
    last_error: str = Field(default="", max_length=2000)


class PairReport(Wire):
    announcer: ServiceName
    acceptor: ServiceName
    interface: Interface
    state: PairState
    last_error: str = Field(default="", max_length=2000)


class NodeReport(Wire):
    revision_applied: int = Field(ge=0)
    agent_version: str = Field(default="", max_length=100)
    packages: list[PackageName] = Field(default_factory=list, max_length=10_000)
    instances: list[InstanceReport] = Field(default_factory=list, max_length=10_000)
    links: list[PairReport] = Field(default_factory=list, max_length=10_000)
    last_error: str = Field(default="", max_length=2000)


class Heartbeat(Wire):
    revision_applied: int = Field(ge=0)


class HeartbeatAnswer(Wire):
    revision: int = Field(ge=0, description="the fleet's current revision")
    lease_expires_at: datetime


class AnnouncementItem(Wire):
    interface: Interface
    instance: ServiceName
    host: Host
    port: Port
    # acceptor node name -> the password sealed for that node's X25519 key
    sealed: dict[NodeName, Sealed] = Field(default_factory=dict, max_length=10_000)


class AnnouncementPublish(Wire):
    """Every announcement of one node at once (a replacement, so a withdrawn one goes)."""

    announcements: list[AnnouncementItem] = Field(default_factory=list, max_length=1000)


# -- the operator's side --------------------------------------------------------------------


class AssignRequest(Wire):
    service: ServiceName
    package: PackageName
    nodes: list[str] = Field(min_length=1, max_length=1000,
                             description="node names, or label=value selectors")
    boot: bool = True
    params: list[Param] = Field(default_factory=list, max_length=256)


class UnassignRequest(Wire):
    service: ServiceName
    nodes: list[str] = Field(default_factory=list, max_length=1000,
                             description="empty: every node it is assigned to")


class LinkPairRequest(Wire):
    announcer: ServiceName
    acceptor: ServiceName


class ChangeAnswer(Wire):
    revision: int = Field(ge=0)
    changed: list[str] = Field(default_factory=list, description="what changed, one per item")


class NodeView(Wire):
    name: NodeName
    labels: dict[str, str]
    address: str
    agent_version: str
    joined_at: datetime
    last_seen: datetime | None
    lease_expires_at: datetime | None
    lease_state: LeaseState
    revision_applied: int
    seen_from: str = Field(default="", description="the address its last call came from")


class StatusRow(Wire):
    node: NodeName
    instance: str
    package: str
    desired: Literal["running", "absent"]
    actual: str
    since: datetime | None
    last_error: str


class FleetStatus(Wire):
    revision: int
    rows: list[StatusRow]


class LinkPairView(Wire):
    announcer: str
    announcer_node: str
    acceptor: str
    acceptor_node: str
    interface: str
    state: str
    disabled: bool
    last_error: str
