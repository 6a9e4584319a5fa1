"""Every setting once: its key, kind, default and help (``config show``, the generated
reference, the ini reader and the environment all read this table), and the settings that
were retired."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.config.settings import Settings

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


# Settings that were documented once, with what replaced them (a file naming one gets
# told so, not just "unknown").
RETIRED = {"paths.log": "Shipyard's processes log to stderr, for systemd's journal (see the "
                        "operator guide's Logs)"}
