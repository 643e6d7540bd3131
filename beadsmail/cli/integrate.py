"""``bd mcp``, ``bd setup`` and ``bd prime``: how coding agents plug in.

The MCP SDK is imported only inside ``bd mcp`` (``beadsmail.integrations.mcpserver``),
and tomlkit only when ``bd setup codex`` merges a TOML file.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from beadsmail.cli.common import Identity, Json, identity_source, session, workspace
from beadsmail.cli.output import emit
from beadsmail.errors import InvalidInput

MCP_EXTRA = ("mcp", "pydantic", "anyio")


def _need_mcp() -> None:
    missing = [name for name in MCP_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise InvalidInput(f"bd mcp needs {', '.join(missing)}: install the MCP extra with "
                           "pip install 'beadsmail[mcp]'")


def mcp(
    identity_: Identity = None,
    session_: Annotated[str | None, typer.Option(
        "--session", help="Session id for seen marks (else BEADS_SESSION, else a new one).")]
    = None,
) -> None:
    """Serve the MCP tools over stdio for one agent session.  Example: BEADS_IDENTITY=worker-1 bd mcp"""
    ws = workspace()  # no store: say so before anything else
    _need_mcp()
    from beadsmail.integrations import mcpserver
    from beadsmail.integrations.surface import Seat

    me, source = identity_source(ws, identity_)
    seat = Seat(None if source == "user" else me, source,
                session(session_) or "mcp-" + secrets.token_hex(6))
    mcpserver.run_stdio(ws, seat)


def prime(
    hook: Annotated[str | None, typer.Option(
        "--hook", help="Print it as this agent's session-start hook reply: claude, codex or "
        "gemini (reads the hook's event on stdin for its session id).")] = None,
    mcp_: Annotated[bool, typer.Option(
        "--mcp", help="Name the MCP tools instead of the shell commands.")] = False,
    session_: Annotated[str | None, typer.Option(
        "--session", help="Session id (else BEADS_SESSION, else the hook's): mail already "
        "shown to it is not repeated.")] = None,
    identity_: Identity = None, json_: Json = False,
) -> None:
    """What an agent needs at the start of a session, in a few lines.  Example: bd prime --hook claude"""
    from beadsmail.cli.fast import _claude_session
    from beadsmail.integrations import hookreply
    from beadsmail.integrations import prime as prime_mod

    if hook is not None and hook not in hookreply.HOOK_EVENTS:
        raise InvalidInput(f"unknown --hook {hook!r}: use one of "
                           f"{', '.join(hookreply.HOOK_EVENTS)}")
    ws = workspace()
    me, source = identity_source(ws, identity_)
    sid = session(session_) or (_claude_session() if hook else None)
    result = prime_mod.prime(ws, me, source, sid)
    text = prime_mod.render(result, via_mcp=mcp_)
    if hook and not json_:
        reply = hookreply.hook_reply(hook, "start", text)
        emit(reply, False, lambda d: d or "")
        return
    emit({**result, "text": text}, json_, lambda d: d["text"])


def setup(
    agent: Annotated[str, typer.Argument(help="claude, codex, gemini or agents-md.")],
    scope: Annotated[str, typer.Option(
        "--scope", help="project (this worktree's files) or user (your home directory's).")]
    = "project",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the changes, write nothing.")]
    = False,
    remove: Annotated[bool, typer.Option(
        "--remove", help="Take out exactly what bd setup added.")] = False,
    bd: Annotated[str, typer.Option(
        "--bd", help="The command that runs bd, as the agent will run it.")] = "bd",
    identity_: Annotated[str | None, typer.Option(
        "--identity", help="Write this identity into the server entry and hook commands "
        "(default: none; the agent's environment decides).")] = None,
    json_: Json = False,
) -> None:
    """Wire beadsmail into a coding agent: its MCP server entry and hooks.  Example: bd setup claude --dry-run"""
    from beadsmail import records
    from beadsmail.integrations import agentconf
    from beadsmail.integrations.configfiles import Memory

    if agent == "codex" and importlib.util.find_spec("tomlkit") is None:
        raise InvalidInput("bd setup codex needs tomlkit: pip install 'beadsmail[mcp]'")
    if identity_ is not None:
        records.check_identity(identity_, "--identity")
    ws = workspace()
    home = Path(os.environ.get("HOME") or Path.home())
    codex_home = os.environ.get("CODEX_HOME")
    target = agentconf.Target(ws.loc.worktree or Path.cwd(), home, Path(codex_home) if codex_home else None,
                              bd, identity_, scope)
    memory = Memory(ws.loc.state_dir / "setup")
    edits = agentconf.plan(agent, target, remove)
    if remove:
        edits = [memory.undo(edit) for edit in edits]
    if not dry_run:
        for edit in edits:
            edit.apply()
            if remove:
                memory.forget(edit)
            else:
                memory.keep(edit)
    result = {"agent": agent, "scope": scope, "dry_run": dry_run, "remove": remove,
              "files": [{"path": str(e.path), "action": e.action, "diff": e.diff()}
                        for e in edits]}
    emit(result, json_, _render_setup)


def _render_setup(d: dict) -> str:
    done = {"create": "created", "update": "updated", "delete": "deleted",
            "unchanged": "unchanged (nothing to do)"}
    lines = []
    for f in d["files"]:
        action = f"would {f['action']}" if d["dry_run"] and f["action"] != "unchanged" \
            else done[f["action"]]
        lines.append(f"{f['path']}: {action}")
        if d["dry_run"] and f["diff"]:
            lines.append(f["diff"].rstrip("\n"))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
    app.command("prime")(prime)
    app.command("setup")(setup)
