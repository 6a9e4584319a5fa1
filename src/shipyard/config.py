"""Effective settings: defaults, the ini file, the environment and flags, in that order.

Every value remembers where it came from, so ``shipyard config show`` can answer the
operator's first question ("why is it looking *there*?"). Roots follow DESIGN.md:
``SHIPYARD_HOME`` puts everything under one directory; without it an ordinary user gets
``~/.local/share/shipyard`` and root gets the FHS paths.

The config file is ini (``[section] key = value``); the environment variable of
``section.key`` is ``SHIPYARD_SECTION_KEY``; flags override both.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError

Getter = Callable[["Settings"], Any]


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str  # str | int | float | bool | path | list
    default: Any
    help: str

    @property
    def env_name(self) -> str:
        return "SHIPYARD_" + self.key.replace(".", "_").upper()


def _home_default(name: str, fhs: str) -> Getter:
    def default(settings: Settings) -> Path:
        home = settings.home
        if home is not None:
            return home / name
        if os.geteuid() == 0:
            return Path(fhs)
        return Path.home() / ".local" / "share" / "shipyard" / name

    return default


def _under(key: str, *parts: str) -> Getter:
    return lambda settings: settings.path(key).joinpath(*parts)


def _default_user(settings: Settings) -> str:
    if os.geteuid() == 0:
        return "shipyard"
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


SETTINGS: tuple[Setting, ...] = (
    Setting("paths.config", "path", _home_default("etc", "/etc/shipyard"),
            "configuration: shipyard.ini, services/*.ini"),
    Setting("paths.software", "path", _home_default("software", "/opt/shipyard"),
            "software root: installed packages"),
    Setting("paths.runtime", "path", _home_default("runtime", "/var/lib/shipyard/runtime"),
            "runtime root: one directory per service instance"),
    Setting("paths.state", "path", _home_default("state", "/var/lib/shipyard"),
            "state: install locks, link state, farm database"),
    Setting("paths.run", "path", _home_default("run", "/run/shipyard"),
            "volatile state: pid files and sockets of Shipyard itself"),
    Setting("repo.url", "str", "", "repository a node installs from (file://, http://, https://)"),
    Setting("repo.channel", "str", "stable", "channel a node installs from"),
    Setting("repo.key", "list", [], "public key file(s) that must sign the repository"),
    Setting("repo.trust", "str", "signed",
            "signed: refuse a repository no repo.key verifies; unsigned: read one without "
            "verification (warns each time)"),
    Setting("repo.dir", "path", _under("paths.state", "repository"),
            "repository directory this host publishes (repo commands)"),
    Setting("repo.signing_key", "path", _under("paths.state", "keys", "repository.key"),
            "private Ed25519 key the publisher signs with"),
    Setting("repo.keep_generations", "int", 10, "publications kept besides the current one"),
    Setting("repo.valid_days", "int", 7, "days a published release.json stays valid"),
    Setting("repo.db", "str", "", "repository database URL (default: SQLite in the repo)"),
    Setting("pkg.max_members", "int", 100_000, "most members an archive may have"),
    Setting("pkg.max_bytes", "int", 8 << 30, "most bytes an archive may unpack to"),
    Setting("pkg.max_ratio", "int", 200, "largest unpacked/packed size ratio"),
    Setting("pkg.lock_timeout", "float", 300.0, "seconds to wait for the install lock"),
    Setting("svc.user", "str", _default_user, "default user service instances run as"),
    Setting("svc.layout", "str", "flat", "runtime layout: flat (copkg) or fhs (/var/log/<svc>...)"),
    Setting("svc.start_timeout", "float", 10.0, "seconds to wait for a pid file after start"),
    Setting("svc.stop_timeout", "float", 10.0, "seconds between TERM and KILL at stop"),
    Setting("svc.log_max_bytes", "int", 10 << 20, "size at which a log file is rotated"),
    Setting("svc.log_keep", "int", 5, "rotated log files kept"),
    Setting("svc.fhs_root", "path", Path("/"),
            "prefix of /var/log, /var/lib, /var/spool and /run for layout = fhs"),
    Setting("svc.start_grace", "float", 0.5,
            "seconds a new service must stay alive to count as started"),
    Setting("svc.boot_workers", "int", 16, "instances started or stopped at once by boot"),
    Setting("link.adapter_timeout", "float", 30.0, "seconds an adapter may run"),
    Setting("link.fqdn", "str", "", "host name used in generated link hostnames (default: FQDN)"),
    Setting("link.jobs", "int", 4, "adapters run at once (one at a time per acceptor)"),
    Setting("farm.db", "str", "", "farm database URL (default: SQLite under paths.state)"),
    Setting("farm.bind", "str", "127.0.0.1:8470", "address the coordinator listens on"),
    Setting("farm.url", "str", "", "public URL of the coordinator (used in mails)"),
    Setting("farm.lease_seconds", "float", 30.0, "a claim runs out without heartbeat after this"),
    Setting("farm.max_attempts", "int", 3, "times a build is retried after lost workers"),
    Setting("farm.log_max_bytes", "int", 5 << 20, "build log cap"),
    Setting("farm.max_upload_bytes", "int", 1 << 30, "largest package upload"),
    Setting("farm.artifacts", "path", _under("paths.state", "farm-artifacts"),
            "where the coordinator keeps uploaded packages (shared by all coordinators)"),
    Setting("farm.trusted_proxies", "list", [],
            "reverse proxies (addresses or networks) whose X-Forwarded-For the coordinator "
            "believes; empty: none, the peer address counts"),
    Setting("farm.token", "str", "", "token farm client commands send (worker, hook, admin)"),
    Setting("farm.bwrap", "str", "bwrap",
            "bubblewrap binary a worker runs builds in (Debian's bubblewrap)"),
    Setting("farm.build_time_limit", "int", 7200,
            "seconds a worker lets a build run (0: no limit; build.timeout may be shorter)"),
    Setting("farm.build_memory_limit", "int", 8192,
            "MiB of address space per build process on a worker (0: no limit)"),
    Setting("farm.poll_seconds", "float", 1.0,
            "how often a waiting claim re-reads the queue (other coordinators' requests)"),
    Setting("farm.channels", "list", [],
            "channel per package for built packages: group:id=channel, comma-separated "
            "(others go to the repository's default channel)"),
    Setting("fleet.lease_seconds", "float", 30.0,
            "a node without a heartbeat for this long is lost"),
    Setting("fleet.poll_seconds", "float", 2.0,
            "how often parked long polls re-read the fleet revision (missed notifications)"),
    Setting("node.source_address", "str", "",
            "local address the node agent's connections come from (default: any)"),
    Setting("node.backoff_max", "float", 30.0,
            "longest pause of a node agent between tries while the coordinator is down"),
    Setting("web.session_hours", "float", 12.0, "how long a web sign-in lasts"),
    Setting("web.signin_attempts", "int", 5,
            "failed web sign-ins allowed per address within web.signin_window"),
    Setting("web.signin_window", "float", 900.0, "seconds over which failed sign-ins count"),
    Setting("web.stale_days", "float", 2.0,
            "the dashboard lists packages without a success for this many days"),
    Setting("smtp.host", "str", "", "SMTP server for failure mail (empty: no mail)"),
    Setting("smtp.port", "int", 25, "SMTP port"),
    Setting("smtp.sender", "str", "shipyard@localhost", "From: address of failure mail"),
    Setting("smtp.user", "str", "", "SMTP user (optional)"),
    Setting("smtp.password", "str", "", "SMTP password (optional)"),
    Setting("smtp.starttls", "bool", False, "use STARTTLS"),
)

BY_KEY = {setting.key: setting for setting in SETTINGS}
# Settings whose value is a secret, and settings that are URLs which may carry a password:
# shown masked unless asked for (config show --show-secrets).
SECRET_KEYS = ("farm.token", "smtp.password")
URL_KEYS = ("farm.db", "repo.db")
MASK = "***"


def url_password_masked(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (SQLAlchemy's own rendering,
    so every URL form it accepts is covered); a string it cannot parse is kept only when it
    has no ``user:password@`` part."""
    if not url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        import re

        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def masked(key: str, value: Any) -> Any:
    """A setting's value as it may be shown: secrets as ``***`` (when set), URL passwords
    as ``***``."""
    if key in SECRET_KEYS:
        return MASK if value else value
    if key in URL_KEYS and isinstance(value, str):
        return url_password_masked(value)
    return value


def holds_secret(key: str, value: Any) -> bool:
    if key in SECRET_KEYS:
        return bool(str(value or "").strip())
    if key in URL_KEYS and isinstance(value, str):
        return masked(key, value) != value
    return False
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
        return self.resolve(key)[0]

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


def exposed_secret_files(settings: Settings) -> list[str]:
    """Warnings for config files that hold a secret yet are group- or world-readable."""
    path = settings.config_file
    if path is None:
        return []
    secrets = [key for key, (raw, source) in settings._raw.items()
               if source == str(path) and holds_secret(key, raw)]
    if not secrets:
        return []
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if not mode & 0o044:
        return []
    who = ("group and others" if mode & 0o044 == 0o044
           else "group" if mode & 0o040 else "others")
    return [f"{path} holds {', '.join(sorted(secrets))} and is readable by {who} "
            f"(mode {mode & 0o777:04o}): chmod 600 {path}"]


# Settings that were documented once, with what replaced them (a file naming one gets
# told so, not just "unknown").
RETIRED = {"paths.log": "Shipyard's processes log to stderr, for systemd's journal (see the "
                        "operator guide's Logs)"}


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
