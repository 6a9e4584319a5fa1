"""``shipyard farm``: the coordinator, workers, the push hook, builds, tokens, stale packages.

Thin by design: parse, call :mod:`shipyard.farm`, print. This module holds the group, its
long-running commands (``serve``, ``worker``) and ``stale``; each sub-group is its own
module (``farm_token``, ``farm_hook``, ``farm_build``, ``farm_workers``, ``farm_user``),
and :mod:`.farm_access` says how they reach the database or a coordinator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shipyard.cli import (
    farm_build,
    farm_hook,
    farm_initsys,
    farm_token,
    farm_user,
    farm_workers,
)
from shipyard.cli.common import (
    log_format_option,
    log_level_option,
    print_json,
    print_table,
    settings,
    start_logging,
)
from shipyard.cli.farm_access import (
    COORD_HELP,
    DB_HELP,
    TOKEN_FILE_HELP,
    TOKEN_HELP,
    coordinator_url,
    farm_db,
    read_token_file,
    secret_token,
)
from shipyard.errors import UsageError

app = typer.Typer(help="The build farm: coordinator, workers, push hook, builds, tokens.",
                  no_args_is_help=True)
token_app = farm_token.app
hook_app = farm_hook.app
build_app = farm_build.app
workers_app = farm_workers.app
app.add_typer(token_app, name="token")
app.add_typer(hook_app, name="hook")
app.add_typer(build_app, name="build")
app.add_typer(workers_app, name="workers")
app.add_typer(farm_user.app, name="user")
app.command("init-system")(farm_initsys.init_system)

__all__ = ["COORD_HELP", "DB_HELP", "TOKEN_FILE_HELP", "TOKEN_HELP", "app", "read_token_file"]


# ---------------------------------------------------------------------------------------
# serve / worker


@app.command("serve")
def serve(
    ctx: typer.Context,
    bind: str = typer.Option(None, "--bind", help="HOST:PORT to listen on (farm.bind; "
                                                  "port 0 picks a free one)."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    repo: Path = typer.Option(None, "--repo", help="Repository that receives built "
                                                   "packages (upload + publish)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every HTTP request."),
    no_publish: bool = typer.Option(False, "--no-publish",
                                    help="Show --repo on the pages but neither upload nor "
                                         "publish to it (no signing key needed)."),
    socket_fd: int = typer.Option(None, "--socket-fd", min=0,
                                  help="Serve on this inherited, listening socket instead "
                                       "of binding farm.bind (a supervisor bound it)."),
    log_level: str = log_level_option(),
    log_format: str = log_format_option(),
) -> None:
    """Run the coordinator (FastAPI under Uvicorn; OpenAPI at /docs, metrics at /metrics).
    With --repo it refuses to start without the repository's signing key (see repo keygen)."""
    from shipyard import server
    from shipyard.config import url_password_masked
    from shipyard.farm.db import default_db_url
    from shipyard.logsetup import register_secret

    start_logging(log_level, log_format)
    effective = settings(ctx, farm__bind=bind, farm__db=db)

    register_secret(effective.smtp.password)
    if socket_fd is not None:
        sock, address = server.adopt(socket_fd)
    else:
        sock, address = server.listen(effective.farm.bind)
    url = default_db_url(effective)
    app = server.create_app(effective, url, repo, bind=address, publish=not no_publish)
    instance = app.state.coordinator.instance
    sys.stdout.write(f"shipyard farm: coordinator listening on http://{address} "
                     f"(instance {instance}, database {url_password_masked(url)}"
                     + (f", repository {repo.absolute()}" if repo else "") + ")\n")
    sys.stdout.flush()
    trusted = [str(p) for p in effective.farm.trusted_proxies]
    server.serve(app, sock, access_log=access_log, trusted_proxies=trusted)


@app.command("worker")
def worker(
    ctx: typer.Context,
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
    name: str = typer.Option(None, "--name", help="Worker name (default: the host name)."),
    platform: list[str] = typer.Option(None, "--platform",
                                       help="Platform this worker builds for (repeatable)."),
    capacity: int = typer.Option(1, "--capacity", min=1, max=256,
                                 help="Builds run at the same time."),
    workdir: Path = typer.Option(None, "--workdir",
                                 help="Where builds run (default: <state>/farm-worker/<name>)."),
    http: int = typer.Option(None, "--http", min=1, max=65535,
                             help="Serve a redirect to this worker's page on PORT."),
    keep_failed: bool = typer.Option(False, "--keep-failed",
                                     help="Keep the directories of failed builds."),
    token_file: Path = typer.Option(None, "--token-file", help=TOKEN_FILE_HELP),
    no_sandbox: bool = typer.Option(False, "--no-sandbox",
                                    help="Run builds without the bubblewrap sandbox (with "
                                         "this worker's rights; see the operator guide)."),
    time_limit: int = typer.Option(None, "--build-time-limit", min=0, metavar="SECONDS",
                                   help="Kill a build after this long (farm.build_time_limit,"
                                        " default 7200; 0: no limit)."),
    memory_limit: int = typer.Option(None, "--build-memory-limit", min=0, metavar="MIB",
                                     help="Address space per build process "
                                          "(farm.build_memory_limit, default 8192; 0: none)."),
    log_level: str = log_level_option(),
    log_format: str = log_format_option(),
) -> None:
    """Run a build worker: claim builds from the coordinator and run them (in a sandbox)."""
    from shipyard.farm.sandbox import Sandbox, find_bwrap
    from shipyard.farm.worker import (
        Worker,
        WorkerOptions,
        check_git,
        default_name,
        default_platform,
    )

    start_logging(log_level, log_format)
    secret = secret_token(ctx, token, token_file)
    if not secret:
        raise UsageError("a worker needs a token: --token-file, SHIPYARD_FARM_TOKEN or "
                         "farm.token in a 0600 config file")
    effective = settings(ctx, farm__build_time_limit=time_limit,
                         farm__build_memory_limit=memory_limit)
    from shipyard.logsetup import register_secret

    register_secret(secret)
    check_git()
    sandbox = Sandbox(
        None if no_sandbox else find_bwrap(effective.farm.bwrap),
        time_limit=effective.farm.build_time_limit,
        memory_limit=effective.farm.build_memory_limit,
        # The configuration may hold farm.token: a build must not read it.
        hide=(effective.config_dir.absolute(),
              *((effective.config_file.absolute(),) if effective.config_file else ()),
              *((token_file.absolute(),) if token_file else ())))
    worker_name = name or default_name()
    options = WorkerOptions(
        coordinator=coordinator_url(effective, coordinator), token=secret, name=worker_name,
        platforms=list(platform) if platform else [default_platform()], capacity=capacity,
        workdir=(workdir or effective.state_dir / "farm-worker" / worker_name).absolute(),
        http_port=http, keep_failed=keep_failed, sandbox=sandbox)
    Worker(options).serve()


# ---------------------------------------------------------------------------------------
# stale


@app.command("stale")
def stale(
    ctx: typer.Context,
    days: float = typer.Option(..., "--days", min=0, max=36500, help="Age of the last success."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List packages without a successful build for DAYS days (or never); exit 1 if any."""
    from shipyard.farm.queries import stale_packages

    packages = stale_packages(farm_db(ctx, db), days)
    if as_json:
        print_json([p.model_dump(mode="json") for p in packages])
    else:
        print_table(None, ["package", "last success", "version", "days", "head commit"],
                    [(p.name, (p.last_success_at or "never")[:19].replace("T", " "),
                      p.last_success_version or "", p.days_since_success or "",
                      (p.head_commit or "")[:12]) for p in packages],
                    empty=f"no package is older than {days:g} days")
    if packages:
        raise typer.Exit(1)
