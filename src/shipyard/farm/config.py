"""The settings the farm's state machine needs, read once from :class:`Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipyard.config import Settings


@dataclass
class FarmConfig:
    """The settings the state machine needs, read once."""

    lease_seconds: float = 30.0
    max_attempts: int = 3
    log_max_bytes: int = 5 << 20
    max_upload_bytes: int = 1 << 30
    url: str = "http://127.0.0.1:8470"
    artifacts: Path = field(default_factory=lambda: Path("farm-artifacts"))
    mail: bool = False
    publish: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, publish: bool = False,
                      bind: str | None = None) -> FarmConfig:
        url = (settings.farm.url or "").rstrip("/")
        if not url:
            url = "http://" + (bind or settings.farm.bind)
        return cls(
            lease_seconds=settings.farm.lease_seconds,
            max_attempts=max(1, settings.farm.max_attempts),
            log_max_bytes=settings.farm.log_max_bytes,
            max_upload_bytes=settings.farm.max_upload_bytes,
            url=url,
            artifacts=settings.farm.artifacts,
            mail=bool((settings.smtp.host or "").strip()),
            publish=publish,
        )

    @property
    def heartbeat_seconds(self) -> float:
        """Often enough that an abort lands within seconds and a lease never runs out."""
        return max(0.2, min(self.lease_seconds / 3.0, 2.0))

    def build_url(self, build_id: int) -> str:
        return f"{self.url}/builds/{build_id}"

