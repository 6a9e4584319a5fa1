"""The reconcile's decisions, in-process: :func:`shipyard.link.plan.plan` is a pure
function of the inventory, the loaded state and the announcers' answers.

The real-process tests (test_link_reconcile.py and friends) prove the whole; these pin
each decision in milliseconds and check that planning changes none of its inputs.
"""

from __future__ import annotations

import copy

from shipyard.link.inventory import Instance, Inventory
from shipyard.link.plan import (
    Apply,
    Drop,
    Remove,
    Settle,
    desired_pairs,
    plan,
    refuse_duplicates,
)
from shipyard.link.state import (
    DISABLED,
    FAILED,
    LINKED,
    PENDING,
    Disabled,
    LinkData,
    LinkState,
    Pair,
)
from shipyard.manifest import LinkAccept, LinkAnnounce

DB = "1.db.test.local"
DB2 = "2.db.test.local"
APP = "1.app.test.local"
DATA = LinkData("db.example.org", 5432, "secret")


def inventory(announcers: list[str], acceptors: list[str]) -> Inventory:
    inv = Inventory()
    for coord in {*announcers, *acceptors}:
        inv.instances[coord] = Instance(coord, None)
    inv.announcers["pg"] = [(inv.instances[c], LinkAnnounce("pg", "bin/announce"))
                            for c in announcers]
    inv.acceptors["pg"] = [(inv.instances[c], LinkAccept("pg", "bin/accept"))
                           for c in acceptors]
    return inv


def run_plan(inv: Inventory, state: LinkState, answers: dict, *, force: bool = False) -> list:
    before = copy.deepcopy(state.to_json())
    actions = plan(inv, state, desired_pairs(inv), answers, force=force)
    assert state.to_json() == before  # pure: the state is read, never changed
    return actions


def test_a_new_pair_is_applied_and_nothing_is_recorded_by_planning() -> None:
    inv = inventory([DB], [APP])
    state = LinkState()
    (action,) = run_plan(inv, state, {(DB, "pg"): DATA})
    assert isinstance(action, Apply)
    assert (action.key, action.data, action.acceptor.coordinate) == (("pg", DB, APP), DATA, APP)
    assert state.pairs == {}


def test_applied_data_is_unchanged_unless_forced_or_maybe_held() -> None:
    inv = inventory([DB], [APP])
    state = LinkState()
    state.pairs[("pg", DB, APP)] = Pair("pg", DB, APP, LINKED, applied=DATA)
    assert run_plan(inv, state, {(DB, "pg"): DATA}) == [
        Settle(("pg", DB, APP), LINKED, "unchanged")]
    assert isinstance(run_plan(inv, state, {(DB, "pg"): DATA}, force=True)[0], Apply)
    state.pairs[("pg", DB, APP)].maybe = [LinkData("old.example.org", 5432, "x")]
    assert isinstance(run_plan(inv, state, {(DB, "pg"): DATA})[0], Apply)


def test_a_failed_announce_fails_the_pair_with_its_reason() -> None:
    inv = inventory([DB], [APP])
    assert run_plan(inv, LinkState(), {(DB, "pg"): "announce adapter exited 3"}) == [
        Settle(("pg", DB, APP), FAILED, "failed", "announce adapter exited 3")]


def test_a_disabled_pair_is_removed_when_held_else_settled() -> None:
    inv = inventory([DB], [APP])
    state = LinkState()
    state.disabled[(DB, APP)] = Disabled(DB, APP)
    assert run_plan(inv, state, {}) == [Settle(("pg", DB, APP), DISABLED, "disabled")]
    state.pairs[("pg", DB, APP)] = Pair("pg", DB, APP, LINKED, applied=DATA)
    (action,) = run_plan(inv, state, {})
    assert isinstance(action, Remove) and action.final == DISABLED


def test_pairs_no_longer_desired() -> None:
    # DB stopped announcing; APP still accepts and holds DB's entry: removed, then dropped.
    inv = inventory([], [APP])
    state = LinkState()
    state.pairs[("pg", DB, APP)] = Pair("pg", DB, APP, LINKED, applied=DATA)
    (action,) = run_plan(inv, state, {})
    assert isinstance(action, Remove) and action.final is None
    # Nothing held: just dropped. The acceptor gone: dropped too (nobody to undo it at).
    state.pairs[("pg", DB, APP)] = Pair("pg", DB, APP, LINKED)
    assert run_plan(inv, state, {}) == [Drop(("pg", DB, APP))]
    state.pairs[("pg", DB, APP)] = Pair("pg", DB, APP, LINKED, applied=DATA)
    assert run_plan(inventory([], []), state, {}) == [Drop(("pg", DB, APP))]
    # A broken acceptor keeps its pair, failed with the reason.
    broken = inventory([], [APP])
    broken.instances[APP].problem = "package not installed"
    assert run_plan(broken, state, {}) == [Settle(
        ("pg", DB, APP), FAILED, "failed", f"acceptor {APP}: package not installed")]


def test_an_announcer_without_acceptors_waits_in_a_pending_pair() -> None:
    state = LinkState()
    assert run_plan(inventory([DB], []), state, {}) == [Settle(("pg", DB, ""), PENDING,
                                                               "pending")]
    state.pairs[("pg", DB, "")] = Pair("pg", DB, "")
    assert run_plan(inventory([], []), state, {}) == [Drop(("pg", DB, ""), quiet=True)]


def test_duplicate_host_and_port_stays_with_the_announcer_already_applied() -> None:
    state = LinkState()
    answers = {(DB, "pg"): DATA, (DB2, "pg"): DATA}
    first = refuse_duplicates(state, answers)
    assert first[(DB, "pg")] == DATA and isinstance(first[(DB2, "pg")], str)
    assert answers == {(DB, "pg"): DATA, (DB2, "pg"): DATA}  # not changed in place
    state.pairs[("pg", DB2, APP)] = Pair("pg", DB2, APP, LINKED, applied=DATA)
    held = refuse_duplicates(state, answers)
    assert held[(DB2, "pg")] == DATA
    assert f"as {DB2} does already" in str(held[(DB, "pg")])
