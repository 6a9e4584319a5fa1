"""``shipyard farm workers``: the workers registered with a coordinator, and pausing one
(its running builds finish; it gets no new ones until resumed)."""

from __future__ import annotations

import sys

import typer

from shipyard.cli.common import print_json, print_table
from shipyard.cli.farm_access import COORD_HELP, TOKEN_HELP, farm_client

app = typer.Typer(help="List, pause and resume workers.", no_args_is_help=True)

@app.command("list")
def workers_list(
    ctx: typer.Context,
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List registered workers and what they run."""
    with farm_client(ctx, coordinator, None) as client:
        workers = client.get("/api/workers")
    if as_json:
        print_json(workers)
        return
    print_table(None, ["name", "status", "platforms", "capacity", "running", "last seen"],
                [(w["name"], w["status"], ",".join(w["platforms"]), w["capacity"],
                  ",".join(str(b) for b in w["running"]),
                  (w["last_seen_at"] or "")[:19].replace("T", " ")) for w in workers],
                empty="no workers")


def _pause(ctx: typer.Context, name: str, coordinator: str | None, token: str | None,
           verb: str) -> None:
    with farm_client(ctx, coordinator, token, need_token=True) as client:
        view = client.post(f"/api/workers/{name}/{verb}")
    sys.stdout.write(f"worker {view['name']}: {view['status']}\n")


@app.command("pause")
def workers_pause(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Worker name."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Stop handing builds to a worker (running builds finish; admin token)."""
    _pause(ctx, name, coordinator, token, "pause")


@app.command("resume")
def workers_resume(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Worker name."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Hand builds to a paused worker again (admin token)."""
    _pause(ctx, name, coordinator, token, "resume")
