"""``shipyard node``: this host as a member of a fleet: join, agent, status, leave.

Thin: parse, call :mod:`shipyard.node`, print.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import typer

from shipyard.cli.common import print_json, print_table, settings

app = typer.Typer(help="This host in a fleet: join a coordinator, run the node agent.",
                  no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON.")


def _labels(items: list[str]) -> dict[str, str]:
    from shipyard.errors import UsageError

    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--label {item!r}: expected key=value")
        labels[key.strip()] = value.strip()
    return labels


@app.command("join")
def join_cmd(
    ctx: typer.Context,
    coordinator: str = typer.Option(..., "--coordinator", help="Coordinator URL."),
    token: str = typer.Option(..., "--token", envvar="SHIPYARD_NODE_TOKEN",
                              help="One-time join token (farm token create --role node)."),
    name: str = typer.Option(..., "--name", help="This node's name in the fleet."),
    label: list[str] = typer.Option(None, "--label", metavar="KEY=VALUE",
                                    help="A label to select this node by (repeatable)."),
    address: str = typer.Option(None, "--address",
                                help="Address other nodes reach this one at "
                                     "(default: this host's name)."),
    json_: bool = JSON,
) -> None:
    """Join a fleet: make this node's key pairs, exchange the token for a credential."""
    from shipyard.node.identity import join

    identity = join(settings(ctx), coordinator, token, name, _labels(label or []),
                    address or socket.getfqdn())
    if json_:
        print_json(identity.as_dict())
    else:
        typer.echo(f"joined {identity.coordinator} as node {identity.name} "
                   f"(address {identity.address}); next: shipyard node agent")


@app.command("status")
def status_cmd(ctx: typer.Context, json_: bool = JSON) -> None:
    """This node's identity, last known desired revision and its fleet instances."""
    from shipyard.node import execute
    from shipyard.node import identity as ident

    current = settings(ctx)
    me = ident.load_identity(current)
    doc = ident.load_desired(me)
    managed = ident.load_managed(me)
    _found, states = execute.actual(current)
    wanted = {d.service: d for d in (doc.instances if doc else [])}
    rows = [{"service": s, "package": wanted[s].package if s in wanted else "",
             "desired": "running" if s in wanted else "absent",
             "actual": states.get(s, "absent")}
            for s in sorted(set(wanted) | managed)]
    if json_:
        print_json({**me.as_dict(), "revision": doc.revision if doc else None,
                    "instances": rows})
        return
    typer.echo(f"node {me.name} at {me.coordinator} (address {me.address}; labels "
               f"{', '.join(f'{k}={v}' for k, v in sorted(me.labels.items())) or 'none'})")
    typer.echo(f"last known desired revision: {doc.revision if doc else 'none yet'}")
    print_table(None, ["service", "package", "desired", "actual"],
                [(r["service"], r["package"], r["desired"], r["actual"]) for r in rows],
                empty="no fleet instances")


@app.command("leave")
def leave_cmd(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force",
                               help="Forget the identity even if the coordinator refuses."),
) -> None:
    """Leave the fleet: the coordinator revokes this node; instances keep running."""
    from shipyard.node.identity import leave

    me = leave(settings(ctx), force=force)
    typer.echo(f"node {me.name} left {me.coordinator}; its instances keep running "
               "(svc status)")


@app.command("agent")
def agent_cmd(
    ctx: typer.Context,
    wait: float = typer.Option(60.0, "--wait", min=0, max=300,
                               help="Seconds each long poll may park at the coordinator."),
    heartbeat: float = typer.Option(None, "--heartbeat", min=0.1,
                                    help="Seconds between heartbeats (default: as joined)."),
) -> None:
    """Run the node agent in the foreground (for systemd): converge, report, heartbeat."""
    from shipyard.node.agent import run_agent

    raise typer.Exit(run_agent(settings(ctx), wait=wait, heartbeat=heartbeat))


@app.command("init-system")
def init_system_cmd(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("/etc/systemd/system"), "--dir", metavar="DIR",
                                   help="Where to write the unit."),
    json_: bool = JSON,
) -> None:
    """Write a hardened systemd unit (shipyard-node.service) that runs the node agent."""
    from shipyard.node.initsys import agent_unit
    from shipyard.svc.initsys import write

    written = write([agent_unit(settings(ctx))], directory)
    if json_:
        print_json({"written": [str(p) for p in written]})
        return
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo("next: systemctl daemon-reload && systemctl enable --now shipyard-node.service")
    sys.stdout.flush()
