"""Helpers of the pkg tests: package sources, hostile archives, file trees, repositories."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import Shipyard
from kit.manifest import manifest_text as kit_manifest_text

GROUP = "org.test"


def manifest_text(ident: str, version: str, *, group: str = GROUP,
                  requires: list[str] | None = None, build: str | None = None) -> str:
    """A test package's manifest; ``build`` is its build command."""
    return kit_manifest_text(group, ident, version, summary=f"test package {ident}",
                             requires=requires or None,
                             tables={"build": {"command": build} if build else None})


def make_source(base: Path, ident: str, version: str, *, requires: list[str] | None = None,
                files: dict[str, bytes] | None = None, group: str = GROUP) -> Path:
    """A package source dir with a manifest, an executable and a data file."""
    src = base / f"src-{ident}-{version}"
    src.mkdir(parents=True)
    (src / "shipyard.toml").write_text(manifest_text(ident, version, group=group,
                                                     requires=requires))
    (src / "bin").mkdir()
    run = src / "bin" / "run"
    run.write_text(f"#!/bin/sh\necho {ident} {version}\n")
    run.chmod(0o755)
    (src / "share").mkdir()
    (src / "share" / "data.txt").write_text(f"data of {ident} {version}\n")
    for name, body in (files or {}).items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return src


def pack(shipyard: Shipyard, src: Path, out: Path) -> Path:
    result = shipyard.run("pkg", "pack", str(src), "--out", str(out))
    return Path(result.stdout.strip())


@contextlib.contextmanager
def removing_deep_trees(*roots: Path) -> Iterator[None]:
    """Remove ``roots`` at the end, whatever happened: pytest's clean-up of old temporary
    dirs uses shutil.rmtree, which a tree 1,100 levels deep would crash (RecursionError)
    at the end of a later session."""
    from shipyard.fsutil import remove_tree

    try:
        yield
    finally:
        for root in roots:
            remove_tree(root)


def deep_tree(base: Path, depth: int, leaf: bytes = b"x") -> None:
    """``base/d/d/.../d/f``, ``depth`` directories deep, made without recursion (os.makedirs
    recurses once per level) and relative to an open directory (no long path names). Use
    inside :func:`removing_deep_trees`."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _level in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf_fd = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf_fd, leaf)
        os.close(leaf_fd)
    finally:
        os.close(fd)


def tree_entries(root: Path) -> list[str]:
    """Every path below ``root`` (relative), for 'nothing was left behind' checks."""
    if not root.exists():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


# ---------------------------------------------------------------------------------------
# Hostile archives, built member by member


def _info(name: str, *, type_: bytes = tarfile.REGTYPE, size: int = 0, mode: int = 0o644,
          linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.size = size
    info.mode = mode
    info.linkname = linkname
    return info


Member = tuple[tarfile.TarInfo, bytes | None]


def file_member(name: str, body: bytes, mode: int = 0o644) -> Member:
    return _info(name, size=len(body), mode=mode), body


def tar_bytes(members: list[Member], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return raw.getvalue()


def gz(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def good_manifest(ident: str = "evil", version: str = "1.0") -> Member:
    return file_member("shipyard.toml", manifest_text(ident, version).encode())


@dataclass
class Hostile:
    name: str
    expect: str  # a fragment the one-line error must contain
    build: Callable[[], bytes]  # the archive's bytes
    filename: str = "evil-1.0.tar.gz"
    env: dict[str, str] = field(default_factory=dict)


def _huge_header() -> bytes:
    """The manifest, then a member claiming 1 TiB and no data: refused from its header."""
    info, body = good_manifest()
    assert body is not None
    padding = b"\0" * (-len(body) % tarfile.BLOCKSIZE)
    huge = _info("big.bin", size=1 << 40).tobuf(tarfile.GNU_FORMAT)
    return gz(info.tobuf(tarfile.GNU_FORMAT) + body + padding + huge)


def _bomb() -> bytes:
    zeros = bytes(40 << 20)
    return gz(tar_bytes([good_manifest(), file_member("zeros.bin", zeros)]), level=9)


def _truncated() -> bytes:
    body = os.urandom(200_000)
    whole = gz(tar_bytes([good_manifest(), file_member("data.bin", body)]))
    return whole[: len(whole) // 2]


def _pax_bomb() -> bytes:
    """A pax extended header of 2 MiB: tarfile would read it into memory in one go."""
    info = _info("x.txt", size=1)
    info.pax_headers = {"comment": "A" * (2 << 20)}
    return gz(tar_bytes([good_manifest(), (info, b"x")]))


def _zstd_truncated() -> bytes:
    import zstandard

    data = tar_bytes([good_manifest(), file_member("data.bin", os.urandom(100_000))])
    frame = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    return frame[:-20]


def _data_in_tar_padding() -> bytes:
    """Bytes hidden in the zero padding after the end-of-archive marker (inside the
    record tarfile reads ahead), where no member check sees them."""
    data = bytearray(tar_bytes([good_manifest(), file_member("ok.txt", b"fine\n")]))
    data[-100:-90] = b"hidden!!!!"
    return gz(bytes(data))


def deep_name(depth: int, leaf: str = "f") -> str:
    return "d/" * depth + leaf


def hostile_corpus() -> list[Hostile]:
    """Archives that must all be refused, each for its own reason."""
    m = good_manifest
    ok = file_member("ok.txt", b"fine\n")
    return [
        Hostile("absolute-path", "absolute path",
                lambda: gz(tar_bytes([m(), file_member("/tmp/shipyard-evil", b"x")]))),
        Hostile("dotdot", "'..' path component",
                lambda: gz(tar_bytes([m(), file_member("../evil", b"x")]))),
        Hostile("dotdot-nested", "'..' path component",
                lambda: gz(tar_bytes([m(), file_member("a/../../evil", b"x")]))),
        Hostile("symlink-escape", "is a symlink",
                lambda: gz(tar_bytes([m(), (_info("etc", type_=tarfile.SYMTYPE,
                                                  linkname="/etc"), None),
                                      file_member("etc/passwd", b"x")]))),
        Hostile("symlink-inside", "is a symlink",
                lambda: gz(tar_bytes([m(), ok, (_info("alias", type_=tarfile.SYMTYPE,
                                                      linkname="ok.txt"), None)]))),
        Hostile("hardlink-escape", "is a hardlink",
                lambda: gz(tar_bytes([m(), (_info("pw", type_=tarfile.LNKTYPE,
                                                  linkname="/etc/passwd"), None)]))),
        Hostile("char-device", "is a character device",
                lambda: gz(tar_bytes([m(), (_info("null", type_=tarfile.CHRTYPE), None)]))),
        Hostile("block-device", "is a block device",
                lambda: gz(tar_bytes([m(), (_info("sda", type_=tarfile.BLKTYPE), None)]))),
        Hostile("fifo", "is a fifo",
                lambda: gz(tar_bytes([m(), (_info("pipe", type_=tarfile.FIFOTYPE), None)]))),
        Hostile("setuid", "setuid",
                lambda: gz(tar_bytes([m(), file_member("bin/su", b"x", mode=0o4755)]))),
        Hostile("sticky-dir", "sticky",
                lambda: gz(tar_bytes([m(), (_info("tmp", type_=tarfile.DIRTYPE,
                                                  mode=0o1777), None)]))),
        Hostile("duplicate", "appears twice",
                lambda: gz(tar_bytes([m(), ok, file_member("ok.txt", b"other\n")]))),
        Hostile("duplicate-manifest", "appears twice",
                lambda: gz(tar_bytes([m(), m()]))),
        Hostile("below-a-file", "below the regular file",
                lambda: gz(tar_bytes([m(), ok, file_member("ok.txt/inner", b"x")]))),
        Hostile("reserved-dir", "reserved for the installer",
                lambda: gz(tar_bytes([m(), file_member(".shipyard/installed.json", b"{}")]))),
        Hostile("member-count", "more than 50 members",
                lambda: gz(tar_bytes([m()] + [file_member(f"f{i}", b"") for i in range(60)])),
                env={"SHIPYARD_PKG_MAX_MEMBERS": "50"}),
        Hostile("too-large", "unpacks to more than", _huge_header),
        Hostile("decompression-bomb", "decompression bomb", _bomb),
        Hostile("pax-header-bomb", "extended tar header", _pax_bomb),
        Hostile("truncated", "truncated", _truncated),
        Hostile("zstd-truncated", "truncated", _zstd_truncated, filename="evil-1.0.tar.zst"),
        Hostile("not-gzip", "damaged gz stream", lambda: os.urandom(4096)),
        Hostile("trailing-garbage", "damaged gz stream",
                lambda: gz(tar_bytes([m(), ok])) + b"garbage after the gzip member"),
        Hostile("missing-manifest", "no shipyard.toml",
                lambda: gz(tar_bytes([ok]))),
        Hostile("manifest-in-subdir", "no shipyard.toml",
                lambda: gz(tar_bytes([file_member("sub/shipyard.toml",
                                                  manifest_text("evil", "1.0").encode())]))),
        Hostile("other-coordinate", "does not match its manifest",
                lambda: gz(tar_bytes([good_manifest("other", "1.0"), ok]))),
        Hostile("wrong-file-name", "does not match its manifest",
                lambda: gz(tar_bytes([m(), ok])), filename="evil-2.0.tar.gz"),
        Hostile("bad-manifest", "package.colour: unknown key",
                lambda: gz(tar_bytes([file_member(
                    "shipyard.toml",
                    manifest_text("evil", "1.0").replace("[package]",
                                                         '[package]\ncolour = "red"').encode()),
                                      ok]))),
        Hostile("manifest-not-toml", "not valid TOML",
                lambda: gz(tar_bytes([file_member("shipyard.toml", b"[package\n"), ok]))),
        # Names that install but break the node afterwards (issue 14, items 9 and 10).
        Hostile("too-deep", "is 1101 levels deep (at most 128 allowed)",
                lambda: gz(tar_bytes([m(), file_member(deep_name(1100), b"x")]))),
        Hostile("long-name-component", "has a name component of 300 bytes (at most 255",
                lambda: gz(tar_bytes([m(), file_member("a" * 300, b"x")]))),
        Hostile("long-path", "has a path of 4019 bytes (at most 3072 allowed)",
                lambda: gz(tar_bytes([m(), file_member("/".join(["b" * 200] * 20), b"x")]))),
        # Data after the end (issue 14, item 14).
        Hostile("second-gzip-member", "data after the end of the gzip member",
                lambda: gz(tar_bytes([m(), ok])) + gz(tar_bytes([file_member("evil", b"x")]))),
        Hostile("data-after-tar-end", "data after the end of the tar archive",
                lambda: gz(tar_bytes([m(), ok]) + b"hidden after the records")),
        Hostile("data-in-tar-padding", "data after the end of the tar archive",
                _data_in_tar_padding),
        Hostile("manifest-is-dir", "no shipyard.toml",
                lambda: gz(tar_bytes([(_info("shipyard.toml", type_=tarfile.DIRTYPE,
                                             mode=0o755), None), ok]))),
    ]


# ---------------------------------------------------------------------------------------
# A repository published with the real ``shipyard repo`` CLI


@dataclass
class Repo:
    shipyard: Shipyard
    root: Path
    workdir: Path

    @property
    def url(self) -> str:
        return self.root.as_uri()

    @property
    def private_key(self) -> Path:
        return self.shipyard.home / "state" / "keys" / "repository.key"

    @property
    def public_key(self) -> Path:
        return self.private_key.with_name("repository.key.pub")

    def node_env(self, *, key: bool = True, url: str | None = None) -> dict[str, str]:
        env = {"SHIPYARD_REPO_URL": url or self.url}
        if key:
            env["SHIPYARD_REPO_KEY"] = str(self.public_key)
        return env

    def add(self, ident: str, version: str, *, channel: str | None = None,
            requires: list[str] | None = None, files: dict[str, bytes] | None = None) -> Path:
        """Pack (in-process: ``pkg pack`` has tests of its own) and upload with the CLI."""
        from shipyard.pkg.pack import pack_directory

        src = make_source(self.workdir / "src" / channel_dir(channel), ident, version,
                          requires=requires, files=files)
        archive = pack_directory(src, self.workdir / "out" / src.name)
        extra = ("--channel", channel) if channel else ()
        self.shipyard.run("repo", "upload", str(archive), "--repo", str(self.root), *extra)
        return archive

    def copy(self, base: Path) -> Repo:
        """An independent copy (layout, database, publications) to tamper with."""
        import shutil

        root = base / "repo-copy"
        shutil.copytree(self.root, root, symlinks=True)
        workdir = base / "work-copy"
        workdir.mkdir()
        return Repo(self.shipyard, root, workdir)

    def publish(self, *extra: str) -> None:
        self.shipyard.run("repo", "publish", "--repo", str(self.root), *extra)

    def generation(self) -> Path:
        return (self.root / "current").resolve()

    def pool_file(self, ident: str, version: str) -> Path:
        return (self.root / "pool" / "org" / "test" / ident / version
                / f"{ident}-{version}.tar.gz")

    def resign(self, edit: Callable[[dict], None]) -> None:
        """Rewrite the current release.json with ``edit`` and sign it again with the
        repository's own key: a release that verifies but says something else."""
        import json as _json

        from shipyard.formats.index import dump_json
        from shipyard.formats.signing import load_private_key, sign_detached

        generation = self.generation()
        release_path = generation / "release.json"
        data = _json.loads(release_path.read_bytes())
        edit(data)
        body = dump_json(data)
        release_path.write_bytes(body)
        key = load_private_key(self.private_key)
        (generation / "release.json.sig").write_bytes(sign_detached(body, [key]))

    def rewrite_index(self, channel: str, edit: Callable[[dict], None]) -> None:
        """Edit a channel index and update the release's size/sha256 for it, re-signed."""
        import hashlib as _hashlib
        import json as _json

        from shipyard.formats.index import dump_json

        index_path = self.generation() / "dists" / channel / "index.json"
        data = _json.loads(index_path.read_bytes())
        edit(data)
        body = dump_json(data)
        index_path.write_bytes(body)

        def fix(release: dict) -> None:
            release["channels"][channel]["size"] = len(body)
            release["channels"][channel]["sha256"] = _hashlib.sha256(body).hexdigest()

        self.resign(fix)


def channel_dir(channel: str | None) -> str:
    return channel or "default"


def make_repo(shipyard: Shipyard, base: Path) -> Repo:
    root = base / "repo"
    shipyard.run("repo", "init", str(root))
    shipyard.run("repo", "keygen", "--repo", str(root))
    workdir = base / "work"
    workdir.mkdir(exist_ok=True)
    return Repo(shipyard, root, workdir)
