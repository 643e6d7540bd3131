"""``bd mcp``, ``bd setup`` and ``bd prime``: how coding agents plug in.

The MCP SDK is imported only inside ``bd mcp`` (``beadsmail.integrations.mcpserver``),
and tomlkit only when ``bd setup codex`` merges a TOML file.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from beadsmail.cli.common import Identity, identity_source, session, workspace
from beadsmail.errors import InvalidInput

MCP_EXTRA = ("mcp", "pydantic", "anyio")


def _need_mcp() -> None:
    import importlib.util

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
    _need_mcp()
    from beadsmail.integrations import mcpserver
    from beadsmail.integrations.surface import Seat

    ws = workspace()
    me, source = identity_source(ws, identity_)
    seat = Seat(None if source == "user" else me, source,
                session(session_) or "mcp-" + secrets.token_hex(6))
    mcpserver.run_stdio(ws, seat)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
