"""``shipyard svc``: service instances: register, start, stop, status, boot, logs, cleanup.

Thin: parse, call :mod:`shipyard.svc`, print. Library modules are imported inside the
commands so ``shipyard --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shipyard.cli.common import existing, print_json, print_table, settings
from shipyard.cli.svc_all import run_all
from shipyard.cli.svc_all import warn as _warn

app = typer.Typer(
    help="Service instances: register, start and stop, boot order, logs, init integration.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON.")


def _coord(text: str):
    from shipyard.coords import ServiceCoord

    return ServiceCoord.parse(text)


def _context(ctx: typer.Context):
    from shipyard.svc.control import Context

    return Context(settings(ctx))


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@app.command("register")
def register_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC",
                                  help="Service coordinate instance.service.user.cell."),
    params: list[str] = typer.Argument(None, metavar="[-- --param=value ...]",
                                       help="Parameters passed to the start script."),
    package: str = typer.Option(..., "--package", "-p", metavar="GROUP:ID:VERSION",
                                help="The installed package to run."),
    boot: bool = typer.Option(True, "--boot/--no-boot", help="Start at boot (svc boot)."),
    after: list[str] = typer.Option(None, "--after",
                                    help="Start after this instance (repeatable)."),
    user: str = typer.Option(None, "--user", help="Run as this user (root needs --user root)."),
    json_: bool = JSON,
) -> None:
    """Register an instance of an installed service package."""
    from shipyard.node import register

    change = register(settings(ctx), service, package, boot_flag=boot, after=after or [],
                      user=user, params=params or [])
    if json_:
        reg = change.registration
        assert reg is not None
        print_json({"service": str(reg.coordinate), "package": str(reg.package),
                    "user": reg.user, "boot": reg.boot, "after": reg.after,
                    "params": reg.params, "message": change.message,
                    "warnings": change.warnings})
    else:
        typer.echo(change.message)
    _warn(change.warnings)


@app.command("unregister")
def unregister_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC"),
    stop: bool = typer.Option(False, "--stop", help="Stop the instance first if it runs."),
) -> None:
    """Remove an instance from the registry (refused while it runs, unless --stop)."""
    from shipyard.node import unregister

    change = unregister(settings(ctx), service, stop=stop)
    typer.echo(change.message)
    _warn(change.warnings)


def _print_outcome(outcome, json_: bool) -> None:
    if json_:
        print_json(outcome.to_dict())
    else:
        typer.echo(outcome.message)
    _warn(outcome.warnings)


@app.command("start")
def start_cmd(ctx: typer.Context, service: str = typer.Argument(..., metavar="SVC"),
              json_: bool = JSON) -> None:
    """Start an instance: runtime dir, start script or exec, pid check."""
    from shipyard.svc import control

    coordinate = _coord(service)
    _print_outcome(control.start(_context(ctx), coordinate), json_)


@app.command("stop")
def stop_cmd(ctx: typer.Context, service: str = typer.Argument(..., metavar="SVC"),
             json_: bool = JSON) -> None:
    """Stop an instance: stop script, or TERM to its process group, wait, KILL."""
    from shipyard.svc import control

    coordinate = _coord(service)
    _print_outcome(control.stop(_context(ctx), coordinate), json_)


@app.command("restart")
def restart_cmd(ctx: typer.Context, service: str = typer.Argument(..., metavar="SVC"),
                json_: bool = JSON) -> None:
    """Stop then start an instance."""
    from shipyard.svc import control

    coordinate = _coord(service)
    context = _context(ctx)
    stopped = control.stop(context, coordinate)
    started = control.start(context, coordinate)
    if json_:
        print_json({"stop": stopped.to_dict(), "start": started.to_dict()})
    else:
        typer.echo(stopped.message)
        typer.echo(started.message)
    _warn(stopped.warnings + started.warnings)


@app.command("reload")
def reload_cmd(ctx: typer.Context, service: str = typer.Argument(..., metavar="SVC"),
               json_: bool = JSON) -> None:
    """Make a running instance re-read its config ([service] reload: a signal or script)."""
    from shipyard.svc.reload import reload

    _print_outcome(reload(_context(ctx), _coord(service)), json_)


@app.command("upgrade")
def upgrade_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC", help="A registered instance."),
    to: str = typer.Option(None, "--to", metavar="GROUP:ID:VERSION",
                           help="Version to move to (installed from the repository if needed)."),
    latest: bool = typer.Option(False, "--latest",
                                help="The newest version in the configured channel."),
    channel: str = typer.Option(None, "--channel", help="Channel for --latest and install."),
    keep_old: bool = typer.Option(False, "--keep-old",
                                  help="Keep the old version installed after success."),
    grace: float = typer.Option(None, "--grace", min=0,
                                help="Seconds the new version must stay up (svc.start_grace)."),
    json_: bool = JSON,
) -> None:
    """Install another version, restart the instance on it, relink; roll back if it fails."""
    from shipyard.node import upgrade

    effective = settings(ctx, repo__channel=channel, svc__start_grace=grace)
    say = None if json_ else typer.echo
    result = upgrade(effective, service, to=to, latest=latest, keep_old=keep_old, say=say)
    if json_:
        print_json(result.to_dict())
    else:
        typer.echo(result.message)
    _warn(result.warnings)


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, metavar="[SVC]...",
                                         help="Instances to show (default: all)."),
    json_: bool = JSON,
) -> None:
    """Show instances; exit 3 when one asked for is not running, or (without SVC) when
    any instance is dead."""
    from shipyard.svc import control, registry

    context = _context(ctx)
    if services:
        regs = [control.require_registration(context.settings, _coord(s)) for s in services]
    else:
        regs = registry.load_all(context.settings)
    rows = [control.status(context, reg) for reg in regs]
    if json_:
        print_json([row.to_dict() for row in rows])
    else:
        print_table(None, ["service", "package", "state", "pid", "uptime", "boot"],
                    [(r.coordinate, r.package, r.state, r.pid, _uptime(r.uptime),
                      "yes" if r.boot else "no") for r in rows],
                    empty="no service instances registered")
    # As supervisorctl status: a monitoring check of "everything" must see a dead instance;
    # a stopped one is a choice an operator made, so listing all of them does not fail.
    if services and any(row.state != "running" for row in rows):
        raise typer.Exit(3)
    if any(row.state == "dead" for row in rows):
        raise typer.Exit(3)


@app.command("boot")
def boot_cmd(ctx: typer.Context, json_: bool = JSON) -> None:
    """Start every boot = yes instance, in 'after' order, independent ones in parallel."""
    run_all(settings(ctx), "boot", json_)


@app.command("shutdown")
def shutdown_cmd(ctx: typer.Context, json_: bool = JSON) -> None:
    """Stop every running instance, in reverse 'after' order."""
    # Without options also run by shipyard.cli.main without Typer: keep the two the same.
    run_all(settings(ctx), "shutdown", json_)


@app.command("logs")
def logs_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(20, "--lines", "-n", help="Lines per file (-1: all)."),
) -> None:
    """Show the console/ and log/ files of an instance (rotating them first)."""
    from shipyard.errors import ShipyardError
    from shipyard.svc import control, logs, registry

    context = _context(ctx)
    coordinate = _coord(service)
    runtime = context.runtime(coordinate)
    if registry.load(context.settings, coordinate) is None and not runtime.root.exists():
        control.require_registration(context.settings, coordinate)  # unknown: says so
    if not runtime.root.is_dir():
        raise ShipyardError(f"{coordinate} has no runtime dir yet ({runtime.root}): "
                            "it was never started")
    logs.rotate(runtime, context.log_max, context.log_keep)
    files = logs.current_files(runtime)
    out = sys.stdout
    for path in files:
        out.write(f"==> {path} <==\n")
        text = logs.tail(path, lines)
        out.write(text if not text or text.endswith("\n") else text + "\n")
    out.flush()
    if not follow:
        return
    follower = logs.Follower(runtime)
    follower.start_at_end()
    try:
        for chunk in follower.run():
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        return


@app.command("rotate")
def rotate_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, metavar="[SVC]...",
                                         help="Instances (default: all registered)."),
    json_: bool = JSON,
) -> None:
    """Rotate console/ and log/ files larger than svc.log_max_bytes (run from a timer)."""
    from shipyard.svc import logs, registry

    context = _context(ctx)
    coords = [_coord(s) for s in services] if services else [
        r.coordinate for r in registry.load_all(context.settings)]
    rotated = []
    for coordinate in coords:
        rotated += logs.rotate(context.runtime(coordinate), context.log_max, context.log_keep)
    if json_:
        print_json({"rotated": [str(p) for p in rotated]})
    else:
        for path in rotated:
            typer.echo(f"rotated {path}")


@app.command("cleanup")
def cleanup_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC"),
    archive: Path = typer.Option(None, "--archive", metavar="DIR",
                                 help="First pack etc/, log/ and data/ into a dated "
                                      ".tar.gz here (svc restore reads it)."),
    json_: bool = JSON,
) -> None:
    """Remove a stopped instance's runtime dir (refused while it runs)."""
    from shipyard.svc.cleanup import cleanup

    cleaned = cleanup(settings(ctx), service, archive)
    if json_:
        print_json(cleaned.to_dict())
        return
    if cleaned.archive:
        typer.echo(f"archived etc/, log/ and data/ of {cleaned.coordinate} to "
                   f"{cleaned.archive}")
    typer.echo(f"removed the runtime dir of {cleaned.coordinate}")


@app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SVC"),
    archive: Path = typer.Argument(..., metavar="ARCHIVE",
                                   help="A .tar.gz written by svc cleanup --archive."),
    json_: bool = JSON,
) -> None:
    """Put an archive of svc cleanup --archive back (etc/, log/, data/, owned by the
    service user); the instance must be registered, stopped and cleaned up."""
    from shipyard.svc.restore import restore

    restored = restore(settings(ctx), service, existing(archive, "archive"))
    if json_:
        print_json(restored.to_dict())
        return
    parts = ", ".join(f"{p}/" for p in restored.parts)
    typer.echo(f"restored {parts} of {restored.coordinate} ({restored.files} files) from "
               f"{restored.archive}")


@app.command("init-system")
def init_system_cmd(
    ctx: typer.Context,
    systemd: bool = typer.Option(False, "--systemd", help="Write systemd units."),
    sysv: bool = typer.Option(False, "--sysv", help="Write an LSB init script."),
    directory: Path = typer.Option(None, "--dir", metavar="DIR",
                                   help="Where to write (default /etc/systemd/system or "
                                        "/etc/init.d)."),
    json_: bool = JSON,
) -> None:
    """Write the init-system files that run svc boot and svc shutdown."""
    from shipyard.errors import UsageError
    from shipyard.svc import initsys

    if systemd == sysv:
        raise UsageError("choose one of --systemd or --sysv")
    current = settings(ctx)
    if systemd:
        files = initsys.systemd_units(current)
        target = directory or Path("/etc/systemd/system")
    else:
        files = [initsys.sysv_script(current)]
        target = directory or Path("/etc/init.d")
    written = initsys.write(files, target)
    if json_:
        print_json({"written": [str(p) for p in written]})
        return
    for path in written:
        typer.echo(f"wrote {path}")
    if systemd:
        typer.echo("next: systemctl daemon-reload && systemctl enable --now shipyard.service "
                   "shipyard-rotate.timer")
    else:
        typer.echo(f"next: update-rc.d shipyard defaults (and cron '{target}/shipyard rotate')")
