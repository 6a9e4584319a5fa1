"""``shipyard.toml``: the package's manifest and build recipe, validated strictly.

Unknown keys and wrong types are errors that name the file, the key and what was expected,
because a typo in a manifest that is silently ignored surfaces weeks later as a service that
does not start on some node.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.coords import (
    PackageCoord,
    Requirement,
    validate_group,
    validate_id,
    validate_version,
)
from shipyard.errors import CoordinateError, ManifestError

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


# ---------------------------------------------------------------------------------------
# A small schema checker: each table lists its keys, their checkers and which are required.

Check = Callable[[Any, str], Any]


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ManifestError:
        return ManifestError(f"{self.source}: {key}: {message}")


def _type_name(value: Any) -> str:
    return {
        str: "a string", int: "an integer", bool: "a boolean", float: "a float",
        list: "an array", dict: "a table",
    }.get(type(value), type(value).__name__)


def _str(ctx: _Ctx, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ctx.fail(key, f"expected a string, got {_type_name(value)}")
    return value


def _nonempty(ctx: _Ctx, key: str, value: Any) -> str:
    text = _str(ctx, key, value)
    if not text.strip():
        raise ctx.fail(key, "expected a non-empty string")
    return text


def _str_list(ctx: _Ctx, key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ctx.fail(key, f"expected an array of strings, got {_type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ctx.fail(f"{key}[{index}]", f"expected a string, got {_type_name(item)}")
    return value


def _rel_path(ctx: _Ctx, key: str, value: Any) -> str:
    text = _nonempty(ctx, key, value)
    path = PurePosixPath(text)
    if "\x00" in text or path.is_absolute() or ".." in path.parts or text.startswith("~"):
        raise ctx.fail(key, f"expected a relative path inside the package, got {text!r}")
    return text


def _exec_program(ctx: _Ctx, key: str, value: Any) -> str:
    """The program of ``service.exec``: absolute (a system program, ``/bin/sh``), a bare
    name looked up on ``PATH`` (``redis-server``), or a path inside the package
    (``bin/{platform}/server``); never one that climbs out of the package with ``..``."""
    text = _nonempty(ctx, key, value)
    if "\x00" in text or ".." in PurePosixPath(text).parts or text.startswith("~") \
            or text.strip("/") in ("", "."):
        raise ctx.fail(key, "expected an absolute program, a program name looked up on PATH, "
                            f"or a relative path inside the package, got {text!r}")
    return text


def _int_range(low: int, high: int) -> Callable[[_Ctx, str, Any], int]:
    def check(ctx: _Ctx, key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ctx.fail(key, f"expected an integer, got {_type_name(value)}")
        if not low <= value <= high:
            raise ctx.fail(key, f"expected an integer from {low} to {high}, got {value}")
        return value

    return check


def _table(ctx: _Ctx, key: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.fail(key, f"expected a table, got {_type_name(value)}")
    for name in value:
        if name not in allowed:
            expected = ", ".join(sorted(allowed))
            raise ctx.fail(f"{key}.{name}", f"unknown key (expected one of: {expected})")
    return value


def _required(ctx: _Ctx, table: dict[str, Any], prefix: str, name: str) -> Any:
    if name not in table:
        raise ctx.fail(f"{prefix}.{name}", "missing required key")
    return table[name]


def _coordinate_part(ctx: _Ctx, key: str, value: Any, check: Callable[[str], str]) -> str:
    text = _str(ctx, key, value)
    try:
        return check(text)
    except CoordinateError as exc:
        raise ctx.fail(key, exc.message) from None


# ---------------------------------------------------------------------------------------


def parse_manifest(text: str, source: str = MANIFEST_NAME) -> Manifest:
    """Parse and validate manifest text; ``source`` names it in every error."""
    ctx = _Ctx(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from None
    _table(ctx, "(top level)", data, {"package", "build", "service", "link"})
    if "package" not in data:
        raise ctx.fail("package", "missing required table [package]")
    package = _table(ctx, "package", data["package"],
                     {"group", "id", "version", "summary", "description", "maintainer",
                      "license", "homepage", "requires"})
    group = _coordinate_part(ctx, "package.group", _required(ctx, package, "package", "group"),
                             validate_group)
    ident = _coordinate_part(ctx, "package.id", _required(ctx, package, "package", "id"),
                             validate_id)
    version = _coordinate_part(ctx, "package.version",
                               _required(ctx, package, "package", "version"), validate_version)
    texts = {
        name: _str(ctx, f"package.{name}", package[name])
        for name in ("summary", "description", "maintainer", "license", "homepage")
        if name in package
    }
    requires: list[Requirement] = []
    for index, item in enumerate(_str_list(ctx, "package.requires", package.get("requires", []))):
        try:
            requires.append(Requirement.parse(item))
        except CoordinateError as exc:
            raise ctx.fail(f"package.requires[{index}]", exc.message) from None

    build = None
    if "build" in data:
        table = _table(ctx, "build", data["build"], {"command", "env", "timeout", "network"})
        command = _nonempty(ctx, "build.command", _required(ctx, table, "build", "command"))
        env = {}
        if "env" in table:
            env_table = _table(ctx, "build.env", table["env"], set(table["env"]) if
                               isinstance(table["env"], dict) else set())
            env = {k: _str(ctx, f"build.env.{k}", v) for k, v in env_table.items()}
        timeout = _int_range(1, 86_400)(ctx, "build.timeout", table["timeout"]) if (
            "timeout" in table) else None
        network = table.get("network", False)
        if not isinstance(network, bool):
            raise ctx.fail("build.network", f"expected a boolean, got {_type_name(network)}")
        build = BuildSpec(command, env, timeout, network)

    service = None
    if "service" in data:
        table = _table(ctx, "service", data["service"],
                       {"start", "stop", "exec", "user", "reload", "params"})
        start = _rel_path(ctx, "service.start", table["start"]) if "start" in table else None
        stop = _rel_path(ctx, "service.stop", table["stop"]) if "stop" in table else None
        exec_ = None
        if "exec" in table:
            exec_list = _str_list(ctx, "service.exec", table["exec"])
            if not exec_list:
                raise ctx.fail("service.exec", "expected a non-empty array")
            _exec_program(ctx, "service.exec[0]", exec_list[0])
            exec_ = tuple(exec_list)
        if (start is None) == (exec_ is None):
            raise ctx.fail("service", "expected exactly one of 'start' or 'exec'")
        user = _nonempty(ctx, "service.user", table["user"]) if "user" in table else None
        reload = _reload(ctx, table["reload"]) if "reload" in table else None
        params = _params(ctx, table["params"]) if "params" in table else ()
        service = ServiceSpec(start, stop, exec_, user, reload, params)

    announces: list[LinkAnnounce] = []
    accepts: list[LinkAccept] = []
    if "link" in data:
        link = _table(ctx, "link", data["link"], {"announce", "accept"})
        for index, item in enumerate(_array_of_tables(ctx, "link.announce",
                                                       link.get("announce", []))):
            key = f"link.announce[{index}]"
            entry = _table(ctx, key, item, {"interface", "adapter", "generate"})
            interface = _interface(ctx, f"{key}.interface",
                                   _required(ctx, entry, key, "interface"))
            adapter = _rel_path(ctx, f"{key}.adapter", _required(ctx, entry, key, "adapter"))
            gen = _table(ctx, f"{key}.generate", entry.get("generate", {}),
                         {"port", "hostname_prefix", "password"})
            port = port_param = None
            if isinstance(gen.get("port"), str):
                port_param = _param_ref(ctx, f"{key}.generate.port", gen["port"])
            elif "port" in gen:
                port = _int_range(1, 65535)(ctx, f"{key}.generate.port", gen["port"])
            prefix = _nonempty(ctx, f"{key}.generate.hostname_prefix",
                               gen["hostname_prefix"]) if "hostname_prefix" in gen else None
            password = None
            if "password" in gen:
                password = _str(ctx, f"{key}.generate.password", gen["password"])
                if password != "random":
                    raise ctx.fail(f"{key}.generate.password", "expected \"random\"")
            announces.append(LinkAnnounce(interface, adapter, port, prefix, password,
                                          port_param))
        for index, item in enumerate(_array_of_tables(ctx, "link.accept",
                                                       link.get("accept", []))):
            key = f"link.accept[{index}]"
            entry = _table(ctx, key, item,
                           {"interface", "adapter", "password_via", "on_change"})
            interface = _interface(ctx, f"{key}.interface",
                                   _required(ctx, entry, key, "interface"))
            adapter = _rel_path(ctx, f"{key}.adapter", _required(ctx, entry, key, "adapter"))
            via = _choice(ctx, f"{key}.password_via", entry.get("password_via", "env"),
                          PASSWORD_VIA)
            on_change = _choice(ctx, f"{key}.on_change", entry.get("on_change", "none"),
                                ON_CHANGE)
            accepts.append(LinkAccept(interface, adapter, via, on_change))

    return Manifest(
        coord=PackageCoord(group, ident, version),
        requires=tuple(requires),
        build=build,
        service=service,
        announces=tuple(announces),
        accepts=tuple(accepts),
        source=source,
        raw=data,
        **texts,
    )


def _reload(ctx: _Ctx, value: Any) -> str:
    """``signal:HUP`` (any signal name) or a relative script path."""
    import signal

    text = _nonempty(ctx, "service.reload", value)
    if text.startswith("signal:"):
        name = text[len("signal:"):].upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name not in signal.Signals.__members__:
            raise ctx.fail("service.reload", f"unknown signal {text[7:]!r} (e.g. signal:HUP)")
        return f"signal:{name[3:]}"
    return _rel_path(ctx, "service.reload", text)


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


def _params(ctx: _Ctx, value: Any) -> tuple[ParamSpec, ...]:
    """``[service.params]``: ``NAME = { type = "port", default = 5222 }`` per parameter."""
    import re

    table = _table(ctx, "service.params", value, set(value) if isinstance(value, dict)
                   else set())
    specs = []
    for name, item in table.items():
        key = f"service.params.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name in (
                "runtime-dir", "coordinate"):
            raise ctx.fail(key, "expected a parameter name like 'port' (not runtime-dir or "
                           "coordinate, which Shipyard passes itself)")
        entry = _table(ctx, key, item, {"type", "default"})
        kind = _str(ctx, f"{key}.type", entry.get("type", "string"))
        if kind not in PARAM_TYPES:
            raise ctx.fail(f"{key}.type", f"expected one of {', '.join(PARAM_TYPES)}, "
                           f"got {kind!r}")
        default = None
        if "default" in entry:
            raw = entry["default"]
            if isinstance(raw, bool) or not isinstance(raw, str | int):
                raise ctx.fail(f"{key}.default", f"expected a string or an integer, got "
                               f"{_type_name(raw)}")
            default = str(raw)
            spec = ParamSpec(name, kind, default)
            problem = check_param_value(spec, default)
            if problem:
                raise ctx.fail(f"{key}.default", problem)
        specs.append(ParamSpec(name, kind, default))
    return tuple(specs)


def _choice(ctx: _Ctx, key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = _str(ctx, key, value)
    if text not in choices:
        expected = " or ".join(f'"{c}"' for c in choices)
        raise ctx.fail(key, f"expected {expected}, got {text!r}")
    return text


def _param_ref(ctx: _Ctx, key: str, value: str) -> str:
    """``"{param.NAME}"``: the value comes from each instance's parameter NAME."""
    import re

    match = re.fullmatch(r"\{param\.([A-Za-z0-9][A-Za-z0-9_.-]*)\}", value)
    if match is None:
        raise ctx.fail(key, f"expected a port number or \"{{param.NAME}}\", got {value!r}")
    return match.group(1)


def _array_of_tables(ctx: _Ctx, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ctx.fail(key, f"expected an array of tables ([[{key}]]), got {_type_name(value)}")
    return value


def _interface(ctx: _Ctx, key: str, value: Any) -> str:
    import re

    text = _nonempty(ctx, key, value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", text):
        raise ctx.fail(key, f"expected an interface name like 'jabber-component', got {text!r}")
    return text


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read ``path`` (a ``shipyard.toml`` or a directory holding one)."""
    target = Path(path)
    if target.is_dir():
        target = target / MANIFEST_NAME
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{target}: no such file") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{target}: not UTF-8 text") from None
    except OSError as exc:
        raise ManifestError(f"{target}: cannot read: {exc.strerror}") from None
    return parse_manifest(text, str(target))
