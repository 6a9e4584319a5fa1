"""Fleet propagation: a committed announcement change to the accept adapter having run on
N acceptor nodes, and the coordinator's memory with N parked long polls.

The coordinator is the real one (``shipyard farm serve`` under Uvicorn) on PostgreSQL,
with a real signed repository holding an announcing and an accepting package. The nodes
are light in-process clients over HTTP (one asyncio task each, its own credential and
X25519 key, joined through ``POST /api/fleet/join``), doing what the agent's links step
does: long-poll the desired document by index; the acceptors open the sealed password
with their own key and run an accept "adapter" (``/bin/true``, a real process) when the
announcement changed; the announcer seals a new password for every acceptor node listed
in its document and publishes it.

Per run the announcer publishes a new password; t0 is when the publish answered (the
change is committed), t_i when node i's adapter exited; the run's figure is the p95 of
t_i - t0 over the N nodes. Baseline in the same setup, named ``wakeup``: an operator
change that bumps the revision without touching any link (a pair disabled between two
instances that do not exist), timed to each node's receipt of the new document: the
long poll's own fan-out, the floor under propagation.

Memory: the coordinator process's RSS before any node joined and with every node's long
poll parked (after the runs, nothing changing).

End to end (``--parts e2e``, in ``bench/fleet_e2e.py``): ``git push`` of a fixed package to
the new version running on 20 real node agents, against the farm's part alone.

    .venv/bin/python bench/fleet.py [--nodes 100,1000] [--runs 5] [--parts propagation,e2e]
        [--e2e-nodes 20] [--e2e-runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
import psutil  # noqa: E402

from shipyard.formats import fleet as wire  # noqa: E402
from shipyard.formats import sealing  # noqa: E402

PG_ADMIN = os.environ.get("SHIPYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IFACE = "bench-link"
ACCEPTOR_SVC = "1.acceptor.bench.fleet"
ANNOUNCER_SVC = "1.announcer.bench.fleet"
ACCEPT_PKG = "bench.fleet:acceptor:1.0.0"
ANNOUNCE_PKG = "bench.fleet:announcer:1.0.0"
WAIT = 60.0


def log(message: str) -> None:
    print(f"fleet bench: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


# -- setup: repository, database, coordinator --------------------------------------------------


def make_repository(base: Path) -> tuple[Path, Path]:
    from shipyard.pkg.pack import pack_directory
    from shipyard.repo.keys import keygen
    from shipyard.repo.layout import init_repository
    from shipyard.repo.publish import publish
    from shipyard.repo.upload import upload

    repo = base / "repository"
    key = keygen(base / "keys" / "repository.key")
    init_repository(repo, signing_key=key.private_path)
    for ident, table in (("acceptor", f'[[link.accept]]\ninterface = "{IFACE}"\n'
                                      'adapter = "link.d/accept"\n'),
                         ("announcer", f'[[link.announce]]\ninterface = "{IFACE}"\n'
                                       'adapter = "link.d/announce"\n')):
        src = base / "src" / ident
        (src / "link.d").mkdir(parents=True)
        (src / "shipyard.toml").write_text(
            f'[package]\ngroup = "bench.fleet"\nid = "{ident}"\nversion = "1.0.0"\n\n{table}')
        for name in ("accept", "announce"):
            path = src / "link.d" / name
            path.write_text("#!/bin/sh\nexit 0\n")
            path.chmod(0o755)
        upload(None, repo, pack_directory(src, base / "out"))
    publish(None, repo)
    return repo, key.public_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Coordinator:
    def __init__(self, base: Path, db_url: str, repo: Path, key: Path) -> None:
        home = base / "coordinator"
        home.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env.update(SHIPYARD_HOME=str(home), SHIPYARD_FARM_DB=db_url,
                   SHIPYARD_REPO_URL=repo.as_uri(), SHIPYARD_REPO_KEY=str(key),
                   SHIPYARD_FLEET_LEASE_SECONDS="600", SHIPYARD_FLEET_POLL_SECONDS="2",
                   PYTHONPATH=str(ROOT / "src"))
        self.log = open(base / "coordinator.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli.main", "farm", "serve", "--bind",
             f"127.0.0.1:{self.port}"], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("coordinator exited at start (see coordinator.log)")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit("coordinator did not answer within 120 s")

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def insert_tokens(db_url: str, roles: list[str]) -> list[str]:
    """Join tokens (and the admin token) straight into the farm's table: 1,000
    ``farm token create`` processes would measure Python's start-up, not the fleet."""
    from sqlalchemy import insert

    from shipyard.db import make_engine
    from shipyard.db.farm_models import FarmToken

    engine = make_engine(db_url)
    out, rows = [], []
    now = datetime.now(UTC)
    for index, role in enumerate(roles):
        secret = secrets.token_urlsafe(32)
        out.append(secret)
        rows.append(dict(name=f"bench-{role}-{index}", role=role, created_at=now,
                         token_hash=hashlib.sha256(secret.encode()).hexdigest()))
    with engine.begin() as conn:
        conn.execute(insert(FarmToken), rows)
    engine.dispose()
    return out


# -- light nodes -------------------------------------------------------------------------------


class Node:
    def __init__(self, name: str, label: str) -> None:
        self.name = name
        self.label = label
        self.key = sealing.generate_private_key()
        self.signing = sealing.public_key_text(sealing.generate_private_key())  # any 32 bytes
        self.credential = ""
        self.index = 0
        self.doc: wire.DesiredDocument | None = None
        self.applied: tuple[str, int, str] | None = None
        self.seen: dict[int, float] = {}  # revision -> when the document arrived
        self.adapter_done: dict[str, float] = {}  # password -> when its adapter exited
        self.parked = asyncio.Event()

    async def join(self, client: httpx.AsyncClient, token: str) -> None:
        body = wire.JoinRequest(name=self.name, labels={"role": self.label},
                                address="127.0.0.1", signing_key=self.signing,
                                sealing_key=sealing.public_key_text(self.key))
        response = await client.post("/api/fleet/join", content=body.model_dump_json(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        response.raise_for_status()
        self.credential = response.json()["credential"]

    async def poll_forever(self, base_url: str) -> None:
        # A client (one connection) per node, as on a real fleet: one shared pool of a
        # thousand connections costs the *client* O(N) per request in httpcore's pool.
        async with httpx.AsyncClient(base_url=base_url, timeout=WAIT + 60) as client:
            await self._poll(client)

    async def _poll(self, client: httpx.AsyncClient) -> None:
        headers = {"Authorization": f"Bearer {self.credential}"}
        while True:
            self.parked.set()
            response = await client.get(f"/api/fleet/nodes/{self.name}/desired",
                                        params={"index": self.index, "wait": WAIT},
                                        headers=headers, timeout=WAIT + 60)
            self.parked.clear()
            response.raise_for_status()
            doc = wire.DesiredDocument.model_validate_json(response.content)
            arrived = time.monotonic()
            if doc.revision > self.index:
                self.seen.setdefault(doc.revision, arrived)
            self.index = doc.revision
            self.doc = doc
            await self.accept(doc)

    async def accept(self, doc: wire.DesiredDocument) -> None:
        for inst in doc.instances:
            for ann in inst.announcements:
                if ann.password_sealed is None:
                    continue
                password = sealing.open_sealed_text(
                    ann.password_sealed, self.key,
                    sealing.link_context(ann.interface, ann.announcer, "*", self.name))
                data = (ann.host, ann.port, password)
                if data == self.applied:
                    continue
                proc = await asyncio.create_subprocess_exec(
                    "/bin/true", f"--host={ann.host}", f"--port={ann.port}",
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                await proc.wait()
                self.applied = data
                self.adapter_done.setdefault(password, time.monotonic())


async def publish(client: httpx.AsyncClient, announcer: Node, password: str) -> float:
    """Seal ``password`` for every acceptor node in the announcer's document, publish it;
    the moment the coordinator answered (the change is committed)."""
    headers = {"Authorization": f"Bearer {announcer.credential}"}
    response = await client.get(f"/api/fleet/nodes/{announcer.name}/desired",
                                params={"index": 0, "wait": 0}, headers=headers)
    response.raise_for_status()
    doc = wire.DesiredDocument.model_validate_json(response.content)
    (inst,) = [i for i in doc.instances if i.service == ANNOUNCER_SVC]
    sealed = {a.acceptor_node: sealing.seal(password, a.node_key, sealing.link_context(
        IFACE, ANNOUNCER_SVC, "*", a.acceptor_node)) for a in inst.acceptors}
    body = wire.AnnouncementPublish(announcements=[wire.AnnouncementItem(
        interface=IFACE, instance=ANNOUNCER_SVC, host="announcer.bench", port=7000,
        sealed=sealed)])
    response = await client.post(f"/api/fleet/nodes/{announcer.name}/announcements",
                                 content=body.model_dump_json(),
                                 headers={**headers, "Content-Type": "application/json"})
    response.raise_for_status()
    return time.monotonic()


async def wait_for(predicate, timeout: float, what: str,
                   tasks: list[asyncio.Task] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for task in tasks or []:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise SystemExit(f"a node's poll failed: {task.exception()!r}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.01)


async def measure(coordinator: Coordinator, db_url: str, count: int, runs: int
                  ) -> dict[str, Any]:
    rss_before = coordinator.rss()
    tokens = insert_tokens(db_url, ["admin"] + ["node"] * (count + 1))
    admin, joins = tokens[0], tokens[1:]
    limits = httpx.Limits(max_connections=count + 50, max_keepalive_connections=count + 50)
    async with httpx.AsyncClient(base_url=coordinator.url, limits=limits,
                                 timeout=120) as client:
        acceptors = [Node(f"acc{i:04d}", "acceptor") for i in range(count)]
        announcer = Node("announcer", "announcer")
        nodes = [*acceptors, announcer]
        gate = asyncio.Semaphore(16)

        async def join(node: Node, token: str) -> None:
            async with gate:
                await node.join(client, token)

        started = time.monotonic()
        await asyncio.gather(*(join(n, t) for n, t in zip(nodes, joins, strict=True)))
        log(f"{count + 1} nodes joined in {time.monotonic() - started:.1f}s")
        operator = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
        for svc, package, label in ((ACCEPTOR_SVC, ACCEPT_PKG, "acceptor"),
                                    (ANNOUNCER_SVC, ANNOUNCE_PKG, "announcer")):
            body = wire.AssignRequest(service=svc, package=package, nodes=[f"role={label}"])
            response = await client.post("/api/fleet/assign", content=body.model_dump_json(),
                                         headers=operator)
            response.raise_for_status()
        await publish(client, announcer, "warm-up-" + secrets.token_urlsafe(8))
        pollers = [asyncio.create_task(n.poll_forever(coordinator.url)) for n in acceptors]
        try:
            await wait_for(lambda: all(n.applied for n in acceptors), 300,
                           "every acceptor to apply the warm-up announcement", pollers)
            log("warm-up applied on every acceptor")
            propagation, wakeup = [], []
            for run in range(runs):
                await wait_for(lambda: all(n.parked.is_set() for n in acceptors), 120,
                               "every long poll to be parked")
                password = f"run{run}-" + secrets.token_urlsafe(16)
                t0 = await publish(client, announcer, password)
                await wait_for(lambda p=password: all(p in n.adapter_done for n in acceptors),
                               300, f"run {run}'s adapters")
                delays = [n.adapter_done[password] - t0 for n in acceptors]
                propagation.append(percentile(delays, 0.95))
                await wait_for(lambda: all(n.parked.is_set() for n in acceptors), 120,
                               "every long poll to be parked")
                marks = {n.name: n.index for n in acceptors}
                body = wire.LinkPairRequest(announcer=f"{run}.none.bench.x",
                                            acceptor="1.none.bench.x")
                response = await client.post("/api/fleet/links/disable",
                                             content=body.model_dump_json(), headers=operator)
                t1 = time.monotonic()
                response.raise_for_status()
                revision = response.json()["revision"]
                await wait_for(lambda r=revision: all(n.index >= r for n in acceptors), 300,
                               f"run {run}'s wake-up")
                delays = [min(t for rev, t in n.seen.items() if rev > marks[n.name]) - t1
                          for n in acceptors]
                wakeup.append(percentile(delays, 0.95))
                log(f"N={count} run {run}: propagation p95 {propagation[-1]:.3f}s, "
                    f"wake-up p95 {wakeup[-1]:.3f}s")
            await wait_for(lambda: all(n.parked.is_set() for n in acceptors), 120,
                           "every long poll to be parked")
            await asyncio.sleep(1.0)  # the coordinator settles with every poll parked
            rss_parked = coordinator.rss()
        finally:
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
    return {"nodes": count, "runs": runs,
            "propagation_p95_s": summary(propagation), "wakeup_p95_s": summary(wakeup),
            "ratio_propagation_over_wakeup": summary(
                [p / w for p, w in zip(propagation, wakeup, strict=True) if w > 0]),
            "rss_before_mb": round(rss_before / 2**20, 1),
            "rss_parked_mb": round(rss_parked / 2**20, 1)}


def one_size(count: int, runs: int) -> dict[str, Any]:
    import psycopg

    name = f"shipyard_bench_fleet_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory(prefix="shipyard-bench-fleet-") as tmp:
            base = Path(tmp)
            repo, key = make_repository(base)
            coordinator = Coordinator(base, db_url, repo, key)
            try:
                return asyncio.run(measure(coordinator, db_url, count, runs))
            finally:
                coordinator.close()
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="100,1000", help="comma-separated fleet sizes")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parts", default="propagation,e2e",
                        help="propagation (light nodes), e2e (git push -> running on "
                             "real agents: bench/fleet_e2e.py), or both")
    parser.add_argument("--e2e-nodes", type=int, default=20)
    parser.add_argument("--e2e-runs", type=int, default=5)
    args = parser.parse_args()
    # A TERM (timeout, CI) unwinds through the finally blocks that stop every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    out: dict[str, Any] = {"bench": "fleet", "database": "postgresql",
                           "loadavg_before": os.getloadavg()[0]}
    if "propagation" in parts:
        sizes = [int(s) for s in args.nodes.split(",") if s.strip()]
        results = {}
        for count in sizes:
            log(f"N={count}: setting up")
            results[str(count)] = one_size(count, args.runs)
        aims = {"100": 2.0, "1000": 5.0}
        out.update(sizes=results, aims_p95_s={k: v for k, v in aims.items() if k in results},
                   baseline="wakeup: a revision bump with no link change, to each node's "
                            "receipt")
    if "e2e" in parts:
        import fleet_e2e

        out["e2e"] = fleet_e2e.measure(args.e2e_nodes, args.e2e_runs)
    out["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
