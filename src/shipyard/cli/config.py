"""``shipyard config``: show the effective settings and where each came from."""

from __future__ import annotations

import typer

from shipyard.cli.common import print_json, print_table, settings
from shipyard.config import masked

app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, json_: bool = typer.Option(False, "--json", help="JSON output."),
         show_secrets: bool = typer.Option(False, "--show-secrets",
                                           help="Print farm.token, smtp.password and database "
                                                "passwords as they are (masked as *** "
                                                "otherwise).")) -> None:
    """Print every setting, its value and where it came from (secrets masked)."""
    current = settings(ctx)
    rows = [(key, value if show_secrets else masked(key, value), source)
            for key, value, source in current.explain()]
    if json_:
        print_json({
            "config_file": str(current.config_file) if current.config_file else None,
            "settings": {key: {"value": value, "source": source}
                         for key, value, source in rows},
        })
        return
    print_table(f"config file: {current.config_file or '(none)'}",
                ["setting", "value", "source"],
                [(k, ", ".join(map(str, v)) if isinstance(v, list) else v, s)
                 for k, v, s in rows])
