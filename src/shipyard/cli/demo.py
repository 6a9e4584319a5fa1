"""``shipyard demo``: the whole pipeline on this machine, end to end (issue 7).

Thin: parse, hand over to :mod:`shipyard.demo.runner`, which prints a progress line per
step and raises a one-line error naming the step that failed.
"""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    ctx: typer.Context,
    no_wait: bool = typer.Option(False, "--no-wait",
                                 help="Exit after checking every step instead of running "
                                      "until Ctrl-C."),
    directory: Path = typer.Option(None, "--dir", metavar="DIR",
                                   help="Where the demo lives (default: .demo in the "
                                        "checkout); wiped at the start."),
    examples: Path = typer.Option(None, "--examples", metavar="DIR",
                                  help="The examples/ directory to build (default: the "
                                       "checkout's)."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Print every command the demo runs."),
) -> None:
    """Run the whole pipeline on this machine, end to end.

    Builds the examples on a local farm (coordinator, two workers), publishes them to a
    signed repository served over HTTP, installs, runs and links them on a node, upgrades a
    transport, shows a failing build and its mail, joins two fleet nodes (own homes and
    agents on 127.0.1.2 and 127.0.1.3) and links a transport on one to the chat server on
    the other through the coordinator, prints a summary, then keeps everything
    running until Ctrl-C (or stops at once with --no-wait).
    """
    from shipyard.demo.runner import run

    run(directory=directory, examples=examples, wait=not no_wait, verbose=verbose)
