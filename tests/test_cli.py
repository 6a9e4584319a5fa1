"""The command line as a user meets it: version, help, one-line errors and exit codes."""

from __future__ import annotations

from conftest import Shipyard


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
