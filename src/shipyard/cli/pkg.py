"""``shipyard pkg``: pack, install, uninstall, list, info and verify packages.

Thin by design: parse, call :mod:`shipyard.pkg`, print. Library modules are imported inside
the commands so that ``shipyard --help`` and unrelated commands do not pay for them.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import typer

from shipyard.cli.common import (
    err_console,
    existing,
    print_json,
    print_table,
    settings,
    show_progress,
)

ALLOW_UNSIGNED_HELP = ("Read a repository that no repo.key verifies (like repo.trust = "
                       "unsigned; warns).")

app = typer.Typer(help="Pack, install, uninstall, list, inspect and verify packages.",
                  no_args_is_help=True)


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(f"shipyard: warning: {line}\n")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@app.command("pack")
def pack(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Package source dir holding shipyard.toml."),
    out: Path = typer.Option(Path("."), "--out", "-o", help="Where to write the archive."),
    zstd: bool = typer.Option(False, "--zstd", help="Compress with zstd instead of gzip."),
    as_json: bool = typer.Option(False, "--json", help="Print path and sha256 as JSON."),
) -> None:
    """Build (when [build] says how) and pack DIR into <id>-<version>.tar.gz, reproducibly."""
    from shipyard.pkg.pack import pack_directory

    settings(ctx)
    existing(directory, "package source dir", kind="dir")
    archive = pack_directory(directory, out, compression="zst" if zstd else "gz",
                             log=sys.stderr)
    if as_json:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        print_json({"path": str(archive), "sha256": digest, "size": archive.stat().st_size})
    else:
        sys.stdout.write(f"{archive}\n")


@app.command("install")
def install(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="group:id[:version], or a local .tar.gz/.tar.zst"),
    channel: str = typer.Option(None, "--channel", help="Channel to install from."),
    repo_url: str = typer.Option(None, "--repo-url", help="Repository URL (file://, http://)."),
    unsigned: bool = typer.Option(False, "--unsigned",
                                  help="Allow a local archive although repo.key is set."),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned", help=ALLOW_UNSIGNED_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Install a package and what it requires, atomically."""
    from shipyard.node import install as do_install

    effective = settings(ctx, repo__channel=channel, repo__url=repo_url,
                         repo__trust="unsigned" if allow_unsigned else None)
    echo = None if as_json else (lambda line: sys.stdout.write(line + "\n"))
    results = do_install(effective, target, unsigned=unsigned, progress=show_progress(),
                         echo=echo)
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        for result in results:
            if result.status != "installed":
                sys.stdout.write(f"{result.coord} is already installed in {result.path}\n")
    for result in results:
        _warn(result.warnings)


@app.command("uninstall")
def uninstall(
    ctx: typer.Context,
    coord: str = typer.Argument(..., help="group:id:version (or group:id if one version)."),
    force: bool = typer.Option(False, "--force", help="Remove even if instances use it."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove an installed package (refused while a registered instance uses it)."""
    from shipyard.node import uninstall as do_uninstall

    result = do_uninstall(settings(ctx), coord, force=force)
    if as_json:
        print_json(result.to_dict())
    else:
        sys.stdout.write(f"uninstalled {result.coord} from {result.path}\n")
    _warn(result.warnings)


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List installed packages."""
    from shipyard.pkg.store import list_installed

    records = list_installed(settings(ctx))
    if as_json:
        print_json([r.summary_dict() for r in records])
        return
    print_table(None, ["package", "version", "installed at", "size", "files"],
                [(r.coord.name, r.coord.version, r.installed_at, _human(r.size), len(r.files))
                 for r in records], empty="no packages installed")


@app.command("info")
def info(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="group:id[:version] or a local archive."),
    channel: str = typer.Option(None, "--channel", help="Channel to look in."),
    repo_url: str = typer.Option(None, "--repo-url", help="Repository URL."),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned", help=ALLOW_UNSIGNED_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show an installed package, a repository entry, or a local archive's manifest."""
    from shipyard.pkg.info import describe

    data = describe(settings(ctx, repo__channel=channel, repo__url=repo_url,
                             repo__trust="unsigned" if allow_unsigned else None), target)
    _warn([str(line) for line in data.pop("warnings", [])])
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        elif value is None or value == "":
            value = "-"
        sys.stdout.write(f"{key + ':':<16}{value}\n")


@app.command("verify")
def verify(
    ctx: typer.Context,
    coord: str = typer.Argument(None, help="Only this package (default: all installed)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-hash installed files against the install record; exit 1 if anything changed."""
    from shipyard.pkg.verify import verify as do_verify

    reports = do_verify(settings(ctx), coord)
    if as_json:
        print_json([r.to_dict() for r in reports])
    else:
        if not reports:
            sys.stdout.write("no packages installed\n")
        for report in reports:
            if report.ok:
                sys.stdout.write(f"{report.coord}: ok\n")
                continue
            sys.stdout.write(f"{report.coord}: CHANGED ({report.path})\n")
            for kind in ("modified", "missing", "added"):
                for name in getattr(report, kind):
                    sys.stdout.write(f"  {kind:<9}{name}\n")
    if any(not r.ok for r in reports):
        if not as_json:
            err_console().print("installed files differ from their install records",
                                style="red")
        raise typer.Exit(1)
