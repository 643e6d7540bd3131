"""``bd guard check``: what the pre-commit hook runs at every commit, without typer."""

from __future__ import annotations

import os
import sys


def fast(args: list[str]) -> bool:
    """``bd guard check [--json] [--identity X]`` without typer (it runs at every commit)."""
    from beadsmail.cli import argv

    if not args or args[0] != "check":
        return False
    parsed = argv.parse(args[1:], flags={"--json"}, options={"--identity"})
    if parsed is None:
        return False
    opts, _ = parsed
    run_check(opts["--json"], opts.get("--identity"))
    return True


def run_check(as_json: bool, identity: str | None) -> None:
    from beadsmail import guard
    from beadsmail.cli import env
    from beadsmail.cli.output import emit

    ws = env.workspace()
    mode = os.environ.get("BEADS_GUARD", "on").strip().lower() or "on"
    result = guard.check(ws, env.identity(ws, identity), mode)
    if result["blocked"] and not as_json:
        for b in result["blocked"]:
            print(f"beadsmail guard (BEADS_GUARD=warn): {b['message']}", file=sys.stderr)
        return
    if as_json:
        emit(result, True)
