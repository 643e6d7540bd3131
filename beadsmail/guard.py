"""The commit guard: a git pre-commit hook that refuses commits touching paths another
agent reserved exclusively (see ``reservations``).

``install`` writes the hook into the directory git runs hooks from (``git rev-parse
--git-path hooks``: the common git dir's ``hooks``, shared by every linked worktree,
or ``core.hooksPath``). A hook already there is kept, renamed
``pre-commit.beadsmail-chained``, and run first; ``uninstall`` puts it back. The
hook runs ``bd guard check``, which lists the staged paths (``git diff --cached``,
renames as a deletion and an addition) and refuses the commit naming each path's
holder and reservation. ``BEADS_GUARD=warn`` reports without refusing,
``BEADS_GUARD=off`` skips the check, and ``git commit --no-verify`` skips the hook.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from beadsmail import reservations
from beadsmail.errors import InvalidInput, Reserved

HOOK = "pre-commit"
CHAINED = "pre-commit.beadsmail-chained"
MARK = "# beadsmail commit guard"
SCRIPT = """#!/bin/sh
{mark} (bd guard install; bd guard uninstall removes it)
# Refuses a commit touching a path another agent reserved exclusively.
# BEADS_GUARD=warn only reports, BEADS_GUARD=off skips; git commit --no-verify skips all hooks.
hook_dir=$(dirname "$0")
if [ -x "$hook_dir/{chained}" ]; then
    "$hook_dir/{chained}" "$@" || exit $?
fi
[ "${{BEADS_GUARD:-on}}" = off ] && exit 0
BD={bd}
command -v "$BD" >/dev/null 2>&1 || BD=bd
if ! command -v "$BD" >/dev/null 2>&1; then
    echo "beadsmail guard: bd not found on PATH; this commit was not checked" >&2
    exit 0
fi
exec "$BD" guard check
"""


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        raise InvalidInput(f"git {' '.join(args)} failed: "
                           f"{proc.stderr.decode('utf-8', 'replace').strip()[:200]}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def hooks_dir(worktree: Path) -> Path:
    """Where git runs this checkout's hooks from (honours ``core.hooksPath``)."""
    return (worktree / _git(worktree, "rev-parse", "--git-path", "hooks").strip()).resolve()


def _ours(path: Path) -> bool:
    try:
        return MARK in path.read_text("utf-8", "replace")
    except (FileNotFoundError, IsADirectoryError):
        return False


def install(worktree: Path, bd: str, dry_run: bool = False) -> dict:
    """Install the hook (idempotent), keeping and chaining a hook already there."""
    where = hooks_dir(worktree)
    hook, chained = where / HOOK, where / CHAINED
    script = SCRIPT.format(mark=MARK, chained=CHAINED, bd=shlex.quote(bd))
    if _ours(hook) and hook.read_text("utf-8") == script:
        return {"installed": str(hook), "changed": False, "chained": chained.exists(),
                "dry_run": dry_run}
    keeps = hook.exists() and not _ours(hook)
    if keeps and chained.exists():
        raise InvalidInput(f"{hook} and {chained} both exist; merge them by hand, then "
                           "run 'bd guard install' again")
    if not dry_run:
        where.mkdir(parents=True, exist_ok=True)
        if keeps:
            os.rename(hook, chained)
        tmp = where / f".{HOOK}.beadsmail.{os.getpid()}"
        tmp.write_text(script, "utf-8")
        tmp.chmod(0o755)
        os.replace(tmp, hook)
    return {"installed": str(hook), "changed": True, "chained": keeps or chained.exists(),
            "dry_run": dry_run}


def uninstall(worktree: Path) -> dict:
    """Remove the hook and put back the one it chained, if any."""
    where = hooks_dir(worktree)
    hook, chained = where / HOOK, where / CHAINED
    if not _ours(hook):
        return {"removed": False, "restored": False, "hooks_dir": str(where)}
    hook.unlink()
    restored = chained.exists()
    if restored:
        os.rename(chained, hook)
    return {"removed": True, "restored": restored, "hooks_dir": str(where)}


def staged(worktree: Path) -> list[str]:
    out = _git(worktree, "diff", "--cached", "--name-only", "--no-renames", "-z")
    return [p for p in out.split("\0") if p]


def check(ws, me: str, mode: str = "on") -> dict:
    """The staged paths others hold exclusively; raise ``Reserved`` unless ``mode`` is
    warn (then report) or off."""
    if mode not in ("on", "warn", "off"):
        raise InvalidInput(f"BEADS_GUARD={mode!r}: use warn or off (or leave it unset)")
    if mode == "off" or ws.loc.worktree is None:
        return {"blocked": [], "mode": mode, "checked": 0}
    paths = staged(ws.loc.worktree)
    blocked = reservations.blocking_paths(ws, me, paths) if paths else []
    if blocked and mode == "on":
        lines = "; ".join(b["message"] for b in blocked[:5])
        more = f" (and {len(blocked) - 5} more)" if len(blocked) > 5 else ""
        raise Reserved(f"commit refused: {lines}{more}. Ask the holder to 'bd release', "
                           "or commit with BEADS_GUARD=warn or --no-verify")
    return {"blocked": blocked, "mode": mode, "checked": len(paths)}
