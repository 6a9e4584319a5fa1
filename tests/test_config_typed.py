"""Typed settings (``settings.farm.token``) cover the whole Setting table, with the type of
each setting's kind, and always give what ``settings.get(key)`` gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import BY_KEY, SECTIONS, SETTINGS, Settings, _Section, load_settings

TYPE_OF_KIND = {"str": "str", "int": "int", "float": "float", "bool": "bool", "path": "Path",
                "list": "list[str]"}


def test_every_setting_has_a_typed_attribute() -> None:
    declared = {f"{cls.section}.{name}": annotation for cls in SECTIONS
                for name, annotation in cls.__annotations__.items()}
    assert sorted(declared) == sorted(BY_KEY)
    for setting in SETTINGS:
        assert declared[setting.key] == TYPE_OF_KIND[setting.kind], setting.key
    for cls in SECTIONS:
        assert isinstance(getattr(Settings, cls.section), property), cls.section


def test_a_name_that_is_no_setting_fails_at_definition() -> None:
    with pytest.raises(TypeError, match=r"no setting 'farm\.tokn'"):
        class _Typo(_Section, section="farm"):
            tokn: str


def test_attribute_and_get_agree(tmp_path: Path) -> None:
    ini = tmp_path / "shipyard.ini"
    ini.write_text("[farm]\nlease_seconds = 7\ntoken = from-file\n[repo]\nkey = a.pub, b.pub\n"
                   "[smtp]\nstarttls = yes\n", encoding="utf-8")
    settings = load_settings(home=tmp_path / "home", config_file=ini,
                             env={"SHIPYARD_SVC_BOOT_WORKERS": "3"},
                             overrides={"repo.channel": "testing"})
    for setting in SETTINGS:
        section, name = setting.key.split(".")
        value = getattr(getattr(settings, section), name)
        expected = settings.get(setting.key)
        assert value == (Path(expected) if setting.kind == "path" else expected), setting.key
    assert settings.farm.lease_seconds == 7.0
    assert settings.farm.token == "from-file"
    assert settings.repo.key == ["a.pub", "b.pub"]
    assert settings.smtp.starttls is True
    assert settings.svc.boot_workers == 3
    assert settings.repo.channel == "testing"
    assert settings.paths.state == tmp_path / "home" / "state"
