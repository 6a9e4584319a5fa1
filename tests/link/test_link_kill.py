"""``kill -9`` during reconcile: the state stays readable and the next run repairs all."""

from __future__ import annotations

import json
import random
import subprocess
import time

from linkkit import (
    ACCEPT,
    ANNOUNCE,
    calls,
    entries,
    generated,
    install_package,
    register,
    runtime,
    unregister,
    wait_until,
)

from conftest import SHIPYARD, Shipyard
from shipyard.link.state import LinkState

ENV = {"SHIPYARD_LINK_FQDN": "node1.example.org"}
CALL_LINE = '  >> "$SHIPYARD_RUNTIME_DIR/../../accept-calls"\n'
SLOW_ACCEPT = ACCEPT.replace(CALL_LINE, CALL_LINE + "sleep 0.1\n")
ANNOUNCERS = [f"{i}.t{i}.t.local" for i in range(1, 5)]
ACCEPTORS = ["1.srv.t.local", "2.srv.t.local"]


def test_kill_9_at_random_moments_then_the_next_reconcile_repairs(shipyard: Shipyard) -> None:
    assert SLOW_ACCEPT != ACCEPT
    home = shipyard.home
    rng = random.Random(20240604)
    packages = {a: install_package(home, f"t{i}", announce=ANNOUNCE, port=4000 + i)
                for i, a in enumerate(ANNOUNCERS, 1)}
    server = install_package(home, "srv", accept=SLOW_ACCEPT)
    for acceptor in ACCEPTORS:
        register(home, acceptor, server)
    registered: set[str] = set()
    state_file = home / "state" / "links.json"
    killed = intents_seen = 0
    for iteration in range(30):
        action = rng.choice(["toggle", "toggle", "password", "none"])
        if action == "toggle":
            announcer = rng.choice(ANNOUNCERS)
            if announcer in registered:
                unregister(home, announcer)
                registered.discard(announcer)
            else:
                register(home, announcer, packages[announcer])
                registered.add(announcer)
        elif action == "password" and registered:
            announcer = rng.choice(sorted(registered))
            path = runtime(home, announcer) / "etc" / "link-chat.ini"
            if path.exists():
                old = generated(home, announcer)["password"]
                path.write_text(path.read_text().replace(old, f"pw-{iteration}-x"))
        before = len(calls(home, "accept"))
        proc = subprocess.Popen([*SHIPYARD, "link", "reconcile"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**shipyard.env, **ENV})
        if iteration % 2:
            # Right inside an accept adapter (it has just logged its call and sleeps).
            wait_until(lambda b=before, p=proc: len(calls(home, "accept")) > b
                       or p.poll() is not None, 60, "an accept adapter to start")
        else:
            time.sleep(rng.uniform(0.0, 0.8))  # a random moment, drawn from a seeded RNG
        proc.kill()
        if proc.wait() == -9:
            killed += 1
        if state_file.exists():
            state = LinkState.from_json(json.loads(state_file.read_text()))
            intents_seen += any(p.maybe for p in state.pairs.values())
    assert killed >= 10, f"only {killed} runs were killed before they finished"
    assert intents_seen >= 1, "no kill landed while an adapter was running"

    final = shipyard.run("link", "reconcile", "--json", env=ENV)
    assert json.loads(final.stdout)["ok"] is True
    wanted = {}
    for announcer in registered:
        config = generated(home, announcer)
        wanted[config["host"]] = (int(config["port"]), config["password"])
    for acceptor in ACCEPTORS:
        assert entries(home, acceptor) == wanted
    state = LinkState.from_json(json.loads(state_file.read_text()))
    assert not any(p.maybe for p in state.pairs.values())
    assert {(p.announcer, p.acceptor) for p in state.pairs.values() if p.state == "linked"} == {
        (a, b) for a in registered for b in ACCEPTORS}
    assert not list((home / "state").glob(".links.json.*.tmp"))
    assert not (home / "state" / "links.running").exists()

    again = json.loads(shipyard.run("link", "reconcile", "--json", env=ENV).stdout)
    assert again["accept_runs"] == 0 and again["announce_runs"] == 0
