"""``shipyard repo``: create, fill and publish a package repository.

Thin: every verb parses its options, calls :mod:`shipyard.repo` and prints. ``--repo``
defaults to the ``repo.dir`` setting; ``--db`` overrides the database ``repo.ini`` names.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer

from shipyard.cli.common import existing, print_json, print_table, settings
from shipyard.errors import ShipyardError

app = typer.Typer(help="Create, fill and publish a signed package repository.",
                  no_args_is_help=True)

REPO_OPT = typer.Option(None, "--repo", help="Repository directory (default: repo.dir).")
DB_OPT = typer.Option(None, "--db", help="Database URL (default: what repo.ini says).")
JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def _repo_dir(ctx: typer.Context, repo: str | None):  # type: ignore[no-untyped-def]
    from shipyard.repo.layout import resolve_repo_dir

    if repo is not None:
        existing(repo, "--repo", kind="dir")  # missing path: exit 2 (exit-codes.md)
    return resolve_repo_dir(settings(ctx), repo)


@app.command("init")
def init(
    ctx: typer.Context,
    directory: str = typer.Argument(..., help="New (or empty) repository directory."),
    channel: list[str] = typer.Option(
        None, "--channel", help="NAME=PRIORITY, repeatable (default: stable=1 security=0). "
        "Priority 0 channels are published first, in a fast-track pass of their own."),
    default_channel: str = typer.Option(None, "--default-channel",
                                        help="Channel uploads go to (default: stable)."),
    db: str = DB_OPT,
    json_: bool = JSON_OPT,
) -> None:
    """Create the repository layout, repo.ini and the database."""
    from shipyard.repo.layout import DEFAULT_CHANNELS, init_repository, parse_channel_specs

    current = settings(ctx, repo__db=db)
    channels = parse_channel_specs(channel) if channel else dict(DEFAULT_CHANNELS)
    init_repository(
        directory, channels, signing_key=current.path("repo.signing_key"),
        db_url=current.get("repo.db") or "",
        keep_generations=int(current.get("repo.keep_generations")),
        valid_days=int(current.get("repo.valid_days")), default_channel=default_channel,
    )
    from pathlib import Path

    root = Path(directory).expanduser().absolute()
    if json_:
        print_json({"repository": str(root), "channels": channels})
        return
    listed = ", ".join(f"{name}={prio}" for name, prio in channels.items())
    typer.echo(f"initialised repository {root} (channels {listed})")
    typer.echo("serve only pool/, generations/ and current over HTTP")


@app.command("keygen")
def keygen(
    ctx: typer.Context,
    out: str = typer.Option(None, "--out", help="Private key path (default: the signing key "
                            "repo.ini names, else repo.signing_key); the public key is PATH.pub."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key."),
    repo: str = REPO_OPT,
    json_: bool = JSON_OPT,
) -> None:
    """Create the Ed25519 key pair the publisher signs with (private key 0600)."""
    from pathlib import Path

    from shipyard.repo.keys import keygen as make_key
    from shipyard.repo.keys import signing_key_path

    path = Path(out) if out else signing_key_path(settings(ctx), _repo_dir(ctx, repo))
    key = make_key(path, force=force)
    if json_:
        print_json({"private_key": str(key.private_path), "public_key": str(key.public_path),
                    "key_id": key.key_id})
        return
    typer.echo(f"public key: {key.public_path}")
    typer.echo(f"key id: {key.key_id}")
    typer.echo(f"private key: {key.private_path} (mode 0600; keep it off the web server)")


@app.command("upload")
def upload(
    ctx: typer.Context,
    archive: str = typer.Argument(..., help="Package archive <id>-<version>.tar.gz|zst."),
    channel: str = typer.Option(None, "--channel", help="Channel (default: repo.ini's "
                                "default_channel)."),
    repo: str = REPO_OPT,
    db: str = DB_OPT,
    json_: bool = JSON_OPT,
) -> None:
    """Check an archive and put it into the accepted queue for the next publisher run."""
    from shipyard.repo.layout import RepoConfig
    from shipyard.repo.upload import upload as do_upload

    current = settings(ctx)
    root = _repo_dir(ctx, repo)
    existing(archive, "package archive")
    coord = do_upload(current, root, archive, channel, db_url=db)
    target = channel or RepoConfig.load(root / "repo.ini").default_channel
    if json_:
        print_json({"coordinate": str(coord), "channel": target, "repository": str(root)})
        return
    typer.echo(f"queued {coord} for {target} (published by the next 'shipyard repo publish')")


@app.command("publish")
def publish(
    ctx: typer.Context,
    repo: str = REPO_OPT,
    db: str = DB_OPT,
    unsigned: bool = typer.Option(False, "--unsigned", help="Publish without a signature "
                                  "(nodes configured with a key will refuse it)."),
    all_channels: bool = typer.Option(False, "--all", help="Re-render every channel's "
                                      "index, not only the dirty ones."),
    wait: float = typer.Option(600.0, "--wait", help="Seconds to wait for a running "
                               "publisher to finish."),
    json_: bool = JSON_OPT,
) -> None:
    """The publisher run: queue, fast-track pass, normal pass, hooks, flip, prune."""
    from shipyard.repo.publish import publish as do_publish

    result = do_publish(settings(ctx), _repo_dir(ctx, repo), unsigned=unsigned,
                        all_channels=all_channels, db_url=db, lock_timeout=wait)
    for item in result.rejected:
        sys.stderr.write(f"shipyard: warning: rejected {item['upload']}: {item['reason']} "
                         f"(kept in {item['kept']})\n")
    if json_:
        print_json(result.to_dict())
        return
    for note in result.recovered:
        typer.echo(f"recovered: {note}")
    for item in result.accepted:
        typer.echo(f"accepted {item['coordinate']} into {item['channel']}")
    for item in result.unchanged:
        typer.echo(f"unchanged {item['coordinate']} (same bytes already in the pool)")
    for p in result.passes:
        what = ", ".join(p.channels) if p.channels else "no channel changed; release re-signed"
        typer.echo(f"published generation {p.serial} (priority {p.priority}: {what})")
    if not result.passes:
        typer.echo("nothing to publish" + (f"; current is generation {result.serial}"
                                           if result.serial else ""))
    if result.pruned:
        typer.echo("pruned generations " + ", ".join(map(str, result.pruned)))


@app.command("promote")
def promote(
    ctx: typer.Context,
    coordinate: str = typer.Argument(..., help="group:id:version (group:id = newest)."),
    to: str = typer.Option(..., "--to", help="Channel to list the package in."),
    repo: str = REPO_OPT,
    db: str = DB_OPT,
    json_: bool = JSON_OPT,
) -> None:
    """List a package that is in the repository in another channel too."""
    from shipyard.repo.layout import open_repository
    from shipyard.repo.publish import promote as do_promote

    repository = open_repository(_repo_dir(ctx, repo), db_url=db)
    coord, changed = do_promote(repository, coordinate, to)
    if json_:
        print_json({"coordinate": str(coord), "channel": to, "changed": changed})
        return
    if changed:
        typer.echo(f"promoted {coord} to {to} (published by the next 'shipyard repo publish')")
    else:
        typer.echo(f"{coord} is already in {to}; nothing to do")


@app.command("activity")
def activity_cmd(
    ctx: typer.Context,
    repo: str = REPO_OPT,
    db: str = DB_OPT,
    name: str = typer.Option(None, "--name", help="Only runs of this job."),
    limit: int = typer.Option(20, "--limit", min=1, help="Rows to show."),
    check: str = typer.Option(None, "--check", help="Exit 1 unless job NAME succeeded "
                              "within --max-age (for monitoring)."),
    max_age: str = typer.Option("1h", "--max-age", help="With --check: 30m, 1h, 2d ..."),
    json_: bool = JSON_OPT,
) -> None:
    """Script activity: one row per publisher run, with its status and message."""
    from shipyard.repo import activity
    from shipyard.repo.layout import open_repository

    repository = open_repository(_repo_dir(ctx, repo), db_url=db)
    if check:
        ok, message = activity.check(repository.db_url, check, activity.parse_age(max_age))
        if json_:
            last = activity.last_success(repository.db_url, check)
            print_json({"name": check, "ok": ok, "message": message,
                        "last_success": last.isoformat() if last else None})
            if not ok:
                raise typer.Exit(1)
            return
        if not ok:
            raise ShipyardError(message)
        typer.echo(message)
        return
    rows = activity.recent(repository.db_url, name, limit)
    if json_:
        print_json([row.to_dict() for row in rows])
        return
    now = datetime.now(UTC)
    print_table(None, ["name", "host", "started", "duration", "status", "message"], [
        (r.name, r.hostname, f"{r.started:%Y-%m-%d %H:%M:%S}Z "
         f"({activity.format_age(now - r.started)} ago)",
         f"{r.duration:.2f}s" if r.duration is not None else "",
         r.status, r.message) for r in rows], empty="no activity recorded")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    channel: str = typer.Option(None, "--channel", help="Only this channel."),
    repo: str = REPO_OPT,
    json_: bool = JSON_OPT,
) -> None:
    """Packages in the current publication (what nodes see), per channel."""
    from shipyard.repo.layout import open_repository
    from shipyard.repo.publish import read_published

    repository = open_repository(_repo_dir(ctx, repo), migrate=False)
    release, indexes = read_published(repository, channel)
    rows = [(name, entry) for name, index in indexes.items() for entry in index.packages]
    if json_:
        print_json({
            "serial": release.serial if release else None,
            "valid_until": release.valid_until if release else None,
            "packages": [{"channel": name, "coordinate": str(e.coord), "size": e.size,
                          "sha256": e.sha256, "filename": e.filename, "summary": e.summary}
                         for name, e in rows],
        })
        return
    title = (f"generation {release.serial}, valid until {release.valid_until}" if release
             else None)
    print_table(title, ["channel", "package", "size", "summary"],
                [(name, str(e.coord), e.size, e.summary) for name, e in rows],
                empty="nothing published yet" if release is None else "no packages")
