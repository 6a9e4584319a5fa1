"""What the farm and the repository say: builds from the coordinator's API, publications
and channel contents through the repository's face (:mod:`shipyard.repo.publish`,
:mod:`shipyard.repo.channels`). Waiting is always on these answers, with a deadline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.demo.waiting import until
from shipyard.errors import ShipyardError
from shipyard.farm.client import FarmClient
from shipyard.repo.publish import publications as repo_publications

FINISHED = ("succeeded", "failed", "aborted", "cancelled")


@dataclass
class FarmView:
    url: str
    client: FarmClient | None = field(default=None, init=False, repr=False)

    def _get(self, path: str, **params: Any) -> Any:
        """The coordinator's answer, or None while it cannot give one (the caller waits)."""
        if self.client is None:
            self.client = FarmClient(self.url, timeout=10)
        try:
            return self.client.get(path, params=params)
        except (ShipyardError, ValueError):
            return None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def health(self) -> dict[str, Any] | None:
        return self._get("/api/health")

    def workers(self) -> list[dict[str, Any]]:
        return list(self._get("/api/workers") or [])

    def builds(self) -> list[dict[str, Any]]:
        return list(self._get("/api/builds", limit=1000) or [])

    def build(self, build_id: int) -> dict[str, Any] | None:
        return self._get(f"/api/builds/{build_id}")

    def log(self, build_id: int) -> str:
        data = self._get(f"/api/builds/{build_id}/log")
        return str(data.get("text", "")) if isinstance(data, dict) else ""

    def _states(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = set(ids)
        return {b["id"]: b for b in self.builds() if b["id"] in wanted}

    def _describe(self, ids: list[int]) -> str:
        return ", ".join(f"build {b['id']} {b['package']} {b['state']}"
                         f"{'/' + b['publish_state'] if b.get('publish_state') else ''}"
                         for b in self._states(ids).values()) or "no builds seen"

    def wait_finished(self, ids: list[int], timeout: float) -> list[dict[str, Any]]:
        def done() -> list[dict[str, Any]] | None:
            states = self._states(ids)
            if len(states) == len(ids) and all(b["state"] in FINISHED
                                               for b in states.values()):
                return [states[i] for i in ids]
            return None

        return until(done, timeout, f"build(s) {', '.join(map(str, ids))} to finish",
                     lambda: self._describe(ids))

    def wait_published(self, ids: list[int], timeout: float) -> list[dict[str, Any]]:
        def done() -> list[dict[str, Any]] | None:
            states = self._states(ids)
            errors = [b for b in states.values() if b.get("publish_state") == "error"]
            if errors:
                first = errors[0]
                raise ShipyardError(f"build {first['id']} ({first['package']}) could not be "
                                    f"published: {first.get('publish_error')}")
            if len(states) == len(ids) and all(b.get("publish_state") == "published"
                                               for b in states.values()):
                return [states[i] for i in ids]
            return None

        return until(done, timeout, "the publisher to publish build(s) "
                     + ", ".join(map(str, ids)), lambda: self._describe(ids))


@dataclass
class PublicationRow:
    serial: int
    priority: int
    channels: list[str]
    status: str
    finished: str


def publications(repository: Path) -> list[PublicationRow]:
    """Every publication the repository's database remembers, oldest first."""
    return [PublicationRow(p.serial, p.priority, sorted(p.channels), p.status,
                           f"{p.finished:%H:%M:%S}" if p.finished else "")
            for p in sorted(repo_publications(repository), key=lambda p: p.serial)]
