"""The command line as a user meets it: version, help, one-line errors and exit codes."""

from __future__ import annotations

from pathlib import Path

from conftest import Shipyard
from kit.manifest import write_manifest


def test_version(shipyard: Shipyard) -> None:
    result = shipyard.run("--version")
    assert result.stdout.startswith("shipyard ")


def test_unknown_option_is_usage_error_without_traceback(shipyard: Shipyard) -> None:
    result = shipyard.run("pkg", "--bogus", check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert "--bogus" in result.stderr


def test_every_group_has_help(shipyard: Shipyard) -> None:
    for group in ("pkg", "repo", "svc", "link", "farm", "config"):
        result = shipyard.run(group, "--help")
        assert "Usage" in result.stdout


def test_config_show_names_sources(shipyard: Shipyard) -> None:
    config_dir = shipyard.home / "etc"
    config_dir.mkdir()
    (config_dir / "shipyard.ini").write_text("[repo]\nchannel = testing\n")
    result = shipyard.run("config", "show", "--json",
                          env={"SHIPYARD_SVC_STOP_TIMEOUT": "3"})
    import json

    data = json.loads(result.stdout)["settings"]
    assert data["repo.channel"] == {"value": "testing",
                                    "source": str(config_dir / "shipyard.ini")}
    assert data["svc.stop_timeout"] == {"value": 3.0, "source": "env SHIPYARD_SVC_STOP_TIMEOUT"}
    assert data["paths.software"]["value"] == str(shipyard.home / "software")


def test_bad_config_file_is_one_line(shipyard: Shipyard) -> None:
    config_dir = shipyard.home / "etc"
    config_dir.mkdir()
    (config_dir / "shipyard.ini").write_text("[repo]\nchanel = testing\n")
    result = shipyard.run("config", "show", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"shipyard: error: {config_dir / 'shipyard.ini'}: unknown setting [repo] chanel"
    )


# ---------------------------------------------------------------------------------------
# Data is never markup (issue 13 item 1): every table prints what it was given, verbatim.

TRICKY_SUMMARY = "keeps [/etc] and [bold]x[/bold] and [red] and :smile: verbatim"


def _tricky_package(tmp_path: Path, ident: str, *, service: bool = False) -> Path:
    from shipyard.pkg.pack import pack_directory

    src = tmp_path / f"src-{ident}"
    src.mkdir()
    write_manifest(src, "org.example.pypi", ident, "1.16.0", summary=TRICKY_SUMMARY,
                   tables={"service": {"exec": ["/bin/sleep", "1000"]} if service else None})
    return pack_directory(src, tmp_path / "out")


def test_tables_print_data_verbatim(shipyard: Shipyard, tmp_path: Path) -> None:
    """``:six:`` is an emoji code and ``[/etc]`` a closing tag to Rich: neither may be
    interpreted in repo list, pkg list, svc status or link list."""
    archive = _tricky_package(tmp_path, "six", service=True)
    root = tmp_path / "repo"
    shipyard.run("repo", "init", str(root))
    shipyard.run("repo", "upload", str(archive), "--repo", str(root))
    shipyard.run("repo", "publish", "--unsigned", "--repo", str(root))
    listed = shipyard.run("repo", "list", "--repo", str(root))
    assert "org.example.pypi:six:1.16.0" in listed.stdout, listed.stdout
    flat = " ".join(listed.stdout.split())
    assert TRICKY_SUMMARY in flat, listed.stdout

    shipyard.run("pkg", "install", str(archive))
    installed = shipyard.run("pkg", "list")
    assert "org.example.pypi:six" in installed.stdout, installed.stdout

    shipyard.run("svc", "register", "1.six.x.y", "--package", "org.example.pypi:six:1.16.0")
    status = shipyard.run("svc", "status", check=False)
    assert "org.example.pypi:six:1.16.0" in status.stdout, status.stdout


def test_link_list_shows_adapter_errors_verbatim(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "link"))
    import linkkit

    from conftest import make_env

    home = tmp_path / "home"
    home.mkdir()
    said = "cannot write [/etc] [bold]x[/bold] :six:"
    accept = f"#!/bin/sh\necho '{said}' >&2\nexit 1\n"
    a = linkkit.install_package(home, "ann", announce=linkkit.ANNOUNCE)
    b = linkkit.install_package(home, "acc", accept=accept)
    linkkit.register(home, "1.ann.x.y", a)
    linkkit.register(home, "1.acc.x.y", b)
    shipyard = Shipyard(home, make_env(home))
    shipyard.run("link", "reconcile", check=False)
    listed = shipyard.run("link", "list")
    assert said in " ".join(listed.stdout.split()), listed.stdout


# ---------------------------------------------------------------------------------------
# One rule for paths (issue 13 item 7): a path on the command line that names nothing is
# a usage error, exit 2, in every command that takes one.

def test_missing_path_is_exit_2_everywhere(shipyard: Shipyard, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    repo = tmp_path / "repo"
    shipyard.run("repo", "init", str(repo))
    commands = [
        ("pkg", "pack", str(missing)),
        ("pkg", "install", str(missing) + ".tar.gz"),
        ("pkg", "info", str(missing) + ".tar.gz"),
        ("repo", "upload", str(missing) + ".tar.gz", "--repo", str(repo)),
        ("repo", "upload", str(missing) + ".tar.gz", "--repo", str(missing)),
        ("repo", "list", "--repo", str(missing)),
        ("repo", "publish", "--repo", str(missing)),
        ("svc", "restore", "1.a.b.c", str(missing) + ".tar.gz"),
    ]
    for args in commands:
        result = shipyard.run(*args, check=False)
        assert result.returncode == 2, (args, result.output)
        assert "Traceback" not in result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(missing) in lines[0], (args, result.stderr)


def test_start_of_unknown_instance_leaves_no_lock(shipyard: Shipyard) -> None:
    for verb in ("start", "stop", "restart"):
        result = shipyard.run("svc", verb, "1.typo.x.y", check=False)
        assert result.returncode == 1, result.output
        assert "not registered" in result.stderr
    shipyard.run("svc", "cleanup", "1.typo.x.y", check=False)
    leftovers = [p.name for p in shipyard.home.rglob("*typo*")]
    assert leftovers == [], leftovers
