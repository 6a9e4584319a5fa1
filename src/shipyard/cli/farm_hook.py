"""``shipyard farm hook``: the git post-receive hook that requests builds on push, and
sending the requests it kept while the coordinator was unreachable."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shipyard.cli.common import print_json
from shipyard.cli.farm_access import TOKEN_FILE_HELP, secret_token
from shipyard.errors import ShipyardError, UsageError

app = typer.Typer(help="The git push hook that requests builds.", no_args_is_help=True)

@app.command("install")
def hook_install(
    ctx: typer.Context,
    bare: Path = typer.Argument(..., help="The bare git repository."),
    coordinator: str = typer.Option(..., "--coordinator", help="Coordinator URL."),
    token: str = typer.Option(None, "--token", help="A hook (or admin) token (visible in "
                                                    "ps: prefer --token-file)."),
    token_file: Path = typer.Option(None, "--token-file", help=TOKEN_FILE_HELP),
    repo_url: str = typer.Option(None, "--repo-url",
                                 help="URL workers clone from (default: the bare repo's "
                                      "path)."),
    force: bool = typer.Option(False, "--force", help="Replace a foreign post-receive hook."),
) -> None:
    """Install the post-receive hook that requests builds on push (as the repository's
    owner, or as root: the files it writes then belong to the repository's owner)."""
    from shipyard.farm.hook import install

    secret = secret_token(ctx, token, token_file)
    if not secret:
        raise UsageError("the hook needs a hook (or admin) token: --token-file or "
                         "SHIPYARD_FARM_TOKEN")
    hook = install(bare, coordinator, secret, repo_url, force=force)
    sys.stdout.write(f"installed {hook}\n")


@app.command("run")
def hook_run(
    bare: Path = typer.Argument(Path("."), help="The bare repository (git runs the hook "
                                                "inside it)."),
) -> None:
    """The hook body: reads 'old new ref' lines on stdin. Always exits 0."""
    from shipyard.farm.hook import run

    run(bare, sys.stdin, sys.stderr)


@app.command("flush")
def hook_flush(
    bare: Path = typer.Argument(..., help="The bare repository."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Send build requests kept while the coordinator was unreachable."""
    from shipyard.farm.hook import check_bare, flush, load_config, print_report

    repo = check_bare(bare)
    report = flush(repo, load_config(repo))
    if as_json:
        print_json({"sent": report.sent, "kept": report.kept, "rejected": report.rejected,
                    "problem": report.problem})
    else:
        print_report(report, repo, sys.stdout)
        if not report.sent and not report.problem and not report.rejected:
            sys.stdout.write("nothing to send\n")
    if report.problem:
        raise ShipyardError(f"{report.kept} request(s) still kept: {report.problem}")
