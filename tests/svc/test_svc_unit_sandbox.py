"""The node units of ``svc init-system`` are sandboxed as far as starting services allows.

They cannot reach the farm units' score (they start services as other users, and every
instance inherits their sandbox), but they must give up what that job does not need.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import Shipyard

MAX_NODE_EXPOSURE = 7.0  # 9.6 "UNSAFE" before any sandboxing


def test_node_units_are_sandboxed(shipyard: Shipyard, tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), ".ci/run installs systemd for this test"
    units = tmp_path / "units"
    shipyard.run("svc", "init-system", "--systemd", "--dir", str(units))
    services = sorted(units.glob("*.service"))
    assert [p.name for p in services] == ["shipyard-rotate.service", "shipyard.service",
                                          "shipyard@.service"]
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "warning"}
    for unit in services:
        text = unit.read_text()
        for line in ("ProtectSystem=full", "ProtectKernelModules=yes", "ProtectClock=yes",
                     "LockPersonality=yes", "SystemCallArchitectures=native"):
            assert f"\n{line}\n" in text, unit.name
        bounding = re.search(r"^CapabilityBoundingSet=(.*(?:\\\n.*)*)$", text, re.M)
        assert bounding and "CAP_SETUID" in bounding.group(1)
        assert "CAP_SYS_ADMIN" not in bounding.group(1)
        assert "starts service instances as" in text  # the reason for what is kept
        checked = unit.with_name(unit.name.replace("@", "@x"))
        if checked != unit:
            shutil.copy(unit, checked)  # a template is analysed through an instance
        result = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                                 str(checked)], capture_output=True, text=True, env=env,
                                timeout=120)
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout + result.stderr
        assert float(match.group(1)) <= MAX_NODE_EXPOSURE, (unit.name, match.group(1))
