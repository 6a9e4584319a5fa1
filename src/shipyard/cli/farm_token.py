"""``shipyard farm token``: the API tokens workers, push hooks, admins and joining nodes
send; kept (hashed) in the farm database, so they need ``--db``, not a coordinator."""

from __future__ import annotations

import sys

import typer

from shipyard.cli.common import print_json, print_table
from shipyard.cli.farm_access import DB_HELP, farm_db, short_time

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)

@app.command("create")
def token_create(
    ctx: typer.Context,
    role: str = typer.Option(..., "--role",
                             help="worker, hook, admin or node (node: a one-time join token)."),
    name: str = typer.Option(None, "--name", help="A name to recognise it by."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Create a token and print it (the only time it is shown)."""
    from shipyard.farm.tokens import create_token

    secret, info = create_token(farm_db(ctx, db), role, name)
    if as_json:
        print_json({**info.as_dict(), "token": secret})
    else:
        sys.stdout.write(secret + "\n")
        sys.stderr.write(f"token {info.id} ({info.name}, role {info.role}) created; it is "
                         "shown only now\n")


@app.command("list")
def token_list(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List tokens (never their secrets)."""
    from shipyard.farm.tokens import list_tokens

    tokens = list_tokens(farm_db(ctx, db))
    if as_json:
        print_json([t.as_dict() for t in tokens])
        return
    print_table(None, ["id", "name", "role", "created", "last used", "revoked"],
                [(t.id, t.name, t.role, short_time(t.created_at), short_time(t.last_used_at),
                  short_time(t.revoked_at)) for t in tokens], empty="no tokens")


@app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    ident: str = typer.Argument(..., help="Token id or name."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Revoke a token (takes effect within seconds)."""
    from shipyard.farm.tokens import revoke_token

    for info in revoke_token(farm_db(ctx, db), ident):
        sys.stdout.write(f"revoked token {info.id} ({info.name}, role {info.role})\n")
