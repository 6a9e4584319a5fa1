"""Running the seven steps: a progress line each, a clear verdict when one fails, and a clean
stop whatever happens (instances shut down, processes terminated), on success, failure,
Ctrl-C or SIGTERM alike."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from shipyard.demo.commands import Runner
from shipyard.demo.fleet import homes as fleet_homes
from shipyard.demo.layout import MARKER, Layout, default_root, find_examples, prepare
from shipyard.demo.procs import reap_leftovers
from shipyard.demo.steps import STEPS, Demo
from shipyard.errors import ShipyardError


class StepFailed(ShipyardError):
    """One step of the demo did not reach its outcome."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a closed session, ``kill``) cleans up like Ctrl-C does."""
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _leftovers(layout: Layout, console: Console) -> None:
    """Stop what a demo that never cleaned up left behind in this directory."""
    if not (layout.root / MARKER).exists():
        return
    names = reap_leftovers(layout.process_book)
    for home in (layout.node_home, *fleet_homes(layout.root)):
        if (home / "etc" / "services").is_dir():
            Runner(home, layout.root / "leftovers.log").run(
                "svc", "shutdown", check=False, timeout=120)
    if names:
        console.print(f"stopped what an earlier demo left running: {', '.join(names)}")


def _stop(demo: Demo) -> list[str]:
    notes = []
    # The fleet's agents first, so none starts again what svc shutdown stops.
    demo.procs.stop_named(lambda name: name.startswith("agent-"))
    for home in fleet_homes(demo.layout.root):
        if (home / "etc" / "services").is_dir():
            Runner(home, demo.layout.logs / "commands.log").run(
                "svc", "shutdown", check=False, timeout=120)
    if (demo.layout.node_home / "etc" / "services").is_dir():
        result = demo.node_cli.run("svc", "shutdown", check=False, timeout=120)
        notes.append(result.stdout.strip().splitlines()[-1] if result.returncode == 0 and
                     result.stdout.strip() else f"svc shutdown: {result.stderr.strip()}")
    count = len(demo.procs.running)
    killed = demo.procs.stop_all()
    notes.append(f"stopped {count} processes (coordinator, workers, web server, SMTP sink)"
                 + (f"; had to kill {', '.join(killed)}" if killed else ""))
    return notes


def _run_steps(demo: Demo) -> float:
    console = demo.console
    began = time.monotonic()
    total = len(STEPS)
    for number, (name, title, action) in enumerate(STEPS, 1):
        started = time.monotonic()
        try:
            with console.status(f"[{number}/{total}] {title} ..."):
                lines = action(demo)
        except ShipyardError as exc:
            reason = exc.message
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug in the demo or below: still name the step
            reason = f"internal error: {type(exc).__name__}: {exc}"
        else:
            console.print(f"[green]✓[/green] [{number}/{total}] {escape(title)} "
                          f"[dim]({time.monotonic() - started:.1f}s)[/dim]", highlight=False,
                          soft_wrap=True)
            for line in lines:
                console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)
            continue
        console.print(f"[red]✗[/red] [{number}/{total}] {escape(title)}: failed after "
                      f"{time.monotonic() - started:.1f}s", highlight=False, soft_wrap=True)
        console.print(f"    {escape(reason)}", highlight=False, soft_wrap=True)
        raise StepFailed(f"demo step {number} ({name}) failed: {reason} (logs in "
                         f"{demo.layout.logs})")
    return time.monotonic() - began


def run(*, directory: Path | None, examples: Path | None, wait: bool, verbose: bool,
        console: Console | None = None) -> None:
    # On a pipe (make's log, a test) Rich would assume 80 columns and squeeze the tables.
    console = console or Console(width=None if sys.stdout.isatty() else 132)
    found = find_examples(examples)
    root = (directory or default_root(found)).expanduser().absolute()
    layout = Layout(root, found)
    _leftovers(layout, console)
    prepare(root)
    console.print(f"Shipyard demo in {root} (wiped at the next run)")
    demo = Demo.create(layout, console, verbose)
    with _sigterm_interrupts():
        try:
            elapsed = _run_steps(demo)
            console.print(f"[bold green]all {len(STEPS)} steps done in {elapsed:.1f}s"
                          "[/bold green]")
            if wait:
                console.print("Everything keeps running: open the web UI, try the "
                              "commands in logs/commands.log. Press Ctrl-C to stop it all.")
                with contextlib.suppress(KeyboardInterrupt):  # the normal way to end it
                    while True:
                        signal.pause()
        except KeyboardInterrupt:
            console.print("interrupted: stopping everything")
            raise
        finally:
            with console.status("stopping the instances and the processes ..."):
                for note in _stop(demo):
                    console.print(f"    {escape(note)}", highlight=False)
