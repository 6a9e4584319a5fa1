"""The demo's seven steps (issue 7). Each returns the lines it wants shown under its progress
line and raises a :class:`ShipyardError` naming what did not happen; every check asks the
real thing: the coordinator's API, the repository's database, the node's CLI, the chat
server over TCP."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from shipyard.demo import source
from shipyard.demo.commands import Runner
from shipyard.demo.farmview import FarmView, first_listed, publications, published_in
from shipyard.demo.fleet import step_fleet
from shipyard.demo.layout import Layout
from shipyard.demo.machine import SECURITY_PACKAGE, WORKERS, Machine
from shipyard.demo.mail import Mail, caught
from shipyard.demo.node import Node, chat, server_status
from shipyard.demo.procs import Processes
from shipyard.demo.waiting import until
from shipyard.errors import ShipyardError

BUILD_TIMEOUT = 150.0
PUBLISH_TIMEOUT = 60.0
UPGRADED = "jabber-upper"
BROKEN = "hello"


@dataclass
class Demo:
    layout: Layout
    console: Console
    procs: Processes
    farm: Runner
    node_cli: Runner
    machine: Machine
    node: Node
    packages: dict[str, Path] = field(default_factory=dict)
    first_push: list[int] = field(default_factory=list)
    upgrade: dict[str, Any] = field(default_factory=dict)
    failed_build: dict[str, Any] = field(default_factory=dict)
    mail: Mail | None = None
    fleet_links: list[dict[str, Any]] = field(default_factory=list)
    fleet_admin: str = ""

    @property
    def view(self) -> FarmView:
        return FarmView(self.machine.url)

    @classmethod
    def create(cls, layout: Layout, console: Console, verbose: bool) -> Demo:
        echo: Callable[[str], None] | None = None
        if verbose:
            def echo(line: str) -> None:
                console.print(f"    [dim]{line}[/dim]", highlight=False, markup=True)
        log = layout.logs / "commands.log"
        farm = Runner(layout.farm_home, log, echo)
        node_cli = Runner(layout.node_home, log, echo)
        procs = Processes(layout.process_book)
        machine = Machine(layout, farm, procs)
        node = Node(layout, node_cli, "", machine.taken)
        return cls(layout, console, procs, farm, node_cli, machine, node)


# ---------------------------------------------------------------------------------------
# Step 1


def serve_dir(layout: Layout) -> Path:
    """What the web server may show: pool/, current and generations/ only (as the nginx
    example in the operator guide), never the database, the queue or repo.ini."""
    www = layout.root / "www"
    www.mkdir(exist_ok=True)
    for name in ("pool", "current", "generations"):
        link = www / name
        if not link.is_symlink():
            os.symlink(os.path.join("..", layout.repository.name, name), link)
    return www


def step_setup(demo: Demo) -> list[str]:
    layout, machine = demo.layout, demo.machine
    demo.packages = source.copy_examples(layout.examples, layout.work)
    moved = []
    for name in ("jabber-echo", "jabber-upper"):
        if name in demo.packages:
            port = source.free_announced_ports(demo.packages[name], machine.taken)
            moved.append(f"{name}:{port}")
    source.create(demo.farm, layout.work, layout.bare)
    machine.configure()
    www = serve_dir(layout)
    # Independent work side by side: two databases, a key and two listeners.
    parallel([machine.make_repository, machine.make_tokens, machine.start_smtp,
              lambda: machine.start_http_dir(www)])
    machine.start_coordinator()
    parallel([machine.start_workers, machine.install_hook])
    demo.node.repo_url = machine.repo_url
    demo.node.configure()
    return [
        f"git work tree {layout.work} ({len(demo.packages)} packages from "
        f"{layout.examples}), remote {layout.bare} with the push hook",
        f"repository {layout.repository}, signed by key {machine.key_id}; served at "
        f"{machine.repo_url}",
        f"coordinator {machine.url} (SQLite), workers {', '.join(WORKERS)}, SMTP sink "
        f"127.0.0.1:{machine.smtp_port}",
        f"transport ports {', '.join(moved)}; {SECURITY_PACKAGE} goes to the security "
        "channel",
    ]


# ---------------------------------------------------------------------------------------
# Step 2


def _require_success(demo: Demo, builds: list[dict[str, Any]]) -> None:
    for build in builds:
        if build["state"] != "succeeded":
            tail = " | ".join(demo.view.log(build["id"]).strip().splitlines()[-3:])
            raise ShipyardError(f"build {build['id']} of {build['package']} "
                                f"{build['state']}: {build.get('reason') or ''} ({tail})")


def step_push(demo: Demo) -> list[str]:
    layout = demo.layout
    pushed = source.commit_and_push(demo.farm, layout.work, "Example services")
    ids = pushed.build_ids()
    if len(ids) != len(demo.packages):
        raise ShipyardError(f"the push hook requested {len(ids)} build(s), expected "
                            f"{len(demo.packages)}: {pushed.output.strip()}")
    demo.first_push = ids
    builds = demo.view.wait_finished(ids, BUILD_TIMEOUT)
    _require_success(demo, builds)
    demo.view.wait_published(ids, PUBLISH_TIMEOUT)
    security = published_in(layout.repository, "security")
    stable = published_in(layout.repository, "stable")
    if not any(c.startswith(SECURITY_PACKAGE + ":") for c in security):
        raise ShipyardError(f"{SECURITY_PACKAGE} is not in the security channel "
                            f"(security lists: {', '.join(security) or 'nothing'})")
    expected_stable = len(demo.packages) - 1
    if len(stable) != expected_stable:
        raise ShipyardError(f"the stable channel lists {len(stable)} package(s), expected "
                            f"{expected_stable}: {', '.join(stable)}")
    pubs = {p.serial: p for p in publications(layout.repository) if p.status == "published"}
    wrong = [p for p in pubs.values() if "security" in p.channels and p.priority != 0]
    if wrong:
        raise ShipyardError(f"generation {wrong[0].serial} published the security channel "
                            f"with priority {wrong[0].priority}, not in the fast track")
    fast = first_listed(layout.repository, "security", SECURITY_PACKAGE)
    if fast is None or fast not in pubs or pubs[fast].priority != 0:
        raise ShipyardError(f"{SECURITY_PACKAGE} was not published by a priority-0 pass "
                            f"(first listed in generation {fast})")
    normal = sorted({s for s in (first_listed(layout.repository, "stable", c.rsplit(":", 1)[0])
                                 for c in stable) if s is not None})
    workers = sorted({str(b.get("worker")) for b in builds})
    return [
        f"push {pushed.commit[:12]}: the hook requested {len(ids)} builds "
        f"({ids[0]}-{ids[-1]})",
        f"all succeeded, built by {', '.join(workers)}",
        f"security fast track: {SECURITY_PACKAGE} published in generation {fast} (a "
        f"priority-0 pass); stable packages in generation(s) {_serials(normal)} "
        "(priority 1)",
        "generations in order: " + ", ".join(
            f"{p.serial} {'+'.join(p.channels) or '-'} (p{p.priority})"
            for p in sorted(pubs.values(), key=lambda p: p.serial)),
        f"security: {', '.join(security)}",
        f"stable: {len(stable)} packages",
    ]


def _serials(serials: list[int]) -> str:
    return ", ".join(map(str, serials)) or "none"


def parallel(actions: list[Callable[[], object]], workers: int = 4) -> list[object]:
    """Run ``actions`` in threads (most of their time is spent in child processes);
    the first failure is raised once all have ended."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(action) for action in actions]
        wait(futures)
    return [future.result() for future in futures]


# ---------------------------------------------------------------------------------------
# Step 3


def _installed_version(results: list[dict[str, Any]], package: str) -> str:
    for result in results:
        coordinate = str(result["coordinate"])
        if coordinate.rsplit(":", 1)[0] == package:
            return coordinate.rsplit(":", 1)[1]
    raise ShipyardError(f"pkg install did not report {package}: {results}")


def _check_http(results: list[dict[str, Any]], repo_url: str) -> None:
    for result in results:
        if result["status"] == "installed" and not str(result["source"]).startswith(repo_url):
            raise ShipyardError(f"{result['coordinate']} came from {result['source']}, not "
                                f"from the repository at {repo_url}")


def _running(demo: Demo) -> list[dict[str, Any]]:
    status = demo.node.status()
    down = [s for s in status if s["state"] != "running"]
    if down:
        raise ShipyardError(", ".join(f"{s['service']} is {s['state']}" for s in down))
    return status


def _authenticated(demo: Demo, hosts: list[str]) -> dict[str, Any]:
    port = demo.node.chat_port

    def ready() -> dict[str, Any] | None:
        status = server_status(port)
        return status if status and sorted(status["authenticated"]) == sorted(hosts) else None

    return until(ready, 30, f"the chat server to report {', '.join(hosts)} authenticated",
                 lambda: f"the server says {server_status(port)}")


def step_node(demo: Demo) -> list[str]:
    node = demo.node
    # Installs wait for each other on the install lock; starting the commands side by side
    # still saves their interpreter start-up.
    targets = [(i.package, i.channel) for i in node.instances]
    targets.append(("org.example:hello", None))  # a plain package that requires another
    results = parallel([lambda t=target: node.install(*t) for target in targets], 3)
    installed = 0
    versions: dict[str, str] = {}
    for (package, _channel), result in zip(targets, results, strict=True):
        assert isinstance(result, list)
        _check_http(result, node.repo_url)
        installed += sum(1 for r in result if r["status"] == "installed")
        versions[package] = _installed_version(result, package)
    parallel([lambda i=instance: node.register(i, versions[i.package])
              for instance in node.instances], 3)
    demo.node_cli.run("svc", "boot")
    status = _running(demo)
    report = demo.node_cli.json("link", "reconcile")
    if not report["ok"]:
        raise ShipyardError(f"link reconcile reported problems: {report['problems'] or report}")
    hosts = [node.echo_host, node.upper_host]
    _authenticated(demo, hosts)
    answers = chat(node.chat_port, f"SEND {node.echo_host} ahoy", f"SEND {node.upper_host} ahoy")
    if answers != [f"FROM {node.echo_host} ahoy", f"FROM {node.upper_host} AHOY"]:
        raise ShipyardError(f"the transports did not answer as expected: {answers}")
    web = httpx.get(f"http://127.0.0.1:{node.web_port}/", timeout=10).text.strip()
    return [
        f"installed {installed} packages over HTTP from {node.repo_url}, verified with the "
        "repository key",
        f"registered and booted {len(status)} instances: all running",
        f"chat server on port {node.chat_port}: {', '.join(hosts)} authenticated",
        f"SEND {node.echo_host} ahoy -> {answers[0]}",
        f"SEND {node.upper_host} ahoy -> {answers[1]}",
        f"GET http://127.0.0.1:{node.web_port}/ -> {web}",
    ]


# ---------------------------------------------------------------------------------------
# Step 4


def _one_build(demo: Demo, pushed: source.Push, package: str) -> dict[str, Any]:
    ids = pushed.build_ids()
    if len(ids) != 1:
        raise ShipyardError(f"the push hook requested {len(ids)} build(s), expected one of "
                            f"{package}: {pushed.output.strip()}")
    (build,) = demo.view.wait_finished(ids, BUILD_TIMEOUT)
    return build


def _process_path(pid: int | None) -> str:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline()) if pid else ""
    except psutil.Error:
        return ""


def step_upgrade(demo: Demo) -> list[str]:
    node, layout = demo.node, demo.layout
    package_dir = demo.packages[UPGRADED]
    old = source.version_of(package_dir)
    new = source.bump(old)
    source.set_version(package_dir, new)
    pushed = source.commit_and_push(demo.farm, layout.work, f"{UPGRADED} {new}")
    build = _one_build(demo, pushed, UPGRADED)
    _require_success(demo, [build])
    if build["version"] != new:
        raise ShipyardError(f"build {build['id']} built {build['version']}, not {new}")
    demo.view.wait_published([build["id"]], PUBLISH_TIMEOUT)
    result = demo.node_cli.json("svc", "upgrade", Node.UPPER, "--latest")
    demo.upgrade = result
    group = "org.shipyard.examples"
    if result["result"] != "upgraded" or result["to"] != f"{group}:{UPGRADED}:{new}":
        raise ShipyardError(f"svc upgrade did not move {Node.UPPER} to {new}: {result}")
    status = {s["service"]: s for s in _running(demo)}
    upper = status[Node.UPPER]
    command = _process_path(upper.get("pid"))
    if f"/{new}/" not in command:
        raise ShipyardError(f"{Node.UPPER} (pid {upper.get('pid')}) does not run from the "
                            f"{new} package: {command or 'no such process'}")
    if f"{group}:{UPGRADED}:{old}" in node.installed():
        raise ShipyardError(f"{UPGRADED} {old} is still installed after the upgrade")
    _authenticated(demo, [node.echo_host, node.upper_host])
    answer = chat(node.chat_port, f"SEND {node.upper_host} upgraded")[0]
    if answer != f"FROM {node.upper_host} UPGRADED":
        raise ShipyardError(f"the upgraded transport answered {answer!r}")
    pairs = {(r["announcer"], r["acceptor"]): r["state"] for r in node.links()}
    if pairs.get((Node.UPPER, Node.CHAT)) != "linked":
        raise ShipyardError(f"the link {Node.UPPER} -> {Node.CHAT} is "
                            f"{pairs.get((Node.UPPER, Node.CHAT))}")
    return [
        f"{UPGRADED} {old} -> {new}: build {build['id']} succeeded on {build['worker']}, "
        "published",
        f"svc upgrade {Node.UPPER} --latest: {result['message']}",
        f"uninstalled {result['uninstalled']}; the transport runs from .../{new}/ (pid "
        f"{upper.get('pid')}) and authenticated again",
        f"SEND {node.upper_host} upgraded -> {answer}",
    ]


# ---------------------------------------------------------------------------------------
# Step 5


BROKEN_LINE = ('cp src/greeting-template.txt "$SHIPYARD_DESTDIR/share/doc/hello/"'
               '  # a file nobody committed\n')


def step_broken(demo: Demo) -> list[str]:
    layout = demo.layout
    package_dir = demo.packages[BROKEN]
    old = source.version_of(package_dir)
    new = source.bump(old)
    source.set_version(package_dir, new)
    script = package_dir / "build.sh"
    text = script.read_text(encoding="utf-8")
    marker = 'echo "done"'
    script.write_text(text.replace(marker, BROKEN_LINE + marker, 1) if marker in text
                      else text + BROKEN_LINE, encoding="utf-8")
    pushed = source.commit_and_push(demo.farm, layout.work, f"{BROKEN} {new}: greeting file")
    build = _one_build(demo, pushed, BROKEN)
    if build["state"] != "failed":
        raise ShipyardError(f"build {build['id']} of the broken {BROKEN} {new} ended "
                            f"{build['state']}, expected failed")
    demo.failed_build = build
    log_tail = [line for line in demo.view.log(build["id"]).splitlines()
                if line.strip() and not line.startswith("[")][-3:]

    def mail() -> Mail | None:
        for message in caught(layout.maildir):
            if f"build {build['id']} failed" in message.subject:
                return message
        return None

    demo.mail = until(mail, 60, f"the failure mail of build {build['id']}",
                      lambda: f"{len(caught(layout.maildir))} message(s) caught so far")
    still = [c for c in published_in(layout.repository, "stable")
             if c.startswith(f"org.example:{BROKEN}:")]
    return [
        f"{BROKEN} {new}: build {build['id']} failed: {build.get('reason')}",
        *(f"  log | {line}" for line in log_tail),
        f"the repository still serves {', '.join(still)}",
        f"mail caught by the SMTP sink ({layout.maildir}):",
        *(f"  | {line}" for line in demo.mail.lines()),
    ]


# ---------------------------------------------------------------------------------------
# Step 6


def step_summary(demo: Demo) -> list[str]:
    from shipyard.demo import summary

    builds = demo.view.builds()
    pubs = publications(demo.layout.repository)
    status = demo.node.status()
    links = demo.node.links()
    summary.print_all(demo.console, builds, pubs, status, links, demo.fleet_links)
    counts: dict[str, int] = {}
    for build in builds:
        counts[build["state"]] = counts.get(build["state"], 0) + 1
    shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return [
        f"{len(builds)} builds ({shown}), {len(pubs)} publications, {len(status)} instances, "
        f"{len(links)} links, {len(demo.fleet_links)} cross-host link(s)",
        f"web UI: {demo.machine.url}/  (API: {demo.machine.url}/docs)",
        f"repository: {demo.machine.repo_url}/current/release.json",
        f"everything lives in {demo.layout.root}; commands run: "
        f"{demo.layout.logs / 'commands.log'}",
    ]


STEPS: list[tuple[str, str, Callable[[Demo], list[str]]]] = [
    ("set up", "set up: git repository, push hook, signed repository, coordinator and two "
     "workers", step_setup),
    ("push", "push: the hook requests builds, two workers build them, the publisher "
     "publishes (security first)", step_push),
    ("node", "node: install over HTTP, register, boot, link; the transports authenticate",
     step_node),
    ("upgrade", "upgrade: a new transport version is built, published, upgraded and "
     "relinked", step_upgrade),
    ("broken build", "a broken build: the failure is shown and its mail caught",
     step_broken),
    ("fleet", "fleet: two nodes with their own agents, a link across hosts",
     step_fleet),
    ("summary", "summary", step_summary),
]
