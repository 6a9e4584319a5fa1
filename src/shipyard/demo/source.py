"""The developer's side: a git work tree made from ``examples/``, a bare remote with the
farm's push hook, and the changes the demo pushes (a version bump, a broken build).

The examples are copied as they are, with one exception: a transport announces a static
port (5347, 5348); when this machine already uses one, the copy gets a free port instead,
so the demo runs on a busy host and beside its own test.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from shipyard.demo.commands import Runner
from shipyard.demo.netutil import port_or_free
from shipyard.errors import ShipyardError

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
PORT_LINE = re.compile(r"(generate = \{ port = )(\d+)(,)")
VERSION_LINE = re.compile(r'^version = "([^"]+)"$', re.MULTILINE)


@dataclass
class Push:
    commit: str
    output: str

    def build_ids(self) -> list[int]:
        """Builds the hook reports as created (``shipyard farm: build N queued: ...``)."""
        ids = []
        for line in self.output.splitlines():
            match = re.search(r"shipyard farm: build (\d+) ", line)
            if match:
                ids.append(int(match.group(1)))
        return ids


def copy_examples(examples: Path, work: Path) -> dict[str, Path]:
    """Copy every example package (a directory with ``shipyard.toml``) into ``work``."""
    copied = {}
    work.mkdir(parents=True, exist_ok=True)
    for source in sorted(examples.iterdir()):
        if not (source / "shipyard.toml").is_file():
            continue
        target = work / source.name
        shutil.copytree(source, target, ignore=IGNORE, symlinks=True)
        copied[source.name] = target
    if "chat-server" not in copied:
        raise ShipyardError(f"{examples} holds no chat-server example")
    return copied


def free_announced_ports(package: Path, taken: set[int]) -> int | None:
    """Move the package's announced static port to a free one if it is in use (or
    ``taken`` by another package of the demo); returns the port."""
    manifest = package / "shipyard.toml"
    text = manifest.read_text(encoding="utf-8")
    match = PORT_LINE.search(text)
    if match is None:
        return None
    port = port_or_free(int(match.group(2)), taken)
    manifest.write_text(PORT_LINE.sub(lambda m: f"{m.group(1)}{port}{m.group(3)}", text,
                                      count=1), encoding="utf-8")
    return port


def version_of(package: Path) -> str:
    match = VERSION_LINE.search((package / "shipyard.toml").read_text(encoding="utf-8"))
    if match is None:
        raise ShipyardError(f"{package}/shipyard.toml has no version line")
    return match.group(1)


def set_version(package: Path, version: str) -> None:
    manifest = package / "shipyard.toml"
    text, count = VERSION_LINE.subn(f'version = "{version}"',
                                    manifest.read_text(encoding="utf-8"), count=1)
    if count != 1:
        raise ShipyardError(f"{manifest}: no version line to bump")
    manifest.write_text(text, encoding="utf-8")


def bump(version: str) -> str:
    """1.0.0 -> 1.1.0: the minor part, as a feature change would."""
    parts = version.split(".")
    if len(parts) < 2 or not parts[1].isdigit():
        return version + ".1"
    parts[1] = str(int(parts[1]) + 1)
    parts[2:] = ["0"] * len(parts[2:])
    return ".".join(parts)


def create(runner: Runner, work: Path, bare: Path) -> None:
    """``git init`` the work tree and a bare remote; the first commit is made by push."""
    bare.mkdir(parents=True, exist_ok=True)
    runner.git("init", "-q", "--bare", str(bare), cwd=bare.parent)
    runner.git("init", "-q", cwd=work)
    runner.git("remote", "add", "origin", str(bare), cwd=work)
    (work / "README.md").write_text(
        "# Example services\n\nMade by `shipyard demo` from Shipyard's `examples/`: every\n"
        "directory with a `shipyard.toml` is a package the farm builds on push.\n",
        encoding="utf-8")


def commit_and_push(runner: Runner, work: Path, message: str) -> Push:
    runner.git("add", "-A", cwd=work)
    runner.git("commit", "-q", "-m", message, cwd=work)
    commit = runner.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    pushed = runner.git("push", "origin", "HEAD:refs/heads/main", cwd=work)
    return Push(commit, pushed.stderr)
