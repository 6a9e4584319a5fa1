"""How ``shipyard farm`` commands reach the farm: the database (``--db`` / ``farm.db``) for
tokens, users and stale packages, a coordinator (``--coordinator`` / ``farm.url``) for
builds and workers, and the token they send (``--token-file``, ``SHIPYARD_FARM_TOKEN``,
``farm.token``, or ``--token`` with a warning: ``ps`` shows it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from shipyard.cli.common import settings
from shipyard.config import Settings
from shipyard.errors import UsageError

DB_HELP = "Farm database URL (default: farm.db, else SQLite under the state dir)."
COORD_HELP = "Coordinator URL (default: farm.url, else http://<farm.bind>)."
TOKEN_HELP = "API token (default: farm.token / SHIPYARD_FARM_TOKEN)."
TOKEN_FILE_HELP = ("File holding the token, mode 0600 (unlike --token, never shown by ps); "
                   "default: SHIPYARD_FARM_TOKEN or farm.token.")


def farm_db(ctx: typer.Context, db: str | None) -> Any:
    from shipyard.farm.db import FarmDB, default_db_url

    return FarmDB(default_db_url(settings(ctx, farm__db=db)))


def coordinator_url(effective: Settings, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    configured = effective.farm.url.strip()
    return (configured or "http://" + effective.farm.bind).rstrip("/")


def farm_client(ctx: typer.Context, url: str | None, token: str | None, *,
            need_token: bool = False) -> Any:
    from shipyard.farm.client import FarmClient

    effective = settings(ctx, farm__token=token)
    secret = effective.farm.token.strip()
    if need_token and not secret:
        raise UsageError("this command needs a token: --token or farm.token "
                         "(SHIPYARD_FARM_TOKEN)")
    return FarmClient(coordinator_url(effective, url), secret or None)


def read_token_file(path: Path) -> str:
    """The token in ``path``, refusing a file other users may read (like ssh its keys)."""
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"--token-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--token-file {path}: not a text file") from None
    if info.st_mode & 0o077:
        raise UsageError(f"--token-file {path} is readable by other users (mode "
                         f"{info.st_mode & 0o777:04o}): chmod 600 {path}")
    if not text or len(text.split()) != 1:
        raise UsageError(f"--token-file {path}: expected one token on one line")
    return text


def secret_token(ctx: typer.Context, token: str | None, token_file: Path | None) -> str:
    """--token-file, else --token (with a warning: ps shows it), else farm.token."""
    if token_file is not None:
        if token:
            raise UsageError("give --token-file or --token, not both")
        return read_token_file(token_file)
    if token:
        sys.stderr.write("shipyard: warning: --token is visible to every local user (ps, "
                         "/proc); use --token-file or SHIPYARD_FARM_TOKEN\n")
    return settings(ctx, farm__token=token).farm.token.strip()


def short_time(moment: Any) -> str:
    """A moment from the farm database as a table shows it (to the second; "" for none)."""
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if hasattr(moment, "strftime") else str(moment)
