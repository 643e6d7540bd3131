"""Hook commands: ``bd hooks list``, ``bd hooks status``, ``bd hooks trust [NAME...]``.

(No ``from __future__ import annotations``: typer must see the option types.)
"""

from typing import Annotated

import typer

from beadsmail import approvals
from beadsmail.cli.common import Json
from beadsmail.cli.env import workspace
from beadsmail.cli.output import emit

hooks_app = typer.Typer(help="Hooks and the settings that run or send: list and approve them.",
                        no_args_is_help=True)


def _hook_lines(d: dict) -> list[str]:
    lines = [f"{h['state']:<9} {h['name']}  sha256:{h['sha256'][:16]}"
             + ("" if h["executable"] else "  (not executable)") for h in d["hooks"]]
    return lines or ["no hooks in .beads/hooks/"]


def _render_status(d: dict) -> str:
    lines = _hook_lines(d)
    s = d["settings"]
    if s:
        values = ", ".join(f"{k}={v!r}" for k, v in sorted(s["values"].items()))
        lines.append(f"{s['state']:<9} config.yaml  {values}")
    if d["unapproved"]:
        lines.append(f"not approved, so not run or applied: {', '.join(d['unapproved'])}; "
                     f"read them, then run '{d['approve']}'")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @hooks_app.command("list")
    def list_(json_: Json = False) -> None:
        """List the hooks in .beads/hooks/ and whether each is approved.  Example: bd hooks list"""
        ws = workspace()
        found = approvals.inventory(ws.loc.worktree, ws.loc.state_dir)
        emit(found["hooks"], json_, lambda _: "\n".join(_hook_lines(found)))

    @hooks_app.command()
    def status(json_: Json = False) -> None:
        """Hooks and exec-capable settings, approved or waiting.  Example: bd hooks status --json"""
        ws = workspace()
        emit(approvals.inventory(ws.loc.worktree, ws.loc.state_dir), json_, _render_status)

    @hooks_app.command()
    def trust(
        names: Annotated[list[str] | None, typer.Argument(
            help="Hooks to approve (e.g. on_message; 'config.yaml' for the settings). "
                 "Default: every hook and the settings, as they are now.")] = None,
        json_: Json = False,
    ) -> None:
        """Approve the exact current content of hooks and settings.  Example: bd hooks trust"""
        ws = workspace()
        result = approvals.trust(ws.loc.worktree, ws.loc.state_dir, names)
        emit(result, json_, lambda d: "\n".join(
            f"approved {a['name']} (sha256:{a['sha256'][:16]})" for a in d["approved"])
            or "nothing to approve")

    app.add_typer(hooks_app, name="hooks")
