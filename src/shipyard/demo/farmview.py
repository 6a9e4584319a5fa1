"""What the farm and the repository say: builds from the coordinator's API, publications
and channel contents through the repository's face (:mod:`shipyard.repo.publish`,
:mod:`shipyard.repo.channels`). Waiting is always on these answers, with a deadline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from shipyard.demo.waiting import until
from shipyard.errors import ShipyardError
from shipyard.farm.client import FarmClient
from shipyard.formats.farm import BuildDetail, BuildView, Health, LogText, WorkerView
from shipyard.repo.publish import publications as repo_publications

FINISHED = ("succeeded", "failed", "aborted", "cancelled")
M = TypeVar("M", bound=BaseModel)


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

    def _one(self, model: type[M], path: str, **params: Any) -> M | None:
        """The answer as ``model``, or None while there is none (or not one of those)."""
        data = self._get(path, **params)
        try:
            return model.model_validate(data) if data is not None else None
        except ValueError:
            return None

    def _list(self, model: type[M], path: str, **params: Any) -> list[M]:
        data = self._get(path, **params)
        try:
            return [model.model_validate(item) for item in data or []]
        except (ValueError, TypeError):
            return []

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def health(self) -> Health | None:
        return self._one(Health, "/api/health")

    def workers(self) -> list[WorkerView]:
        return self._list(WorkerView, "/api/workers")

    def builds(self) -> list[BuildView]:
        return self._list(BuildView, "/api/builds", limit=1000)

    def build(self, build_id: int) -> BuildDetail | None:
        return self._one(BuildDetail, f"/api/builds/{build_id}")

    def log(self, build_id: int) -> str:
        log = self._one(LogText, f"/api/builds/{build_id}/log")
        return log.text if log else ""

    def _states(self, ids: Iterable[int]) -> dict[int, BuildView]:
        wanted = set(ids)
        return {b.id: b for b in self.builds() if b.id in wanted}

    def _describe(self, ids: list[int]) -> str:
        return ", ".join(f"build {b.id} {b.package} {b.state}"
                         f"{'/' + b.publish_state if b.publish_state else ''}"
                         for b in self._states(ids).values()) or "no builds seen"

    def wait_finished(self, ids: list[int], timeout: float) -> list[BuildView]:
        def done() -> list[BuildView] | None:
            states = self._states(ids)
            if len(states) == len(ids) and all(b.state in FINISHED
                                               for b in states.values()):
                return [states[i] for i in ids]
            return None

        return until(done, timeout, f"build(s) {', '.join(map(str, ids))} to finish",
                     lambda: self._describe(ids))

    def wait_published(self, ids: list[int], timeout: float) -> list[BuildView]:
        def done() -> list[BuildView] | None:
            states = self._states(ids)
            errors = [b for b in states.values() if b.publish_state == "error"]
            if errors:
                first = errors[0]
                raise ShipyardError(f"build {first.id} ({first.package}) could not be "
                                    f"published: {first.publish_error}")
            if len(states) == len(ids) and all(b.publish_state == "published"
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
