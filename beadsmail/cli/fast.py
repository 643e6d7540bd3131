"""``bd mail check`` without typer: it runs after every tool call of an agent.

``cli.main`` hands ``bd mail ...`` here (``FAST``) before anything imports
typer. The arguments of ``check`` are parsed by hand; anything else (another
subcommand, ``--help``, an unknown option) returns False and the full CLI takes
over. ``check`` always exits 0:
outside a repository it stays silent, and any other problem is one line on
stderr (or one JSON error object under ``--json``).
"""

from __future__ import annotations

import json
import sys

VALUED = ("--session", "--identity")
FLAGS = ("--json", "--claude")


def parse(args: list[str]) -> dict | None:
    """Options of ``mail check`` from argv, or None when the full CLI should handle it."""
    opts: dict = {"--json": False, "--claude": False, "--session": None, "--identity": None}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if arg in FLAGS:
            opts[arg] = True
        elif name in VALUED and eq:
            opts[name] = value
        elif arg in VALUED and i + 1 < len(args) and not args[i + 1].startswith("--"):
            opts[arg] = args[i + 1]
            i += 1
        else:
            return None
        i += 1
    return opts


def fast(args: list[str]) -> bool:
    """``bd mail <args>``: run ``check`` and return True, or False to leave it to typer."""
    opts = parse(args[1:]) if args[:1] == ["check"] else None
    if opts is None:
        return False
    run_check(opts["--json"], opts["--claude"], opts["--session"], opts["--identity"])
    return True


def run_check(as_json: bool, claude: bool, session: str | None, identity: str | None) -> int:
    """Print the notice (or the JSON result); return 0 whatever happened."""
    import sqlite3

    from beadsmail import wake
    from beadsmail.cli import env
    from beadsmail.cli.output import fail
    from beadsmail.errors import BeadsError, NotARepository

    hook_session = _claude_session() if claude and not session else None
    try:
        ws = env.workspace()
        me = env.identity(ws, identity)
        result = wake.check(ws, me, env.session(session) or hook_session)
    except NotARepository as exc:
        if as_json:
            fail(exc, True)
        return 0
    except (BeadsError, sqlite3.Error, OSError, UnicodeError) as exc:
        fail(exc, as_json)
        return 0
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    elif claude and result["notice"]:
        print(json.dumps({"hookSpecificOutput": {"hookEventName": "PostToolUse",
                                                 "additionalContext": result["notice"]}}))
    elif result["notice"]:
        print(result["notice"])
    return 0


def _claude_session() -> str | None:
    """The ``session_id`` of the hook event a coding agent wrote on stdin, if any."""
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return None
        event = json.loads(sys.stdin.read() or "null")
    except (OSError, ValueError):
        return None
    value = event.get("session_id") if isinstance(event, dict) else None
    return str(value)[:128] if value else None
