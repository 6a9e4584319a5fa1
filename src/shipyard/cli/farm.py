"""``shipyard farm``: the coordinator, workers, the push hook, builds, tokens, stale packages.

Thin by design: parse, call :mod:`shipyard.farm`, print. Token and stale commands open the
farm database directly (``--db`` / ``farm.db``); build and worker commands talk to a
coordinator (``--coordinator`` / ``farm.url``, ``--token-file``, ``SHIPYARD_FARM_TOKEN`` or
``farm.token``). Longer than 400 lines because it is one command group with five
sub-groups; each command stays a few lines over the farm's face.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from shipyard.cli import farm_initsys, farm_user
from shipyard.cli.common import (
    log_format_option,
    log_level_option,
    print_json,
    print_table,
    settings,
    start_logging,
)
from shipyard.config import Settings
from shipyard.errors import ShipyardError, UsageError

app = typer.Typer(help="The build farm: coordinator, workers, push hook, builds, tokens.",
                  no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
hook_app = typer.Typer(help="The git push hook that requests builds.", no_args_is_help=True)
build_app = typer.Typer(help="Request, abort, list and follow builds.", no_args_is_help=True)
workers_app = typer.Typer(help="List, pause and resume workers.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(hook_app, name="hook")
app.add_typer(build_app, name="build")
app.add_typer(workers_app, name="workers")
app.add_typer(farm_user.app, name="user")
app.command("init-system")(farm_initsys.init_system)

DB_HELP = "Farm database URL (default: farm.db, else SQLite under the state dir)."
COORD_HELP = "Coordinator URL (default: farm.url, else http://<farm.bind>)."
TOKEN_HELP = "API token (default: farm.token / SHIPYARD_FARM_TOKEN)."
TOKEN_FILE_HELP = ("File holding the token, mode 0600 (unlike --token, never shown by ps); "
                   "default: SHIPYARD_FARM_TOKEN or farm.token.")


def _db(ctx: typer.Context, db: str | None) -> Any:
    from shipyard.farm.db import FarmDB, default_db_url

    return FarmDB(default_db_url(settings(ctx, farm__db=db)))


def _coordinator_url(effective: Settings, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    configured = effective.farm.url.strip()
    return (configured or "http://" + effective.farm.bind).rstrip("/")


def _client(ctx: typer.Context, url: str | None, token: str | None, *,
            need_token: bool = False) -> Any:
    from shipyard.farm.client import FarmClient

    effective = settings(ctx, farm__token=token)
    secret = effective.farm.token.strip()
    if need_token and not secret:
        raise UsageError("this command needs a token: --token or farm.token "
                         "(SHIPYARD_FARM_TOKEN)")
    return FarmClient(_coordinator_url(effective, url), secret or None)


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


def _secret_token(ctx: typer.Context, token: str | None, token_file: Path | None) -> str:
    """--token-file, else --token (with a warning: ps shows it), else farm.token."""
    if token_file is not None:
        if token:
            raise UsageError("give --token-file or --token, not both")
        return read_token_file(token_file)
    if token:
        sys.stderr.write("shipyard: warning: --token is visible to every local user (ps, "
                         "/proc); use --token-file or SHIPYARD_FARM_TOKEN\n")
    return settings(ctx, farm__token=token).farm.token.strip()


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
    secret = _secret_token(ctx, token, token_file)
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
        coordinator=_coordinator_url(effective, coordinator), token=secret, name=worker_name,
        platforms=list(platform) if platform else [default_platform()], capacity=capacity,
        workdir=(workdir or effective.state_dir / "farm-worker" / worker_name).absolute(),
        http_port=http, keep_failed=keep_failed, sandbox=sandbox)
    Worker(options).serve()


# ---------------------------------------------------------------------------------------
# tokens


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: str = typer.Option(..., "--role",
                             help="worker, hook, admin or node (node: a one-time join token)."),
    name: str = typer.Option(None, "--name", help="A name to recognise it by."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Create a token and print it (the only time it is shown)."""
    from shipyard.farm.tokens import create_token

    secret, info = create_token(_db(ctx, db), role, name)
    if as_json:
        print_json({**info.as_dict(), "token": secret})
    else:
        sys.stdout.write(secret + "\n")
        sys.stderr.write(f"token {info.id} ({info.name}, role {info.role}) created; it is "
                         "shown only now\n")


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List tokens (never their secrets)."""
    from shipyard.farm.tokens import list_tokens

    tokens = list_tokens(_db(ctx, db))
    if as_json:
        print_json([t.as_dict() for t in tokens])
        return
    print_table(None, ["id", "name", "role", "created", "last used", "revoked"],
                [(t.id, t.name, t.role, _short(t.created_at), _short(t.last_used_at),
                  _short(t.revoked_at)) for t in tokens], empty="no tokens")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    ident: str = typer.Argument(..., help="Token id or name."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Revoke a token (takes effect within seconds)."""
    from shipyard.farm.tokens import revoke_token

    for info in revoke_token(_db(ctx, db), ident):
        sys.stdout.write(f"revoked token {info.id} ({info.name}, role {info.role})\n")


def _short(moment: Any) -> str:
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if hasattr(moment, "strftime") else str(moment)


# ---------------------------------------------------------------------------------------
# hook


@hook_app.command("install")
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

    secret = _secret_token(ctx, token, token_file)
    if not secret:
        raise UsageError("the hook needs a hook (or admin) token: --token-file or "
                         "SHIPYARD_FARM_TOKEN")
    hook = install(bare, coordinator, secret, repo_url, force=force)
    sys.stdout.write(f"installed {hook}\n")


@hook_app.command("run")
def hook_run(
    bare: Path = typer.Argument(Path("."), help="The bare repository (git runs the hook "
                                                "inside it)."),
) -> None:
    """The hook body: reads 'old new ref' lines on stdin. Always exits 0."""
    from shipyard.farm.hook import run

    run(bare, sys.stdin, sys.stderr)


@hook_app.command("flush")
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


# ---------------------------------------------------------------------------------------
# builds


def _build_row(build: dict[str, Any]) -> tuple[Any, ...]:
    return (build["id"], build["package"], build.get("version") or "",
            (build.get("commit") or "")[:12], build.get("status") or build["state"],
            build.get("worker") or "", build.get("attempt"),
            (build.get("requested_at") or "")[:19].replace("T", " "),
            build.get("reason") or build.get("publish_error") or "")


UNSUCCESSFUL = ("failed", "aborted", "cancelled", "publish-failed")
BUILD_COLUMNS = ["id", "package", "version", "commit", "state", "worker", "attempt",
                 "requested", "reason"]


@build_app.command("request")
def build_request(
    ctx: typer.Context,
    package: str = typer.Argument(..., help="group:id of a package the farm knows."),
    commit: str = typer.Option(None, "--commit", help="Commit to build (default: the newest "
                                                      "pushed one)."),
    force: bool = typer.Option(False, "--force", help="Build even if built or failed."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Request a build of PACKAGE (hook or admin token)."""
    with _client(ctx, coordinator, token, need_token=True) as client:
        answer = client.post(f"/api/packages/{package}/builds",
                             {"commit": commit, "force": force})
    if as_json:
        print_json(answer)
        return
    build = answer["build"]
    if answer["created"]:
        sys.stdout.write(f"build {build['id']} {build['state']}: {build['package']} "
                         f"{build.get('version') or ''} at {build['commit'][:12]}\n")
    else:
        sys.stdout.write(f"no new build: {answer['note'].strip()} (build {build['id']})\n")


@build_app.command("abort")
def build_abort(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Cancel a queued build or kill a running one (admin token)."""
    with _client(ctx, coordinator, token, need_token=True) as client:
        build = client.post(f"/api/builds/{build_id}/abort")
    if build["state"] == "cancelled":
        sys.stdout.write(f"build {build_id} cancelled\n")
    else:
        sys.stdout.write(f"build {build_id}: abort requested; worker {build['worker']} "
                         "kills it\n")


@build_app.command("requeue")
def build_requeue(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id of a finished build."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Build a finished build's commit again (admin token)."""
    with _client(ctx, coordinator, token, need_token=True) as client:
        build = client.post(f"/api/builds/{build_id}/requeue")
    sys.stdout.write(f"build {build['id']} {build['state']}: {build['package']} "
                     f"{build.get('version') or ''}\n")


@build_app.command("list")
def build_list(
    ctx: typer.Context,
    state: str = typer.Option(None, "--state", help="queued, running, succeeded, failed, "
                                                    "aborted, cancelled or publish-failed."),
    package: str = typer.Option(None, "--package", help="group:id"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List builds, newest first (queued ones oldest first)."""
    params = {k: v for k, v in {"state": state, "package": package, "limit": limit}.items()
              if v is not None}
    with _client(ctx, coordinator, None) as client:
        builds = client.get("/api/builds", params=params)
    if as_json:
        print_json(builds)
        return
    print_table(None, BUILD_COLUMNS, [_build_row(b) for b in builds], empty="no builds")


@build_app.command("show")
def build_show(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show one build. Exits 1 when it ended without an installable package (failed,
    aborted, cancelled, or built but refused by the repository: publish-failed)."""
    with _client(ctx, coordinator, None) as client:
        build = client.get(f"/api/builds/{build_id}")
    if as_json:
        print_json(build)
    else:
        skip = {"tail"}
        for key in sorted(build):
            if key in skip:
                continue
            value = build[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            sys.stdout.write(f"{key:18} {'' if value is None else value}\n")
    if build.get("status", build["state"]) in UNSUCCESSFUL:
        raise typer.Exit(1)


@build_app.command("log")
def build_log(
    ctx: typer.Context,
    build_id: int = typer.Argument(..., help="Build id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the "
                                                            "build ends."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
) -> None:
    """Print a build's log (-f: follow it live)."""
    offset = 0
    with _client(ctx, coordinator, None) as client:
        while True:
            chunk = client.get(f"/api/builds/{build_id}/log", params={"offset": offset},
                               retry_for=30.0 if follow else 0.0)
            if chunk["text"]:
                sys.stdout.write(chunk["text"])
                sys.stdout.flush()
            offset = chunk["next_offset"]
            if not follow or chunk["complete"]:
                break
            if not chunk["text"]:
                time.sleep(0.5)


# ---------------------------------------------------------------------------------------
# workers


@workers_app.command("list")
def workers_list(
    ctx: typer.Context,
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List registered workers and what they run."""
    with _client(ctx, coordinator, None) as client:
        workers = client.get("/api/workers")
    if as_json:
        print_json(workers)
        return
    print_table(None, ["name", "status", "platforms", "capacity", "running", "last seen"],
                [(w["name"], w["status"], ",".join(w["platforms"]), w["capacity"],
                  ",".join(str(b) for b in w["running"]),
                  (w["last_seen_at"] or "")[:19].replace("T", " ")) for w in workers],
                empty="no workers")


def _pause(ctx: typer.Context, name: str, coordinator: str | None, token: str | None,
           verb: str) -> None:
    with _client(ctx, coordinator, token, need_token=True) as client:
        view = client.post(f"/api/workers/{name}/{verb}")
    sys.stdout.write(f"worker {view['name']}: {view['status']}\n")


@workers_app.command("pause")
def workers_pause(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Worker name."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Stop handing builds to a worker (running builds finish; admin token)."""
    _pause(ctx, name, coordinator, token, "pause")


@workers_app.command("resume")
def workers_resume(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Worker name."),
    coordinator: str = typer.Option(None, "--coordinator", help=COORD_HELP),
    token: str = typer.Option(None, "--token", help=TOKEN_HELP),
) -> None:
    """Hand builds to a paused worker again (admin token)."""
    _pause(ctx, name, coordinator, token, "resume")


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
    from shipyard.farm.queries import stale as find_stale

    packages = find_stale(_db(ctx, db), days)
    if as_json:
        print_json(packages)
    else:
        print_table(None, ["package", "last success", "version", "days", "head commit"],
                    [(p["name"], (p["last_success_at"] or "never")[:19].replace("T", " "),
                      p["last_success_version"] or "", p["days_since_success"] or "",
                      (p["head_commit"] or "")[:12]) for p in packages],
                    empty=f"no package is older than {days:g} days")
    if packages:
        raise typer.Exit(1)
