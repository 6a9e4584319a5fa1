"""``shipyard link``: reconcile, list, disable/enable pairs, pin an announced host name."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import typer

from shipyard.cli.common import (
    console,
    err_console,
    print_json,
    print_table,
    settings,
    show_progress,
)
from shipyard.errors import ShipyardError

if TYPE_CHECKING:  # the engine is imported by the commands that use it: a fast --help
    from shipyard.link.reconcile import Outcome, Report

app = typer.Typer(
    help="Links between announcing instances (transports) and accepting ones (servers).",
    no_args_is_help=True,
)

_SHOWN = ("applied", "removed", "failed", "dropped", "pending")


@contextlib.contextmanager
def _spinner(text: str) -> Iterator[None]:
    if show_progress():
        with console().status(text):
            yield
    else:
        yield


def _print_report(report: Report, as_json: bool,
                  concern: Callable[[Outcome], bool] | None = None) -> None:
    """Print the report; fail when a pair failed (only pairs of ``concern`` if given)."""
    for warning in report.warnings:
        err_console().print(f"shipyard: warning: {warning}")
    if as_json:
        print_json(report.to_json())
    else:
        rows = [(o.interface, o.announcer, o.acceptor or "-", o.action, o.error or "")
                for o in report.outcomes if o.action in _SHOWN]
        if rows:
            print_table(None, ["interface", "announcer", "acceptor", "action", "error"], rows)
        for problem in report.problems:
            console().print(f"problem: {problem}", markup=False, highlight=False)
        counts = report.counts()
        summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "no links"
        console().print(
            f"{summary} ({report.announce_runs} announce and {report.accept_runs} accept "
            f"adapter runs, {report.seconds:.2f}s)", markup=False, highlight=False)
    if concern is not None:
        mine = [o for o in report.failed if concern(o)]
        others = len(report.failed) - len(mine) + len(report.problems)
        if others:
            err_console().print(f"shipyard: warning: {others} other link problem(s); see "
                              "'shipyard link list'", markup=False, highlight=False)
        if mine:
            raise ShipyardError(f"{mine[0].interface} {mine[0].announcer} -> "
                                f"{mine[0].acceptor}: {mine[0].error}")
        return
    if not report.ok:
        failed = len(report.failed) + len(report.problems)
        raise ShipyardError(f"{failed} link problem(s); see 'shipyard link list'")


def _pair(announcer: str, acceptor: str) -> Callable[[Outcome], bool]:
    return lambda o: o.announcer == announcer and o.acceptor == acceptor


@app.command("reconcile")
def reconcile_cmd(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force",
                               help="Ask every announcer and re-apply every pair (re-sync)."),
    wait: float = typer.Option(300.0, "--wait", min=0,
                               help="Seconds to wait for a reconcile already running."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Make everything good: link every announcer to every acceptor of its interface."""
    from shipyard.link.reconcile import reconcile

    cfg = settings(ctx)
    with _spinner("reconciling links"):
        report = reconcile(cfg, force=force, lock_timeout=wait)
    _print_report(report, as_json)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every pair: interface, announcer, acceptor, state, since, last error, and what the
    accept adapter last printed (with the reload or restart that followed)."""
    from shipyard.link import admin

    rows = admin.rows(settings(ctx))
    if as_json:
        print_json({"links": rows})
        return
    print_table(None, ["interface", "announcer", "acceptor", "state", "since", "last error",
                       "adapter said"],
                [(r["interface"] or "*", r["announcer"], r["acceptor"] or "-", r["state"],
                  r["since"], r["error"] or "",
                  "; ".join(x for x in (r["said"], r["change"]) if x))
                 for r in rows], empty="no links")


@app.command("disable")
def disable_cmd(
    ctx: typer.Context,
    announcer: str = typer.Argument(..., help="Service coordinate of the announcer."),
    acceptor: str = typer.Argument(..., help="Service coordinate of the acceptor."),
    reason: str = typer.Option("", "--reason", help="Why; shown by 'link list'."),
    no_reconcile: bool = typer.Option(False, "--no-reconcile",
                                      help="Only record it; the next reconcile removes it."),
    as_json: bool = typer.Option(False, "--json", help="Print the reconcile report as JSON."),
) -> None:
    """Never link ANNOUNCER to ACCEPTOR (and undo the link now)."""
    from shipyard.link import admin

    cfg = settings(ctx)
    with _spinner("disabling"):
        report = admin.disable(cfg, announcer, acceptor, reason, run=not no_reconcile)
    if report is None:
        console().print(f"disabled {announcer} -> {acceptor}", markup=False, highlight=False)
        return
    _print_report(report, as_json, _pair(announcer, acceptor))


@app.command("enable")
def enable_cmd(
    ctx: typer.Context,
    announcer: str = typer.Argument(..., help="Service coordinate of the announcer."),
    acceptor: str = typer.Argument(..., help="Service coordinate of the acceptor."),
    no_reconcile: bool = typer.Option(False, "--no-reconcile",
                                      help="Only record it; the next reconcile links it."),
    as_json: bool = typer.Option(False, "--json", help="Print the reconcile report as JSON."),
) -> None:
    """Allow a disabled pair again (and link it now)."""
    from shipyard.link import admin

    cfg = settings(ctx)
    with _spinner("enabling"):
        report = admin.enable(cfg, announcer, acceptor, run=not no_reconcile)
    if report is None:
        console().print(f"enabled {announcer} -> {acceptor}", markup=False, highlight=False)
        return
    _print_report(report, as_json, _pair(announcer, acceptor))


@app.command("hostname")
def hostname_cmd(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Service coordinate of the announcer."),
    host: str = typer.Argument(None, help="Host name to announce instead of <prefix>.<fqdn>."),
    interface: str = typer.Option(None, "--interface",
                                  help="Which interface, when it announces several."),
    reset: bool = typer.Option(False, "--reset", help="Go back to <prefix>.<fqdn>."),
    as_json: bool = typer.Option(False, "--json", help="Print the reconcile report as JSON."),
) -> None:
    """Pin the host name an instance announces (kept across re-registration)."""
    from shipyard.errors import UsageError
    from shipyard.link import admin

    if (host is None) == (not reset):
        raise UsageError("give either a HOST or --reset")
    cfg = settings(ctx)
    new_host, report = admin.set_hostname(cfg, instance, None if reset else host, interface)
    if not as_json:
        console().print(f"{instance} announces {new_host}", markup=False, highlight=False)
    if report is not None:
        _print_report(report, as_json, lambda o: o.announcer == instance)
