"""The repository's state in the database: packages, channel membership, dirty counters,
publications.

SQLAlchemy Core rather than ORM objects: the publisher reads whole channels (10,000 rows)
on every run and Core rows cost a fraction of ORM instances. Every method is one short
transaction, so no lock is held while files are written or hooks run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Row, Table, and_, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from shipyard.coords import PackageCoord, newest
from shipyard.db import make_engine, normalise_url
from shipyard.db.repo_models import RepoChannel, RepoChannelPackage, RepoPackage, RepoPublication
from shipyard.formats.index import PackageEntry
from shipyard.timeutil import aware, utcnow

# Declarative classes type ``__table__`` as a FromClause; a mapped class's is a Table.
PKG = cast(Table, RepoPackage.__table__)
CHAN = cast(Table, RepoChannel.__table__)
MEMBER = cast(Table, RepoChannelPackage.__table__)
PUB = cast(Table, RepoPublication.__table__)
_engines: dict[str, Engine] = {}

Key = tuple[str, str, str]  # (group, id, version)


def engine_for(url: str) -> Engine:
    """One engine per database per process (migrations are applied by ``open_repository``)."""
    url = normalise_url(url)
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    return engine


@dataclass(frozen=True)
class StoredPackage:
    pk: int
    entry: PackageEntry


@dataclass(frozen=True)
class ChannelState:
    name: str
    dirty_seq: int
    published_seq: int

    @property
    def dirty(self) -> bool:
        return self.dirty_seq > self.published_seq


@dataclass(frozen=True)
class Publication:
    serial: int
    priority: int
    status: str
    channels: dict[str, int]
    started: datetime
    finished: datetime | None
    message: str


def _entry(row: Row[Any]) -> PackageEntry:
    return PackageEntry(
        group=row.pkg_group, id=row.ident, version=row.version, filename=row.filename,
        size=row.size, sha256=row.sha256, summary=row.summary, maintainer=row.maintainer,
        requires=tuple(json.loads(row.requires or "[]")), service=bool(row.service),
    )


ENTRY_COLUMNS = (PKG.c.pkg_group, PKG.c.ident, PKG.c.version, PKG.c.filename, PKG.c.size,
                 PKG.c.sha256, PKG.c.summary, PKG.c.maintainer, PKG.c.requires, PKG.c.service)


def _entries(rows: Iterable[Sequence[Any]]) -> list[PackageEntry]:
    """Rows of :data:`ENTRY_COLUMNS` as entries, by position (the publisher's hot loop)."""
    parsed: dict[str, tuple[str, ...]] = {"[]": (), "": ()}  # many packages share one list

    def requires(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        value = parsed.get(text)
        if value is None:
            value = parsed[text] = tuple(json.loads(text))
        return value

    return [PackageEntry(g, i, v, f, size, sha, summ, maint, requires(req), bool(svc))
            for g, i, v, f, size, sha, summ, maint, req, svc in rows]


def _values(entry: PackageEntry, now: datetime) -> dict[str, object]:
    return {
        "pkg_group": entry.group, "ident": entry.id, "version": entry.version,
        "filename": entry.filename, "size": entry.size, "sha256": entry.sha256,
        "summary": entry.summary, "maintainer": entry.maintainer,
        "requires": json.dumps(list(entry.requires)), "service": entry.service, "added": now,
    }


class RepoStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    # -- channels ------------------------------------------------------------------------

    def ensure_channels(self, names: Iterable[str]) -> None:
        """Create missing channel rows; a new channel starts dirty so it gets an index."""
        wanted = list(names)
        with self.engine.begin() as conn:
            have = set(conn.execute(select(CHAN.c.name)).scalars())
        for name in wanted:
            if name in have:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(CHAN).values(name=name, dirty_seq=1, published_seq=0))
            except IntegrityError:  # another process created it at the same moment
                pass

    def channel_states(self) -> dict[str, ChannelState]:
        with self.engine.begin() as conn:
            rows = conn.execute(select(CHAN.c.name, CHAN.c.dirty_seq, CHAN.c.published_seq))
            return {r.name: ChannelState(r.name, r.dirty_seq, r.published_seq) for r in rows}

    def mark_dirty(self, names: Iterable[str]) -> None:
        names = sorted(set(names))
        if not names:
            return
        with self.engine.begin() as conn:
            conn.execute(update(CHAN).where(CHAN.c.name.in_(names))
                         .values(dirty_seq=CHAN.c.dirty_seq + 1))

    # -- packages ------------------------------------------------------------------------

    def lookup(self, keys: Iterable[Key]) -> dict[Key, StoredPackage]:
        """The stored packages among ``keys`` (a batch of coordinates)."""
        keys = list(set(keys))
        found: dict[Key, StoredPackage] = {}
        with self.engine.begin() as conn:
            for start in range(0, len(keys), 300):
                chunk = keys[start:start + 300]
                query = select(PKG).where(
                    tuple_(PKG.c.pkg_group, PKG.c.ident, PKG.c.version).in_(chunk))
                for row in conn.execute(query):
                    found[(row.pkg_group, row.ident, row.version)] = StoredPackage(
                        row.id, _entry(row))
        return found

    def find(self, coord: PackageCoord) -> StoredPackage | None:
        assert coord.version is not None
        return self.lookup([(coord.group, coord.id, coord.version)]).get(
            (coord.group, coord.id, coord.version))

    def versions(self, group: str, ident: str) -> list[str]:
        with self.engine.begin() as conn:
            return list(conn.execute(select(PKG.c.version).where(
                and_(PKG.c.pkg_group == group, PKG.c.ident == ident))).scalars())

    def newest_version(self, group: str, ident: str) -> str | None:
        return newest(self.versions(group, ident))

    def accept(self, new: list[tuple[PackageEntry, str]],
               memberships: list[tuple[Key, str]]) -> set[str]:
        """Insert accepted packages and channel memberships in one transaction.

        Returns the channels that gained a member (and were marked dirty). A membership that
        already exists is skipped, so replaying a batch after a crash changes nothing.
        """
        now = utcnow()
        dirty: set[str] = set()
        members = [*memberships,
                   *(((e.group, e.id, e.version), ch) for e, ch in new)]
        with self.engine.begin() as conn:
            if new:
                conn.execute(insert(PKG), [_values(entry, now) for entry, _ in new])
            ids: dict[Key, int] = {}
            keys = sorted({key for key, _ in members})
            for start in range(0, len(keys), 300):
                rows = conn.execute(select(PKG.c.id, PKG.c.pkg_group, PKG.c.ident,
                                           PKG.c.version).where(
                    tuple_(PKG.c.pkg_group, PKG.c.ident, PKG.c.version).in_(
                        keys[start:start + 300])))
                for row in rows:
                    ids[(row.pkg_group, row.ident, row.version)] = row.id
            pairs = {(ch, ids[key]) for key, ch in members}
            if pairs:
                existing: set[tuple[str, int]] = set()
                pks = sorted({pk for _, pk in pairs})
                for start in range(0, len(pks), 500):
                    rows = conn.execute(select(MEMBER.c.channel, MEMBER.c.package_id).where(
                        MEMBER.c.package_id.in_(pks[start:start + 500])))
                    existing.update((r.channel, r.package_id) for r in rows)
                fresh = sorted(pairs - existing)
                if fresh:
                    conn.execute(insert(MEMBER), [
                        {"channel": ch, "package_id": pk, "added": now} for ch, pk in fresh])
                    dirty = {ch for ch, _ in fresh}
                    conn.execute(update(CHAN).where(CHAN.c.name.in_(sorted(dirty)))
                                 .values(dirty_seq=CHAN.c.dirty_seq + 1))
        return dirty

    def channel_entries(self, channel: str) -> list[PackageEntry]:
        query = (select(*ENTRY_COLUMNS).join(MEMBER, MEMBER.c.package_id == PKG.c.id)
                 .where(MEMBER.c.channel == channel))
        with self.engine.begin() as conn:
            return _entries(conn.execute(query).fetchall())

    def memberships(self, pk: int) -> list[str]:
        with self.engine.begin() as conn:
            return sorted(conn.execute(select(MEMBER.c.channel).where(
                MEMBER.c.package_id == pk)).scalars())

    # -- publications --------------------------------------------------------------------

    def begin_publication(self, priority: int, floor: int, channels: dict[str, int]) -> int:
        """Allocate the next serial (never reused, also after a discarded pass)."""
        with self.engine.begin() as conn:
            last = conn.execute(select(func.max(PUB.c.serial))).scalar() or 0
            serial = max(last, floor) + 1
            conn.execute(insert(PUB).values(
                serial=serial, priority=priority, status="building",
                channels=json.dumps(channels, sort_keys=True), started=utcnow(), message=""))
        return serial

    def finish_publication(self, serial: int, status: str, message: str = "") -> None:
        """Close a publication; ``published`` also marks its channels clean up to the
        ``dirty_seq`` it rendered (a later change keeps the channel dirty)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(PUB.c.channels).where(PUB.c.serial == serial)).first()
            conn.execute(update(PUB).where(PUB.c.serial == serial).values(
                status=status, finished=utcnow(), message=message))
            if status == "published" and row is not None:
                for name, seq in json.loads(row.channels).items():
                    conn.execute(update(CHAN).where(
                        and_(CHAN.c.name == name, CHAN.c.published_seq < seq))
                        .values(published_seq=seq))

    def publications(self, status: str | None = None, limit: int | None = None
                     ) -> list[Publication]:
        query = select(PUB).order_by(PUB.c.serial.desc())
        if status is not None:
            query = query.where(PUB.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.begin() as conn:
            return [Publication(r.serial, r.priority, r.status, json.loads(r.channels),
                                aware(r.started), aware(r.finished), r.message)
                    for r in conn.execute(query)]
