"""The repository directory, its configuration file and how to open it.

Layout of ``<repo>/``::

    repo.ini                     configuration (channels and priorities, retention, key, db)
    pool/<group path>/<id>/<version>/<id>-<version>.tar.gz    immutable archives
    generations/<serial>/        one complete publication: dists/<channel>/index.json,
                                 release.json, release.json.sig
    current -> generations/<serial>   relative symlink, flipped atomically
    incoming/                    the accepted queue (uploads + .json sidecars)
    incoming/rejected/           uploads the publisher refused, each with a .reason file
    hooks/pre-publication.d/     run-parts dirs, run with the pass priority as argument
    hooks/post-publication.d/
    db/repo.sqlite               the default state database (SQLite)
    locks/                       flock files of the publisher run

What a web server may serve: **only** ``pool/``, ``generations/`` and ``current`` (for
example nginx ``location ~ ^/(pool|generations|current)/`` with everything else denied, or
a document root holding symlinks to just those three). ``repo.ini``, ``db/``, ``incoming/``,
``hooks/`` and ``locks/`` are private: they hold the database, unpublished uploads and
executable hooks. The private signing key lives outside the repository (``repo.signing_key``).

The repository's configuration lives in ``repo.ini`` rather than in the host's settings so
that every process touching the repository (cron, the farm, an operator's shell) agrees on
its channels, retention and database whatever its own environment says; the host settings
only give the values ``repo init`` writes.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings
from shipyard.errors import ConfigError, ShipyardError
from shipyard.fsutil import atomic_write, fsync_dir, remove_tree

CONFIG_NAME = "repo.ini"
CHANNEL_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_CHANNELS = {"stable": 1, "security": 0}
PRIVATE_DIRS = ("incoming", "incoming/rejected", "hooks/pre-publication.d",
                "hooks/post-publication.d", "locks")
PUBLIC_DIRS = ("pool", "generations")


def validate_channel(name: str, where: str = "") -> str:
    if not isinstance(name, str) or not CHANNEL_RE.fullmatch(name):
        raise ShipyardError(
            f"{where}invalid channel name {name!r}: expected [a-z0-9][a-z0-9_-]* "
            "(at most 64 characters)", exit_code=2)
    return name


def parse_channel_specs(specs: list[str]) -> dict[str, int]:
    """``["stable=1", "security=0"]`` -> ``{"stable": 1, "security": 0}``."""
    channels: dict[str, int] = {}
    for spec in specs:
        name, sep, prio = spec.partition("=")
        name = name.strip()
        if not sep:
            raise ShipyardError(f"--channel {spec!r}: expected NAME=PRIORITY, e.g. security=0",
                                exit_code=2)
        validate_channel(name, "--channel: ")
        try:
            priority = int(prio)
        except ValueError:
            raise ShipyardError(f"--channel {spec!r}: priority must be an integer >= 0",
                                exit_code=2) from None
        if priority < 0:
            raise ShipyardError(f"--channel {spec!r}: priority must be an integer >= 0",
                                exit_code=2)
        if name in channels:
            raise ShipyardError(f"--channel {name} given twice", exit_code=2)
        channels[name] = priority
    return channels


@dataclass(frozen=True)
class RepoConfig:
    """What ``repo.ini`` says."""

    channels: dict[str, int]
    default_channel: str
    keep_generations: int = 10
    valid_days: int = 7
    signing_key: Path | None = None
    db: str = ""  # empty: <repo>/db/repo.sqlite

    def to_ini(self) -> str:
        lines = [
            "# Shipyard repository configuration (written by 'shipyard repo init').",
            "[repository]",
            f"default_channel = {self.default_channel}",
            f"keep_generations = {self.keep_generations}",
            f"valid_days = {self.valid_days}",
            f"signing_key = {self.signing_key or ''}",
            "# empty: SQLite at db/repo.sqlite inside the repository",
            f"db = {self.db}",
            "",
            "# channel = priority (0 = fast track, published in a pass of its own first)",
            "[channels]",
            *(f"{name} = {prio}" for name, prio in self.channels.items()),
            "",
        ]
        return "\n".join(lines)

    @classmethod
    def load(cls, path: Path) -> RepoConfig:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except FileNotFoundError:
            raise ShipyardError(
                f"{path.parent} is not a repository (no {CONFIG_NAME}; "
                f"run 'shipyard repo init {path.parent}')") from None
        except configparser.Error as exc:
            raise ConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
        known = {"default_channel", "keep_generations", "valid_days", "signing_key", "db"}
        for section in parser.sections():
            if section not in ("repository", "channels"):
                raise ConfigError(f"{path}: unknown section [{section}]")
        repo = parser["repository"] if parser.has_section("repository") else {}
        for key in repo:
            if key not in known:
                raise ConfigError(f"{path}: unknown setting [repository] {key}")
        channels: dict[str, int] = {}
        if parser.has_section("channels"):
            for name, value in parser.items("channels"):
                validate_channel(name, f"{path}: [channels] ")
                try:
                    channels[name] = int(value)
                except ValueError:
                    raise ConfigError(
                        f"{path}: [channels] {name} = {value!r} is not an integer") from None
                if channels[name] < 0:
                    raise ConfigError(f"{path}: [channels] {name} must be >= 0")
        if not channels:
            raise ConfigError(f"{path}: [channels] lists no channel")

        def integer(key: str, default: int, low: int) -> int:
            raw = repo.get(key, str(default))
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(
                    f"{path}: [repository] {key} = {raw!r} is not an integer") from None
            if value < low:
                raise ConfigError(f"{path}: [repository] {key} must be >= {low}")
            return value

        default_channel = repo.get("default_channel", "").strip() or _pick_default(channels)
        if default_channel not in channels:
            raise ConfigError(f"{path}: [repository] default_channel {default_channel!r} "
                              "is not listed in [channels]")
        key = repo.get("signing_key", "").strip()
        return cls(
            channels=channels,
            default_channel=default_channel,
            keep_generations=integer("keep_generations", 10, 0),
            valid_days=integer("valid_days", 7, 1),
            signing_key=Path(key).expanduser() if key else None,
            db=repo.get("db", "").strip(),
        )


def _pick_default(channels: dict[str, int]) -> str:
    if "stable" in channels:
        return "stable"
    normal = [name for name, prio in channels.items() if prio > 0]
    return (normal or list(channels))[0]


@dataclass(frozen=True)
class Repository:
    """An opened repository: its paths, its configuration and its database URL."""

    root: Path
    config: RepoConfig
    db_url: str

    @property
    def pool(self) -> Path:
        return self.root / "pool"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def rejected(self) -> Path:
        return self.root / "incoming" / "rejected"

    @property
    def generations(self) -> Path:
        return self.root / "generations"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def pre_hooks(self) -> Path:
        return self.root / "hooks" / "pre-publication.d"

    @property
    def post_hooks(self) -> Path:
        return self.root / "hooks" / "post-publication.d"

    @property
    def publish_lock(self) -> Path:
        return self.root / "locks" / "publish.lock"

    def current_serial(self) -> int | None:
        """The serial ``current`` points at, or ``None`` before the first publication."""
        try:
            target = os.readlink(self.current)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ShipyardError(f"{self.current} is not a symlink ({exc.strerror})") from None
        name = Path(target).name
        if not name.isdigit():
            raise ShipyardError(f"{self.current} points at {target!r}, not a generation")
        return int(name)

    def channel_or_default(self, channel: str | None) -> str:
        name = channel or self.config.default_channel
        if name not in self.config.channels:
            known = ", ".join(sorted(self.config.channels))
            raise ShipyardError(f"unknown channel {name!r} in {self.root} (channels: {known})")
        return name


def default_db_url(root: Path) -> str:
    return f"sqlite:///{(root / 'db' / 'repo.sqlite').absolute()}"


def open_repository(repo_dir: str | os.PathLike[str], *, db_url: str | None = None,
                    migrate: bool = True) -> Repository:
    """Read ``repo.ini`` and bring the database schema up to date.

    ``db_url`` (a ``--db`` flag) wins over ``repo.ini``; an empty ``db`` there means the
    SQLite file inside the repository.
    """
    root = Path(repo_dir).expanduser().absolute()
    config = RepoConfig.load(root / CONFIG_NAME)
    url = db_url or config.db or default_db_url(root)
    if migrate:
        _upgrade(url)
    return Repository(root, config, url)


def _upgrade(url: str) -> None:
    from shipyard.db import upgrade

    try:
        upgrade(url)
    except ShipyardError:
        raise
    except Exception as exc:  # driver errors: connection refused, bad database name
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ShipyardError(f"cannot open repository database {_redact(url)}: {first}") from None


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def init_repository(repo_dir: str | os.PathLike[str], channels: dict[str, int] | None = None,
                    *, signing_key: str | os.PathLike[str] | None = None, db_url: str = "",
                    keep_generations: int = 10, valid_days: int = 7,
                    default_channel: str | None = None) -> None:
    """Create the layout, write ``repo.ini`` and create the database schema.

    Refuses a directory that already holds a repository or anything else, so a typo never
    turns an unrelated directory into a served tree.
    """
    root = Path(repo_dir).expanduser().absolute()
    chans = dict(channels) if channels else dict(DEFAULT_CHANNELS)
    for name in chans:
        validate_channel(name)
    if (root / CONFIG_NAME).exists():
        raise ShipyardError(f"{root} is already a repository ({CONFIG_NAME} exists)")
    if root.exists() and not root.is_dir():
        raise ShipyardError(f"{root} exists and is not a directory")
    if root.exists() and any(root.iterdir()):
        raise ShipyardError(f"{root} is not empty; give a new or empty directory")
    default = default_channel or _pick_default(chans)
    if default not in chans:
        raise ShipyardError(f"default channel {default!r} is not one of the channels")
    config = RepoConfig(chans, default, keep_generations, valid_days,
                        Path(signing_key).absolute() if signing_key else None, db_url)
    url = db_url or default_db_url(root)
    created = not root.exists()
    try:
        if db_url:
            _upgrade(url)  # a wrong URL fails before anything is created
        root.mkdir(parents=True, exist_ok=True)
        for sub in (*PUBLIC_DIRS, *PRIVATE_DIRS):
            (root / sub).mkdir(parents=True, exist_ok=True)
        if not db_url:
            (root / "db").mkdir(mode=0o700, exist_ok=True)
            _upgrade(url)
        from shipyard.repo.store import RepoStore

        RepoStore(url).ensure_channels(list(chans))
        atomic_write(root / CONFIG_NAME, config.to_ini())
        fsync_dir(root)
    except BaseException:
        if created:  # leave no half-made repository behind to trip the next attempt

            remove_tree(root, ignore_errors=True)
        raise


def resolve_repo_dir(settings: Settings, repo_dir: str | os.PathLike[str] | None) -> Path:
    return Path(repo_dir).expanduser().absolute() if repo_dir else settings.path("repo.dir")
