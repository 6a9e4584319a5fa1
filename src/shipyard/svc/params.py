"""Instance parameters (``--name=value``) and the placeholders of ``[service] exec``.

Parameters are the third kind of configuration in copkg's scheme: per instance, on the
command line. A start script receives them as given; an ``exec`` line picks them up by name
through ``{param.NAME}``. Every placeholder is checked before anything is launched (the
seed's first step: "parse command line options and ensure that they make sense").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from shipyard.errors import ShipyardError, UsageError
from shipyard.manifest import ParamSpec, check_param_value

PARAM_RE = re.compile(r"--([A-Za-z0-9][A-Za-z0-9_.-]*)(?:=(.*))?", re.DOTALL)
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
RESERVED = {"runtime-dir", "coordinate"}
FIXED = ("platform", "runtime_dir", "package_dir", "coordinate")


def parse_params(params: Sequence[str]) -> dict[str, str | None]:
    """``--name=value`` → ``{name: value}``; ``--flag`` → ``{flag: None}``."""
    parsed: dict[str, str | None] = {}
    for item in params:
        match = PARAM_RE.fullmatch(item)
        if not match:
            raise UsageError(
                f"invalid parameter {item!r}: expected --name=value or --name "
                "(after '--' on the command line)"
            )
        name = match.group(1)
        if name in RESERVED:
            raise UsageError(f"parameter --{name} is reserved: Shipyard passes it itself")
        parsed[name] = match.group(2)
    return parsed


def placeholders(args: Sequence[str]) -> list[str]:
    return [m.group(1) for arg in args for m in PLACEHOLDER_RE.finditer(arg)]


def check_exec(args: Sequence[str], params: Mapping[str, str | None], where: str) -> None:
    """Every placeholder of an exec line is known and every ``{param.NAME}`` is given."""
    for name in placeholders(args):
        if name in FIXED:
            continue
        if name.startswith("param."):
            key = name[len("param."):]
            if key not in params:
                raise ShipyardError(
                    f"{where}: [service] exec needs parameter --{key}=VALUE for "
                    f"{{param.{key}}}; register it after '--'"
                )
            if params[key] is None:
                raise ShipyardError(
                    f"{where}: parameter --{key} has no value but [service] exec uses "
                    f"{{param.{key}}}; give --{key}=VALUE"
                )
            continue
        raise ShipyardError(
            f"{where}: unknown placeholder {{{name}}} in [service] exec (expected "
            "{platform}, {runtime_dir}, {package_dir}, {coordinate} or {param.NAME})"
        )


def expand(args: Sequence[str], values: Mapping[str, str], params: Mapping[str, str | None]
           ) -> list[str]:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("param."):
            return params[name[len("param."):]] or ""
        return values[name]

    return [PLACEHOLDER_RE.sub(replace, arg) for arg in args]


def check_declared(specs: Sequence[ParamSpec], params: Mapping[str, str | None],
                   where: str) -> None:
    """Registered parameters against ``[service.params]``: known names, right types, and a
    value for every parameter without a default. Nothing to check when none are declared
    (a start script may take anything)."""
    if not specs:
        return
    declared = {spec.name: spec for spec in specs}
    for name, value in params.items():
        spec = declared.get(name)
        if spec is None:
            known = ", ".join(f"--{n}" for n in declared)
            raise UsageError(f"{where}: unknown parameter --{name} ([service.params] "
                             f"declares {known})")
        if value is None:
            if spec.type != "string":
                raise UsageError(f"{where}: parameter --{name} needs a value ({spec.type})")
            continue
        problem = check_param_value(spec, value)
        if problem:
            raise UsageError(f"{where}: parameter --{name}: {problem}")
    missing = [s.name for s in specs if s.default is None and s.name not in params]
    if missing:
        raise UsageError(f"{where}: missing parameter(s) "
                         f"{', '.join(f'--{n}=VALUE' for n in missing)} (no default in "
                         "[service.params]); give them after '--'")


def with_defaults(specs: Sequence[ParamSpec], params: Sequence[str]) -> list[str]:
    """The instance's parameters as start, stop and adapters get them: the registered
    ones, preceded by every ``[service.params]`` default the registration does not
    override. Defaults are applied when used, not copied into the registry, so a package
    upgrade that changes a default reaches every instance that kept it."""
    given = parse_params(params)
    defaults = [f"--{s.name}={s.default}" for s in specs
                if s.default is not None and s.name not in given]
    return [*defaults, *params]
