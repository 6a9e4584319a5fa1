"""Read a repository as a node does: verify the release, the index, then each archive.

The chain of trust, per :mod:`shipyard.formats.index`: ``current/release.json`` is checked
against its detached signature by a configured key, and must not be expired; the channel
index is fetched **by serial** from ``generations/<serial>/`` and must match the size and
sha256 the release names; an archive is downloaded to a temporary file and must match the
size and sha256 its index entry names before anyone unpacks it.

The signature is fetched by serial too (``generations/<serial>/release.json.sig``), so a
publication that flips ``current`` between the two requests cannot pair one release with
another's signature. The highest serial seen per repository URL is remembered under the
state dir, and a release with a lower serial is refused: an attacker (or a stale mirror)
replaying an older, still valid, signed release must not roll a node back.

Like apt, a node refuses a repository it cannot verify: without a configured key it reads
one only when the operator opted in (``repo.trust = unsigned`` or ``--allow-unsigned``),
with a warning every time, and never remembers the serial of a release it did not verify
(an unsigned serial of 10^12 would otherwise lock the URL out for good). With a key, a
missing or bad signature is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError, VerificationError
from shipyard.formats.index import (
    RELEASE_NAME,
    SIGNATURE_NAME,
    ChannelIndex,
    PackageEntry,
    Release,
    generation_path,
)
from shipyard.formats.signing import PublicKey, verify_detached
from shipyard.fsutil import atomic_write, file_lock, remove_tree
from shipyard.pkg.progress import ByteProgress

MAX_RELEASE_BYTES = 4 << 20
MAX_INDEX_BYTES = 512 << 20
CHUNK = 1 << 20


class _NotFound(ShipyardError):
    pass


class RepositoryClient:
    """A verified view of one channel of one repository (``file://`` or ``http(s)://``)."""

    def __init__(self, url: str, *, keys: list[PublicKey], channel: str,
                 state_dir: str | os.PathLike[str] | None = None,
                 timeout: float = 30.0, allow_unsigned: bool = False) -> None:
        if not url:
            raise ShipyardError("no repository configured (set repo.url or pass --repo-url)")
        self.url = _normalise(url)
        self.keys = list(keys)
        self.channel = channel
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(self.url)
        self._scheme = parsed.scheme
        if self._scheme == "file":
            self._root: Path | None = Path(urllib.parse.unquote(parsed.path))
        elif self._scheme in ("http", "https"):
            self._root = None
        else:
            raise ShipyardError(f"repository URL {url!r}: unsupported scheme (expected "
                                "file://, http:// or https://)")
        self._http: Any = None
        self._release: Release | None = None
        self._index: ChannelIndex | None = None
        self._release_bytes = b""
        self.signed_by: str | None = None
        self.allow_unsigned = allow_unsigned
        # Lines for the user (the unsigned-trust warning): shown by the caller, each time.
        self.warnings: list[str] = []

    # -- transport ---------------------------------------------------------------------

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> RepositoryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _client(self) -> Any:
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=self.timeout, follow_redirects=True,
                                      headers={"User-Agent": "shipyard-pkg"})
        return self._http

    def location(self, relpath: str) -> str:
        return self.url + relpath

    def _open(self, relpath: str) -> _Opener:
        """A context giving ``(chunks iterator, announced length)`` for ``relpath``."""
        return _Opener(self, relpath)

    def _get(self, relpath: str, limit: int) -> bytes:
        with self._open(relpath) as (chunks, _length):
            parts: list[bytes] = []
            total = 0
            for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise VerificationError(f"{self.location(relpath)}: larger than "
                                            f"{limit} bytes")
                parts.append(chunk)
            return b"".join(parts)

    # -- metadata ----------------------------------------------------------------------

    def release(self) -> Release:
        """The current release, signature-checked, fresh and not older than seen before.

        A publisher run may flip ``current`` and prune the old generation between our
        reads; that is told apart from a missing signature by reading ``current`` again,
        and the whole read is retried once.
        """
        if self._release is not None:
            return self._release
        where = self.location(f"current/{RELEASE_NAME}")
        if not self.keys and not self.allow_unsigned:
            raise VerificationError(
                f"{self.url}: no repo.key is configured to verify this repository, and "
                "unsigned repositories are refused; add its public key to repo.key (see "
                "'shipyard repo keygen'), or opt in with repo.trust = unsigned or "
                "--allow-unsigned")
        for attempt in (1, 2):
            data, envelope = self._read_release(where)
            if envelope is not None or not self.keys or not self._current_changed(data):
                break
            if attempt == 2:
                raise VerificationError(
                    f"{where}: the repository changed while it was read (a new publication "
                    "replaced it twice in a row); try again")
        release = Release.from_bytes(data, where)
        if self.keys:
            if envelope is None:
                raise VerificationError(
                    f"{where}: repository is unsigned (no {SIGNATURE_NAME}) but repo.key "
                    "is configured; refusing it")
            self.signed_by = verify_detached(data, envelope, self.keys, where)
        else:
            self.warnings.append(
                f"{self.url} is read WITHOUT signature verification (repo.trust = unsigned "
                "or --allow-unsigned): whoever can change it or the connection to it "
                "chooses what is installed")
        release.check_fresh(where)
        if self.signed_by is not None:
            # Only a verified serial is remembered: an unverified one (10^12, say) would
            # lock this URL out once it is signed.
            self._check_serial(release, where)
        self._release = release
        self._release_bytes = data
        return release

    def _read_release(self, where: str) -> tuple[bytes, bytes | None]:
        """``current/release.json`` and, with keys, its signature fetched by serial."""
        try:
            data = self._get(f"current/{RELEASE_NAME}", MAX_RELEASE_BYTES)
        except _NotFound:
            raise ShipyardError(f"{where}: not found (is {self.url} a published "
                                "repository?)") from None
        if not self.keys:
            return data, None
        serial = Release.from_bytes(data, where).serial
        try:
            return data, self._get(f"{generation_path(serial)}/{SIGNATURE_NAME}",
                                   MAX_RELEASE_BYTES)
        except _NotFound:
            return data, None

    def _current_changed(self, data: bytes) -> bool:
        """Whether ``current/release.json`` now differs from ``data`` (or is gone)."""
        try:
            return self._get(f"current/{RELEASE_NAME}", MAX_RELEASE_BYTES) != data
        except _NotFound:
            return True

    def index(self) -> ChannelIndex:
        """The channel's index, fetched by serial and checked against the release.

        Retried once from a fresh release when the generation was pruned meanwhile.
        """
        if self._index is not None:
            return self._index
        try:
            self._index = self._read_index()
        except _NotFound as missing:
            if not self._current_changed(self._release_bytes):
                raise VerificationError(missing.message) from None
            self._release = None
            try:
                self._index = self._read_index()
            except _NotFound:
                raise VerificationError(
                    f"{self.url}: the repository changed while it was read (a new "
                    "publication replaced it twice in a row); try again") from None
        return self._index

    def _read_index(self) -> ChannelIndex:
        release = self.release()
        ref = release.channels.get(self.channel)
        if ref is None:
            known = ", ".join(sorted(release.channels)) or "none"
            raise ShipyardError(f"{self.url}: no channel {self.channel!r} (channels: {known})")
        relpath = f"{generation_path(release.serial)}/{ref.path}"
        where = self.location(relpath)
        try:
            data = self._get(relpath, min(MAX_INDEX_BYTES, max(ref.size, 0) + 1))
        except _NotFound:
            raise _NotFound(f"{where}: not found (release {release.serial} names "
                            "it)") from None
        except VerificationError:
            raise VerificationError(f"{where}: index of channel {self.channel} does not "
                                    f"match release {release.serial}") from None
        return release.check_index(self.channel, data, where)

    def _check_serial(self, release: Release, where: str) -> None:
        if self.state_dir is None:
            return
        path = self.state_dir / "serials.json"
        with file_lock(self.state_dir / "serials.lock", timeout=30, what="the serial record"):
            seen = _read_serials(path)
            highest = int(seen.get(self.url, 0))
            if release.serial < highest:
                raise VerificationError(
                    f"{where}: release serial {release.serial} is older than serial "
                    f"{highest} seen before from this repository (rollback or stale "
                    "mirror; refusing it)")
            if release.serial > highest:
                seen[self.url] = release.serial
                atomic_write(path, json.dumps(seen, indent=1, sort_keys=True) + "\n")

    # -- archives ----------------------------------------------------------------------

    def fetch_archive(self, entry: PackageEntry, dest_dir: str | os.PathLike[str], *,
                      progress: bool = False) -> Path:
        """Download ``entry``'s archive into a new dir below ``dest_dir``; size and sha256
        are checked against the index entry before the path is returned."""
        import hashlib

        directory = Path(tempfile.mkdtemp(prefix="fetch-", dir=dest_dir))
        target = directory / Path(entry.filename).name
        digest = hashlib.sha256()
        bar = ByteProgress(f"fetching {entry.coord}", entry.size) if progress else None
        try:
            self._download(entry, target, digest, bar)
        except BaseException:
            with contextlib.suppress(OSError):
                remove_tree(directory)
            raise
        return target

    def _download(self, entry: PackageEntry, target: Path, digest: Any,
                  bar: ByteProgress | None) -> None:
        where = self.location(entry.filename)
        total = 0
        try:
            with self._open(entry.filename) as (chunks, length), open(target, "wb") as out:
                if length is not None and length != entry.size:
                    raise VerificationError(f"{where}: size {length} does not match the "
                                            f"signed index ({entry.size})")
                for chunk in chunks:
                    total += len(chunk)
                    if total > entry.size:
                        raise VerificationError(f"{where}: larger than the signed index "
                                                f"says ({entry.size} bytes)")
                    digest.update(chunk)
                    out.write(chunk)
                    if bar is not None:
                        bar.advance(len(chunk))
        except _NotFound:
            raise ShipyardError(f"{where}: not found (the index lists "
                                f"{entry.coord})") from None
        finally:
            if bar is not None:
                bar.close()
        if total != entry.size:
            raise VerificationError(f"{where}: size {total} does not match the signed index "
                                    f"({entry.size})")
        actual = digest.hexdigest()
        if actual != entry.sha256:
            raise VerificationError(f"{where}: sha256 {actual} does not match the signed "
                                    f"index ({entry.sha256})")


class _Opener:
    """Streams a repository file over file:// or HTTP as byte chunks."""

    def __init__(self, client: RepositoryClient, relpath: str) -> None:
        self.client = client
        self.relpath = relpath
        self._closer: Callable[[], None] | None = None

    def __enter__(self) -> tuple[Any, int | None]:
        client = self.client
        where = client.location(self.relpath)
        if client._root is not None:
            path = client._root / self.relpath
            try:
                handle = open(path, "rb")  # closed in __exit__
            except (FileNotFoundError, NotADirectoryError):
                raise _NotFound(f"{where}: not found") from None
            except OSError as exc:
                raise ShipyardError(f"{where}: cannot read: {exc.strerror}") from None
            self._closer = handle.close
            length = os.fstat(handle.fileno()).st_size
            return iter(lambda: handle.read(CHUNK), b""), length
        import httpx

        try:
            request = client._client().build_request("GET", where)
            response = client._client().send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ShipyardError(f"{where}: cannot fetch: {exc}") from None
        self._closer = response.close
        if response.status_code == 404:
            response.close()
            raise _NotFound(f"{where}: not found")
        if response.status_code != 200:
            response.close()
            raise ShipyardError(f"{where}: HTTP {response.status_code}")
        length_header = response.headers.get("content-length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if response.headers.get("content-encoding", "identity") not in ("identity", ""):
            length = None
        return _http_chunks(response, where), length

    def __exit__(self, *exc_info: object) -> None:
        if self._closer is not None:
            self._closer()


def _http_chunks(response: Any, where: str) -> Any:
    import httpx

    try:
        yield from response.iter_bytes(CHUNK)
    except httpx.HTTPError as exc:
        raise ShipyardError(f"{where}: download failed: {exc}") from None


def _normalise(url: str) -> str:
    """``/srv/repo`` means ``file:///srv/repo``; the URL always ends with ``/``."""
    if "://" not in url:
        url = Path(os.path.abspath(os.path.expanduser(url))).as_uri()
    return url if url.endswith("/") else url + "/"


def _read_serials(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise ShipyardError(f"{path}: unreadable serial record (delete it to start over; "
                            "rollback protection restarts from the next release)") from None
    return data if isinstance(data, dict) else {}
