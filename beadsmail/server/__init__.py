"""``bd serve``: the real-time agent bus, the HTTP API and the live page, in one process.

The server stack (Starlette, uvicorn, websockets) is an optional extra,
``beadsmail[serve]``; nothing here imports it until ``serve()`` runs, so the
rest of ``bd`` never pays for it. See ``app`` for how the parts fit together.
"""

from __future__ import annotations

import importlib.util
import re

from beadsmail.errors import InvalidInput

STACK = ("starlette", "uvicorn", "websockets")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def missing_stack() -> list[str]:
    return [name for name in STACK if importlib.util.find_spec(name) is None]


def project_name(ws, given: str | None = None) -> str:
    """The project a server serves: ``given``, else the repository's directory name."""
    if given is not None:
        if not PROJECT_RE.match(given):
            raise InvalidInput(f"invalid project name {given!r}: use 1-64 lowercase letters, "
                               "digits, '.', '_' or '-' (it is also a channel name)")
        return given
    root = ws.loc.main_worktree or ws.loc.common.parent
    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-._")[:64]
    return name or "project"


def serve(ws, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, identity: str,
          projects: list[str] | None = None, allow_origins: list[str] | None = None,
          ready=None) -> None:
    """Run the server until interrupted. ``ready(url)`` is called once it listens."""
    missing = missing_stack()
    if missing:
        raise InvalidInput(f"bd serve needs {', '.join(missing)}: install the server extra "
                           "with pip install 'beadsmail[serve]'")
    if not 0 <= port <= 65535:
        raise InvalidInput(f"port {port} is out of range: use 1-65535 (0 picks a free one)")
    from beadsmail.server.runner import run

    ws.via = "serve"  # (its records say they came through bd serve: docs/security.md)
    names = [project_name(ws, p) for p in projects] if projects else [project_name(ws)]
    run(ws, host=host, port=port, identity=identity, projects=names,
        allow_origins=allow_origins or [], ready=ready)
