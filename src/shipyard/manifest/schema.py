"""A small schema checker for TOML tables: each checker names the file, the key and what
was expected when a value is wrong.

The manifest is strict on purpose (see :mod:`.parse`); these are the building blocks its
sections are made of. Each returns the checked value or raises the
:class:`~shipyard.errors.ManifestError` that :meth:`Ctx.fail` builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from shipyard.errors import CoordinateError, ManifestError


class Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ManifestError:
        return ManifestError(f"{self.source}: {key}: {message}")


def type_name(value: Any) -> str:
    return {
        str: "a string", int: "an integer", bool: "a boolean", float: "a float",
        list: "an array", dict: "a table",
    }.get(type(value), type(value).__name__)


def string(ctx: Ctx, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ctx.fail(key, f"expected a string, got {type_name(value)}")
    return value


def nonempty(ctx: Ctx, key: str, value: Any) -> str:
    text = string(ctx, key, value)
    if not text.strip():
        raise ctx.fail(key, "expected a non-empty string")
    return text


def str_list(ctx: Ctx, key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ctx.fail(key, f"expected an array of strings, got {type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ctx.fail(f"{key}[{index}]", f"expected a string, got {type_name(item)}")
    return value


def rel_path(ctx: Ctx, key: str, value: Any) -> str:
    text = nonempty(ctx, key, value)
    path = PurePosixPath(text)
    if "\x00" in text or path.is_absolute() or ".." in path.parts or text.startswith("~"):
        raise ctx.fail(key, f"expected a relative path inside the package, got {text!r}")
    return text


def exec_program(ctx: Ctx, key: str, value: Any) -> str:
    """The program of ``service.exec``: absolute (a system program, ``/bin/sh``), a bare
    name looked up on ``PATH`` (``redis-server``), or a path inside the package
    (``bin/{platform}/server``); never one that climbs out of the package with ``..``."""
    text = nonempty(ctx, key, value)
    if "\x00" in text or ".." in PurePosixPath(text).parts or text.startswith("~") \
            or text.strip("/") in ("", "."):
        raise ctx.fail(key, "expected an absolute program, a program name looked up on PATH, "
                            f"or a relative path inside the package, got {text!r}")
    return text


def int_range(low: int, high: int) -> Callable[[Ctx, str, Any], int]:
    def check(ctx: Ctx, key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ctx.fail(key, f"expected an integer, got {type_name(value)}")
        if not low <= value <= high:
            raise ctx.fail(key, f"expected an integer from {low} to {high}, got {value}")
        return value

    return check


def table_of(ctx: Ctx, key: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.fail(key, f"expected a table, got {type_name(value)}")
    for name in value:
        if name not in allowed:
            expected = ", ".join(sorted(allowed))
            raise ctx.fail(f"{key}.{name}", f"unknown key (expected one of: {expected})")
    return value


def required(ctx: Ctx, table: dict[str, Any], prefix: str, name: str) -> Any:
    if name not in table:
        raise ctx.fail(f"{prefix}.{name}", "missing required key")
    return table[name]


def coordinate_part(ctx: Ctx, key: str, value: Any, check: Callable[[str], str]) -> str:
    text = string(ctx, key, value)
    try:
        return check(text)
    except CoordinateError as exc:
        raise ctx.fail(key, exc.message) from None


def choice(ctx: Ctx, key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = string(ctx, key, value)
    if text not in choices:
        expected = " or ".join(f'"{c}"' for c in choices)
        raise ctx.fail(key, f"expected {expected}, got {text!r}")
    return text


def param_ref(ctx: Ctx, key: str, value: str) -> str:
    """``"{param.NAME}"``: the value comes from each instance's parameter NAME."""
    match = re.fullmatch(r"\{param\.([A-Za-z0-9][A-Za-z0-9_.-]*)\}", value)
    if match is None:
        raise ctx.fail(key, f"expected a port number or \"{{param.NAME}}\", got {value!r}")
    return match.group(1)


def array_of_tables(ctx: Ctx, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ctx.fail(key, f"expected an array of tables ([[{key}]]), got {type_name(value)}")
    return value


def interface_name(ctx: Ctx, key: str, value: Any) -> str:
    text = nonempty(ctx, key, value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", text):
        raise ctx.fail(key, f"expected an interface name like 'jabber-component', got {text!r}")
    return text
