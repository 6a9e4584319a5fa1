"""``shipyard farm init-system``: write the farm's systemd units and create their user.

Apart from :mod:`shipyard.cli.farm` so that the group module stays about the farm's
day-to-day commands; the work is :mod:`shipyard.farm.initsys`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli.common import print_json, settings
from shipyard.errors import UsageError

ROLES = ("both", "coordinator", "worker")


def init_system(
    ctx: typer.Context,
    role: str = typer.Option("both", "--role", metavar="ROLE",
                             help="Units to write: coordinator, worker or both."),
    directory: Path = typer.Option(None, "--dir", metavar="DIR",
                                   help="Where to write (default /etc/systemd/system)."),
    user: str = typer.Option("shipyard-farm", "--user", metavar="USER",
                             help="The user both run as; created as a system user if "
                                  "missing."),
    repo: Path = typer.Option(None, "--repo", metavar="DIR",
                              help="Repository the coordinator publishes to (farm serve "
                                   "--repo)."),
    coordinator: str = typer.Option(None, "--coordinator", metavar="URL",
                                    help="Coordinator URL the worker uses (default: "
                                         "farm.url, else http://<farm.bind>)."),
    capacity: int = typer.Option(1, "--capacity", min=1, max=256, metavar="N",
                                 help="Builds the worker runs at the same time."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Write the coordinator's and a worker's systemd units and create their user."""
    from shipyard.farm import initsys
    from shipyard.svc.initsys import write
    from shipyard.svc.users import validate_name

    if role not in ROLES:
        raise UsageError(f"--role {role!r}: expected one of {', '.join(ROLES)}")
    validate_name(user, "--user: ")
    current = settings(ctx)
    plan = initsys.farm_units(current, user=user, coordinator=role != "worker",
                              worker=role != "coordinator", repo=repo,
                              worker_url=coordinator or "", capacity=capacity)
    notes = initsys.prepare(current, plan, user)
    written = write(plan.units, directory or Path("/etc/systemd/system"))
    if as_json:
        print_json({"written": [str(p) for p in written], "user": user,
                    "writable": [str(p) for p in plan.writable],
                    "env_files": [str(p) for p in plan.env_files], "notes": notes})
        return
    for path in written:
        typer.echo(f"wrote {path}")
    for note in notes:
        typer.echo(f"note: {note}")
    names = " ".join(unit.name for unit in plan.units)
    if role != "coordinator":
        worker_env = next(p for p in plan.env_files if p.name == "worker.env")
        typer.echo(f"next: put the worker's token in {worker_env}: SHIPYARD_FARM_TOKEN=$("
                   "shipyard farm token create --role worker --name NAME)")
    typer.echo(f"next: systemctl daemon-reload && systemctl enable --now {names}")
