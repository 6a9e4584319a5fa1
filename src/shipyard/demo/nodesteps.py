"""The demo's node-side steps: install, register, boot and link (step 3), then upgrade a
transport to a version the farm just built (step 4).

Each returns the lines it wants shown under its progress line and raises a
:class:`ShipyardError` naming what did not happen; the checks ask the node's CLI, the
running processes and the chat server over TCP.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx
import psutil

from shipyard.demo import source
from shipyard.demo.context import (
    PUBLISH_TIMEOUT,
    Demo,
    authenticated,
    one_build,
    parallel,
    require_success,
    running,
)
from shipyard.demo.node import Node, chat
from shipyard.errors import ShipyardError

UPGRADED = "jabber-upper"


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


def step_node(demo: Demo) -> list[str]:
    node = demo.node
    # Installs wait for each other on the install lock; starting the commands side by side
    # still saves their interpreter start-up.
    targets = [(i.package, i.channel) for i in node.instances]
    targets.append(("org.example:hello", None))  # a plain package that requires another
    results = parallel([functools.partial(node.install, *target) for target in targets], 3)
    installed = 0
    versions: dict[str, str] = {}
    for (package, _channel), result in zip(targets, results, strict=True):
        assert isinstance(result, list)
        _check_http(result, node.repo_url)
        installed += sum(1 for r in result if r["status"] == "installed")
        versions[package] = _installed_version(result, package)
    parallel([functools.partial(node.register, i, versions[i.package])
              for i in node.instances], 3)
    demo.node_cli.run("svc", "boot")
    status = running(demo)
    report = demo.node_cli.json("link", "reconcile")
    if not report["ok"]:
        raise ShipyardError(f"link reconcile reported problems: {report['problems'] or report}")
    hosts = [node.echo_host, node.upper_host]
    authenticated(demo, hosts)
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


def _process_path(pid: int | None) -> str:
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
    build = one_build(demo, pushed, UPGRADED)
    require_success(demo, [build])
    if build.version != new:
        raise ShipyardError(f"build {build.id} built {build.version}, not {new}")
    demo.view.wait_published([build.id], PUBLISH_TIMEOUT)
    result = demo.node_cli.json("svc", "upgrade", Node.UPPER, "--latest")
    demo.upgrade = result
    group = "org.shipyard.examples"
    if result["result"] != "upgraded" or result["to"] != f"{group}:{UPGRADED}:{new}":
        raise ShipyardError(f"svc upgrade did not move {Node.UPPER} to {new}: {result}")
    status = {s["service"]: s for s in running(demo)}
    upper = status[Node.UPPER]
    command = _process_path(upper.get("pid"))
    if f"/{new}/" not in command:
        raise ShipyardError(f"{Node.UPPER} (pid {upper.get('pid')}) does not run from the "
                            f"{new} package: {command or 'no such process'}")
    if f"{group}:{UPGRADED}:{old}" in node.installed():
        raise ShipyardError(f"{UPGRADED} {old} is still installed after the upgrade")
    authenticated(demo, [node.echo_host, node.upper_host])
    answer = chat(node.chat_port, f"SEND {node.upper_host} upgraded")[0]
    if answer != f"FROM {node.upper_host} UPGRADED":
        raise ShipyardError(f"the upgraded transport answered {answer!r}")
    pairs = {(r["announcer"], r["acceptor"]): r["state"] for r in node.links()}
    if pairs.get((Node.UPPER, Node.CHAT)) != "linked":
        raise ShipyardError(f"the link {Node.UPPER} -> {Node.CHAT} is "
                            f"{pairs.get((Node.UPPER, Node.CHAT))}")
    return [
        f"{UPGRADED} {old} -> {new}: build {build.id} succeeded on {build.worker}, "
        "published",
        f"svc upgrade {Node.UPPER} --latest: {result['message']}",
        f"uninstalled {result['uninstalled']}; the transport runs from .../{new}/ (pid "
        f"{upper.get('pid')}) and authenticated again",
        f"SEND {node.upper_host} upgraded -> {answer}",
    ]
