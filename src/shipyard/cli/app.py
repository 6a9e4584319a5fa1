"""The Typer command tree of ``shipyard``, and running a command line through it.

Apart from :mod:`shipyard.cli.main` so that the entry point can run ``svc shutdown``
without importing Typer and its Click at all.

Start-up is part of every command's cost (``svc shutdown`` of 200 instances spends more
time importing than stopping), so only the group named on the command line is imported
and attached; ``shipyard --help``, an unknown group and the reference generator get them
all (:func:`build_app`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.exceptions import TyperException

from shipyard import __version__
from shipyard.cli import help as helptext
from shipyard.cli.common import State

# Group name -> module holding its ``app``, in the order ``--help`` lists them.
GROUPS = {
    "pkg": "shipyard.cli.pkg",
    "repo": "shipyard.cli.repo",
    "svc": "shipyard.cli.svc",
    "link": "shipyard.cli.link",
    "farm": "shipyard.cli.farm",
    "node": "shipyard.cli.node",
    "fleet": "shipyard.cli.fleet",
    "config": "shipyard.cli.config",
}
DEMO_HELP = "Run the whole pipeline on this machine, end to end."
COMPLETION_HELP = "Print the shell completion script for bash, zsh or fish."
SHELLS = ("bash", "zsh", "fish")
# Click's shell-completion protocol: the completion script runs `shipyard` with this set.
COMPLETE_VAR = "_SHIPYARD_COMPLETE"
# Root options that take a value: the group is the first word that is not one of them.
_VALUE_OPTIONS = ("--home", "--config")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    home: str = typer.Option(None, "--home", envvar="SHIPYARD_HOME",
                             help="Put every root under this directory."),
    config: str = typer.Option(None, "--config", envvar="SHIPYARD_CONFIG",
                               help="Config file (default: <config dir>/shipyard.ini)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = State(home, config, debug)


def _completion(
    shell: str = typer.Argument(..., metavar="SHELL", help="bash, zsh or fish."),
) -> None:
    """The completion script for SHELL, to source or to install (see the operator guide)."""
    from typer.completion import get_completion_script

    from shipyard.errors import UsageError

    if shell not in SHELLS:
        raise UsageError(f"completion: unknown shell {shell!r} (expected one of: "
                         f"{', '.join(SHELLS)})")
    typer.echo(get_completion_script(prog_name="shipyard", complete_var=COMPLETE_VAR,
                                     shell=shell))


def requested_group(args: list[str]) -> str | None:
    """The first word after the root options (``None`` when there is none)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_app(group: str | None = None, *, groups: bool = True) -> typer.Typer:
    """The command tree: every group, or only ``group`` when it names one, or none at all
    (``groups=False``: the root options only, which is all ``--version`` needs)."""
    app = typer.Typer(
        name="shipyard",
        help="From a git push to running, wired service instances.",
        no_args_is_help=True,
        # --install-completion / --show-completion, and the completion protocol itself.
        add_completion=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    if not groups:
        return helptext.literal(app)
    known = group in GROUPS or group in ("demo", "completion")
    for name, module in GROUPS.items():
        if not known or name == group:
            app.add_typer(importlib.import_module(module).app, name=name)
    if not known or group == "demo":
        from shipyard.cli import demo as demo_cmd

        app.command("demo", help=DEMO_HELP)(demo_cmd.demo)
    if not known or group == "completion":
        app.command("completion", help=COMPLETION_HELP)(_completion)
    return helptext.literal(app)


def command_tree(group: str | None = None, *, groups: bool = True) -> Any:
    """The Click command ``--help`` prints, the reference and the man pages describe."""
    return helptext.words(typer.main.get_command(build_app(group, groups=groups)))


def run(args: list[str]) -> int:
    """Run ``args`` through Typer; its own exceptions become a message and an exit code.

    Everything else (a :class:`ShipyardError`, an interrupt, a bug) propagates to
    :func:`shipyard.cli.main.main`, which reports it the same way for every path.
    """
    try:
        group = requested_group(args)
        # --version is eager: it answers before any group would be looked at, so building
        # Typer commands of every group (~0.1 s) would be spent for nothing.
        version_only = group is None and "--version" in args and "--help" not in args \
            and "-h" not in args
        command = command_tree(group, groups=not version_only)
        # With standalone_mode=False, Click returns the code of a `typer.Exit` instead.
        result = command.main(args=args, prog_name="shipyard", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("shipyard: interrupted\n")
        return 130
    except TyperException as exc:
        # Typer vendors Click; its exceptions are only reachable through this public base.
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            # Building the error rendered the help: Rich prints it at once, plain Click
            # keeps it as the message.
            text = exc.format_message()
            if text.strip():
                sys.stdout.write(text + "\n")
            return 2
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        code = getattr(exc, "exit_code", 1)
        hint = ""
        if code == 2 and ctx is not None:
            hint = f" (see '{ctx.command_path} --help')"
        sys.stderr.write(f"shipyard: error: {message}{hint}\n")
        return code
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
