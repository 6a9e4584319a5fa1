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
