"""The documentation cannot drift from the code: the generated reference is current, every
command a page names exists (``shipyard ... --help`` exits 0), every relative link
resolves, and the tutorial runs as written, block after block, in one bash."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, SHIPYARD
from helpers import public_tmpdir

DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
GENERATOR = ROOT / "scripts" / "gen_cli_reference.py"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
SEPARATORS = re.compile(r"&&|\|\||[;|`]|\$\(")
GLOBAL_WITH_VALUE = {"--home", "--config"}
PREFIX_WORDS = {"$", "sudo", "exec", "do", "then", "time", "env", "nohup"}


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_lines(text: str) -> Iterator[str]:
    """Every line of code on a page: fenced blocks and inline code spans."""
    for block in FENCE.findall(text):
        yield from block.splitlines()
    prose = FENCE.sub("", text)
    yield from INLINE.findall(prose)


def _command_tokens(segment: str) -> list[str] | None:
    """The words after ``shipyard`` when ``segment`` runs the shipyard command, else None."""
    try:
        tokens = shlex.split(segment, comments=False)
    except ValueError:
        tokens = segment.split()
    # A path to the binary is unambiguous wherever it stands (cron lines, ExecStart=).
    for index, token in enumerate(tokens):
        if token.endswith("/bin/shipyard"):
            return tokens[index + 1:]
    while tokens and (tokens[0] in PREFIX_WORDS or re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*",
                                                                 tokens[0])):
        word = tokens.pop(0)
        if word == "sudo":
            while tokens and tokens[0].startswith("-"):
                flag = tokens.pop(0)
                if flag in ("-u", "-g") and tokens:
                    tokens.pop(0)
    if tokens and tokens[0] == "shipyard":
        return tokens[1:]
    return None


def mentions() -> dict[tuple[str, ...], str]:
    """Every ``shipyard ...`` command line the pages contain: words -> where."""
    found: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        for line in code_lines(page.read_text(encoding="utf-8")):
            for segment in SEPARATORS.split(line):
                words = _command_tokens(segment.strip())
                if words is None:
                    continue
                found.setdefault(tuple(words), f"{page.relative_to(ROOT)}: {line.strip()}")
    return found


def resolve(words: tuple[str, ...], paths: set[str]) -> tuple[str, str | None]:
    """The command path ``words`` runs, and a problem (or None)."""
    rest = list(words)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag in GLOBAL_WITH_VALUE and rest:
            rest.pop(0)
    path = "shipyard"
    while rest and f"{path} {rest[0]}" in paths:
        path = f"{path} {rest.pop(0)}"
    is_group = any(p.startswith(path + " ") for p in paths)
    if is_group and rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
        return path, f"'{path}' has no command '{rest[0]}'"
    return path, None


def test_the_generated_reference_is_current() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    cli = (DOCS / "reference" / "cli.md").read_text()
    for path in _generator().command_paths()[1:]:
        assert f"`{path}`" in cli, path


def test_every_command_the_docs_name_exists() -> None:
    paths = set(_generator().command_paths())
    found = mentions()
    assert len(found) > 50, "the pages name far more commands than that"
    problems, leaves = [], set()
    for words, where in sorted(found.items()):
        path, problem = resolve(words, paths)
        if problem:
            problems.append(f"{problem} ({where})")
        leaves.add(path)
    assert problems == []
    # Each exists for the real command line, not only in the tree we walked.
    assert {"shipyard svc upgrade", "shipyard demo", "shipyard farm token create"} <= leaves

    # ``--help`` of each, through the CLI's own entry point (in this process: 70 interpreter
    # starts would cost more than the rest of the docs tests together) ...
    from shipyard.cli.main import main

    failed = []
    for path in sorted(leaves):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*path.split()[1:], "--help"])
        if code != 0 or "Usage" not in out.getvalue():
            failed.append((path, code, err.getvalue()))
    assert failed == []
    # ... and a few through the installed command itself.
    for path in ("shipyard svc upgrade", "shipyard demo", "shipyard farm token create"):
        result = subprocess.run([*SHIPYARD, *path.split()[1:], "--help"], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0 and "Usage" in result.stdout, result.stderr


def test_a_wrong_command_would_be_caught() -> None:
    paths = set(_generator().command_paths())
    assert resolve(("svc", "upgarde", "1.a.b.c"), paths)[1] == (
        "'shipyard svc' has no command 'upgarde'")
    assert resolve(("pgk", "list"), paths)[1] == "'shipyard' has no command 'pgk'"
    assert resolve(("--home", "/x", "pkg", "install", "org.example:hello"), paths) == (
        "shipyard pkg install", None)
    assert _command_tokens("*/5 * * * * git /opt/venv/bin/shipyard farm hook flush /r") == [
        "farm", "hook", "flush", "/r"]
    assert _command_tokens("sudo -u postgres createuser shipyard") is None


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


# ---------------------------------------------------------------------------------------
# The tutorial


def tutorial_script() -> tuple[str, int]:
    blocks = re.findall(r"^```sh\n(.*?)^```", (DOCS / "tutorial.md").read_text(), re.S | re.M)
    parts = ["set -euo pipefail"]
    for number, block in enumerate(blocks, 1):
        parts += [f"echo '### tutorial block {number}'", block]
    parts.append("echo '### tutorial done'")
    return "\n".join(parts) + "\n", len(blocks)


@pytest.fixture(name="workdir")
def fixture_workdir() -> Iterator[Path]:
    """A 0755 directory under /tmp: as root, the instances run as the service user."""
    with public_tmpdir("shipyard-tutorial-") as base:
        yield base


# The tutorial's own run may take 480 s (its many-hosts chapter starts a coordinator and
# agents): the suite's global 300 s would cut it short.
@pytest.mark.timeout(600)
def test_the_tutorial_runs_as_written(workdir: Path) -> None:
    script, count = tutorial_script()
    assert count >= 10
    home = workdir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(home),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    try:
        result = subprocess.run(["bash", "-c", script], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=480)
        output = result.stdout + result.stderr
        blocks = re.findall(r"### tutorial block (\d+)", result.stdout)
        assert result.returncode == 0, (f"tutorial block {blocks[-1] if blocks else '?'} "
                                        f"failed:\n{output[-3000:]}")
        assert "### tutorial done" in result.stdout
        assert "hello from 1.greeter.tutorial.local; peers: none" in result.stdout
        assert "hello from 1.greeter.tutorial.local; peers: clock.tutorial.test:7001" in (
            result.stdout)
        assert "hi from 1.greeter.tutorial.local; peers: clock.tutorial.test:7001" in (
            result.stdout)
        assert "upgraded 1.greeter.tutorial.local from org.example.tutorial:greeter:1.0.0 " \
               "to org.example.tutorial:greeter:1.1.0" in result.stdout
        # 8, many hosts: greeter on node a linked to clock on node b, across hosts
        assert "hi from 1.greeter.fleet.local; peers: clock.b.tutorial.test:7001" in (
            result.stdout)
        assert "shutdown: 2 instance(s) stopped" in result.stdout
    finally:
        subprocess.run([*SHIPYARD, "svc", "shutdown"], env=env, capture_output=True,
                       timeout=120)
        needles = (f"SHIPYARD_RUNTIME_DIR={home}".encode(),  # instances, and chapter 8's
                   f"SHIPYARD_HOME={home}/hosts/".encode())  # coordinator and agents
        for proc in psutil.process_iter():
            try:
                with open(f"/proc/{proc.pid}/environ", "rb") as handle:
                    environ = handle.read()
                    if any(needle in environ for needle in needles):
                        proc.kill()
            except (OSError, psutil.Error):
                continue
