"""``shipyard link``: command group of the link stage."""

from __future__ import annotations

import typer

app = typer.Typer(help="link commands.", no_args_is_help=True)
