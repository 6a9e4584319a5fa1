"""``shipyard repo``: command group of the repo stage."""

from __future__ import annotations

import typer

app = typer.Typer(help="repo commands.", no_args_is_help=True)
