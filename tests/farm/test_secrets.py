"""Secrets stay out of sight: ``config show`` masks the farm token, the SMTP password and
database passwords unless asked (--show-secrets), warns about a readable config file that
holds one, and the farm's SQLite file (password, token and cookie-key material) is 0600."""

from __future__ import annotations

import json
import os
import stat

from conftest import Shipyard

SECRETS = ("shy_TopSecretToken", "hunter2pg", "mail-pass-9")


def _write_ini(shipyard: Shipyard, mode: int) -> str:
    ini = shipyard.home / "etc" / "shipyard.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(f"[farm]\ntoken = {SECRETS[0]}\n"
                   f"db = postgresql://farm:{SECRETS[1]}@127.0.0.1:5432/farm\n\n"
                   f"[smtp]\nhost = 127.0.0.1\npassword = {SECRETS[2]}\n")
    os.chmod(ini, mode)
    return str(ini)


def test_config_show_masks_secrets_unless_asked(shipyard: Shipyard) -> None:
    ini = _write_ini(shipyard, 0o600)
    for args in (("config", "show"), ("config", "show", "--json")):
        shown = shipyard.run(*args)
        for secret in SECRETS:
            assert secret not in shown.output, f"{' '.join(args)} printed {secret}"
        assert "shipyard: warning" not in shown.stderr  # 0600: nothing to warn about
    settings = json.loads(shipyard.run("config", "show", "--json").stdout)["settings"]
    assert settings["farm.token"]["value"] == "***"
    assert settings["smtp.password"]["value"] == "***"
    assert settings["farm.db"]["value"] == "postgresql://farm:***@127.0.0.1:5432/farm"
    assert settings["farm.token"]["source"] == ini

    revealed = json.loads(shipyard.run("config", "show", "--json",
                                       "--show-secrets").stdout)["settings"]
    assert revealed["farm.token"]["value"] == SECRETS[0]
    assert revealed["smtp.password"]["value"] == SECRETS[2]
    assert SECRETS[1] in revealed["farm.db"]["value"]

    # A token from the environment is masked as well.
    from_env = shipyard.run("config", "show", env={"SHIPYARD_FARM_TOKEN": "shy_FromTheEnv"})
    assert "shy_FromTheEnv" not in from_env.output


def test_a_readable_config_file_with_a_secret_is_warned_about(shipyard: Shipyard) -> None:
    ini = _write_ini(shipyard, 0o644)
    shown = shipyard.run("config", "show")
    warnings = [line for line in shown.stderr.splitlines() if "warning" in line]
    assert warnings == [f"shipyard: warning: {ini} holds farm.db, farm.token, smtp.password "
                        f"and is readable by group and others (mode 0644): chmod 600 {ini}"]
    # Without a secret in it, a readable file is fine.
    (shipyard.home / "etc" / "shipyard.ini").write_text("[farm]\nbind = 127.0.0.1:9\n")
    assert "warning" not in shipyard.run("config", "show").stderr


def test_the_farm_sqlite_file_is_private(shipyard: Shipyard) -> None:
    db = shipyard.home / "state" / "farm.sqlite"
    shipyard.run("farm", "token", "create", "--role", "admin", "--name", "ops")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    for side in (db.with_name("farm.sqlite-wal"), db.with_name("farm.sqlite-shm")):
        if side.exists():
            assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
    # An older, world-readable file is tightened the next time the farm opens it.
    os.chmod(db, 0o644)
    shipyard.run("farm", "token", "list")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
