"""``shipyard.toml``: the package's manifest and build recipe, parsed and validated strictly.

Unknown keys and wrong types are errors that name the file, the key and what was expected,
because a typo in a manifest that is silently ignored surfaces weeks later as a service that
does not start on some node.
"""

from __future__ import annotations

import os
import re
import signal
import tomllib
from pathlib import Path
from typing import Any

from shipyard.coords import (
    PackageCoord,
    Requirement,
    validate_group,
    validate_id,
    validate_version,
)
from shipyard.errors import CoordinateError, ManifestError
from shipyard.manifest.model import (
    MANIFEST_NAME,
    ON_CHANGE,
    PARAM_TYPES,
    PASSWORD_VIA,
    BuildSpec,
    LinkAccept,
    LinkAnnounce,
    Manifest,
    ParamSpec,
    ServiceSpec,
    check_param_value,
)
from shipyard.manifest.schema import (
    Ctx,
    array_of_tables,
    choice,
    coordinate_part,
    exec_program,
    int_range,
    interface_name,
    nonempty,
    param_ref,
    rel_path,
    required,
    str_list,
    string,
    table_of,
    type_name,
)


def parse_manifest(text: str, source: str = MANIFEST_NAME) -> Manifest:
    """Parse and validate manifest text; ``source`` names it in every error."""
    ctx = Ctx(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from None
    table_of(ctx, "(top level)", data, {"package", "build", "service", "link"})
    if "package" not in data:
        raise ctx.fail("package", "missing required table [package]")
    coord, requires, texts = _package(ctx, data["package"])
    build = _build(ctx, data["build"]) if "build" in data else None
    service = _service(ctx, data["service"]) if "service" in data else None
    announces: tuple[LinkAnnounce, ...] = ()
    accepts: tuple[LinkAccept, ...] = ()
    if "link" in data:
        link = table_of(ctx, "link", data["link"], {"announce", "accept"})
        announces = _announces(ctx, link.get("announce", []))
        accepts = _accepts(ctx, link.get("accept", []),
                           service.params if service is not None else ())
    return Manifest(
        coord=coord,
        requires=requires,
        build=build,
        service=service,
        announces=announces,
        accepts=accepts,
        source=source,
        raw=data,
        **texts,
    )


def _package(ctx: Ctx, value: Any
             ) -> tuple[PackageCoord, tuple[Requirement, ...], dict[str, str]]:
    """``[package]``: the coordinate, the requirements and the descriptive texts."""
    package = table_of(ctx, "package", value,
                       {"group", "id", "version", "summary", "description", "maintainer",
                        "license", "homepage", "requires"})
    group = coordinate_part(ctx, "package.group", required(ctx, package, "package", "group"),
                            validate_group)
    ident = coordinate_part(ctx, "package.id", required(ctx, package, "package", "id"),
                            validate_id)
    version = coordinate_part(ctx, "package.version",
                              required(ctx, package, "package", "version"), validate_version)
    texts: dict[str, str] = {
        name: string(ctx, f"package.{name}", package[name])
        for name in ("summary", "description", "maintainer", "license", "homepage")
        if name in package
    }
    requires: list[Requirement] = []
    for index, item in enumerate(str_list(ctx, "package.requires", package.get("requires", []))):
        try:
            requires.append(Requirement.parse(item))
        except CoordinateError as exc:
            raise ctx.fail(f"package.requires[{index}]", exc.message) from None
    return PackageCoord(group, ident, version), tuple(requires), texts


def _build(ctx: Ctx, value: Any) -> BuildSpec:
    """``[build]``: the command, its environment, its timeout and whether it gets a network."""
    table = table_of(ctx, "build", value, {"command", "env", "timeout", "network"})
    command = nonempty(ctx, "build.command", required(ctx, table, "build", "command"))
    env = {}
    if "env" in table:
        env_table = table_of(ctx, "build.env", table["env"], set(table["env"]) if
                             isinstance(table["env"], dict) else set())
        env = {k: string(ctx, f"build.env.{k}", v) for k, v in env_table.items()}
    timeout = int_range(1, 86_400)(ctx, "build.timeout", table["timeout"]) if (
        "timeout" in table) else None
    network = table.get("network", False)
    if not isinstance(network, bool):
        raise ctx.fail("build.network", f"expected a boolean, got {type_name(network)}")
    return BuildSpec(command, env, timeout, network)


def _service(ctx: Ctx, value: Any) -> ServiceSpec:
    """``[service]``: how an instance starts (a script or an argv), stops and reloads."""
    table = table_of(ctx, "service", value,
                     {"start", "stop", "exec", "user", "reload", "params"})
    start = rel_path(ctx, "service.start", table["start"]) if "start" in table else None
    stop = rel_path(ctx, "service.stop", table["stop"]) if "stop" in table else None
    exec_ = None
    if "exec" in table:
        exec_list = str_list(ctx, "service.exec", table["exec"])
        if not exec_list:
            raise ctx.fail("service.exec", "expected a non-empty array")
        exec_program(ctx, "service.exec[0]", exec_list[0])
        exec_ = tuple(exec_list)
    if (start is None) == (exec_ is None):
        raise ctx.fail("service", "expected exactly one of 'start' or 'exec'")
    user = nonempty(ctx, "service.user", table["user"]) if "user" in table else None
    reload = _reload(ctx, table["reload"]) if "reload" in table else None
    params = _params(ctx, table["params"]) if "params" in table else ()
    return ServiceSpec(start, stop, exec_, user, reload, params)


def _announces(ctx: Ctx, value: Any) -> tuple[LinkAnnounce, ...]:
    """``[[link.announce]]``: the interfaces this package serves and what to generate."""
    announces: list[LinkAnnounce] = []
    for index, item in enumerate(array_of_tables(ctx, "link.announce", value)):
        key = f"link.announce[{index}]"
        entry = table_of(ctx, key, item, {"interface", "adapter", "generate"})
        interface = interface_name(ctx, f"{key}.interface",
                                   required(ctx, entry, key, "interface"))
        adapter = rel_path(ctx, f"{key}.adapter", required(ctx, entry, key, "adapter"))
        gen = table_of(ctx, f"{key}.generate", entry.get("generate", {}),
                       {"port", "hostname_prefix", "password"})
        port, port_param = _port(ctx, f"{key}.generate.port", gen)
        prefix = nonempty(ctx, f"{key}.generate.hostname_prefix",
                          gen["hostname_prefix"]) if "hostname_prefix" in gen else None
        password = None
        if "password" in gen:
            password = string(ctx, f"{key}.generate.password", gen["password"])
            if password != "random":
                raise ctx.fail(f"{key}.generate.password", "expected \"random\"")
        announces.append(LinkAnnounce(interface, adapter, port, prefix, password,
                                      port_param))
    return tuple(announces)


def _accepts(ctx: Ctx, value: Any, params: tuple[ParamSpec, ...]) -> tuple[LinkAccept, ...]:
    """``[[link.accept]]``: the interfaces this package consumes, through which adapter,
    and on which port (``params``: the ``[service.params]`` a port may name)."""
    accepts: list[LinkAccept] = []
    for index, item in enumerate(array_of_tables(ctx, "link.accept", value)):
        key = f"link.accept[{index}]"
        entry = table_of(ctx, key, item,
                         {"interface", "adapter", "password_via", "on_change", "port"})
        interface = interface_name(ctx, f"{key}.interface",
                                   required(ctx, entry, key, "interface"))
        adapter = rel_path(ctx, f"{key}.adapter", required(ctx, entry, key, "adapter"))
        via = choice(ctx, f"{key}.password_via", entry.get("password_via", "env"),
                     PASSWORD_VIA)
        on_change = choice(ctx, f"{key}.on_change", entry.get("on_change", "none"),
                           ON_CHANGE)
        port, port_param = _port(ctx, f"{key}.port", entry)
        if port_param is not None:
            _declared_port(ctx, f"{key}.port", port_param, params)
        accepts.append(LinkAccept(interface, adapter, via, on_change, port, port_param))
    return tuple(accepts)


def _port(ctx: Ctx, key: str, table: dict[str, Any]) -> tuple[int | None, str | None]:
    """A port template (``generate.port``, ``[[link.accept]] port``): a number, or
    ``"{param.NAME}"`` for the instance's value; ``(port, param name)``."""
    value = table.get("port")
    if isinstance(value, str):
        return None, param_ref(ctx, key, value)
    if value is None:
        return None, None
    return int_range(1, 65535)(ctx, key, value), None


def _declared_port(ctx: Ctx, key: str, name: str, params: tuple[ParamSpec, ...]) -> None:
    """``{param.NAME}`` of a port must name a ``[service.params]`` entry that holds a
    number: the coordinator resolves it for instances on other hosts, before any start
    could say the parameter is missing."""
    spec = next((p for p in params if p.name == name), None)
    if spec is None or spec.type not in ("port", "int"):
        raise ctx.fail(key, f"{{param.{name}}} must name a [service.params] entry of type "
                       f"\"port\" or \"int\"" + ("" if spec is None else
                                                 f" (it is {spec.type!r})"))


def _reload(ctx: Ctx, value: Any) -> str:
    """``signal:HUP`` (any signal name) or a relative script path."""
    text = nonempty(ctx, "service.reload", value)
    if text.startswith("signal:"):
        name = text[len("signal:"):].upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name not in signal.Signals.__members__:
            raise ctx.fail("service.reload", f"unknown signal {text[7:]!r} (e.g. signal:HUP)")
        return f"signal:{name[3:]}"
    return rel_path(ctx, "service.reload", text)


def _params(ctx: Ctx, value: Any) -> tuple[ParamSpec, ...]:
    """``[service.params]``: ``NAME = { type = "port", default = 5222 }`` per parameter."""
    table = table_of(ctx, "service.params", value, set(value) if isinstance(value, dict)
                     else set())
    specs = []
    for name, item in table.items():
        key = f"service.params.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name in (
                "runtime-dir", "coordinate"):
            raise ctx.fail(key, "expected a parameter name like 'port' (not runtime-dir or "
                           "coordinate, which Shipyard passes itself)")
        entry = table_of(ctx, key, item, {"type", "default"})
        kind = string(ctx, f"{key}.type", entry.get("type", "string"))
        if kind not in PARAM_TYPES:
            raise ctx.fail(f"{key}.type", f"expected one of {', '.join(PARAM_TYPES)}, "
                           f"got {kind!r}")
        default = None
        if "default" in entry:
            raw = entry["default"]
            if isinstance(raw, bool) or not isinstance(raw, str | int):
                raise ctx.fail(f"{key}.default", f"expected a string or an integer, got "
                               f"{type_name(raw)}")
            default = str(raw)
            spec = ParamSpec(name, kind, default)
            problem = check_param_value(spec, default)
            if problem:
                raise ctx.fail(f"{key}.default", problem)
        specs.append(ParamSpec(name, kind, default))
    return tuple(specs)


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
