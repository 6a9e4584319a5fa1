"""The layers of docs/architecture.md hold, and the contract that says so has teeth.

``make test`` runs ``lint-imports`` before pytest; these tests run it too, so the layers
are checked wherever the suite runs, and they plant violations in a copy of the tree to
prove the contract catches what it is there for: an upward import inside a function, an
import between independent stages of one layer, a new module that chose no layer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LINT = [sys.executable, "-c",
        "from importlinter.cli import lint_imports_command; lint_imports_command()"]


def _lint(tree: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run([*LINT, "--no-logo", "--cache-dir", str(cache)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(ROOT, tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_the_contract_catches_upward_sibling_and_unlayered_imports(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    pkg = tree / "src" / "shipyard" / "pkg"
    with (pkg / "verify.py").open("a") as f:  # upward, and only inside a function
        f.write("\n\ndef _probe() -> None:\n    from shipyard.link import hooks  # noqa\n")
    with (pkg / "store.py").open("a") as f:  # pkg and repo are independent siblings
        f.write("\n\ndef _probe() -> None:\n    from shipyard.repo import layout  # noqa\n")
    (tree / "src" / "shipyard" / "stray.py").write_text('"""On no layer."""\n')

    result = _lint(tree, tmp_path / "cache")
    assert result.returncode != 0
    assert "shipyard.pkg is not allowed to import shipyard.link" in result.stdout
    assert "shipyard.pkg.verify -> shipyard.link.hooks" in result.stdout
    assert "shipyard.pkg is not allowed to import shipyard.repo" in result.stdout
    assert "- shipyard.stray" in result.stdout
