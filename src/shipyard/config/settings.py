"""The effective settings: defaults, the ini file, the environment and flags, in that order,
each value with where it came from (see the package's docstring)."""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.config import sections
from shipyard.config.table import BY_KEY, RETIRED, SETTINGS, Setting
from shipyard.errors import ConfigError

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off", ""}


def _convert(setting: Setting, raw: Any, source: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if setting.kind == "int":
            return int(raw)
        if setting.kind == "float":
            return float(raw)
        if setting.kind == "bool":
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if setting.kind == "path":
            return Path(raw).expanduser()
        if setting.kind == "list":
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(
            f"{source}: {setting.key} = {raw!r} is not a valid {setting.kind}"
        ) from None
    return raw


@dataclass
class Settings:
    """Resolved settings; ``explain()`` tells where each came from."""

    home: Path | None
    config_file: Path | None
    _raw: dict[str, tuple[Any, str]] = field(default_factory=dict)
    _cache: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def resolve(self, key: str) -> tuple[Any, str]:
        if key not in BY_KEY:
            raise ConfigError(f"unknown setting {key!r}")
        if key in self._cache:
            return self._cache[key]
        setting = BY_KEY[key]
        if key in self._raw:
            raw, source = self._raw[key]
            value = _convert(setting, raw, source)
        else:
            default = setting.default
            value = default(self) if callable(default) else default
            source = "default"
            if self.home is not None and setting.kind == "path":
                source = "default (SHIPYARD_HOME)"
        self._cache[key] = (value, source)
        return value, source

    def get(self, key: str) -> Any:
        """A setting by key (``settings.farm.token`` is the typed way to the same value)."""
        return self.resolve(key)[0]

    # Typed sections: settings.<section>.<name>, see _Section.
    @property
    def paths(self) -> sections.PathsSection:
        return sections.PathsSection(self)

    @property
    def repo(self) -> sections.RepoSection:
        return sections.RepoSection(self)

    @property
    def pkg(self) -> sections.PkgSection:
        return sections.PkgSection(self)

    @property
    def svc(self) -> sections.SvcSection:
        return sections.SvcSection(self)

    @property
    def link(self) -> sections.LinkSection:
        return sections.LinkSection(self)

    @property
    def farm(self) -> sections.FarmSection:
        return sections.FarmSection(self)

    @property
    def fleet(self) -> sections.FleetSection:
        return sections.FleetSection(self)

    @property
    def node(self) -> sections.NodeSection:
        return sections.NodeSection(self)

    @property
    def web(self) -> sections.WebSection:
        return sections.WebSection(self)

    @property
    def smtp(self) -> sections.SmtpSection:
        return sections.SmtpSection(self)

    def path(self, key: str) -> Path:
        value = self.get(key)
        return Path(value)

    def with_overrides(self, values: Mapping[str, Any], source: str = "flag") -> Settings:
        """A copy with ``values`` (``None`` entries ignored) taking precedence."""
        raw = dict(self._raw)
        for key, value in values.items():
            if value is None:
                continue
            if key not in BY_KEY:
                raise ConfigError(f"unknown setting {key!r}")
            raw[key] = (value, source)
        return Settings(self.home, self.config_file, raw)

    def explain(self) -> list[tuple[str, Any, str]]:
        return [(s.key, *self.resolve(s.key)) for s in SETTINGS]

    # Convenience accessors for the roots every stage uses.
    @property
    def config_dir(self) -> Path:
        return self.path("paths.config")

    @property
    def software_root(self) -> Path:
        return self.path("paths.software")

    @property
    def runtime_root(self) -> Path:
        return self.path("paths.runtime")

    @property
    def state_dir(self) -> Path:
        return self.path("paths.state")

    @property
    def run_dir(self) -> Path:
        return self.path("paths.run")

    @property
    def services_dir(self) -> Path:
        return self.config_dir / "services"


def _read_ini(path: Path) -> dict[str, tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {first}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    values: dict[str, tuple[str, str]] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            full = f"{section}.{key}"
            if full in RETIRED:
                raise ConfigError(f"{path}: [{section}] {key} is no longer a setting: "
                                  f"{RETIRED[full]}; remove it")
            if full not in BY_KEY:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            values[full] = (value, str(path))
    return values


def load_settings(
    *,
    home: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the effective settings: defaults < config file < environment < flags."""
    env = os.environ if env is None else env
    home_value = home if home is not None else env.get("SHIPYARD_HOME") or None
    home_path = Path(home_value).expanduser().absolute() if home_value else None
    settings = Settings(home_path, None)

    explicit = config_file if config_file is not None else env.get("SHIPYARD_CONFIG") or None
    raw: dict[str, tuple[Any, str]] = {}
    env_values = {
        s.key: (env[s.env_name], f"env {s.env_name}") for s in SETTINGS if s.env_name in env
    }
    if "paths.config" in env_values:
        raw["paths.config"] = env_values["paths.config"]
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
    else:
        probe = Settings(home_path, None, dict(raw))
        path = probe.config_dir / "shipyard.ini"
    if path.exists():
        raw.update(_read_ini(path))
        settings.config_file = path
    raw.update(env_values)
    settings._raw = raw
    if overrides:
        settings = settings.with_overrides(overrides)
        settings.config_file = path if path.exists() else None
    return settings
