"""MkDocs hook: the command-line reference, generated from the Typer app (options can never drift)."""

from __future__ import annotations

import html
from typing import Any

MARK = "<!-- cli-reference -->"


def _param(p: Any) -> str:
    if not p.opts or not p.opts[0].startswith("-"):  # an argument
        name = (p.metavar or p.name or "").upper()
        text = html.escape(p.help or "").replace("|", "\\|").replace("\n", " ")
        return f"| `{name}` | {text}{'' if p.required else ' (optional)'} | |"
    names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
    default = getattr(p.default, "value", p.default)  # an Enum's value
    shown = "" if default is None or default is False or default == () or default == [] else f"`{default}`"
    text = html.escape(p.help or "").replace("|", "\\|").replace("\n", " ")
    return f"| {names} | {text} | {shown} |"


def _command(name: str, cmd: Any, level: int) -> list[str]:
    out = [f"{'#' * level} `{name}`", ""]
    if cmd.help:
        out += [html.escape(cmd.help.replace("\b", "").strip()), ""]
    subs = getattr(cmd, "commands", None)
    if subs:
        for sub_name, sub in sorted(subs.items()):
            out += _command(f"{name} {sub_name}", sub, level + 1)
        return out
    params = [p for p in cmd.params if p.name != "help"]
    if params:
        out += ["| parameter | meaning | default |", "| --- | --- | --- |", *(_param(p) for p in params), ""]
    return out


def reference() -> str:
    import typer

    from autolabel.cli import app

    root = typer.main.get_command(app)
    lines: list[str] = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]  # in `autolabel --help`'s order
        lines += _command(f"autolabel {name}", cmd, 2)
    return "\n".join(lines)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace(MARK, reference()) if MARK in markdown else markdown
