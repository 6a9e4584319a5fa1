"""What a reconcile should do to each pair: a pure function of its inputs.

:func:`plan` takes the inventory (who announces and accepts what), the link state as it
was loaded, and the announcers' answers, and returns one action per pair: settle it in a
state, drop it, or run the acceptor's adapter to apply or remove entries. It writes
nothing, runs nothing and changes none of its inputs, so every decision of the module doc
of :mod:`shipyard.link.reconcile` can be read (and tested) here; the caller records the
actions' intents in the state and then runs the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.link.inventory import Instance, Inventory
from shipyard.link.state import (
    DISABLED,
    FAILED,
    LINKED,
    PENDING,
    LinkData,
    LinkState,
    Pair,
    PairKey,
)
from shipyard.manifest import LinkAccept, LinkAnnounce

Wanted = tuple[Instance, LinkAnnounce, Instance, LinkAccept]
Answers = dict[tuple[str, str], LinkData | str]  # (announcer, interface) -> data or why not


@dataclass(frozen=True)
class Settle:
    """Put the pair (created when new) in ``state`` and report ``outcome``; no adapter."""

    key: PairKey
    state: str
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class Drop:
    """Forget the pair: nobody holds anything for it. ``quiet``: not worth a report line
    (the placeholder of an announcer that no longer waits for an acceptor)."""

    key: PairKey
    quiet: bool = False


@dataclass(frozen=True)
class Apply:
    """Run the accept adapter: remove what the pair holds that ``data`` does not replace,
    then apply ``data``."""

    key: PairKey
    acceptor: Instance
    accept: LinkAccept
    data: LinkData


@dataclass(frozen=True)
class Remove:
    """Run the accept adapter with ``--remove`` for everything the pair holds; then the
    pair is ``final`` (DISABLED), or dropped when ``final`` is None."""

    key: PairKey
    acceptor: Instance
    accept: LinkAccept
    final: str | None


Action = Settle | Drop | Apply | Remove


def desired_pairs(inventory: Inventory) -> dict[PairKey, Wanted]:
    """Every (announcer, acceptor) pair of one interface that should be linked."""
    desired = {}
    for interface in inventory.interfaces():
        for announcer, announce in inventory.announcers.get(interface, []):
            for acceptor, accept in inventory.acceptors.get(interface, []):
                if announcer.coordinate == acceptor.coordinate:
                    continue
                key = (interface, announcer.coordinate, acceptor.coordinate)
                desired[key] = (announcer, announce, acceptor, accept)
    return desired


def refuse_duplicates(state: LinkState, answers: Answers) -> Answers:
    """Two announcers of one interface with the same host and port would overwrite
    each other's entry in every acceptor (which keys entries by host and port), so
    only one may have it: the one an acceptor already holds it for, else the first
    by coordinate. The others' answers become the reason and the way out."""
    owners: dict[tuple[str, str, int], list[str]] = {}
    for (a_coord, interface), answer in sorted(answers.items()):
        if isinstance(answer, LinkData):
            owners.setdefault((interface, answer.host, answer.port), []).append(a_coord)
    out = dict(answers)
    for (interface, host, port), coords in owners.items():
        if len(coords) < 2:
            continue
        holding = [c for c in coords if any(
            p.announcer == c and p.interface == interface and p.applied is not None
            and p.applied.identity == (host, port) for p in state.pairs.values())]
        keeper = (holding or coords)[0]
        for other in coords:
            if other != keeper:
                out[(other, interface)] = (
                    f"announces {host}:{port} for {interface}, as {keeper} does already; "
                    f"an acceptor keeps one entry per host and port, so give {other} "
                    "its own port (generate.port = \"{param.NAME}\" and -- --NAME=PORT "
                    "at register) or host ('shipyard link hostname')")
    return out


def plan(inventory: Inventory, state: LinkState, desired: dict[PairKey, Wanted],
         answers: Answers, *, force: bool) -> list[Action]:
    """One action per pair, desired pairs first, each group in key order."""
    actions: list[Action] = []
    pairs = state.pairs
    for key, (_announcer, _announce, acceptor, accept) in sorted(desired.items()):
        interface, a_coord, b_coord = key
        pair = pairs.get(key) or Pair(interface, a_coord, b_coord)
        if state.is_disabled(a_coord, b_coord):
            if pair.held():
                actions.append(Remove(key, acceptor, accept, DISABLED))
            else:
                actions.append(Settle(key, DISABLED, "disabled"))
            continue
        answer = answers[(a_coord, interface)]
        if isinstance(answer, str):
            actions.append(Settle(key, FAILED, "failed", answer))
        elif force or pair.maybe or pair.applied != answer:
            actions.append(Apply(key, acceptor, accept, answer))
        else:
            actions.append(Settle(key, LINKED, "unchanged"))

    # Announcers of an interface nobody accepts wait in a pair without an acceptor.
    waiting = {
        (interface, a.coordinate, "")
        for interface, entries in inventory.announcers.items()
        if not inventory.acceptors.get(interface)
        for a, _ann in entries
    }
    for key in sorted(set(pairs) - set(desired)):
        actions.extend(_stale(inventory, state, pairs[key], key in waiting))
    actions.extend(Settle(key, PENDING, "pending") for key in sorted(waiting))
    return actions


def _stale(inventory: Inventory, state: LinkState, pair: Pair,
           waiting: bool) -> list[Action]:
    """A pair that is no longer desired: undo what its acceptor holds, where one is left."""
    interface, a_coord, b_coord = key = pair.key
    if not b_coord:
        return [] if waiting else [Drop(key, quiet=True)]
    acceptor = inventory.instances.get(b_coord)
    accept = next((acc for inst, acc in inventory.acceptors.get(interface, [])
                   if inst.coordinate == b_coord), None)
    announcer = inventory.instances.get(a_coord)
    if acceptor is not None and acceptor.problem:
        return [Settle(key, FAILED, "failed", f"acceptor {b_coord}: {acceptor.problem}")]
    if acceptor is None or accept is None:
        return [Drop(key)]  # the acceptor is gone: nobody left to undo anything at
    if announcer is not None and announcer.problem:
        return [Settle(key, FAILED, "failed",
                       f"announcer {a_coord}: {announcer.problem}; its link is kept")]
    if pair.held():
        final = DISABLED if state.is_disabled(a_coord, b_coord) else None
        return [Remove(key, acceptor, accept, final)]
    return [Drop(key)]
