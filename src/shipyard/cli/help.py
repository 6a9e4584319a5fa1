"""How ``--help``, the man pages and the command reference read.

* Help text is literal: Typer's Rich markup mode would read ``[build]`` in a docstring as
  a style tag and drop it, so every Typer app of the tree gets ``rich_markup_mode=None``
  (plain Click help, which also spares ``--help`` the import of Rich).
* Metavars are words (``SVC``, ``COORD``, ``DIR``, ``URL``), never Typer's ``<str>`` or
  ``{name}``. Command modules may set ``metavar=`` themselves; everything they leave
  unset is named here, once for the whole tree, so that a new command reads the same way
  without anyone remembering to.

The Click tree (:func:`shipyard.cli.app.command_tree`) is what ``--help`` prints, what
``scripts/gen_cli_reference.py`` writes to ``docs/reference/cli.md`` and what
``scripts/gen_man.py`` turns into man pages, so the three cannot disagree.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import typer

# By parameter name (Click's: --repo-url is repo_url), for parameters without a metavar.
METAVARS = {
    # arguments
    "acceptor": "SVC", "announcer": "SVC", "instance": "SVC", "service": "SVC",
    "archive": "FILE", "bare": "REPO", "build_id": "ID", "coord": "COORD",
    "coordinate": "COORD", "directory": "DIR", "host": "HOST", "ident": "TOKEN",
    "name": "NAME", "package": "GROUP:ID", "target": "TARGET",
    # options
    "after": "SVC", "archive_dir": "DIR", "bind": "HOST:PORT", "capacity": "N",
    "channel": "CHANNEL", "check": "NAME", "commit": "COMMIT", "config": "FILE",
    "coordinator": "URL", "days": "DAYS", "db": "URL", "default_channel": "CHANNEL",
    "dir": "DIR", "examples": "DIR", "grace": "SECONDS", "home": "DIR", "http": "PORT",
    "interface": "INTERFACE", "limit": "N", "lines": "N", "max_age": "AGE", "out": "PATH",
    "platform": "PLATFORM", "reason": "TEXT", "repo": "DIR", "repo_url": "URL",
    "role": "ROLE", "state": "STATE", "to": "CHANNEL", "token": "TOKEN", "user": "USER",
    "wait": "SECONDS", "workdir": "DIR",
}
# By the type Click gives a parameter, for names not above.
_BY_TYPE = {"integer": "N", "float": "NUMBER", "path": "PATH", "text": "TEXT",
            "integer range": "N", "float range": "NUMBER"}


def literal(app: typer.Typer) -> typer.Typer:
    """``app`` and every group below it with help text that is never read as markup."""
    app.rich_markup_mode = None
    for info in app.registered_groups:
        if info.typer_instance is not None:
            literal(info.typer_instance)
    return app


def walk(command: Any, path: str = "shipyard") -> Iterator[tuple[Any, str]]:
    yield command, path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, f"{path} {name}")


def _word(param: Any) -> str:
    if param.metavar:
        return str(param.metavar)
    name = param.name or ""
    if name in METAVARS:
        return METAVARS[name]
    choices = getattr(param.type, "choices", None)
    if choices:
        return "|".join(map(str, choices))
    return _BY_TYPE.get(param.type.name, name.upper() or "VALUE")


def _argument_metavar(self: Any, ctx: Any = None, *, usage: bool = False) -> str:
    """An argument as a word: ``SVC``, ``[SVC]`` when optional, ``SVC...`` when repeated."""
    word = self.metavar
    if word.startswith("["):
        return word
    if self.nargs != 1:
        word += "..."
    if usage and not self.required:
        word = f"[{word}]"
    return word


def words(command: Any) -> Any:
    """Name every parameter of the Click tree below ``command`` with a word."""
    for sub, _path in walk(command):
        for param in sub.params:
            if param.param_type_name == "option" and (param.is_flag or param.count):
                continue
            param.metavar = _word(param)
            if param.param_type_name == "argument":
                param.make_metavar = types.MethodType(_argument_metavar, param)
    return command
