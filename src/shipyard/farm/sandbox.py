"""The build sandbox: a farm worker runs every ``[build] command`` under bubblewrap.

A pushed commit is code from whoever could push; the worker holds a farm token and runs
on a machine with other things on it. So the command gets (Koji's chroots and OBS's VMs
make the same promise at a higher cost):

* the system read-only: ``/usr``, ``/etc`` and the top-level links into ``/usr``, nothing
  else of the host (no ``/home``, ``/root``, ``/var``, ``/srv``, ``/run``, no worker
  directory); the worker's configuration directory and any other path it names hidden;
* writable: the source tree (``/build/src``), ``$SHIPYARD_DESTDIR`` (``/build/dest``),
  ``HOME`` (``/build/home``), all three inside the build's own directory, and a private
  ``/tmp``; the paths are the same for every build, so nothing a build can see names the
  build (its output does not either);
* no network (a new network namespace with only ``lo``) unless ``[build] network = true``;
* its own PID namespace, killed as a whole when the command exits or the worker dies
  (``--die-with-parent``): nothing a build forks outlives it;
* an environment made from an allow-list: ``PATH`` (the system's directories), ``LANG``
  (``C.UTF-8``), ``HOME``, the manifest's ``[build] env``, the ``SHIPYARD_*`` build
  variables and ``SOURCE_DATE_EPOCH`` (the commit's time): never the worker's own
  variables, so never its token;
* a time limit (the worker's, or the manifest's ``timeout`` when shorter) and a memory
  limit (``ulimit -v``: address space per process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.manifest import Manifest
from shipyard.pkg.pack import BuildCall, BuildVars

INSIDE = Path("/build")
SRC, DEST, HOME = INSIDE / "src", INSIDE / "dest", INSIDE / "home"
DEFAULT_TIME_LIMIT = 7200  # seconds
DEFAULT_MEMORY_LIMIT = 8192  # MiB of address space per process
SYSTEM_DIRS = ("/usr", "/etc", "/opt")
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
# Name resolution for builds with network, when /etc/resolv.conf points there.
RESOLVER_DIRS = ("/run/systemd/resolve", "/run/resolvconf")


class SandboxUnavailable(ShipyardError):
    """bubblewrap is missing or cannot create namespaces here."""


@dataclass(frozen=True)
class Sandbox:
    """One worker's sandbox policy; :meth:`runner` makes the runner of one build.
    ``bwrap`` None is ``--no-sandbox``: the command then runs with the worker's rights, but
    still with the scrubbed environment and the limits."""

    bwrap: str | None
    time_limit: int = DEFAULT_TIME_LIMIT
    memory_limit: int = DEFAULT_MEMORY_LIMIT  # MiB; 0: none
    hide: tuple[Path, ...] = field(default_factory=tuple)

    def runner(self, root: Path, home: Path) -> SandboxRunner:
        return SandboxRunner(self, root, home)


@dataclass(frozen=True)
class SandboxRunner:
    """A :data:`shipyard.pkg.pack.Runner` for one build: ``root`` is the exported tree
    (the package may be a subdirectory of it), ``home`` the host directory of its HOME."""

    sandbox: Sandbox
    root: Path
    home: Path

    def __call__(self, manifest: Manifest, source: Path, destdir: Path,
                 variables: BuildVars) -> BuildCall:
        assert manifest.build is not None
        self.home.mkdir(parents=True, exist_ok=True)
        limit, why = self.sandbox.time_limit or None, "the worker's --build-time-limit"
        if manifest.build.timeout and (limit is None or manifest.build.timeout <= limit):
            limit, why = manifest.build.timeout, "build.timeout"
        command = self.command(manifest.build.command)
        if self.sandbox.bwrap is None:
            env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH,
                   "LANG": os.environ.get("LANG") or "C.UTF-8", **variables,
                   "HOME": str(self.home)}
            return BuildCall(command, env, source, limit, why)
        # Inside, PATH and LANG are the same on every worker (the host's PATH names
        # directories that are not there anyway): a rebuild elsewhere gives the same bytes.
        workdir = SRC / source.relative_to(self.root)
        inside = dict(variables)
        inside.update(SHIPYARD_DESTDIR=str(DEST), SHIPYARD_SOURCE_DIR=str(workdir))
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", **inside, "HOME": str(HOME)}
        argv = [*self.bwrap_args(self.sandbox.bwrap, destdir, workdir,
                                 network=manifest.build.network), "--", *command]
        return BuildCall(argv, env, source, limit, why)

    def command(self, script: str) -> list[str]:
        memory = self.sandbox.memory_limit
        if not memory:
            return ["/bin/sh", "-c", script]
        # dash's ulimit sets the hard limit too: the build cannot raise it again.
        return ["/bin/sh", "-c", 'ulimit -v "$1" || exit 125; exec /bin/sh -c "$2"', "sh",
                str(memory * 1024), script]

    def bwrap_args(self, bwrap: str, destdir: Path, workdir: Path, *,
                   network: bool) -> list[str]:
        args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                "--hostname", "shipyard-build"]
        if network:
            args.append("--share-net")
        for directory in SYSTEM_DIRS:
            if os.path.isdir(directory):
                args += ["--ro-bind", directory, directory]
        for link in TOP_LINKS:
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                args += ["--ro-bind", link, link]
        if network:
            for directory in RESOLVER_DIRS:
                args += ["--ro-bind-try", directory, directory]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                 "--bind", str(self.root), str(SRC), "--bind", str(destdir), str(DEST),
                 "--bind", str(self.home), str(HOME)]
        for path in self.sandbox.hide:
            if not any(_under(path, Path(d)) for d in SYSTEM_DIRS):
                continue  # not mounted in the first place
            if path.is_dir():
                args += ["--tmpfs", str(path)]
            elif path.exists():
                args += ["--ro-bind", "/dev/null", str(path)]
        args += ["--chdir", str(workdir)]
        return args


def _under(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def find_bwrap(configured: str) -> str:
    """The bubblewrap binary, checked to make a sandbox here; else one line saying why."""
    found = shutil.which(configured) if configured else None
    if found is None:
        raise SandboxUnavailable(
            f"bubblewrap ({configured or 'bwrap'}) is not installed (Debian: apt-get install "
            "bubblewrap); a worker runs builds in its sandbox, or start it with --no-sandbox "
            "to run them with the worker's own rights")
    try:
        probe = subprocess.run([found, "--unshare-all", "--die-with-parent", "--ro-bind",
                                "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"{found} does not run: {exc}; start the worker with "
                                 "--no-sandbox to build without a sandbox") from None
    if probe.returncode != 0:
        why = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SandboxUnavailable(
            f"{found} cannot create a sandbox here ({why[-1] if why else 'no output'}; user "
            "namespaces may be disabled); start the worker with --no-sandbox to build "
            "without one")
    return found
