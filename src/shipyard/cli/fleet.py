"""``shipyard fleet``: the operator's view of the fleet: nodes, assignments, status, links.

Every command talks to the coordinator's fleet API (``--coordinator`` / ``farm.url``) with
an admin token (``--token`` / ``farm.token``). Thin: parse, call, print.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from shipyard.cli.common import print_json, print_table, settings

app = typer.Typer(help="The fleet, as the operator sees it: nodes, assignments, status, links.",
                  no_args_is_help=True)
links_app = typer.Typer(help="Link pairs across the fleet.", invoke_without_command=True)
app.add_typer(links_app, name="links")

JSON = typer.Option(False, "--json", help="Print JSON.")
COORD = typer.Option(None, "--coordinator", help="Coordinator URL (default: farm.url, "
                                                 "else http://<farm.bind>).")
TOKEN = typer.Option(None, "--token", help="Admin token (default: farm.token).")


def _client(ctx: typer.Context, url: str | None, token: str | None) -> Any:
    from shipyard.errors import UsageError
    from shipyard.node.client import FleetClient

    effective = settings(ctx, farm__token=token)
    secret = str(effective.get("farm.token") or "").strip()
    if not secret:
        raise UsageError("fleet commands need an admin token: --token or farm.token "
                         "(SHIPYARD_FARM_TOKEN)")
    if not url:
        url = str(effective.get("farm.url") or "").strip() or \
            "http://" + str(effective.get("farm.bind"))
    return FleetClient(url, secret)


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return ""
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _model(cls: Any, **fields: Any) -> Any:
    """A wire model from command-line values; a bad value is one line, naming the option."""
    from pydantic import ValidationError

    from shipyard.coords import PackageCoord, ServiceCoord
    from shipyard.errors import UsageError

    for key in ("service", "announcer", "acceptor"):
        if key in fields:
            ServiceCoord.parse(fields[key], where="SVC: " if key == "service" else f"{key}: ")
    if "package" in fields:
        PackageCoord.parse(fields["package"], require_version=True, where="--package: ")
    try:
        return cls(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ()))
        raise UsageError(f"{where}: {error.get('msg')} (got {error.get('input')!r})") \
            from None


def _selectors(items: list[str]) -> list[str]:
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


@app.command("nodes")
def nodes_cmd(ctx: typer.Context, coordinator: str = COORD, token: str = TOKEN,
              json_: bool = JSON) -> None:
    """Nodes: labels, address, agent version, last seen, lease state, revision applied."""
    with _client(ctx, coordinator, token) as client:
        found = client.nodes()
    if json_:
        print_json([n.model_dump(mode="json") for n in found])
        return
    print_table(None, ["node", "labels", "address", "agent", "last seen", "lease", "revision"],
                [(n.name, ",".join(f"{k}={v}" for k, v in sorted(n.labels.items())),
                  n.address, n.agent_version, _ago(n.last_seen), n.lease_state,
                  n.revision_applied) for n in found], empty="no nodes have joined")


@app.command("revoke")
def revoke_cmd(ctx: typer.Context, node: str = typer.Argument(..., metavar="NODE"),
               coordinator: str = COORD, token: str = TOKEN) -> None:
    """Revoke a node's credential: refused at once from now on."""
    with _client(ctx, coordinator, token) as client:
        answer = client.revoke(node)
    typer.echo(f"{'; '.join(answer.changed)} (revision {answer.revision})")


@app.command("assign")
def assign_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC", help="Service coordinate."),
    params: list[str] = typer.Argument(None, metavar="[-- --param=value ...]",
                                       help="Parameters passed to the start script."),
    package: str = typer.Option(..., "--package", "-p", metavar="GROUP:ID:VERSION",
                                help="Package to run (must be in the repository)."),
    nodes: list[str] = typer.Option(..., "--nodes", metavar="SELECTOR",
                                    help="Node names or label=value, comma-separated or "
                                         "repeated."),
    boot: bool = typer.Option(True, "--boot/--no-boot", help="Start at boot on the nodes."),
    coordinator: str = COORD, token: str = TOKEN, json_: bool = JSON,
) -> None:
    """Run SVC from a package on the selected nodes."""
    from shipyard.formats.fleet import AssignRequest

    body = _model(AssignRequest, service=service, package=package, nodes=_selectors(nodes),
                  boot=boot, params=params or [])
    with _client(ctx, coordinator, token) as client:
        answer = client.assign(body)
    _print_change(answer, json_, f"{service} is assigned as asked already")


@app.command("unassign")
def unassign_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC"),
    nodes: list[str] = typer.Option(None, "--nodes", metavar="SELECTOR",
                                    help="Only on these nodes (default: everywhere)."),
    coordinator: str = COORD, token: str = TOKEN, json_: bool = JSON,
) -> None:
    """Stop running SVC on the selected nodes (their agents stop and unregister it)."""
    from shipyard.formats.fleet import UnassignRequest

    body = _model(UnassignRequest, service=service, nodes=_selectors(nodes or []))
    with _client(ctx, coordinator, token) as client:
        answer = client.unassign(body)
    _print_change(answer, json_, "nothing changed")


def _print_change(answer: Any, json_: bool, nothing: str) -> None:
    if json_:
        print_json(answer.model_dump(mode="json"))
        return
    for line in answer.changed or [nothing]:
        typer.echo(line)
    typer.echo(f"fleet revision {answer.revision}")


@app.command("status")
def status_cmd(ctx: typer.Context, coordinator: str = COORD, token: str = TOKEN,
               json_: bool = JSON) -> None:
    """Every instance across the fleet: desired, actual, since when, last error."""
    with _client(ctx, coordinator, token) as client:
        status = client.status()
    if json_:
        print_json(status.model_dump(mode="json"))
        return
    print_table(f"fleet revision {status.revision}",
                ["node", "instance", "package", "desired", "actual", "since", "last error"],
                [(r.node, r.instance, r.package, r.desired, r.actual, _ago(r.since),
                  r.last_error) for r in status.rows], empty="nothing assigned")


@links_app.callback()
def links_cmd(ctx: typer.Context, coordinator: str = COORD, token: str = TOKEN,
              json_: bool = JSON) -> None:
    """Every link pair across the fleet with its state and last error."""
    if ctx.invoked_subcommand is not None:
        return
    with _client(ctx, coordinator, token) as client:
        pairs = client.links()
    if json_:
        print_json([p.model_dump(mode="json") for p in pairs])
        return
    print_table(None, ["announcer", "on", "acceptor", "on", "interface", "state", "last error"],
                [(p.announcer, p.announcer_node, p.acceptor, p.acceptor_node, p.interface,
                  p.state + (" (disabled)" if p.disabled and p.state != "disabled" else ""),
                  p.last_error) for p in pairs], empty="no link pairs")


def _toggle(ctx: typer.Context, announcer: str, acceptor: str, enabled: bool,
            coordinator: str | None, token: str | None) -> None:
    from shipyard.formats.fleet import LinkPairRequest

    with _client(ctx, coordinator, token) as client:
        answer = client.set_pair(_model(LinkPairRequest, announcer=announcer,
                                        acceptor=acceptor), enabled)
    verb = "enabled" if enabled else "disabled"
    _print_change(answer, False, f"{announcer} -> {acceptor} is {verb} already")


@links_app.command("disable")
def disable_cmd(ctx: typer.Context, announcer: str = typer.Argument(..., metavar="A"),
                acceptor: str = typer.Argument(..., metavar="B"),
                coordinator: str = COORD, token: str = TOKEN) -> None:
    """Disable the pair (announcer A, acceptor B) across the fleet."""
    _toggle(ctx, announcer, acceptor, False, coordinator, token)


@links_app.command("enable")
def enable_cmd(ctx: typer.Context, announcer: str = typer.Argument(..., metavar="A"),
               acceptor: str = typer.Argument(..., metavar="B"),
               coordinator: str = COORD, token: str = TOKEN) -> None:
    """Enable a pair disabled before."""
    _toggle(ctx, announcer, acceptor, True, coordinator, token)
