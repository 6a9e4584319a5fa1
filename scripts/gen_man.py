#!/usr/bin/env python3
"""Write man pages for ``shipyard`` from its command tree (``make man``).

The same Click objects ``--help`` prints and ``scripts/gen_cli_reference.py`` writes to
``docs/reference/cli.md`` (:func:`shipyard.cli.app.command_tree`), so the pages cannot
drift from the commands. One page per group, as git does per command: ``shipyard(1)``
(global options, the groups) and ``shipyard-GROUP(1)`` with every command of the group.

    python scripts/gen_man.py                 # into build/man/
    python scripts/gen_man.py --out DIR

The output depends on nothing but the code (the date is the version's, not today's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_cli_reference import (  # noqa: E402
    _context,
    _default,
    _help,
    _is_group,
    _is_option,
    _type,
    _usage,
    _walk,
)

SEE_ALSO_DOCS = "docs/reference/cli.md, docs/operator-guide.md"


def roff(text: str) -> str:
    """Text as roff reads it literally: backslashes, leading dots and quotes escaped."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in text.split("\n\n"):
        block = " ".join(block.split())
        if block:
            out += [".PP", roff(block)]
    return out


def _params(command: Any, ctx: Any) -> list[str]:
    out: list[str] = []
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params
               if _is_option(p) and not p.hidden and "--help" not in p.opts]
    for param in arguments:
        out += [".TP", f"\\fI{roff(param.make_metavar(ctx))}\\fR",
                roff(" ".join((getattr(param, "help", None) or "").split()) or "-")]
    for param in options:
        names = ", ".join(f"\\fB{roff(n)}\\fR" for n in [*param.opts, *param.secondary_opts])
        if not (param.is_flag or param.count):
            names += f" \\fI{roff(str(param.metavar or _type(param, ctx)))}\\fR"
        text = " ".join((param.help or "").split())
        default = _default(param)
        if default and not param.is_flag:
            text += f" (default: {default})"
        if param.required:
            text += " (required)"
        out += [".TP", names, roff(text or "-")]
    return out


def _header(name: str, summary: str, version: str) -> list[str]:
    return [f'.TH "{name.upper()}" "1" "" "shipyard {version}" "Shipyard Manual"',
            ".SH NAME", f"{roff(name)} \\- {roff(summary)}"]


def render() -> dict[str, str]:
    from shipyard import __version__
    from shipyard.cli.app import command_tree

    root = command_tree()
    root_ctx = _context(root, "shipyard", None)
    pages: dict[str, list[str]] = {}
    groups = []
    for name in root.list_commands(root_ctx):
        command = root.get_command(root_ctx, name)
        if command is None or command.hidden:
            continue
        groups.append((name, command))
    main = _header("shipyard", _help(root).split("\n")[0].rstrip("."), __version__)
    main += [".SH SYNOPSIS", "\\fBshipyard\\fR [\\fIOPTIONS\\fR] \\fIGROUP\\fR "
             "\\fIVERB\\fR [\\fIARGS\\fR]...", ".SH DESCRIPTION", *_paragraphs(_help(root)),
             ".SH OPTIONS", *_params(root, root_ctx), ".SH COMMANDS"]
    for name, command in groups:
        page = f"shipyard-{name}" if _is_group(command) else "shipyard"
        summary = " ".join(_help(command).split("\n\n")[0].split())
        main += [".TP", f"\\fB{roff(name)}\\fR", roff(summary)
                 + (f" See \\fB{roff(page)}\\fR(1)." if page != "shipyard" else "")]
    for name, command in groups:
        if _is_group(command):
            continue
        sub_ctx = _context(command, name, root_ctx)
        main += [".SS " + roff(sub_ctx.command_path), ".nf", roff(_usage(command, sub_ctx)),
                 ".fi", *_paragraphs(_help(command))]
        params = _params(command, sub_ctx)
        if params:
            main += [".PP", "Arguments and options:", ".RS", *params, ".RE"]
    main += [".SH ENVIRONMENT", ".TP", "\\fBSHIPYARD_HOME\\fR", "Same as \\fB\\-\\-home\\fR.",
             ".TP", "\\fBSHIPYARD_CONFIG\\fR", "Same as \\fB\\-\\-config\\fR.",
             ".SH SEE ALSO",
             ", ".join(f"\\fBshipyard\\-{roff(n)}\\fR(1)" for n, c in groups if _is_group(c))
             + f"; {roff(SEE_ALSO_DOCS)}"]
    pages["shipyard.1"] = main
    for name, group in groups:
        if not _is_group(group):
            continue
        ctx = _context(group, name, root_ctx)
        summary = " ".join(_help(group).split("\n\n")[0].split()).rstrip(".")
        page = _header(f"shipyard-{name}", summary, __version__)
        page += [".SH SYNOPSIS", f"\\fBshipyard {roff(name)}\\fR \\fIVERB\\fR "
                 "[\\fIOPTIONS\\fR] [\\fIARGS\\fR]...", ".SH DESCRIPTION",
                 *_paragraphs(_help(group)), ".SH COMMANDS"]
        for command, sub_ctx in list(_walk(group, ctx))[1:]:
            if _is_group(command):
                continue
            page += [".SS " + roff(sub_ctx.command_path), ".nf",
                     roff(_usage(command, sub_ctx)), ".fi", *_paragraphs(_help(command))]
            params = _params(command, sub_ctx)
            if params:
                page += [".PP", "Arguments and options:", ".RS", *params, ".RE"]
        page += [".SH SEE ALSO", f"\\fBshipyard\\fR(1); {roff(SEE_ALSO_DOCS)}"]
        pages[f"shipyard-{name}.1"] = page
    return {name: "\n".join(lines) + "\n" for name, lines in pages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "man",
                        help="Directory to write the pages to (default: build/man).")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
