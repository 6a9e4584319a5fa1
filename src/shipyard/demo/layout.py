"""Where the demo keeps everything, and how it clears the place safely.

One directory (``<checkout>/.demo`` by default, ``--dir`` otherwise) holds two Shipyard
homes, the way two machines would: ``farm/`` (coordinator database, signing key, worker
directories) and ``node/`` (software, runtime, registry). Beside them: the developer's
work tree, the bare remote, the repository, the caught mail and the process logs.

The directory is wiped at the start, but only if it is empty or carries the marker file
a previous demo wrote: a mistyped ``--dir`` must never erase somebody's data.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ShipyardError, UsageError

MARKER = ".shipyard-demo"


@dataclass(frozen=True)
class Layout:
    root: Path
    examples: Path

    @property
    def farm_home(self) -> Path:
        return self.root / "farm"

    @property
    def node_home(self) -> Path:
        return self.root / "node"

    @property
    def work(self) -> Path:
        """The developer's clone, made from ``examples/``."""
        return self.root / "src"

    @property
    def bare(self) -> Path:
        """The shared remote with the farm's push hook."""
        return self.root / "src.git"

    @property
    def repository(self) -> Path:
        return self.root / "repository"

    @property
    def maildir(self) -> Path:
        return self.root / "mail"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def process_book(self) -> Path:
        return self.root / "processes.json"

    @property
    def node_key(self) -> Path:
        return self.node_home / "etc" / "keys" / "demo-repository.pub"


def find_examples(given: Path | None) -> Path:
    """``examples/`` of this checkout (the package lives in ``<checkout>/src/shipyard``),
    else of the current directory."""
    if given is not None:
        path = given.expanduser().absolute()
        if not (path / "chat-server" / "shipyard.toml").is_file():
            raise UsageError(f"--examples {path}: not Shipyard's examples/ directory "
                             "(no chat-server/shipyard.toml)")
        return path
    import shipyard

    candidates = [Path(shipyard.__file__).resolve().parents[2] / "examples",
                  Path.cwd() / "examples"]
    for path in candidates:
        if (path / "chat-server" / "shipyard.toml").is_file():
            return path
    raise ShipyardError("cannot find the examples/ directory of a Shipyard checkout: run "
                        "from the checkout or pass --examples DIR")


def default_root(examples: Path) -> Path:
    return examples.parent / ".demo"


def prepare(root: Path) -> None:
    """Empty ``root`` (refusing a non-empty directory without the marker) and mark it.

    The directory is 0755: service instances run as the service user when the demo runs
    as root, and that user must reach the node's software and runtime roots.
    """
    root = root.absolute()
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise UsageError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
        raise UsageError(f"refusing to wipe {root}: it is not empty and was not made by "
                         f"shipyard demo (no {MARKER} file); give an empty or new --dir")
    if root.is_dir():
        for entry in list(root.iterdir()):
            if entry.name == MARKER:
                continue  # kept until the end, so an interrupted wipe can be resumed
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    (root / MARKER).write_text("made by 'shipyard demo'; wiped by the next run\n")
