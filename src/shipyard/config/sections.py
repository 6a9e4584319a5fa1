"""Typed access to the settings, one class per ini section (``settings.farm.token``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.config.table import BY_KEY

if TYPE_CHECKING:
    from shipyard.config.settings import Settings

# Typed access: ``settings.farm.token`` is ``settings.get("farm.token")`` with its type
# known to mypy. One class per section declares the section's keys with the Python type of
# their kind (str, int, float, bool, Path, list[str]); each declared name becomes a
# property reading the key through Settings.resolve (same sources, same cache, so
# ``get()`` and the attribute always agree). A name that is no setting fails at import,
# and tests/test_config_typed.py checks that every setting has its attribute.
_COERCE: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "path": Path}


class _Section:
    section: ClassVar[str]
    __slots__ = ("_settings",)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __init_subclass__(cls, section: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.section = section
        for name in cls.__annotations__:
            key = f"{section}.{name}"
            if key not in BY_KEY:
                raise TypeError(f"{cls.__name__}.{name}: no setting {key!r}")
            setattr(cls, name, property(_reader(key, _COERCE.get(BY_KEY[key].kind))))


def _reader(key: str, coerce: Callable[[Any], Any] | None) -> Callable[[_Section], Any]:
    if coerce is None:
        return lambda section: section._settings.resolve(key)[0]
    return lambda section: coerce(section._settings.resolve(key)[0])


class PathsSection(_Section, section="paths"):
    config: Path
    software: Path
    runtime: Path
    state: Path
    run: Path


class RepoSection(_Section, section="repo"):
    url: str
    channel: str
    key: list[str]
    trust: str
    dir: Path
    signing_key: Path
    keep_generations: int
    valid_days: int
    db: str


class PkgSection(_Section, section="pkg"):
    max_members: int
    max_bytes: int
    max_ratio: int
    lock_timeout: float


class SvcSection(_Section, section="svc"):
    user: str
    layout: str
    start_timeout: float
    stop_timeout: float
    log_max_bytes: int
    log_keep: int
    fhs_root: Path
    start_grace: float
    boot_workers: int


class LinkSection(_Section, section="link"):
    adapter_timeout: float
    fqdn: str
    jobs: int


class FarmSection(_Section, section="farm"):
    db: str
    bind: str
    url: str
    lease_seconds: float
    max_attempts: int
    log_max_bytes: int
    max_upload_bytes: int
    artifacts: Path
    trusted_proxies: list[str]
    token: str
    bwrap: str
    build_time_limit: int
    build_memory_limit: int
    poll_seconds: float
    channels: list[str]


class FleetSection(_Section, section="fleet"):
    lease_seconds: float
    poll_seconds: float


class NodeSection(_Section, section="node"):
    source_address: str
    backoff_max: float


class WebSection(_Section, section="web"):
    session_hours: float
    signin_attempts: int
    signin_window: float
    stale_days: float


class SmtpSection(_Section, section="smtp"):
    host: str
    port: int
    sender: str
    user: str
    password: str
    starttls: bool


SECTIONS: tuple[type[_Section], ...] = (
    PathsSection, RepoSection, PkgSection, SvcSection, LinkSection, FarmSection,
    FleetSection, NodeSection, WebSection, SmtpSection)
