#!/usr/bin/env python3
"""Write the generated parts of the reference from the code, so they cannot drift:

* ``docs/reference/cli.md``: every command, its usage, arguments and options, walked from
  the Typer/Click command tree of ``shipyard`` (the same objects ``--help`` prints);
* the settings table of ``docs/reference/config.md`` and the table of roots in
  ``docs/concepts.md`` (between their ``BEGIN GENERATED`` and ``END GENERATED`` markers),
  from ``shipyard.config.SETTINGS``.

    python scripts/gen_cli_reference.py           # rewrite the files
    python scripts/gen_cli_reference.py --check   # exit 1 naming the files that are stale

The output depends on nothing but the code: no terminal width, no environment, no user.
``tests/docs`` runs ``--check``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


CLI_MD = ROOT / "docs" / "reference" / "cli.md"
CONFIG_MD = ROOT / "docs" / "reference" / "config.md"
CONCEPTS_MD = ROOT / "docs" / "concepts.md"
BEGIN = "<!-- BEGIN GENERATED: scripts/gen_cli_reference.py -->"
END = "<!-- END GENERATED -->"


# ---------------------------------------------------------------------------------------
# The command tree


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# Typer vendors its own Click, so nothing here imports click: the objects are asked what
# they are (a group lists commands; a parameter names its kind) instead.
Command = Any
Context = Any
Param = Any


def _is_group(command: Command) -> bool:
    return hasattr(command, "list_commands")


def _context(command: Command, name: str, parent: Context | None) -> Context:
    return command.context_class(command, info_name=name, parent=parent)


def _help(command: Command) -> str:
    return inspect.cleandoc(command.help or command.short_help or "").strip()


def _walk(command: Command, ctx: Context) -> Iterator[tuple[Command, Context]]:
    yield command, ctx
    if _is_group(command):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _walk(sub, _context(sub, name, ctx))


def _is_option(param: Param) -> bool:
    return param.param_type_name == "option"


# Click's type names, as the reference spells them.
_TYPE_NAMES = {"text": "str", "integer": "int", "boolean": "bool", "float": "float",
               "path": "path", "directory": "path", "file": "path"}


def _type(param: Param, ctx: Context) -> str:
    if _is_option(param) and getattr(param, "is_flag", False):
        return "flag"
    display = getattr(param, "display_type", None)  # Typer 0.29+
    if display is not None:
        label = str(display(ctx)).strip("<>")
    elif getattr(param.type, "choices", None):
        label = "|".join(map(str, param.type.choices))
    else:
        label = _TYPE_NAMES.get(param.type.name, param.type.name)
    return label.replace("|", "\\|").replace("float range", "float").replace(
        "int range", "int")


def _default(param: Param) -> str:
    if _is_option(param) and getattr(param, "is_flag", False) and param.secondary_opts:
        return param.opts[0] if param.default else param.secondary_opts[0]
    default = param.default
    if default is None or default is False or default == () or default == []:
        return ""
    if callable(default):
        return "(computed)"
    if isinstance(default, (list, tuple)):
        return ", ".join(map(str, default))
    return str(default)


def _option_row(param: Param, ctx: Context) -> str:
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    required = " (required)" if param.required else ""
    return (f"| {names} | {_type(param, ctx)} | {_cell(_default(param))} | "
            f"{_cell(param.help or '')}{required} |")


def _argument_row(param: Param, ctx: Context) -> str:
    metavar = (param.metavar or param.name).upper()
    text = getattr(param, "help", None) or ""
    notes = [word for word, yes in (("repeatable", param.nargs == -1),
                                    ("optional", not param.required)) if yes]
    suffix = f" ({', '.join(notes)})" if notes else ""
    return f"| `{metavar}` | {_type(param, ctx)} | {_cell(text)}{suffix} |"


def _usage(command: Command, ctx: Context) -> str:
    pieces = command.collect_usage_pieces(ctx)
    return " ".join([ctx.command_path, *pieces])


def render_cli() -> str:
    from shipyard.cli.app import command_tree

    root = command_tree()
    root_ctx = _context(root, "shipyard", None)
    out = [
        "# Command reference",
        "",
        "Generated from the command line itself by `scripts/gen_cli_reference.py`; do not",
        "edit by hand (`tests/docs` fails when this file and the code disagree). Every",
        "command also answers `--help`. Exit codes: [exit-codes.md](exit-codes.md).",
        "",
        "Global options go before the group: `shipyard [--home DIR] [--config FILE] "
        "[--debug] GROUP VERB ...`; `--home` is `SHIPYARD_HOME` and `--config` is",
        "`SHIPYARD_CONFIG` (see [config.md](config.md)); `shipyard --version` prints the "
        "version.",
        "",
    ]
    commands = list(_walk(root, root_ctx))
    out += ["## Contents", ""]
    for command, ctx in commands[1:]:
        if _is_group(command):
            continue
        anchor = ctx.command_path.replace(" ", "-")
        out.append(f"- [`{ctx.command_path}`](#{anchor})")
    out.append("")
    for command, ctx in commands[1:]:
        level = min(ctx.command_path.count(" ") + 1, 4)
        is_group = _is_group(command)
        out.append(f"{'#' * level} `{ctx.command_path}`")
        out.append("")
        text = _help(command)
        if text:
            out += [text, ""]
        if is_group:
            continue
        out += ["```", _usage(command, ctx), "```", ""]
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        options = [p for p in command.params if _is_option(p)
                   and not p.hidden and "--help" not in p.opts]
        if arguments:
            out += ["| argument | type | description |", "|---|---|---|"]
            out += [_argument_row(p, ctx) for p in arguments]
            out.append("")
        if options:
            out += ["| option | type | default | description |", "|---|---|---|---|"]
            out += [_option_row(p, ctx) for p in options]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def command_paths() -> list[str]:
    """Every command path (``shipyard svc upgrade``), groups included; for the tests."""
    from shipyard.cli.app import command_tree

    root = command_tree()
    return [ctx.command_path for _cmd, ctx in _walk(root, _context(root, "shipyard", None))]


# ---------------------------------------------------------------------------------------
# The settings table


def _defaults(setting: Any) -> str:
    """The default as an operator reads it: under SHIPYARD_HOME, as root, as a user."""
    from shipyard.config import Settings

    default = setting.default
    if not callable(default):
        if setting.kind == "list":
            return "`" + ",".join(default) + "`" if default else "(empty)"
        if default == "":
            return "(empty)"
        return f"`{default}`"

    def value(home: str | None, euid: int) -> str:
        with mock.patch("os.geteuid", return_value=euid), \
                mock.patch("pathlib.Path.home", return_value=Path("~")):
            settings = Settings(Path(home) if home else None, None)
            try:
                return str(settings.get(setting.key))
            except (KeyError, OSError):
                return "the invoking user"

    if setting.kind != "path":
        root, user = value(None, 0), value(None, 1 << 30)
        return f"`{root}` as root, else {user}"
    with_home = value("$SHIPYARD_HOME", 1 << 30)
    root, user = value(None, 0), value(None, 1 << 30)
    return f"`{with_home}`; without it: `{root}` as root, `{user}` otherwise"


def render_settings() -> str:
    from shipyard.config import SETTINGS

    rows = ["| setting | type | default | environment | meaning |", "|---|---|---|---|---|"]
    for setting in SETTINGS:
        section, key = setting.key.split(".", 1)
        rows.append(f"| `[{section}] {key}` | {setting.kind} | {_cell(_defaults(setting))} | "
                    f"`{setting.env_name}` | {_cell(setting.help)} |")
    return "\n".join(rows) + "\n"


def render_roots() -> str:
    """The six roots, in the three situations DESIGN.md names."""
    from shipyard.config import SETTINGS

    rows = ["| root | with `SHIPYARD_HOME` | as root (FHS) | as another user | holds |",
            "|---|---|---|---|---|"]
    for setting in SETTINGS:
        if not setting.key.startswith("paths."):
            continue
        text = _defaults(setting)
        home, rest = text.split("; without it: ", 1)
        root, user = rest.split(" as root, ", 1)
        user = user.removesuffix(" otherwise")
        rows.append(f"| `<{setting.key.split('.', 1)[1]}>` | {home} | {root} | {user} | "
                    f"{_cell(setting.help)} |")
    return "\n".join(rows) + "\n"


def splice(text: str, generated: str, path: Path) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: missing the {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}{END}{tail}"


# ---------------------------------------------------------------------------------------


def outputs() -> dict[Path, str]:
    config_text = CONFIG_MD.read_text(encoding="utf-8")
    concepts_text = CONCEPTS_MD.read_text(encoding="utf-8")
    return {CLI_MD: render_cli(),
            CONFIG_MD: splice(config_text, render_settings(), CONFIG_MD),
            CONCEPTS_MD: splice(concepts_text, render_roots(), CONCEPTS_MD)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="Do not write; exit 1 if a generated file is out of date.")
    args = parser.parse_args(argv)
    os.environ.pop("SHIPYARD_HOME", None)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"out of date: {names}; run python scripts/gen_cli_reference.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
