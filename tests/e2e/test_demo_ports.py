"""Two demos on one machine never share a coordinator: the demo binds the coordinator's
port when it picks it and hands that socket to ``farm serve``, and its readiness check
accepts only the coordinator that printed the instance id it sees."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import EXAMPLES, Shipyard
from shipyard.demo.commands import Runner
from shipyard.demo.layout import Layout
from shipyard.demo.machine import Machine, own_coordinator
from shipyard.demo.procs import Processes
from shipyard.errors import ShipyardError


def _machine(root: Path) -> Machine:
    layout = Layout(root, EXAMPLES)
    (root / "logs").mkdir(parents=True)
    return Machine(layout, Runner(layout.farm_home, root / "logs" / "farm.log"),
                   Processes(root / "processes.json"))


def test_two_demos_get_two_coordinator_ports_and_each_reaches_its_own(
        shipyard: Shipyard, tmp_path: Path) -> None:
    first, second = _machine(tmp_path / "one"), _machine(tmp_path / "two")
    try:
        first.configure()
        # The first demo's port is held from the moment it was chosen ...
        with socket.socket() as intruder, pytest.raises(OSError):
            intruder.bind(("127.0.0.1", first.coordinator_port))
        # ... so a second demo picking at the same time gets another one.
        second.configure()
        assert second.coordinator_port != first.coordinator_port

        first.make_repository()
        coordinator = first.start_coordinator()
        printed = coordinator.output().split("(instance ", 1)[1].split(",", 1)[0]
        assert own_coordinator(first.url, printed)
        # A readiness check that reaches some other coordinator says so and stops.
        with pytest.raises(ShipyardError, match="another coordinator"):
            own_coordinator(first.url, "0123456789abcdef")
        assert not own_coordinator(second.url, printed)  # nobody serves there yet
    finally:
        first.procs.stop_all()
        second.procs.stop_all()
        for machine in (first, second):
            if machine.coordinator_socket is not None:
                machine.coordinator_socket.close()
