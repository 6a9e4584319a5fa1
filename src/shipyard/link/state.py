"""The link state: one JSON file under the state dir, what every pair last applied.

Why one file, written whole with :func:`~shipyard.fsutil.atomic_write` under an ``flock``:
a reader (``link list``) and a crash (``kill -9``) only ever see a complete old or new
version, never a mix, and two reconciles never interleave.

Crash repair without a journal: before an accept adapter runs with data ``D``, ``D`` is
added to the pair's ``maybe`` list and the file is saved ("intent"). Only after the adapter
exits 0 is ``D`` moved to ``applied`` and ``maybe`` cleared. So a pair whose ``maybe`` is not
empty is one whose acceptor *may* hold those entries; the next reconcile re-applies or
removes them (both adapter operations are idempotent by protocol).

The file holds passwords (``applied``/``maybe``, and the announce cache) because ``--remove``
must be called with the same options as the apply that it undoes, also after the announcer
and its generated config are gone. It is therefore written with mode 0600.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.fsutil import atomic_write

FORMAT = 1
STATE_NAME = "links.json"
LOCK_NAME = "links.lock"

LINKED = "linked"
DISABLED = "disabled"
FAILED = "failed"
PENDING = "pending"
STATES = (LINKED, DISABLED, FAILED, PENDING)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def state_path(settings: Settings) -> Path:
    return settings.state_dir / STATE_NAME


def lock_path(settings: Settings) -> Path:
    return settings.state_dir / LOCK_NAME


@dataclass(frozen=True)
class LinkData:
    """What an announce adapter printed: the three values of the protocol."""

    host: str
    port: int
    password: str

    @property
    def identity(self) -> tuple[str, int]:
        """An acceptor's entry is keyed by host and port; a new password updates it in place."""
        return (self.host, self.port)

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "password": self.password}

    @classmethod
    def from_json(cls, data: Any) -> LinkData:
        if not isinstance(data, dict):
            raise ValueError("link data must be an object")
        host, port, password = data["host"], data["port"], data["password"]
        if not isinstance(host, str) or not isinstance(password, str):
            raise ValueError("host and password must be strings")
        if not isinstance(port, int) or isinstance(port, bool):
            raise ValueError("port must be an integer")
        return cls(host, port, password)


PairKey = tuple[str, str, str]  # (interface, announcer, acceptor or "")


@dataclass
class Pair:
    """One (announcer, acceptor) pair of one interface; ``acceptor == ""`` is a pending row."""

    interface: str
    announcer: str
    acceptor: str
    state: str = PENDING
    since: str = field(default_factory=now)
    error: str | None = None
    exit_code: int | None = None
    applied: LinkData | None = None
    maybe: list[LinkData] = field(default_factory=list)
    said: str | None = None     # the accept adapter's last stdout lines (no password)
    change: str | None = None   # what the last reload/restart of the acceptor did
    pending_change: str | None = None  # "reload"/"restart" still owed to the acceptor

    @property
    def key(self) -> PairKey:
        return (self.interface, self.announcer, self.acceptor)

    def held(self) -> list[LinkData]:
        """Every entry the acceptor may hold for this pair (applied first, no duplicates)."""
        out: list[LinkData] = []
        for data in ([self.applied] if self.applied else []) + self.maybe:
            if data not in out:
                out.append(data)
        return out

    def set_state(self, state: str, error: str | None = None,
                  exit_code: int | None = None) -> None:
        if state != self.state or error != self.error:
            self.since = now()
        self.state = state
        self.error = error
        self.exit_code = exit_code

    def to_json(self) -> dict[str, Any]:
        return {
            "interface": self.interface,
            "announcer": self.announcer,
            "acceptor": self.acceptor or None,
            "state": self.state,
            "since": self.since,
            "error": self.error,
            "exit_code": self.exit_code,
            "applied": self.applied.to_json() if self.applied else None,
            "maybe": [d.to_json() for d in self.maybe],
            "said": self.said,
            "change": self.change,
            "pending_change": self.pending_change,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pair:
        state = data["state"]
        if state not in STATES:
            raise ValueError(f"unknown pair state {state!r}")
        applied = data.get("applied")
        return cls(
            interface=str(data["interface"]),
            announcer=str(data["announcer"]),
            acceptor=str(data.get("acceptor") or ""),
            state=state,
            since=str(data.get("since") or now()),
            error=data.get("error"),
            exit_code=data.get("exit_code"),
            applied=LinkData.from_json(applied) if applied else None,
            maybe=[LinkData.from_json(d) for d in data.get("maybe") or []],
            said=_text(data.get("said")),
            change=_text(data.get("change")),
            pending_change=_text(data.get("pending_change")),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class Disabled:
    """An administrator's "commented out" line: never link this announcer to this acceptor."""

    announcer: str
    acceptor: str
    reason: str = ""
    since: str = field(default_factory=now)


@dataclass
class CachedAnnounce:
    """The last good answer of one announcer's adapter and the inputs it was computed from."""

    fingerprint: str
    data: LinkData


@dataclass
class LinkState:
    pairs: dict[PairKey, Pair] = field(default_factory=dict)
    disabled: dict[tuple[str, str], Disabled] = field(default_factory=dict)
    announce_cache: dict[str, CachedAnnounce] = field(default_factory=dict)
    updated: str | None = None

    def is_disabled(self, announcer: str, acceptor: str) -> bool:
        return (announcer, acceptor) in self.disabled

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "updated": self.updated,
            "pairs": [self.pairs[k].to_json() for k in sorted(self.pairs)],
            "disabled": [
                {"announcer": d.announcer, "acceptor": d.acceptor, "reason": d.reason,
                 "since": d.since}
                for _, d in sorted(self.disabled.items())
            ],
            "announce_cache": {
                key: {"fingerprint": c.fingerprint, "data": c.data.to_json()}
                for key, c in sorted(self.announce_cache.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> LinkState:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"expected an object with format {FORMAT}")
        state = cls(updated=data.get("updated"))
        for item in data.get("pairs") or []:
            pair = Pair.from_json(item)
            state.pairs[pair.key] = pair
        for item in data.get("disabled") or []:
            entry = Disabled(str(item["announcer"]), str(item["acceptor"]),
                             str(item.get("reason") or ""), str(item.get("since") or now()))
            state.disabled[(entry.announcer, entry.acceptor)] = entry
        for key, item in (data.get("announce_cache") or {}).items():
            state.announce_cache[str(key)] = CachedAnnounce(
                str(item["fingerprint"]), LinkData.from_json(item["data"]))
        return state


def load_state(settings: Settings) -> LinkState:
    """The current state; an absent file is an empty state."""
    path = state_path(settings)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LinkState()
    except OSError as exc:
        raise ShipyardError(f"{path}: cannot read link state: {exc.strerror}") from None
    try:
        return LinkState.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ShipyardError(
            f"{path}: not valid link state ({exc}); move it aside and run "
            "'shipyard link reconcile --force'") from None


def save_state(settings: Settings, state: LinkState) -> None:
    state.updated = now()
    path = state_path(settings)
    text = json.dumps(state.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    atomic_write(path, text, mode=0o600)
