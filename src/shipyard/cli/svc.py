"""``shipyard svc``: command group of the svc stage."""

from __future__ import annotations

import typer

app = typer.Typer(help="svc commands.", no_args_is_help=True)
