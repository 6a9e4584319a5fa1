"""The manifest as data: what ``shipyard.toml`` says once it has been checked.

Frozen dataclasses, so a parsed manifest can be shared and hashed, and nothing downstream
(packing, the farm, install, links) ever sees a key the parser did not check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.coords import PackageCoord, Requirement

# What the package's face (shipyard.manifest) shows of the data.
__all__ = [
    "MANIFEST_NAME", "ON_CHANGE", "PARAM_TYPES", "PASSWORD_VIA", "BuildSpec", "LinkAccept",
    "LinkAnnounce", "Manifest", "ParamSpec", "ServiceSpec", "check_param_value",
]

MANIFEST_NAME = "shipyard.toml"


@dataclass(frozen=True)
class LinkAnnounce:
    interface: str
    adapter: str
    port: int | None = None
    hostname_prefix: str | None = None
    password: str | None = None  # "random" or None
    port_param: str | None = None  # generate.port = "{param.NAME}": the instance's value


PASSWORD_VIA = ("env", "argv")
ON_CHANGE = ("none", "reload", "restart")


@dataclass(frozen=True)
class LinkAccept:
    interface: str
    adapter: str
    # How the accept adapter gets the password: SHIPYARD_LINK_PASSWORD in its environment
    # (the default: a command line is readable by every local user in /proc/PID/cmdline),
    # or --password= on its command line for adapters that cannot read the environment.
    password_via: str = "env"
    # What Shipyard does to the running acceptor after an adapter run changed something.
    on_change: str = "none"
    # The port it accepts this interface on, so that announcers on other hosts connect
    # there (the fleet writes it into their link file): a number, or port_param for
    # port = "{param.NAME}" (the instance's value). None: announcers use their own port.
    port: int | None = None
    port_param: str | None = None


PARAM_TYPES = ("string", "int", "port")


@dataclass(frozen=True)
class ParamSpec:
    """One ``[service.params]`` entry: a typed instance parameter, maybe with a default."""

    name: str
    type: str = "string"          # one of PARAM_TYPES
    default: str | None = None    # as text, the way it reaches --name=value


@dataclass(frozen=True)
class ServiceSpec:
    start: str | None = None
    stop: str | None = None
    exec: tuple[str, ...] | None = None
    user: str | None = None
    reload: str | None = None     # "signal:NAME" or a script path in the package
    params: tuple[ParamSpec, ...] = ()


@dataclass(frozen=True)
class BuildSpec:
    command: str
    env: dict[str, str] = field(default_factory=dict)
    timeout: int | None = None
    network: bool = False  # a farm worker's sandbox gives the build the network


@dataclass(frozen=True)
class Manifest:
    coord: PackageCoord
    summary: str = ""
    description: str = ""
    maintainer: str = ""
    license: str = ""
    homepage: str = ""
    requires: tuple[Requirement, ...] = ()
    build: BuildSpec | None = None
    service: ServiceSpec | None = None
    announces: tuple[LinkAnnounce, ...] = ()
    accepts: tuple[LinkAccept, ...] = ()
    source: str = MANIFEST_NAME
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def group(self) -> str:
        return self.coord.group

    @property
    def id(self) -> str:
        return self.coord.id

    @property
    def version(self) -> str:
        assert self.coord.version is not None
        return self.coord.version


def check_param_value(spec: ParamSpec, value: str) -> str | None:
    """Why ``value`` is not a valid ``spec.type``, or None when it is."""
    if spec.type == "string":
        return None
    text = value.strip()
    if not (text.isdigit() or (text.startswith("-") and text[1:].isdigit())):
        return f"expected an integer{' (a port)' if spec.type == 'port' else ''}, got {value!r}"
    if spec.type == "port" and not 1 <= int(text) <= 65535:
        return f"expected a port from 1 to 65535, got {value}"
    return None
