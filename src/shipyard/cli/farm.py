"""``shipyard farm``: command group of the farm stage."""

from __future__ import annotations

import typer

app = typer.Typer(help="farm commands.", no_args_is_help=True)
