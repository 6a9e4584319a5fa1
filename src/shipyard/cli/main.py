"""The ``shipyard`` command: one Typer app with a group per stage.

Errors never end in a traceback: a :class:`ShipyardError` becomes ``shipyard: error: ...``
on stderr with its exit code (1 failure, 2 usage), a usage mistake caught by Click exits 2,
and anything unexpected is reported in one line as an internal error unless ``--debug``.
"""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from shipyard import __version__
from shipyard.cli import config as config_cmd
from shipyard.cli import demo as demo_cmd
from shipyard.cli import farm as farm_cmd
from shipyard.cli import link as link_cmd
from shipyard.cli import pkg as pkg_cmd
from shipyard.cli import repo as repo_cmd
from shipyard.cli import svc as svc_cmd
from shipyard.cli.common import State
from shipyard.errors import ShipyardError

app = typer.Typer(
    name="shipyard",
    help="From a git push to running, wired service instances.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
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


app.add_typer(pkg_cmd.app, name="pkg")
app.add_typer(repo_cmd.app, name="repo")
app.add_typer(svc_cmd.app, name="svc")
app.add_typer(link_cmd.app, name="link")
app.add_typer(farm_cmd.app, name="farm")
app.add_typer(config_cmd.app, name="config")
app.command("demo", help="Run the whole pipeline on this machine, end to end.")(demo_cmd.demo)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
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
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")
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
