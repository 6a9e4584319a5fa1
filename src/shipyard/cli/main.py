"""The ``shipyard`` command: one Typer app with a group per stage.

Errors never end in a traceback: a :class:`ShipyardError` becomes ``shipyard: error: ...``
on stderr with its exit code (1 failure, 2 usage), a usage mistake caught by Click exits 2,
and anything unexpected is reported in one line as an internal error unless ``--debug``.

Start-up is part of every command's cost (``svc shutdown`` of 200 instances spends more
time importing than stopping), so only the group named on the command line is imported
and attached; ``shipyard --help``, an unknown group and the reference generator get them
all (:func:`build_app`).
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.exceptions import TyperException

from shipyard import __version__
from shipyard.cli.common import State
from shipyard.errors import ShipyardError

# Group name -> module holding its ``app``, in the order ``--help`` lists them.
GROUPS = {
    "pkg": "shipyard.cli.pkg",
    "repo": "shipyard.cli.repo",
    "svc": "shipyard.cli.svc",
    "link": "shipyard.cli.link",
    "farm": "shipyard.cli.farm",
    "config": "shipyard.cli.config",
}
DEMO_HELP = "Run the whole pipeline on this machine, end to end."
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


def build_app(group: str | None = None) -> typer.Typer:
    """The command tree: every group, or only ``group`` when it names one."""
    app = typer.Typer(
        name="shipyard",
        help="From a git push to running, wired service instances.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    known = group in GROUPS or group == "demo"
    for name, module in GROUPS.items():
        if not known or name == group:
            app.add_typer(importlib.import_module(module).app, name=name)
    if not known or group == "demo":
        from shipyard.cli import demo as demo_cmd

        app.command("demo", help=DEMO_HELP)(demo_cmd.demo)
    return app


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        app = build_app(requested_group(args))
        # With standalone_mode=False, Click returns the code of a `typer.Exit` instead.
        result = app(args=args, prog_name="shipyard", standalone_mode=False)
    except ShipyardError as exc:
        if _debug_requested(args):
            raise
        sys.stderr.write(f"shipyard: error: {exc.message}\n")
        return exc.exit_code
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
    except KeyboardInterrupt:
        sys.stderr.write("shipyard: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line unless --debug
        if _debug_requested(args):
            raise
        sys.stderr.write(f"shipyard: internal error: {type(exc).__name__}: {exc} "
                         "(run with --debug for a traceback)\n")
        return 1
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
