"""``shipyard farm user``: the people who may change things through the farm's web pages.

Users live in the farm database (``--db`` / ``farm.db``), so every coordinator on that
database knows them. Passwords are asked twice on the terminal, or read from the first line
of stdin with ``--password-stdin`` (scripts, tests); never from the command line, where
``ps`` and shell history would show them.
"""

from __future__ import annotations

import sys

import typer

from shipyard.cli.common import print_json, print_table
from shipyard.cli.farm_access import DB_HELP, farm_db, short_time
from shipyard.errors import ShipyardError, UsageError

app = typer.Typer(help="Web users who may force, abort, requeue and pause in the pages.",
                  no_args_is_help=True)

STDIN_HELP = "Read the password from the first line of stdin instead of asking."


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: stdin is empty")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on; use --password-stdin")
    import getpass

    first = getpass.getpass("Password: ")
    second = getpass.getpass("Password again: ")
    if first != second:
        raise UsageError("the two passwords differ; nothing changed")
    return first


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name ([A-Za-z0-9][A-Za-z0-9._@-]*)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=STDIN_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Add a user (the password is asked twice)."""
    from shipyard.web.passwords import check_new_password
    from shipyard.web.users import add_user, check_name, find_user

    check_name(name)
    database = farm_db(ctx, db)
    if find_user(database, name) is not None:  # say so before asking for a password
        raise ShipyardError(f"user {name!r} exists already (use farm user passwd)")
    password = _password(password_stdin)
    check_new_password(password)
    user = add_user(database, name, password)
    sys.stdout.write(f"added user {user.name}\n")


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=STDIN_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Set a user's password; the user's open sessions end."""
    from shipyard.web.users import check_name, find_user, set_password

    check_name(name)
    database = farm_db(ctx, db)
    if find_user(database, name) is None:
        raise ShipyardError(f"no user {name!r}")
    user = set_password(database, name, _password(password_stdin))
    sys.stdout.write(f"changed the password of {user.name}; their sessions ended\n")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List users (never their password hashes)."""
    from shipyard.web.users import list_users

    users = list_users(farm_db(ctx, db))
    if as_json:
        print_json([u.as_dict() for u in users])
        return

    print_table(None, ["name", "created", "last sign-in"],
                [(u.name, short_time(u.created_at), short_time(u.last_signin_at)) for u in users],
                empty="no users")


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Remove a user; their open sessions end at once."""
    from shipyard.web.users import remove_user

    user = remove_user(farm_db(ctx, db), name)
    sys.stdout.write(f"removed user {user.name}\n")
