"""The ``shipyard`` command: one Typer app with a group per stage (:mod:`shipyard.cli.app`).

Errors never end in a traceback: a :class:`ShipyardError` becomes ``shipyard: error: ...``
on stderr with its exit code (1 failure, 2 usage), a usage mistake caught by Click exits 2,
and anything unexpected is reported in one line as an internal error unless ``--debug``.

``svc shutdown`` runs while the machine goes down, on hundreds of instances, and importing
Typer with its Click costs about as much as stopping them all: the exact command lines in
:data:`WITHOUT_TYPER` run the command's own code (:mod:`shipyard.cli.svc_all`) directly.
Anything else, an option or ``--help`` included, goes through Typer.
"""

from __future__ import annotations

import errno
import os
import sys

from shipyard.errors import ShipyardError

# Command line -> its --json flag. Root options (--home, --config, --debug) take the Typer
# path; their environment variables are read by load_settings all the same.
WITHOUT_TYPER = {("svc", "shutdown"): False, ("svc", "shutdown", "--json"): True}


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def _without_typer(args: list[str]) -> bool | None:
    """The --json flag when ``args`` may skip Typer, else None."""
    if os.environ.get("_SHIPYARD_COMPLETE"):  # Click's shell-completion request
        return None
    return WITHOUT_TYPER.get(tuple(args))


def _shutdown(json_: bool) -> int:
    """``svc shutdown`` with what Typer's Click main does around a command.

    Ctrl-C exits 130 without a message; a stdout whose reader went away (EPIPE) exits 1,
    and flushing it at exit complains no more. (Click's EOFError case cannot arise: the
    command reads no input.)
    """
    from shipyard.cli.svc_all import drop_stdout, run_all
    from shipyard.config import load_settings

    try:
        run_all(load_settings(), "shutdown", json_)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        drop_stdout()
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        json_ = _without_typer(args)
        if json_ is not None:
            return _shutdown(json_)
        from shipyard.cli.app import run

        return run(args)
    except ShipyardError as exc:
        if _debug_requested(args):
            raise
        sys.stderr.write(f"shipyard: error: {exc.message}\n")
        return exc.exit_code
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


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
