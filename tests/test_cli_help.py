"""Help, completion and man pages: literal help text, metavars that are words, completion
for bash, zsh and fish through the real command, and man pages that groff reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Shipyard
from shipyard.cli.app import command_tree
from shipyard.cli.help import walk
from shipyard.cli.main import main

# A metavar: upper-case words, HOST:PORT, GROUP:ID, KEY=VALUE, a choice such as [a|b], a repetition.
METAVAR = re.compile(r"\[?[A-Z][A-Z0-9_:=|]*\]?(\.\.\.)?|\[[a-z0-9|_-]+\]")
PARAMS = "[-- --param=value ...]"  # svc register's pass-through, spelled by svc itself
COMMANDS = [path.split()[1:] for _command, path in walk(command_tree())]


def help_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


def test_help_text_is_never_read_as_markup(shipyard: Shipyard) -> None:
    text = shipyard.run("pkg", "pack", "--help").stdout
    assert "Build (when [build] says how) and pack DIR" in " ".join(text.split())


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) or "shipyard" for a in COMMANDS])
def test_every_help_names_values_with_words(args: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(args, capsys)
    usage = next(line for line in text.splitlines() if line.startswith("Usage: "))
    words = usage.removeprefix("Usage: ").split()[1 + len(args):]
    for word in words:
        assert word in ("[OPTIONS]", "COMMAND", "[ARGS]...", "[--", "--param=value", "...]") \
            or METAVAR.fullmatch(word), f"{usage!r}: {word!r}"
    section = ""
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line
            continue
        if section not in ("Options:", "Arguments:") or not line.startswith("  "):
            continue
        if not line[2:3].strip():
            continue  # a continued description
        names = re.split(r"\s{2,}", line.strip())[0]
        if names == PARAMS:
            continue
        for word in names.replace(",", " ").split():
            if not word.startswith("-") and word != "/":
                assert METAVAR.fullmatch(word), f"{' '.join(args)}: {line.strip()!r}"
    assert "<str>" not in text and "<int" not in text and "<path>" not in text


def test_completion_scripts_complete_through_the_real_command(shipyard: Shipyard,
                                                              tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "shipyard"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m shipyard.cli.main "$@"\n')
    wrapper.chmod(0o755)
    env = {**shipyard.env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    script = shipyard.run("completion", "bash").stdout
    assert "_SHIPYARD_COMPLETE=complete_bash" in script
    (tmp_path / "complete.bash").write_text(script)
    probe = f"""
source {tmp_path / 'complete.bash'}
for line in 'shipyard fa' 'shipyard farm init-system --r' 'shipyard svc shut'; do
    read -ra COMP_WORDS <<< "$line"; COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
    _shipyard_completion shipyard; echo "${{COMPREPLY[*]}}"
done
"""
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.stdout.splitlines() == ["farm", "--role --repo", "shutdown"], done.stderr

    zsh = shipyard.run("completion", "zsh").stdout
    assert zsh.startswith("#compdef shipyard") and "complete_zsh" in zsh
    fish = shipyard.run("completion", "fish").stdout
    assert "complete --command shipyard" in fish and "complete_fish" in fish
    # The answers those scripts ask for, in each shell's own protocol.
    answer = shipyard.run(env={"_SHIPYARD_COMPLETE": "complete_zsh",
                               "_TYPER_COMPLETE_ARGS": "shipyard fa"})
    assert '"farm"' in answer.stdout
    answer = shipyard.run(env={"_SHIPYARD_COMPLETE": "complete_fish",
                               "_TYPER_COMPLETE_ARGS": "shipyard farm ini",
                               "_TYPER_COMPLETE_FISH_ACTION": "get-args"})
    assert answer.stdout.startswith("init-system\t")

    bad = shipyard.run("completion", "tcsh", check=False)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["shipyard: error: completion: unknown shell 'tcsh' "
                                       "(expected one of: bash, zsh, fish)"]


def test_man_pages_are_generated_and_parse(tmp_path: Path) -> None:
    out = tmp_path / "man"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_man.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    root = command_tree()
    groups = sorted(n for n, c in root.commands.items() if hasattr(c, "commands"))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["shipyard.1", *(f"shipyard-{g}.1" for g in groups)])
    pkg = (out / "shipyard-pkg.1").read_text()
    assert "Build (when [build] says how)" in pkg
    for command, path in walk(root):
        words = path.split()
        if len(words) >= 2 and not hasattr(command, "commands"):
            name = f"shipyard-{words[1]}.1" if len(words) > 2 else "shipyard.1"
            page = (out / name).read_text()
            assert f".SS {path.replace('-', chr(92) + '-')}\n" in page, path
    assert shutil.which("groff"), ".ci/run installs groff for this test"
    for page in out.iterdir():
        result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stderr == "", (page.name, result.stderr)
    rendered = subprocess.run(["groff", "-man", "-Tutf8", str(out / "shipyard-farm.1")],
                              capture_output=True, text=True, timeout=120).stdout
    assert "init-system" in re.sub(r".\x08", "", rendered)


def test_version_builds_no_group(shipyard: Shipyard) -> None:
    """--version answers from the root options: no group's commands are built for it."""
    from shipyard import __version__

    probe = ("import sys\nfrom shipyard.cli.main import main\ncode = main(['--version'])\n"
             "print(sorted(m for m in sys.modules if m.startswith('shipyard.cli.')))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=shipyard.env, timeout=120, check=True)
    version, modules = result.stdout.splitlines()
    assert version == f"shipyard {__version__}"
    assert "shipyard.cli.app" in modules  # the check below can fail
    for group in ("pkg", "repo", "svc", "link", "farm", "config"):
        assert f"'shipyard.cli.{group}'" not in modules
