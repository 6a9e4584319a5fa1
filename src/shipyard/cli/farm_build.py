"""``shipyard farm build``: request, abort, requeue, list, show and follow builds, through
the coordinator's API (reads anonymous; changes with a hook or admin token)."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from shipyard.cli.common import print_json, print_table
from shipyard.cli.farm_access import COORD_HELP, TOKEN_HELP, farm_client

app = typer.Typer(help="Request, abort, list and follow builds.", no_args_is_help=True)

def _build_row(build: dict[str, Any]) -> tuple[Any, ...]:
    return (build["id"], build["package"], build.get("version") or "",
            (build.get("commit") or "")[:12], build.get("status") or build["state"],
            build.get("worker") or "", build.get("attempt"),
            (build.get("requested_at") or "")[:19].replace("T", " "),
            build.get("reason") or build.get("publish_error") or "")


UNSUCCESSFUL = ("failed", "aborted", "cancelled", "publish-failed")
BUILD_COLUMNS = ["id", "package", "version", "commit", "state", "worker", "attempt",
                 "requested", "reason"]


@app.command("request")
def build_request(
    ctx: typer.Context,
    package: str = typer.Argument(..., help="group:id of a package the farm knows."),
    commit: str = typer.Option(None, "--commit", help="Commit to build (default: the newest "
                                                      "pushed one)."),
    force: bool = typer.Option(False, "--force", help="Build even if built or failed."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Request a build of PACKAGE (hook or admin token)."""
    with farm_client(ctx, coordinator, token, need_token=True) as client:
        answer = client.post(f"/api/packages/{package}/builds",
                             {"commit": commit, "force": force})
    if as_json:
        print_json(answer)
        return
    build = answer["build"]
    if answer["created"]:
        sys.stdout.write(f"build {build['id']} {build['state']}: {build['package']} "
                         f"{build.get('version') or ''} at {build['commit'][:12]}\n")
    else:
        sys.stdout.write(f"no new build: {answer['note'].strip()} (build {build['id']})\n")


@app.command("abort")
def build_abort(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Cancel a queued build or kill a running one (admin token)."""
    with farm_client(ctx, coordinator, token, need_token=True) as client:
        build = client.post(f"/api/builds/{build_id}/abort")
    if build["state"] == "cancelled":
        sys.stdout.write(f"build {build_id} cancelled\n")
    else:
        sys.stdout.write(f"build {build_id}: abort requested; worker {build['worker']} "
                         "kills it\n")


@app.command("requeue")
def build_requeue(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id of a finished build."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Build a finished build's commit again (admin token)."""
    with farm_client(ctx, coordinator, token, need_token=True) as client:
        build = client.post(f"/api/builds/{build_id}/requeue")
    sys.stdout.write(f"build {build['id']} {build['state']}: {build['package']} "
                     f"{build.get('version') or ''}\n")


@app.command("list")
def build_list(
    ctx: typer.Context,
    state: str = typer.Option(None, "--state", help="queued, running, succeeded, failed, "
                                                    "aborted, cancelled or publish-failed."),
    package: str = typer.Option(None, "--package", help="group:id"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List builds, newest first (queued ones oldest first)."""
    params = {k: v for k, v in {"state": state, "package": package, "limit": limit}.items()
              if v is not None}
    with farm_client(ctx, coordinator, None) as client:
        builds = client.get("/api/builds", params=params)
    if as_json:
        print_json(builds)
        return
    print_table(None, BUILD_COLUMNS, [_build_row(b) for b in builds], empty="no builds")


@app.command("show")
def build_show(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show one build. Exits 1 when it ended without an installable package (failed,
    aborted, cancelled, or built but refused by the repository: publish-failed)."""
    with farm_client(ctx, coordinator, None) as client:
        build = client.get(f"/api/builds/{build_id}")
    if as_json:
        print_json(build)
    else:
        skip = {"tail"}
        for key in sorted(build):
            if key in skip:
                continue
            value = build[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            sys.stdout.write(f"{key:18} {'' if value is None else value}\n")
    if build.get("status", build["state"]) in UNSUCCESSFUL:
        raise typer.Exit(1)


@app.command("log")
def build_log(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the "
                                                            "build ends."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
) -> None:
    """Print a build's log (-f: follow it live)."""
    offset = 0
    with farm_client(ctx, coordinator, None) as client:
        while True:
            chunk = client.get(f"/api/builds/{build_id}/log", params={"offset": offset},
                               retry_for=30.0 if follow else 0.0)
            if chunk["text"]:
                sys.stdout.write(chunk["text"])
                sys.stdout.flush()
            offset = chunk["next_offset"]
            if not follow or chunk["complete"]:
                break
            if not chunk["text"]:
                time.sleep(0.5)
