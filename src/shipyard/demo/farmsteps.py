"""The demo's farm-side steps: set up (step 1), push (step 2) and a broken build (step 5).

Each returns the lines it wants shown under its progress line and raises a
:class:`ShipyardError` naming what did not happen; the checks read the coordinator's API,
the repository's published indexes and database, and the mail the SMTP sink caught.
"""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.demo import source
from shipyard.demo.context import (
    BUILD_TIMEOUT,
    PUBLISH_TIMEOUT,
    Demo,
    one_build,
    parallel,
    require_success,
)
from shipyard.demo.farmview import publications
from shipyard.demo.layout import Layout
from shipyard.demo.machine import SECURITY_PACKAGE, WORKERS
from shipyard.demo.mail import Mail, caught
from shipyard.demo.waiting import until
from shipyard.errors import ShipyardError
from shipyard.repo.channels import first_listed, published_in

BROKEN = "hello"


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


def step_push(demo: Demo) -> list[str]:
    layout = demo.layout
    pushed = source.commit_and_push(demo.farm, layout.work, "Example services")
    ids = pushed.build_ids()
    if len(ids) != len(demo.packages):
        raise ShipyardError(f"the push hook requested {len(ids)} build(s), expected "
                            f"{len(demo.packages)}: {pushed.output.strip()}")
    demo.first_push = ids
    builds = demo.view.wait_finished(ids, BUILD_TIMEOUT)
    require_success(demo, builds)
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
    workers = sorted({str(b.worker) for b in builds})
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
    build = one_build(demo, pushed, BROKEN)
    if build.state != "failed":
        raise ShipyardError(f"build {build.id} of the broken {BROKEN} {new} ended "
                            f"{build.state}, expected failed")
    demo.failed_build = build
    log_tail = [line for line in demo.view.log(build.id).splitlines()
                if line.strip() and not line.startswith("[")][-3:]

    def mail() -> Mail | None:
        for message in caught(layout.maildir):
            if f"build {build.id} failed" in message.subject:
                return message
        return None

    demo.mail = until(mail, 60, f"the failure mail of build {build.id}",
                      lambda: f"{len(caught(layout.maildir))} message(s) caught so far")
    still = [c for c in published_in(layout.repository, "stable")
             if c.startswith(f"org.example:{BROKEN}:")]
    return [
        f"{BROKEN} {new}: build {build.id} failed: {build.reason}",
        *(f"  log | {line}" for line in log_tail),
        f"the repository still serves {', '.join(still)}",
        f"mail caught by the SMTP sink ({layout.maildir}):",
        *(f"  | {line}" for line in demo.mail.lines()),
    ]
