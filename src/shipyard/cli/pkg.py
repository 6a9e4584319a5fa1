"""``shipyard pkg``: command group of the pkg stage."""

from __future__ import annotations

import typer

app = typer.Typer(help="pkg commands.", no_args_is_help=True)
