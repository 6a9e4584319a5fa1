"""``svc boot`` and ``svc shutdown``: every instance at once, printed as it goes.

Kept apart from :mod:`shipyard.cli.svc` and free of Typer so that ``svc shutdown`` can
run without the CLI framework (see :func:`shipyard.cli.main.main`) through the very same
code as the Typer command: one function, whichever path calls it.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.svc.order import Result


_stdout_gone = False  # its reader went away: see say()


def say(line: str) -> None:
    """One line on stdout, flushed: progress must show while the others still run.

    Without any stdout (started with it closed) the line is dropped, as ``click.echo``
    does, rather than failing half-way through stopping everything. A reader that goes
    away in the middle (``svc shutdown | head -1``) does not stop the run either: the rest
    of the output goes to /dev/null and :func:`run_all` reports the broken pipe at the end.
    """
    if sys.stdout is None or _stdout_gone:
        return
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        drop_stdout()


def drop_stdout() -> None:
    """Send what is still to be written to stdout, buffered or not, to /dev/null: its
    reader is gone, and neither the rest of the run nor the flush at exit may fail on it."""
    global _stdout_gone
    _stdout_gone = True
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(f"shipyard: warning: {line}\n")


def print_json(data: Any) -> None:
    """The format of :func:`shipyard.cli.common.print_json` (which imports Typer)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def run_all(settings: Settings, action: str, json_: bool) -> None:
    """Boot or shut down every instance; raises the summary's error when one failed."""
    from shipyard.svc import boot as boot_mod
    from shipyard.svc.context import Context

    def echo(result: Result) -> None:
        if not json_ and result.outcome is not None:
            say(result.outcome.message)

    run = boot_mod.boot if action == "boot" else boot_mod.shutdown
    summary = run(Context(settings), on_result=echo)
    if json_:
        print_json(summary.to_dict())
    warn(summary.warnings)
    for result in summary.results:
        if result.outcome is not None:
            warn(result.outcome.warnings)
    error = summary.error()
    if error is not None:
        raise error
    if not json_:
        verb = "started or running" if action == "boot" else "stopped"
        say(f"{action}: {len(summary.results)} instance(s) {verb}")
    if _stdout_gone:  # every instance was handled; now end as a broken pipe does
        raise BrokenPipeError(errno.EPIPE, "stdout closed")
