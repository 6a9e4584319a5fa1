"""What every command module shares: the settings in the context, JSON and table output,
and progress bars that appear only on a terminal."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.config import Settings, exposed_secret_files, load_settings

if TYPE_CHECKING:
    from rich.console import Console


# Rich costs ~50 ms to import: commands that print a line or JSON never load it.
# Everything these consoles print is data (coordinates, summaries, errors an adapter
# printed): Rich must never read it as markup (``[/etc]`` raises MarkupError, ``[b]x[/b]``
# vanishes), emoji codes (``org.example.pypi:six:1.16.0`` would print a keycap) or
# something to highlight. Style is given as ``style=``, never inside the text.
PLAIN = {"markup": False, "emoji": False, "highlight": False}


@cache
def console() -> Console:
    """Standard output. Piped output (scripts, logs, tests) must not be cut at 80 columns:
    tables there use a wide fixed width, and a terminal keeps its own width."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(**PLAIN)  # type: ignore[arg-type]
    return Console(width=200, **PLAIN)  # type: ignore[arg-type]


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, **PLAIN)  # type: ignore[arg-type]


class State:
    """Global options, filled by the root callback and read by commands."""

    def __init__(self, home: str | None, config: str | None, debug: bool) -> None:
        self.home = home
        self.config = config
        self.debug = debug
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(home=self.home, config_file=self.config)
            for line in exposed_secret_files(self._settings):
                sys.stderr.write(f"shipyard: warning: {line}\n")
        return self._settings


def settings(ctx: typer.Context, **flags: Any) -> Settings:
    """The effective settings, with this command's flags (``key=value``) on top."""
    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, State) else State(None, None, False)
    base = state.settings
    return base.with_overrides({k.replace("__", "."): v for k, v in flags.items()},
                               source="flag")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                empty: str = "nothing to show") -> None:
    rows = list(rows)
    if not rows:
        sys.stdout.write(empty + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    # Cells as Text objects: Rich renders them verbatim whatever the console's settings.
    table = Table(title=Text(title) if title else None, show_header=True,
                  header_style="bold")
    for column in columns:
        table.add_column(Text(column))
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console().print(table)


def existing(path: str | os.PathLike[str], what: str, *, kind: str = "file") -> Path:
    """An input path named on the command line; a missing one is a usage error (exit 2).

    The rule of docs/reference/exit-codes.md: a path the operator typed that names nothing
    (or a directory where a file is wanted, and the reverse) is a mistake on the command
    line, like a malformed coordinate; a path that exists but whose content is wrong is a
    failure (1). Checked here, once, so every command that takes a path says the same.
    """
    from shipyard.errors import UsageError

    target = Path(path).expanduser()
    if not target.exists():
        raise UsageError(f"{what} {target}: no such {'directory' if kind == 'dir' else 'file'}")
    if kind == "dir" and not target.is_dir():
        raise UsageError(f"{what} {target}: not a directory")
    if kind == "file" and not target.is_file():
        raise UsageError(f"{what} {target}: not a regular file")
    return target


def show_progress() -> bool:
    return sys.stdout.isatty()


# The long-running commands (farm serve, farm worker, node agent) share these two options.
LOG_LEVEL_HELP = "Least severe events logged to stderr: debug, info, warning or error."
LOG_FORMAT_HELP = "text (one line per event) or json (one object per line)."


def log_level_option() -> Any:
    return typer.Option("info", "--log-level", metavar="LEVEL", help=LOG_LEVEL_HELP)


def log_format_option() -> Any:
    return typer.Option("text", "--log-format", metavar="FORMAT", help=LOG_FORMAT_HELP)


def start_logging(level: str, fmt: str) -> None:
    """Check ``--log-level``/``--log-format`` (one line on a bad value) and configure."""
    from shipyard.errors import UsageError
    from shipyard.logsetup import FORMATS, LEVELS, configure_logging

    if level.lower() not in LEVELS:
        raise UsageError(f"--log-level {level!r}: expected one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise UsageError(f"--log-format {fmt!r}: expected one of {', '.join(FORMATS)}")
    configure_logging(level.lower(), fmt)
