"""``shipyard demo``: the whole pipeline on this machine (issue 7)."""

from __future__ import annotations

import typer

from shipyard.errors import ShipyardError


def demo(ctx: typer.Context) -> None:
    """Run the whole pipeline on this machine, end to end."""
    raise ShipyardError("the end-to-end demo is not built yet (issue 7)")
